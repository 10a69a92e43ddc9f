//! Same content stored once (`check_file_duplicate = 1`), without FastDHT.
//!
//! The model is upstream's (storage_service.c with FastDHT): a content is kept
//! once under a *source* name that no client is given, and every uploaded file
//! with that content is a symbolic link to it, with its own file ID, its own
//! metadata and its own delete. The binlog says so with upstream's records
//! (`C source`, then `L link source`), so peers, C FastDFS ones included,
//! create the same link to their copy of the source and store it once too.
//!
//! - An upload's size and CRC32 are computed as it streams in
//!   ([`super::disk::Upload`]); at its end [`Upload::finish_dedup`] looks
//!   for sources with both, compares BLAKE3 hashes with those (computed only
//!   then), and links to the source of that content, or makes the upload the
//!   source of a new one. Appender files are never
//!   deduplicated (they change); slave files are.
//! - A delete of a link removes one reference; the source goes with the last
//!   one, on the server where a client deleted it (`D source` is logged and
//!   pushed). A pushed delete of a source that still has links here (a peer
//!   linked to it meanwhile) keeps it.
//! - A pushed link to a source not yet in the index adds it (its key from its
//!   name; hashed only when an upload needs to compare it).
//! - The index ([`index`]) survives crashes: see there.

mod index;
mod upload;

pub use index::Dedup;
use index::content_key;

use super::Store;
use super::disk::Target;
use super::error::Error;
use super::journal::Commit;
use crate::layout::binlog::{Record, op};
use crate::net::Reply;
use crate::proto;
use crate::proto::dedup::{DedupStat, FileDedup};
use std::fs;
use std::io;
use std::path::Path;

/// Open the index of a storage with `check_file_duplicate`, finishing what a
/// crash left under way (removed sources are logged as deleted again).
pub fn open(
    data_dir: &Path,
    paths: Vec<crate::layout::StorePath>,
    binlog: &super::binlog::Binlog,
    durable: bool,
) -> io::Result<Dedup> {
    for sp in &paths {
        slow_link_hint(&sp.data_dir());
    }
    let (d, rec) = Dedup::open(data_dir, paths, durable)?;
    if let Some(why) = &rec.rebuilt {
        log::warn!("dedup index rebuilt from the data tree: {why}");
    }
    if rec.recounted {
        log::warn!("dedup: links counted again in the data tree after a crash");
    }
    for src in &rec.removed_sources {
        log::info!("dedup: {src} lost its last link before a stop; removed");
        // At start-up: no reply waits for it.
        let _ = binlog.append_now(op::DELETE, src)?;
    }
    let s = d.stats();
    log::info!(
        "dedup: {} contents, {} files linked to them, {} bytes saved",
        s.contents,
        s.links,
        s.saved_bytes
    );
    Ok(d)
}

/// The longest link target ext4 keeps in the inode (a "fast" symlink); a
/// longer one costs a block of its own, written and journaled with every
/// new content (about a fifth of the throughput of 64 KiB uploads, README
/// → Performance).
const EXT4_FAST_LINK: usize = 59;

/// The length of a link's target in `data_dir`: `data/HH/HH/` and a name of
/// 30 characters with a 3-letter extension.
fn link_target_len(data_dir: &Path) -> usize {
    data_dir.as_os_str().len() + "/HH/HH/".len() + 30 + ".jpg".len()
}

/// Say at start when links on an ext4 store path will not fit in the inode,
/// and what store path would.
fn slow_link_hint(data_dir: &Path) {
    let len = link_target_len(data_dir);
    let ext4 = nix::sys::statfs::statfs(data_dir)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::EXT4_SUPER_MAGIC);
    if ext4 && len > EXT4_FAST_LINK {
        let room = EXT4_FAST_LINK - link_target_len(Path::new("/data"));
        log::info!(
            "dedup: links in {} get targets of about {len} bytes, more than the {} ext4 keeps \
             in the inode; a store path of at most {room} characters (say /data/fdfs) makes \
             every new content's link cheaper",
            data_dir.display(),
            EXT4_FAST_LINK,
        );
    }
}

