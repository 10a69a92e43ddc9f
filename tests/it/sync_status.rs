//! What a storage answers the sync requests a peer pushes (src/storage/sync_status.rs has the
//! table): a record that can never apply, or is applied already, gets a status the C FastDFS
//! 6.16.1 sender counts as done (or answers by sending the whole file), so a C storage's
//! replication never stalls on it; a malformed one is refused and logged. The requests are
//! sent raw on one connection, as a C peer sends them. The last test is the other direction:
//! an fdfs sender brings a diverged or lost copy back after a truncate.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::*;

/// The storage id our raw connections announce.
const PEER_ID: &str = "127.0.0.9";
/// Deadline for a change to reach every storage, and for a log line to appear.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A raw sync connection to storage 0, as a peer opens it.
struct Peer {
    raw: Raw,
}

impl Peer {
    #[track_caller]
    fn connect(cluster: &Cluster) -> Peer {
        let mut raw = Raw::connect(cluster.storage_addr(0));
        let r = raw.request(CMD_REPORT_SERVER_ID, &padded(PEER_ID, 16));
        assert_eq!(r.status, 0, "REPORT_SERVER_ID {PEER_ID} refused: {r:?}");
        Peer { raw }
    }

    /// Pushes one request and returns the status of its (empty) reply.
    #[track_caller]
    fn push(&mut self, cmd: u8, body: &[u8]) -> u8 {
        let r = self.raw.request(cmd, body);
        assert!(r.body.is_empty(), "reply to cmd {cmd} has a body: {r:?}");
        r.status
    }

    /// Like `push`, with `status` in the request header (a header-only SYNC_CREATE_FILE).
    #[track_caller]
    fn push_flagged(&mut self, cmd: u8, status: u8, body: &[u8]) -> u8 {
        self.raw
            .send(cmd, status, body)
            .unwrap_or_else(|e| panic!("send cmd {cmd}: {e}"));
        let r = self
            .raw
            .recv()
            .unwrap_or_else(|e| panic!("reply to cmd {cmd}: {e}"));
        assert_eq!(
            (r.cmd, r.body.len()),
            (CMD_RESP, 0),
            "reply to cmd {cmd}: {r:?}"
        );
        r.status
    }
}

/// "ENOENT" for 2, "OK" for 0.
fn errno_name(s: u8) -> String {
    if s == 0 {
        "OK".to_string()
    } else {
        format!("{:?}", nix::errno::Errno::from_raw(i32::from(s)))
    }
}

#[track_caller]
fn assert_status(what: &str, got: u8, want: u8) {
    assert_eq!(
        errno_name(got),
        errno_name(want),
        "{what}: status {got}, want {want}"
    );
}

fn now_ts() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as u32
}

/// Remote name (no group) of a group1 file ID.
fn remote_of(id: &str) -> String {
    id.strip_prefix(&format!("{GROUP}/"))
        .unwrap_or_else(|| panic!("file ID {id:?} is not in {GROUP}"))
        .to_string()
}

/// Where storage `i` keeps `remote` (store path 0).
fn disk_path(cluster: &Cluster, i: usize, remote: &str) -> PathBuf {
    let rel = remote.strip_prefix("M00/").expect("store path 0");
    cluster.store_path(i, 0).join("data").join(rel)
}

/// A well-formed name of a file nobody uploaded.
fn unknown_name(seed: &str) -> String {
    normal_remote_name(
        [127, 0, 0, 9],
        now_ts(),
        0x1234,
        seed.as_bytes(),
        (0, 0),
        "123.bin",
    )
}

