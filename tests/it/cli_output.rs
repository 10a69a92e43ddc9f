//! Where `fdfs download` writes, and what happens when that goes wrong: a reader that
//! leaves early, an interrupt, an existing file, a terminal.

use std::io::Read;
use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{CLI_TIMEOUT, Cluster, random_bytes};

/// Polls `child` until it exits; kills it and panics after `CLI_TIMEOUT`.
fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + CLI_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {CLI_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Everything `child` wrote to stderr (after it exited).
fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// `fdfs download ID - | head -c 10`: the reader leaves after 10 bytes of 5 MiB, so the
/// next write meets a closed pipe; like `cat`, that is success.
#[test]
fn download_into_pipe_closed_early_succeeds() {
    let cluster = Cluster::start();
    let data = random_bytes("download_into_pipe_closed_early_succeeds", 5 << 20);
    let id = cluster.upload(&data, &[]);
    let mut child = cluster
        .fdfs_command(&["download", &id, "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fdfs download");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut head = [0u8; 10];
    out.read_exact(&mut head).expect("read 10 bytes");
    assert_eq!(head, data[..10], "first 10 bytes");
    drop(out);
    let status = wait_exit(&mut child, "download into a closed pipe");
    let stderr = stderr_of(&mut child);
    assert!(
        status.success() && stderr.is_empty(),
        "a closed stdout pipe must exit 0 silently: {status}\nstderr: {stderr}"
    );
}
