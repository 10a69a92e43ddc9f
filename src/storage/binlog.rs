//! The storage's binlog: every change is appended (one write per record, so a
//! crash of the process never loses an acknowledged change) before the client
//! is answered; push threads read it back from their mark positions.

use super::journal::Commit;
use crate::layout::binlog::{self as fmt, Record};
use parking_lot::{Condvar, Mutex};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Writer {
    file: File,
    index: u32,
    size: u64,
}

/// The binlog being written.
pub struct Binlog {
    dir: PathBuf,
    w: Mutex<Writer>,
    /// Bumped on every append; readers wait on `more` for it to change.
    seq: Mutex<u64>,
    more: Condvar,
    /// With `durable_uploads`, every line also goes to the redo journal.
    journal: std::sync::OnceLock<std::sync::Arc<super::journal::Journal>>,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Binlog {
    /// Open (or start) the binlog in `sync_dir`. Records are not fsync'ed one
    /// by one: durable mode makes them durable through the journal.
    pub fn open(sync_dir: &Path) -> io::Result<Binlog> {
        std::fs::create_dir_all(sync_dir)?;
        let index = fmt::read_index(sync_dir)?;
        let path = fmt::binlog_path(sync_dir, index);
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        if !fmt::index_path(sync_dir).exists() {
            fmt::write_index(sync_dir, index)?;
        }
        Ok(Binlog {
            dir: sync_dir.to_path_buf(),
            w: Mutex::new(Writer { file, index, size }),
            seq: Mutex::new(0),
            more: Condvar::new(),
            journal: std::sync::OnceLock::new(),
        })
    }

    /// The sync directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append one record, rolling to the next file at the size limit.
    /// Returns the journal's token for the line ([`Commit::NONE`] without a
    /// journal): the change is durable once it is.
    pub fn append(&self, r: &Record) -> io::Result<Commit> {
        self.append_with(|| Ok(Some(r.clone())))
    }

    /// Append a record of `op` on `name`, timestamped under the lock (so the
    /// binlog stays in time order); returns as [`Binlog::append`].
    pub fn append_now(&self, op: u8, name: &str) -> io::Result<Commit> {
        self.append_with(|| Ok(Some(Record::new(super::now() as u32, op, name))))
    }

    /// Run `change` under the binlog lock and append the record it returns
    /// (returns as [`Binlog::append`]; [`Commit::NONE`] when it returns no
    /// record). Changes that take their timestamp inside `change` are
    /// therefore logged in time order: a peer that holds this server's record
    /// of second t holds every earlier one, which download routing relies on.
    pub fn append_with(
        &self,
        change: impl FnOnce() -> io::Result<Option<Record>>,
    ) -> io::Result<Commit> {
        let commit = {
            let mut w = self.w.lock();
            let Some(r) = change()? else {
                return Ok(Commit::NONE);
            };
            self.write_lines(&mut w, &[r.to_line()])?
        };
        self.appended();
        Ok(commit)
    }

    /// Append `records`, each stamped now under the lock, in one write (so
    /// a reader sees all of them or none; one system call, not one per
    /// record). Returns as [`Binlog::append`].
    pub fn append_all_now(&self, records: &mut [Record]) -> io::Result<Commit> {
        let commit = {
            let mut w = self.w.lock();
            let now = super::now() as u32;
            let lines: Vec<String> = (records.iter_mut())
                .map(|r| {
                    r.timestamp = now;
                    r.to_line()
                })
                .collect();
            self.write_lines(&mut w, &lines)?
        };
        self.appended();
        Ok(commit)
    }

    /// Write `lines` at the end of the binlog in one write, rolling to the
    /// next file first when they would pass the size limit.
    fn write_lines(&self, w: &mut Writer, lines: &[String]) -> io::Result<Commit> {
        let len: u64 = lines.iter().map(|l| l.len() as u64).sum();
        if w.size + len > fmt::MAX_FILE_SIZE {
            let next = w.index + 1;
            let file = open_append(&fmt::binlog_path(&self.dir, next))?;
            w.file.sync_all()?;
            fmt::write_index(&self.dir, next)?;
            *w = Writer {
                file,
                index: next,
                size: 0,
            };
        }
        match lines {
            [one] => w.file.write_all(one.as_bytes())?,
            _ => w.file.write_all(lines.concat().as_bytes())?,
        }
        let mut commit = Commit::NONE;
        for l in lines {
            w.size += l.len() as u64;
            if let Some(j) = self.journal.get() {
                commit = j.add_line(l.as_bytes(), (w.index, w.size));
            }
        }
        Ok(commit)
    }

    /// Wake the readers waiting for more.
    fn appended(&self) {
        *self.seq.lock() += 1;
        self.more.notify_all();
    }

    /// Send every line appended from now on to `j` as well.
    pub fn set_journal(&self, j: std::sync::Arc<super::journal::Journal>) {
        let _ = self.journal.set(j);
    }

    /// Where the next record will be written: (index, offset).
    pub fn write_pos(&self) -> (u32, u64) {
        let w = self.w.lock();
        (w.index, w.size)
    }

    /// Current change counter (see [`Binlog::wait`]).
    pub fn seq(&self) -> u64 {
        *self.seq.lock()
    }

    /// Sleep until a record is appended after `seen`, or `timeout` passes.
    pub fn wait(&self, seen: u64, timeout: Duration) {
        let mut s = self.seq.lock();
        if *s == seen {
            self.more.wait_for(&mut s, timeout);
        }
    }

    /// Wake every waiting reader (shutdown, peer list changes).
    pub fn wake_all(&self) {
        *self.seq.lock() += 1;
        self.more.notify_all();
    }

    /// Flush to disk (shutdown).
    pub fn sync(&self) -> io::Result<()> {
        self.w.lock().file.sync_all()
    }
}

/// Reads records from a position onwards; only whole lines are consumed, so
/// a record being written is read on the next call.
pub struct Reader {
    dir: PathBuf,
    /// Position of the next unread record.
    pub index: u32,
    pub offset: u64,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as records.
    used: usize,
    /// Records skipped because they do not parse.
    pub skipped: u64,
    file: Option<File>,
}

impl Reader {
    /// A reader starting at (index, offset).
    pub fn new(dir: &Path, index: u32, offset: u64) -> Reader {
        Reader {
            dir: dir.to_path_buf(),
            index,
            offset,
            buf: Vec::new(),
            used: 0,
            skipped: 0,
            file: None,
        }
    }

