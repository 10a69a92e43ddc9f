//! Changing appender files: APPEND, MODIFY, TRUNCATE, REGENERATE and their
//! sync forms (PROTOCOL.md §5.4-5.5, §5.11, §11.4-11.6).
//!
//! Unlike upstream, a change's data is first staged in a temp file and only
//! applied, under a per-file lock, once the whole body has arrived: a client
//! that disconnects mid-body leaves the file exactly as it was, here and on
//! every peer, and two clients appending to one file are serialised, never
//! interleaved.

use super::Store;
use super::disk::{Target, io_status, rename_noreplace};
use crate::layout::binlog::{Record, op};
use crate::layout::tmpfile::TempFile;
use crate::layout::{self, NameInfo, RemoteName};
use crate::net::Reply;
use crate::proto::{self, status};
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
    source: Option<String>,
    timestamp: u32,
}

fn is_appender(name: &RemoteName) -> bool {
    name.info().is_ok_and(|i| i.is_appender())
}

/// Size of a regular file, ENOENT otherwise.
fn file_size(path: &Path) -> Result<u64, u8> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(m.len()),
        Ok(_) => Err(status::ENOENT),
        Err(e) => Err(io_status(&e)),
    }
}

impl Change {
    /// A client APPEND or MODIFY of `len` bytes to the appender file `t`.
    pub fn begin(store: Arc<Store>, t: Target, op: ChangeOp, len: u64) -> Result<Change, u8> {
        if !is_appender(&t.name) {
            return Err(status::EINVAL);
        }
        let size = file_size(&t.path)?;
        if let ChangeOp::Modify(offset) = op
            && offset > size
        {
            return Err(status::EINVAL);
        }
        Change::stage(store, op, t.path, t.name.as_string(), len, None, 0)
    }

    /// A pushed append/modify (SYNC_APPEND_FILE / SYNC_MODIFY_FILE).
    pub fn begin_sync(
        store: Arc<Store>,
        h: &proto::sync::SyncWriteHead,
        modify: bool,
        source: Option<String>,
    ) -> Result<Change, u8> {
        if h.group != store.cfg.group_name {
            return Err(status::EINVAL);
        }
        let name = RemoteName::parse(&h.remote).map_err(|_| status::EINVAL)?;
        let sp = store
            .paths
            .get(name.store_index as usize)
            .ok_or(status::EINVAL)?;
        let path = sp.file_path(&name);
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
            source,
            h.timestamp,
        )
    }

    fn stage(
        store: Arc<Store>,
        op: ChangeOp,
        path: PathBuf,
        remote: String,
        len: u64,
        source: Option<String>,
        timestamp: u32,
    ) -> Result<Change, u8> {
        let dir = path.parent().ok_or(status::EINVAL)?;
        // Never linked: an unnamed file that vanishes with the request.
        let stage = if len == 0 {
            None
        } else {
            Some(
                TempFile::create_in(dir, || format!(".stage-{:016x}", store.random64()))
                    .map_err(|e| io_status(&e))?,
            )
        };
        Ok(Change {
            store,
            op,
            path,
            remote,
            stage,
            len,
            written: 0,
            source,
            timestamp,
        })
    }

    /// Bytes of data announced.
    pub fn len(&self) -> u64 {
        self.len
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
    pub fn finish(mut self) -> Reply {
        let r = self.apply();
        match r {
            Ok(code) => {
                if matches!(self.op, ChangeOp::SyncAppend(_) | ChangeOp::SyncModify(_)) {
                    self.store
                        .received(self.source.as_deref(), self.timestamp, self.written);
                }
                if code == 0 {
                    Reply::ok(Vec::new())
                } else {
                    Reply::error(code)
                }
            }
            Err(code) => Reply::error(code),
        }
    }

    fn apply(&mut self) -> Result<u8, u8> {
        if self.written != self.len {
            return Err(status::EINVAL);
        }
        let store = self.store.clone();
        let _guard = store.file_locks.lock(&self.path);
        let size = file_size(&self.path)?;
        let (offset, rec_op) = match self.op {
            ChangeOp::Append => (size, op::APPEND),
            ChangeOp::Modify(o) if o <= size => (o, op::MODIFY),
            ChangeOp::Modify(_) => return Err(status::EINVAL),
            // Already there: a re-push after a restart.
            ChangeOp::SyncAppend(o) if size >= o + self.len => return Ok(status::EEXIST),
            ChangeOp::SyncAppend(o) if size == o => (o, b'a'),
            // Missing earlier appends: the sender sends the whole file instead.
            ChangeOp::SyncAppend(_) => return Err(status::ENOENT),
            ChangeOp::SyncModify(o) if o <= size => (o, b'm'),
            ChangeOp::SyncModify(_) => return Err(status::ENOENT),
        };
        if self.len == 0 {
            return Ok(0);
        }
        let timestamp = if rec_op.is_ascii_lowercase() {
            self.timestamp
        } else {
            super::now() as u32
        };
        let mut staged = self.stage.take().expect("len > 0 has a stage file");
        let (path, remote, len) = (self.path.clone(), self.remote.clone(), self.len);
        store
            .binlog
            .append_with(|| {
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
                store.sync_in_place(Some(&f), path.parent())?;
                if rec_op.is_ascii_lowercase() {
                    f.set_modified(UNIX_EPOCH + Duration::from_secs(timestamp as u64))?;
                }

                let mut rec = Record::new(timestamp, rec_op, &remote);
                rec.extra = format!("{offset} {len}");
                Ok(Some(rec))
            })
            .map_err(|e| {
                log::error!("applying a change to {remote}: {e}");
                io_status(&e)
            })?;
        Ok(0)
    }
}

