//! The dedup index: which stored content has which key and hash, and how many
//! links point at each (see `super` for the model).
//!
//! It lives in memory and in `dedup.dat` + `dedup.log` under `base_path/data`
//! (format: [`crate::layout::dedup`]). Every change is logged *before* it is
//! made on disk, so after a crash the few names the log mentions since the
//! snapshot are checked on disk and the counts follow what is there
//! ([`Dedup::open`]). A snapshot that cannot be read is rebuilt from the data
//! tree (links and their targets).
//!
//! A content is found by its [`Key`] (size and CRC32, which an upload has for
//! free) first, and told apart from others of that key by its BLAKE3 hash,
//! which is computed only when there are others: for a source, once (read
//! from its file and logged, `H`); for an upload, from its bytes
//! ([`Dedup::claim`]). New content, whose key nothing has, is never hashed.
//!
//! An upload holds the lock only to decide and log ([`Dedup::claim`]): the
//! file and link are made outside it, under a reservation ([`Pending`],
//! [`Placing`]) that keeps the source from going meanwhile and is counted
//! (or given back) afterwards. What is under way that way is logged again by
//! every compaction, so a crash after one still checks it.
//!
//! Memory: about 200 bytes per distinct content.

use crate::layout::dedup::{self as fmt, Change, Entry, Hash, Key};
use crate::layout::{RemoteName, StorePath};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A source's name, shared by the index's two maps and its snapshots.
type Name = Arc<str>;

const SNAPSHOT: &str = "dedup.dat";
const LOG: &str = "dedup.log";
/// The log of the changes made while a snapshot is written in the
/// background; renamed to [`LOG`] once the snapshot is in place.
const LOG_NEXT: &str = "dedup.log.next";

/// Compact when the log has this many lines and at least as many as there
/// are contents (so compaction stays O(1) per change, amortized).
const COMPACT_AFTER: u64 = 100_000;

/// What the index says about the space it saves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Distinct contents kept (sources).
    pub contents: u64,
    /// Links: files whose content is a source.
    pub links: u64,
    /// Files that share a content with an earlier one.
    pub shared_files: u64,
    /// Bytes not stored because of that.
    pub saved_bytes: u64,
}

impl Stats {
    fn count(&mut self, key: &Key, refs: u32, sign: i64) {
        let shared = refs.saturating_sub(1) as i64 * sign;
        self.links = (self.links as i64 + refs as i64 * sign) as u64;
        self.shared_files = (self.shared_files as i64 + shared) as u64;
        self.saved_bytes = (self.saved_bytes as i64 + shared * key.size as i64) as u64;
    }
}

struct Content {
    key: Key,
    /// Computed when a second content of this key came (None until then).
    hash: Option<Hash>,
    /// Links made (what the snapshot and the stats count).
    refs: u32,
    /// Links being made outside the lock ([`Pending`]): the source stays
    /// while there are any.
    reserved: u32,
    /// The source should have gone (a client removed its last link, or the
    /// upload that placed it failed) while links were being made: it goes
    /// when they all fail.
    drop_later: bool,
}

impl Content {
    fn new(key: Key, hash: Option<Hash>, refs: u32) -> Content {
        Content {
            key,
            hash,
            refs,
            reserved: 0,
            drop_later: false,
        }
    }
}

/// The index's state; changed only through [`Locked`].
struct Inner {
    /// The sources of each key, sorted by name (usually one).
    by_key: HashMap<Key, Vec<Name>>,
    by_src: HashMap<Name, Content>,
    /// Keys of contents an upload is placing as new sources; uploads of the
    /// same key wait for them (`Dedup::settled`), so that a content uploaded
    /// twice at once is stored once.
    placing: HashSet<Key>,
    /// The intents of changes under way outside the lock, by ticket; logged
    /// again by every compaction.
    under_way: HashMap<u64, Vec<Change>>,
    next_ticket: u64,
    /// Shared with the writers of [`Intent`]s.
    log: Arc<File>,
    generation: u64,
    logged: u64,
    stats: Stats,
}

