//! What `fdfs upload|append|modify` read: anything that is not a regular file (a FIFO,
//! `/dev/stdin`, a pipe) is read to its end, and through a temporary file rather than memory.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
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

    let (status, peak_kib) = wait_with_peak_rss(&mut child, Duration::from_secs(180));
    let crc = writer.join().expect("writer thread");
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "fdfs upload - failed: {status}\nstdout: {out}\nstderr: {err}"
    );
    assert!(peak_kib > 0, "no VmHWM sample of fdfs was read");
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

/// Polls child's VmHWM (the peak resident set of its memory, in KiB) until it exits, or
/// kills it after `timeout`; returns its exit status and the highest VmHWM seen. Not
/// wait4's ru_maxrss: Linux carries the peak of the process that forked it (this test
/// binary, with every other test running) over the exec into that.
fn wait_with_peak_rss(child: &mut Child, timeout: Duration) -> (ExitStatus, u64) {
    let deadline = Instant::now() + timeout;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        // Sampled before each exit check, so the last sample is taken as late as possible.
        let hwm = fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
        peak = peak.max(hwm.unwrap_or(0));
        if let Some(status) = child.try_wait().expect("try_wait") {
            return (status, peak);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fdfs did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}
