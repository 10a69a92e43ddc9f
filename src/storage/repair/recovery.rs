//! Disk recovery: a store path that comes back empty (a replaced disk) while
//! the storage has served before is refilled from the peers' trees by
//! anti-entropy, so it works whatever the peers' binlogs still hold.
//!
//! The state is the file `data/.fdfs_recovering` on the store path itself,
//! written before the path's tree and mark are made, and removed once one
//! whole comparison with a peer has run. Until then no upload is placed
//! there, peers get EAGAIN for its digests (it is no repair source), and a
//! download of a file not copied yet copies it first
//! ([`fetch_for_read`]).

use super::peer;
use super::tree;
use crate::layout::{RemoteName, StorePath};
use crate::storage::Store;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long to wait between two refill attempts that found no peer.
const RETRY: Duration = Duration::from_secs(10);
/// A group without any other storage has nothing to refill from.
const GIVE_UP_ALONE: Duration = Duration::from_secs(120);

fn marker(p: &StorePath) -> PathBuf {
    p.data_dir().join(".fdfs_recovering")
}

/// Before the store paths' trees are made (`data_dir` is the base path's
/// `data/`): mark the paths that come back empty on a storage that has run
/// before. A path is empty when its mark file (`data/.fastdfs_vars`) is gone.
pub fn detect(data_dir: &Path, paths: &[StorePath]) -> io::Result<()> {
    if !data_dir.join(".data_init_flag").exists() {
        return Ok(()); // A new storage: nothing to recover.
    }
    for p in paths {
        let m = marker(p);
        if p.data_dir().join(crate::layout::store::MARK_FILE).exists() || m.exists() {
            continue;
        }
        fs::create_dir_all(p.data_dir())?;
        crate::layout::store::atomic_write(&m, b"recovering=1\n")
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", m.display())))?;
        log::warn!(
            "store path {} is empty (a replaced disk?): it will be refilled from the group's \
             other storages",
            p.root.display()
        );
    }
    Ok(())
}

/// At start: the paths still marked are recovering.
pub fn resume(store: &Store) {
    for p in &store.paths {
        if marker(p).exists() {
            store.repair.set_recovering(p.index as usize, true);
            log::warn!(
                "store path {} is being refilled from the peers: no uploads go there until done",
                p.root.display()
            );
        }
    }
}

/// One refill attempt for each recovering path (called by the repair thread
/// between passes; retried every [`RETRY`] until a peer has answered).
pub fn step(store: &Store, quit: &AtomicBool) {
    let r = &store.repair;
    {
        let mut next = r.recovery_next.lock();
        if next.is_some_and(|t| Instant::now() < t) {
            return;
        }
        *next = Some(Instant::now() + RETRY);
    }
    for p in &store.paths {
        let i = p.index as usize;
        if !r.recovering(i) || quit.load(Ordering::Relaxed) {
            continue;
        }
        let t = Instant::now();
        let answered = peer::compare_all(store, Some(i), quit);
        let alone = store.peers.ids().is_empty()
            && crate::storage::now().saturating_sub(store.identity.started())
                > GIVE_UP_ALONE.as_secs();
        if answered == 0 && !alone {
            continue;
        }
        if quit.load(Ordering::Relaxed) {
            return;
        }
        if answered == 0 {
            log::error!(
                "store path {}: no other storage in the group to refill it from; it starts empty",
                p.root.display()
            );
        }
        if let Err(e) = fs::remove_file(marker(p)) {
            log::warn!("{}: {e}", marker(p).display());
        }
        r.set_recovering(i, false);
        log::info!(
            "store path {} refilled from {answered} peer(s) in {:.1}s",
            p.root.display(),
            t.elapsed().as_secs_f64()
        );
    }
}

/// A download of `name` on a recovering path whose file is not here yet:
/// copy it from a peer first. Runs on a disk thread.
pub fn fetch_for_read(store: &Store, name: &RemoteName) {
    if !store.repair.recovering(name.store_index as usize) {
        return;
    }
    let path = store.paths[name.store_index as usize].file_path(name);
    if tree::entry_exists(&path) {
        return;
    }
    let Some(named) = tree::classify(name.store_index, name.high, name.low, &name.name) else {
        return;
    };
    let expect = match named.kind {
        crate::proto::repair::Kind::Normal => peer::Expect::Promised,
        _ => peer::Expect::Any,
    };
    match peer::fetch_intact(store, &named, expect, None) {
        Ok(from) => log::info!("{name}: copied from {from} for a download (path recovering)"),
        Err(e) => log::info!("{name}: asked for while its path recovers, not copied: {e}"),
    }
}
