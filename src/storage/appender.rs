//! Changing appender files: APPEND, MODIFY, TRUNCATE, REGENERATE and their
//! sync forms (PROTOCOL.md §5.4-5.5, §5.11, §11.4-11.6).
//!
//! Unlike upstream, a change's data is first staged in a temp file and only
//! applied, under a per-file lock, once the whole body has arrived: a client
//! that disconnects mid-body leaves the file exactly as it was, here and on
//! every peer, and two clients appending to one file are serialised, never
//! interleaved.

use super::Store;
use super::disk::{Target, rename_noreplace};
use super::error::{Error, io_status};
use super::journal::Commit;
use super::sync_status::{self, Found, Outcome, Pusher, Sent};
use crate::layout::binlog::{Record, op};
use crate::layout::tmpfile::TempFile;
use crate::layout::{self, NameInfo, RemoteName};
use crate::net::Reply;
use crate::proto::{self, Cmd};
use parking_lot::{Mutex, MutexGuard};
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Striped per-file locks: changes to one file run one at a time.
pub struct FileLocks([Mutex<()>; 64]);

impl Default for FileLocks {
    fn default() -> Self {
        FileLocks(std::array::from_fn(|_| Mutex::new(())))
    }
}

impl FileLocks {
    fn stripe(&self, path: &Path) -> &Mutex<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        path.hash(&mut h);
        &self.0[(h.finish() % 64) as usize]
    }

    /// Lock the stripe of `path`.
    pub fn lock(&self, path: &Path) -> MutexGuard<'_, ()> {
        self.stripe(path).lock()
    }

    /// Whether a change of `path` (or of another file of its stripe) holds
    /// its lock now: a network thread then leaves its own change of the file
    /// to a disk thread rather than wait.
    pub fn is_locked(&self, path: &Path) -> bool {
        self.stripe(path).is_locked()
    }

    /// Lock the stripe of `path` if it is free (the loop must not wait).
    pub fn try_lock(&self, path: &Path) -> Option<MutexGuard<'_, ()>> {
        self.stripe(path).try_lock()
    }
}

/// What a staged change does when applied.
#[derive(Clone, Copy, Debug)]
pub enum ChangeOp {
    /// Client APPEND: at the end of the file.
    Append,
    /// Client MODIFY at an offset.
    Modify(u64),
    /// Pushed append that started at this offset on the source.
    SyncAppend(u64),
    /// Pushed modify at this offset.
    SyncModify(u64),
}

/// A change being received. Dropped before `finish`, it removes its staging
/// file and the target is untouched.
pub struct Change {
    store: Arc<Store>,
    op: ChangeOp,
    path: PathBuf,
    remote: String,
    stage: Option<TempFile>,
    len: u64,
    written: u64,
    /// Pushing peer and the source's timestamp (sync forms).
    pusher: Option<Pusher>,
    timestamp: u32,
}

/// The file `t` names, if it is an appender file (EINVAL otherwise).
fn appender(t: &Target) -> Result<&Path, Error> {
    if t.name.info().is_ok_and(|i| i.is_appender()) {
        Ok(&t.path)
    } else {
        let name = t.name.as_string();
        Err(Error::Invalid(format!("{name}: not an appender file")))
    }
}

/// Size of a regular file, ENOENT otherwise.
fn file_size(path: &Path) -> Result<u64, Error> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(m.len()),
        Ok(_) => Err(Error::NotFound(path.to_path_buf())),
        Err(e) => Err(Error::io("stat of", path)(e)),
    }
}

/// What a receiver found that stopped a pushed change before it started.
fn not_begun(e: Error) -> Outcome {
    match e {
        Error::Invalid(why) => Outcome::new(Found::Invalid, why),
        e => Outcome::failed(e.status(), e.to_string()),
    }
}

impl Change {
    /// A client APPEND or MODIFY of `len` bytes to the appender file `t`.
    pub fn begin(store: Arc<Store>, t: Target, op: ChangeOp, len: u64) -> Result<Change, Error> {
        let size = file_size(appender(&t)?)?;
        if let ChangeOp::Modify(offset) = op
            && offset > size
        {
            return Err(Error::Invalid(format!(
                "offset {offset} past the end {size}"
            )));
        }
        Change::stage(store, op, t.path, t.name.as_string(), len, None, 0)
    }

