//! Tracker clusters (PROTOCOL.md §10, §7.2, §4.8): several trackers elect one leader and elect
//! another when it dies while clients keep working through the survivors; a restarted tracker
//! comes back with the full state; a group added online takes uploads (round robin) or wins
//! them by free space (store_lookup=2); a storage known by a storage id keeps its files
//! reachable after moving to another IP.
//!
//! Every step is checked with `fdfs monitor --json` asked of each running tracker alone
//! ([`Multi::wait_state`]): every storage present in its group with the right status, ip and
//! port.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::util::*;

/// LIST_STORAGE status ACTIVE (PROTOCOL.md §8).
const ACTIVE: u8 = 7;

/// Uploads `n` files named by `seed` through every tracker and checks each downloads back.
/// Returns (file ID, content) pairs.
#[track_caller]
fn upload_checked(m: &Multi, seed: &str, n: usize, extra: &[&str]) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|k| {
            let data = random_bytes(&format!("{seed}-{k}"), 5_000 + 997 * k);
            let id = m.upload(&data, extra);
            assert_same_bytes(&format!("download of {id}"), &data, &m.download(&id));
            (id, data)
        })
        .collect()
}

/// Every file still downloads byte-identical through the trackers.
#[track_caller]
fn assert_all_download(m: &Multi, files: &[(String, Vec<u8>)]) {
    for (id, data) in files {
        assert_same_bytes(&format!("download of {id}"), data, &m.download(id));
    }
}

/// Number of file IDs per group name.
fn per_group(ids: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for id in ids {
        let group = id.split('/').next().unwrap_or_default().to_string();
        *out.entry(group).or_insert(0) += 1;
    }
    out
}

/// The group named `name` in a monitor JSON object.
fn group<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["groups"].as_array()?.iter().find(|g| g["name"] == name)
}

