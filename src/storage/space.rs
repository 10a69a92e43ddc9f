//! Where new files go: the store paths' free space (as last read, less what
//! uploads took since), the tracker's store path rule with the reserve, and
//! the cursor over the `data/HH/HH` directories (PROTOCOL.md §6.5).

use super::error::Error;
use super::identity::Params;
use crate::config::{Reserved, StorageConfig};
use crate::layout::StorePath;
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Round-robin directory cursor (PROTOCOL.md §6.5 mode 0).
#[derive(Clone, Copy, Debug, Default)]
struct Dist {
    high: u32,
    low: u32,
    count: u32,
}

/// The store paths' space and the cursors that spread new files.
pub struct Space {
    /// (total_mb, free_mb) per store path, refreshed by the report thread.
    read: RwLock<Vec<(u64, u64)>>,
    /// Bytes of uploads accepted per store path since `read` was read.
    debit: Vec<AtomicU64>,
    /// The next store path in round-robin mode.
    path_rr: AtomicUsize,
    dist: Mutex<Dist>,
}

/// The names of the directory cursor's fields in storage_stat.dat.
const CURSOR: [&str; 3] = [
    "dist_path_index_high",
    "dist_path_index_low",
    "dist_write_file_count",
];

impl Space {
    /// `n` store paths, nothing known of their space yet.
    pub fn new(n: usize) -> Space {
        Space {
            read: RwLock::new(Vec::new()),
            debit: (0..n).map(|_| AtomicU64::new(0)).collect(),
            path_rr: AtomicUsize::new(0),
            dist: Mutex::new(Dist::default()),
        }
    }

    /// The store path for an upload of `size` bytes: the one the tracker
    /// named (`asked`) if usable, else by the tracker's `store_path` rule in
    /// `params`; ENOSPC below the reserve. A path that is `resting` (being
    /// refilled from the peers) takes no uploads.
    pub fn choose_path(
        &self,
        cfg: &StorageConfig,
        params: &Params,
        asked: u8,
        size: u64,
        resting: impl Fn(usize) -> bool,
    ) -> Result<u8, Error> {
        let n = self.debit.len();
        let writable =
            |i: usize| !cfg.store_path_readonly.get(i).copied().unwrap_or(false) && !resting(i);
        let space = self.read.read();
        let fits = |i: usize| -> bool {
            let (total, free) = space.get(i).copied().unwrap_or((0, 0));
            let debit = self.debit[i].load(Ordering::Relaxed);
            fits_reserve((total, free), debit, size, params.reserved, n)
        };
        let idx = asked as usize;
        let first = if asked != 0xFF && idx < n && writable(idx) {
            idx
        } else if asked != 0xFF && idx >= n {
            return Err(Error::Invalid(format!("no store path {asked} of {n}")));
        } else if params.store_path_mode == 2 {
            (0..n)
                .filter(|&i| writable(i))
                .max_by_key(|&i| space.get(i).map_or(0, |s| s.1))
                .unwrap_or(0)
        } else {
            self.path_rr.fetch_add(1, Ordering::Relaxed) % n
        };
        let chosen = (0..n)
            .map(|k| (first + k) % n)
            .find(|&i| writable(i) && fits(i))
            .ok_or(Error::NoSpace { size })?;
        drop(space);
        // Debit the upload now: the figure is re-read from the file system
        // only every stat_report_interval, and fast writers would otherwise
        // overrun the reserve between two reads. (In bytes: small files
        // rounded up to a megabyte each made 25k uploads look like 25 GB.)
        self.debit[chosen].fetch_add(size, Ordering::Relaxed);
        Ok(chosen as u8)
    }

    /// Re-read every store path's space from the file system.
    pub fn refresh(&self, paths: &[StorePath]) -> Vec<(u64, u64)> {
        let v: Vec<(u64, u64)> = paths
            .iter()
            .map(|p| {
                p.space_mb().unwrap_or_else(|e| {
                    log::warn!("statvfs {}: {e}", p.root.display());
                    (0, 0)
                })
            })
            .collect();
        let mut space = self.read.write();
        *space = v.clone();
        for d in &self.debit {
            d.store(0, Ordering::Relaxed);
        }
        v
    }

