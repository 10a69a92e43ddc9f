//! The redo journal of `durable_uploads`: what makes a change durable before
//! the client hears of it, at the cost of one sequential write per batch.
//!
//! Syncing each new file, its directory and the binlog costs several random
//! writes and a cache flush per upload (about 1 ms a batch on the test
//! machines, whose ext4 has no journal of its own). Instead, a change writes
//! its file as usual (page cache only) and adds to this journal a record of
//! the file's content and of its binlog line. A flusher thread writes the
//! records gathered so far as one round: one `O_DIRECT` write with
//! `RWF_DSYNC` to the preallocated file, which makes them all durable (group
//! commit). While it runs, the next round gathers, and starts as soon as it
//! ends. A change's reply waits for its round without keeping its worker
//! ([`Journal::on_durable`]).
//! After a crash, [`super::journal_recover`] rewrites the files and binlog
//! lines the journal holds and the disk lost.
//!
//! The file holds a header block and two regions. A generation of records
//! fills one region; when it is full the next generation starts in the other
//! one, and a background checkpoint `syncfs`es the filesystems of the store
//! paths and the binlog (which makes the older generation durable in place)
//! and then names the new generation in the header. Until then, recovery
//! replays the header's generation and the next one after it, so uploads
//! wait for a checkpoint only when the new region fills up before it ends.
//!
//! The file's format is in [`crate::layout::journal`].

use crate::layout::journal::{BLOCK, Header, encode_record, kind, record_len, regions, retag, tag};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files up to this size are journaled; bigger ones are synced in place.
pub const MAX_FILE: u64 = 1024 * 1024;

struct State {
    /// Records for the next rounds.
    buf: Vec<u8>,
    /// The binlog positions where the lines in `buf` start, by record number.
    line_starts: VecDeque<(u64, (u32, u64))>,
    /// Records added so far / taken into a round / durable.
    added: u64,
    reserved: u64,
    done: u64,
    /// Rounds that failed (first record, last record, error): their waiters
    /// get the error. The newest few are kept.
    failed: Vec<(u64, u64, io::ErrorKind, String)>,
    /// The generation being written, where its lines start in the binlog,
    /// its region and where its next round goes.
    generation: u64,
    gen_binlog: (u32, u64),
    region: usize,
    offset: u64,
    /// The generation the header on disk names.
    header_gen: u64,
    /// A checkpoint is running.
    checkpointing: bool,
    /// The binlog position after the newest line added.
    binlog_end: (u32, u64),
    /// The journal is being dropped: the flusher writes what is left and ends.
    quit: bool,
    /// What to call once a record is durable (or its round failed), by record
    /// number ([`Journal::on_durable`]).
    callbacks: Vec<(u64, Callback)>,
}

/// Called with the outcome of the round that held a record.
pub type Callback = Box<dyn FnOnce(io::Result<()>) + Send>;

impl State {
    fn fail(&mut self, first: u64, upto: u64, e: &io::Error) {
        self.failed.push((first, upto, e.kind(), e.to_string()));
        let n = self.failed.len();
        self.failed.drain(..n.saturating_sub(64));
    }

    fn failure(&self, seq: u64) -> Option<io::Error> {
        self.failed
            .iter()
            .find(|f| f.0 <= seq && seq <= f.1)
            .map(|f| io::Error::new(f.2, f.3.clone()))
    }

    /// The callbacks whose records are settled (durable, or their round
    /// failed), with their outcomes: to be called once the lock is released.
    fn settled(&mut self) -> Vec<(Callback, io::Result<()>)> {
        let done = self.done;
        let ready: Vec<_> = self.callbacks.extract_if(.., |c| c.0 <= done).collect();
        ready
            .into_iter()
            .map(|(seq, f)| (f, self.failure(seq).map_or(Ok(()), Err)))
            .collect()
    }

    /// Take the records of the next round: as many as fit in `limit` bytes
    /// (at least one). Returns them and the number of the last.
    fn take_round(&mut self, limit: u64) -> (Vec<u8>, u64) {
        let (mut len, mut count) = (0, 0);
        while len < self.buf.len() {
            let n = record_len(&self.buf[len..]);
            if count > 0 && (len + n) as u64 > limit {
                break;
            }
            len += n;
            count += 1;
        }
        let rest = self.buf.split_off(len);
        let data = std::mem::replace(&mut self.buf, rest);
        let upto = self.reserved + count;
        while self.line_starts.front().is_some_and(|l| l.0 <= upto) {
            self.line_starts.pop_front();
        }
        self.reserved = upto;
        (data, upto)
    }
}