/// TRUNCATE_FILE of an appender file (logged `T old new`).
pub fn truncate(store: &Store, t: &Target, new_size: u64) -> Result<(), u8> {
    if !is_appender(&t.name) {
        return Err(status::EINVAL);
    }
    let _guard = store.file_locks.lock(&t.path);
    let old = file_size(&t.path)?;
    if old == new_size {
        return Ok(());
    }
    let name = t.name.as_string();
    store
        .binlog
        .append_with(|| {
            let f = OpenOptions::new().write(true).open(&t.path)?;
            f.set_len(new_size)?;
            store.sync_in_place(Some(&f), t.path.parent())?;
            let mut r = Record::new(super::now() as u32, op::TRUNCATE, &name);
            r.extra = format!("{old} {new_size}");
            Ok(Some(r))
        })
        .map_err(|e| io_status(&e))?;
    Ok(())
}

/// SYNC_TRUNCATE_FILE: applied when the size is the source's old size. A
/// replica that diverged answers ENOENT so that our sender falls back to the
/// whole file (upstream leaves it diverged).
pub fn sync_truncate(
    store: &Store,
    s: &proto::sync::SyncTruncate,
    source: Option<&str>,
) -> Result<(), u8> {
    if s.group != store.cfg.group_name {
        return Err(status::EINVAL);
    }
    let name = RemoteName::parse(&s.remote).map_err(|_| status::EINVAL)?;
    let sp = store
        .paths
        .get(name.store_index as usize)
        .ok_or(status::EINVAL)?;
    let path = sp.file_path(&name);
    let _guard = store.file_locks.lock(&path);
    let size = file_size(&path)?;
    if size == s.new_size {
        store.received(source, s.timestamp, 0);
        return Err(status::EEXIST);
    }
    if size != s.old_size {
        return Err(status::ENOENT);
    }
    store
        .binlog
        .append_with(|| {
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(s.new_size)?;
            let mut r = Record::new(s.timestamp, b't', &s.remote);
            r.extra = format!("{} {}", s.old_size, s.new_size);
            Ok(Some(r))
        })
        .map_err(|e| io_status(&e))?;
    store.received(source, s.timestamp, 0);
    Ok(())
}

/// REGENERATE_APPENDER_FILENAME: give an appender file a normal name (its
/// current size and CRC32, time now), in the same directory with the same
/// ext; its metadata file moves with it (upstream leaves it behind).
pub fn regenerate(store: &Store, t: &Target) -> Result<String, u8> {
    if !is_appender(&t.name) {
        return Err(status::EINVAL);
    }
    let _guard = store.file_locks.lock(&t.path);
    let f = File::open(&t.path).map_err(|e| io_status(&e))?;
    let (crc32, size) = super::disk::content_crc32(f).map_err(|e| io_status(&e))?;
    let old = t.name.as_string();
    let ext7 = &t.name.name[t.name.name.len().saturating_sub(7)..];
    let mut result = Err(status::EBUSY);
    store
        .binlog
        .append_with(|| {
            let timestamp = super::now() as u32;
            for _ in 0..10 {
                let info = NameInfo {
                    source: store.source(),
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
                        store.sync_in_place(None, dest.parent())?;
                        let mut r = Record::new(timestamp, op::RENAME, &new.as_string());
                        r.extra = old.clone();
                        result = Ok(new.as_string());
                        return Ok(Some(r));
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        })
        .map_err(|e| io_status(&e))?;
    let new = result?;
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
    if let Err(e) = logged {
        log::warn!("moving the metadata of {old}: {e}");
    }
    store
        .sync_in_place(None, new_m.parent())
        .map_err(|e| io_status(&e))?;
    Ok(new)
}

/// SYNC_RENAME_FILE: rename src to dest (ENOENT when src is not here; the
/// sender then sends dest whole).
pub fn sync_rename(
    store: &Store,
    l: &proto::sync::SyncLink,
    source: Option<&str>,
) -> Result<(), u8> {
    if l.group != store.cfg.group_name {
        return Err(status::EINVAL);
    }
    let (src, dest) = (
        RemoteName::parse(&l.src).map_err(|_| status::EINVAL)?,
        RemoteName::parse(&l.dest).map_err(|_| status::EINVAL)?,
    );
    let sp = store
        .paths
        .get(src.store_index as usize)
        .ok_or(status::EINVAL)?;
    let dp = store
        .paths
        .get(dest.store_index as usize)
        .ok_or(status::EINVAL)?;
    let (from, to) = (sp.file_path(&src), dp.file_path(&dest));
    let _guard = store.file_locks.lock(&from);
    if to.exists() && !from.exists() {
        store.received(source, l.timestamp, 0);
        return Err(status::EEXIST);
    }
    let mut missing = false;
    store
        .binlog
        .append_with(|| match fs::rename(&from, &to) {
            Ok(()) => {
                let mut r = Record::new(l.timestamp, b'r', &l.dest);
                r.extra = l.src.clone();
                Ok(Some(r))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing = true;
                Ok(None)
            }
            Err(e) => Err(e),
        })
        .map_err(|e| io_status(&e))?;
    if missing {
        return Err(status::ENOENT);
    }
    store.received(source, l.timestamp, 0);
    Ok(())
}
