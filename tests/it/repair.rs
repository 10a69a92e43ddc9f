//! Replicas that heal themselves: damage done behind a storage's back (a file deleted, a byte
//! flipped, a file truncated, a whole `data/XX` directory removed, a binlog record made
//! unreadable, a store path emptied) is found and repaired from the peer by one `fdfs repair`
//! pass (or by disk recovery at start), and a file deleted through a client stays deleted
//! everywhere.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::util::*;

const CONVERGE: Duration = Duration::from_secs(60);

fn remote(id: &str) -> &str {
    id.strip_prefix("group1/").expect("a group1 file ID")
}

/// Where storage `i` keeps the file `id`.
fn local_path(c: &Cluster, i: usize, id: &str) -> PathBuf {
    let r = remote(id);
    let p = usize::from_str_radix(&r[1..3], 16).expect("Mxx");
    c.store_path(i, p).join("data").join(&r[4..])
}

/// Polls until storage `i` holds exactly `want` (remote name -> SHA-1).
fn wait_holds(c: &Cluster, i: usize, want: &BTreeMap<String, String>, what: &str) {
    poll_until(what, CONVERGE, || {
        let got = c.storage_files(i);
        if &got == want {
            Ok(())
        } else {
            let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
            let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
            let differ: Vec<_> = want
                .iter()
                .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                .map(|(k, _)| k)
                .collect();
            Err(format!(
                "storage {i}: missing {missing:?}, extra {extra:?}, different {differ:?}"
            ))
        }
    });
}

/// `fdfs monitor --json`'s repair figures of storage `i`.
fn repair_figures(c: &Cluster, i: usize) -> serde_json::Value {
    c.monitor_of(i)["repair"].clone()
}

/// Overwrite the binlog line of storage `i` that names `name` with a line that does not
/// parse (same length, so later records keep their offsets).
fn spoil_binlog_line(c: &Cluster, i: usize, name: &str) {
    let path = c.base_path(i).join("data/sync/binlog.000");
    let text = fs::read_to_string(&path).expect("binlog");
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.contains(name) {
            let junk = "#".repeat(line.len() - 1);
            let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.seek(SeekFrom::Start(offset as u64)).unwrap();
            f.write_all(junk.as_bytes()).unwrap();
            return;
        }
        offset += line.len();
    }
    panic!("no line of {} names {name}:\n{text}", path.display());
}

