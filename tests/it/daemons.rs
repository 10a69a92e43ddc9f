//! How the daemons behave over time and under stress: the tracker keeps its
//! state across restarts and notices silent storages; the storage refuses
//! uploads it cannot hold, cleans up interrupted ones, closes idle connections
//! holds back connections beyond `max_connections`, and in durable mode
//! restores from its journal what the disk lost.

use crate::util::*;
use nix::sys::signal::Signal;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
#[track_caller]
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Status the tracker reports for storage `id` of group1.
fn status_of(cluster: &Cluster, id: &str) -> Option<u8> {
    match list_storage(cluster.tracker_addr(), GROUP) {
        Ok(Ok(list)) => list.into_iter().find(|(i, _)| i == id).map(|(_, s)| s),
        _ => None,
    }
}

const OFFLINE: u8 = 5;
const ACTIVE: u8 = 7;

/// Every regular file below `dir` (recursively).
fn files_below(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Files in the `data/HH/HH/` leaves of a store path (temp files included,
/// the binlog and state files under `data/` not).
fn stored_files(store: &Path) -> Vec<std::path::PathBuf> {
    let hex2 = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 2 && n.chars().all(|c| c.is_ascii_hexdigit()))
    };
    files_below(&store.join("data"))
        .into_iter()
        .filter(|p| {
            let leaf = p.parent().expect("file has a directory");
            hex2(leaf) && leaf.parent().is_some_and(hex2)
        })
        .collect()
}

/// Files that process `pid` holds open under `dir/data/` (an upload's temp
/// file has no name: /proc shows it as `<dir>/#<inode> (deleted)`). The
/// binlog, log and pid files are left out.
fn open_files_below(pid: u32, dir: &Path) -> Vec<String> {
    let data = dir.join("data");
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.starts_with(&data) && !t.starts_with(data.join("sync")))
        .filter(|t| t.extension().is_none_or(|e| e != "pid"))
        .map(|t| t.display().to_string())
        .collect()
}

#[test]
fn tracker_state_survives_restart() {
    let mut cluster = Cluster::start();
    let ip = cluster.storage_ip(0).to_string();
    assert_eq!(status_of(&cluster, &ip), Some(ACTIVE));
    assert!(
        cluster.stop_daemon(1),
        "storage must exit cleanly on SIGTERM"
    );
    wait_for(
        "storage OFFLINE after it stopped",
        Duration::from_secs(10),
        || (status_of(&cluster, &ip) == Some(OFFLINE)).then_some(()),
    );
    cluster.restart_tracker();
    // The restarted tracker has not heard from the storage: it knows it from its files.
    assert_eq!(
        status_of(&cluster, &ip),
        Some(OFFLINE),
        "group and storage reloaded from base_path/data"
    );
    let groups = cluster.root().join("tracker/data/storage_groups_new.dat");
    let text = fs::read_to_string(&groups).unwrap_or_else(|e| panic!("{}: {e}", groups.display()));
    assert!(text.contains("group_name=group1"), "{text}");
}

#[test]
fn silent_storage_goes_offline_and_comes_back() {
    let mut cluster = Cluster::builder()
        .tracker_conf("check_active_interval", "2")
        .start();
    let ip = cluster.storage_ip(0).to_string();
    // A stopped process keeps its connection open but sends no heartbeat.
    cluster.signal(1, Signal::SIGSTOP);
    wait_for(
        "OFFLINE after heartbeats stopped",
        Duration::from_secs(15),
        || (status_of(&cluster, &ip) == Some(OFFLINE)).then_some(()),
    );
    let mut raw = Raw::connect(cluster.tracker_addr());
    let r = raw.request(CMD_QUERY_STORE_ONE, &[]);
    assert_eq!(
        r.status, ENOENT,
        "no upload target while the only storage is OFFLINE"
    );
    cluster.signal(1, Signal::SIGCONT);
    wait_for(
        "ACTIVE again after heartbeats resumed",
        Duration::from_secs(15),
        || (status_of(&cluster, &ip) == Some(ACTIVE)).then_some(()),
    );
    cluster.assert_serves("silent_storage_goes_offline_and_comes_back");
}