    /// A pushed append/modify (SYNC_APPEND_FILE / SYNC_MODIFY_FILE) from
    /// `pusher`. Whether it applies is found once its data is in.
    pub fn begin_sync(
        store: Arc<Store>,
        h: &proto::sync::SyncWriteHead,
        modify: bool,
        pusher: Pusher,
    ) -> Result<Change, Outcome> {
        let path = super::replica::our_file(&store, &h.group, &h.remote)?.1;
        let op = if modify {
            ChangeOp::SyncModify(h.offset)
        } else {
            ChangeOp::SyncAppend(h.offset)
        };
        Change::stage(
            store,
            op,
            path,
            h.remote.clone(),
            h.length,
            Some(pusher),
            h.timestamp,
        )
        .map_err(not_begun)
    }

    fn stage(
        store: Arc<Store>,
        op: ChangeOp,
        path: PathBuf,
        remote: String,
        len: u64,
        pusher: Option<Pusher>,
        timestamp: u32,
    ) -> Result<Change, Error> {
        let dir = path
            .parent()
            .ok_or_else(|| Error::Invalid(format!("{remote}: no directory")))?;
        // Never linked: an unnamed file that vanishes with the request.
        let stage = if len == 0 {
            None
        } else {
            let hidden = || format!(".stage-{:016x}", store.random64());
            Some(TempFile::create_in(dir, hidden).map_err(Error::io("staging in", dir))?)
        };
        Ok(Change {
            store,
            op,
            path,
            remote,
            stage,
            len,
            written: 0,
            pusher,
            timestamp,
        })
    }

    /// Bytes of data announced.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The file it changes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Store path index of the file (picks the disk pool).
    pub fn store_index(&self) -> usize {
        RemoteName::parse(&self.remote).map_or(0, |n| n.store_index as usize)
    }

    /// Stage a chunk.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.written += data.len() as u64;
        match &mut self.stage {
            Some(f) => f.file().write_all(data),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more data than announced",
            )),
        }
    }

    /// Everything is staged: apply it to the file under its lock, log it.
    /// The reply goes out once the journal has the change's records. A
    /// peer's change is answered here (by [`sync_status::conclude`]); a
    /// client's that did not apply is the caller's to answer.
    pub fn finish(mut self) -> Result<(Reply, Commit), Error> {
        let (o, commit) = self.apply();
        let (cmd, pusher) = match (self.op, &self.pusher) {
            (ChangeOp::SyncAppend(_), Some(p)) => (Cmd::SyncAppendFile, p),
            (ChangeOp::SyncModify(_), Some(p)) => (Cmd::SyncModifyFile, p),
            _ if o.found == Found::Applied => return Ok((Reply::ok(Vec::new()), commit)),
            _ => return Err(Error::NotApplied(o)),
        };
        let sent = Sent {
            timestamp: self.timestamp,
            bytes: self.written,
        };
        let code = sync_status::conclude(&self.store, pusher, cmd, &self.remote, sent, &o);
        Ok((Reply::status(code), commit))
    }

    /// Apply the change and log it: what that found, and the journal
    /// records it added.
    fn apply(&mut self) -> (Outcome, Commit) {
        if self.written != self.len {
            let why = format!("{} data bytes of {}", self.written, self.len);
            return (Outcome::new(Found::Invalid, why), Commit::NONE);
        }
        let store = self.store.clone();
        let _guard = store.file_locks.lock(&self.path);
        let size = match file_size(&self.path) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => {
                return (Outcome::new(Found::Missing, "not here"), Commit::NONE);
            }
            Err(e) => return (Outcome::failed(e.status(), e.to_string()), Commit::NONE),
        };
        let len = self.len;
        let (offset, rec_op) = match self.placed(size) {
            Ok(p) => p,
            Err(o) => return (o, Commit::NONE),
        };
        if len == 0 {
            return (Outcome::applied(), Commit::NONE);
        }
        let timestamp = if rec_op.is_ascii_lowercase() {
            self.timestamp
        } else {
            super::now() as u32
        };
        let mut staged = self.stage.take().expect("len > 0 has a stage file");
        let (path, remote) = (self.path.clone(), self.remote.clone());
        let applied = store.binlog.append_with(|| {
            let stage = staged.file();
            stage.seek(SeekFrom::Start(0))?;
            let mut f = OpenOptions::new().write(true).open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            let copied = io::copy(&mut stage.take(len), &mut f)?;
            if copied != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "staged data shorter than announced",
                ));
            }
            // Its file record (if any) is now out of date: sync in place.
            store.durable.sync_in_place(Some(&f), path.parent())?;
            if rec_op.is_ascii_lowercase() {
                f.set_modified(UNIX_EPOCH + Duration::from_secs(timestamp as u64))?;
            }

            let mut rec = Record::new(timestamp, rec_op, &remote);
            rec.extra = format!("{offset} {len}");
            Ok(Some(rec))
        });
        match applied {
            Ok(commit) => (Outcome::applied(), commit),
            Err(e) => {
                let why = format!("applying the change to {remote}: {e}");
                (Outcome::failed(io_status(&e), why), Commit::NONE)
            }
        }
    }

    /// Where the change goes in the file of `size` bytes, and the record op
    /// that logs it; or why it does not apply.
    fn placed(&self, size: u64) -> Result<(u64, u8), Outcome> {
        let len = self.len;
        Ok(match self.op {
            ChangeOp::Append => (size, op::APPEND),
            ChangeOp::Modify(o) if o <= size => (o, op::MODIFY),
            ChangeOp::Modify(o) => {
                return Err(Outcome::new(
                    Found::Invalid,
                    format!("offset {o} past the end {size}"),
                ));
            }
            // Already there: a re-push after a restart.
            ChangeOp::SyncAppend(o) if size >= o + len => {
                return Err(Outcome::new(
                    Found::AlreadyThere,
                    format!("our size {size} already covers {o}+{len}"),
                ));
            }
            ChangeOp::SyncAppend(o) if size == o => (o, Record::replica_op(op::APPEND)),
            // Missing earlier appends, or holding part of this one: the
            // sender sends the whole file instead.
            ChangeOp::SyncAppend(o) => {
                return Err(Outcome::new(
                    Found::Diverged,
                    format!("our size {size} is not the append's offset {o}"),
                ));
            }
            ChangeOp::SyncModify(o) if o <= size => (o, Record::replica_op(op::MODIFY)),
            ChangeOp::SyncModify(o) => {
                return Err(Outcome::new(
                    Found::Diverged,
                    format!("our size {size} is short of the modify's offset {o}"),
                ));
            }
        })
    }
}