/// A promise of the journal: the records a change added, which must be
/// durable before its reply goes out ([`Journal::on_durable`]). Appending
/// returns one, and it travels up with the change's result to the job that
/// answers. Records become durable in order, so the newest one stands for
/// all: a change that adds several keeps the `max`. A storage has one
/// journal, so the record number is enough.
#[must_use = "a change's reply waits for its journal records: hand this on with it"]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Commit {
    seq: u64,
}

impl Commit {
    /// Nothing to wait for: no journal (`durable_uploads` off), nothing
    /// journaled (a change synced in place, nothing changed).
    pub const NONE: Commit = Commit { seq: 0 };

    /// Whether there is nothing to wait for.
    pub fn is_none(self) -> bool {
        self == Commit::NONE
    }
}

/// What the journal, its flusher and its checkpoints share.
struct Shared {
    /// Opened with `O_DIRECT` where the filesystem allows it: a round is then
    /// one write and a cache flush.
    file: File,
    salt: u64,
    regions: [(u64, u64); 2],
    /// One directory per filesystem to `syncfs` at a checkpoint.
    roots: Vec<PathBuf>,
    st: Mutex<State>,
    /// The flusher: records are waiting, or a checkpoint ended.
    work: Condvar,
}

/// The journal of a durable storage.
pub struct Journal {
    shared: Arc<Shared>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl Journal {
    /// Open (creating and zero-filling to `size` bytes if needed) the journal
    /// at `path` and start generation `generation` in a new life of the file
    /// (recovery has replayed the old one). Everything on `roots`'
    /// filesystems is synced first, which the header's binlog position
    /// `binlog` relies on.
    pub fn start(
        path: &Path,
        size: u64,
        roots: Vec<PathBuf>,
        generation: u64,
        binlog: (u32, u64),
    ) -> io::Result<Journal> {
        let size = size.max(4 * MAX_FILE).div_ceil(BLOCK) * BLOCK;
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        let file = opts.open(path)?;
        if file.metadata()?.len() != size {
            // Written, not just allocated: overwriting written blocks needs no
            // metadata update, so a round's flush is one sequential write.
            file.set_len(0)?;
            let zeros = vec![0u8; 1024 * 1024];
            let mut at = 0;
            while at < size {
                let n = (size - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            file.sync_all()?;
        }
        use std::os::unix::fs::OpenOptionsExt;
        let file = match opts.custom_flags(libc::O_DIRECT).open(path) {
            Ok(f) => f,
            Err(e) => {
                // tmpfs, say: buffered writes, each synced (RWF_DSYNC).
                log::info!("{}: no O_DIRECT ({e})", path.display());
                file
            }
        };
        use std::hash::BuildHasher;
        let salt = std::collections::hash_map::RandomState::new().hash_one(path);
        let regions = regions(size);
        let shared = Arc::new(Shared {
            file,
            salt,
            regions,
            roots,
            st: Mutex::new(State {
                buf: Vec::new(),
                line_starts: VecDeque::new(),
                added: 0,
                reserved: 0,
                done: 0,
                failed: Vec::new(),
                generation,
                gen_binlog: binlog,
                region: 0,
                offset: regions[0].0,
                header_gen: generation,
                checkpointing: false,
                binlog_end: binlog,
                quit: false,
                callbacks: Vec::new(),
            }),
            work: Condvar::new(),
        });
        shared.checkpoint(generation, binlog, 0)?;
        if let Some(dir) = path.parent() {
            crate::layout::store::fsync_dir(dir)?;
        }
        let sh = shared.clone();
        let flusher = std::thread::Builder::new()
            .name("fdfs-journal".into())
            .spawn(move || sh.flush_rounds())?;
        Ok(Journal {
            shared,
            flusher: Some(flusher),
        })
    }

    fn add(&self, kind: u8, name: &[u8], data: &[u8], line_end: Option<(u32, u64)>) -> Commit {
        let mut st = self.shared.st.lock();
        let t = tag(self.shared.salt, st.generation);
        encode_record(&mut st.buf, t, kind, name, data);
        st.added += 1;
        let seq = st.added;
        if let Some(end) = line_end {
            st.line_starts
                .push_back((seq, (end.0, end.1 - data.len() as u64)));
            st.binlog_end = end;
        }
        Commit { seq }
    }

    /// Add the whole content of the file with remote name `name`, unless it
    /// is bigger than [`MAX_FILE`] (`None`: sync that file in place).
    pub fn add_file(&self, name: &str, data: &[u8]) -> Option<Commit> {
        if data.len() as u64 > MAX_FILE || name.len() > 1024 {
            return None;
        }
        Some(self.add(kind::FILE, name.as_bytes(), data, None))
    }

    /// Add a binlog line just written, which ends at binlog position `end`
    /// (in the file it starts in). Called under the binlog's lock, so lines
    /// keep the binlog's order.
    pub fn add_line(&self, line: &[u8], end: (u32, u64)) -> Commit {
        self.add(kind::LINE, &[], line, Some(end))
    }

    /// The newest record added: everything so far.
    pub fn added(&self) -> Commit {
        Commit {
            seq: self.shared.st.lock().added,
        }
    }

    /// Return once the records of `c` (and all before them) are durable.
    pub fn wait(&self, c: Commit) -> io::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.on_durable(
            c,
            Box::new(move |outcome| {
                let _ = tx.send(outcome);
            }),
        );
        rx.recv()
            .unwrap_or_else(|_| Err(io::Error::other("journal: the flusher ended first")))
    }

    /// Call `then` once the records of `c` (and all before them) are
    /// durable, or with the error of the round that failed them: on the
    /// flusher thread, or right away if that is settled already
    /// ([`Commit::NONE`] is). Unlike [`Journal::wait`] the caller does not
    /// wait.
    pub fn on_durable(&self, c: Commit, then: Callback) {
        let seq = c.seq;
        let sh = &*self.shared;
        let mut st = sh.st.lock();
        if seq > st.added {
            drop(st);
            then(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "journal: waiting for a record never added",
            )));
        } else if st.done >= seq {
            let outcome = st.failure(seq).map_or(Ok(()), Err);
            drop(st);
            then(outcome);
        } else {
            st.callbacks.push((seq, then));
            drop(st);
            sh.work.notify_one();
        }
    }

