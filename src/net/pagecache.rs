//! Whether the next part of a file body is in the page cache, asked without
//! blocking, and bringing it in on a thread that may wait for the disk.
//!
//! The loop sends file bodies with `sendfile`, which reads the file on the
//! calling thread: bytes that are not in the page cache would hold up every
//! connection of that loop for a disk read. So before it sends a part of a
//! body the loop asks how much of it is in memory ([`ready`]); when nothing
//! is, a worker of the body's pool reads the next window in ([`warm`]) and
//! the loop sends it afterwards.
//!
//! Two probes:
//! * `cachestat(2)` (Linux 6.5; no mapping) is cheap (per folio: well under a
//!   microsecond for a MiB of a file written in large pieces), but it counts
//!   a page whose read is still under way as cached. That is right before any
//!   read of ours touched the file: the loop asks it once per body, for up to
//!   [`FIRST_CHECK`] bytes, so a body in memory needs that one check. It is
//!   not right afterwards: the loop's own `sendfile` of a page that carries a
//!   readahead marker (left by an earlier sequential reader of the file)
//!   starts readahead of the missing pages after it, which cachestat would
//!   count while the disk still reads them, and the next `sendfile` would
//!   wait for them.
//! * `mincore(2)` on a mapping of one [`WINDOW`] (made, asked and unmapped at
//!   once; the mapping is never touched) reports only pages whose read has
//!   completed, at about 25 µs per MiB. It checks every window after the
//!   first check, and every window when cachestat is refused (ENOSYS before
//!   Linux 6.5, EPERM under a seccomp filter). A process may see the cache
//!   state of files it owns or could write; for others mincore says "not
//!   cached", which costs a hand-off per window but never a wait.
//!
//! What can still make the loop wait: a page evicted between the check and
//! the `sendfile` (memory pressure within microseconds), and, in the first
//! check only, a page that another reader is bringing in at that moment
//! (cachestat counts it): the loop then waits for a read already under way,
//! never for one it started.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Largest part of a body checked with `mincore` and brought in by a worker
/// at once: one hand-off per window when it is cold.
pub(super) const WINDOW: u64 = 1 << 20;

/// How much of a body the first `cachestat` covers. A body up to this size
/// that is in the page cache is sent after that one check; the check costs
/// about 0.5 µs per MiB of a file written in large pieces (large folios),
/// 9 µs per MiB of one written in 4 KiB pieces.
pub(super) const FIRST_CHECK: u64 = 16 << 20;

/// How far a warm-up starts reading beyond its window (asynchronously; it
/// waits for its window only), so that the disk reads the next windows while
/// the loop sends this one. Without it a cold 256 MiB download went at about
/// half the rate of a plain `sendfile` with the kernel's readahead (see the
/// README's Performance section).
pub(super) const AHEAD: u64 = 4 << 20;

/// Set once `cachestat` has been refused as unknown or forbidden.
static NO_CACHESTAT: AtomicBool = AtomicBool::new(false);

/// Linux's number for cachestat(2), the same on every architecture (it is
/// past the point where the tables were unified); libc has no name for it on
/// x86_64 yet.
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range` (include/uapi/linux/mman.h).
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` (include/uapi/linux/mman.h): counts of pages.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(
        || match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
            Ok(Some(n)) if n > 0 => n as u64,
            _ => 4096,
        },
    )
}

/// Pages that hold bytes `[offset, offset + len)`; `len` > 0.
fn pages(offset: u64, len: u64) -> u64 {
    let page = page_size();
    (offset + len - 1) / page - offset / page + 1
}

