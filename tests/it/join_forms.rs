//! Membership on the wire as C FastDFS servers see it: an fdfs storage that meets a tracker
//! refusing JOIN's 6.15+ tracker lines (a 6.11-6.14 tracker) joins with the slot form, and
//! an fdfs tracker answers GET_MY_IP (what a C storage asks first) with and without storage
//! ids. A scripted tracker stands in for the old one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::util::*;

/// STORAGE_JOIN, STORAGE_GET_MY_IP.
const CMD_JOIN: u8 = 81;
const CMD_GET_MY_IP: u8 = 60;
/// The JOIN fixed part since 6.13, and one tracker slot of 6.11-6.14.
const JOIN_FIXED: usize = 145;
const SLOT: usize = 100;

/// How a JOIN body lists its trackers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Lines,
    Slots,
    Other,
}

fn form(body: &[u8]) -> Form {
    if body.len() < JOIN_FIXED {
        return Form::Other;
    }
    let count = u64::from_be_bytes(
        body[JOIN_FIXED - 8..JOIN_FIXED]
            .try_into()
            .expect("8 bytes"),
    );
    let list = &body[JOIN_FIXED..];
    if list.len() as u64 == count * SLOT as u64 {
        Form::Slots
    } else if list.ends_with(b"\n") && !list.contains(&0) {
        Form::Lines
    } else {
        Form::Other
    }
}

/// A tracker of 6.11-6.14 as far as a storage can tell: it refuses a JOIN whose trackers
/// are lines (EINVAL, its length check), accepts slots, and answers everything else with
/// an empty success. Records the form of every JOIN.
fn old_tracker(listener: TcpListener, seen: Arc<Mutex<Vec<Form>>>) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { return };
        let seen = seen.clone();
        thread::spawn(move || {
            loop {
                let mut h = [0u8; 10];
                if s.read_exact(&mut h).is_err() {
                    return;
                }
                let len = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
                if len > 1 << 20 {
                    return;
                }
                let mut body = vec![0u8; len as usize];
                if s.read_exact(&mut body).is_err() {
                    return;
                }
                let (status, reply) = match h[8] {
                    CMD_JOIN => {
                        let f = form(&body);
                        seen.lock().unwrap_or_else(|p| p.into_inner()).push(f);
                        // my_status ACTIVE (7), no sync source.
                        let mut ok = vec![7u8];
                        ok.extend_from_slice(&[0; 16]);
                        if f == Form::Slots {
                            (0, ok)
                        } else {
                            (EINVAL, Vec::new())
                        }
                    }
                    82 => return, // QUIT
                    _ => (0, Vec::new()),
                };
                let mut out = header(reply.len() as u64, CMD_RESP, status).to_vec();
                out.extend_from_slice(&reply);
                if s.write_all(&out).is_err() {
                    return;
                }
            }
        });
    }
}

#[test]
fn storage_joins_a_tracker_that_refuses_lines_with_slots() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in tracker");
    let tracker = listener.local_addr().expect("local addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    thread::spawn(move || old_tracker(listener, s2));

    let dir = tempfile::Builder::new()
        .prefix("fdfs-join-")
        .tempdir()
        .expect("temp dir");
    let base = dir.path().join("storage");
    std::fs::create_dir_all(&base).expect("mkdir");
    let conf = dir.path().join("storage.conf");
    let text = format!(
        "group_name = group1\nbind_addr = 127.0.0.2\nport = 0\nbase_path = {b}\n\
         store_path0 = {b}\nsubdir_count_per_path = 16\ntracker_server = {tracker}\n\
         heart_beat_interval = 1\n",
        b = base.display()
    );
    std::fs::write(&conf, text).expect("write storage.conf");
    let _storage = start_storage_conf("storage", &conf, dir.path(), base.join("logs"));

    let forms = poll_until(
        "a JOIN with tracker slots after one with lines was refused",
        Duration::from_secs(15),
        || {
            let s = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
            match s.iter().position(|f| *f == Form::Slots) {
                Some(_) => Ok(s),
                None => Err(format!("JOINs so far: {s:?}")),
            }
        },
    );
    assert_eq!(
        forms[0],
        Form::Lines,
        "the first JOIN uses the 6.15+ lines: {forms:?}"
    );
    assert!(
        !forms.contains(&Form::Other),
        "every JOIN has one of the two forms: {forms:?}"
    );
    let log = std::fs::read_to_string(base.join("logs/storaged.log")).unwrap_or_default();
    assert!(
        log.contains("WARN") && log.contains("refused our JOIN"),
        "the refusal is logged as a warning:\n{log}"
    );
}

/// GET_MY_IP from a socket bound to `from`, for a storage of group1 on `port`.
fn get_my_ip(tracker: SocketAddr, from: &str, port: u32) -> (u8, String) {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let local: SocketAddr = format!("{from}:0").parse().expect("ip");
    sock.bind(&local.into()).expect("bind the source address");
    sock.connect(&tracker.into())
        .expect("connect to the tracker");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut body = padded("group1", 17);
    body.extend_from_slice(&port.to_be_bytes());
    let mut out = header(body.len() as u64, CMD_GET_MY_IP, 0).to_vec();
    out.extend_from_slice(&body);
    s.write_all(&out).expect("send");
    let mut h = [0u8; 10];
    s.read_exact(&mut h).expect("reply header");
    let len = u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) as usize;
    let mut reply = vec![0u8; len];
    s.read_exact(&mut reply).expect("reply body");
    (h[9], String::from_utf8_lossy(&reply).into_owned())
}

#[test]
fn tracker_answers_get_my_ip_with_and_without_storage_ids() {
    let plain = Cluster::builder().storages(0).start();
    assert_eq!(
        get_my_ip(plain.tracker_addr(), "127.0.0.9", 23000),
        (0, "127.0.0.9".to_string()),
        "without storage ids: the address the request comes from"
    );

    let ids = tempfile::NamedTempFile::new().expect("ids file");
    std::fs::write(ids.path(), "100001 group1 127.0.0.9,10.9.9.9:23000\n").expect("write ids");
    let with_ids = Cluster::builder()
        .storages(0)
        .tracker_conf("use_storage_id", "true")
        .tracker_conf("storage_ids_filename", ids.path().to_str().expect("utf-8"))
        .start();
    let t = with_ids.tracker_addr();
    assert_eq!(
        get_my_ip(t, "127.0.0.9", 23000),
        (0, "127.0.0.9,10.9.9.9".to_string()),
        "with storage ids: every address of the matching entry"
    );
    assert_eq!(
        get_my_ip(t, "127.0.0.8", 23000),
        (0, "127.0.0.8".to_string()),
        "no entry for the address: the address itself, as upstream"
    );
    // A short body is refused and the connection stays usable for the next request.
    let mut raw = Raw::connect(t);
    assert_eq!(raw.request(CMD_GET_MY_IP, b"group1").status, EINVAL);
    assert_eq!(raw.request(CMD_ACTIVE_TEST, &[]).status, 0);
}
