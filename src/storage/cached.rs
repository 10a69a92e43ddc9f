//! Reads answered on the network thread without waiting for file content.
//!
//! A download or metadata read whose path is in the dentry cache and whose
//! bytes are in the page cache costs a few microseconds; handing it to a disk
//! thread and back costs more than that (two wake-ups and a context switch
//! each way). So the loop first tries the request with calls that refuse to
//! wait: `preadv2(RWF_NOWAIT)` fails or comes up short unless the bytes are in
//! memory, and a bigger download goes out as a `net::FileBody`, whose windows
//! the loop sends only once they are in the page cache (a worker of the store
//! path's pool reads in those that are not). Any such refusal returns `None`
//! and the request goes to the disk pool as before. Kernels without these
//! calls (before 5.12) always get `None`.
//!
//! What may wait on the loop depends on the [`Lookup`]:
//! * [`Lookup::Cached`] (the default): nothing. `openat2(RESOLVE_CACHED)`
//!   fails with EAGAIN unless every path component is in the dentry cache,
//!   and `fstat` of the open file reads the inode already in memory.
//! * [`Lookup::MayWait`] (`disk_inline_reads`): the open may wait for
//!   directory blocks and the inode (metadata I/O, a few small reads per
//!   cold path), never for file content, which still comes only from the
//!   page cache.
//!
//! Metadata files are small (at most [`META_MAX`] is read here), but they are
//! content too: read with `RWF_NOWAIT`, or by the pool.

use super::appender::FileLocks;
use super::disk::{READ_INTO_REPLY, past_the_end};
use super::error::Error;
use crate::net::{FileBody, Reply};
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, OpenHow, ResolveFlag, openat2};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Metadata files bigger than this are left to the disk pool.
const META_MAX: u64 = 64 * 1024;

/// How far opening a file on the loop may go (see the module notes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Only through cached path components and inodes: never waits.
    Cached,
    /// A plain open, which may wait for directory blocks and the inode.
    MayWait,
}

/// Set once the kernel has refused `openat2` or `preadv2` flags as unknown.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Open `path` read-only as `lookup` allows. `None`: it would wait (or the
/// kernel cannot tell); `Some(Err)`: a real answer such as ENOENT.
fn open(path: &Path, lookup: Lookup) -> Option<io::Result<File>> {
    if lookup == Lookup::MayWait {
        return Some(File::open(path));
    }
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    // nix reports a NUL inside the path as EINVAL, which below means "kernel
    // without openat2"; such a path is simply left to the pool.
    if path.as_os_str().as_bytes().contains(&0) {
        return None;
    }
    // nix 0.32 has no name for RESOLVE_CACHED (Linux 5.12) yet.
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::from_bits_retain(libc::RESOLVE_CACHED));
    match openat2(AT_FDCWD, path, how) {
        Ok(fd) => Some(Ok(File::from(fd))),
        Err(Errno::EAGAIN) => None,
        Err(Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL) => {
            UNSUPPORTED.store(true, Ordering::Relaxed);
            None
        }
        Err(e) => Some(Err(e.into())),
    }
}

/// Read exactly `len` bytes at `offset` if they are all in the page cache.
/// `RWF_NOWAIT` alone would not wait, but on a miss it first starts reading
/// the missing pages (readahead submitted from this thread, which may wait
/// for memory or for a slot in the device's queue); asking `cachestat` first
/// leaves every read to the disk thread. (Without cachestat, RWF_NOWAIT
/// alone decides.)
fn read_exact_at(file: &File, offset: u64, len: usize) -> Option<io::Result<Vec<u8>>> {
    if crate::net::pages_present(file, offset, len as u64) == Some(false) {
        return None;
    }
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let filled = buf.len();
        let rest = &mut buf.spare_capacity_mut()[..len - filled];
        let iov = libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        };
        // SAFETY: the iovec points into `buf`'s spare capacity, which stays
        // allocated and unaliased for the call.
        let n = unsafe {
            libc::preadv2(
                file.as_raw_fd(),
                &iov,
                1,
                (offset + filled as u64) as libc::off_t,
                libc::RWF_NOWAIT,
            )
        };
        match n {
            // Short of the file's end: it shrank; let the pool sort it out.
            0 => return None,
            // SAFETY: the kernel initialised these `n` bytes.
            n if n > 0 => unsafe { buf.set_len(filled + n as usize) },
            _ => {
                let err = io::Error::last_os_error();
                return match err.raw_os_error() {
                    Some(libc::EAGAIN) => None,
                    Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => {
                        UNSUPPORTED.store(true, Ordering::Relaxed);
                        None
                    }
                    _ => Some(Err(err)),
                };
            }
        }
    }
    Some(Ok(buf))
}

