//! Hostile and malformed input on the raw wire: absurd or negative body lengths, garbage,
//! unknown commands, and file names that try to leave the store. The servers must answer
//! with an error or close that one connection, touch nothing outside their store, and keep
//! serving normal clients afterwards.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use crate::util::{
    CMD_ACTIVE_TEST, CMD_DELETE_FILE, CMD_DOWNLOAD_FILE, CMD_GET_METADATA, CMD_QUERY_FETCH_ONE,
    CMD_QUERY_FILE_INFO, CMD_QUERY_STORE_ONE, CMD_RESP, CMD_SET_METADATA, CMD_UPLOAD_FILE, Cluster,
    EINVAL, ENOENT, Ending, GROUP, IO_TIMEOUT, Raw, assert_same_bytes, header, padded,
    parse_replies, random_bytes, sha1_hex,
};

/// A command code no FastDFS version defines.
const CMD_UNKNOWN: u8 = 200;
/// Code 39 is a hole in the storage command range.
const CMD_UNUSED_39: u8 = 39;

/// Reads until the server closes; any bytes it sent first must be error replies.
#[track_caller]
fn expect_closed(raw: &mut Raw, what: &str) {
    match raw.ending() {
        Ending::Closed(bytes) => {
            for reply in parse_replies(&bytes) {
                assert!(
                    reply.status != 0,
                    "{what}: server answered success before closing: {reply:?}"
                );
            }
        }
        Ending::StillOpen(bytes) => panic!(
            "{what}: connection still open {IO_TIMEOUT:?} later (received {} bytes: {:?})",
            bytes.len(),
            parse_replies(&bytes)
        ),
    }
}

/// Sends `head` (and `rest`) on a fresh connection and expects the server to close it.
#[track_caller]
fn send_and_expect_closed(addr: SocketAddr, head: [u8; 10], rest: &[u8], what: &str) {
    let mut raw = Raw::connect(addr);
    let mut msg = head.to_vec();
    msg.extend_from_slice(rest);
    // A server that closes early may make this write fail; what counts is the ending below.
    let _ = raw.send_bytes(&msg);
    expect_closed(&mut raw, what);
}

/// Sends one request on a fresh connection and returns the error status it must get.
#[track_caller]
fn expect_error_reply(addr: SocketAddr, cmd: u8, body: &[u8], what: &str) -> u8 {
    let mut raw = Raw::connect(addr);
    if let Err(e) = raw.send(cmd, 0, body) {
        panic!("{what}: send failed: {e}");
    }
    match raw.recv() {
        Ok(reply) => {
            assert_eq!(
                reply.cmd, CMD_RESP,
                "{what}: reply cmd must be 100: {reply:?}"
            );
            assert!(
                reply.status != 0,
                "{what}: server answered SUCCESS with a {}-byte body (sha1 {})",
                reply.body.len(),
                sha1_hex(&reply.body)
            );
            assert!(
                reply.body.is_empty(),
                "{what}: error reply must have an empty body: {reply:?}"
            );
            reply.status
        }
        Err(e) => panic!("{what}: expected an error reply, got none ({e})"),
    }
}

#[test]
fn huge_body_length_closes_connection() {
    let mut cluster = Cluster::start();
    let huge = 1u64 << 62;
    let tracker = cluster.tracker_addr();
    let storage = cluster.storage_addr(0);
    for cmd in [CMD_QUERY_STORE_ONE, CMD_QUERY_FETCH_ONE, CMD_UNKNOWN] {
        send_and_expect_closed(
            tracker,
            header(huge, cmd, 0),
            &[],
            &format!("tracker, cmd {cmd}, 2^62 body"),
        );
    }
    for cmd in [CMD_GET_METADATA, CMD_DOWNLOAD_FILE, CMD_UNKNOWN] {
        send_and_expect_closed(
            storage,
            header(huge, cmd, 0),
            &[],
            &format!("storage, cmd {cmd}, 2^62 body"),
        );
    }
    // An upload announcing 4 EiB with consistent fixed fields: must be refused (no space),
    // never wait for the content.
    let mut fixed = vec![0xFF];
    fixed.extend_from_slice(&(huge - 15).to_be_bytes());
    fixed.extend_from_slice(&padded("bin", 6));
    send_and_expect_closed(
        storage,
        header(huge, CMD_UPLOAD_FILE, 0),
        &fixed,
        "storage, 2^62-byte upload",
    );
    cluster.assert_serves("huge_body_length_closes_connection");
}

#[test]
fn negative_body_length_closes_connection() {
    let mut cluster = Cluster::start();
    // Bit 63 set: a negative i64 on the wire.
    let negative = (1u64 << 63) | 16;
    send_and_expect_closed(
        cluster.tracker_addr(),
        header(negative, CMD_QUERY_STORE_ONE, 0),
        &[0; 16],
        "tracker",
    );
    let storage = cluster.storage_addr(0);
    send_and_expect_closed(
        storage,
        header(negative, CMD_GET_METADATA, 0),
        &[0; 16],
        "storage get-metadata",
    );
    send_and_expect_closed(
        storage,
        header(negative, CMD_UPLOAD_FILE, 0),
        &[0; 16],
        "storage upload",
    );
    cluster.assert_serves("negative_body_length_closes_connection");
}

