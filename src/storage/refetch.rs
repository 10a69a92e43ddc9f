//! Whole copies of appender files that a peer's pushed records can no longer
//! bring up to date, fetched from that peer.
//!
//! A C 6.16.1 sender replays an appender file's records against the file as it
//! is when it replays them. When the copy here lags behind (this server was
//! down while the source appended, truncated and appended again), the truncate
//! arrives from a size this copy never had. A C sender counts only success or
//! EEXIST as done for a truncate (anything else is retried for ever, which
//! stops every later record from it), and, unlike ours, it never follows up
//! with the whole file. So the receiver answers EEXIST (`sync_status`) and asks
//! here for the file: this thread downloads it from the peer's storage port and
//! puts it in place of the diverged copy. Later records then find the sizes
//! they expect, or find their bytes already here.

use super::Store;
use crate::client::StorageClient;
use crate::layout::{RemoteName, binlog::Record, binlog::op};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Files waiting at most; more are dropped with a warning (a peer that keeps
/// sending diverged truncates is logged by `sync_status` anyway).
const QUEUE: usize = 1024;

/// One file to copy from the peer at `ip`.
struct Job {
    ip: IpAddr,
    remote: String,
}

/// The queue the receivers add to; one thread empties it.
pub struct Refetch {
    tx: Sender<Job>,
    rx: Mutex<Option<Receiver<Job>>>,
    /// Remote names queued and not yet done (a file is fetched once per burst).
    pending: Mutex<HashSet<String>>,
}

impl Default for Refetch {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        Refetch {
            tx,
            rx: Mutex::new(Some(rx)),
            pending: Mutex::new(HashSet::new()),
        }
    }
}

impl Refetch {
    /// Ask for `remote` (a name of our group) to be copied from the peer at `ip`.
    pub fn request(&self, ip: IpAddr, remote: &str) {
        if !self.pending.lock().insert(remote.to_string()) {
            return;
        }
        let job = Job {
            ip,
            remote: remote.to_string(),
        };
        if let Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) = self.tx.try_send(job) {
            self.pending.lock().remove(&j.remote);
            log::warn!(
                "cannot queue a copy of {} from {}: {QUEUE} copies already queued",
                j.remote,
                j.ip
            );
        }
    }

    /// Start the thread that fetches what is asked for (once).
    pub fn spawn(
        store: Arc<Store>,
        quit: Arc<AtomicBool>,
    ) -> std::io::Result<Option<std::thread::JoinHandle<()>>> {
        let Some(rx) = store.refetch.rx.lock().take() else {
            return Ok(None);
        };
        std::thread::Builder::new()
            .name("fdfs-refetch".into())
            .spawn(move || {
                while !quit.load(Ordering::SeqCst) {
                    let Ok(job) = rx.recv_timeout(Duration::from_millis(200)) else {
                        continue;
                    };
                    // Taken off the set first: a request arriving during the
                    // copy fetches again, so nothing newer is missed.
                    store.refetch.pending.lock().remove(&job.remote);
                    match fetch(&store, &job) {
                        Ok(size) => log::info!(
                            "{}: diverged copy replaced by the {size} bytes of {}",
                            job.remote,
                            job.ip
                        ),
                        Err(e) => log::warn!("{}: copying from {}: {e}", job.remote, job.ip),
                    }
                }
            })
            .map(Some)
    }
}

/// Download `job.remote` from its peer into a temporary file beside ours, then
/// replace ours with it under the file's lock; returns its size.
fn fetch(store: &Store, job: &Job) -> Result<u64, String> {
    let ip = job.ip.to_string();
    let peer = store
        .peers
        .ids()
        .into_iter()
        .filter_map(|id| store.peers.get(&id))
        .find(|p| p.ip == ip)
        .ok_or("not a server of our group")?;
    let name = RemoteName::parse(&job.remote).map_err(|e| e.to_string())?;
    let dest = store
        .paths
        .get(name.store_index as usize)
        .ok_or("not one of our store paths")?
        .file_path(&name);
    let dir = dest.parent().ok_or("no directory")?;
    let hidden = || format!(".refetch-{:016x}", store.random64());
    let mut tmp = crate::layout::tmpfile::TempFile::create_in(dir, hidden)
        .map_err(|e| format!("temporary file in {}: {e}", dir.display()))?;
    let addr = format!("{}:{}", peer.ip, peer.port);
    let mut c = StorageClient::connect(&addr, store.timeouts()).map_err(|e| e.to_string())?;
    let size = c
        .download(
            &store.cfg.group_name,
            &job.remote,
            0,
            0,
            tmp.file(),
            &mut |_, _| {},
        )
        .map_err(|e| e.to_string())?;
    c.quit();
    let _guard = store.file_locks.lock(&dest);
    let rec = Record::new(
        super::now() as u32,
        Record::replica_op(op::UPDATE),
        &job.remote,
    );
    put_in_place(store, &mut tmp, &dest, rec, hidden)
        .map_err(|e| format!("replacing {}: {e}", dest.display()))?;
    Ok(size)
}

/// A whole copy fetched into `tmp` (in `dest`'s directory) takes `dest`'s
/// place, synced as the config asks, with its binlog line `rec`. The caller
/// holds the file's lock. No reply waits for the journal's copy of the line.
pub(super) fn put_in_place(
    store: &Store,
    tmp: &mut crate::layout::tmpfile::TempFile,
    dest: &std::path::Path,
    rec: Record,
    hidden: impl Fn() -> String,
) -> std::io::Result<()> {
    let dir = dest.parent().unwrap_or(dest);
    store
        .binlog
        .append_with(|| {
            tmp.persist_replace(dest, hidden)?;
            store.durable.sync_in_place(Some(tmp.file()), Some(dir))?;
            Ok(Some(rec))
        })
        .map(drop)
}