/// TRUNCATE_FILE of an appender file (logged `T old new`); returns the
/// journal record of its line.
pub fn truncate(store: &Store, t: &Target, new_size: u64) -> Result<Commit, Error> {
    let path = appender(t)?;
    let _guard = store.file_locks.lock(path);
    let old = file_size(path)?;
    if old == new_size {
        return Ok(Commit::NONE);
    }
    let name = t.name.as_string();
    store
        .binlog
        .append_with(|| {
            let f = OpenOptions::new().write(true).open(&t.path)?;
            f.set_len(new_size)?;
            store.durable.sync_in_place(Some(&f), t.path.parent())?;
            let mut r = Record::new(super::now() as u32, op::TRUNCATE, &name);
            r.extra = format!("{old} {new_size}");
            Ok(Some(r))
        })
        .map_err(Error::io("truncating", path))
}

/// SYNC_TRUNCATE_FILE: applied when our size is the source's old size. A
/// copy of another size is left as it is here: our sender checks and sends
/// the whole file, and for a C sender, which does not, `sync_status` queues a
/// copy from it (`refetch`). Returns what it found and the journal record
/// of its line.
pub fn sync_truncate(store: &Store, s: &proto::sync::SyncTruncate) -> (Outcome, Commit) {
    let path = match super::replica::our_file(store, &s.group, &s.remote) {
        Ok((_, path)) => path,
        Err(o) => return (o, Commit::NONE),
    };
    let _guard = store.file_locks.lock(&path);
    let size = match file_size(&path) {
        Ok(size) => size,
        Err(e) if e.is_not_found() => {
            return (Outcome::new(Found::Missing, "not here"), Commit::NONE);
        }
        Err(e) => return (Outcome::failed(e.status(), e.to_string()), Commit::NONE),
    };
    if size == s.new_size {
        let why = format!("already at the new size {size}");
        return (Outcome::new(Found::AlreadyThere, why), Commit::NONE);
    }
    if size != s.old_size {
        let why = format!(
            "our size {size} is not the old size {} (new {}), left as it is",
            s.old_size, s.new_size
        );
        return (Outcome::new(Found::Diverged, why), Commit::NONE);
    }
    let applied = store.binlog.append_with(|| {
        let f = OpenOptions::new().write(true).open(&path)?;
        f.set_len(s.new_size)?;
        store.durable.sync_in_place(Some(&f), path.parent())?;
        let mut r = Record::new(s.timestamp, Record::replica_op(op::TRUNCATE), &s.remote);
        r.extra = format!("{} {}", s.old_size, s.new_size);
        Ok(Some(r))
    });
    match applied {
        Ok(commit) => (Outcome::applied(), commit),
        Err(e) => (
            Outcome::failed(io_status(&e), format!("truncating: {e}")),
            Commit::NONE,
        ),
    }
}

