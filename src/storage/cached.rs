//! Reads answered on the network thread when they cannot wait for the disk.
//!
//! A download or metadata read whose path is in the dentry cache and whose
//! bytes are in the page cache costs a few microseconds; handing it to a disk
//! thread and back costs more than that (two wake-ups and a context switch
//! each way). So the loop first tries the request with calls that refuse to
//! block: `openat2(RESOLVE_CACHED)` fails with EAGAIN unless every path
//! component is cached, and `preadv2(RWF_NOWAIT)` fails or comes up short
//! unless the bytes are in memory; a bigger download goes out as a
//! `net::FileBody`, whose windows the loop sends only once they are in the
//! page cache (a worker of the store path's pool reads in those that are
//! not). Any such refusal returns `None` and the request goes to the disk
//! pool as before, so a cold disk never holds up the loop. Kernels without
//! these calls (before 5.12) always get `None`.

use super::appender::FileLocks;
use super::disk::{READ_INTO_REPLY, io_status};
use crate::net::{FileBody, Reply};
use crate::proto::status;
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

/// Set once the kernel has refused `openat2` or `preadv2` flags as unknown.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Open `path` read-only if that needs no disk access. `None`: it would (or
/// the kernel cannot tell); `Some(Err)`: a real answer such as ENOENT.
fn open(path: &Path) -> Option<io::Result<File>> {
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
fn read_exact_at(file: &File, offset: u64, len: usize) -> Option<io::Result<Vec<u8>>> {
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

/// DOWNLOAD_FILE without waiting for the disk (see the module notes); the
/// answers are those of [`super::disk::download`]. `pool`: the store path's
/// disk pool, which reads in what the loop must not.
pub fn download(path: &Path, pool: usize, offset: u64, length: u64) -> Option<Result<Reply, u8>> {
    let file = match open(path)? {
        Ok(f) => f,
        Err(e) => return Some(Err(io_status(&e))),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Some(Err(io_status(&e))),
    };
    if !meta.is_file() {
        return Some(Err(status::ENOENT));
    }
    let size = meta.len();
    if offset > size {
        return Some(Err(status::EINVAL));
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
        Err(e) => Some(Err(io_status(&e))),
    }
}

/// GET_METADATA without waiting for the disk; answers as
/// [`super::disk::get_metadata`]. A metadata file being rewritten (its
/// stripe lock taken) is left to the pool, which waits for the lock.
pub fn get_metadata(locks: &FileLocks, path: &Path) -> Option<Result<Vec<u8>, u8>> {
    match open(path)?.and_then(|f| f.metadata()) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Some(Err(status::ENOENT)),
        Err(e) => return Some(Err(io_status(&e))),
    }
    let mpath = crate::layout::store::meta_path(path);
    let _guard = locks.try_lock(&mpath)?;
    let file = match open(&mpath)? {
        Ok(f) => f,
        Err(e) => return Some(Err(io_status(&e))),
    };
    let size = match file.metadata() {
        Ok(m) if !m.is_file() => return Some(Err(status::EISDIR)),
        Ok(m) => m.len(),
        Err(e) => return Some(Err(io_status(&e))),
    };
    if size > META_MAX {
        return None;
    }
    match read_exact_at(&file, 0, size as usize)? {
        Ok(body) => Some(Ok(body)),
        Err(e) => Some(Err(io_status(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cached_files_and_reports_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello world").unwrap();
        std::fs::write(crate::layout::store::meta_path(&p), b"k\x02v").unwrap();
        // Just written, so cached; a kernel without openat2/RWF_NOWAIT says None.
        if let Some(r) = download(&p, 0, 6, 0) {
            let r = r.unwrap();
            assert_eq!(r.body, b"world");
            assert!(r.file.is_none());
            let locks = FileLocks::default();
            assert_eq!(get_metadata(&locks, &p).unwrap().unwrap(), b"k\x02v");
            // While a rewrite holds the file's lock, the loop leaves it alone.
            let held = locks.lock(&crate::layout::store::meta_path(&p));
            assert!(get_metadata(&locks, &p).is_none());
            drop(held);
            // A missing name may need the disk to be sure of: None or ENOENT.
            if let Some(r) = download(&dir.path().join("nope"), 0, 0, 0) {
                assert_eq!(r.err(), Some(status::ENOENT));
            }
            assert_eq!(download(&p, 0, 12, 0).unwrap().err(), Some(status::EINVAL));
            assert_eq!(download(&p, 0, 11, 0).unwrap().unwrap().pkg_len(), 0);
        }
    }
}