/// Size of `remote` on storage 0's disk (panics when it is not there).
#[track_caller]
fn size_on_disk(cluster: &Cluster, remote: &str) -> u64 {
    let p = disk_path(cluster, 0, remote);
    fs::metadata(&p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .len()
}

/// Polls until storage `i`'s log has a line containing every one of `parts`.
#[track_caller]
fn wait_log_line(cluster: &Cluster, i: usize, parts: &[&str]) -> String {
    let log = cluster.base_path(i).join("logs/storaged.log");
    poll_until(
        &format!("a line with {parts:?} in {}", log.display()),
        TIMEOUT,
        || {
            let text = fs::read_to_string(&log).map_err(|e| e.to_string())?;
            text.lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .map(str::to_string)
                .ok_or_else(|| format!("log is:\n{text}"))
        },
    )
}

/// The bug this table fixes: a C sender retries a truncate answered anything but 0 or EEXIST
/// every 5 s for ever, so a truncate that cannot apply here must be answered EEXIST.
#[test]
fn truncates_that_cannot_apply_are_done_for_the_sender() {
    let cluster = Cluster::start();
    let data = random_bytes("sync_status/truncate", 100);
    let id = cluster.upload(&data, &["--appender", "--ext", "bin"]);
    let remote = remote_of(&id);
    let ts = now_ts();
    let mut peer = Peer::connect(&cluster);

    let st = peer.push(
        CMD_SYNC_TRUNCATE_FILE,
        &sync_truncate_body(GROUP, &remote, ts, 50, 20),
    );
    assert_status("truncate 50 -> 20 of a 100-byte copy", st, EEXIST);
    assert_eq!(
        size_on_disk(&cluster, &remote),
        100,
        "diverged copy left as it is"
    );
    wait_log_line(
        &cluster,
        0,
        &[
            "WARN",
            &format!("SYNC_TRUNCATE_FILE of {remote} from 127.0.0.1:"),
            "our size 100 is not the old size 50",
            "answered EEXIST",
        ],
    );

    let missing = unknown_name("sync_status/truncate/missing");
    let st = peer.push(
        CMD_SYNC_TRUNCATE_FILE,
        &sync_truncate_body(GROUP, &missing, ts, 50, 20),
    );
    assert_status("truncate of a file that is not here", st, EEXIST);
    assert!(!disk_path(&cluster, 0, &missing).exists());

    let st = peer.push(
        CMD_SYNC_TRUNCATE_FILE,
        &sync_truncate_body(GROUP, &remote, ts, 100, 40),
    );
    assert_status("truncate 100 -> 40", st, 0);
    assert_eq!(size_on_disk(&cluster, &remote), 40);
    cluster.wait_binlog_line(0, &format!("{ts} t {remote} 100 40"));
    let st = peer.push(
        CMD_SYNC_TRUNCATE_FILE,
        &sync_truncate_body(GROUP, &remote, ts, 100, 40),
    );
    assert_status("the same truncate again", st, EEXIST);
    assert_eq!(size_on_disk(&cluster, &remote), 40);
    let kept = fs::read(disk_path(&cluster, 0, &remote)).expect("read the truncated file");
    assert_same_bytes("truncated file", &data[..40], &kept);
}

/// Appends and modifies answer EEXIST when their bytes are here, and ENOENT when the copy lacks
/// what they build on: both C's receiver and ours do, and a C sender then sends the whole file.
#[test]
fn appends_and_modifies_at_wrong_offsets() {
    let cluster = Cluster::start();
    let mut model = random_bytes("sync_status/append", 100);
    let id = cluster.upload(&model, &["--appender", "--ext", "bin"]);
    let remote = remote_of(&id);
    let ts = now_ts();
    let mut peer = Peer::connect(&cluster);
    let more = random_bytes("sync_status/append/more", 10);
    let append = |offset: u64| sync_write_body(GROUP, &remote, ts, offset, &more);

    assert_status(
        "append at our end",
        peer.push(CMD_SYNC_APPEND_FILE, &append(100)),
        0,
    );
    model.extend_from_slice(&more);
    assert_status(
        "the same append again",
        peer.push(CMD_SYNC_APPEND_FILE, &append(100)),
        EEXIST,
    );
    assert_status(
        "append whose first half is here",
        peer.push(CMD_SYNC_APPEND_FILE, &append(105)),
        ENOENT,
    );
    assert_status(
        "append past our end",
        peer.push(CMD_SYNC_APPEND_FILE, &append(300)),
        ENOENT,
    );
    let missing = unknown_name("sync_status/append/missing");
    assert_status(
        "append to a file that is not here",
        peer.push(
            CMD_SYNC_APPEND_FILE,
            &sync_write_body(GROUP, &missing, ts, 0, &more),
        ),
        ENOENT,
    );

    assert_status(
        "modify inside the file",
        peer.push(
            CMD_SYNC_MODIFY_FILE,
            &sync_write_body(GROUP, &remote, ts, 50, &more),
        ),
        0,
    );
    model[50..60].copy_from_slice(&more);
    assert_status(
        "modify past our end",
        peer.push(
            CMD_SYNC_MODIFY_FILE,
            &sync_write_body(GROUP, &remote, ts, 500, &more),
        ),
        ENOENT,
    );
    assert_status(
        "modify of a file that is not here",
        peer.push(
            CMD_SYNC_MODIFY_FILE,
            &sync_write_body(GROUP, &missing, ts, 0, &more),
        ),
        ENOENT,
    );
    assert!(!disk_path(&cluster, 0, &missing).exists());
    let have = fs::read(disk_path(&cluster, 0, &remote)).expect("read the appender file");
    assert_same_bytes("appender file after the pushes", &model, &have);
}

/// Creates of a file that is here, deletes of one that is not, links and renames in every
/// state: each answered with a status its C sender counts as done.
#[test]
fn creates_deletes_links_and_renames() {
    let cluster = Cluster::start();
    let a = random_bytes("sync_status/a", 3_000);
    let remote_a = remote_of(&cluster.upload(&a, &[]));
    let ts = now_ts();
    let mut peer = Peer::connect(&cluster);

    let body = sync_copy_body(GROUP, &remote_a, ts, a.len() as u64, &a);
    assert_status(
        "create of a file that is here",
        peer.push(CMD_SYNC_CREATE_FILE, &body),
        EEXIST,
    );
    let header_only = sync_copy_body(GROUP, &remote_a, ts, a.len() as u64, &[]);
    assert_status(
        "header-only create",
        peer.push_flagged(CMD_SYNC_CREATE_FILE, EEXIST, &header_only),
        EEXIST,
    );
    let good = random_bytes("sync_status/crc", 2_000);
    let mut bad = good.clone();
    bad[7] ^= 0x40;
    let crc_name = normal_remote_name([127, 0, 0, 9], ts, 7, &good, (0, 0), "123.txt");
    for cmd in [CMD_SYNC_CREATE_FILE, CMD_SYNC_UPDATE_FILE] {
        let body = sync_copy_body(GROUP, &crc_name, ts, bad.len() as u64, &bad);
        assert_status(
            &format!("cmd {cmd} with content the name's CRC32 refutes"),
            peer.push(cmd, &body),
            EEXIST,
        );
        assert!(
            !disk_path(&cluster, 0, &crc_name).exists(),
            "refused content stored"
        );
    }

    let missing = unknown_name("sync_status/missing");
    assert_status(
        "delete of a file that is not here",
        peer.push(CMD_SYNC_DELETE_FILE, &sync_delete_body(GROUP, &missing, ts)),
        ENOENT,
    );

    let link = unknown_name("sync_status/link");
    assert_status(
        "link to a file that is not here",
        peer.push(
            CMD_SYNC_CREATE_LINK,
            &sync_pair_body(GROUP, &link, &missing, ts),
        ),
        ENOENT,
    );
    assert!(fs::symlink_metadata(disk_path(&cluster, 0, &link)).is_err());
    let to_a = sync_pair_body(GROUP, &link, &remote_a, ts);
    assert_status("link", peer.push(CMD_SYNC_CREATE_LINK, &to_a), 0);
    let meta = fs::symlink_metadata(disk_path(&cluster, 0, &link)).expect("the link");
    assert!(meta.file_type().is_symlink(), "{link} is not a symlink");
    let got = cluster
        .fdfs_on(0, &["download", &format!("{GROUP}/{link}"), "-"])
        .success()
        .stdout;
    assert_same_bytes("download through the link", &a, &got);
    cluster.wait_binlog_line(0, &format!("{ts} l {link} {remote_a}"));
    assert_status(
        "the same link again",
        peer.push(CMD_SYNC_CREATE_LINK, &to_a),
        0,
    );
    assert_status(
        "delete of the link",
        peer.push(CMD_SYNC_DELETE_FILE, &sync_delete_body(GROUP, &link, ts)),
        0,
    );
    assert!(fs::symlink_metadata(disk_path(&cluster, 0, &link)).is_err());
    assert!(
        disk_path(&cluster, 0, &remote_a).is_file(),
        "link target kept"
    );

    let b = random_bytes("sync_status/b", 1_000);
    let remote_b = remote_of(&cluster.upload(&b, &["--appender", "--ext", "bin"]));
    let renamed = normal_remote_name([127, 0, 0, 9], ts, 9, &b, (0, 0), "456.bin");
    let nowhere = unknown_name("sync_status/nowhere");
    assert_status(
        "rename when neither name is here",
        peer.push(
            CMD_SYNC_RENAME_FILE,
            &sync_pair_body(GROUP, &renamed, &nowhere, ts),
        ),
        ENOENT,
    );
    let rename = sync_pair_body(GROUP, &renamed, &remote_b, ts);
    assert_status("rename", peer.push(CMD_SYNC_RENAME_FILE, &rename), 0);
    assert!(!disk_path(&cluster, 0, &remote_b).exists());
    assert_status(
        "the same rename again",
        peer.push(CMD_SYNC_RENAME_FILE, &rename),
        EEXIST,
    );
    let have = fs::read(disk_path(&cluster, 0, &renamed)).expect("read the renamed file");
    assert_same_bytes("renamed file", &b, &have);
}

/// Requests that are not ours to apply (another group) are refused with EINVAL, which
/// closes the connection, as C's receiver does, and logged with the peer and command.
#[test]
fn malformed_sync_requests_are_refused_and_logged() {
    let cluster = Cluster::start();
    let data = random_bytes("sync_status/group", 100);
    let remote = remote_of(&cluster.upload(&data, &["--appender", "--ext", "bin"]));
    let mut peer = Peer::connect(&cluster);
    let st = peer.push(
        CMD_SYNC_TRUNCATE_FILE,
        &sync_truncate_body("group2", &remote, now_ts(), 100, 10),
    );
    assert_status("truncate of another group's file", st, EINVAL);
    assert!(
        matches!(peer.raw.ending(), Ending::Closed(_)),
        "EINVAL closes the connection"
    );
    assert_eq!(size_on_disk(&cluster, &remote), 100);
    let line = wait_log_line(
        &cluster,
        0,
        &[
            "WARN",
            &format!("SYNC_TRUNCATE_FILE of {remote} from 127.0.0.1:"),
            "group2",
            "answered EINVAL",
        ],
    );
    assert!(line.contains(PEER_ID), "peer id in {line:?}");
}

/// An fdfs sender whose truncate meets a copy of another size, or no copy at all, gets
/// EEXIST (as from a C receiver), asks the size and sends the whole file, while the receiver
/// fetches the file from the sender: the copy comes back either way.
#[test]
fn truncate_brings_a_diverged_or_lost_copy_back() {
    let mut cluster = Cluster::builder().storages(2).start();
    let model = random_bytes("sync_status/diverged", 1_000);
    let id = cluster.upload(&model, &["--appender", "--ext", "bin"]);
    cluster.wait_content_everywhere(&id, &model, TIMEOUT, "appender upload");
    let src = cluster.source_storage(&id);
    let other = 1 - src;
    let copy = disk_path(&cluster, other, &remote_of(&id));

    let mut diverged = model.clone();
    diverged.extend_from_slice(b"garbage");
    fs::write(&copy, &diverged).unwrap_or_else(|e| panic!("write {}: {e}", copy.display()));
    cluster.fdfs(&["truncate", &id, "500"]).success();
    cluster.wait_content_everywhere(&id, &model[..500], TIMEOUT, "truncate over a diverged copy");
    // Two mechanisms race to repair it, and either may win: the sender, told EEXIST, checks
    // the copy's size and sends the whole file (what a C receiver needs, covered against one
    // in tests/it/interop.rs), and the receiver fetches the file from the sender (what a C
    // sender needs, likewise).
    let logs = [src, other].map(|i| cluster.base_path(i).join("logs/storaged.log"));
    poll_until("a log line of the repair", TIMEOUT, || {
        let sender = fs::read_to_string(&logs[0]).map_err(|e| e.to_string())?;
        let receiver = fs::read_to_string(&logs[1]).map_err(|e| e.to_string())?;
        let by_sender = sender.lines().any(|l| {
            l.contains("its size is 1007, not the truncate's 500: sending the whole file")
        });
        let by_receiver = receiver
            .lines()
            .any(|l| l.contains("diverged copy replaced by the 500 bytes of"));
        if by_sender || by_receiver {
            Ok(())
        } else {
            Err(format!("sender log:\n{sender}\nreceiver log:\n{receiver}"))
        }
    });

    fs::remove_file(&copy).unwrap_or_else(|e| panic!("remove {}: {e}", copy.display()));
    cluster.fdfs(&["truncate", &id, "200"]).success();
    cluster.wait_content_everywhere(&id, &model[..200], TIMEOUT, "truncate over a lost copy");
    cluster.assert_running();
}
