//! File operations of the storage, run on the disk worker of the file's store
//! path: streamed uploads (temp file, then a no-replace rename to the final
//! name), downloads (open, read in, hand the region to the loop), delete,
//! metadata, file info.

use super::Store;
use super::appender::FileLocks;
use super::error::Error;
use super::journal::Commit;
use crate::layout::binlog::{Record, op};
use crate::layout::tmpfile::TempFile;
use crate::layout::{self, NameInfo, RemoteName, Source};
use crate::net::{FileBody, Reply};
use crate::proto::{self, MetaOp};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// An upload in progress. Its content goes to an unnamed temp file, created
/// on the disk worker with the first chunk; dropped before `finish`, nothing
/// of it remains.
pub struct Upload {
    pub(super) store: Arc<Store>,
    pub(super) file: Option<TempFile>,
    pub(super) path: u8,
    high: u8,
    low: u8,
    ext: String,
    appender: bool,
    /// Set for a slave upload: the name it gets.
    pub(super) slave: Option<RemoteName>,
    pub(super) size: u64,
    written: u64,
    unsynced: u64,
    pub(super) crc: crc32fast::Hasher,
    /// With `check_file_duplicate`, for all but appender files: the end
    /// links to a content stored once ([`super::dedup`]).
    dedup: bool,
    /// The whole content, when it came in one chunk (see [`ONE_SHOT`]).
    pub(super) whole: Option<Vec<u8>>,
}

/// A file up to this size whose content arrives in one chunk is written
/// straight under its final name once the content (and so its CRC32) is
/// known: no temp file and no link, a third of the kernel's work per small
/// upload. A crash halfway can leave a short file under a name nobody was
/// given (no binlog line, no reply), never a wrong file under a known name.
const ONE_SHOT: u64 = 256 * 1024;

impl Upload {
    /// An upload into store path `path`, in the next round-robin directory.
    /// Touches no disk: the loop thread calls it.
    pub fn begin(store: Arc<Store>, path: u8, size: u64, ext: String, appender: bool) -> Upload {
        let (high, low) = store.next_dir();
        Upload::begin_in(store, path, (high, low), size, ext, appender, None)
    }

    /// A slave file: stored under `slave`'s name, next to its master.
    pub fn begin_slave(store: Arc<Store>, slave: RemoteName, size: u64) -> Upload {
        Upload::begin_in(
            store,
            slave.store_index,
            (slave.high, slave.low),
            size,
            String::new(),
            false,
            Some(slave),
        )
    }

    fn begin_in(
        store: Arc<Store>,
        path: u8,
        (high, low): (u8, u8),
        size: u64,
        ext: String,
        appender: bool,
        slave: Option<RemoteName>,
    ) -> Upload {
        let store_dedup = store.dedup.is_some();
        Upload {
            store,
            file: None,
            path,
            high,
            low,
            ext,
            appender,
            slave,
            size,
            written: 0,
            unsynced: 0,
            crc: crc32fast::Hasher::new(),
            dedup: store_dedup && !appender,
            whole: None,
        }
    }

    /// The temp file, created on first use in the final directory.
    pub(super) fn temp(&mut self) -> io::Result<&mut TempFile> {
        if self.file.is_none() {
            let dir = self.dir();
            let store = &self.store;
            self.file = Some(TempFile::create_in(&dir, || {
                format!(".up-{:016x}", store.random64())
            })?);
        }
        Ok(self.file.as_mut().expect("created above"))
    }

