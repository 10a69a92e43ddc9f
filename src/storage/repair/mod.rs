//! Replicas that heal themselves: the scrub, anti-entropy repair and disk
//! recovery (fdfs's own; upstream has none of them).
//!
//! * **Scrub** (`scrub.rs`): every file of every store path is read and
//!   checked against the size and CRC32 its ID carries (appender, slave and
//!   metadata files, whose IDs carry no CRC of their own, must read without
//!   an error). A file found damaged is replaced at once by an intact copy
//!   from a peer.
//! * **Anti-entropy** (`peer.rs`): this storage compares its tree with each
//!   fdfs peer's, directory digest by directory digest (`tree.rs`,
//!   FDFS_TREE_DIGEST 202), lists only the directories that differ, and
//!   repairs itself: a file the peer holds and this storage lacks is copied
//!   here unless this storage's binlog says a client deleted it, in which
//!   case the peer is told to delete it too. Every copy is checked before it
//!   is used, so a damaged file is never a repair source. A C peer has no
//!   such command: it is left alone, with a log line.
//! * **Disk recovery** (`recovery.rs`): a store path that comes back empty
//!   is refilled by anti-entropy from the peers' trees (no binlog needed);
//!   until that is done no upload goes there, and a download of a file not
//!   copied yet copies it first.
//!
//! One thread, `fdfs-repair`, runs the passes: on request (FDFS_REPAIR 203,
//! `fdfs repair`), every `scrub_interval` and every `repair_interval`.
//! Peers' digest queries are answered by this module's own pool, so a walk
//! of a whole store path never holds up the disk threads.

mod peer;
pub mod recovery;
mod scrub;
pub mod tree;

use super::error::Error;
use super::{Store, now};
use crate::net::{Pool, Reply};
use crate::proto::repair::{self as wire, DigestQuery, DirDigest, Entry, RepairStat};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a path's leaf digests answer peers' queries with the same cutoff.
const CACHE_FOR: Duration = Duration::from_secs(600);

/// The figures of [`RepairStat`], counted as things happen.
#[derive(Default)]
pub struct Figures {
    pub passes: AtomicU64,
    pub scrubbed_files: AtomicU64,
    pub scrubbed_bytes: AtomicU64,
    pub scrub_done: AtomicU64,
    pub scrub_total: AtomicU64,
    pub corrupt: AtomicU64,
    pub missing: AtomicU64,
    pub repaired: AtomicU64,
    pub deletes_sent: AtomicU64,
    pub unrepairable: AtomicU64,
    pub bad_binlog_records: AtomicU64,
    pub dirs_compared: AtomicU64,
    pub dirs_differing: AtomicU64,
    pub peers_skipped: AtomicU64,
    pub last_pass_end: AtomicU64,
    pub digest_bytes: AtomicU64,
}

impl Figures {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A store path's leaf digests for one cutoff, and when they were made.
type Cached = (Instant, Arc<Vec<DirDigest>>);

/// What a pass is asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Ask {
    /// Read every file (scrub) before comparing with the peers.
    verify: bool,
    /// Scrub at `scrub_bytes_per_second` (a background scrub) or at full speed.
    throttled: bool,
    /// Compare with the peers.
    compare: bool,
}

/// The repair state a storage's threads share.
pub struct Repair {
    /// Answers the peers' digest queries.
    pub pool: Pool,
    pub figures: Figures,
    running: AtomicBool,
    /// Passes asked for and not started yet.
    asked: Mutex<Option<Ask>>,
    wake: Condvar,
    /// One flag per store path: being refilled from the peers.
    recovering: Vec<AtomicBool>,
    /// When disk recovery tries again.
    recovery_next: Mutex<Option<Instant>>,
    /// Leaf digests by (store path, cutoff).
    cache: Mutex<HashMap<(u8, u32), Cached>>,
}