#[test]
fn upload_too_big_for_the_disk_is_enospc_and_leaves_nothing() {
    let mut cluster = Cluster::start();
    let mut raw = Raw::connect(cluster.storage_addr(0));
    // 1 PiB announced: refused before any byte of content is read.
    let size: u64 = 1 << 50;
    let mut msg = header(15 + size, CMD_UPLOAD_FILE, 0).to_vec();
    msg.push(0xFF);
    msg.extend_from_slice(&size.to_be_bytes());
    msg.extend_from_slice(&padded("bin", 6));
    msg.extend_from_slice(&[7u8; 4096]);
    raw.send_bytes(&msg).expect("send upload head");
    match raw.ending() {
        Ending::Closed(bytes) => {
            let replies = parse_replies(&bytes);
            assert_eq!(replies.len(), 1, "one reply, then close: {replies:?}");
            assert_eq!(replies[0].status, nix::errno::Errno::ENOSPC as u8);
        }
        Ending::StillOpen(b) => {
            panic!("connection must close after refusing an unread body, got {b:?}")
        }
    }
    assert!(
        stored_files(cluster.store_path(0, 0)).is_empty(),
        "no partial file"
    );
    cluster.assert_serves("upload_too_big_for_the_disk");
}

#[test]
fn interrupted_upload_leaves_no_file() {
    let mut cluster = Cluster::start();
    let store = cluster.store_path(0, 0).to_path_buf();
    {
        let mut raw = Raw::connect(cluster.storage_addr(0));
        let size: u64 = 1 << 20;
        let mut msg = header(15 + size, CMD_UPLOAD_FILE, 0).to_vec();
        msg.push(0xFF);
        msg.extend_from_slice(&size.to_be_bytes());
        msg.extend_from_slice(&padded("bin", 6));
        msg.extend_from_slice(&random_bytes("interrupted", 300_000));
        raw.send_bytes(&msg).expect("send part of an upload");
        // Wait until the storage writes the (unnamed) temp file, then hang up mid-body.
        wait_for(
            "temp file of the upload in progress",
            Duration::from_secs(5),
            || (!open_files_below(cluster.pid(1), &store).is_empty()).then_some(()),
        );
    }
    wait_for("partial upload dropped", Duration::from_secs(5), || {
        (stored_files(&store).is_empty() && open_files_below(cluster.pid(1), &store).is_empty())
            .then_some(())
    });
    cluster.assert_serves("interrupted_upload_leaves_no_file");
    assert_eq!(
        stored_files(&store).len(),
        1,
        "only the complete upload remains"
    );
}

#[test]
fn idle_connections_are_closed_after_network_timeout() {
    let mut cluster = Cluster::builder()
        .storage_conf("network_timeout", "1")
        .start();
    let mut raw = Raw::connect(cluster.storage_addr(0));
    assert_eq!(raw.request(CMD_ACTIVE_TEST, &[]).status, 0);
    let start = Instant::now();
    match raw.ending() {
        Ending::Closed(b) => assert!(b.is_empty(), "closed without a reply: {b:?}"),
        Ending::StillOpen(_) => panic!("idle connection still open after {:?}", start.elapsed()),
    }
    cluster.assert_serves("idle_connections_are_closed");
}

#[test]
fn connections_beyond_max_connections_wait_their_turn() {
    let mut cluster = Cluster::builder()
        .storage_conf("max_connections", "2")
        .storage_conf("work_threads", "1")
        .start();
    let addr = cluster.storage_addr(0);
    let mut a = Raw::connect(addr);
    let mut b = Raw::connect(addr);
    assert_eq!(a.request(CMD_ACTIVE_TEST, &[]).status, 0);
    assert_eq!(b.request(CMD_ACTIVE_TEST, &[]).status, 0);
    // The third is accepted by the kernel but not served while two are open.
    let mut c = Raw::connect(addr);
    c.send(CMD_ACTIVE_TEST, 0, &[])
        .expect("send on the third connection");
    c.set_read_timeout(Duration::from_millis(700));
    assert!(
        c.recv().is_err(),
        "third connection served beyond max_connections"
    );
    drop(a);
    c.set_read_timeout(IO_TIMEOUT);
    let r = c.recv().expect("served once a slot is free");
    assert_eq!(r.status, 0);
    drop((b, c));
    cluster.assert_serves("connections_beyond_max_connections");
}

#[test]
fn inline_reads_serve_the_same_bytes() {
    let mut cluster = Cluster::builder()
        .storage_conf("disk_inline_reads", "true")
        .start();
    let data = random_bytes("inline_reads", 300_001);
    let id = cluster.upload(&data, &["--meta", "k=v"]);
    assert_same_bytes("inline download", &data, &cluster.download(&id));
    let part = cluster
        .fdfs(&["download", &id, "-", "--offset", "1000", "--length", "5000"])
        .success()
        .stdout;
    assert_same_bytes("inline ranged download", &data[1000..6000], &part);
    let meta = cluster.fdfs(&["meta", "get", &id]).success().stdout_str();
    assert_eq!(meta.trim(), "k=v");
    let info = cluster
        .fdfs(&["info", &id, "--json"])
        .success()
        .stdout_str();
    assert!(info.contains("\"size\":300001"), "{info}");
    cluster
        .fdfs(&[
            "download",
            "group1/M00/00/00/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt",
            "-",
        ])
        .fails_with("ENOENT");
    cluster.assert_serves("inline_reads");
}