    /// Append a chunk of content.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.written == 0
            && data.len() as u64 == self.size
            && self.size <= ONE_SHOT
            && self.slave.is_none()
        {
            self.crc.update(data);
            self.written = self.size;
            self.whole = Some(data.to_vec());
            return Ok(());
        }
        self.temp()?.file().write_all(data)?;
        self.crc.update(data);
        self.written += data.len() as u64;
        self.unsynced += data.len() as u64;
        let every = self.store.cfg.fsync_after_written_bytes;
        if every > 0 && self.unsynced >= every {
            self.temp()?.file().sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// The directory the upload is stored in.
    pub fn dir(&self) -> PathBuf {
        dir_of(&self.store, self.path, (self.high, self.low))
    }

    /// All content is in: name the file, make it visible and log it. Returns
    /// the group, the name and, with `durable_uploads`, the journal records
    /// of its content and binlog line, not yet durable: the reply waits for
    /// them ([`super::durable::Durability::when_durable`]).
    pub fn finish(self) -> Result<(String, RemoteName, Commit), Error> {
        let (store, path, dir) = (self.store.clone(), self.path, (self.high, self.low));
        self.finish_io().map_err(|source| Error::Io {
            what: "storing an upload in",
            path: dir_of(&store, path, dir),
            source,
        })
    }

    fn finish_io(mut self) -> io::Result<(String, RemoteName, Commit)> {
        if self.written != self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "upload ended early",
            ));
        }
        if self.dedup {
            return self.finish_dedup();
        }
        if let Some(data) = self.whole.take() {
            return self.finish_whole(&data);
        }
        let durable = self.store.cfg.durable_uploads;
        if self.store.cfg.fsync_after_written_bytes > 0 && !durable
            || durable && self.size > super::journal::MAX_FILE
        {
            // (A big durable upload is synced in place: do the long part
            // before taking the binlog lock.)
            self.temp()?.file().sync_data()?;
        }
        let store = self.store.clone();
        let content = store.durable.content(self.temp()?.file())?;
        let crc32 = std::mem::take(&mut self.crc).finalize();
        // Named outside the binlog lock: nobody else knows a new name yet, so
        // no other change of this file can come between (a slave's name can
        // be guessed: its stripe lock keeps a delete from slipping between
        // its creation and record). The record takes its own timestamp under
        // the lock (never older than the name's): the binlog stays in time
        // order.
        let timestamp = super::now() as u32;
        // The name carries the file's mtime, as upstream.
        self.temp()?
            .file()
            .set_modified(UNIX_EPOCH + Duration::from_secs(timestamp as u64))?;
        let mut slave_guard = None;
        let (remote, dest) = match self.slave.clone() {
            Some(name) => {
                let dest = self.store.paths[self.path as usize].file_path(&name);
                slave_guard = Some(store.file_locks.lock(&dest));
                self.temp()?.persist_noreplace(&dest)?;
                (name, dest)
            }
            None => self.link_new_name(timestamp, crc32)?,
        };
        let name = remote.as_string();
        let file = self.temp()?.file();
        let logged = store
            .durable
            .journal_file(&name, content.as_deref(), file, dest.parent())
            .and_then(|c| Ok(c.max(store.binlog.append_now(op::CREATE, &name)?)));
        let commit = match logged {
            Ok(c) => c,
            Err(e) => {
                // Never acknowledge a file that peers will not hear about.
                let _ = fs::remove_file(&dest);
                return Err(e);
            }
        };
        drop(slave_guard);
        Ok((self.store.cfg.group_name.clone(), remote, commit))
    }

    /// Write `data`, the whole content, under a fresh name and log it (as
    /// [`Upload::finish`], outside the binlog lock).
    fn finish_whole(self, data: &[u8]) -> io::Result<(String, RemoteName, Commit)> {
        let crc32 = self.crc.clone().finalize();
        let timestamp = super::now() as u32;
        let (remote, dest, mut file) = self.new_name(timestamp, crc32, |_, dest| {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dest)
        })?;
        let name = remote.as_string();
        let store = &self.store;
        let logged = file.write_all(data).and_then(|()| {
            let cfg = &store.cfg;
            if cfg.fsync_after_written_bytes > 0 && !cfg.durable_uploads {
                file.sync_data()?;
            }
            let content = store
                .durable
                .journal_file(&name, Some(data), &file, dest.parent())?;
            Ok(content.max(store.binlog.append_now(op::CREATE, &name)?))
        });
        match logged {
            Ok(commit) => Ok((store.cfg.group_name.clone(), remote, commit)),
            Err(e) => {
                // ENOSPC, say: leave nothing behind.
                let _ = fs::remove_file(&dest);
                Err(e)
            }
        }
    }

    /// Link the temp file under a fresh name that does not exist yet.
    fn link_new_name(&mut self, timestamp: u32, crc32: u32) -> io::Result<(RemoteName, PathBuf)> {
        self.temp()?;
        let mut temp = self.file.take().expect("created above");
        let r = self.new_name(timestamp, crc32, |_, dest| temp.persist_noreplace(dest));
        self.file = Some(temp);
        let (remote, dest, ()) = r?;
        Ok((remote, dest))
    }

    /// Generate a name for this upload and `place` the file there; a name
    /// that exists already (`AlreadyExists`) is retried with new random bits.
    pub(super) fn new_name<T>(
        &self,
        timestamp: u32,
        crc32: u32,
        mut place: impl FnMut(&RemoteName, &Path) -> io::Result<T>,
    ) -> io::Result<(RemoteName, PathBuf, T)> {
        // A name can collide only if the same server made the same random bits
        // in the same second for the same size and content.
        for _ in 0..10 {
            let (remote, dest) = self.fresh_name(timestamp, crc32);
            match place(&remote, &dest) {
                Ok(t) => return Ok((remote, dest, t)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "could not find a unique file name",
        ))
    }

    /// A new name for this upload (not checked on disk) and its path.
    pub(super) fn fresh_name(&self, timestamp: u32, crc32: u32) -> (RemoteName, PathBuf) {
        let r = self.store.random64() as u32;
        let size_field = if self.appender {
            layout::file_id::appender_size_field(r)
        } else {
            layout::file_id::normal_size_field(self.size, r)
        };
        let info = NameInfo {
            source: self.store.identity.source(),
            timestamp,
            size_field,
            crc32,
        };
        let ext = layout::file_id::ext_part(&self.ext, (self.store.random64() >> 32) as u32);
        let remote = RemoteName::new(
            self.path,
            self.high,
            self.low,
            format!("{}{ext}", info.encode()),
        );
        let dest = self.store.paths[self.path as usize].file_path(&remote);
        (remote, dest)
    }

    /// Bytes received so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// `data/HH/LL` of store path `path`.
fn dir_of(store: &Store, path: u8, (high, low): (u8, u8)) -> PathBuf {
    store.paths[path as usize]
        .data_dir()
        .join(format!("{high:02X}"))
        .join(format!("{low:02X}"))
}

pub use crate::layout::tmpfile::rename_noreplace;

/// A file named by a request, checked against this storage.
pub struct Target {
    pub name: RemoteName,
    pub path: PathBuf,
}

impl Target {
    /// The worker pool of the file's store path.
    pub fn pool(&self) -> usize {
        self.name.store_index as usize
    }
}

/// Resolve group + remote name to a path inside one of our store paths.
pub fn resolve(store: &Store, group: &str, remote: &str) -> Result<Target, Error> {
    if group != store.cfg.group_name {
        let ours = &store.cfg.group_name;
        return Err(Error::Invalid(format!(
            "{group}/{remote}: not group {ours}"
        )));
    }
    let name = RemoteName::parse(remote).map_err(|e| Error::Invalid(format!("{remote}: {e}")))?;
    let sp = store.paths.get(name.store_index as usize).ok_or_else(|| {
        let n = store.paths.len();
        Error::Invalid(format!(
            "{remote}: no store path {} of {n}",
            name.store_index
        ))
    })?;
    let path = sp.file_path(&name);
    Ok(Target { name, path })
}

/// Downloads up to this size are read into the reply and sent with its header
/// in one write; bigger ones are sent with sendfile.
pub const READ_INTO_REPLY: u64 = 32 * 1024;

/// DOWNLOAD_FILE on a disk thread of store path pool `pool`: a small region
/// is read into the reply; a bigger one goes to the loop for `sendfile`, with
/// its first window read into the page cache here, so that the loop sends it
/// without handing it back (later windows: see `net::FileBody`).
pub fn download(path: &Path, pool: usize, offset: u64, length: u64) -> Result<Reply, Error> {
    let file = File::open(path).map_err(Error::io("opening", path))?;
    let meta = file.metadata().map_err(Error::io("stat of", path))?;
    if !meta.is_file() {
        return Err(Error::NotFound(path.to_path_buf()));
    }
    let size = meta.len();
    if offset > size {
        return Err(past_the_end(offset, size));
    }
    // offset == size (a 0-byte file, say) answers an empty body: FastDFS up to
    // 6.15.3 did, and clients depend on it.
    let avail = size - offset;
    let len = if length == 0 {
        avail
    } else {
        length.min(avail)
    };
    if len == 0 {
        return Ok(Reply::ok(Vec::new()));
    }
    if len <= READ_INTO_REPLY {
        let mut body = vec![0; len as usize];
        file.read_exact_at(&mut body, offset)
            .map_err(Error::io("reading", path))?;
        return Ok(Reply::ok(body));
    }
    let mut body = FileBody::new(file, offset, len, pool);
    body.warm_start().map_err(Error::io("reading", path))?;
    let mut r = Reply::ok(Vec::new());
    r.file = Some(body);
    Ok(r)
}

/// A download from `offset`, past the end of a file of `size` bytes.
pub fn past_the_end(offset: u64, size: u64) -> Error {
    Error::Invalid(format!("offset {offset} past the end {size}"))
}

/// DELETE_FILE: the file and its metadata file, each logged (`D`). Each
/// removal and its record happen under the file's stripe lock, which every
/// change of a file holds (appends, metadata), so a file's records keep the
/// order of its changes; other changes need not wait for the unlink.
/// Returns the journal records of the deletion.
pub fn delete(store: &Store, t: &Target) -> Result<Commit, Error> {
    let name = t.name.as_string();
    let file = if let Some(r) = super::dedup::delete(store, t) {
        r?
    } else {
        let _guard = store.file_locks.lock(&t.path);
        match remove_logged(store, &t.path, &name) {
            Ok(Some(c)) => c,
            Ok(None) => return Err(Error::NotFound(t.path.clone())),
            Err(e) => return Err(Error::io("deleting", &t.path)(e)),
        }
    };
    let mpath = layout::store::meta_path(&t.path);
    let meta = {
        let _guard = store.file_locks.lock(&mpath);
        remove_logged(store, &mpath, &format!("{name}-m")).unwrap_or_else(|e| {
            log::warn!("removing metadata of {}: {e}", t.path.display());
            None
        })
    };
    Ok(file.max(meta.unwrap_or(Commit::NONE)))
}

/// Remove `path` and log the deletion of `remote`; the caller holds the
/// file's stripe lock. `Ok(None)`: the file was not there; else the journal
/// record of the deletion.
fn remove_logged(store: &Store, path: &Path, remote: &str) -> io::Result<Option<Commit>> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let c = store.binlog.append_now(op::DELETE, remote)?;
    Ok(Some(c))
}