#[test]
fn one_repair_pass_heals_every_kind_of_damage() {
    let mut c = Cluster::builder()
        .storages(2)
        .store_paths(2)
        .tracker_conf("store_server", "1")
        .storage_conf("repair_min_age", "0")
        .start();
    let mut ids = Vec::new();
    for k in 0..40 {
        let data = random_bytes(&format!("repair-{k}"), 1000 + k * 797);
        ids.push(c.upload(&data, &["--ext", "bin"]));
    }
    // Damage goes to files of store path 0, and the whole top directory of store path 1.
    let on = |p: &str| -> Vec<String> {
        ids.iter()
            .filter(|id| remote(id).starts_with(p))
            .cloned()
            .collect()
    };
    let (p0, p1) = (on("M00/"), on("M01/"));
    assert!(p0.len() >= 6 && !p1.is_empty(), "{ids:?}");
    let with_meta = p0[3].clone();
    c.fdfs(&["meta", "set", &with_meta, "width=1024", "height=768"])
        .success();
    // An appender file, grown after its upload.
    let app = c.upload(&random_bytes("repair-app", 3000), &["--appender"]);
    let more = c.write_file("more", &random_bytes("repair-more", 2000));
    c.fdfs(&["append", &app, more.to_str().unwrap()]).success();
    // Everything on both storages.
    let all = c.storage_files(0);
    wait_holds(&c, 1, &all, "the peer to hold every file");

    // A file deleted through a client, then put back on the peer behind its back (a restored
    // backup): it must end deleted everywhere.
    let gone = p0[5].clone();
    let saved = fs::read(local_path(&c, 1, &gone)).unwrap();
    c.fdfs(&["delete", &gone]).success();
    poll_until(
        "the delete to reach the peer",
        CONVERGE,
        || match local_path(&c, 1, &gone).exists() {
            false => Ok(()),
            true => Err("still there".into()),
        },
    );
    fs::write(local_path(&c, 1, &gone), &saved).unwrap();

    // A file the peer never gets: its binlog record on the source is spoiled while the
    // peer is down.
    assert!(c.stop_storage(1), "the peer stops cleanly");
    let unsent = c.upload(&random_bytes("repair-unsent", 5555), &["--ext", "bin"]);
    spoil_binlog_line(&c, 0, remote(&unsent));
    c.respawn_storage(1);

    // Damage on the peer, behind its back.
    fs::remove_file(local_path(&c, 1, &p0[0])).unwrap();
    let flip = local_path(&c, 1, &p0[1]);
    let mut b = fs::read(&flip).unwrap();
    b[100] ^= 0x55;
    fs::write(&flip, &b).unwrap();
    let cut = local_path(&c, 1, &p0[2]);
    let len = fs::metadata(&cut).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    fs::remove_file(local_path(&c, 1, &with_meta).with_file_name(format!(
        "{}-m",
        local_path(&c, 1, &with_meta).file_name().unwrap().to_string_lossy()
    )))
    .unwrap();
    let top = local_path(&c, 1, &p1[0])
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    fs::remove_dir_all(&top).unwrap();
    // The appender file cut short on its source, where only the scrub can tell (from the
    // sizes its binlog lines give; anti-entropy takes the source's appender files as right).
    fs::OpenOptions::new()
        .write(true)
        .open(local_path(&c, 0, &app))
        .unwrap()
        .set_len(1000)
        .unwrap();
    // And on the source: a flipped byte there too, in another file.
    let flip0 = local_path(&c, 0, &p0[4]);
    let mut b = fs::read(&flip0).unwrap();
    b[10] ^= 0xff;
    fs::write(&flip0, &b).unwrap();

    c.wait_storage_status(1, 7, CONVERGE);
    let run = c.fdfs(&["repair", "group1", "--timeout", "120"]).success();
    let out = run.stdout_str();
    assert!(out.contains("repaired"), "{}", run.describe());

    // Both hold the same files, byte-identical, and every acknowledged file is intact.
    let want = {
        let mut w = all.clone();
        w.remove(remote(&gone));
        w.insert(
            remote(&unsent).to_string(),
            sha1_hex(&random_bytes("repair-unsent", 5555)),
        );
        w
    };
    wait_holds(&c, 0, &want, "the source to be whole");
    wait_holds(&c, 1, &want, "the peer to be whole");
    for (k, id) in ids.iter().enumerate() {
        if *id == gone {
            continue;
        }
        let data = random_bytes(&format!("repair-{k}"), 1000 + k * 797);
        for i in 0..2 {
            let got = c.fdfs_on(i, &["download", id, "-"]).success().stdout;
            assert_same_bytes(&format!("{id} from storage {i}"), &data, &got);
        }
    }
    // (The metadata file, removed on the peer, is among the files compared above.)
    assert!(want.contains_key(&format!("{}-m", remote(&with_meta))));
    for i in 0..2 {
        let r = repair_figures(&c, i);
        assert_eq!(r["unrepairable"], 0, "storage {i}: {r}");
        assert!(r["passes"].as_u64() >= Some(1), "storage {i}: {r}");
    }
    let peer = repair_figures(&c, 1);
    assert!(peer["repaired"].as_u64() >= Some(5), "{peer}");
    // The scrub found the flipped byte and the cut file here, and the flipped byte and the
    // cut appender file (its size against its binlog lines) on the source.
    assert!(peer["corrupt"].as_u64() >= Some(2), "{peer}");
    let source = repair_figures(&c, 0);
    assert!(source["corrupt"].as_u64() >= Some(2), "{source}");
    assert!(repair_figures(&c, 0)["deletes_sent"].as_u64() >= Some(1));
    assert!(repair_figures(&c, 0)["bad_binlog_records"].as_u64() >= Some(1));
    c.assert_running();
}

