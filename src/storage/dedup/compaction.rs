//! Compaction of the dedup index: a snapshot of it and a new log, written
//! in place (at start, at stop, after a failed background one) or on a
//! thread of its own while uploads go on (see [`Locked::compact`]).

use super::{Entry, LOG, LOG_NEXT, Locked, Name, SNAPSHOT, encode};
use crate::layout::dedup::{self as fmt, Change};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl Locked<'_> {
    /// Write a snapshot of the index and start an empty log, in place (at
    /// start, at stop, and when the background snapshot failed); waits for
    /// a background one first.
    pub fn compact(&mut self) -> io::Result<()> {
        self.d.snapshot_written();
        let generation = self.g.generation + 1;
        let mut job = SnapshotJob {
            dir: self.d.dir.clone(),
            generation,
            entries: self.entries(),
        };
        job.write_snapshot()?;
        // A crash here leaves the old log, whose generation is now stale.
        self.start_log(LOG, generation)?;
        // A background snapshot's log that never became the log: all it
        // says is in the snapshot above.
        match fs::remove_file(self.d.dir.join(LOG_NEXT)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.d.snapshot.0.lock().failed = false;
        Ok(())
    }

    /// Start a compaction whose snapshot is written on a thread of its own,
    /// so that uploads do not wait for it: here, under the lock, the index
    /// is copied and the changes from now on go to `dedup.log.next`; that
    /// thread writes the snapshot, then renames `dedup.log.next` to
    /// `dedup.log` (see [`logs_to_replay`] for a stop in between).
    pub(super) fn compact_in_background(&mut self) -> io::Result<()> {
        let mut job = self.start_snapshot()?;
        let shared = self.d.snapshot.clone();
        let spawned = std::thread::Builder::new()
            .name("fdfs-dedup-snap".into())
            .spawn(move || {
                let written = job.run();
                if let Err(e) = &written {
                    log::error!(
                        "dedup: writing the index's snapshot in {}: {e}; the next compaction \
                         writes it in place",
                        job.dir.display()
                    );
                }
                let (state, done) = &*shared;
                let mut s = state.lock();
                s.running = false;
                s.failed = written.is_err();
                done.notify_all();
            });
        if let Err(e) = spawned {
            let mut s = self.d.snapshot.0.lock();
            s.running = false;
            s.failed = true;
            return Err(e);
        }
        Ok(())
    }

    /// The part of a background compaction done under the lock: the index
    /// copied, `dedup.log.next` started and made the log.
    pub(super) fn start_snapshot(&mut self) -> io::Result<SnapshotJob> {
        let generation = self.g.generation + 1;
        let entries = self.entries();
        self.start_log(LOG_NEXT, generation)?;
        self.d.snapshot.0.lock().running = true;
        Ok(SnapshotJob {
            dir: self.d.dir.clone(),
            generation,
            entries,
        })
    }

    /// Write the log that follows a snapshot of `generation` as `name` and
    /// make it the log.
    fn start_log(&mut self, name: &str, generation: u64) -> io::Result<()> {
        let path = self.d.dir.join(name);
        let log = self.log_to_follow(generation)?;
        crate::layout::store::atomic_write(&path, log.as_bytes())?;
        self.g.log = Arc::new(OpenOptions::new().append(true).open(&path)?);
        self.g.generation = generation;
        self.g.logged = 0;
        Ok(())
    }

    /// The snapshot's entries: links being made count as made (if a crash
    /// takes the log that follows, a count too high keeps a content too
    /// long, one too low would remove it under a link).
    fn entries(&self) -> Vec<Entry> {
        (self.g.by_src.iter())
            .map(|(src, c)| Entry {
                key: c.key,
                hash: c.hash,
                refs: c.refs + c.reserved,
                src: Name::clone(src),
            })
            .collect()
    }

    /// The start of the log that follows a snapshot of `generation`: what is
    /// still under way, to be checked at the next open: links to known
    /// sources, counted in the snapshot, as `=`; a new source, not in the
    /// snapshot yet, and its link as they were.
    fn log_to_follow(&self, generation: u64) -> io::Result<String> {
        let mut log = fmt::log_header(generation);
        let mut tickets: Vec<_> = self.g.under_way.iter().collect();
        tickets.sort_by_key(|(t, _)| **t);
        for (_, changes) in tickets {
            let new_source = changes.iter().any(|c| matches!(c, Change::Source { .. }));
            let again: Vec<Change> = (changes.iter().cloned())
                .map(|c| match c {
                    Change::Link { src, link } if !new_source => Change::Counted { src, link },
                    c => c,
                })
                .collect();
            log += &encode(&again)?;
        }
        Ok(log)
    }
}

/// A snapshot to write outside the index's lock.
pub(super) struct SnapshotJob {
    dir: PathBuf,
    generation: u64,
    entries: Vec<Entry>,
}

impl SnapshotJob {
    /// Write the snapshot, then make `dedup.log.next` the log.
    pub(super) fn run(&mut self) -> io::Result<()> {
        self.write_snapshot()?;
        fs::rename(self.dir.join(LOG_NEXT), self.dir.join(LOG))
    }

    pub(super) fn write_snapshot(&mut self) -> io::Result<()> {
        self.entries.sort_by(|a, b| a.src.cmp(&b.src));
        crate::layout::store::atomic_write(
            &self.dir.join(SNAPSHOT),
            &fmt::encode_snapshot(self.generation, &self.entries),
        )
    }
}

/// The logs to replay after a snapshot of `generation`, in order, with
/// their paths:
/// - `dedup.log` of the same generation;
/// - then `dedup.log.next` of the next one: a background snapshot was being
///   written when the server stopped (its changes follow the old log's);
/// - or `dedup.log.next` alone, of the same generation: the snapshot was
///   written, and `dedup.log` (older) not replaced by it yet.
pub(super) fn logs_to_replay(
    dir: &Path,
    generation: u64,
) -> io::Result<Vec<(PathBuf, fmt::LogRead)>> {
    let read = |name: &str| -> io::Result<Option<(PathBuf, fmt::LogRead)>> {
        let path = dir.join(name);
        match fs::read(&path) {
            Ok(b) => Ok(fmt::decode_log(&b).map(|l| (path, l))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    };
    let log = read(LOG)?.filter(|(_, l)| l.generation == generation);
    let next = read(LOG_NEXT)?;
    Ok(match (log, next) {
        (_, Some(n)) if n.1.generation == generation => vec![n],
        (Some(l), Some(n)) if n.1.generation == generation + 1 => vec![l, n],
        (Some(l), _) => vec![l],
        (None, _) => Vec::new(),
    })
}