/// SET_METADATA with overwrite or merge semantics (PROTOCOL.md §5.7); the
/// metadata file's change is logged as `C`, `U` or `D` of `<name>-m`.
/// Returns the journal records of the change.
pub fn set_metadata(store: &Store, t: &Target, mop: MetaOp, raw: &[u8]) -> Result<Commit, Error> {
    let path = &t.path;
    if !path.is_file() {
        return Err(Error::NotFound(path.clone()));
    }
    let mname = format!("{}-m", t.name.as_string());
    let mpath = layout::store::meta_path(path);
    // A merge reads, changes and writes the file: one change at a time.
    let _guard = store.file_locks.lock(&mpath);
    let mut pairs = proto::decode_meta(raw);
    match mop {
        MetaOp::Overwrite if pairs.is_empty() => {
            let removed =
                remove_logged(store, &mpath, &mname).map_err(Error::io("deleting", &mpath))?;
            return Ok(removed.unwrap_or(Commit::NONE));
        }
        MetaOp::Merge if pairs.is_empty() => return Ok(Commit::NONE),
        MetaOp::Merge => {
            let mut old = match fs::read(&mpath) {
                Ok(b) => proto::decode_meta(&b),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(Error::io("reading", &mpath)(e)),
            };
            for (k, v) in pairs.drain(..) {
                match old.iter_mut().find(|(ok, _)| *ok == k) {
                    Some(slot) => slot.1 = v,
                    None => old.push((k, v)),
                }
            }
            pairs = old;
        }
        MetaOp::Overwrite => {}
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.dedup_by(|later, earlier| later.0 == earlier.0);
    let bytes = proto::encode_meta(&pairs);
    let existed = mpath.exists();
    // Written outside the binlog lock (other changes need not wait for it);
    // the record follows it, so a peer that reads the record finds the file.
    write_meta(store, &mpath, &bytes).map_err(Error::io("writing", &mpath))?;
    let content = store
        .durable
        .journal_bytes(&mname, &bytes, &mpath)
        .map_err(Error::io("journaling", &mpath))?;
    let o = if existed { op::UPDATE } else { op::CREATE };
    let line = store
        .binlog
        .append_with(|| Ok(Some(Record::new(super::now() as u32, o, &mname))))
        .map_err(Error::io("logging the change of", &mpath))?;
    Ok(content.max(line))
}

/// GET_METADATA: the raw metadata file.
pub fn get_metadata(locks: &FileLocks, path: &std::path::Path) -> Result<Vec<u8>, Error> {
    if !path.is_file() {
        return Err(Error::NotFound(path.to_path_buf()));
    }
    let mpath = layout::store::meta_path(path);
    // set_metadata rewrites the file in place under this lock.
    let _guard = locks.lock(&mpath);
    match fs::metadata(&mpath) {
        Ok(m) if !m.is_file() => return Err(Error::IsDir(mpath)),
        Ok(_) => {}
        Err(e) => return Err(Error::io("stat of", &mpath)(e)),
    }
    fs::read(&mpath).map_err(Error::io("reading", &mpath))
}

/// QUERY_FILE_INFO: size and time from stat; CRC32 from the name for normal
/// files, computed from the content for appender and slave files (unless the
/// request's flag bit 1 says not to).
pub fn file_info(store: &Store, t: &Target, flags: u8, ip_size: usize) -> Result<Vec<u8>, Error> {
    let info = t
        .name
        .info()
        .map_err(|e| Error::Invalid(format!("{}: {e}", t.name.as_string())))?;
    let meta = fs::metadata(&t.path).map_err(Error::io("stat of", &t.path))?;
    if !meta.is_file() {
        return Err(Error::NotFound(t.path.clone()));
    }
    let crc32 = if crc_from_content(&t.name, flags) {
        let f = File::open(&t.path).map_err(Error::io("opening", &t.path))?;
        content_crc32(f).map_err(Error::io("reading", &t.path))?.0
    } else if t.name.is_normal() {
        info.crc32
    } else {
        0
    };
    let source_ip = match info.source {
        Source::Ip(ip) => ip.to_string(),
        Source::Id(id) => store.id_to_ip(id).unwrap_or_default(),
    };
    let fi = proto::FileInfo {
        size: meta.len(),
        create_time: meta.mtime().max(0) as u64,
        crc32,
        source_ip,
    };
    Ok(fi.encode(ip_size))
}

/// Whether QUERY_FILE_INFO of `name` with `flags` reads the whole file for
/// its CRC32: for appender and slave files, whose name does not hold it,
/// unless the request's flag bit 1 says not to.
pub fn crc_from_content(name: &RemoteName, flags: u8) -> bool {
    !name.is_normal() && flags & proto::QUERY_FLAG_NO_CRC32 == 0
}

/// The slave name of `master` with `prefix` and `ext` (common/fdfs_global.c:
/// fdfs_gen_slave_filename): the master's name up to the '.' of its ext part,
/// then the prefix, then "." + ext when one is given.
pub fn slave_name(master: &RemoteName, prefix: &str, ext: &str) -> Result<RemoteName, Error> {
    if prefix.is_empty() || (prefix == "-m" && ext.is_empty()) {
        return Err(Error::Invalid(format!(
            "slave prefix {prefix:?} with ext {ext:?}"
        )));
    }
    let n = &master.name;
    let tail = n.len().saturating_sub(7);
    let stem = match n[tail..].find('.') {
        Some(dot) => &n[..tail + dot],
        None => n.as_str(),
    };
    let mut name = format!("{stem}{prefix}");
    if !ext.is_empty() {
        if !ext.starts_with('.') {
            name.push('.');
        }
        name.push_str(ext);
    }
    let r = RemoteName::new(master.store_index, master.high, master.low, name);
    // Re-parse: the result must be a name we would accept from a client.
    let name = r.as_string();
    RemoteName::parse(&name).map_err(|e| Error::Invalid(format!("slave name {name}: {e}")))
}

/// Replace the content of `path` all at once (readers see the old or the new
/// file, never a mix); durable mode journals the bytes.
/// CRC32 and length of everything `f` holds from where it is.
pub fn content_crc32(mut f: File) -> io::Result<(u32, u64)> {
    let mut crc = crc32fast::Hasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((crc.finalize(), size));
        }
        crc.update(&buf[..n]);
        size += n as u64;
    }
}

