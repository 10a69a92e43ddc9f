//! Anti-entropy: compare this storage's tree with each fdfs peer's, digest by
//! digest, and repair this side; and the one way a file is copied here from
//! a peer (checked before it is used).

use super::Figures;
use super::tree::{self, Named};
use crate::client::{Connection, StorageClient};
use crate::layout::binlog::{Record, op};
use crate::layout::{Source, StorePath};
use crate::proto::repair::{self as wire, DigestQuery, DirDigest, Entry, Kind};
use crate::proto::{self, Cmd, status};
use crate::storage::sync::Peer;
use crate::storage::{Store, now};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// What a copy must be to be used.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// The size and CRC32 its ID promises (a normal file).
    Promised,
    /// The size (and for a metadata file the CRC32) a peer's listing gave.
    Listed { size: u64, crc: u32 },
    /// Whatever a peer serves (appender and slave files found unreadable).
    Any,
}

/// The ACTIVE peers of our group.
fn active_peers(store: &Store) -> Vec<Peer> {
    let mut v: Vec<Peer> = store
        .peers
        .ids()
        .into_iter()
        .filter_map(|id| store.peers.get(&id))
        .filter(|p| p.status == proto::storage_status::ACTIVE)
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

fn addr(p: &Peer) -> String {
    format!("{}:{}", p.ip, p.port)
}

/// Copy `named` here from the first peer (of `only`, or all ACTIVE ones)
/// that has a copy matching `expect`; returns that peer's address.
pub fn fetch_intact(
    store: &Store,
    named: &Named,
    expect: Expect,
    only: Option<&Peer>,
) -> Result<String, String> {
    let peers = match only {
        Some(p) => vec![p.clone()],
        None => active_peers(store),
    };
    if peers.is_empty() {
        return Err("no ACTIVE peer in the group".into());
    }
    let mut why = Vec::new();
    for p in &peers {
        match fetch_from(store, named, expect, p) {
            Ok(()) => return Ok(addr(p)),
            Err(e) => why.push(format!("{}: {e}", addr(p))),
        }
    }
    Err(why.join("; "))
}

/// A writer that counts and sums what passes.
struct Checked<'a> {
    file: &'a mut File,
    crc: crc32fast::Hasher,
    size: u64,
}