/// The dedup index of one storage.
pub struct Dedup {
    dir: PathBuf,
    paths: Vec<StorePath>,
    inner: Mutex<Inner>,
    /// Signalled when a content leaves `Inner::placing`.
    settled: Condvar,
    /// The snapshot being written in the background, if any. Its thread
    /// never takes the index's lock: the index's lock, then this one.
    snapshot: Arc<(Mutex<Snapshotting>, Condvar)>,
}

/// The state of the background snapshot ([`Locked::compact_in_background`]).
#[derive(Default)]
struct Snapshotting {
    running: bool,
    /// The last one failed: the next compaction writes in place.
    failed: bool,
}

/// What [`Dedup::open`] found to finish: sources whose last link went just
/// before a crash. They are removed from disk; the caller logs their removal
/// in the binlog (a repeated `D` is harmless).
#[derive(Debug, Default)]
pub struct Recovery {
    pub removed_sources: Vec<String>,
    /// Set when the snapshot was unreadable and the index was rebuilt from the
    /// data tree; says why.
    pub rebuilt: Option<String>,
    /// The links were counted again in the data tree (after a crash, see
    /// [`Dedup::open`]).
    pub recounted: bool,
}

impl Dedup {
    /// Open the index kept in `dir` for the store paths `paths`, checking on
    /// disk what the log says was under way, and start a new log.
    ///
    /// With `recount_after_crash` (set with `durable_uploads`, whose promises
    /// hold across a power loss, which can take the log's last lines with
    /// it), a start after a crash also counts the links in the data tree
    /// instead of trusting the log alone.
    pub fn open(
        dir: &Path,
        paths: Vec<StorePath>,
        recount_after_crash: bool,
    ) -> io::Result<(Dedup, Recovery)> {
        let mut rec = Recovery::default();
        let snap_path = dir.join(SNAPSHOT);
        let (generation, entries) = match fs::read(&snap_path) {
            Ok(bytes) => match fmt::decode_snapshot(&bytes) {
                Ok(s) => s,
                Err(why) => {
                    let why = format!("{}: {why}", snap_path.display());
                    rec.rebuilt = Some(why);
                    (0, Vec::new())
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => (0, Vec::new()),
            Err(e) => return Err(e),
        };
        let mut by_key = HashMap::with_capacity(entries.len());
        let mut by_src = HashMap::with_capacity(entries.len());
        for e in entries {
            let c = Content::new(e.key, e.hash, e.refs);
            insert(&mut by_key, &mut by_src, e.src, c);
        }
        let names = Names { paths: &paths };
        // The generation the compaction below goes past: beyond a
        // `dedup.log.next` replayed, so that it cannot match again.
        let mut last_generation = generation;
        if rec.rebuilt.is_none() {
            let logs = logs_to_replay(dir, generation)?;
            let bad: Vec<String> = (logs.iter())
                .filter(|(_, l)| !l.bad_lines.is_empty())
                .map(|(path, l)| format!("{}: unreadable lines {:?}", path.display(), l.bad_lines))
                .collect();
            if !bad.is_empty() {
                rec.rebuilt = Some(bad.join("; "));
            } else {
                last_generation = logs
                    .iter()
                    .map(|(_, l)| l.generation)
                    .fold(generation, u64::max);
                let changes: Vec<Change> = logs.into_iter().flat_map(|(_, l)| l.changes).collect();
                let removed = replay(&names, &mut by_key, &mut by_src, &changes);
                rec.removed_sources = removed;
                if recount_after_crash && !changes.is_empty() {
                    recount(&names, &mut by_key, &mut by_src)?;
                    rec.recounted = true;
                }
            }
        }
        if rec.rebuilt.is_some() {
            (by_key, by_src) = (HashMap::new(), HashMap::new());
            recount(&names, &mut by_key, &mut by_src)?;
        }
        let mut stats = Stats {
            contents: by_src.len() as u64,
            ..Stats::default()
        };
        for c in by_src.values() {
            stats.count(&c.key, c.refs, 1);
        }
        let inner = Inner {
            by_key,
            by_src,
            placing: HashSet::new(),
            under_way: HashMap::new(),
            next_ticket: 0,
            // Replaced by the compaction below before anything is logged. The
            // directory, not /dev/null: a bare container has no /dev.
            log: Arc::new(File::open(dir)?),
            generation: last_generation,
            logged: 0,
            stats,
        };
        let d = Dedup {
            dir: dir.to_path_buf(),
            paths,
            inner: Mutex::new(inner),
            settled: Condvar::new(),
            snapshot: Arc::default(),
        };
        d.lock().compact()?;
        Ok((d, rec))
    }

    /// Take the index's lock: every lookup and change goes through the guard.
    /// Lock order: this lock, then the binlog's.
    pub fn lock(&self) -> Locked<'_> {
        Locked {
            d: self,
            g: self.inner.lock(),
        }
    }

    /// Wait until no snapshot is being written in the background; false if
    /// the last one failed.
    fn snapshot_written(&self) -> bool {
        let (state, done) = &*self.snapshot;
        let mut s = state.lock();
        while s.running {
            done.wait(&mut s);
        }
        !s.failed
    }

    /// The figures for monitoring.
    pub fn stats(&self) -> Stats {
        self.inner.lock().stats
    }

    /// The source `link` (a path) points at, if it is a symlink into one of our
    /// store paths.
    pub fn source_of_link(&self, link: &Path) -> Option<String> {
        link_target(&self.paths, link)
    }

    /// The path of remote name `remote` (None for a name that is not ours).
    pub fn path_of(&self, remote: &str) -> Option<PathBuf> {
        Names { paths: &self.paths }.path_of(remote)
    }
}

/// The index, locked.
pub struct Locked<'a> {
    d: &'a Dedup,
    g: MutexGuard<'a, Inner>,
}