/// REGENERATE_APPENDER_FILENAME: give an appender file a normal name (its
/// current size and CRC32, time now), in the same directory with the same
/// ext; its metadata file moves with it (upstream leaves it behind). Returns
/// the new name and the journal records of the renames.
pub fn regenerate(store: &Store, t: &Target) -> Result<(String, Commit), Error> {
    let path = appender(t)?;
    let _guard = store.file_locks.lock(path);
    let f = File::open(path).map_err(Error::io("opening", path))?;
    let (crc32, size) = super::disk::content_crc32(f).map_err(Error::io("reading", path))?;
    let old = t.name.as_string();
    let ext7 = &t.name.name[t.name.name.len().saturating_sub(7)..];
    let mut result = None;
    let renamed = store
        .binlog
        .append_with(|| {
            let timestamp = super::now() as u32;
            for _ in 0..10 {
                let info = NameInfo {
                    source: store.identity.source(),
                    timestamp,
                    size_field: layout::file_id::normal_size_field(size, store.random64() as u32),
                    crc32,
                };
                let new = RemoteName::new(
                    t.name.store_index,
                    t.name.high,
                    t.name.low,
                    format!("{}{ext7}", info.encode()),
                );
                let dest = t.path.with_file_name(&new.name);
                match rename_noreplace(&t.path, &dest) {
                    Ok(()) => {
                        store.durable.sync_in_place(None, dest.parent())?;
                        let mut r = Record::new(timestamp, op::RENAME, &new.as_string());
                        r.extra = old.clone();
                        result = Some(new.as_string());
                        return Ok(Some(r));
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        })
        .map_err(Error::io("renaming", path))?;
    let new = result.ok_or(Error::Busy("no free name for the file after 10 tries"))?;
    // The metadata file follows, logged as its own rename.
    let (old_m, new_m) = (
        layout::store::meta_path(&t.path),
        t.path
            .with_file_name(format!("{}-m", new.rsplit('/').next().unwrap_or(""))),
    );
    let logged = store
        .binlog
        .append_with(|| match fs::rename(&old_m, &new_m) {
            Ok(()) => {
                let mut r = Record::new(super::now() as u32, op::RENAME, &format!("{new}-m"));
                r.extra = format!("{old}-m");
                Ok(Some(r))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        });
    let meta = logged.unwrap_or_else(|e| {
        log::warn!("moving the metadata of {old}: {e}");
        Commit::NONE
    });
    let dir = new_m.parent().unwrap_or(path);
    store
        .durable
        .sync_in_place(None, Some(dir))
        .map_err(Error::io("syncing", dir))?;
    Ok((new, renamed.max(meta)))
}

/// After a pushed rename of an appender file to its regenerated, normal name:
/// whether our copy has the size that name carries. A copy that missed
/// changes the sender could no longer replay (their data was read from the
/// file under its old name, gone by then) is caught here, the one moment
/// both names are known.
pub fn regenerated_whole(store: &Store, group: &str, dest: &str) -> bool {
    let Ok((name, path)) = super::replica::our_file(store, group, dest) else {
        return true;
    };
    if !name.is_normal() {
        return true;
    }
    let want = name.info().map(|i| i.file_size()).ok();
    match fs::metadata(&path) {
        Ok(m) => want.is_none_or(|w| w == m.len()),
        // Not here at all: the sender sends it whole.
        Err(_) => true,
    }
}

/// SYNC_RENAME_FILE: rename src to dest. Neither here: Missing, the sender
/// then sends dest whole. Returns what it found and the journal record of
/// its line.
pub fn sync_rename(store: &Store, l: &proto::sync::SyncLink) -> (Outcome, Commit) {
    let paths = (
        super::replica::our_file(store, &l.group, &l.src),
        super::replica::our_file(store, &l.group, &l.dest),
    );
    let (from, to) = match paths {
        (Ok((_, from)), Ok((_, to))) => (from, to),
        (Err(o), _) | (_, Err(o)) => return (o, Commit::NONE),
    };
    let _guard = store.file_locks.lock(&from);
    if to.exists() && !from.exists() {
        let o = Outcome::new(Found::AlreadyThere, "renamed already");
        return (o, Commit::NONE);
    }
    let mut outcome = Outcome::applied();
    let renamed = store.binlog.append_with(|| match fs::rename(&from, &to) {
        Ok(()) => {
            let mut r = Record::new(l.timestamp, Record::replica_op(op::RENAME), &l.dest);
            r.extra = l.src.clone();
            Ok(Some(r))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            outcome = Outcome::new(Found::Missing, "neither the old nor the new name is here");
            Ok(None)
        }
        Err(e) => Err(e),
    });
    match renamed {
        Ok(commit) => (outcome, commit),
        Err(e) => (
            Outcome::failed(io_status(&e), format!("renaming: {e}")),
            Commit::NONE,
        ),
    }
}