#[test]
fn leader_failover_keeps_clients_working() {
    let mut m = Multi::builder().trackers(2).storages(GROUP, 2).start();
    let leader = m.wait_leader(SETTLE_TIMEOUT);
    let follower = 1 - leader;
    m.wait_state(SETTLE_TIMEOUT);

    // The workload lists the leader first, so every op after its death must fail over.
    const OPS: usize = 60;
    let order = [leader, follower];
    let done = AtomicUsize::new(0);
    let failures: Vec<String> = thread::scope(|s| {
        let worker = s.spawn(|| {
            let mut failures = Vec::new();
            for k in 0..OPS / 3 {
                let data = random_bytes(&format!("failover-{k}"), 3_000 + 1_013 * k);
                let path = m.work_dir().join(format!("failover-{k}"));
                std::fs::write(&path, &data).expect("write upload file");
                let path = path.to_str().expect("UTF-8 temp path").to_string();
                let up = m.fdfs_via(&order, &["upload", &path]);
                done.fetch_add(1, Ordering::SeqCst);
                if !up.status.is_some_and(|s| s.success()) {
                    failures.push(format!("op {k} upload:\n{}", up.describe()));
                    continue;
                }
                let id = up.stdout_str();
                let down = m.fdfs_via(&order, &["download", &id, "-"]);
                done.fetch_add(1, Ordering::SeqCst);
                if !down.status.is_some_and(|s| s.success()) || down.stdout != data {
                    failures.push(format!(
                        "op {k} download ({} bytes back of {}):\n{}",
                        down.stdout.len(),
                        data.len(),
                        down.describe()
                    ));
                }
                let del = m.fdfs_via(&order, &["delete", &id]);
                done.fetch_add(1, Ordering::SeqCst);
                if !del.status.is_some_and(|s| s.success()) {
                    failures.push(format!("op {k} delete:\n{}", del.describe()));
                }
            }
            failures
        });
        // Halfway through, the leader goes away under the running workload.
        while done.load(Ordering::SeqCst) < OPS / 2 && !worker.is_finished() {
            thread::sleep(Duration::from_millis(10));
        }
        m.signal_tracker(leader, Signal::SIGTERM);
        worker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    assert!(
        m.stop_tracker(leader),
        "leader tracker must exit cleanly on SIGTERM"
    );
    assert!(
        failures.is_empty(),
        "{} of {OPS} ops failed while the leader stopped:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The survivor leads and still holds both storages.
    assert_eq!(
        m.wait_leader(SETTLE_TIMEOUT),
        follower,
        "the surviving tracker must become leader"
    );
    m.wait_state(SETTLE_TIMEOUT);
    let files = upload_checked(&m, "failover-after", 3, &[]);

    // The old leader comes back on its port with its data: one leader, full state.
    m.start_tracker(leader);
    m.wait_leader(SETTLE_TIMEOUT);
    m.wait_state(SETTLE_TIMEOUT);
    let list = list_storage(m.tracker_addr(leader), GROUP)
        .expect("LIST_STORAGE of the restarted tracker")
        .expect("LIST_STORAGE status 0");
    let mut want: Vec<(String, u8)> = (0..2)
        .map(|i| (m.storage_id(i).to_string(), ACTIVE))
        .collect();
    let mut list = list;
    list.sort();
    want.sort();
    assert_eq!(list, want, "restarted tracker's LIST_STORAGE");
    // And it serves clients alone.
    let data = random_bytes("failover-restarted", 12_345);
    let id = m.upload_via(&[leader], &data, &[]);
    let back = m
        .fdfs_via(&[leader], &["download", &id, "-"])
        .success()
        .stdout;
    assert_same_bytes(
        &format!("download of {id} via the restarted tracker"),
        &data,
        &back,
    );
    assert_all_download(&m, &files);
    m.wait_state(SETTLE_TIMEOUT);
}

#[test]
fn three_trackers_one_down() {
    let mut m = Multi::builder().trackers(3).storages(GROUP, 2).start();
    let leader = m.wait_leader(SETTLE_TIMEOUT);
    m.wait_state(SETTLE_TIMEOUT);
    let before = upload_checked(&m, "three-before", 3, &[]);

    assert!(
        m.stop_tracker(leader),
        "tracker must exit cleanly on SIGTERM"
    );
    // Two of three known trackers are a majority: they elect one of themselves.
    let next = m.wait_leader(SETTLE_TIMEOUT);
    assert_ne!(next, leader);
    m.wait_state(SETTLE_TIMEOUT);

    // Clients list every tracker (the dead one included) and keep working.
    let after = upload_checked(&m, "three-after", 5, &[]);
    assert_all_download(&m, &before);
    assert_all_download(&m, &after);
    for (id, _) in &after {
        m.fdfs(&["delete", id]).success();
    }
    assert_eq!(m.wait_leader(SETTLE_TIMEOUT), next, "the leader stays");
    m.wait_state(SETTLE_TIMEOUT);
}

#[test]
fn new_group_online_round_robin() {
    let mut m = Multi::builder()
        .trackers(2)
        .tracker_conf("store_lookup", "0")
        .storages("group1", 1)
        .start();
    let first = upload_checked(&m, "rr-first", 3, &[]);
    assert!(
        first.iter().all(|(id, _)| id.starts_with("group1/")),
        "only group1 exists: {first:?}"
    );

    m.add_storage(StorageSpec::new("group2"));
    // Every tracker shows both groups, each storage ACTIVE.
    m.wait_state(SETTLE_TIMEOUT);

    let files = upload_checked(&m, "rr-both", 20, &[]);
    let ids: Vec<String> = files.iter().map(|(id, _)| id.clone()).collect();
    let counts = per_group(&ids);
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["group1", "group2"],
        "uploads go to the two groups only: {ids:?}"
    );
    assert!(
        counts.values().all(|&n| n >= 5),
        "round robin over groups spreads 20 uploads: {counts:?}\n{ids:?}"
    );
    // Each file names the storage of its group as its source (no storage ids here).
    for id in &ids {
        let group = id.split('/').next().unwrap_or_default();
        let i = (0..2)
            .find(|&i| m.storage_group(i) == group)
            .unwrap_or_else(|| panic!("no storage of {group}"));
        let std::net::IpAddr::V4(ip) = m.storage_addr(i).ip() else {
            panic!("storages bind IPv4");
        };
        assert_eq!(file_id_source(id), Some(ip.octets()), "source of {id}");
    }
    assert_all_download(&m, &first);
    m.wait_state(SETTLE_TIMEOUT);
}

#[test]
fn store_lookup_2_prefers_more_free_space() {
    let mut m = Multi::builder()
        .trackers(1)
        .tracker_conf("store_lookup", "2")
        .storage(StorageSpec::new("group1"))
        .storage(StorageSpec::new("group2").store_paths(2))
        .start();
    // Both report their disk usage; group2 (2 store paths on the same disk) has about twice
    // the free space of group1.
    poll_until("group2 reporting more free space", SETTLE_TIMEOUT, || {
        let v = m.try_monitor_json(&[0])?;
        let free = |name: &str| group(&v, name).and_then(|g| g["free_mb"].as_u64());
        match (free("group1"), free("group2")) {
            (Some(g1), Some(g2)) if g1 > 0 && g2 > g1 => Ok(()),
            other => Err(format!("free_mb (group1, group2) = {other:?}\n{v:#}")),
        }
    });
    m.wait_state(SETTLE_TIMEOUT);

    let files = upload_checked(&m, "lookup2", 10, &[]);
    let ids: Vec<String> = files.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        per_group(&ids),
        BTreeMap::from([("group2".to_string(), 10)]),
        "store_lookup=2 sends every upload to the group with most free space: {ids:?}"
    );
    // Uploads that name a group still go there.
    let pinned = upload_checked(&m, "lookup2-pinned", 1, &["--group", "group1"]);
    assert!(pinned[0].0.starts_with("group1/"), "{pinned:?}");
    m.wait_state(SETTLE_TIMEOUT);
}

#[test]
fn storage_keeps_its_id_across_ip_change() {
    const ID1: &str = "100001";
    const ID2: &str = "100002";
    const NEW_IP: &str = "127.0.0.12";
    let mut m = Multi::builder()
        .trackers(2)
        .storage_ids()
        .storage(StorageSpec::new("group1").server_id(ID1))
        .storage(StorageSpec::new("group2").server_id(ID2))
        .start();
    // wait_state (in start) has checked the monitor shows the storages by id.
    let mut files = upload_checked(&m, "ids-g1", 4, &["--group", "group1"]);
    files.extend(upload_checked(&m, "ids-g2", 2, &["--group", "group2"]));
    for (id, data) in &files {
        let want: u32 = if id.starts_with("group1/") {
            100_001
        } else {
            100_002
        };
        assert_eq!(
            file_id_server_id(id),
            Some(want),
            "the file name of {id} must carry the storage id"
        );
        let run = m.fdfs(&["info", "--json", id]).success();
        let info: Value = serde_json::from_slice(&run.stdout)
            .unwrap_or_else(|e| panic!("info --json: {e}\n{}", run.describe()));
        assert_eq!(info["size"], data.len(), "{info:#}");
    }

    // Storage 1 goes away and comes back under another IP with the same id, port and data.
    assert!(m.stop_storage(0), "storage must exit cleanly on SIGTERM");
    m.wait_state(SETTLE_TIMEOUT);
    m.start_storage_at(0, NEW_IP);
    assert_eq!(m.storage_ip(0), NEW_IP);
    // wait_state expects id 100001 at the new ip (and the old port) on every tracker.
    let views = m.wait_state(SETTLE_TIMEOUT);
    for v in &views {
        let s = &group(v, "group1").expect("group1")["storages"][0];
        assert_eq!(s["id"], ID1, "{v:#}");
        assert_eq!(s["ip"], NEW_IP, "{v:#}");
    }

    // Every old file ID is routed by id to the storage's new address.
    assert_all_download(&m, &files);
    let fresh = upload_checked(&m, "ids-after", 2, &["--group", "group1"]);
    for (id, _) in &fresh {
        assert_eq!(file_id_server_id(id), Some(100_001), "new file {id}");
    }
    m.wait_state(SETTLE_TIMEOUT);
}