/// The source `path` links to, when it is a symlink to a content of the
/// index; None for anything else (a plain file, a missing one).
fn linked_source(d: &Dedup, path: &Path) -> Option<String> {
    let m = fs::symlink_metadata(path).ok()?;
    if !m.file_type().is_symlink() {
        return None;
    }
    let src = d.source_of_link(path)?;
    d.lock().refs(&src).map(|_| src)
}

/// DELETE_FILE of a file this index knows (a link, or a source); None: not
/// one, delete it the usual way. Only the file itself: its metadata file is
/// the caller's. Returns the journal records of the removals.
pub fn delete(store: &Store, t: &Target) -> Option<Result<Commit, Error>> {
    let d = store.dedup.as_ref()?;
    let name = t.name.as_string();
    if let Some(src) = linked_source(d, &t.path) {
        return Some(unlink(store, d, &src, &name, &t.path, Origin::Client));
    }
    let refs = d.lock().refs(&name);
    match refs {
        // A source: its name is given to nobody, so this is a client that
        // read it off a disk; it goes only once nothing links to it.
        Some(n) if n > 0 => Some(Err(Error::Shared { name, links: n })),
        Some(_) => Some(drop_source(store, d, &name).map_err(Error::io("deleting", &t.path))),
        None => None,
    }
}

/// Who asked for a removal: a client here, or a peer pushing its change.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Client,
    /// With the source's timestamp of the change.
    Peer(u32),
}

