//! Pushing our binlog to the other storages of the group (SYNC.md §3-§5): one
//! thread per peer reads the binlog from the position in its mark file and
//! sends each record that peer needs; a new server's assigned source also
//! sends the history it holds as replicas.

use super::Store;
use super::sync_status::{self, Next};
use crate::client::{Connection, Error};
use crate::layout::RemoteName;
use crate::layout::binlog::{Mark, Record};
use crate::proto::{self, Cmd, status, storage_status as st};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::binlog::Reader;

/// A peer as the trackers last described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    pub ip: String,
    pub port: u16,
    pub status: u8,
}

/// How far the push thread to a peer has come, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Binlog position of the next record to push.
    pub pos: (u32, u64),
    /// Timestamp of the last record passed (pushed or not needed there).
    pub timestamp: u32,
}

/// The other servers of our group and their push threads.
#[derive(Default)]
pub struct Peers {
    map: Mutex<HashMap<String, Peer>>,
    changed: Condvar,
    progress: Mutex<HashMap<String, Progress>>,
}

impl Peers {
    /// Where the push thread of each peer is.
    pub fn progress(&self) -> Vec<(String, Progress)> {
        let mut v: Vec<_> = (self.progress.lock().iter())
            .map(|(k, p)| (k.clone(), *p))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn set_progress(&self, id: &str, p: Progress) {
        self.progress.lock().insert(id.to_string(), p);
    }

    /// A peer by id.
    pub fn get(&self, id: &str) -> Option<Peer> {
        self.map.lock().get(id).cloned()
    }

    /// Ids of every known peer.
    pub fn ids(&self) -> Vec<String> {
        self.map.lock().keys().cloned().collect()
    }

    /// Wait up to `d` for the peer list to change.
    fn wait(&self, d: Duration) {
        let mut m = self.map.lock();
        self.changed.wait_for(&mut m, d);
    }

    /// Wake threads waiting on peer changes (shutdown).
    pub fn wake(&self) {
        let _m = self.map.lock();
        self.changed.notify_all();
    }
}

/// Apply a server list from a tracker: record statuses, start a push thread
/// for every new peer.
pub fn update(store: &Arc<Store>, briefs: &[proto::Brief], quit: &Arc<AtomicBool>) {
    let me = store.identity.my_id();
    let mut new = Vec::new();
    {
        let mut m = store.peers.map.lock();
        for b in briefs.iter().filter(|b| b.id != me && !b.id.is_empty()) {
            let p = Peer {
                id: b.id.clone(),
                ip: b.ip.clone(),
                port: b.port as u16,
                status: b.status,
            };
            match m.insert(b.id.clone(), p.clone()) {
                None => new.push(p),
                Some(old) if old != p => log::debug!(
                    "peer {} now {}:{} {}",
                    p.id,
                    p.ip,
                    p.port,
                    st::name(p.status)
                ),
                Some(_) => {}
            }
        }
        store.peers.changed.notify_all();
    }
    for p in new {
        log::info!(
            "peer {} at {}:{} ({}): starting to push to it",
            p.id,
            p.ip,
            p.port,
            st::name(p.status)
        );
        let (s, q, id) = (store.clone(), quit.clone(), p.id.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("fdfs-sync-{}", p.id))
            .spawn(move || run(&s, &id, &q));
        match spawned {
            Ok(h) => store.add_thread(h),
            Err(e) => log::error!("starting the push thread for {}: {e}", p.id),
        }
    }
}

fn gone(status: u8) -> bool {
    matches!(status, st::DELETED | st::IP_CHANGED | st::NONE)
}

/// The push thread of one peer: sessions with retries and growing pauses.
fn run(store: &Arc<Store>, id: &str, quit: &AtomicBool) {
    let mut pause = Duration::from_millis(500);
    let mut last_err = String::new();
    while !quit.load(Ordering::SeqCst) {
        let Some(peer) = store.peers.get(id) else {
            return;
        };
        if gone(peer.status) {
            log::info!("peer {id} is {}: push thread ends", st::name(peer.status));
            return;
        }
        if !matches!(peer.status, st::WAIT_SYNC | st::SYNCING | st::ACTIVE) {
            store.peers.wait(Duration::from_secs(1));
            continue;
        }
        match session(store, &peer, quit) {
            Ok(()) => {
                pause = Duration::from_millis(500);
                last_err.clear();
            }
            Err(e) => {
                let msg = e.to_string();
                if msg != last_err {
                    log::warn!(
                        "push to {}:{} ({id}): {msg}; will retry",
                        peer.ip,
                        peer.port
                    );
                    last_err = msg;
                }
                store.peers.wait(pause);
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The peer, if we should still be pushing to it.
fn still_wanted(store: &Store, id: &str, quit: &AtomicBool) -> Option<Peer> {
    if quit.load(Ordering::SeqCst) {
        return None;
    }
    store
        .peers
        .get(id)
        .filter(|p| matches!(p.status, st::WAIT_SYNC | st::SYNCING | st::ACTIVE))
}

fn other(msg: String) -> Error {
    Error::Protocol {
        addr: "sync".into(),
        msg,
    }
}

/// One connection to the peer: set up the reader, then push until the peer
/// leaves, we stop, or a push fails (the mark keeps the failed record).
fn session(store: &Arc<Store>, peer: &Peer, quit: &AtomicBool) -> Result<(), Error> {
    let cfg = &store.cfg;
    let sync_dir = store.binlog.dir().to_path_buf();
    let mark_path = store.mark_path(&peer.id, &peer.ip);
    let local = |err| Error::Local {
        path: mark_path.display().to_string(),
        err,
    };
    let saved = Mark::load(&mark_path).map_err(local)?;
    let mut mark = match saved {
        Some(m) if !matches!(peer.status, st::WAIT_SYNC) => m,
        saved => init_mark(store, peer, saved)?,
    };
    mark.save(&mark_path).map_err(local)?;
    let is_source_pushing_old = mark.need_sync_old && !mark.sync_old_done;
    if !is_source_pushing_old {
        // Only the source talks to a server that is still being filled.
        while still_wanted(store, &peer.id, quit).is_some_and(|p| p.status != st::ACTIVE) {
            store.peers.wait(Duration::from_secs(1));
        }
    }
    let Some(peer) = still_wanted(store, &peer.id, quit) else {
        return Ok(());
    };
    let addr = format!("{}:{}", peer.ip, peer.port);
    let mut c = Connection::connect(&addr, store.timeouts(), store.outbound_ip())?;
    c.call(
        Cmd::ReportServerId,
        &proto::sync::encode_report_server_id(&store.identity.my_id()),
        0,
    )?;
    if is_source_pushing_old && peer.status == st::WAIT_SYNC {
        report_status(store, &peer, st::SYNCING);
    }
    let mut reader = Reader::new(&sync_dir, mark.binlog_index, mark.binlog_offset);
    let start = Progress {
        pos: (mark.binlog_index, mark.binlog_offset),
        timestamp: 0,
    };
    store.peers.set_progress(&peer.id, start);
    let mut unsaved = 0u32;
    let mut last_io = Instant::now();
    let heartbeat = cfg.heart_beat_interval.max(Duration::from_secs(1));
    loop {
        let now = still_wanted(store, &peer.id, quit);
        // A peer back in WAIT_SYNC lost its data and was given a source again:
        // start over so that, if we are that source, it gets the history.
        let refill = now.as_ref().is_some_and(|p| p.status == st::WAIT_SYNC)
            && (!mark.need_sync_old || mark.sync_old_done);
        if now.is_none() || refill {
            mark.save(&mark_path).map_err(local)?;
            return Ok(());
        }
        let seq = store.binlog.seq();
        let skipped = reader.skipped;
        let rec = reader.next(store.binlog.write_pos()).map_err(local)?;
        if reader.skipped > skipped {
            // Anti-entropy covers what the record would have done.
            let f = &store.repair.figures.bad_binlog_records;
            f.fetch_add(
                reader.skipped - skipped,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        match rec {
            Some(rec) => {
                mark.scan_row_count += 1;
                if wanted(&rec, &mark) && push(store, &mut c, &peer, &rec)? {
                    mark.sync_row_count += 1;
                    last_io = Instant::now();
                }
                // Only now is the record done: a failed push returns above and
                // is retried from the saved position.
                mark.binlog_index = reader.index;
                mark.binlog_offset = reader.offset;
                let now_at = Progress {
                    pos: (reader.index, reader.offset),
                    timestamp: rec.timestamp,
                };
                store.peers.set_progress(&peer.id, now_at);
                unsaved += 1;
                if unsaved >= cfg.write_mark_file_freq.max(1) {
                    mark.save(&mark_path).map_err(local)?;
                    unsaved = 0;
                }
            }
            None => {
                if mark.need_sync_old && !mark.sync_old_done {
                    mark.sync_old_done = true;
                    mark.save(&mark_path).map_err(local)?;
                    log::info!(
                        "peer {} has every old file: reporting it OFFLINE so it can become ACTIVE",
                        peer.id
                    );
                    report_status(store, &peer, st::OFFLINE);
                    unsaved = 0;
                }
                if unsaved > 0 {
                    mark.save(&mark_path).map_err(local)?;
                    unsaved = 0;
                }
                if last_io.elapsed() >= heartbeat {
                    c.call(Cmd::ActiveTest, &[], 0)?;
                    last_io = Instant::now();
                }
                store
                    .binlog
                    .wait(seq, cfg.sync_wait_msec.max(Duration::from_millis(10)));
            }
        }
    }
}

/// A fresh reader position for `peer`: ask a tracker who its sync source is.
/// As its source we push the whole history; otherwise we start where its
/// source's copy ends (the sync-until time).
fn init_mark(store: &Store, peer: &Peer, saved: Option<Mark>) -> Result<Mark, Error> {
    let (src, until) = sync_src_of(store, &peer.id)?;
    let need_old = src == store.identity.my_id();
    if let Some(m) = saved {
        if !need_old || (m.need_sync_old && m.until_timestamp == until) {
            return Ok(m);
        }
        log::info!(
            "peer {} needs a full copy from us again (sync until {until})",
            peer.id
        );
    }
    let mut mark = Mark {
        need_sync_old: need_old,
        until_timestamp: until,
        ..Mark::default()
    };
    if !need_old && until > 0 {
        // Skip what the peer receives from its source.
        let mut r = Reader::new(store.binlog.dir(), 0, 0);
        let end = store.binlog.write_pos();
        loop {
            let (i, o) = (r.index, r.offset);
            match r.next(end).map_err(|err| Error::Local {
                path: "binlog".into(),
                err,
            })? {
                Some(rec) if (rec.timestamp as u64) < until => {}
                _ => {
                    (mark.binlog_index, mark.binlog_offset) = (i, o);
                    break;
                }
            }
        }
    }
    Ok(mark)
}

/// SYNC.md §3.3: which records go to this peer.
fn wanted(r: &Record, m: &Mark) -> bool {
    if r.is_source() {
        return true;
    }
    match r.op {
        b'c' | b'd' | b'u' | b'l' | b'r' => {
            m.need_sync_old && !m.sync_old_done && (r.timestamp as u64) <= m.until_timestamp
        }
        _ => false,
    }
}

/// Send one record. Ok(false) when there was nothing to send (the file is
/// gone, or the op has no push form). What each answer means is
/// [`sync_status::next`].
fn push(store: &Store, c: &mut Connection, peer: &Peer, r: &Record) -> Result<bool, Error> {
    let Some(path) = local_path(store, &r.name) else {
        log::warn!(
            "binlog record for {:?}: not a file of ours, skipped",
            r.name
        );
        return Ok(false);
    };
    let group = store.cfg.group_name.clone();
    let (cmd, answer) = match r.op {
        b'C' | b'c' => return push_whole(store, c, peer, Cmd::SyncCreateFile, r, &path),
        b'U' | b'u' => return push_whole(store, c, peer, Cmd::SyncUpdateFile, r, &path),
        // A rename a new server receives as history: the file under its new name.
        b'r' => return push_whole(store, c, peer, Cmd::SyncCreateFile, r, &path),
        b'D' | b'd' => {
            if path.exists() {
                // Created again since: nothing to delete.
                return Ok(false);
            }
            let body = proto::sync::SyncDelete {
                timestamp: r.timestamp,
                group,
                remote: r.name.clone(),
            }
            .encode();
            let cmd = Cmd::SyncDeleteFile;
            (cmd, c.call(cmd, &body, 0).map(drop))
        }
        b'A' | b'M' => {
            let Some((offset, length)) = two_numbers(&r.extra) else {
                return skip(r);
            };
            let Ok(mut f) = File::open(&path) else {
                return Ok(false);
            };
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            if size < offset + length {
                // Truncated since: a later record brings the file's state.
                return Ok(false);
            }
            let cmd = if r.op == b'A' {
                Cmd::SyncAppendFile
            } else {
                Cmd::SyncModifyFile
            };
            let head = proto::sync::SyncWriteHead {
                remote: r.name.clone(),
                offset,
                length,
                timestamp: r.timestamp,
                group,
            }
            .encode();
            c.send_with_len(cmd, &head, head.len() as u64 + length)?;
            f.seek(SeekFrom::Start(offset))
                .map_err(|err| Error::Local {
                    path: path.display().to_string(),
                    err,
                })?;
            c.send_file(&mut f, length)?;
            store.stats.sent(length);
            (cmd, c.recv_header(cmd).map(drop))
        }
        b'T' => {
            let Some((old_size, new_size)) = two_numbers(&r.extra) else {
                return skip(r);
            };
            // Sent even when our file is gone (upstream skips it): renamed
            // since, the peer's copy still needs it before the rename.
            let body = proto::sync::SyncTruncate {
                remote: r.name.clone(),
                old_size,
                new_size,
                timestamp: r.timestamp,
                group,
            }
            .encode();
            let cmd = Cmd::SyncTruncateFile;
            (cmd, c.call(cmd, &body, 0).map(drop))
        }
        b'R' => {
            if !path.exists() {
                return Ok(false);
            }
            let body = link_body(r, group);
            let cmd = Cmd::SyncRenameFile;
            // A C 6.16.1 receiver answers a rename it applied with a body as long
            // as the request's (its reply length is left at the request's,
            // storage_deal_task): read and ignore up to that much.
            (cmd, c.call(cmd, &body, body.len().max(4096)).map(drop))
        }
        b'L' | b'l' => {
            // Gone, or no longer a link: nothing to make (as upstream).
            let is_link =
                std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
            if !is_link {
                return Ok(false);
            }
            if r.extra.is_empty() {
                return skip(r);
            }
            let body = link_body(r, group);
            let cmd = Cmd::SyncCreateLink;
            (cmd, c.call(cmd, &body, 0).map(drop))
        }
        _ => return skip(r),
    };
    let whole = if matches!(r.op, b'R' | b'L' | b'l') {
        Cmd::SyncCreateFile
    } else {
        Cmd::SyncUpdateFile
    };
    match settle(store, peer, cmd, r, answer)? {
        Next::Done => Ok(true),
        Next::SendWhole => push_whole(store, c, peer, whole, r, &path),
        Next::CheckSize => {
            let (_, new_size) = two_numbers(&r.extra).expect("a T record with sizes was pushed");
            let body = proto::FileRef {
                group: store.cfg.group_name.clone(),
                remote: r.name.clone(),
            }
            .encode();
            let cmd = Cmd::QueryFileInfo;
            let info = c.call_flagged(cmd, proto::QUERY_FLAG_NO_CRC32, &body, 128);
            let size = match info {
                Ok(b) => {
                    proto::FileInfo::decode(&b)
                        .map_err(|e| other(format!("QUERY_FILE_INFO reply: {e}")))?
                        .size
                }
                Err(e) => {
                    settle(store, peer, cmd, r, Err(e))?;
                    return push_whole(store, c, peer, whole, r, &path);
                }
            };
            if size == new_size {
                return Ok(true);
            }
            store.sync_log.log(log::Level::Info, &sync_status::to_key(&peer.id), || {
                format!(
                    "push of {} to {}: its size is {size}, not the truncate's {new_size}: sending the whole file",
                    r.name,
                    peer_name(peer)
                )
            });
            push_whole(store, c, peer, whole, r, &path)
        }
        Next::Retry => unreachable!("settle returns the error of a record to retry"),
    }
}

/// What the peer's `answer` to `cmd`, pushed for `r`, means to us
/// ([`sync_status::next`]); logged (throttled) unless it is a plain success.
/// A record to retry comes back as the error, which ends the session.
fn settle(
    store: &Store,
    peer: &Peer,
    cmd: Cmd,
    r: &Record,
    answer: Result<(), Error>,
) -> Result<Next, Error> {
    let (code, err) = match answer {
        Ok(()) => return Ok(Next::Done),
        Err(e) => match e.status() {
            Some(code) => (code, e),
            None => return Err(e),
        },
    };
    let next = sync_status::next(cmd, code);
    let (level, then) = match next {
        Next::Done => (log::Level::Debug, "done"),
        Next::CheckSize => (log::Level::Debug, "asking its size"),
        Next::SendWhole => (log::Level::Info, "sending the whole file"),
        Next::Retry => (log::Level::Warn, "refused, will retry"),
    };
    store
        .sync_log
        .log(level, &sync_status::to_key(&peer.id), || {
            format!(
                "push of {} {} {} to {}: {} answered {}; {then}",
                r.op as char,
                r.name,
                r.extra,
                peer_name(peer),
                cmd.name(),
                status::name(code)
            )
        });
    if next == Next::Retry {
        Err(err)
    } else {
        Ok(next)
    }
}

/// How log lines name a peer: its address, and its id when that differs.
fn peer_name(p: &Peer) -> String {
    if p.id == p.ip {
        format!("{}:{}", p.ip, p.port)
    } else {
        format!("{}:{} ({})", p.ip, p.port, p.id)
    }
}

/// SYNC_RENAME_FILE and SYNC_CREATE_LINK bodies: the record's name, and the
/// name in its extra field (the old name, or the link's target).
fn link_body(r: &Record, group: String) -> Vec<u8> {
    proto::sync::SyncLink {
        dest: r.name.clone(),
        src: r.extra.clone(),
        timestamp: r.timestamp,
        group,
    }
    .encode()
}

fn skip(r: &Record) -> Result<bool, Error> {
    log::warn!(
        "binlog record {} {:?} {:?}: not pushed by this version, skipped",
        r.op as char,
        r.name,
        r.extra
    );
    Ok(false)
}

/// "a b" -> (a, b).
fn two_numbers(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(' ')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Our path of a remote name, if it is one of our store paths.
fn local_path(store: &Store, remote: &str) -> Option<std::path::PathBuf> {
    let n = RemoteName::parse(remote).ok()?;
    store
        .paths
        .get(n.store_index as usize)
        .map(|sp| sp.file_path(&n))
}

/// SYNC_CREATE_FILE / SYNC_UPDATE_FILE of `r`'s file with its current content.
fn push_whole(
    store: &Store,
    c: &mut Connection,
    peer: &Peer,
    cmd: Cmd,
    r: &Record,
    path: &std::path::Path,
) -> Result<bool, Error> {
    let local = |err| Error::Local {
        path: path.display().to_string(),
        err,
    };
    let mut f = match File::open(path) {
        Ok(f) => f,
        // Deleted (or renamed) since: a later record says so.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(local(err)),
    };
    let size = f.metadata().map_err(local)?.len();
    let head = proto::sync::SyncCreateHead {
        remote: r.name.clone(),
        file_size: size,
        timestamp: r.timestamp,
        group: store.cfg.group_name.clone(),
    };
    let head = head.encode();
    c.send_with_len(cmd, &head, head.len() as u64 + size)?;
    c.send_file(&mut f, size)?;
    settle(store, peer, cmd, r, c.recv_header(cmd).map(drop))?;
    store.stats.sent(size);
    Ok(true)
}

/// SYNC_SRC_REQ to the first tracker that answers: (source id, until).
fn sync_src_of(store: &Store, peer_id: &str) -> Result<(String, u64), Error> {
    let body = proto::GroupStorage {
        group: store.cfg.group_name.clone(),
        id: peer_id.to_string(),
    }
    .encode();
    let mut last = None;
    for t in &store.cfg.tracker_servers {
        match Connection::connect(t, store.timeouts(), store.outbound_ip())
            .and_then(|mut c| c.call(Cmd::StorageSyncSrcReq, &body, 64))
        {
            Ok(r) if r.is_empty() => return Ok((String::new(), 0)),
            Ok(r) => {
                let s = proto::SyncSrc::decode(&r).map_err(|e| other(e.to_string()))?;
                return Ok((s.src_id, s.until_timestamp));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| other("no tracker configured".into())))
}

/// REPORT_STATUS of a peer we push to, to every tracker.
fn report_status(store: &Store, peer: &Peer, status: u8) {
    let body = proto::ReportStatus {
        group: store.cfg.group_name.clone(),
        server: proto::Brief {
            status,
            port: peer.port as u32,
            id: peer.id.clone(),
            ip: peer.ip.clone(),
        },
    }
    .encode();
    for t in &store.cfg.tracker_servers {
        let r = Connection::connect(t, store.timeouts(), store.outbound_ip())
            .and_then(|mut c| c.call(Cmd::StorageReportStatus, &body, 0));
        if let Err(e) = r {
            log::warn!(
                "reporting {} {} to tracker {t}: {e}",
                peer.id,
                st::name(status)
            );
        }
    }
}

/// Give the threads a last chance to save their marks on shutdown.
pub fn stop(store: &Store) {
    store.peers.wake();
    store.binlog.wake_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_filter() {
        let fresh = Mark::default();
        let old = Mark {
            need_sync_old: true,
            until_timestamp: 100,
            ..Mark::default()
        };
        let done = Mark {
            sync_old_done: true,
            ..old.clone()
        };
        let c = |op: u8, ts: u32| Record::new(ts, op, "M00/00/00/x");
        assert!(wanted(&c(b'C', 500), &fresh));
        assert!(!wanted(&c(b'c', 50), &fresh), "replicas are not forwarded");
        assert!(
            wanted(&c(b'c', 50), &old),
            "a new server's source sends its history"
        );
        assert!(
            !wanted(&c(b'c', 150), &old),
            "but not what arrived after the until time"
        );
        assert!(!wanted(&c(b'c', 50), &done));
        assert!(!wanted(&c(b'a', 50), &old), "deltas are never forwarded");
    }
}
