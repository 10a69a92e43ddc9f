//! Upstream's 6.16 stat tools against our tracker: `fdfs_tracker_stat` (command 96, asked of
//! the leader after GET_LEADER), `fdfs_storage_stat` (97) and `fdfs_volumn_stat` (98), the C
//! binaries from `$FDFS_REF_DIR/bin` (default `../shared/ref` from the repository root), run
//! with a client.conf that names our tracker. Their filters are checked through their flags.
//! The tools exit 0 even when they fail, so they are judged by what they print.
//!
//! Without the reference binaries the tests say so loudly on stderr and pass.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;

use crate::util::*;

/// How long heartbeats (every second in the tests) and follower pings may take to show.
const NEWS_TIMEOUT: Duration = Duration::from_secs(15);

/// SERVER_TRACKER_CLUSTER_STAT, SERVER_STORAGE_CLUSTER_STAT, SERVER_STORAGE_VOLUMN_STAT.
const CMD_TRACKER_STAT: u8 = 96;
const CMD_STORAGE_STAT: u8 = 97;
const CMD_VOLUMN_STAT: u8 = 98;

/// The reference `bin/` directory, or None (after saying why on stderr) when it is missing.
fn ref_bin(test: &str) -> Option<PathBuf> {
    ref_dir_or_skip(test).map(|d| d.join("bin"))
}