/// DOWNLOAD_FILE without waiting for file content (see the module notes);
/// the answers are those of [`super::disk::download`]. `pool`: the store
/// path's disk pool, which reads in what the loop must not.
pub fn download(
    path: &Path,
    pool: usize,
    offset: u64,
    length: u64,
    lookup: Lookup,
) -> Option<Result<Reply, Error>> {
    let file = match open(path, lookup)? {
        Ok(f) => f,
        Err(e) => return Some(Err(Error::io("opening", path)(e))),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Some(Err(Error::io("stat of", path)(e))),
    };
    if !meta.is_file() {
        return Some(Err(Error::NotFound(path.to_path_buf())));
    }
    let size = meta.len();
    if offset > size {
        return Some(Err(past_the_end(offset, size)));
    }
    let avail = size - offset;
    let len = if length == 0 {
        avail
    } else {
        length.min(avail)
    };
    if len == 0 {
        return Some(Ok(Reply::ok(Vec::new())));
    }
    if len > READ_INTO_REPLY {
        // The loop sends it window by window as the page cache has it.
        let mut r = Reply::ok(Vec::new());
        r.file = Some(FileBody::new(file, offset, len, pool));
        return Some(Ok(r));
    }
    match read_exact_at(&file, offset, len as usize)? {
        Ok(body) => Some(Ok(Reply::ok(body))),
        Err(e) => Some(Err(Error::io("reading", path)(e))),
    }
}

/// GET_METADATA without waiting for file content; answers as
/// [`super::disk::get_metadata`]. A metadata file being rewritten (its
/// stripe lock taken) is left to the pool, which waits for the lock.
pub fn get_metadata(
    locks: &FileLocks,
    path: &Path,
    lookup: Lookup,
) -> Option<Result<Vec<u8>, Error>> {
    match open(path, lookup)?.and_then(|f| f.metadata()) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Some(Err(Error::NotFound(path.to_path_buf()))),
        Err(e) => return Some(Err(Error::io("opening", path)(e))),
    }
    let mpath = crate::layout::store::meta_path(path);
    let _guard = locks.try_lock(&mpath)?;
    let file = match open(&mpath, lookup)? {
        Ok(f) => f,
        Err(e) => return Some(Err(Error::io("opening", &mpath)(e))),
    };
    let size = match file.metadata() {
        Ok(m) if !m.is_file() => return Some(Err(Error::IsDir(mpath))),
        Ok(m) => m.len(),
        Err(e) => return Some(Err(Error::io("stat of", &mpath)(e))),
    };
    if size > META_MAX {
        return None;
    }
    match read_exact_at(&file, 0, size as usize)? {
        Ok(body) => Some(Ok(body)),
        Err(e) => Some(Err(Error::io("reading", &mpath)(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::status;

    #[test]
    fn reads_cached_files_and_reports_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello world").unwrap();
        std::fs::write(crate::layout::store::meta_path(&p), b"k\x02v").unwrap();
        for lookup in [Lookup::Cached, Lookup::MayWait] {
            // Just written, so cached; a kernel without openat2/RWF_NOWAIT says None.
            let Some(r) = download(&p, 0, 6, 0, lookup) else {
                continue;
            };
            let r = r.unwrap();
            assert_eq!(r.body, b"world");
            assert!(r.file.is_none());
            let locks = FileLocks::default();
            assert_eq!(
                get_metadata(&locks, &p, lookup).unwrap().unwrap(),
                b"k\x02v"
            );
            // While a rewrite holds the file's lock, the loop leaves it alone.
            let held = locks.lock(&crate::layout::store::meta_path(&p));
            assert!(get_metadata(&locks, &p, lookup).is_none());
            drop(held);
            // A missing name may need the disk to be sure of: None or ENOENT.
            if let Some(r) = download(&dir.path().join("nope"), 0, 0, 0, lookup) {
                assert_eq!(r.map_err(|e| e.status()).err(), Some(status::ENOENT));
            }
            let past = download(&p, 0, 12, 0, lookup).unwrap();
            assert_eq!(past.map_err(|e| e.status()).err(), Some(status::EINVAL));
            assert_eq!(
                download(&p, 0, 11, 0, lookup).unwrap().unwrap().pkg_len(),
                0
            );
        }
    }

    /// Drop `path`'s pages from the page cache; false if the file system
    /// keeps them.
    fn evict(path: &Path) -> bool {
        crate::net::evict(&File::open(path).unwrap())
    }

    /// Content that is not in the page cache is never read here, in either
    /// lookup: small downloads and metadata go to the pool (`None`), a big
    /// download becomes a file body for the loop, with the store path's pool.
    #[test]
    fn cold_content_is_left_to_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        let big = dir.path().join("big");
        std::fs::write(&small, vec![7u8; 4096]).unwrap();
        std::fs::write(&big, vec![9u8; 100_000]).unwrap();
        let mpath = crate::layout::store::meta_path(&small);
        std::fs::write(&mpath, b"k\x02v").unwrap();
        if !(evict(&small) && evict(&mpath) && evict(&big)) {
            println!("skipped: the file system keeps evicted pages (tmpfs?)");
            return;
        }
        let locks = FileLocks::default();
        for lookup in [Lookup::Cached, Lookup::MayWait] {
            assert!(download(&small, 0, 0, 0, lookup).is_none(), "{lookup:?}");
            assert!(get_metadata(&locks, &small, lookup).is_none(), "{lookup:?}");
            if let Some(r) = download(&big, 3, 0, 0, lookup) {
                let f = r.unwrap().file.expect("a file body");
                assert_eq!((f.pool, f.offset, f.len), (3, 0, 100_000));
            }
        }
    }
}
