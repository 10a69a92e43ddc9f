//! Where `fdfs download` writes, and what happens when that goes wrong: a reader that
//! leaves early, an interrupt, an existing file, a terminal.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{
    CLI_TIMEOUT, Cluster, FDFS, assert_same_bytes, header, poll_until, random_bytes,
};

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

/// A file ID that parses (the storage below never looks at it).
const SOME_ID: &str = "group1/M00/00/00/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt";

/// A storage that answers one DOWNLOAD_FILE with a header announcing `announced` bytes,
/// sends `sent` of them and then waits (up to `CLI_TIMEOUT`) for the client to go away:
/// a download that stays in progress until the test interrupts it.
fn stalling_storage(announced: u64, sent: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("local addr");
    // Not joined: it ends by itself when the client leaves or at its deadline.
    thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let _ = conn.set_read_timeout(Some(CLI_TIMEOUT));
        let mut head = [0u8; 10];
        if conn.read_exact(&mut head).is_err() {
            return;
        }
        let len = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
        let mut body = vec![0u8; len.min(1024) as usize];
        let _ = conn.read_exact(&mut body);
        let mut reply = header(announced, 100, 0).to_vec();
        reply.extend(random_bytes("stalling_storage", sent));
        let _ = conn.write_all(&reply);
        let _ = conn.read(&mut [0u8; 1]);
    });
    addr
}

/// A download interrupted by SIGINT, SIGTERM or SIGHUP removes its `.NAME.fdfs-part` file
/// and exits with 128 + the signal number, as a shell expects.
#[test]
fn interrupted_download_removes_part_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (sig, code) in [
        (Signal::SIGINT, 130),
        (Signal::SIGTERM, 143),
        (Signal::SIGHUP, 129),
    ] {
        let storage = stalling_storage(100 << 20, 1 << 20);
        let dest = dir.path().join(format!("out-{sig}"));
        let part = dir.path().join(format!(".out-{sig}.fdfs-part"));
        let mut child = Command::new(FDFS)
            .args(["download", SOME_ID])
            .arg(&dest)
            .args([
                "--storage",
                &storage.to_string(),
                "--tracker",
                "127.0.0.1:1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fdfs download");
        let in_progress = |p: &Path| p.metadata().is_ok_and(|m| m.len() > 0);
        poll_until(
            &format!("{} to fill", part.display()),
            CLI_TIMEOUT,
            || match child.try_wait() {
                Ok(Some(status)) => panic!("fdfs download exited early: {status}"),
                _ if in_progress(&part) => Ok(()),
                _ => Err("not yet".to_string()),
            },
        );
        kill(Pid::from_raw(child.id() as i32), sig).expect("signal fdfs");
        let status = wait_exit(&mut child, &format!("download after {sig}"));
        let stderr = stderr_of(&mut child);
        assert_eq!(
            status.code(),
            Some(code),
            "exit status after {sig}: {status}\nstderr: {stderr}"
        );
        assert!(!part.exists(), "{} left after {sig}", part.display());
        assert!(!dest.exists(), "{} exists after {sig}", dest.display());
    }
}

/// Without DEST a download takes the file ID's last part as its name in the current
/// directory; a file of that name is not replaced unless --force says so.
#[test]
fn download_without_dest_keeps_existing_file() {
    let cluster = Cluster::start();
    let data = random_bytes("download_without_dest_keeps_existing_file", 20_000);
    let id = cluster.upload(&data, &[]);
    let name = id.rsplit('/').next().expect("a file ID has a last part");
    let local = cluster.write_file(name, b"mine");

    let run = cluster.fdfs(&["download", &id]);
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(2),
        "an existing file must be refused\n{}",
        run.describe()
    );
    assert!(
        run.stderr_str().contains(name) && run.stderr_str().contains("--force"),
        "the refusal names the file and --force\n{}",
        run.describe()
    );
    assert_eq!(
        std::fs::read(&local).unwrap(),
        b"mine",
        "the file was changed"
    );

    cluster.fdfs(&["download", &id, "--force"]).success();
    assert_same_bytes("after --force", &data, &std::fs::read(&local).unwrap());

    std::fs::remove_file(&local).unwrap();
    cluster.fdfs(&["download", &id]).success();
    assert_same_bytes("fresh name", &data, &std::fs::read(&local).unwrap());
    // A DEST given by name is the user's choice, replaced as cp would.
    cluster
        .fdfs(&["download", &id, local.to_str().expect("UTF-8 path")])
        .success();
}

/// `fdfs download ID -` with standard output on a terminal refuses (exit 2) to print file
/// content there, unless --force.
#[test]
fn download_to_terminal_needs_force() {
    let cluster = Cluster::start();
    let data = random_bytes("download_to_terminal_needs_force", 1_000);
    let id = cluster.upload(&data, &[]);
    for force in [false, true] {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut args = vec!["download", id.as_str(), "-"];
        if force {
            args.push("--force");
        }
        let mut child = cluster
            .fdfs_command(&args)
            .stdout(Stdio::from(pty.slave))
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fdfs download");
        // The master stays open until the child exits: its writes would fail without it.
        let status = wait_exit(&mut child, "download to a terminal");
        let stderr = stderr_of(&mut child);
        drop(pty.master);
        if force {
            assert!(status.success(), "--force: {status}\nstderr: {stderr}");
        } else {
            assert!(
                status.code() == Some(2) && stderr.contains("terminal"),
                "a terminal on stdout must be refused: {status}\nstderr: {stderr}"
            );
        }
    }
}