    /// Flush what is pending (shutdown).
    pub fn flush(&self) -> io::Result<()> {
        self.wait(self.added())
    }
}

/// A journal on its own, for `fdfs bench --disk-commit`: the storage's file,
/// flusher and group commit, without a storage around it. The only part of
/// the journal outside `storage`.
pub struct CommitProbe(Journal);

impl CommitProbe {
    /// The biggest content [`CommitProbe::commit_file`] takes.
    pub const MAX_FILE: u64 = MAX_FILE;

    /// Start a journal of `size` bytes at `path`, on the filesystem of `dir`.
    pub fn start(path: &Path, size: u64, dir: &Path) -> io::Result<CommitProbe> {
        Journal::start(path, size, vec![dir.to_path_buf()], 1, (0, 0)).map(CommitProbe)
    }

    /// Journal `data` as the content of file `name`, as a durable upload
    /// does, and return once it is on disk.
    pub fn commit_file(&self, name: &str, data: &[u8]) -> io::Result<()> {
        if data.len() as u64 > MAX_FILE || name.len() > 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "journal: file too big for a record",
            ));
        }
        let c = self.0.add(kind::FILE, name.as_bytes(), data, None);
        self.0.wait(c)
    }

    /// The number of records journaled so far.
    #[cfg(test)]
    pub fn added(&self) -> u64 {
        self.0.added().seq
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shared.st.lock().quit = true;
        self.shared.work.notify_all();
        if let Some(t) = self.flusher.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    /// The flusher thread: group commit. While a round is written, records
    /// gather for the next one, which starts as soon as it ends.
    fn flush_rounds(self: Arc<Shared>) {
        // The rounds' block-aligned copies, in one buffer kept for the next.
        let mut aligned = Aligned::default();
        let mut st = self.st.lock();
        loop {
            if st.reserved == st.added || st.checkpointing && self.is_full(&st) {
                if st.quit && !st.checkpointing {
                    return;
                }
                self.work.wait(&mut st);
                continue;
            }
            if self.is_full(&st) {
                // The next generation goes to the other region, once the
                // last checkpoint has named the current one.
                if st.header_gen == st.generation {
                    self.switch(&mut st);
                } else {
                    self.checkpoint_again(&mut st);
                }
                continue;
            }
            let first = st.reserved + 1;
            let end = self.regions[st.region].1;
            let room = end - st.offset;
            let (data, upto) = st.take_round(room);
            let offset = st.offset;
            st.offset += (data.len() as u64).div_ceil(BLOCK) * BLOCK;
            drop(st);
            let t0 = std::time::Instant::now();
            let result = write_block(&self.file, aligned.fill(&data), offset);
            log::trace!(
                "journal round: {} records, {} bytes, {} us",
                upto + 1 - first,
                data.len(),
                t0.elapsed().as_micros()
            );
            st = self.st.lock();
            if let Err(e) = &result {
                log::error!("journal write: {e}");
                st.fail(first, upto, e);
            }
            st.done = upto;
            if st.buf.is_empty() {
                // Keep the allocation for the next round.
                let mut data = data;
                data.clear();
                st.buf = data;
            }
            self.run_settled(&mut st);
        }
    }

    /// Whether the next record does not fit in the current region.
    fn is_full(&self, st: &State) -> bool {
        let next = record_len(&st.buf) as u64;
        st.offset + next.div_ceil(BLOCK) * BLOCK > self.regions[st.region].1
    }

    /// Start the next generation in the other region, and a checkpoint in
    /// the background that names it in the header.
    fn switch(self: &Arc<Self>, st: &mut State) {
        let g = st.generation + 1;
        st.gen_binlog = st.line_starts.front().map_or(st.binlog_end, |l| l.1);
        st.generation = g;
        st.region = 1 - st.region;
        st.offset = self.regions[st.region].0;
        retag(&mut st.buf, tag(self.salt, g));
        st.checkpointing = true;
        let (binlog, region) = (st.gen_binlog, st.region);
        let sh = self.clone();
        let run = move || {
            let result = sh.checkpoint(g, binlog, region);
            let mut st = sh.st.lock();
            st.checkpointing = false;
            match result {
                Ok(()) => st.header_gen = st.header_gen.max(g),
                // The next switch retries it first.
                Err(e) => log::error!("journal checkpoint: {e}"),
            }
            sh.work.notify_all();
        };
        let spawned = std::thread::Builder::new()
            .name("fdfs-checkpoint".into())
            .spawn(run);
        if let Err(e) = spawned {
            log::error!("journal checkpoint thread: {e}");
            st.checkpointing = false;
        }
    }

    /// The last checkpoint failed: redo it before the region its header
    /// names is reused, failing the records waiting meanwhile if it fails
    /// again.
    fn checkpoint_again(&self, st: &mut parking_lot::MutexGuard<'_, State>) {
        let (g, binlog, region) = (st.generation, st.gen_binlog, st.region);
        st.checkpointing = true;
        let result = parking_lot::MutexGuard::unlocked(st, || self.checkpoint(g, binlog, region));
        st.checkpointing = false;
        match result {
            Ok(()) => st.header_gen = g,
            Err(e) => {
                log::error!("journal checkpoint: {e}");
                let (first, upto) = (st.reserved + 1, st.added);
                st.fail(first, upto, &e);
                st.buf.clear();
                st.line_starts.clear();
                st.reserved = upto;
                st.done = upto;
                self.run_settled(st);
            }
        }
    }

    /// Call the callbacks of the records settled so far, without the lock.
    fn run_settled(&self, st: &mut parking_lot::MutexGuard<'_, State>) {
        let ready = st.settled();
        if !ready.is_empty() {
            parking_lot::MutexGuard::unlocked(st, || {
                for (f, outcome) in ready {
                    f(outcome);
                }
            });
        }
    }

    /// Make everything written so far durable in place, then name generation
    /// `generation` (in `region`, its lines from binlog position `binlog` on)
    /// as the one to replay.
    fn checkpoint(&self, generation: u64, binlog: (u32, u64), region: usize) -> io::Result<()> {
        let t0 = std::time::Instant::now();
        sync_filesystems(&self.roots)?;
        let h = Header {
            generation,
            binlog,
            region: region as u8,
            salt: self.salt,
        };
        write_block(&self.file, Aligned::default().fill(&h.encode()), 0)?;
        log::trace!("journal checkpoint: {} us", t0.elapsed().as_micros());
        Ok(())
    }
}