/// How many bytes of `[offset, offset + len)` from `offset` can be sent
/// without waiting for the disk: up to [`FIRST_CHECK`] bytes when `first`
/// (nothing of ours has read the file yet, see the module notes), else up to
/// one [`WINDOW`]; 0 when the next window is not all there. Never blocks; an
/// error reads as "not cached", which costs a hand-off, never a wait.
pub(super) fn ready(file: &File, offset: u64, len: u64, first: bool) -> u64 {
    let window = len.min(WINDOW);
    if len == 0 {
        return 0;
    }
    if first && !NO_CACHESTAT.load(Ordering::Relaxed) {
        let span = len.min(FIRST_CHECK);
        match cachestat(file, offset, span) {
            Ok(cached) if cached == pages(offset, span) => return span,
            // Part of it is missing: is the first window there?
            Ok(_) if span > window => {
                return match cachestat(file, offset, window) {
                    Ok(cached) if cached == pages(offset, window) => window,
                    _ => 0,
                };
            }
            Ok(_) => return 0,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                log::info!("cachestat(2) refused ({e}): page cache checks use mincore(2)");
                NO_CACHESTAT.store(true, Ordering::Relaxed);
            }
            Err(_) => return 0,
        }
    }
    if mincore(file, offset, window) {
        window
    } else {
        0
    }
}

/// Whether every page of `[offset, offset + len)` is in the page cache,
/// perhaps still being read (`cachestat`, which never starts a read): for a
/// caller about to read with `RWF_NOWAIT`, which would start reading the
/// missing pages before it gives up. `None` when the kernel refuses
/// cachestat.
pub fn pages_present(file: &File, offset: u64, len: u64) -> Option<bool> {
    if len == 0 {
        return Some(true);
    }
    if NO_CACHESTAT.load(Ordering::Relaxed) {
        return None;
    }
    match cachestat(file, offset, len) {
        Ok(cached) => Some(cached == pages(offset, len)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
            NO_CACHESTAT.store(true, Ordering::Relaxed);
            None
        }
        Err(_) => Some(false),
    }
}

/// Pages of the range in the page cache, including those still being read.
fn cachestat(file: &File, offset: u64, len: u64) -> io::Result<u64> {
    let range = CachestatRange { off: offset, len };
    let mut cs = Cachestat::default();
    // SAFETY: both pointers are to live, properly laid out structs for the
    // duration of the call; flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut cs as *mut Cachestat,
            0u32,
        )
    };
    if r == 0 {
        Ok(cs.nr_cache)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether every page of the range is cached and its read complete.
fn mincore(file: &File, offset: u64, len: u64) -> bool {
    let page = page_size();
    let start = offset / page * page;
    let map_len = (offset + len - start) as usize;
    let mut vec = [0u8; (WINDOW / 4096) as usize + 1];
    let n = map_len.div_ceil(page as usize);
    if n > vec.len() {
        return false;
    }
    // SAFETY: a new read-only mapping of the file that nothing reads: it is
    // only passed to mincore and unmapped, so no access can fault (not even
    // past the end of a file that shrank).
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            start as libc::off_t,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        let r = libc::mincore(p, map_len, vec.as_mut_ptr());
        libc::munmap(p, map_len);
        if r != 0 {
            return false;
        }
    }
    vec[..n].iter().all(|v| v & 1 == 1)
}

/// Bring `[offset, offset + len)` into the page cache and wait until it is
/// read: for a worker thread. One readahead request for the range and up to
/// `ahead` bytes from `offset` (it leaves no readahead marker behind), then a
/// `sendfile` of the range to /dev/null, which waits for each page without
/// copying it (or, without /dev/null, a read into a per-thread buffer).
/// Returns the bytes found, fewer than `len` only at the end of the file.
pub(super) fn warm(file: &File, offset: u64, len: u64, ahead: u64) -> io::Result<u64> {
    // SAFETY: readahead only reads the descriptor's file; an error (a file
    // system without it) leaves the reads below to do the work.
    unsafe {
        libc::readahead(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len.max(ahead) as usize,
        );
    }
    match dev_null() {
        Some(null) => wait_by_sendfile(file, null, offset, len),
        None => wait_by_read(file, offset, len),
    }
}

fn dev_null() -> Option<&'static File> {
    static NULL: OnceLock<Option<File>> = OnceLock::new();
    NULL.get_or_init(|| File::options().write(true).open("/dev/null").ok())
        .as_ref()
}