/// The path of a file id's content under store path 0 of storage 0.
fn stored_path(cluster: &Cluster, id: &str) -> std::path::PathBuf {
    let rel = id.split_once("/M00/").expect("an M00 file id").1;
    cluster.store_path(0, 0).join("data").join(rel)
}

#[test]
fn durable_journal_restores_what_the_disk_lost() {
    let mut cluster = Cluster::builder()
        .storage_conf("durable_uploads", "true")
        .storage_conf("durable_journal_size", "4MB")
        .start();
    let binlog = cluster.base_path(0).join("data/sync/binlog.000");
    let before = fs::metadata(&binlog).map_or(0, |m| m.len());
    let small = random_bytes("journal small", 5000);
    let big = random_bytes("journal big", 1_500_000);
    let a = cluster.upload(&small, &["--meta", "k=v"]);
    let b = cluster.upload(&big, &[]);
    // Acknowledged means journaled: each reply waited for the round that
    // wrote its records (nothing else asks for a round here).
    let journal = fs::read(cluster.base_path(0).join("data/fdfs_journal.dat")).unwrap();
    let a_name = a.split_once('/').expect("group/name").1;
    for rec in [a_name.to_string(), format!("{a_name}-m")] {
        assert!(
            journal.windows(rec.len()).any(|w| w == rec.as_bytes()),
            "{rec} answered before it was in the journal"
        );
    }
    let logged = fs::read_to_string(&binlog).unwrap();
    assert!(cluster.stop_storage(0), "storage must stop cleanly");
    assert!(
        cluster.base_path(0).join("data/fdfs_journal.dat").is_file(),
        "durable mode keeps a journal"
    );
    // As if the machine had crashed before the page cache reached the disk:
    // the small file, its metadata and the binlog lines are gone.
    let pa = stored_path(&cluster, &a);
    fs::remove_file(&pa).unwrap();
    fs::remove_file(pa.with_file_name(format!("{}-m", pa.file_name().unwrap().to_str().unwrap())))
        .unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&binlog)
        .unwrap()
        .set_len(before)
        .unwrap();
    cluster.restart_storage(0);
    // Downloads go through the tracker, which offers only ACTIVE storages.
    cluster.wait_storage_status(0, ACTIVE, Duration::from_secs(20));
    assert_same_bytes("restored small file", &small, &cluster.download(&a));
    assert_same_bytes("big file synced in place", &big, &cluster.download(&b));
    let meta = cluster.fdfs(&["meta", "get", &a]).success().stdout_str();
    assert_eq!(meta.trim(), "k=v");
    let relogged = fs::read_to_string(&binlog).unwrap();
    assert!(
        relogged.starts_with(&logged),
        "binlog lines restored in order:\n{logged}\n---\n{relogged}"
    );
    cluster.assert_serves("durable_journal");
}