/// Remove link `name` to `src` and log it; a client's removal of the last
/// link also removes the source.
fn unlink(
    store: &Store,
    d: &Dedup,
    src: &str,
    name: &str,
    path: &Path,
    origin: Origin,
) -> Result<Commit, Error> {
    let mut g = d.lock();
    let _guard = store.file_locks.lock(path);
    let mut commit = Commit::NONE;
    let left = g.remove_link(src, name, || {
        let mut removed = false;
        commit = store.binlog.append_with(|| match fs::remove_file(path) {
            Ok(()) => {
                removed = true;
                Ok(Some(match origin {
                    Origin::Client => Record::new(super::now() as u32, op::DELETE, name),
                    Origin::Peer(ts) => Record::new(ts, Record::replica_op(op::DELETE), name),
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })?;
        Ok(removed)
    });
    match left {
        Ok(Some(0)) if origin == Origin::Client => {
            drop(_guard);
            match g.drop_source(src, || remove_source(store, d, src)) {
                Ok(c) => Ok(commit.max(c.unwrap_or(Commit::NONE))),
                Err(e) => {
                    log::error!("dedup: removing {src}, linked no more: {e}");
                    Ok(commit)
                }
            }
        }
        Ok(Some(_)) => Ok(commit),
        Ok(None) => Err(Error::NotFound(path.to_path_buf())),
        Err(e) => Err(Error::io("removing the link", path)(e)),
    }
}

/// Forget and remove source `src`, which nothing links to.
fn drop_source(store: &Store, d: &Dedup, src: &str) -> io::Result<Commit> {
    d.lock()
        .drop_source(src, || remove_source(store, d, src))
        .map(|c| c.unwrap_or(Commit::NONE))
}

/// Remove a source's file and log `D source`.
fn remove_source(store: &Store, d: &Dedup, src: &str) -> io::Result<Commit> {
    let Some(path) = d.path_of(src) else {
        return Ok(Commit::NONE);
    };
    let _guard = store.file_locks.lock(&path);
    store.binlog.append_with(|| match fs::remove_file(&path) {
        Ok(()) => Ok(Some(Record::new(super::now() as u32, op::DELETE, src))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
}

/// What a pushed delete of `remote` (at `path`) is, here.
pub enum PushedDelete {
    /// Not a dedup file: delete it the usual way.
    Plain,
    /// Done here (a link removed, or a source kept or removed), with the
    /// journal records of the removal.
    Done(Result<Commit, Error>),
}

/// SYNC_DELETE_FILE of a link or a source. A source whose links are all gone
/// here is removed; one that still has links here (a local upload linked to it
/// after the pushing peer removed its last link) is kept.
pub fn pushed_delete(store: &Store, remote: &str, path: &Path, timestamp: u32) -> PushedDelete {
    let Some(d) = store.dedup.as_ref() else {
        return PushedDelete::Plain;
    };
    if let Some(src) = linked_source(d, path) {
        return PushedDelete::Done(unlink(
            store,
            d,
            &src,
            remote,
            path,
            Origin::Peer(timestamp),
        ));
    }
    let mut g = d.lock();
    match g.refs(remote) {
        None => PushedDelete::Plain,
        Some(n) if n > 0 => {
            log::info!("dedup: {remote} still holds the content of {n} files here; kept");
            PushedDelete::Done(Ok(Commit::NONE))
        }
        Some(_) => {
            let r = g.drop_source(remote, || {
                let _guard = store.file_locks.lock(path);
                store.binlog.append_with(|| match fs::remove_file(path) {
                    Ok(()) => Ok(Some(Record::new(
                        timestamp,
                        Record::replica_op(op::DELETE),
                        remote,
                    ))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                })
            });
            PushedDelete::Done(
                r.map(|c| c.unwrap_or(Commit::NONE))
                    .map_err(Error::io("deleting", path)),
            )
        }
    }
}

/// SYNC_CREATE_LINK with dedup on: make link `dest` (at `dest_path`) to `src`
/// (at `src_path`) and count it, adding `src` to the index first if it is new
/// here. `make` creates the link and logs it.
pub fn pushed_link<R>(
    store: &Store,
    src: &str,
    src_path: &Path,
    dest: &str,
    make: impl FnOnce() -> io::Result<R>,
) -> Option<io::Result<R>> {
    let d = store.dedup.as_ref()?;
    let mut g = d.lock();
    if g.refs(src).is_none() {
        let (key, hash) = match content_key(src_path, src) {
            Ok(k) => k,
            Err(e) => return Some(Err(e)),
        };
        if let Err(e) = g.add_source(key, hash, src, || Ok(())) {
            return Some(Err(e));
        }
    }
    Some(g.add_link(src, dest, make))
}

/// FDFS_DEDUP_STAT: the storage's figures (empty body) or one file's.
pub fn stat(store: &Store, body: &[u8]) -> Result<Reply, Error> {
    if body.is_empty() {
        let s = store.dedup.as_ref().map(|d| d.stats()).unwrap_or_default();
        let r = DedupStat {
            enabled: store.dedup.is_some(),
            contents: s.contents,
            links: s.links,
            shared_files: s.shared_files,
            saved_bytes: s.saved_bytes,
        };
        return Ok(Reply::ok(r.encode()));
    }
    let f = proto::FileRef::decode(body)?;
    let t = super::disk::resolve(store, &f.group, &f.remote)?;
    let m = fs::symlink_metadata(&t.path).map_err(Error::io("stat of", &t.path))?;
    let mut r = FileDedup::default();
    if let Some(d) = &store.dedup {
        if let Some(src) = linked_source(d, &t.path) {
            r.refs = d.lock().refs(&src).unwrap_or(0) as u64;
            r.source = src;
        } else {
            let name = t.name.as_string();
            let refs = d.lock().refs(&name);
            if let Some(n) = refs {
                r.refs = n as u64;
                r.source = name;
            }
        }
    } else if m.file_type().is_symlink() {
        // A link a peer pushed while dedup is off here: shared, count unknown.
        r.source = index::link_target(&store.paths, &t.path).unwrap_or_default();
        r.refs = 1;
    }
    Ok(Reply::ok(r.encode()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{RemoteName, StorePath};

    #[test]
    fn the_hint_counts_a_link_target_as_long_as_it_is() {
        let sp = StorePath::new(0, "/data/fdfs".into());
        let r = RemoteName::parse("M00/00/00/wKgBZGVT8QCAEjRWAAAADg4Qul0398.jpg").unwrap();
        let target = sp.file_path(&r);
        assert_eq!(link_target_len(&sp.data_dir()), target.as_os_str().len());
        // The store path the hint suggests keeps targets in an ext4 inode.
        assert!(target.as_os_str().len() <= EXT4_FAST_LINK);
        let longer = StorePath::new(0, "/var/lib/fdfs/storage".into());
        assert!(link_target_len(&longer.data_dir()) > EXT4_FAST_LINK);
    }
}