    /// The next record and the position after it, or `None` at the current end.
    /// Lines that do not parse are skipped (with a log line).
    pub fn next(&mut self, writing: (u32, u64)) -> io::Result<Option<Record>> {
        loop {
            if let Some(pos) = self.buf[self.used..].iter().position(|&b| b == b'\n') {
                let line = &self.buf[self.used..self.used + pos + 1];
                self.used += pos + 1;
                self.offset += (pos + 1) as u64;
                match std::str::from_utf8(line).ok().and_then(Record::parse) {
                    Some(r) => return Ok(Some(r)),
                    None => {
                        self.skipped += 1;
                        log::warn!(
                            "binlog.{:03} offset {}: skipping invalid record {:?}",
                            self.index,
                            self.offset - line.len() as u64,
                            String::from_utf8_lossy(line)
                        );
                        continue;
                    }
                }
            }
            if !self.fill()? {
                // Nothing more in this file: move on if a newer one exists.
                if self.index < writing.0 {
                    self.index += 1;
                    self.offset = 0;
                    self.file = None;
                    self.buf.clear();
                    self.used = 0;
                    continue;
                }
                return Ok(None);
            }
        }
    }

    /// Read more bytes of the current file; false at its end.
    fn fill(&mut self) -> io::Result<bool> {
        self.buf.drain(..self.used);
        self.used = 0;
        if self.file.is_none() {
            let path = fmt::binlog_path(&self.dir, self.index);
            let mut f = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            };
            f.seek(SeekFrom::Start(self.offset + self.buf.len() as u64))?;
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        let start = self.buf.len();
        self.buf.resize(start + 64 * 1024, 0);
        let n = f.read(&mut self.buf[start..])?;
        self.buf.truncate(start + n);
        if n == 0 && self.buf.len() > fmt::MAX_LINE * 4 {
            // A partial "line" this long is no record: skip it.
            self.skipped += 1;
            log::warn!(
                "binlog.{:03} offset {}: {} bytes without a newline, skipped",
                self.index,
                self.offset,
                self.buf.len()
            );
            self.offset += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::binlog::op;

    #[test]
    fn append_then_read_back_across_a_roll() {
        let dir = tempfile::tempdir().unwrap();
        let b = Binlog::open(dir.path()).unwrap();
        for i in 0..5 {
            let name = format!("M00/00/00/f{i}");
            let c = b.append(&Record::new(100 + i, op::CREATE, &name)).unwrap();
            assert!(c.is_none(), "without a journal nothing waits");
        }
        let mut r = Reader::new(dir.path(), 0, 0);
        let mut got = Vec::new();
        while let Some(rec) = r.next(b.write_pos()).unwrap() {
            got.push(rec.name);
        }
        assert_eq!(got.len(), 5);
        assert_eq!((r.index, r.offset), b.write_pos());
        // A record appended later is found from the saved position.
        let c = b.append(&Record::new(200, op::DELETE, "M00/00/00/f0"));
        assert!(c.unwrap().is_none());
        let mut r2 = Reader::new(dir.path(), r.index, r.offset);
        assert_eq!(r2.next(b.write_pos()).unwrap().unwrap().op, op::DELETE);
        // Simulate a roll: the next file exists and the index says so.
        std::fs::write(fmt::binlog_path(dir.path(), 1), "300 C M00/00/00/g\n").unwrap();
        assert_eq!(r2.next((1, 0)).unwrap().unwrap().name, "M00/00/00/g");
        assert_eq!((r2.index, r2.offset), (1, 18));
    }

    #[test]
    fn partial_lines_wait_and_bad_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = fmt::binlog_path(dir.path(), 0);
        std::fs::write(&path, "1 l \n2 C M00/00/00/a\n3 C M00/00").unwrap();
        let mut r = Reader::new(dir.path(), 0, 0);
        assert_eq!(r.next((0, 0)).unwrap().unwrap().timestamp, 2);
        assert_eq!(
            r.next((0, 0)).unwrap(),
            None,
            "half a line is not a record yet"
        );
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"/00/b\n").unwrap();
        assert_eq!(r.next((0, 0)).unwrap().unwrap().name, "M00/00/00/b");
    }
}