/// A client.conf in `dir` naming `trackers`.
fn client_conf(dir: &Path, trackers: &[SocketAddr]) -> PathBuf {
    let mut text = String::from("# written by tests/it/stat_tools.rs\n");
    let _ = writeln!(text, "connect_timeout = 5\nnetwork_timeout = 10");
    let _ = writeln!(text, "base_path = {}", dir.display());
    for t in trackers {
        let _ = writeln!(text, "tracker_server = {t}");
    }
    text.push_str("log_level = info\n");
    let path = dir.join("client.conf");
    fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Output of one tool run that must not have failed: no `ERROR` log line anywhere.
#[track_caller]
fn clean(run: Run) -> String {
    let all = format!("{}{}", run.stdout_str(), run.stderr_str());
    if all.contains("ERROR") || run.status.is_none() {
        panic!("the tool reported an error\n{}", run.describe());
    }
    run.stdout_str()
}

/// One tracker, one storage: each tool shows them, and each filter flag keeps or drops them.
#[test]
fn upstream_stat_tools_show_tracker_storage_and_group() {
    let Some(bin) = ref_bin("upstream_stat_tools_show_tracker_storage_and_group") else {
        return;
    };
    let cluster = Cluster::start();
    // The tool asks GET_LEADER first; a fresh tracker elects itself within a second or so.
    poll_until("the tracker leads", NEWS_TIMEOUT, || {
        match get_leader(cluster.tracker_addr()) {
            Ok(Ok(l)) if l == cluster.tracker_addr().to_string() => Ok(()),
            other => Err(format!("GET_LEADER: {other:?}")),
        }
    });
    let conf = client_conf(&cluster.work_dir(), &[cluster.tracker_addr()]);
    let conf = conf.to_str().expect("UTF-8 temp path").to_string();
    let tool = |name: &str, flags: &[&str]| {
        let mut args = vec!["-c", conf.as_str()];
        args.extend_from_slice(flags);
        let run = cluster.run(&bin.join(name), &args, None, CLI_TIMEOUT);
        let described = run.describe();
        (clean(run), described)
    };

    let tracker = cluster.tracker_addr().to_string();
    let (out, why) = tool("fdfs_tracker_stat", &["-d"]);
    assert!(
        out.contains(&format!(
            "{tracker}, is_leader: 1, is_active: 1, connections {{alloc: "
        )),
        "{why}"
    );
    assert!(out.contains("version: 6.16.1, up_time: "), "{why}");
    assert!(!out.contains("1970-01-01"), "up_time must be set\n{why}");
    assert!(out.contains("tracker server count: 1"), "{why}");
    let (out, why) = tool("fdfs_tracker_stat", &["-L", "-A"]);
    assert!(out.contains(&format!("{tracker}, is_leader: 1")), "{why}");
    for flags in [["-F"], ["-N"]] {
        let (out, why) = tool("fdfs_tracker_stat", &flags);
        assert!(out.is_empty(), "a lone tracker leads and is active\n{why}");
    }

    let storage = cluster.storage_addr(0).to_string();
    let (out, why) = tool("fdfs_storage_stat", &["-d"]);
    assert!(
        out.contains(&format!("{storage} ACTIVE, connections {{alloc: ")),
        "{why}"
    );
    assert!(out.contains("version: 6.16.1, up_time: "), "{why}");
    assert!(out.contains(", last_heartbeat_time: "), "{why}");
    assert!(!out.contains("1970-01-01"), "times must be set\n{why}");
    assert!(out.contains("storage server count: 1"), "{why}");
    let (out, why) = tool("fdfs_storage_stat", &["-A"]);
    assert!(out.contains(&format!("{storage} ACTIVE")), "{why}");
    let (out, why) = tool("fdfs_storage_stat", &["-N"]);
    assert!(out.is_empty(), "the storage is ACTIVE\n{why}");

    let keep_group1: [&[&str]; 3] = [&[], &["-A"], &["-D"]];
    for flags in keep_group1 {
        let (out, why) = tool("fdfs_volumn_stat", flags);
        assert!(
            out.contains(&format!("{GROUP} disk_available: 1, disk space {{total: ")),
            "{why}"
        );
        assert!(out.contains("storage volumn / group count: 1"), "{why}");
    }
    for flags in [["-N"], ["-d"]] {
        let (out, why) = tool("fdfs_volumn_stat", &flags);
        assert!(out.is_empty(), "group1 has space\n{why}");
    }

    // The storage's connection counts come with its heartbeats once it has served a client.
    cluster.upload(&random_bytes("stat-tools", 1_000), &[]);
    poll_until(
        "storage connections in fdfs_storage_stat",
        NEWS_TIMEOUT,
        || {
            let (out, why) = tool("fdfs_storage_stat", &[]);
            if out.contains(&format!("{storage} ACTIVE, connections {{alloc: 0,")) {
                Err(why)
            } else {
                Ok(())
            }
        },
    );
}

/// Two trackers: the tool, pointed at the follower, finds the leader and lists both, the
/// follower active with its own version and heartbeat. Only the leader answers 96; any
/// tracker answers 97 and 98.
#[test]
fn upstream_tracker_stat_lists_leader_and_follower() {
    let Some(bin) = ref_bin("upstream_tracker_stat_lists_leader_and_follower") else {
        return;
    };
    let mut m = Multi::builder().storages(GROUP, 1).start();
    let leader = m.wait_leader(NEWS_TIMEOUT);
    let follower = 1 - leader;
    let (leader_addr, follower_addr) = (m.tracker_addr(leader), m.tracker_addr(follower));
    let conf = client_conf(&m.work_dir(), &[follower_addr]);
    let conf = conf.to_str().expect("UTF-8 temp path").to_string();

    poll_until("both trackers in fdfs_tracker_stat", NEWS_TIMEOUT, || {
        let run = m.run(
            &bin.join("fdfs_tracker_stat"),
            &["-c", conf.as_str(), "-d"],
            CLI_TIMEOUT,
        );
        let why = run.describe();
        let out = clean(run);
        let ok = out.contains("tracker server count: 2")
            && out.contains(&format!("{leader_addr}, is_leader: 1, is_active: 1"))
            && out.contains(&format!("{follower_addr}, is_leader: 0, is_active: 1"))
            && out.matches("version: 6.16.1").count() == 2
            && out.contains("last_heartbeat_time: ")
            && !out.contains("1970-01-01");
        if ok { Ok(()) } else { Err(why) }
    });
    let run = m.run(
        &bin.join("fdfs_tracker_stat"),
        &["-c", conf.as_str(), "-F"],
        CLI_TIMEOUT,
    );
    let why = run.describe();
    let out = clean(run);
    assert!(
        out.contains(&format!("{follower_addr}, is_leader: 0"))
            && !out.contains(&leader_addr.to_string()),
        "{why}"
    );

    let eopnotsupp = Errno::EOPNOTSUPP as u8;
    let r = Raw::connect(follower_addr).request(CMD_TRACKER_STAT, &[0, 0, 0]);
    assert_eq!(
        (r.status, r.body.len()),
        (eopnotsupp, 0),
        "96 to a follower: {r:?}"
    );
    let r = Raw::connect(leader_addr).request(CMD_TRACKER_STAT, &[0, 0]);
    assert_eq!(r.status, EINVAL, "96 with a 2-byte filter: {r:?}");
    let r = Raw::connect(leader_addr).request(CMD_TRACKER_STAT, &[0, 0, 0]);
    assert_eq!((r.status, r.body.first()), (0, Some(&2)), "{r:?}");
    assert_eq!(r.body.len(), 1 + 2 * 90, "{r:?}");

    for t in [leader_addr, follower_addr] {
        let r = Raw::connect(t).request(CMD_STORAGE_STAT, &[0, 0, 0, 0]);
        assert_eq!(r.status, 0, "97 from {t}: {r:?}");
        assert_eq!(r.body.len(), 6 + 106, "97 from {t}: {r:?}");
        let r = Raw::connect(t).request(CMD_VOLUMN_STAT, &[0, 0, 0, 0]);
        assert_eq!(r.status, 0, "98 from {t}: {r:?}");
        assert_eq!(r.body.len(), 5 + 59, "98 from {t}: {r:?}");
        let r = Raw::connect(t).request(CMD_VOLUMN_STAT, &[0, 0, 0]);
        assert_eq!(r.status, EINVAL, "98 with a 3-byte filter from {t}: {r:?}");
    }
    m.assert_running();
}
