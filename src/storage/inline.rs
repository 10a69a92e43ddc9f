//! Small writes done on the network thread (`disk_inline_writes`).
//!
//! Creating a small file, deleting one or rewriting a metadata file normally
//! touches only cached directory blocks and the page cache: a few tens of
//! microseconds. Handing such a change to a disk thread and back costs two
//! wake-ups and, on a busy machine, two waits for a CPU, which is more than
//! the change itself (8-client 4 KiB uploads on 2 cores: 34k ops/s through
//! the disk threads, 58-65k on the network threads). So small changes run
//! on the loop thread, and the disk threads keep what may take long: big
//! files, reads that miss the cache.
//!
//! The price is that a change that does wait for the disk (a cold directory,
//! writeback throttling) holds up the other connections of its loop. Some
//! changes also read file content, which may not be in the page cache: a
//! metadata merge reads the old metadata file, and an append, modify or
//! truncate that ends inside a page the cache does not hold reads that page
//! first. Unlike downloads (see `net::pagecache`) these are not checked
//! first; they count as waits like the others. The
//! loop reports how long each inline job took and whether it gave up the CPU
//! meanwhile; one that waited and took longer than [`SLOW`] sends every
//! change to the disk threads for the next [`BACK_OFF`], after which inline
//! writes are tried again. (A job that was only preempted does not count:
//! a disk thread would have been preempted too.) A disk under pressure
//! therefore costs at most one slow job per loop and [`BACK_OFF`].

use crate::config::StorageConfig;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// An inline job that gave up the CPU and took this long waited for the
/// disk (dirty-page throttling, a queue of reads), or for a lock held across
/// I/O. Shorter waits happen without any disk trouble: a lock whose holder
/// was preempted on a busy machine is given back within a time slice or two
/// (2-4 ms seen with 8 clients on 2 cores), and do not count.
pub const SLOW: Duration = Duration::from_millis(10);
/// How long changes then go to the disk threads.
pub const BACK_OFF: Duration = Duration::from_secs(2);
/// Uploads and appends up to this size may be done inline: one chunk of
/// the default `buff_size`, written in one go.
pub const MAX_BYTES: u64 = 256 * 1024;

/// What a job on a file does, which decides where it may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Reads the file: a disk thread (unless the bytes are cached: see
    /// `storage::cached`).
    Read,
    /// Reads only the inode (a stat): a disk thread, or the network thread
    /// with `disk_inline_reads`, which accepts waits for metadata blocks.
    Stat,
    /// A small change: new files, deletes, metadata.
    Change,
    /// A change to an appender file, which `durable_uploads` syncs in place.
    InPlace,
    /// Reads a whole file to change it: always a disk thread.
    Long,
}

impl Work {
    /// Whether this kind of job may run on a network thread under `cfg`
    /// (while [`InlineWrites::allowed`]): a change that syncs no file. With
    /// `durable_uploads` small changes go through the journal, which no
    /// network thread waits for, but appender changes are synced in place;
    /// `fsync_after_written_bytes` syncs uploads (in durable mode too, those
    /// that arrive in several pieces).
    pub fn may_run_inline(self, cfg: &StorageConfig) -> bool {
        let fsync = cfg.fsync_after_written_bytes > 0;
        match self {
            Work::Change => !fsync,
            Work::InPlace => !fsync && !cfg.durable_uploads,
            Work::Read | Work::Stat | Work::Long => false,
        }
    }
}

/// Whether small changes run on the network thread now.
pub struct InlineWrites {
    enabled: bool,
    start: Instant,
    /// Milliseconds after `start` before which changes go to the disk threads.
    off_until: AtomicU64,
}

impl InlineWrites {
    /// `enabled`: storage.conf `disk_inline_writes`.
    pub fn new(enabled: bool) -> InlineWrites {
        InlineWrites {
            enabled,
            start: Instant::now(),
            off_until: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Whether a change of `bytes` bytes should run on the network thread.
    pub fn allowed(&self, bytes: u64) -> bool {
        self.enabled
            && bytes <= MAX_BYTES
            && self.now_ms() >= self.off_until.load(Ordering::Relaxed)
    }

    /// An inline job took `took`, and `waited` for something meanwhile
    /// (rather than only being preempted, which the disk threads would not
    /// have avoided): a slow one that waited turns inline changes off for
    /// [`BACK_OFF`].
    pub fn ran(&self, took: Duration, waited: bool) {
        if !self.enabled || took < SLOW || !waited {
            return;
        }
        let until = self.now_ms() + BACK_OFF.as_millis() as u64;
        if self.off_until.swap(until, Ordering::Relaxed) <= self.now_ms() {
            log::info!(
                "a change on the network thread took {} ms: changes go to the disk threads for {} s",
                took.as_millis(),
                BACK_OFF.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_job_sends_changes_to_the_disk_threads_for_a_while() {
        let w = InlineWrites::new(true);
        assert!(w.allowed(4096));
        assert!(!w.allowed(MAX_BYTES + 1), "big changes never");
        w.ran(Duration::from_micros(50), true);
        assert!(w.allowed(4096), "a fast job changes nothing");
        w.ran(SLOW * 10, false);
        assert!(w.allowed(4096), "nor does a preempted one");
        w.ran(SLOW, true);
        assert!(!w.allowed(4096), "a slow job turns them off");
        // As if the back-off had passed.
        w.off_until.store(w.now_ms(), Ordering::Relaxed);
        assert!(w.allowed(4096), "and they come back");
        let off = InlineWrites::new(false);
        assert!(!off.allowed(1));
    }

    #[test]
    fn nothing_that_syncs_a_file_runs_inline() {
        let plain = StorageConfig::default();
        assert!(Work::Change.may_run_inline(&plain));
        assert!(Work::InPlace.may_run_inline(&plain));
        assert!(!Work::Read.may_run_inline(&plain));
        assert!(!Work::Long.may_run_inline(&plain));
        let durable = StorageConfig {
            durable_uploads: true,
            ..StorageConfig::default()
        };
        assert!(Work::Change.may_run_inline(&durable), "journaled");
        assert!(!Work::InPlace.may_run_inline(&durable), "synced in place");
        let fsync = StorageConfig {
            fsync_after_written_bytes: 1 << 20,
            ..StorageConfig::default()
        };
        assert!(!Work::Change.may_run_inline(&fsync));
        assert!(!Work::InPlace.may_run_inline(&fsync));
        let both = StorageConfig {
            fsync_after_written_bytes: 1 << 20,
            ..durable
        };
        assert!(!Work::Change.may_run_inline(&both));
    }
}