impl Write for Checked<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.file.write(b)?;
        self.crc.update(&b[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn fetch_from(store: &Store, named: &Named, expect: Expect, p: &Peer) -> Result<(), String> {
    let group = &store.cfg.group_name;
    let sp = &store.paths[named.remote.store_index as usize];
    let dest = sp.file_path(&named.remote);
    let dir = dest.parent().ok_or("no directory")?;
    let mut c = StorageClient::connect(&addr(p), store.timeouts()).map_err(|e| e.to_string())?;
    // Held from before the copy until it is in place: a delete of the file
    // meanwhile waits, then deletes the copy.
    let _guard = store.file_locks.lock(&dest);
    let existed = tree::entry_exists(&dest);
    let (bytes, size, crc) = if named.kind == Kind::Meta {
        let base = named.remote_string();
        let base = base.strip_suffix("-m").ok_or("not a metadata name")?;
        let pairs = c.get_metadata(group, base).map_err(|e| e.to_string())?;
        let b = proto::encode_meta(&pairs);
        let (size, crc) = (b.len() as u64, crc32fast::hash(&b));
        (Some(b), size, crc)
    } else {
        (None, 0, 0)
    };
    // A directory removed behind our back is made again.
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let hidden = || format!(".repair-{:016x}", store.random64());
    let mut tmp = crate::layout::tmpfile::TempFile::create_in(dir, hidden)
        .map_err(|e| format!("temporary file in {}: {e}", dir.display()))?;
    let (size, crc) = match bytes {
        Some(b) => {
            tmp.file().write_all(&b).map_err(|e| e.to_string())?;
            (size, crc)
        }
        None => {
            let mut w = Checked {
                file: tmp.file(),
                crc: crc32fast::Hasher::new(),
                size: 0,
            };
            c.download(group, &named.remote_string(), 0, 0, &mut w, &mut |_, _| {})
                .map_err(|e| e.to_string())?;
            (w.size, w.crc.finalize())
        }
    };
    c.quit();
    let ok = match expect {
        Expect::Promised => super::scrub::judge(named, size, crc) == super::scrub::Verdict::Intact,
        Expect::Listed { size: s, crc: k } => {
            size == s && (named.kind != Kind::Meta && named.kind != Kind::Normal || crc == k)
        }
        Expect::Any => true,
    };
    if !ok {
        return Err(format!(
            "its copy is damaged too ({size} bytes, CRC32 {crc:08x}); not used"
        ));
    }
    if named.kind != Kind::Meta {
        let mtime =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(named.info.timestamp.into());
        let _ = tmp.file().set_modified(mtime);
    }
    let op = if existed { op::UPDATE } else { op::CREATE };
    let rec = Record::new(now() as u32, Record::replica_op(op), &named.remote_string());
    crate::storage::refetch::put_in_place(store, &mut tmp, &dest, rec, hidden)
        .map_err(|e| format!("putting it in place at {}: {e}", dest.display()))
}

/// What one comparison found to do.
#[derive(Debug)]
enum Todo {
    /// The peer holds it and we do not: copy it, unless a client deleted it
    /// here.
    Missing {
        named: Named,
        entry: Entry,
        peer: Peer,
    },
    /// Ours differs and the peer's is the right one: copy it over ours.
    Replace {
        named: Named,
        entry: Entry,
        peer: Peer,
    },
}

/// Why a peer was not compared with.
enum Skip {
    /// No FDFS_TREE_DIGEST there (a C storage).
    NotFdfs(u8),
    /// Its tree is being refilled.
    Recovering,
    Failed(String),
}

/// Compare every store path (or only `only_path`) with every ACTIVE fdfs
/// peer and repair this side. Returns how many peers answered.
pub fn compare_all(store: &Store, only_path: Option<usize>, quit: &AtomicBool) -> usize {
    let f = &store.repair.figures;
    let min_age = store.cfg.repair_min_age.as_secs() as u32;
    let recovering_pass = only_path.is_some();
    let cutoff = if recovering_pass {
        u32::MAX
    } else {
        (now() as u32).saturating_sub(min_age)
    };
    let peers = active_peers(store);
    if peers.is_empty() {
        log::info!("repair: no other ACTIVE storage in the group to compare with");
    }
    let mut answered = HashSet::new();
    for sp in &store.paths {
        let i = sp.index as usize;
        if only_path.is_some_and(|o| o != i) || !recovering_pass && store.repair.recovering(i) {
            continue;
        }
        let n = store.cfg.subdir_count_per_path;
        let stop = || quit.load(Ordering::Relaxed);
        let local = match tree::digest_leaves(sp, n, cutoff, &stop) {
            Ok(l) => l,
            Err(e) => {
                log::warn!("repair: reading store path {}: {e}", sp.root.display());
                continue;
            }
        };
        let mut todo = Vec::new();
        for p in &peers {
            if quit.load(Ordering::Relaxed) {
                return answered.len();
            }
            match compare_with(store, p, sp, &local, cutoff, &mut todo) {
                Ok(()) => {
                    answered.insert(p.id.clone());
                }
                Err(Skip::NotFdfs(st)) => {
                    Figures::add(&f.peers_skipped, 1);
                    log::info!(
                        "repair: peer {} ({}) answers no FDFS_TREE_DIGEST (status {st}): a C \
                         FastDFS storage, left alone",
                        p.id,
                        addr(p)
                    );
                }
                Err(Skip::Recovering) => {
                    log::info!(
                        "repair: peer {} is refilling store path {i}: not compared",
                        p.id
                    )
                }
                Err(Skip::Failed(e)) => {
                    log::warn!("repair: comparing store path {i} with {}: {e}", addr(p))
                }
            }
        }
        settle(store, todo, quit);
    }
    answered.len()
}

/// One FDFS_TREE_DIGEST; its bytes both ways (with the two 10-byte headers)
/// are counted.
fn query(
    store: &Store,
    c: &mut Connection,
    q: &DigestQuery,
) -> Result<Vec<u8>, crate::client::Error> {
    let r = c.call(Cmd::FdfsTreeDigest, &q.encode(), wire::MAX_LISTING);
    let reply = r.as_ref().map_or(0, Vec::len);
    let sent = 2 * proto::HEADER_LEN + DigestQuery::LEN + reply;
    Figures::add(&store.repair.figures.digest_bytes, sent as u64);
    r
}

/// Compare store path `sp` with `p`'s, adding what to do to `todo`.
fn compare_with(
    store: &Store,
    p: &Peer,
    sp: &StorePath,
    local: &[DirDigest],
    cutoff: u32,
    todo: &mut Vec<Todo>,
) -> Result<(), Skip> {
    let f = &store.repair.figures;
    let n = store.cfg.subdir_count_per_path as usize;
    let failed = |e: crate::client::Error| Skip::Failed(e.to_string());
    let mut c =
        Connection::connect(&addr(p), store.timeouts(), store.outbound_ip()).map_err(failed)?;
    let mut q = DigestQuery {
        group: store.cfg.group_name.clone(),
        store_path: sp.index,
        depth: wire::DEPTH_TOP,
        high: 0,
        low: 0,
        cutoff,
    };
    let tops = match query(store, &mut c, &q) {
        Ok(b) => DirDigest::decode_list(&b).map_err(|e| Skip::Failed(e.to_string()))?,
        Err(e) if e.status() == Some(status::EAGAIN) => return Err(Skip::Recovering),
        Err(e) => return Err(e.status().map_or_else(|| failed(e), Skip::NotFdfs)),
    };
    if tops.len() != n {
        return Err(Skip::Failed(format!(
            "{} top directories there, {n} here (subdir_count_per_path differs)",
            tops.len()
        )));
    }
    let mine = tree::tops(local, n as u32);
    for high in 0..n {
        if tops[high] == mine[high] {
            Figures::add(&f.dirs_compared, n as u64);
            continue;
        }
        q.depth = wire::DEPTH_LEAVES;
        q.high = high as u8;
        let leaves = query(store, &mut c, &q)
            .map_err(failed)
            .and_then(|b| DirDigest::decode_list(&b).map_err(|e| Skip::Failed(e.to_string())))?;
        if leaves.len() != n {
            return Err(Skip::Failed("short leaf digest list".into()));
        }
        for low in 0..n {
            Figures::add(&f.dirs_compared, 1);
            if leaves[low] == local[high * n + low] {
                continue;
            }
            Figures::add(&f.dirs_differing, 1);
            q.depth = wire::DEPTH_FILES;
            q.low = low as u8;
            let theirs = query(store, &mut c, &q)
                .map_err(failed)
                .and_then(|b| Entry::decode_list(&b).map_err(|e| Skip::Failed(e.to_string())))?;
            let ours = tree::list_dir(sp, high as u8, low as u8, cutoff)
                .map_err(|e| Skip::Failed(format!("listing here: {e}")))?;
            reconcile(
                sp.index, high as u8, low as u8, &ours, theirs, p, cutoff, todo,
            );
        }
    }
    c.quit();
    Ok(())
}

/// Whether `p` is the storage that created the file `named`.
fn is_source(named: &Named, p: &Peer) -> bool {
    match named.info.source {
        Source::Ip(ip) => ip.to_string() == p.ip,
        Source::Id(id) => id.to_string() == p.id,
    }
}

/// One directory: what the peer has that we lack or hold wrong.
#[allow(clippy::too_many_arguments)]
fn reconcile(
    index: u8,
    high: u8,
    low: u8,
    ours: &[Entry],
    theirs: Vec<Entry>,
    p: &Peer,
    cutoff: u32,
    todo: &mut Vec<Todo>,
) {
    let ours: HashMap<&str, &Entry> = ours.iter().map(|e| (e.name.as_str(), e)).collect();
    for entry in theirs {
        let Some(named) = tree::classify(index, high, low, &entry.name) else {
            continue;
        };
        let peer = p.clone();
        let Some(mine) = ours.get(entry.name.as_str()) else {
            todo.push(Todo::Missing { named, entry, peer });
            continue;
        };
        if mine.size == entry.size && mine.crc == entry.crc {
            continue;
        }
        let theirs_right = match named.kind {
            Kind::Normal => named
                .promised()
                .is_some_and(|(size, _)| mine.size != size && entry.size == size),
            // The source of an appender file holds its latest state; a change
            // still in flight is left to replication.
            Kind::Appender => is_source(&named, p) && entry.mtime <= cutoff,
            Kind::Meta => entry.mtime > mine.mtime && entry.mtime <= cutoff,
            Kind::Slave => false,
        };
        if theirs_right {
            todo.push(Todo::Replace { named, entry, peer });
        }
    }
}

/// Names a client deleted here (or whose delete reached us), among `names`,
/// per the binlog.
fn deleted_here(store: &Store, names: &HashSet<String>) -> HashSet<String> {
    let mut out = HashSet::new();
    if names.is_empty() {
        return out;
    }
    let mut r = crate::storage::binlog::Reader::new(store.binlog.dir(), 0, 0);
    let end = store.binlog.write_pos();
    loop {
        match r.next(end) {
            Ok(Some(rec)) => {
                let gone = match rec.op.to_ascii_uppercase() {
                    op::DELETE => rec.name.as_str(),
                    // Renamed: the old name is gone.
                    op::RENAME => rec.extra.as_str(),
                    _ => continue,
                };
                if names.contains(gone) {
                    out.insert(gone.to_string());
                }
            }
            Ok(None) => break,
            Err(e) => {
                log::warn!("repair: reading the binlog: {e}");
                break;
            }
        }
    }
    out
}

/// Do what the comparisons found: copy, or send deletes the peers missed.
fn settle(store: &Store, todo: Vec<Todo>, quit: &AtomicBool) {
    let f = &store.repair.figures;
    let missing: HashSet<String> = todo
        .iter()
        .filter_map(|t| match t {
            Todo::Missing { named, .. } => {
                let n = named.remote_string();
                Some(match n.strip_suffix("-m") {
                    Some(base) => vec![n.clone(), base.to_string()],
                    None => vec![n],
                })
            }
            _ => None,
        })
        .flatten()
        .collect();
    let deleted = deleted_here(store, &missing);
    let mut done = HashSet::new();
    let mut deletes: HashMap<String, (Peer, Vec<String>)> = HashMap::new();
    // Files before their metadata.
    let mut todo = todo;
    todo.sort_by_key(|t| match t {
        Todo::Missing { named, .. } | Todo::Replace { named, .. } => named.kind == Kind::Meta,
    });
    for t in todo {
        if quit.load(Ordering::Relaxed) {
            return;
        }
        let (named, entry, peer, replace) = match t {
            Todo::Missing { named, entry, peer } => (named, entry, peer, false),
            Todo::Replace { named, entry, peer } => (named, entry, peer, true),
        };
        let name = named.remote_string();
        let base = name.strip_suffix("-m").unwrap_or(&name).to_string();
        if !replace && (deleted.contains(&name) || deleted.contains(&base)) {
            deletes
                .entry(peer.id.clone())
                .or_insert_with(|| (peer.clone(), Vec::new()))
                .1
                .push(name);
            continue;
        }
        if !done.insert(name.clone()) {
            continue;
        }
        if !replace {
            Figures::add(&f.missing, 1);
        }
        let expect = match named.kind {
            Kind::Normal => Expect::Promised,
            _ => Expect::Listed {
                size: entry.size,
                crc: entry.crc,
            },
        };
        match fetch_intact(store, &named, expect, Some(&peer)).or_else(|e| match replace {
            true => Err(e),
            // Another peer may have it intact.
            false => fetch_intact(store, &named, expect, None),
        }) {
            Ok(from) => {
                Figures::add(&f.repaired, 1);
                log::info!(
                    "repair: {name} {} from {from}",
                    if replace {
                        "replaced by the copy"
                    } else {
                        "copied"
                    }
                );
            }
            Err(e) => {
                Figures::add(&f.unrepairable, 1);
                log::error!("repair: {name}: no intact copy could be had: {e}");
            }
        }
    }
    for (peer, names) in deletes.into_values() {
        send_deletes(store, &peer, &names);
    }
}

/// Tell `p` about deletes that never reached it (as a replica's push would).
fn send_deletes(store: &Store, p: &Peer, names: &[String]) {
    let f = &store.repair.figures;
    let run = || -> Result<(), crate::client::Error> {
        let mut c = Connection::connect(&addr(p), store.timeouts(), store.outbound_ip())?;
        c.call(
            Cmd::ReportServerId,
            &proto::sync::encode_report_server_id(&store.identity.my_id()),
            0,
        )?;
        for name in names {
            let body = proto::sync::SyncDelete {
                timestamp: now() as u32,
                group: store.cfg.group_name.clone(),
                remote: name.clone(),
            }
            .encode();
            match c.call(Cmd::SyncDeleteFile, &body, 0) {
                Ok(_) => {}
                Err(e) if e.status() == Some(status::ENOENT) => {}
                Err(e) => return Err(e),
            }
            Figures::add(&f.deletes_sent, 1);
            log::info!(
                "repair: {name} was deleted here; deleted on {} too",
                addr(p)
            );
        }
        c.quit();
        Ok(())
    };
    if let Err(e) = run() {
        log::warn!("repair: sending deletes to {}: {e}", addr(p));
    }
}