impl Locked<'_> {
    /// The source uploads of content (`key`, `hash`) link to, if any (the
    /// first by name of those whose hash is known to be `hash`).
    #[cfg(test)]
    pub fn source(&self, key: &Key, hash: &Hash) -> Option<&str> {
        let v = self.g.by_key.get(key)?;
        (v.iter())
            .map(|s| &**s)
            .find(|s| self.g.by_src[*s].hash.as_ref() == Some(hash))
    }

    /// The hash of source `src`, if it is known.
    #[cfg(test)]
    pub fn hash_of(&self, src: &str) -> Option<Hash> {
        self.g.by_src.get(src)?.hash
    }

    /// Record the hash of source `src`, read from its file, so that it is
    /// read once (logged: `H`). Nothing when `src` is gone meanwhile or its
    /// hash known already.
    pub fn learn_hash(&mut self, src: &str, hash: Hash) -> io::Result<()> {
        if self.g.by_src.get(src).is_none_or(|c| c.hash.is_some()) {
            return Ok(());
        }
        self.log(&[Change::Hash {
            src: src.to_string(),
            hash,
        }])?;
        if let Some(c) = self.g.by_src.get_mut(src) {
            c.hash = Some(hash);
        }
        Ok(())
    }

    /// How many links point at `src`, those being made included; None when
    /// `src` is not a source.
    pub fn refs(&self, src: &str) -> Option<u32> {
        self.g.by_src.get(src).map(|c| c.refs + c.reserved)
    }

    /// Make `src` the source of a content of key `key` (and `hash`, when it
    /// is known): `place` puts the file there.
    ///
    /// Two servers of a group that took the same new content at the same
    /// time each made a source, and each gets the other's: both are kept,
    /// and new uploads link to the one with the smaller name, on every
    /// server (the sources of a key are kept in name order).
    pub fn add_source<R>(
        &mut self,
        key: Key,
        hash: Option<Hash>,
        src: &str,
        place: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        self.log(&[Change::Source {
            key,
            hash,
            src: src.to_string(),
        }])?;
        let r = place()?;
        let inner = &mut *self.g;
        if insert(
            &mut inner.by_key,
            &mut inner.by_src,
            src.to_string(),
            Content::new(key, hash, 0),
        ) {
            inner.stats.contents += 1;
        }
        Ok(r)
    }

    /// Count a new link `link` to source `src`, made by `make`. Fails with
    /// NotFound when `src` is not a source.
    pub fn add_link<R>(
        &mut self,
        src: &str,
        link: &str,
        make: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        if !self.g.by_src.contains_key(src) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{src} is not a dedup source"),
            ));
        }
        self.log(&[Change::Link {
            src: src.to_string(),
            link: link.to_string(),
        }])?;
        let r = make()?;
        let inner = &mut *self.g;
        let c = inner.by_src.get_mut(src).expect("checked above");
        inner.stats.count(&c.key, c.refs, -1);
        c.refs += 1;
        inner.stats.count(&c.key, c.refs, 1);
        Ok(r)
    }

    /// Uncount link `link` to `src`, removed by `remove` (which says whether
    /// it removed anything). Returns the links left (made ones: a client's
    /// removal of the last one drops the source, which waits for the links
    /// being made, see [`Locked::drop_source`]), None when `src` is not a
    /// source (then `remove` is not called).
    pub fn remove_link(
        &mut self,
        src: &str,
        link: &str,
        remove: impl FnOnce() -> io::Result<bool>,
    ) -> io::Result<Option<u32>> {
        if !self.g.by_src.contains_key(src) {
            return Ok(None);
        }
        self.log(&[Change::Unlink {
            src: src.to_string(),
            link: link.to_string(),
        }])?;
        let removed = remove()?;
        let inner = &mut *self.g;
        let c = inner.by_src.get_mut(src).expect("checked above");
        if removed && c.refs > 0 {
            inner.stats.count(&c.key, c.refs, -1);
            c.refs -= 1;
            inner.stats.count(&c.key, c.refs, 1);
        }
        Ok(Some(c.refs))
    }

    /// Forget source `src`, removed by `remove`. Refused (`None`, `remove`
    /// not called) while links point at it; while links to it are only
    /// being made, it goes if they all fail ([`Pending::failed`]). A name
    /// that is no source is just removed.
    pub fn drop_source<R>(
        &mut self,
        src: &str,
        remove: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<Option<R>> {
        match self.g.by_src.get_mut(src) {
            Some(c) if c.refs > 0 => return Ok(None),
            Some(c) if c.reserved > 0 => {
                c.drop_later = true;
                return Ok(None);
            }
            Some(_) => {}
            None => return remove().map(Some),
        }
        self.log(&[Change::Drop {
            src: src.to_string(),
        }])?;
        let r = remove()?;
        let inner = &mut *self.g;
        forget(&mut inner.by_key, &mut inner.by_src, src);
        inner.stats.contents -= 1;
        Ok(Some(r))
    }

    /// Take a ticket for `changes`, to be made outside the lock: they are
    /// kept in `Inner::under_way` (so a compaction meanwhile logs them
    /// again) and must be logged with [`Intent::write`], after the lock is
    /// given back, before they are made.
    fn begin(&mut self, changes: Vec<Change>) -> io::Result<(u64, Intent)> {
        let text = encode(&changes)?;
        self.maybe_compact()?;
        let ticket = self.g.next_ticket;
        self.g.next_ticket += 1;
        self.g.under_way.insert(ticket, changes);
        self.g.logged += 2;
        let log = self.g.log.clone();
        Ok((ticket, Intent { log, text }))
    }

    /// Log `changes`, which the caller makes next (under this lock).
    fn log(&mut self, changes: &[Change]) -> io::Result<()> {
        let text = encode(changes)?;
        // A compaction first: one after the line would snapshot the index
        // without the change and start a log without its line.
        self.maybe_compact()?;
        (&*self.g.log).write_all(text.as_bytes())?;
        self.g.logged += changes.len() as u64;
        Ok(())
    }

    /// Compact when the log has grown: in the background, unless the last
    /// background snapshot failed (then in place); not while one runs.
    fn maybe_compact(&mut self) -> io::Result<()> {
        if self.g.logged < COMPACT_AFTER.max(self.g.by_src.len() as u64) {
            return Ok(());
        }
        let state = self.d.snapshot.0.lock();
        let (running, failed) = (state.running, state.failed);
        drop(state);
        match (running, failed) {
            (true, _) => Ok(()),
            (false, true) => self.compact(),
            (false, false) => self.compact_in_background(),
        }
    }
}

