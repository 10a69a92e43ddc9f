//! The back-off of small writes done on the network thread
//! (`disk_inline_writes`; where they run is decided in `storage::placement`).
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
//! writeback throttling) holds up the other connections of its loop. The
//! loop reports how long each inline job took and whether it gave up the CPU
//! meanwhile; one that waited and took longer than [`SLOW`] sends every
//! change to the disk threads for the next [`BACK_OFF`], after which inline
//! writes are tried again. (A job that was only preempted does not count:
//! a disk thread would have been preempted too.) A disk under pressure
//! therefore costs at most one slow job per loop and [`BACK_OFF`].

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

/// Whether changes on the network threads lately waited for the disk.
pub struct InlineWrites {
    start: Instant,
    /// Milliseconds after `start` before which changes go to the disk threads.
    off_until: AtomicU64,
}

impl Default for InlineWrites {
    /// No change has waited yet.
    fn default() -> InlineWrites {
        InlineWrites {
            start: Instant::now(),
            off_until: AtomicU64::new(0),
        }
    }
}

impl InlineWrites {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Whether changes go to the disk threads for now (a placement
    /// condition: `placement::Cond::BackedOff`).
    pub fn backed_off(&self) -> bool {
        self.now_ms() < self.off_until.load(Ordering::Relaxed)
    }

    /// An inline job took `took`, and `waited` for something meanwhile
    /// (rather than only being preempted, which the disk threads would not
    /// have avoided): a slow one that waited turns inline changes off for
    /// [`BACK_OFF`].
    pub fn ran(&self, took: Duration, waited: bool) {
        if took < SLOW || !waited {
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
        let w = InlineWrites::default();
        assert!(!w.backed_off());
        w.ran(Duration::from_micros(50), true);
        assert!(!w.backed_off(), "a fast job changes nothing");
        w.ran(SLOW * 10, false);
        assert!(!w.backed_off(), "nor does a preempted one");
        w.ran(SLOW, true);
        assert!(w.backed_off(), "a slow job turns them off");
        // As if the back-off had passed.
        w.off_until.store(w.now_ms(), Ordering::Relaxed);
        assert!(!w.backed_off(), "and they come back");
    }
}
