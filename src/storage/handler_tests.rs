//! The storage service driven as the loop drives it, without sockets: which
//! replies wait for the journal.

use super::*;
use crate::config::StorageConfig;
use crate::layout::journal::{FILE_NAME, Header as JournalHeader, replay_records};
use crate::net::{INLINE, Release};
use std::sync::mpsc;
use std::time::Duration;

/// A storage in a temporary directory, not serving.
fn service(dir: &std::path::Path, durable: bool) -> StorageService {
    service_with(dir, |c| c.durable_uploads = durable)
}

/// The same, with `tweak` applied to its config.
fn service_with(dir: &std::path::Path, tweak: impl FnOnce(&mut StorageConfig)) -> StorageService {
    let mut cfg = StorageConfig {
        base_path: dir.join("base"),
        store_paths: vec![dir.join("p0"), dir.join("p1")],
        subdir_count_per_path: 2,
        ..StorageConfig::default()
    };
    tweak(&mut cfg);
    StorageService {
        store: super::super::open(cfg).expect("storage opens"),
    }
}

fn peer() -> SocketAddr {
    "127.0.0.1:5000".parse().unwrap()
}

/// The reply a request's action makes, run here whatever thread it names.
fn run(a: Action) -> Reply {
    match a {
        Action::Reply(r) => r,
        Action::Work { job, .. } => job(),
    }
}

fn request(svc: &StorageService, cmd: Cmd, body: Vec<u8>) -> Reply {
    let mut s = svc.open(peer()).unwrap();
    let h = Header::request(cmd, body.len() as u64);
    assert_eq!(svc.plan(&mut s, &h), Plan::Buffer, "{cmd:?}");
    run(svc.request(&mut s, h, body))
}

/// UPLOAD_FILE of `data` as the loop streams it; the reply and the remote name.
fn upload(svc: &StorageService, data: &[u8]) -> (Reply, String) {
    let mut s = svc.open(peer()).unwrap();
    let head = proto::UploadHead {
        store_path_index: 0xFF,
        file_size: data.len() as u64,
        ext: "txt".into(),
    }
    .encode();
    let h = Header::request(Cmd::UploadFile, (head.len() + data.len()) as u64);
    assert!(matches!(svc.plan(&mut s, &h), Plan::Stream { .. }));
    let Begin::Stream { mut state, .. } = svc.begin_stream(&mut s, &h, &head) else {
        panic!("the upload is refused");
    };
    svc.stream_chunk(&mut state, data).unwrap();
    let reply = svc.stream_end(state);
    assert_eq!(reply.status, 0);
    let remote = proto::UploadReply::decode(&reply.body).unwrap().remote;
    (reply, remote)
}

/// Whether the journal on disk holds a record named `name` (recovery would
/// find it), or a binlog line that mentions it.
fn journaled(dir: &std::path::Path, name: &str) -> bool {
    let bytes = std::fs::read(dir.join("base/data").join(FILE_NAME)).unwrap();
    let h = JournalHeader::decode(&bytes).unwrap();
    replay_records(&bytes, &h).iter().any(|r| {
        r.name == name.as_bytes() || r.data.windows(name.len()).any(|w| w == name.as_bytes())
    })
}

/// Release a held reply; the channel gets, at release time, whether `name`
/// was durable then, and the status the reply goes out with.
fn release(
    reply: &mut Reply,
    dir: &std::path::Path,
    name: &str,
) -> mpsc::Receiver<(bool, Option<u8>)> {
    let hold = reply.hold.take().expect("the reply is held");
    let (tx, rx) = mpsc::channel();
    let (dir, name) = (dir.to_path_buf(), name.to_string());
    let release: Release = Box::new(move |failed| {
        let _ = tx.send((journaled(&dir, &name), failed));
    });
    hold(release);
    rx
}

#[test]
fn a_durable_change_is_answered_once_its_records_are_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), true);
    let (mut reply, remote) = upload(&svc, b"hello, journal");
    let at_release = release(&mut reply, dir.path(), &remote);
    let got = at_release.recv_timeout(Duration::from_secs(30));
    assert_eq!(
        got,
        Ok((true, None)),
        "released with its file and line durable"
    );

    // A change made by a request rather than a stream: metadata.
    let meta = proto::SetMetadata {
        op: proto::MetaOp::Overwrite,
        group: "group1".into(),
        remote: remote.clone(),
        meta: proto::encode_meta(&[("k".into(), "v".into())]),
    };
    let mut reply = request(&svc, Cmd::SetMetadata, meta.encode());
    assert_eq!(reply.status, 0);
    let at_release = release(&mut reply, dir.path(), &format!("{remote}-m"));
    let got = at_release.recv_timeout(Duration::from_secs(30));
    assert_eq!(got, Ok((true, None)));

    // A failed change has nothing to wait for: answered at once.
    let missing = proto::FileRef {
        group: "group1".into(),
        remote: remote.replace(".txt", ".bin"),
    };
    let reply = request(&svc, Cmd::DeleteFile, missing.encode());
    assert_eq!(reply.status, status::ENOENT);
    assert!(reply.hold.is_none());
}