/// The log lines of changes under way, written outside the index's lock:
/// an append is one write(2) to a file opened to append, which other
/// appends cannot split, so uploads do not wait for each other's writes. A
/// compaction between [`Locked::begin`] and the write has logged them in
/// the new log already: the write then goes to the old log's file, which
/// is read again only if the new snapshot never got written, and then
/// before the new log.
#[must_use]
pub struct Intent {
    log: Arc<File>,
    text: String,
}

impl Intent {
    /// Append the lines to the log.
    pub fn write(self) -> io::Result<()> {
        (&*self.log).write_all(self.text.as_bytes())
    }
}

/// The log lines of `changes`.
fn encode(changes: &[Change]) -> io::Result<String> {
    let mut text = String::new();
    for c in changes {
        text += &c.encode().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "dedup: name with blanks")
        })?;
    }
    Ok(text)
}

/// Add source `src` with content `c`, unless it is one already; true if added.
fn insert(
    by_key: &mut HashMap<Key, Vec<Name>>,
    by_src: &mut HashMap<Name, Content>,
    src: impl Into<Name>,
    c: Content,
) -> bool {
    let src: Name = src.into();
    if by_src.contains_key(&src) {
        return false;
    }
    let v = by_key.entry(c.key).or_default();
    if let Err(at) = v.binary_search(&src) {
        v.insert(at, src.clone());
    }
    by_src.insert(src, c);
    true
}