#[test]
fn an_emptied_store_path_is_refilled_from_the_peer() {
    let mut c = Cluster::builder()
        .storages(2)
        .store_paths(2)
        .tracker_conf("store_server", "1")
        .start();
    let mut ids = Vec::new();
    for k in 0..30 {
        let data = random_bytes(&format!("recover-{k}"), 500 + k * 311);
        // The storage takes its store paths in turn.
        ids.push(c.upload(&data, &[]));
    }
    let all = c.storage_files(0);
    assert!(all.keys().any(|k| k.starts_with("M01/")), "{all:?}");
    wait_holds(&c, 1, &all, "the peer to hold every file");

    // A replaced disk: store path 1 of the peer comes back empty, while the other storage is
    // down, so the refill has to wait for it.
    assert!(c.stop_storage(1), "the peer stops cleanly");
    assert!(c.stop_storage(0), "the source stops cleanly");
    let p1 = c.store_path(1, 1).to_path_buf();
    fs::remove_dir_all(&p1).unwrap();
    fs::create_dir_all(&p1).unwrap();
    // And the source's binlog is gone (trimmed, or lost): the refill does not need it.
    let binlog = c.base_path(0).join("data/sync/binlog.000");
    fs::OpenOptions::new()
        .write(true)
        .open(&binlog)
        .unwrap()
        .set_len(0)
        .unwrap();
    c.respawn_storage(1);
    // (Not wait_storage_status: it insists that every daemon runs.)
    poll_until("the peer to be ACTIVE again", CONVERGE, || {
        match c.storage_status(1) {
            Some(7) => Ok(()),
            s => Err(format!("status {s:?}")),
        }
    });
    poll_until("the peer to say it refills a path", CONVERGE, || {
        let r = repair_figures(&c, 1);
        match r["recovering_paths"].as_u64() {
            Some(1) => Ok(()),
            _ => Err(format!("{r}")),
        }
    });
    // Meanwhile it takes uploads, on its other path only.
    let mut all = all;
    for k in 0..6 {
        let data = random_bytes(&format!("during-{k}"), 900 + k);
        let id = c.upload(&data, &[]);
        assert!(
            remote(&id).starts_with("M00/"),
            "{id} went to the path being refilled"
        );
        all.insert(remote(&id).to_string(), sha1_hex(&data));
    }
    c.respawn_storage(0);
    // A download asked of the peer is served as soon as the source is back, whether or not
    // the file was copied yet (one not copied yet is copied first).
    let on_p1 = ids
        .iter()
        .position(|id| remote(id).starts_with("M01/"))
        .unwrap();
    let got = poll_until("a download from the path being refilled", CONVERGE, || {
        let run = c.fdfs_on(1, &["download", &ids[on_p1], "-"]);
        match run.status.is_some_and(|s| s.success()) {
            true => Ok(run.stdout),
            false => Err(run.describe()),
        }
    });
    let want = random_bytes(&format!("recover-{on_p1}"), 500 + on_p1 * 311);
    assert_same_bytes("a download while the path refills", &want, &got);
    poll_until("the peer to refill its store path", CONVERGE, || {
        let r = repair_figures(&c, 1);
        match r["recovering_paths"].as_u64() {
            Some(0) => Ok(()),
            _ => Err(format!("{r}")),
        }
    });
    wait_holds(&c, 1, &all, "the peer to hold every file again");
    for (k, id) in ids.iter().enumerate() {
        let data = random_bytes(&format!("recover-{k}"), 500 + k * 311);
        let got = c.fdfs_on(1, &["download", id, "-"]).success().stdout;
        assert_same_bytes(&format!("{id} from the refilled peer"), &data, &got);
    }
    c.assert_serves("after-recovery");
}

/// `fdfs repair` on its own: a one-storage group (nothing to compare with, the scrub still
/// runs), `--json`, `--no-wait`, and the exit codes for an unknown group or storage.
#[test]
fn the_repair_tool_reports_and_fails_clearly() {
    let c = Cluster::start();
    let data = random_bytes("repair-tool", 4321);
    let id = c.upload(&data, &[]);
    let run = c.fdfs(&["repair", "group1", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(run.stdout_str().trim())
        .unwrap_or_else(|e| panic!("one JSON object per storage: {e}\n{}", run.describe()));
    assert!(v["scrubbed_files"].as_u64() >= Some(1), "{v}");
    assert_eq!(v["unrepairable"], 0, "{v}");
    assert_eq!(v["storage"], c.storage_ip(0), "{v}");
    let run = c
        .fdfs(&["repair", "group1", "--no-wait", "--quick"])
        .success();
    assert!(
        run.stdout_str().contains("repair pass started"),
        "{}",
        run.describe()
    );
    let text = c
        .fdfs(&["repair", "group1", c.storage_ip(0)])
        .success()
        .stdout_str();
    assert!(
        text.contains("files scrubbed") && text.contains("0 unrepairable"),
        "{text}"
    );
    let run = c.fdfs(&["repair", "g9"]);
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(3),
        "{}",
        run.describe()
    );
    let run = c.fdfs(&["repair", "group1", "10.9.9.9"]);
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(3),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr_str().contains("no storage 10.9.9.9"),
        "{}",
        run.describe()
    );
    assert_same_bytes("the file after the passes", &data, &c.download(&id));
}