    /// The `data/HH/HH` pair for the next file, rotating every
    /// `file_distribute_rotate_count` files (mode 0) or at random (mode 1,
    /// from `random`).
    pub fn next_dir(&self, cfg: &StorageConfig, random: impl FnOnce() -> u64) -> (u8, u8) {
        let n = cfg.subdir_count_per_path.max(1);
        if cfg.file_distribute_path_mode == 1 {
            let r = random();
            return (((r >> 8) % n as u64) as u8, (r % n as u64) as u8);
        }
        let mut d = self.dist.lock();
        let pick = (d.high as u8, d.low as u8);
        d.count += 1;
        if d.count >= cfg.file_distribute_rotate_count.max(1) {
            d.count = 0;
            d.low += 1;
            if d.low >= n {
                d.low = 0;
                d.high = (d.high + 1) % n;
            }
        }
        pick
    }

    /// The directory cursor as storage_stat.dat items.
    pub fn cursor(&self) -> [(&'static str, u64); 3] {
        let d = *self.dist.lock();
        [
            (CURSOR[0], d.high as u64),
            (CURSOR[1], d.low as u64),
            (CURSOR[2], d.count as u64),
        ]
    }

    /// Restore item `key` = `v` of the cursor saved by [`Space::cursor`]
    /// (with `subdirs` directories per level); false if `key` is not one.
    pub fn restore_cursor(&self, key: &str, v: u64, subdirs: u32) -> bool {
        let n = subdirs.max(1);
        let mut d = self.dist.lock();
        match key {
            k if k == CURSOR[0] => d.high = (v as u32) % n,
            k if k == CURSOR[1] => d.low = (v as u32) % n,
            k if k == CURSOR[2] => d.count = v as u32,
            _ => return false,
        }
        true
    }
}

/// Whether `size` more bytes leave store path space `(total_mb, free_mb)`,
/// of which `debit` bytes were taken since it was read, above the reserve
/// (an absolute reserve is shared by the `n` store paths).
fn fits_reserve(
    (total, free): (u64, u64),
    debit: u64,
    size: u64,
    reserved: Reserved,
    n: usize,
) -> bool {
    let reserve = match reserved {
        Reserved::Bytes(b) => b / (1 << 20) / n as u64,
        Reserved::Ratio(r) => (total as f64 * r) as u64,
    };
    free.saturating_sub(debit.saturating_add(size) >> 20) > reserve
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_debited_in_bytes_against_the_reserve() {
        let r = Reserved::Ratio(0.2);
        // 1000 MB disk, 300 MB free, 200 MB reserved.
        assert!(fits_reserve((1000, 300), 0, 4096, r, 1));
        // 25,000 small files are 100 MB, not 25,000 MB.
        assert!(fits_reserve((1000, 300), 25_000 * 4096, 4096, r, 1));
        assert!(!fits_reserve((1000, 300), 100 << 20, 1 << 20, r, 1));
        assert!(!fits_reserve((1000, 300), 0, 100 << 20, r, 1));
        // An absolute reserve is split over the store paths.
        assert!(fits_reserve(
            (1000, 300),
            0,
            0,
            Reserved::Bytes(500 << 20),
            2
        ));
        assert!(!fits_reserve(
            (1000, 300),
            0,
            0,
            Reserved::Bytes(600 << 20),
            1
        ));
    }

    #[test]
    fn the_directory_cursor_rotates_and_is_restored() {
        let cfg = StorageConfig {
            subdir_count_per_path: 2,
            file_distribute_rotate_count: 2,
            ..StorageConfig::default()
        };
        let s = Space::new(1);
        let dirs: Vec<_> = (0..6).map(|_| s.next_dir(&cfg, || 0)).collect();
        assert_eq!(dirs, [(0, 0), (0, 0), (0, 1), (0, 1), (1, 0), (1, 0)]);
        let saved = s.cursor();
        let t = Space::new(1);
        for (k, v) in saved {
            assert!(t.restore_cursor(k, v, 2));
        }
        assert!(!t.restore_cursor("success_upload_count", 1, 2));
        assert_eq!(t.next_dir(&cfg, || 0), s.next_dir(&cfg, || 0));
    }
}
