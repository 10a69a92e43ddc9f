//! data/storage_changelog.dat (LAYOUT.md §1.4): an append-only log of storage
//! deletions and IP changes that storages read through CHANGELOG_REQ to drop
//! or rename their per-peer sync state.
//!
//! C storages ask for it after every heartbeat, so it is served from memory
//! (it only grows by an operator's deletions and IP changes); the file is
//! appended and fsynced by a thread of its own, never on a network thread
//! and never under the tracker's state lock.

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::layout::tracker_dat::CHANGELOG_FILE as FILE;
/// Most bytes one CHANGELOG_REQ reply carries.
pub const MAX_CHUNK: usize = 8182;

/// The change log: its whole content in memory, and the queue of lines its
/// writer thread has yet to make durable.
pub struct Changelog {
    bytes: Mutex<Vec<u8>>,
    tx: Sender<Vec<u8>>,
}

impl Changelog {
    /// Read the file in `data_dir` and start the writer thread, which stops
    /// once `quit` is set and the queue is empty.
    pub fn open(
        data_dir: &Path,
        quit: Arc<AtomicBool>,
    ) -> io::Result<(Changelog, std::thread::JoinHandle<()>)> {
        let path = data_dir.join(FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let writer = std::thread::Builder::new()
            .name("fdfs-tracker-log".into())
            .spawn(move || write_lines(&path, &rx, &quit))?;
        let log = Changelog {
            bytes: Mutex::new(bytes),
            tx,
        };
        Ok((log, writer))
    }

    /// Append `<ts> <group> <id> <status> <arg>`: readable at once, on disk
    /// (fsynced) shortly after.
    pub fn append(&self, ts: u64, group: &str, id: &str, status: u8, arg: &str) {
        let line = format!("{ts} {group} {id} {status} {arg}\n").into_bytes();
        self.bytes.lock().extend_from_slice(&line);
        if self.tx.send(line).is_err() {
            log::error!("the change log's writer has stopped; a line is only in memory");
        }
    }

    /// Current size (where a new storage starts reading).
    pub fn size(&self) -> u64 {
        self.bytes.lock().len() as u64
    }

    /// The whole file, for a peer tracker copying the system files.
    pub fn all(&self) -> Vec<u8> {
        self.bytes.lock().clone()
    }

    /// The whole lines after `offset`, at most [`MAX_CHUNK`] bytes (cut at a
    /// line end, unlike upstream, so no record is ever split and lost).
    pub fn read_from(&self, offset: u64) -> Vec<u8> {
        let bytes = self.bytes.lock();
        let start = (offset.min(bytes.len() as u64)) as usize;
        let window = &bytes[start..(start + MAX_CHUNK).min(bytes.len())];
        let end = window
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        window[..end].to_vec()
    }
}

/// The writer thread: append what arrives, one fsync per batch.
fn write_lines(path: &PathBuf, rx: &Receiver<Vec<u8>>, quit: &AtomicBool) {
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => line,
            Err(_) if quit.load(Ordering::SeqCst) && rx.is_empty() => return,
            Err(_) => continue,
        };
        let mut batch = first;
        while let Ok(more) = rx.try_recv() {
            batch.extend_from_slice(&more);
        }
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| {
                f.write_all(&batch)?;
                f.sync_data()
            });
        if let Err(e) = written {
            log::error!("appending to {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let quit = Arc::new(AtomicBool::new(false));
        let (log, writer) = Changelog::open(dir.path(), quit.clone()).unwrap();
        assert!(log.read_from(0).is_empty());
        log.append(1, "group1", "10.0.0.2", 4, "");
        let end1 = log.size();
        log.append(2, "group1", "10.0.0.3", 3, "10.0.0.9");
        assert_eq!(
            String::from_utf8(log.read_from(0)).unwrap(),
            "1 group1 10.0.0.2 4 \n2 group1 10.0.0.3 3 10.0.0.9\n"
        );
        assert_eq!(log.read_from(end1), b"2 group1 10.0.0.3 3 10.0.0.9\n");
        assert_eq!(log.size(), end1 + 29);
        assert!(log.read_from(1000).is_empty());
        // Stopping writes out what was queued; a new open reads it back.
        quit.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        let (again, w2) = Changelog::open(dir.path(), quit).unwrap();
        assert_eq!(again.all(), log.all());
        w2.join().unwrap();
    }

    #[test]
    fn replies_end_at_a_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let quit = Arc::new(AtomicBool::new(true));
        let (log, _w) = Changelog::open(dir.path(), quit).unwrap();
        for i in 0..400 {
            log.append(i, "group1", "storage-with-a-long-id", 4, "10.0.0.99");
        }
        let chunk = log.read_from(0);
        assert!(chunk.len() <= MAX_CHUNK && chunk.ends_with(b"\n"));
        let lines = chunk.iter().filter(|&&b| b == b'\n').count();
        let next = log.read_from(chunk.len() as u64);
        assert!(next.starts_with(format!("{lines} group1 ").as_bytes()));
    }
}