#[test]
fn read_replies_are_never_held() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), true);
    let (mut reply, remote) = upload(&svc, b"some bytes to read back");
    drop(reply.hold.take());
    let file = proto::FileRef {
        group: "group1".into(),
        remote: remote.clone(),
    };
    let download = proto::Download {
        offset: 0,
        length: 0,
        group: "group1".into(),
        remote,
    };
    for (cmd, body) in [
        (Cmd::DownloadFile, download.encode()),
        (Cmd::GetMetadata, file.encode()),
        (Cmd::QueryFileInfo, file.encode()),
    ] {
        let reply = request(&svc, cmd, body);
        assert!(reply.hold.is_none(), "{cmd:?} answered at once");
    }
}

#[test]
fn without_durable_uploads_changes_are_answered_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), false);
    let (reply, remote) = upload(&svc, b"plain");
    assert!(reply.hold.is_none());
    let file = proto::FileRef {
        group: "group1".into(),
        remote,
    };
    let reply = request(&svc, Cmd::DeleteFile, file.encode());
    assert_eq!(reply.status, 0);
    assert!(reply.hold.is_none());
}

/// Where the handler sends a request: `None` answered in the handler,
/// else the pool index (`INLINE` for a timed job on the network thread).
fn placed(svc: &StorageService, cmd: Cmd, body: Vec<u8>) -> Option<usize> {
    let mut s = svc.open(peer()).unwrap();
    let h = Header::request(cmd, body.len() as u64);
    match svc.request(&mut s, h, body) {
        Action::Reply(_) => None,
        Action::Work { pool, .. } => Some(pool),
    }
}

/// The pool a streamed upload of `size` bytes to store path 1 is written on.
fn upload_pool(svc: &StorageService, size: u64) -> usize {
    let mut s = svc.open(peer()).unwrap();
    let head = proto::UploadHead {
        store_path_index: 1,
        file_size: size,
        ext: String::new(),
    }
    .encode();
    let h = Header::request(Cmd::UploadFile, head.len() as u64 + size);
    match svc.begin_stream(&mut s, &h, &head) {
        Begin::Stream { pool, .. } => pool,
        _ => panic!("the upload is refused"),
    }
}

#[test]
fn the_handler_runs_requests_where_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), false);
    let (_, remote) = upload(&svc, b"placed");
    let idx = crate::layout::RemoteName::parse(&remote)
        .unwrap()
        .store_index as usize;
    let file = proto::FileRef {
        group: "group1".into(),
        remote: remote.clone(),
    };
    // Small changes on the network thread, timed.
    assert_eq!(
        placed(&svc, Cmd::SetMetadata, set_meta(&remote)),
        Some(INLINE)
    );
    assert_eq!(upload_pool(&svc, 4096), INLINE);
    // A body bigger than one chunk goes to its store path's disk threads.
    assert_eq!(upload_pool(&svc, 1 << 20), 1);
    // So does a change whose file another change holds.
    let path = disk::resolve(&svc.store, "group1", &remote).unwrap().path;
    let held = svc.store.file_locks.lock(&path);
    assert_eq!(placed(&svc, Cmd::DeleteFile, file.encode()), Some(idx));
    drop(held);
    // Reads without a cached answer go to the disk threads.
    assert_eq!(placed(&svc, Cmd::QueryFileInfo, file.encode()), Some(idx));
    assert_eq!(placed(&svc, Cmd::ActiveTest, Vec::new()), None);

    let dir = tempfile::tempdir().unwrap();
    let svc = service_with(dir.path(), |c| {
        c.disk_inline_reads = true;
        c.disk_inline_writes = false;
    });
    let (_, remote) = upload(&svc, b"placed");
    let idx = crate::layout::RemoteName::parse(&remote)
        .unwrap()
        .store_index as usize;
    let file = proto::FileRef {
        group: "group1".into(),
        remote: remote.clone(),
    };
    assert_eq!(placed(&svc, Cmd::QueryFileInfo, file.encode()), None);
    assert_eq!(placed(&svc, Cmd::SetMetadata, set_meta(&remote)), Some(idx));
    assert_eq!(upload_pool(&svc, 4096), 1);
}

fn set_meta(remote: &str) -> Vec<u8> {
    proto::SetMetadata {
        op: proto::MetaOp::Merge,
        group: "group1".into(),
        remote: remote.to_string(),
        meta: proto::encode_meta(&[("k".into(), "v".into())]),
    }
    .encode()
}