/// Write a metadata file (under its stripe lock, which readers take too). An
/// existing one is rewritten in place when the new content fits the blocks
/// it has (so a full disk cannot stop the write halfway): no new inode and
/// no unlink per change, which is most of the cost of replacing a file, and
/// on ext4 without a journal every create scans past recently freed inodes.
fn write_meta(store: &Store, path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = match fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return write_replace(store, path, bytes),
        Err(e) => return Err(e),
    };
    let m = file.metadata()?;
    if !m.is_file() || bytes.len() as u64 > m.blocks() * 512 {
        return write_replace(store, path, bytes);
    }
    file.write_all_at(bytes, 0)?;
    file.set_len(bytes.len() as u64)
}

fn write_replace(store: &Store, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no directory"))?;
    let hidden = || format!(".meta-{:016x}", store.random64());
    let mut t = TempFile::create_in(dir, hidden)?;
    t.file().write_all(bytes)?;
    t.persist_replace(path, hidden)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::status;

    /// Whether `len` bytes at `offset` of `path` are readable from the page
    /// cache without waiting.
    fn in_page_cache(path: &Path, offset: u64, len: usize) -> bool {
        let f = File::open(path).unwrap();
        let mut buf = vec![0u8; len];
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        // SAFETY: the iovec points into `buf`, live for the call.
        let n = unsafe {
            libc::preadv2(
                std::os::fd::AsRawFd::as_raw_fd(&f),
                &iov,
                1,
                offset as libc::off_t,
                libc::RWF_NOWAIT,
            )
        };
        n == len as isize
    }

    /// On the disk thread, a download of a file that is not in the page
    /// cache is read into the reply when small, and otherwise handed to the
    /// loop with its first window already read in (and the store path's pool
    /// for the rest).
    #[test]
    fn a_cold_download_is_read_in_on_the_disk_thread() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        let big = dir.path().join("big");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&small, &data[..10_000]).unwrap();
        fs::write(&big, &data).unwrap();
        let evict = |p: &Path| crate::net::evict(&File::open(p).unwrap());
        if !(evict(&small) && evict(&big)) {
            println!("skipped: the file system keeps evicted pages (tmpfs?)");
            return;
        }
        let r = download(&small, 2, 100, 0).unwrap();
        assert!(r.file.is_none());
        assert!(r.body == data[100..10_000]);
        let r = download(&big, 2, 1000, 2_000_000).unwrap();
        let f = r.file.as_ref().expect("a file body");
        assert_eq!((f.pool, f.offset, f.len), (2, 1000, 2_000_000));
        assert_eq!(r.pkg_len(), 2_000_000);
        assert!(in_page_cache(&big, 1000, 64 * 1024), "first window read in");
        let past = download(&big, 2, 3_000_001, 0).map_err(|e| e.status());
        assert_eq!(past.err(), Some(status::EINVAL));
    }

    #[test]
    fn slave_names() {
        let m = RemoteName::parse("M00/00/00/wKgBZGVT8QCAEjRWAAAADg4Qul0398.jpg").unwrap();
        assert_eq!(
            slave_name(&m, "_150x150", "jpg").unwrap().as_string(),
            "M00/00/00/wKgBZGVT8QCAEjRWAAAADg4Qul0398_150x150.jpg"
        );
        assert_eq!(
            slave_name(&m, "_s", "").unwrap().as_string(),
            "M00/00/00/wKgBZGVT8QCAEjRWAAAADg4Qul0398_s"
        );
        let noext = RemoteName::parse("M00/00/00/wKgBZGVT8QCAEjRWAAAADg4Qul01234567").unwrap();
        assert_eq!(
            slave_name(&noext, "-x", "png").unwrap().name,
            "wKgBZGVT8QCAEjRWAAAADg4Qul01234567-x.png"
        );
        let refused = |prefix, ext| slave_name(&m, prefix, ext).map_err(|e| e.status()).err();
        assert_eq!(refused("", "jpg"), Some(status::EINVAL));
        assert_eq!(refused("-m", ""), Some(status::EINVAL));
        assert_eq!(refused("../x", "jpg"), Some(status::EINVAL));
    }
}