#[test]
fn garbage_bytes_close_connection() {
    let mut cluster = Cluster::start();
    let http = b"GET / HTTP/1.1\r\nHost: fdfs\r\nUser-Agent: it\r\n\r\n";
    let noise = random_bytes("garbage_bytes_close_connection", 300);
    for (name, addr) in [
        ("tracker", cluster.tracker_addr()),
        ("storage", cluster.storage_addr(0)),
    ] {
        // Its first 8 bytes announce ~5e18 body bytes: must close at once.
        let mut raw = Raw::connect(addr);
        let _ = raw.send_bytes(http);
        expect_closed(&mut raw, &format!("{name}: HTTP request"));

        // Random bytes and then EOF from our side: whatever they parse as, the server must
        // end up closing.
        let mut raw = Raw::connect(addr);
        let _ = raw.send_bytes(&noise);
        raw.shutdown_write();
        expect_closed(&mut raw, &format!("{name}: random bytes then EOF"));
    }
    cluster.assert_serves("garbage_bytes_close_connection");
}

#[test]
fn unknown_command_is_einval() {
    let mut cluster = Cluster::start();
    let tracker = cluster.tracker_addr();
    let mut raw = Raw::connect(tracker);
    let reply = raw.request(CMD_UNKNOWN, &[]);
    assert_eq!(
        reply.status, EINVAL,
        "tracker: unknown command {CMD_UNKNOWN}: {reply:?}"
    );
    assert!(
        reply.body.is_empty(),
        "tracker: error reply with a body: {reply:?}"
    );
    // The request was read whole, so the tracker keeps the connection (as upstream does).
    let reply = raw.request(CMD_ACTIVE_TEST, &[]);
    assert_eq!(
        (reply.status, reply.body.len()),
        (0, 0),
        "tracker: ACTIVE_TEST after EINVAL: {reply:?}"
    );

    let storage = cluster.storage_addr(0);
    for cmd in [CMD_UNKNOWN, CMD_UNUSED_39] {
        let status = expect_error_reply(
            storage,
            cmd,
            &[],
            &format!("storage: unknown command {cmd}"),
        );
        assert_eq!(
            status, EINVAL,
            "storage: unknown command {cmd} must be EINVAL"
        );
    }
    // An unknown command with a small body: still EINVAL, not a hang waiting for more.
    let status = expect_error_reply(
        storage,
        CMD_UNKNOWN,
        &[7; 20],
        "storage: unknown command with a body",
    );
    assert_eq!(status, EINVAL, "storage: unknown command with a body");
    cluster.assert_serves("unknown_command_is_einval");
}

#[test]
fn active_test_ignores_request_status_byte() {
    let cluster = Cluster::start();
    // py3fdfsv2 sends ACTIVE_TEST with status 2 before reusing a pooled connection.
    for addr in [cluster.tracker_addr(), cluster.storage_addr(0)] {
        let mut raw = Raw::connect(addr);
        raw.send(CMD_ACTIVE_TEST, 2, &[])
            .unwrap_or_else(|e| panic!("{addr}: send: {e}"));
        let reply = raw
            .recv()
            .unwrap_or_else(|e| panic!("{addr}: ACTIVE_TEST with status 2: {e}"));
        assert_eq!(
            (reply.cmd, reply.status, reply.body.len()),
            (CMD_RESP, 0, 0),
            "{addr}: {reply:?}"
        );
    }
}

/// Names in the root of the cluster's temp dir, with the SHA-1 of each regular file.
fn snapshot(root: &Path) -> BTreeSet<(String, Option<String>)> {
    fs::read_dir(root)
        .unwrap_or_else(|e| panic!("list {}: {e}", root.display()))
        .map(|e| {
            let e = e.expect("dir entry");
            let sum = e
                .file_type()
                .ok()
                .filter(|t| t.is_file())
                .and_then(|_| fs::read(e.path()).ok());
            (
                e.file_name().to_string_lossy().into_owned(),
                sum.map(|b| sha1_hex(&b)),
            )
        })
        .collect()
}

/// Request bodies naming `name` (no group) for the storage's file commands.
fn group_and_name(name: &[u8]) -> Vec<u8> {
    let mut b = padded(GROUP, 16);
    b.extend_from_slice(name);
    b
}

fn download_body(name: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0u64.to_be_bytes());
    b.extend_from_slice(&0u64.to_be_bytes());
    b.extend(group_and_name(name));
    b
}

fn set_metadata_body(name: &[u8]) -> Vec<u8> {
    let meta = b"k\x02v";
    let mut b = Vec::new();
    b.extend_from_slice(&(name.len() as u64).to_be_bytes());
    b.extend_from_slice(&(meta.len() as u64).to_be_bytes());
    b.push(b'O');
    b.extend(group_and_name(name));
    b.extend_from_slice(meta);
    b
}

