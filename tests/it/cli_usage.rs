//! Mistakes on the command line get exit 2 and a message naming what was wrong; OS errors
//! read as the OS words them, without Rust's "(os error N)".

use std::path::Path;

use crate::util::{CLI_TIMEOUT, Cluster, FDFS, Run, assert_exit, random_bytes, run_program};

/// Exit code of `fdfs` for bad usage (fdfs(1)).
const EXIT_USAGE: i32 = 2;

/// Runs `fdfs ARGS` without a cluster, in `dir`.
fn fdfs_alone(args: &[&str], dir: &Path) -> Run {
    run_program(Path::new(FDFS), args, None, dir, CLI_TIMEOUT)
}

#[test]
fn tracker_without_port_is_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let id = "group1/M00/00/00/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt";
    let run = fdfs_alone(&["info", id, "--tracker", "127.0.0.1"], dir.path());
    assert_exit(&run, EXIT_USAGE, &["--tracker 127.0.0.1", "HOST:PORT"]);
}

#[test]
fn malformed_file_id_is_usage_error() {
    let cluster = Cluster::start();
    for id in ["group1/M00/00/00/bogus.jpg", "group1/M00/00/00/"] {
        for args in [
            vec!["download", id, "-"],
            vec!["info", id],
            vec!["delete", id],
        ] {
            let run = cluster.fdfs(&args);
            assert_exit(&run, EXIT_USAGE, &[id, "not a valid file ID"]);
        }
    }
}

#[test]
fn os_errors_without_errno_suffix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-file");
    let missing = missing.to_str().expect("UTF-8 temp path");
    let run = fdfs_alone(&["upload", missing, "--tracker", "127.0.0.1:1"], dir.path());
    assert_exit(&run, 1, &[missing, "No such file or directory"]);
    assert!(!run.stderr_str().contains("os error"), "{}", run.describe());

    // Nothing listens on port 1: the connection is refused.
    let data = dir.path().join("data");
    std::fs::write(&data, random_bytes("os_errors_without_errno_suffix", 100)).unwrap();
    let data = data.to_str().expect("UTF-8 temp path");
    let run = fdfs_alone(&["upload", data, "--tracker", "127.0.0.1:1"], dir.path());
    assert_exit(&run, 4, &["127.0.0.1:1", "Connection refused"]);
    assert!(!run.stderr_str().contains("os error"), "{}", run.describe());
}

#[test]
fn upload_of_a_directory_is_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_str().expect("UTF-8 temp path");
    let run = fdfs_alone(&["upload", path, "--tracker", "127.0.0.1:1"], dir.path());
    assert_exit(&run, EXIT_USAGE, &[path, "Is a directory"]);
}
