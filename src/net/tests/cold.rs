//! File bodies sent only from the page cache: a cold one is read in by a
//! worker first (`net::pagecache`), with the toy service of `net::tests`.

use super::*;

/// A test file of `len` bytes (a pattern that differs from page to page).
fn test_file(dir: &std::path::Path, name: &str, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ (i / 4096) as u8)
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &data).expect("write test file");
    (path, data)
}

/// Drop `path` from the page cache; false (with a message) when the file
/// system keeps it, in which case the test has nothing to show.
fn evicted(path: &std::path::Path) -> bool {
    let f = std::fs::File::open(path).expect("open test file");
    if super::pagecache::evict(&f) {
        return true;
    }
    println!(
        "skipped: {} stays in the page cache after POSIX_FADV_DONTNEED",
        path.display()
    );
    false
}

fn file_request(path: &std::path::Path) -> Vec<u8> {
    frame(FILE, path.to_str().expect("UTF-8 temp path").as_bytes())
}

/// Bytes the threads named `name` of this process have read from block
/// devices (`/proc/self/task/*/io`); `None` without I/O accounting.
fn thread_read_bytes(name: &str) -> Option<u64> {
    let mut total = 0;
    let mut found = false;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let io = std::fs::read_to_string(task.path().join("io")).ok()?;
        let n = io
            .lines()
            .find_map(|l| l.strip_prefix("read_bytes: "))
            .and_then(|v| v.trim().parse::<u64>().ok())?;
        total += n;
        found = true;
    }
    found.then_some(total)
}

/// The events up to an ECHO round trip on `c`: everything the toy reported
/// about the requests before it.
fn events_until_echo(net: &Net, c: &mut TcpStream, id: u32) -> Vec<Event> {
    c.write_all(&frame(ECHO, b"sync")).expect("write");
    assert_eq!(read_reply(c), (0, b"sync".to_vec()));
    net.until(Event::Request(id, ECHO))
}

fn queued(events: &[Event]) -> usize {
    events.iter().filter(|e| **e == Event::Queued).count()
}

/// A file body that is not in the page cache is sent whole and byte for byte,
/// and the disk is read by the worker pool, window by window, never by the
/// loop thread.
#[test]
fn a_cold_file_body_is_read_in_by_a_worker_then_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let window = super::pagecache::WINDOW as usize;
    let (path, data) = test_file(dir.path(), "cold", 3 * window + window / 2 + 11);
    if !evicted(&path) {
        return;
    }
    let name = "t-cold1";
    let net = Net::start(
        ServerOptions {
            name: name.into(),
            ..options()
        },
        2,
    );
    let (mut c, id) = net.open();
    let loop_before = thread_read_bytes(&format!("{name}-loop0"));
    let pool_before = thread_read_bytes(&format!("{name}-w-0")).unwrap_or(0)
        + thread_read_bytes(&format!("{name}-w-1")).unwrap_or(0);
    c.write_all(&file_request(&path)).expect("write");
    let (st, body) = read_reply(&mut c);
    assert_eq!(st, 0);
    assert!(body == data, "the cold file arrived changed");
    match loop_before {
        Some(before) => {
            let after = thread_read_bytes(&format!("{name}-loop0")).expect("loop thread");
            assert_eq!(after, before, "the loop thread read the disk");
            let pool_after = thread_read_bytes(&format!("{name}-w-0")).unwrap_or(0)
                + thread_read_bytes(&format!("{name}-w-1")).unwrap_or(0);
            assert!(
                pool_after - pool_before >= data.len() as u64 / 2,
                "the workers read {} bytes of {}",
                pool_after - pool_before,
                data.len()
            );
        }
        None => println!("no per-thread I/O accounting: not checked which thread read the disk"),
    }
    let warms = queued(&events_until_echo(&net, &mut c, id));
    assert!(
        (1..=4).contains(&warms),
        "one warm-up per window, at most 4: {warms}"
    );
}

/// A file body that is in the page cache goes out from the loop with no
/// worker involved.
#[test]
fn a_hot_file_body_is_sent_without_a_worker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let window = super::pagecache::WINDOW as usize;
    let (path, data) = test_file(dir.path(), "hot", 2 * window + 5);
    let f = std::fs::File::open(&path).expect("open");
    let pages = (data.len() as u64).div_ceil(4096);
    if super::pagecache::cached_pages(&f, 0, data.len() as u64).is_none_or(|n| n < pages) {
        println!("skipped: the file just written is not all in the page cache (or no cachestat)");
        return;
    }
    let net = Net::start(options(), 1);
    let (mut c, id) = net.open();
    for _ in 0..2 {
        c.write_all(&file_request(&path)).expect("write");
        let (st, body) = read_reply(&mut c);
        assert_eq!(st, 0);
        assert!(body == data, "the hot file arrived changed");
    }
    assert_eq!(
        queued(&events_until_echo(&net, &mut c, id)),
        0,
        "no warm-up for a file in the page cache"
    );
}