#[test]
fn bad_file_names_touch_nothing_outside_the_store() {
    let mut cluster = Cluster::start();
    let storage = cluster.storage_addr(0);
    let root = cluster.root().to_path_buf();
    let secret = random_bytes("bad_file_names/sentinel", 1_000);
    fs::write(root.join("sentinel.txt"), &secret).expect("write sentinel");

    let data = random_bytes("bad_file_names/real", 2_000);
    let id = cluster.upload(&data, &[]);
    let real = id
        .strip_prefix(&format!("{GROUP}/"))
        .expect("file ID has the group")
        .to_string();
    // `M00/HH/HH/` + 27 base64 chars + 7-char ext part.
    assert_eq!(real.len(), 44, "uploaded a normal file, got name {real:?}");
    let before = snapshot(&root);

    // <root>/s1 is the store path; data lives in <root>/s1/data/HH/HH/.
    let traversals: Vec<Vec<u8>> = vec![
        b"M00/00/00/../../../../sentinel.txt".to_vec(),
        b"M00/../../sentinel.txt".to_vec(),
        // 44 bytes like a real name, so a length check alone does not stop it.
        b"M00/00/00/./././././../../../../sentinel.txt".to_vec(),
        b"M00/00/00//etc/passwd".to_vec(),
        b"../../sentinel.txt".to_vec(),
    ];
    for name in &traversals {
        let shown = String::from_utf8_lossy(name);
        expect_error_reply(
            storage,
            CMD_DOWNLOAD_FILE,
            &download_body(name),
            &format!("download {shown}"),
        );
        expect_error_reply(
            storage,
            CMD_QUERY_FILE_INFO,
            &group_and_name(name),
            &format!("file info {shown}"),
        );
        expect_error_reply(
            storage,
            CMD_GET_METADATA,
            &group_and_name(name),
            &format!("get metadata {shown}"),
        );
        expect_error_reply(
            storage,
            CMD_SET_METADATA,
            &set_metadata_body(name),
            &format!("set metadata {shown}"),
        );
        expect_error_reply(
            storage,
            CMD_DELETE_FILE,
            &group_and_name(name),
            &format!("delete {shown}"),
        );
    }

    let mut bad_base64 = real.clone().into_bytes();
    bad_base64[10..37].fill(b'!');
    let mut with_nul = real.clone().into_bytes();
    with_nul[20] = 0;
    let mut lowercase_dir = real.clone().into_bytes();
    lowercase_dir[4] = b'z';
    let others: Vec<(&str, Vec<u8>)> = vec![
        ("bad base64", bad_base64),
        ("NUL byte", with_nul),
        ("bad directory", lowercase_dir),
        (
            "overlong name",
            format!("{real}{}", "A".repeat(300)).into_bytes(),
        ),
    ];
    for (what, name) in &others {
        expect_error_reply(
            storage,
            CMD_DOWNLOAD_FILE,
            &download_body(name),
            &format!("download, {what}"),
        );
        expect_error_reply(
            storage,
            CMD_DELETE_FILE,
            &group_and_name(name),
            &format!("delete, {what}"),
        );
    }

    // A well-formed name of a file that does not exist: ENOENT, not EINVAL.
    let mut absent = real.clone().into_bytes();
    absent[35] = if absent[35] == b'A' { b'B' } else { b'A' };
    let status = expect_error_reply(
        storage,
        CMD_DOWNLOAD_FILE,
        &download_body(&absent),
        "download, absent file",
    );
    assert_eq!(
        status, ENOENT,
        "download of a well-formed name that does not exist"
    );

    // A store path the storage does not have: EINVAL (PROTOCOL.md §5).
    let missing_path = format!("M05{}", &real[3..]).into_bytes();
    let status = expect_error_reply(
        storage,
        CMD_DOWNLOAD_FILE,
        &download_body(&missing_path),
        "download from M05",
    );
    assert_eq!(
        status, EINVAL,
        "download from a store path that does not exist"
    );

    // The CLI refuses too and prints nothing of the sentinel.
    let run = cluster
        .fdfs(&[
            "download",
            &format!("{GROUP}/M00/00/00/../../../../sentinel.txt"),
            "-",
        ])
        .fails();
    assert!(
        !run.stdout.windows(64).any(|w| w == &secret[..64]),
        "the CLI printed the sentinel's content"
    );

    // Nothing outside the store changed, the real file is intact, and the servers still work.
    assert_eq!(
        snapshot(&root),
        before,
        "the temp dir root changed (files outside the store touched)"
    );
    assert_same_bytes(
        "sentinel",
        &secret,
        &fs::read(root.join("sentinel.txt")).expect("read sentinel"),
    );
    assert_same_bytes("the real file", &data, &cluster.download(&id));
    cluster.assert_serves("bad_file_names_touch_nothing_outside_the_store");
}