/// A block-aligned buffer, as `O_DIRECT` wants, reused from write to write.
#[derive(Default)]
struct Aligned {
    space: Vec<u8>,
}

impl Aligned {
    /// `data` padded with zeros to whole blocks, at a block-aligned address.
    fn fill(&mut self, data: &[u8]) -> &[u8] {
        let b = BLOCK as usize;
        let len = data.len().next_multiple_of(b);
        if self.space.len() < len + b {
            self.space.resize(len + b, 0);
        }
        let skip = self.space.as_ptr().align_offset(b);
        let block = &mut self.space[skip..skip + len];
        let (head, pad) = block.split_at_mut(data.len());
        head.copy_from_slice(data);
        pad.fill(0);
        block
    }
}

/// Write `block` (whole blocks, block-aligned: [`Aligned::fill`]) at
/// block-aligned `offset` and flush it to the device (`RWF_DSYNC`: the write
/// and its cache flush in one call).
fn write_block(file: &File, block: &[u8], offset: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = block.len();
    let mut done = 0;
    while done < len {
        let iov = [io::IoSlice::new(&block[done..])];
        // SAFETY: the iovec points into `block`, alive for the call.
        let n = unsafe {
            libc::pwritev2(
                file.as_raw_fd(),
                iov.as_ptr().cast(),
                1,
                (offset + done as u64) as libc::off_t,
                libc::RWF_DSYNC,
            )
        };
        match n {
            n if n > 0 => done += n as usize,
            0 => return Err(io::ErrorKind::WriteZero.into()),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

fn sync_filesystems(roots: &[PathBuf]) -> io::Result<()> {
    for root in roots {
        nix::unistd::syncfs(File::open(root)?)?;
    }
    Ok(())
}

/// The directories whose filesystems hold the binlog and the store paths,
/// one per filesystem.
pub fn filesystem_roots(dirs: &[PathBuf]) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for d in dirs {
        if let Ok(m) = std::fs::metadata(d)
            && !seen.contains(&m.dev())
        {
            seen.push(m.dev());
            out.push(d.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::journal::{FILE_NAME, replay_records};
    use std::time::{Duration, Instant};

    /// A record as (kind, name, data).
    type Owned = (u8, Vec<u8>, Vec<u8>);

    fn replayed(path: &Path) -> (Header, Vec<Owned>) {
        let bytes = std::fs::read(path).unwrap();
        let h = Header::decode(&bytes).unwrap();
        let recs = replay_records(&bytes, &h)
            .into_iter()
            .map(|r| (r.kind, r.name.to_vec(), r.data.to_vec()))
            .collect();
        (h, recs)
    }

    #[test]
    fn aligned_blocks_are_padded_with_zeros_when_reused() {
        let mut a = Aligned::default();
        let big = a.fill(&[7u8; 5000]).to_vec();
        assert_eq!(big.len(), 2 * BLOCK as usize);
        let small = a.fill(&[1u8; 10]);
        assert_eq!(small.as_ptr().align_offset(BLOCK as usize), 0);
        assert_eq!(small.len(), BLOCK as usize);
        assert!(small[..10].iter().all(|&b| b == 1));
        assert!(
            small[10..].iter().all(|&b| b == 0),
            "no bytes of the last round"
        );
    }

    #[test]
    fn concurrent_commits_are_durable_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let j = Arc::new(Journal::start(&path, 0, vec![dir.path().into()], 4, (0, 0)).unwrap());
        assert_eq!(replayed(&path).0.generation, 4);
        let hs: Vec<_> = (0..4u8)
            .map(|t| {
                let (j, path) = (j.clone(), path.clone());
                std::thread::spawn(move || {
                    for k in 0..25u32 {
                        let c = j.add_file(&format!("f{t}-{k}"), &[t; 100]).unwrap();
                        j.wait(c).unwrap();
                        // Durable means recovery would find it.
                        let want = format!("f{t}-{k}").into_bytes();
                        assert!(replayed(&path).1.iter().any(|r| r.1 == want));
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        let (_, recs) = replayed(&path);
        assert_eq!(recs.len(), 100);
        for t in 0..4u8 {
            let mine: Vec<_> = recs.iter().filter(|r| r.2[0] == t).map(|r| &r.1).collect();
            let want: Vec<_> = (0..25).map(|k| format!("f{t}-{k}").into_bytes()).collect();
            assert_eq!(mine, want.iter().collect::<Vec<_>>(), "thread {t} in order");
        }
    }

    #[test]
    fn full_regions_switch_with_every_commit_replayable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        // 4 MiB: two regions of about 2 MiB, one 1 MiB file each.
        let j = Journal::start(&path, 0, vec![dir.path().into()], 1, (0, 0)).unwrap();
        let big = vec![7u8; MAX_FILE as usize];
        assert_eq!(j.add_file("too-big", &[0; MAX_FILE as usize + 1]), None);
        let mut end = 0u64;
        for i in 0..7 {
            let file = j.add_file(&format!("big{i}"), &big).unwrap();
            let line = format!("{i} C M00/00/00/big{i}\n");
            end += line.len() as u64;
            let c = j.add_line(line.as_bytes(), (0, end));
            assert!(c > file, "newer records, bigger tokens");
            j.wait(c.max(file)).unwrap();
            let (h, recs) = replayed(&path);
            assert_eq!(
                recs.last().map(|r| r.2.clone()),
                Some(line.into_bytes()),
                "the newest commit is replayable (header generation {})",
                h.generation
            );
        }
        // The checkpoints run in the background; the header catches up.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (h, recs) = replayed(&path);
            if h.generation >= 7 {
                // Its lines start where the previous generation's ended.
                let before: u64 = (0..h.generation - 1)
                    .map(|i| format!("{i} C M00/00/00/big{i}\n").len() as u64)
                    .sum();
                assert_eq!(h.binlog, (0, before));
                assert_eq!(recs[0].1, format!("big{}", h.generation - 1).into_bytes());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "header stuck at {}",
                h.generation
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn callbacks_run_once_their_records_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let j = Arc::new(Journal::start(&path, 0, vec![dir.path().into()], 1, (0, 0)).unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let hs: Vec<_> = (0..4u8)
            .map(|t| {
                let (j, path, tx) = (j.clone(), path.clone(), tx.clone());
                std::thread::spawn(move || {
                    for k in 0..25u32 {
                        let name = format!("f{t}-{k}");
                        let c = j.add_file(&name, &[t; 100]).unwrap();
                        let (path, tx) = (path.clone(), tx.clone());
                        // The thread goes on at once; the flusher calls back.
                        j.on_durable(
                            c,
                            Box::new(move |outcome| {
                                outcome.unwrap();
                                let durable =
                                    replayed(&path).1.iter().any(|r| r.1 == name.as_bytes());
                                tx.send((name, durable)).unwrap();
                            }),
                        );
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        let mut seen = Vec::new();
        for _ in 0..100 {
            let (name, durable) = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("every callback runs");
            assert!(durable, "{name} was called back before it was durable");
            seen.push(name);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 100, "each callback once");
        // Settled already: called back right here.
        let here = std::thread::current().id();
        let (tx2, rx2) = std::sync::mpsc::channel();
        for c in [Commit { seq: 1 }, Commit::NONE] {
            let tx2 = tx2.clone();
            j.on_durable(
                c,
                Box::new(move |o| tx2.send((o.is_ok(), std::thread::current().id())).unwrap()),
            );
            assert_eq!(rx2.try_recv().unwrap(), (true, here));
        }
        // A record never added is an error, not a wait.
        let (tx3, rx3) = std::sync::mpsc::channel();
        j.on_durable(
            Commit { seq: 1000 },
            Box::new(move |o| tx3.send(o.is_err()).unwrap()),
        );
        assert!(rx3.try_recv().unwrap());
    }
}
