//! `fdfs monitor`: what it shows of a running cluster (text and JSON), how its counters
//! follow uploads and its statuses follow a stopped storage, and `monitor delete`.

use crate::util::*;
use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

/// How long heartbeats (every second in the tests) may take to bring news to the tracker.
const NEWS_TIMEOUT: Duration = Duration::from_secs(15);

/// `fdfs monitor --json`, parsed.
#[track_caller]
fn monitor_json(cluster: &Cluster) -> Value {
    let run = cluster.fdfs(&["monitor", "--json"]).success();
    serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("monitor --json printed no JSON: {e}\n{}", run.describe()))
}

/// The group named `name` in a monitor JSON object.
fn group<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["groups"].as_array()?.iter().find(|g| g["name"] == name)
}

/// Storage `id` of group1 in a monitor JSON object.
fn storage<'a>(v: &'a Value, id: &str) -> Option<&'a Value> {
    group(v, GROUP)?["storages"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == id)
}

#[test]
fn json_shows_tracker_group_and_storages() {
    let cluster = Cluster::builder().storages(2).start();
    let v = monitor_json(&cluster);
    let trackers = v["trackers"].as_array().expect("trackers array");
    assert_eq!(trackers.len(), 1, "{v:#}");
    let t = &trackers[0];
    assert_eq!(t["addr"], cluster.tracker_addr().to_string(), "{v:#}");
    assert_eq!(t["reachable"], true, "{v:#}");
    assert_eq!(t["leader"], true, "a lone tracker leads itself\n{v:#}");
    assert_eq!(t["leader_addr"], t["addr"], "{v:#}");
    let g = group(&v, GROUP).unwrap_or_else(|| panic!("no group1\n{v:#}"));
    assert_eq!(g["storage_count"], 2, "{v:#}");
    assert_eq!(g["active_count"], 2, "{v:#}");
    assert!(g["total_mb"].as_u64().is_some_and(|mb| mb > 0), "{v:#}");
    assert_eq!(g["storages"].as_array().map(Vec::len), Some(2), "{v:#}");
    for i in 0..2 {
        let ip = cluster.storage_ip(i);
        let s = storage(&v, ip).unwrap_or_else(|| panic!("no storage {ip}\n{v:#}"));
        assert_eq!(s["status"], "ACTIVE", "{v:#}");
        assert_eq!(s["status_code"], 7, "{v:#}");
        assert_eq!(s["ip"], ip, "{v:#}");
        assert_eq!(s["port"], cluster.storage_addr(i).port(), "{v:#}");
        assert!(s["counters"]["success_upload_count"].is_u64(), "{v:#}");
        let peer = cluster.storage_ip(1 - i);
        assert!(s["sync_lag"][peer].is_u64(), "lag towards the peer\n{v:#}");
    }
}

#[test]
fn upload_counters_follow_uploads() {
    let cluster = Cluster::start();
    let sizes = [1_000usize, 20_000, 333];
    for (i, len) in sizes.iter().enumerate() {
        cluster.upload(&random_bytes(&format!("monitor-counters-{i}"), *len), &[]);
    }
    let ip = cluster.storage_ip(0).to_string();
    let want = (sizes.len() as u64, sizes.iter().sum::<usize>() as u64);
    poll_until("upload counters in monitor --json", NEWS_TIMEOUT, || {
        let v = monitor_json(&cluster);
        let c = &storage(&v, &ip).ok_or(format!("no storage {ip}: {v}"))?["counters"];
        let got = (
            c["success_upload_count"].as_u64().unwrap_or(0),
            c["success_upload_bytes"].as_u64().unwrap_or(0),
        );
        let totals = (
            c["total_upload_count"].as_u64().unwrap_or(0),
            c["total_upload_bytes"].as_u64().unwrap_or(0),
        );
        if got == want && totals == want {
            Ok(())
        } else {
            Err(format!("want {want:?}, counters say {c}"))
        }
    });
}

#[test]
fn text_lists_every_storage() {
    let cluster = Cluster::builder().storages(2).start();
    let run = cluster.fdfs(&["monitor"]).success();
    let text = run.stdout_str();
    let tracker = cluster.tracker_addr().to_string();
    assert!(
        text.contains(&format!("{tracker}  reachable")),
        "{}",
        run.describe()
    );
    assert!(text.contains("Group 1: group1"), "{}", run.describe());
    for i in 0..2 {
        let addr = cluster.storage_addr(i).to_string();
        assert!(
            text.contains(&format!("ip:port                  = {addr}")),
            "storage {addr} missing\n{}",
            run.describe()
        );
    }
    assert_eq!(
        text.matches("status                   = ACTIVE").count(),
        2,
        "{}",
        run.describe()
    );
}

#[test]
fn stopped_storage_goes_offline_and_can_be_deleted() {
    let mut cluster = Cluster::builder().storages(2).start();
    let id = cluster.storage_ip(1).to_string();
    // A running server cannot be deleted.
    cluster
        .fdfs(&["monitor", "delete", GROUP, &id])
        .fails_with("EBUSY");
    assert!(cluster.stop_daemon(2), "storage must exit cleanly");
    poll_until("stopped storage OFFLINE", NEWS_TIMEOUT, || {
        let v = monitor_json(&cluster);
        match storage(&v, &id) {
            Some(s) if s["status"] == "OFFLINE" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let run = cluster.fdfs(&["monitor", "delete", GROUP, &id]).success();
    assert!(run.stderr_str().contains("deleted"), "{}", run.describe());
    let v = monitor_json(&cluster);
    match storage(&v, &id) {
        None => {}
        Some(s) => assert_eq!(s["status"], "DELETED", "{v:#}"),
    }
    // The other server still runs: the group stays.
    cluster
        .fdfs(&["monitor", "delete", GROUP])
        .fails_with("EBUSY");
    // Unknown server and unknown group: not found.
    let run = cluster.fdfs(&["monitor", "delete", GROUP, "127.0.0.99"]);
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(3),
        "{}",
        run.describe()
    );
    let run = cluster.fdfs(&["monitor", "delete", "nosuchgroup"]);
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(3),
        "{}",
        run.describe()
    );
}

#[test]
fn dead_tracker_only_exits_unreachable() {
    let cluster = Cluster::start();
    // A port nobody listens on any more.
    let dead = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a probe port")
        .to_string();
    for json in [false, true] {
        let mut args = vec!["monitor", "--tracker", &dead];
        if json {
            args.push("--json");
        }
        let run = cluster.run(Path::new(FDFS), &args, None, CLI_TIMEOUT);
        assert_eq!(
            run.status.and_then(|s| s.code()),
            Some(4),
            "{}",
            run.describe()
        );
        assert!(run.stderr_str().contains("fdfs: "), "{}", run.describe());
    }
    // With the live tracker listed after the dead one the cluster is still shown.
    let live = cluster.tracker_addr().to_string();
    let run = cluster.run(
        Path::new(FDFS),
        &["monitor", "--json", "--tracker", &dead, "--tracker", &live],
        None,
        CLI_TIMEOUT,
    );
    let run = run.success();
    let v: Value = serde_json::from_slice(&run.stdout).expect("JSON");
    assert_eq!(v["trackers"][0]["reachable"], false, "{v:#}");
    assert_eq!(v["trackers"][1]["reachable"], true, "{v:#}");
    assert_eq!(v["source"], live, "{v:#}");
    assert!(storage(&v, cluster.storage_ip(0)).is_some(), "{v:#}");
}
