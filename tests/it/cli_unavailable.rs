//! "Not found" (exit 3) against "unavailable" (exit 4): a tracker answers ENOENT both for a
//! group it does not know and for a group without an ACTIVE storage, and a storage answers
//! ENOENT both for a file without metadata and for no file; the client tells them apart.

use std::time::Duration;

use crate::util::{Cluster, GROUP, assert_exit, poll_until, random_bytes};

/// Exit codes of `fdfs` (fdfs(1)).
const EXIT_NOT_FOUND: i32 = 3;
const EXIT_UNAVAILABLE: i32 = 4;
/// Status the tracker gives a storage that is gone (FDFS_STORAGE_STATUS_OFFLINE).
const OFFLINE: u8 = 5;

#[test]
fn storage_down_is_unavailable() {
    let mut cluster = Cluster::start();
    let data = random_bytes("storage_down_is_unavailable", 10_000);
    let id = cluster.upload(&data, &["--meta", "k=v"]);
    let file = cluster.write_file("more", &data);
    let file = file.to_str().expect("UTF-8 temp path");
    let storage = cluster.storage_addr(0).to_string();
    let tracker = cluster.tracker_addr().to_string();

    assert!(cluster.stop_storage(0), "storage must exit cleanly");
    // Asked directly, the storage's address is refused: unavailable, naming it.
    let run = cluster.fdfs_on(0, &["info", &id]);
    assert_exit(&run, EXIT_UNAVAILABLE, &[&storage]);

    poll_until(
        "the tracker to see the storage OFFLINE",
        Duration::from_secs(10),
        || match cluster.storage_status(0) {
            Some(OFFLINE) => Ok(()),
            other => Err(format!("status {other:?}")),
        },
    );
    let names = [tracker.as_str(), GROUP, storage.as_str(), "OFFLINE"];
    for args in [
        vec!["upload", file],
        vec!["upload", file, "--group", GROUP],
        vec!["download", &id, "-"],
        vec!["info", &id],
        vec!["meta", "get", &id],
        vec!["delete", &id],
    ] {
        assert_exit(&cluster.fdfs(&args), EXIT_UNAVAILABLE, &names);
    }
}

#[test]
fn unknown_group_is_not_found() {
    let cluster = Cluster::start();
    let data = random_bytes("unknown_group_is_not_found", 1_000);
    let id = cluster.upload(&data, &[]);
    let file = cluster.write_file("again", &data);
    let file = file.to_str().expect("UTF-8 temp path");
    let tracker = cluster.tracker_addr().to_string();
    let elsewhere = id.replacen(GROUP, "nosuchgroup", 1);
    let needles = [tracker.as_str(), "group nosuchgroup does not exist"];
    for args in [
        vec!["upload", file, "--group", "nosuchgroup"],
        vec!["download", &elsewhere, "-"],
        vec!["meta", "get", &elsewhere],
    ] {
        assert_exit(&cluster.fdfs(&args), EXIT_NOT_FOUND, &needles);
    }
}

#[test]
fn meta_get_of_file_without_metadata_is_empty() {
    let cluster = Cluster::start();
    let data = random_bytes("meta_get_of_file_without_metadata_is_empty", 1_000);
    let id = cluster.upload(&data, &[]);
    let run = cluster.fdfs(&["meta", "get", &id]).success();
    assert!(
        run.stdout.is_empty(),
        "no metadata, no output\n{}",
        run.describe()
    );

    // Metadata set and then removed again (meta set with no pairs).
    cluster.fdfs(&["meta", "set", &id, "a=1"]).success();
    cluster.fdfs(&["meta", "set", &id]).success();
    let run = cluster.fdfs(&["meta", "get", &id]).success();
    assert!(
        run.stdout.is_empty(),
        "metadata removed\n{}",
        run.describe()
    );

    cluster.fdfs(&["delete", &id]).success();
    assert_exit(
        &cluster.fdfs(&["meta", "get", &id]),
        EXIT_NOT_FOUND,
        &["ENOENT"],
    );
}
