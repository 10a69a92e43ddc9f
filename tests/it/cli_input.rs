//! What `fdfs upload|append|modify` read: anything that is not a regular file (a FIFO,
//! `/dev/stdin`, a pipe) is read to its end, and through a temporary file rather than memory.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{Cluster, assert_same_bytes, random_bytes};

/// A new FIFO `name` in the work dir.
fn make_fifo(cluster: &Cluster, name: &str) -> PathBuf {
    let fifo = cluster.work_dir().join(name);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", fifo.display()));
    fifo
}

/// Writes `data` into `fifo` on a thread (opening it blocks until a reader comes).
fn feed_fifo(fifo: &Path, data: Vec<u8>) -> thread::JoinHandle<()> {
    let fifo = fifo.to_path_buf();
    thread::spawn(move || {
        // A reader that stops early is the program's failure, reported by the test.
        let _ = fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .and_then(|mut f| f.write_all(&data));
    })
}

/// Joins the feeder; if no reader ever opened the FIFO, opens it once so the feeder's
/// open returns instead of waiting forever.
fn finish_feed(fifo: &Path, feeder: thread::JoinHandle<()>) {
    if !feeder.is_finished() {
        let _ = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo);
    }
    feeder.join().expect("FIFO feeder panicked");
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

#[test]
fn upload_from_fifo_and_dev_stdin() {
    let cluster = Cluster::start();
    let data = random_bytes("upload_from_fifo_and_dev_stdin/fifo", 300_001);
    let fifo = make_fifo(&cluster, "in.fifo");
    let feeder = feed_fifo(&fifo, data.clone());
    let run = cluster.fdfs(&["upload", path_str(&fifo), "--ext", "bin"]);
    finish_feed(&fifo, feeder);
    let id = run.success().stdout_str();
    assert_same_bytes("upload from a FIFO", &data, &cluster.download(&id));

    let data = random_bytes("upload_from_fifo_and_dev_stdin/stdin", 200_003);
    let run = cluster
        .fdfs_stdin(&["upload", "/dev/stdin"], Some(&data))
        .success();
    assert_same_bytes(
        "upload from /dev/stdin",
        &data,
        &cluster.download(&run.stdout_str()),
    );
}

#[test]
fn append_and_modify_from_fifo_and_dev_stdin() {
    let cluster = Cluster::start();
    let first = random_bytes("append_and_modify_from_fifo/first", 10_000);
    let id = cluster.upload(&first, &["--appender"]);

    let more = random_bytes("append_and_modify_from_fifo/more", 150_000);
    let fifo = make_fifo(&cluster, "append.fifo");
    let feeder = feed_fifo(&fifo, more.clone());
    let run = cluster.fdfs(&["append", &id, path_str(&fifo)]);
    finish_feed(&fifo, feeder);
    run.success();
    let mut expected = [first, more].concat();
    assert_same_bytes(
        "after append from a FIFO",
        &expected,
        &cluster.download(&id),
    );

    let patch = random_bytes("append_and_modify_from_fifo/patch", 20_000);
    cluster
        .fdfs_stdin(&["modify", &id, "5000", "/dev/stdin"], Some(&patch))
        .success();
    expected[5_000..25_000].copy_from_slice(&patch);
    assert_same_bytes(
        "after modify from /dev/stdin",
        &expected,
        &cluster.download(&id),
    );
}

/// Size of the big upload from standard input.
const BIG: u64 = 300 << 20;
/// The client's peak resident memory must stay below this (it held all of BIG before).
const MAX_RSS_KIB: u64 = 64 << 10;

/// 300 MB from a pipe on standard input, generated while it is written (the test holds one
/// 64 KiB block): the client's peak RSS stays small, the stored file has the size and CRC32
/// of what was sent, and the temporary file in TMPDIR is gone.
#[test]
fn upload_300mb_from_stdin_in_bounded_memory() {
    let cluster = Cluster::start();
    let tmpdir = cluster.work_dir().join("tmp");
    fs::create_dir(&tmpdir).expect("mkdir tmp");
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4 in wait_with_peak_rss, for its rusage"
    )]
    let mut child = cluster
        .fdfs_command(&["upload", "-"])
        .env("TMPDIR", &tmpdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fdfs upload -");

    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = thread::spawn(move || {
        let block = random_bytes("upload_300mb_from_stdin_in_bounded_memory", 64 << 10);
        let mut crc = crc32fast::Hasher::new();
        let mut chunk = block.clone();
        for i in 0..BIG / block.len() as u64 {
            // Not one block repeated: each carries its number.
            chunk[..8].copy_from_slice(&i.to_le_bytes());
            crc.update(&chunk);
            stdin.write_all(&chunk).expect("write to fdfs's stdin");
        }
        crc.finalize()
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));

    let (status, peak_kib) = wait_with_peak_rss(child.id(), Duration::from_secs(180));
    let crc = writer.join().expect("writer thread");
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "fdfs upload - failed: {status}\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        peak_kib < MAX_RSS_KIB,
        "fdfs upload - of {BIG} bytes peaked at {peak_kib} KiB resident (limit {MAX_RSS_KIB})"
    );
    let info = cluster.info(None, out.trim());
    assert_eq!(info.size, BIG, "stored size of {}", out.trim());
    assert_eq!(info.crc32, crc, "stored CRC32 of {}", out.trim());
    let left: Vec<_> = fs::read_dir(&tmpdir).expect("read tmp").collect();
    assert!(left.is_empty(), "spool files left in TMPDIR: {left:?}");
}

/// Waits (polling, up to `timeout`, then SIGKILL) for child `pid` to exit, reaps it and
/// returns its exit status and peak resident set size in KiB (rusage ru_maxrss).
fn wait_with_peak_rss(pid: u32, timeout: Duration) -> (ExitStatus, u64) {
    let deadline = Instant::now() + timeout;
    let stat = format!("/proc/{pid}/stat");
    // Exited (a zombie, still unreaped) or gone; the state follows "(comm) ".
    let exited = || {
        fs::read_to_string(&stat).map_or(true, |s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    };
    while !exited() {
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; `pid` is our unreaped child.
    let r = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert_eq!(
        r,
        pid as i32,
        "wait4({pid}): {}",
        std::io::Error::last_os_error()
    );
    let status = ExitStatus::from_raw(status);
    assert!(
        Instant::now() <= deadline,
        "fdfs did not finish within {timeout:?}"
    );
    (status, usage.ru_maxrss as u64)
}