/// A file that shrinks while it is sent, cold or hot, ends the connection
/// after the bytes that exist: the header promised more, so the stream is
/// unusable (as before warm-ups). The client reads slowly (a small receive
/// buffer), so the shrink comes while most of the file is still to be sent.
#[test]
fn a_file_that_shrinks_while_it_is_sent_ends_the_connection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let net = Net::start(options(), 2);
    let len = 32 << 20;
    for cold in [true, false] {
        let (path, data) = test_file(dir.path(), &format!("shrinks-{cold}"), len);
        if cold && !evicted(&path) {
            continue;
        }
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
        sock.connect(&net.addr.into()).expect("connect");
        let mut c: TcpStream = sock.into();
        c.set_read_timeout(Some(WAIT)).expect("read timeout");
        c.write_all(&file_request(&path)).expect("write");
        let mut h = [0u8; HEADER_LEN];
        c.read_exact(&mut h).expect("reply header");
        let h = Header::decode(&h).expect("header");
        assert_eq!((h.status, h.pkg_len), (0, len as u64));
        let mut first = [0u8; 4096];
        c.read_exact(&mut first).expect("first bytes");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(4 << 20))
            .expect("truncate");
        let mut rest = Vec::new();
        match c.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("reading the rest (cold {cold}): {e}"),
        }
        let got = first.len() + rest.len();
        assert!(got < len, "cold {cold}: all {got} bytes arrived");
        assert!(
            first[..] == data[..4096] && rest[..] == data[4096..got],
            "cold {cold}"
        );
    }
}

/// Many connections asking at once for files that are not in the page cache
/// (of many sizes, most of them more than a window) all get their file, with
/// two workers reading them in.
#[test]
fn many_connections_with_cold_files_are_all_answered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for i in 0..16usize {
        let len = 40_000 + i * 211_111;
        files.push(test_file(dir.path(), &format!("cold{i}"), len));
    }
    if !files.iter().all(|(p, _)| evicted(p)) {
        return;
    }
    let net = Net::start(options(), 2);
    let mut conns: Vec<TcpStream> = files.iter().map(|_| net.connect()).collect();
    for (c, (path, _)) in conns.iter_mut().zip(&files) {
        c.write_all(&file_request(path)).expect("write");
    }
    for (i, (c, (_, data))) in conns.iter_mut().zip(&files).enumerate() {
        let (st, body) = read_reply(c);
        assert_eq!(st, 0, "file {i}");
        assert!(body == *data, "file {i} arrived changed");
    }
}

/// A connection whose file body waits for a worker is under way: the idle
/// sweep leaves it open, and a stop waits for it to be sent before the
/// server ends. (One worker, held at the gate, so the warm-up waits.)
#[test]
fn a_file_body_waiting_for_its_warm_up_is_neither_idle_nor_dropped_at_stop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, data) = test_file(dir.path(), "cold", 1_500_000);
    if !evicted(&path) {
        return;
    }
    let idle = Duration::from_millis(300);
    let mut net = Net::start(
        ServerOptions {
            idle_timeout: idle,
            ..options()
        },
        1,
    );
    let (mut held, id_held) = net.open();
    held.write_all(&frame(WORK, b"G hold the worker"))
        .expect("write");
    net.wait(Event::Waiting(id_held));
    let (mut c, id) = net.open();
    c.write_all(&file_request(&path)).expect("write");
    net.wait(Event::Request(id, FILE));
    net.wait(Event::Queued);

    // The sweep closes a connection idle for `idle`, and spares the one
    // waiting for its warm-up, idle for longer.
    let (mut quiet, id_quiet) = net.open();
    assert_closed(&mut quiet);
    net.wait(Event::Close(id_quiet));

    let server = net.server.take().expect("server running");
    server.stop_handle().stop();
    let (joined_tx, joined) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        server.join();
        let _ = joined_tx.send(());
    });
    net.release();
    assert_eq!(read_reply(&mut held), (0, b"G hold the worker".to_vec()));
    let (st, body) = read_reply(&mut c);
    assert_eq!(st, 0);
    assert!(
        body == data,
        "the file sent during the stop arrived changed"
    );
    assert_closed(&mut c);
    joined
        .recv_timeout(WAIT)
        .expect("the server stopped once the file was sent");
}