fn forget(by_key: &mut HashMap<Key, Vec<Name>>, by_src: &mut HashMap<Name, Content>, src: &str) {
    let Some(c) = by_src.remove(src) else {
        return;
    };
    if let Some(v) = by_key.get_mut(&c.key) {
        v.retain(|s| &**s != src);
        if v.is_empty() {
            by_key.remove(&c.key);
        }
    }
}
/// The remote name a symlink at `link` points at, if it points into one of
/// `paths` (without an index: a link a peer pushed while dedup is off here).
pub fn link_target(paths: &[StorePath], link: &Path) -> Option<String> {
    let target = fs::read_link(link).ok()?;
    Names { paths }.remote_of(&target)
}

/// The key of source `remote` at `path`, and its hash when that was read:
/// from its name (a stat, no read) when it is a normal FastDFS name with the
/// file's size, which carries the content's CRC32; else from its content. A
/// name that misstates its CRC32 only keeps uploads from finding it: a link
/// is made only to a content whose hash was compared.
pub fn content_key(path: &Path, remote: &str) -> io::Result<(Key, Option<Hash>)> {
    let m = fs::metadata(path)?;
    if !m.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let named = RemoteName::parse(remote)
        .ok()
        .filter(RemoteName::is_normal)
        .and_then(|n| n.info().ok())
        .filter(|i| i.file_size() == m.len());
    if let Some(i) = named {
        let key = Key {
            size: m.len(),
            crc32: i.crc32,
        };
        return Ok((key, None));
    }
    let (key, hash) = read_content(path)?;
    Ok((key, Some(hash)))
}

/// The key and hash of a file's content, read whole.
pub fn read_content(path: &Path) -> io::Result<(Key, Hash)> {
    let f = File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    hash_file(&f)
}

/// The key and hash of `f`'s content, read from its start to its end.
pub fn hash_file(f: &File) -> io::Result<(Key, Hash)> {
    use std::os::unix::fs::FileExt;
    let mut h = blake3::Hasher::new();
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read_at(&mut buf, size)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        crc.update(&buf[..n]);
        size += n as u64;
    }
    let key = Key {
        size,
        crc32: crc.finalize(),
    };
    Ok((key, h.finalize().into()))
}

#[path = "claim.rs"]
mod claim;
#[path = "compaction.rs"]
mod compaction;
#[path = "recovery.rs"]
mod recovery;
pub use claim::{Claim, Placing};
use compaction::logs_to_replay;
use recovery::{Names, recount, replay};

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
