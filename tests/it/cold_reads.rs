//! Downloads of files that are not in the page cache: each stored file is written out and
//! dropped from the cache (`fsync`, then `POSIX_FADV_DONTNEED`, checked with `cachestat`), then
//! downloaded whole and in ranges, and must come back byte-identical. The storage reads such
//! bytes in on its disk threads, window by window, and sends them from the page cache (see
//! `net::pagecache`); with `disk_inline_reads` too. The storage's network threads must read
//! nothing from the disk meanwhile (their `read_bytes` in `/proc/PID/task/*/io`), its disk threads
//! all of it.

use crate::util::*;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Where the content of file `id` is stored (store path 0 of storage 0).
fn stored_path(cluster: &Cluster, id: &str) -> PathBuf {
    let rel = id.split_once("/M00/").expect("an M00 file id").1;
    cluster.store_path(0, 0).join("data").join(rel)
}

/// Pages of `file` in the page cache, by cachestat(2) (Linux 6.5; syscall 451 on every
/// architecture); `None` if the kernel refuses it.
fn cached_pages(file: &File) -> Option<u64> {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    let range = Range { off: 0, len: 0 };
    let mut stat = [0u64; 5];
    // SAFETY: both pointers are to live values of the layout the kernel expects
    // (struct cachestat_range, struct cachestat: five u64 counts).
    let r = unsafe { libc::syscall(451, file.as_raw_fd(), &range, stat.as_mut_ptr(), 0u32) };
    (r == 0).then_some(stat[0])
}

/// Write `path` out and drop it from the page cache; false (saying so) if that did not
/// happen, in which case the test shows nothing.
fn evict(path: &Path) -> bool {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.sync_all()
        .unwrap_or_else(|e| panic!("fsync {}: {e}", path.display()));
    // SAFETY: advice on a file descriptor we hold.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "posix_fadvise(DONTNEED) on {}", path.display());
    match cached_pages(&f) {
        Some(0) => true,
        Some(n) => {
            println!("skipped: {n} pages of {} stay cached", path.display());
            false
        }
        None => {
            println!("skipped: no cachestat(2) to check the eviction");
            false
        }
    }
}

/// Bytes read from block devices by the threads of process `pid` whose name starts with
/// `prefix`; `None` without per-thread I/O accounting.
fn read_bytes(pid: u32, prefix: &str) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let io = std::fs::read_to_string(task.path().join("io")).ok()?;
        total += io
            .lines()
            .find_map(|l| l.strip_prefix("read_bytes: "))
            .and_then(|v| v.trim().parse::<u64>().ok())?;
    }
    Some(total)
}

/// Network threads (`fdfs-storage-loopN`, cut to 15 bytes) and disk threads of the storage.
const LOOPS: &str = "fdfs-storage-lo";
const DISK: &str = "fdfs-dio-";

/// Sizes around the storage's limits: read into the reply (up to 32 KiB), one window of a file
/// body (1 MiB), several windows, and not multiples of a page.
const SIZES: [usize; 5] = [4096, 65_536, 1 << 20, (1 << 20) + 1, (5 << 20) + 4321];

fn downloads_of_evicted_files_are_byte_identical(cluster: &Cluster, seed: &str) {
    let mut files = Vec::new();
    for size in SIZES {
        let data = random_bytes(&format!("{seed}/{size}"), size);
        let id = cluster.upload(&data, &["--meta", "k=v"]);
        files.push((id, data));
    }
    let evict_all = |files: &[(String, Vec<u8>)]| {
        files.iter().all(|(id, _)| {
            let p = stored_path(cluster, id);
            evict(&p) && evict(&PathBuf::from(format!("{}-m", p.display())))
        })
    };
    if !evict_all(&files) {
        return;
    }
    let pid = cluster.pid(1);
    let before = read_bytes(pid, LOOPS).zip(read_bytes(pid, DISK));
    for (id, data) in &files {
        assert_same_bytes(
            &format!("cold download of {id}"),
            data,
            &cluster.download(id),
        );
        let meta = cluster.fdfs(&["meta", "get", id]).success().stdout_str();
        assert_eq!(meta.trim(), "k=v", "metadata of {id}");
    }
    match (before, read_bytes(pid, LOOPS).zip(read_bytes(pid, DISK))) {
        (Some((loops, disk)), Some((loops_after, disk_after))) => {
            assert_eq!(loops_after, loops, "the network threads read the disk");
            let total: usize = files.iter().map(|(_, d)| d.len()).sum();
            assert!(
                disk_after - disk >= total as u64 / 2,
                "the disk threads read {} bytes of {total}",
                disk_after - disk
            );
        }
        _ => println!("no per-thread I/O accounting: not checked which threads read the disk"),
    }
    // Ranges that start and end inside windows, after the files went cold again.
    if !evict_all(&files) {
        return;
    }
    for (id, data) in &files {
        let (offset, length) = (data.len() / 3, data.len() / 2);
        let (off_s, len_s) = (offset.to_string(), length.to_string());
        let part = cluster
            .fdfs(&["download", id, "-", "--offset", &off_s, "--length", &len_s])
            .success()
            .stdout;
        assert_same_bytes(
            &format!("cold ranged download of {id}"),
            &data[offset..offset + length],
            &part,
        );
    }
}

#[test]
fn evicted_files_download_byte_identical() {
    let mut cluster = Cluster::start();
    downloads_of_evicted_files_are_byte_identical(&cluster, "cold_reads");
    cluster.assert_serves("cold_reads");
}

#[test]
fn evicted_files_download_byte_identical_with_inline_reads() {
    let mut cluster = Cluster::builder()
        .storage_conf("disk_inline_reads", "true")
        .start();
    downloads_of_evicted_files_are_byte_identical(&cluster, "cold_reads_inline");
    cluster.assert_serves("cold_reads_inline");
}