/// SIGTERM while uploads stream in: the storage stops accepting and drops the idle
/// connection at once, but reads each upload it has taken to its end and answers it
/// (with `durable_uploads`, once the journal has it) before it exits; the files are
/// there after a restart.
fn uploads_under_way_are_answered_at_stop(durable: bool) {
    let mut builder = Cluster::builder();
    if durable {
        builder = builder
            .storage_conf("durable_uploads", "true")
            .storage_conf("durable_journal_size", "4MB");
    }
    let mut cluster = builder.start();
    let addr = cluster.storage_addr(0);
    let store = cluster.store_path(0, 0).to_path_buf();
    let pid = cluster.pid(1);
    // Streamed uploads (over 256 KiB); one small enough for the journal itself.
    let files: Vec<Vec<u8>> = [600_000, 3 << 20, 3 << 20, 2 << 20]
        .iter()
        .enumerate()
        .map(|(i, &n)| random_bytes(&format!("drain {durable} {i}"), n))
        .collect();
    let mut conns: Vec<Raw> = files
        .iter()
        .map(|data| {
            let size = data.len() as u64;
            let mut msg = header(15 + size, CMD_UPLOAD_FILE, 0).to_vec();
            msg.push(0xFF);
            msg.extend_from_slice(&size.to_be_bytes());
            msg.extend_from_slice(&padded("bin", 6));
            msg.extend_from_slice(&data[..data.len() / 2]);
            let mut raw = Raw::connect(addr);
            raw.send_bytes(&msg).expect("send the first half");
            raw
        })
        .collect();
    // Every upload is under way: the storage writes each to its unnamed temp file.
    wait_for("a temp file per upload", Duration::from_secs(10), || {
        let temp = open_files_below(pid, &store)
            .into_iter()
            .filter(|f| f.ends_with(" (deleted)"))
            .count();
        (temp == files.len()).then_some(())
    });
    let mut idle = Raw::connect(addr);
    assert_eq!(idle.request(CMD_ACTIVE_TEST, &[]).status, 0);

    cluster.signal(1, Signal::SIGTERM);
    // The stop has begun: the listeners are closed...
    wait_for("new connections refused", Duration::from_secs(10), || {
        Raw::try_connect(addr).is_err().then_some(())
    });
    // ...and a connection without a request is closed.
    match idle.ending() {
        Ending::Closed(b) => assert!(b.is_empty(), "closed without a reply: {b:?}"),
        Ending::StillOpen(_) => panic!("idle connection still open after SIGTERM"),
    }
    // The rest of each body, all at once: each upload gets its reply.
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .zip(&files)
            .map(|(raw, data)| {
                s.spawn(move || {
                    raw.send_bytes(&data[data.len() / 2..])
                        .expect("send the second half after SIGTERM");
                    raw.recv().expect("a reply after SIGTERM")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let reply = h.join().expect("upload thread");
                assert_eq!(reply.status, 0, "upload answered with {reply:?}");
                let group = fixed_str(&reply.body[..16]);
                let name = String::from_utf8_lossy(&reply.body[16..]).to_string();
                format!("{group}/{name}")
            })
            .collect()
    });
    // Then it exits by itself, cleanly.
    assert!(
        cluster.stop_storage(0),
        "storage must exit 0 after the drain"
    );
    cluster.restart_storage(0);
    for (id, data) in ids.iter().zip(&files) {
        let got = cluster.fdfs_on(0, &["download", id, "-"]).success().stdout;
        assert_same_bytes(&format!("{id} after the restart"), data, &got);
    }
}

#[test]
fn uploads_under_way_are_answered_at_stop_plain() {
    uploads_under_way_are_answered_at_stop(false);
}

#[test]
fn uploads_under_way_are_answered_at_stop_durable() {
    uploads_under_way_are_answered_at_stop(true);
}

/// A tracker that listens on every address (bind_addr empty) learns its own address from the
/// first JOIN. It once deadlocked doing so (it took the lock of its cluster state twice), and
/// every request after it hung.
#[test]
fn a_tracker_on_every_address_serves_a_storage_that_joins_through_loopback() {
    let cluster = Cluster::builder()
        .storages(0)
        .tracker_conf("bind_addr", "")
        .start();
    let tracker = format!("127.0.0.1:{}", cluster.tracker_addr().port());
    let base = cluster.root().join("lone-storage");
    fs::create_dir_all(&base).expect("mkdir storage base");
    let conf = cluster.root().join("conf").join("lone-storage.conf");
    write_conf(
        &conf,
        &[
            ("group_name", GROUP.to_string()),
            ("bind_addr", "127.0.0.2".to_string()),
            ("port", "0".to_string()),
            ("base_path", path_str(&base)),
            ("subdir_count_per_path", "16".to_string()),
            ("tracker_server", tracker.clone()),
            ("heart_beat_interval", "1".to_string()),
        ],
    );
    let mut storage = start_storage_conf("storage", &conf, &cluster.work_dir(), base.join("logs"));
    let file = cluster.write_file("lone.txt", b"hello through loopback");
    let path = path_str(&file);
    let id = wait_for(
        "an upload through 127.0.0.1",
        Duration::from_secs(30),
        || {
            let run = cluster.run(
                Path::new(FDFS),
                &["upload", &path, "--tracker", &tracker],
                None,
                Duration::from_secs(5),
            );
            run.status
                .is_some_and(|s| s.success())
                .then(|| run.stdout_str())
        },
    );
    let got = cluster.run(
        Path::new(FDFS),
        &["download", &id, "-", "--tracker", &tracker],
        None,
        Duration::from_secs(10),
    );
    assert_eq!(got.success().stdout, b"hello through loopback");
    storage.assert_running();
}