fn wait_by_sendfile(file: &File, null: &File, offset: u64, len: u64) -> io::Result<u64> {
    let mut done = 0;
    while done < len {
        let mut off = (offset + done) as i64;
        let count = (len - done) as usize;
        match nix::sys::sendfile::sendfile64(null, file, Some(&mut off), count) {
            Ok(0) => break,
            Ok(n) => done += n as u64,
            Err(nix::errno::Errno::EINTR) => {}
            // A file system that cannot splice: read it instead.
            Err(nix::errno::Errno::EINVAL) if done == 0 => return wait_by_read(file, offset, len),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// Size of the per-thread buffer of [`wait_by_read`].
const READ_BUF: usize = 256 * 1024;

fn wait_by_read(file: &File, offset: u64, len: u64) -> io::Result<u64> {
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.resize(READ_BUF, 0);
        let mut done = 0;
        while done < len {
            let want = (len - done).min(READ_BUF as u64) as usize;
            match file.read_at(&mut buf[..want], offset + done) {
                Ok(0) => break,
                Ok(n) => done += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    })
}

/// Test support: write `file`'s pages out and drop them from the page cache.
/// `false` when the file system kept some of them anyway (tmpfs keeps all).
#[cfg(test)]
pub(crate) fn evict(file: &File) -> bool {
    let len = file.metadata().expect("stat").len();
    file.sync_all().expect("fsync");
    nix::fcntl::posix_fadvise(
        std::os::fd::AsFd::as_fd(file),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .expect("posix_fadvise(DONTNEED)");
    len == 0 || cached_pages(file, 0, len) == Some(0)
}

/// Test support: pages of the range that `cachestat` counts (`None` if the
/// kernel refuses it).
#[cfg(test)]
pub(super) fn cached_pages(file: &File, offset: u64, len: u64) -> Option<u64> {
    cachestat(file, offset, len).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(&data).expect("write");
        (f, data)
    }

    #[test]
    fn pages_counts_partial_pages_at_both_ends() {
        let p = page_size();
        assert_eq!(pages(0, 1), 1);
        assert_eq!(pages(0, p), 1);
        assert_eq!(pages(p - 1, 2), 2);
        assert_eq!(pages(1, 2 * p), 3);
    }

    /// Both probes agree with the page cache: a written file is in it, an
    /// evicted one is not, and `warm` brings back exactly what the file
    /// holds (short at its end) by either way of waiting.
    #[test]
    fn probes_see_eviction_and_warm_brings_it_back() {
        let len = 3 * WINDOW as usize / 2 + 123;
        let (f, data) = file_of(len);
        let file = f.as_file();
        let (w, all) = (WINDOW, len as u64);
        assert_eq!(ready(file, 0, all, true), all, "just written (cachestat)");
        assert_eq!(ready(file, 0, all, false), w, "just written (mincore)");
        assert_eq!(ready(file, 10, 5, false), 5);
        if !evict(file) {
            println!("skipped: the file system keeps evicted pages (tmpfs?)");
            return;
        }
        for first in [true, false] {
            assert_eq!(ready(file, 0, all, first), 0, "evicted, first={first}");
            assert_eq!(ready(file, w, all - w, first), 0, "evicted tail");
        }
        assert_eq!(warm(file, 0, w, 0).unwrap(), w);
        assert_eq!(ready(file, 0, all, false), w, "warmed window (mincore)");
        assert_eq!(
            ready(file, 0, all, true),
            w,
            "warmed window only (cachestat)"
        );
        // Past the end: only what exists.
        assert_eq!(wait_by_read(file, w, w).unwrap(), all - w);
        assert_eq!(ready(file, w, all - w, false), all - w);
        assert_eq!(ready(file, 0, all, true), all);
        assert_eq!(warm(file, len as u64, 10, 0).unwrap(), 0);
        let mut back = vec![0; len];
        file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, data);
    }
}