impl Repair {
    pub fn new(paths: usize) -> std::io::Result<Repair> {
        Ok(Repair {
            pool: Pool::new("fdfs-repair-q", 1)?,
            figures: Figures::default(),
            running: AtomicBool::new(false),
            asked: Mutex::new(None),
            wake: Condvar::new(),
            recovering: (0..paths).map(|_| AtomicBool::new(false)).collect(),
            recovery_next: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Whether store path `i` is being refilled from the peers.
    pub fn recovering(&self, i: usize) -> bool {
        self.recovering
            .get(i)
            .is_some_and(|r| r.load(Ordering::Relaxed))
    }

    fn set_recovering(&self, i: usize, on: bool) {
        if let Some(r) = self.recovering.get(i) {
            r.store(on, Ordering::Relaxed);
        }
        self.wake.notify_all();
    }

    /// The figures as FDFS_REPAIR and `/metrics` report them.
    pub fn stat(&self) -> RepairStat {
        let f = &self.figures;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RepairStat {
            running: self.running.load(Ordering::Relaxed) || self.asked.lock().is_some(),
            recovering_paths: self
                .recovering
                .iter()
                .filter(|r| r.load(Ordering::Relaxed))
                .count() as u8,
            passes: g(&f.passes),
            scrubbed_files: g(&f.scrubbed_files),
            scrubbed_bytes: g(&f.scrubbed_bytes),
            scrub_done: g(&f.scrub_done),
            scrub_total: g(&f.scrub_total),
            corrupt: g(&f.corrupt),
            missing: g(&f.missing),
            repaired: g(&f.repaired),
            deletes_sent: g(&f.deletes_sent),
            unrepairable: g(&f.unrepairable),
            bad_binlog_records: g(&f.bad_binlog_records),
            dirs_compared: g(&f.dirs_compared),
            dirs_differing: g(&f.dirs_differing),
            peers_skipped: g(&f.peers_skipped),
            last_pass_end: g(&f.last_pass_end),
            done_at: 0,
            digest_bytes: g(&f.digest_bytes),
        }
    }

    /// Ask for a pass (merged with one already asked for and not started);
    /// returns the value of `passes` once it is done.
    fn ask(&self, a: Ask) -> u64 {
        let mut g = self.asked.lock();
        let done_at = self.figures.passes.load(Ordering::Relaxed)
            + 1
            + self.running.load(Ordering::Relaxed) as u64;
        let merged = match *g {
            Some(old) => Ask {
                verify: old.verify || a.verify,
                throttled: old.throttled && a.throttled,
                compare: old.compare || a.compare,
            },
            None => a,
        };
        *g = Some(merged);
        self.wake.notify_all();
        done_at
    }

    /// A manual pass was asked for while a background scrub runs: the scrub
    /// gives way.
    fn manual_waiting(&self) -> bool {
        self.asked.lock().is_some_and(|a| !a.throttled)
    }
}

/// FDFS_REPAIR: start a pass if asked, and report the figures (with the
/// `passes` value that says the asked pass is done).
pub fn command(store: &Store, body: &[u8]) -> Result<Reply, Error> {
    let flags = match body {
        [f] => *f,
        _ => return Err(Error::Length(format!("{} bytes, not 1", body.len()))),
    };
    let mut stat = store.repair.stat();
    if flags & wire::REPAIR_START != 0 {
        log::info!(
            "repair pass asked for{}",
            if flags & wire::REPAIR_VERIFY != 0 {
                " (with a scrub of every file)"
            } else {
                ""
            }
        );
        stat.done_at = store.repair.ask(Ask {
            verify: flags & wire::REPAIR_VERIFY != 0,
            throttled: false,
            compare: true,
        });
    }
    Ok(Reply::ok(stat.encode()))
}

/// FDFS_TREE_DIGEST from a peer, on the repair pool.
pub fn digest_query(store: &Store, body: &[u8]) -> Result<Reply, Error> {
    let q = DigestQuery::decode(body)?;
    let n = store.cfg.subdir_count_per_path;
    if q.group != store.cfg.group_name {
        return Err(Error::Invalid(format!("group {} is not ours", q.group)));
    }
    if u32::from(q.high) >= n || u32::from(q.low) >= n {
        return Err(Error::Invalid(format!(
            "directory {:02X}/{:02X} outside {n}x{n}",
            q.high, q.low
        )));
    }
    let Some(sp) = store.paths.get(q.store_path as usize) else {
        return Err(Error::Invalid(format!("no store path {}", q.store_path)));
    };
    if store.repair.recovering(sp.index as usize) {
        return Err(Error::Refilling(sp.root.clone()));
    }
    let listing = Error::io("listing", &sp.root);
    let body = match q.depth {
        wire::DEPTH_FILES => {
            Entry::encode_list(&tree::list_dir(sp, q.high, q.low, q.cutoff).map_err(listing)?)
        }
        depth => {
            let leaves = leaves(store, sp.index, q.cutoff).map_err(listing)?;
            let n = n as usize;
            let list = match depth {
                wire::DEPTH_TOP => tree::tops(&leaves, n as u32),
                _ => leaves[q.high as usize * n..(q.high as usize + 1) * n].to_vec(),
            };
            DirDigest::encode_list(&list)
        }
    };
    Ok(Reply::ok(body))
}

/// Store path `index`'s leaf digests for `cutoff`, from the cache when fresh.
fn leaves(store: &Store, index: u8, cutoff: u32) -> std::io::Result<Arc<Vec<DirDigest>>> {
    let key = (index, cutoff);
    {
        let mut c = store.repair.cache.lock();
        c.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
        if let Some((_, l)) = c.get(&key) {
            return Ok(l.clone());
        }
    }
    let sp = &store.paths[index as usize];
    let l = Arc::new(tree::digest_leaves(
        sp,
        store.cfg.subdir_count_per_path,
        cutoff,
        &|| false,
    )?);
    let mut c = store.repair.cache.lock();
    // At most a few entries: one per store path and peer's pass.
    if c.len() >= 4 * store.paths.len().max(1) {
        c.clear();
    }
    c.insert(key, (Instant::now(), l.clone()));
    Ok(l)
}

/// The `fdfs-repair` thread: passes when asked, on schedule, and while a
/// store path recovers.
pub fn spawn(
    store: Arc<Store>,
    quit: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    recovery::resume(&store);
    std::thread::Builder::new()
        .name("fdfs-repair".into())
        .spawn(move || run(&store, &quit))
}

fn run(store: &Arc<Store>, quit: &AtomicBool) {
    let cfg = &store.cfg;
    let mut next_scrub = schedule(cfg.scrub_interval);
    let mut next_compare = schedule(cfg.repair_interval);
    while !quit.load(Ordering::SeqCst) {
        let r = &store.repair;
        // Decided and marked running under the lock, so that `ask` counts
        // the pass that starts here.
        let mut g = r.asked.lock();
        if g.is_none() {
            r.wake.wait_for(&mut g, Duration::from_millis(500));
        }
        let now = Instant::now();
        let ask = match g.take() {
            Some(a) => Some(a),
            None if next_scrub.is_some_and(|t| now >= t) => {
                next_scrub = schedule(cfg.scrub_interval);
                Some(Ask {
                    verify: true,
                    throttled: true,
                    compare: false,
                })
            }
            None if next_compare.is_some_and(|t| now >= t) => {
                next_compare = schedule(cfg.repair_interval);
                Some(Ask {
                    verify: false,
                    throttled: false,
                    compare: true,
                })
            }
            None => None,
        };
        r.running.store(ask.is_some(), Ordering::Relaxed);
        drop(g);
        if let Some(a) = ask {
            pass(store, a, quit);
        }
        recovery::step(store, quit);
    }
}

fn schedule(every: Duration) -> Option<Instant> {
    (!every.is_zero()).then(|| Instant::now() + every)
}

/// One pass: the scrub if asked, then the comparison with every peer.
fn pass(store: &Arc<Store>, a: Ask, quit: &AtomicBool) {
    let r = &store.repair;
    let t = Instant::now();
    let before = r.stat();
    if a.verify {
        scrub::run(store, a.throttled, quit);
    }
    if a.compare {
        peer::compare_all(store, None, quit);
    }
    let after = r.stat();
    r.figures.last_pass_end.store(now(), Ordering::Relaxed);
    {
        let _g = r.asked.lock();
        r.figures.passes.fetch_add(1, Ordering::Relaxed);
        r.running.store(false, Ordering::Relaxed);
    }
    log::info!(
        "repair pass done in {:.1}s: {} files scrubbed, {} corrupt, {} missing, {} repaired, \
         {} deletes sent to peers, {} unrepairable",
        t.elapsed().as_secs_f64(),
        after.scrubbed_files - before.scrubbed_files,
        after.corrupt - before.corrupt,
        after.missing - before.missing,
        after.repaired - before.repaired,
        after.deletes_sent - before.deletes_sent,
        after.unrepairable - before.unrepairable,
    );
}
