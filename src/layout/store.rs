//! Store path tree and durable whole-file writes (LAYOUT.md §2.3).
//!
//! A store path root holds `data/HH/HH/` (two levels of upper-case hex directories,
//! `subdir_count_per_path` each) and `data/.fastdfs_vars` (the store path mark).
//! `atomic_write` is the one way state files are replaced: tmp file, fsync, rename, fsync dir.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha1::{Digest, Sha1};

use super::file_id::{RemoteName, base64_encode};

/// Name of the mark file inside `data/` (storage/storage_func.c).
pub const MARK_FILE: &str = ".fastdfs_vars";
/// Key of the mark inside [`MARK_FILE`].
pub const MARK_KEY: &str = "store_path_mark";
/// Most subdirectories per level (FastDFS limit; names use two hex digits).
pub const MAX_SUBDIR_COUNT: u32 = 256;

/// One store path: `M<index>` in remote filenames maps to `root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorePath {
    /// Store path index (`store_pathN`).
    pub index: u8,
    /// Root directory of the store path (holds `data/`).
    pub root: PathBuf,
}

impl StorePath {
    /// A store path with the given index and root.
    pub fn new(index: u8, root: PathBuf) -> Self {
        StorePath { index, root }
    }

    /// `root/data`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// `root/data/HH/HH/name` for a parsed (hence safe) remote name.
    pub fn file_path(&self, r: &RemoteName) -> PathBuf {
        self.root.join(r.rel_path())
    }

    /// Creates `data/` and the `HH/HH` tree (`00..subdir_count-1`, upper-case hex) where
    /// missing, then writes `data/.fastdfs_vars` if absent. Idempotent and resumable: after
    /// a crash halfway a second call completes the tree. Returns true if it created
    /// anything (a fresh or replaced disk; LAYOUT.md §2.8 uses this for recovery).
    ///
    /// Speed: one `mkdir` per directory, `AlreadyExists` ignored, no stat per directory;
    /// and when the mark and the last leaf already exist (the mark is written last, the
    /// tree in order) the whole tree is known complete and is skipped.
    pub fn init(&self, subdir_count: u32) -> io::Result<bool> {
        if subdir_count == 0 || subdir_count > MAX_SUBDIR_COUNT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("subdir_count_per_path {subdir_count} not in 1..=256"),
            ));
        }
        let mut created = false;
        if !self.root.is_dir() {
            fs::create_dir_all(&self.root)?;
            created = true;
        }
        let data = self.data_dir();
        created |= mkdir(&data)?;
        let last = format!("{:02X}", subdir_count - 1);
        let mark = data.join(MARK_FILE);
        if !created && mark.is_file() && data.join(&last).join(&last).is_dir() {
            return Ok(false);
        }
        mark_hierarchy_top(&data);
        let mut path = data.clone();
        for high in 0..subdir_count {
            path.push(format!("{high:02X}"));
            created |= mkdir(&path)?;
            let mut leaf_created = false;
            for low in 0..subdir_count {
                path.push(format!("{low:02X}"));
                leaf_created |= mkdir(&path)?;
                path.pop();
            }
            if leaf_created {
                // The mark (written last) must imply a durable tree, or after a crash the
                // fast path above could skip directories that never reached the disk.
                fsync_dir(&path)?;
                created = true;
            }
            path.pop();
        }
        if created {
            fsync_dir(&data)?;
        }
        if !mark.exists() {
            let text = format!("{MARK_KEY}={}\n", self.new_mark());
            atomic_write(&mark, text.as_bytes())?;
            created = true;
        }
        Ok(created)
    }

    /// An opaque, practically unique token: base64 of SHA-1 over root, index, time, pid.
    fn new_mark(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut h = Sha1::new();
        h.update(self.root.as_os_str().as_encoded_bytes());
        h.update([self.index]);
        h.update(nanos.to_le_bytes());
        h.update(std::process::id().to_le_bytes());
        base64_encode(&h.finalize())
    }

    /// `(total_mb, free_mb)` of the filesystem holding `root`; free counts the blocks
    /// available to unprivileged users (what FastDFS reports).
    pub fn space_mb(&self) -> io::Result<(u64, u64)> {
        let st = nix::sys::statvfs::statvfs(&self.root).map_err(io::Error::from)?;
        let frag = st.fragment_size() as u64;
        let mb = |blocks: u64| blocks.saturating_mul(frag) / (1024 * 1024);
        Ok((mb(st.blocks() as u64), mb(st.blocks_available() as u64)))
    }
}

/// Mark `dir` as the top of a directory hierarchy (`chattr +T`, FS_TOPDIR_FL), so
/// that ext4's Orlov allocator spreads its subdirectories, and with them the
/// files, over the disk's block groups instead of packing them into the group of
/// the parent. On this project's test machines that made creating 4 KiB files
/// 3-4 times faster: ext4 skips recently freed inodes one by one when it looks
/// for a free inode, and a group shared with other busy directories is full of
/// them. Best effort: filesystems without the flag ignore or refuse it.
fn mark_hierarchy_top(dir: &Path) {
    use std::os::fd::AsRawFd;
    const FS_TOPDIR_FL: libc::c_long = 0x0002_0000;
    let Ok(f) = fs::File::open(dir) else { return };
    let mut flags: libc::c_long = 0;
    // SAFETY: both ioctls take a pointer to a long that lives across the call,
    // on a descriptor that `f` keeps open.
    unsafe {
        if libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) == 0 {
            flags |= FS_TOPDIR_FL;
            libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags);
        }
    }
}

/// `mkdir` that reports whether it created the directory; `AlreadyExists` is fine.
fn mkdir(path: &Path) -> io::Result<bool> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Metadata file of `file`: `<file>-m` (LAYOUT.md §2.3).
pub fn meta_path(file: &Path) -> PathBuf {
    let mut s = OsString::from(file.as_os_str());
    s.push("-m");
    PathBuf::from(s)
}

/// Distinguishes concurrent temp files of one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically and durably: write a uniquely named temp file
/// in the same directory, fsync it, rename it over `path`, fsync the directory. Readers
/// see the old or the new content, never a mix; after a crash the rename is either fully
/// there or not. The temp file is removed on error.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "atomic_write: no file name"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Keep the temp name short enough for NAME_MAX whatever the target's length.
    let short: String = name.to_string_lossy().chars().take(64).collect();
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{short}.tmp.{}.{n}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename lives in the directory: without this a crash can bring back the old file.
    fsync_dir(dir)
}

/// fsyncs a directory so that creates, renames and unlinks in it are durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mark stored in `data/.fastdfs_vars`, or `None` when the file is absent.
    fn read_mark(sp: &StorePath) -> io::Result<Option<String>> {
        match super::super::kv::read_kv(&sp.data_dir().join(MARK_FILE)) {
            Ok(items) => Ok(items
                .into_iter()
                .rev()
                .find(|(k, _)| k == MARK_KEY)
                .map(|(_, v)| v)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[test]
    fn init_creates_tree_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = StorePath::new(0, tmp.path().join("store0"));
        assert!(sp.init(16).unwrap());
        let data = sp.data_dir();
        let mut count = 0;
        for h in fs::read_dir(&data).unwrap() {
            let h = h.unwrap();
            if h.file_type().unwrap().is_dir() {
                count += fs::read_dir(h.path()).unwrap().count();
            }
        }
        assert_eq!(count, 256);
        assert!(data.join("0F/0F").is_dir());
        assert!(data.join("0A/00").is_dir());
        assert!(!data.join("10").exists());
        let mark = read_mark(&sp).unwrap().unwrap();
        assert_eq!(mark.len(), 27);
        assert!(!sp.init(16).unwrap());
        assert_eq!(read_mark(&sp).unwrap().unwrap(), mark, "mark written once");
    }

    #[test]
    fn init_resumes_after_partial_run() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = StorePath::new(1, tmp.path().to_path_buf());
        // Simulate a crash: some directories, no mark.
        fs::create_dir_all(sp.data_dir().join("00/00")).unwrap();
        fs::create_dir_all(sp.data_dir().join("00/01")).unwrap();
        assert!(sp.init(4).unwrap());
        assert!(sp.data_dir().join("03/03").is_dir());
        assert!(read_mark(&sp).unwrap().is_some());
        // A missing last leaf with the mark present is completed too.
        fs::remove_dir(sp.data_dir().join("03/03")).unwrap();
        assert!(sp.init(4).unwrap());
        assert!(sp.data_dir().join("03/03").is_dir());
        assert!(!sp.init(4).unwrap());
        assert!(sp.init(0).is_err());
        assert!(sp.init(257).is_err());
    }

    #[test]
    fn paths() {
        let sp = StorePath::new(0, PathBuf::from("/srv/fdfs"));
        let r = RemoteName::parse("M00/0A/3F/abc.txt").unwrap();
        assert_eq!(
            sp.file_path(&r),
            PathBuf::from("/srv/fdfs/data/0A/3F/abc.txt")
        );
        assert_eq!(
            meta_path(&sp.file_path(&r)),
            PathBuf::from("/srv/fdfs/data/0A/3F/abc.txt-m")
        );
    }

    #[test]
    fn atomic_write_replaces_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("state.dat");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two\n").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two\n");
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "no temp files left"
        );
        // Target is a directory: rename fails, temp file removed.
        let d = tmp.path().join("adir");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("x"), b"x").unwrap();
        assert!(atomic_write(&d, b"data").is_err());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2);
        // Missing directory.
        assert!(atomic_write(&tmp.path().join("nope/f"), b"x").is_err());
    }

    #[test]
    fn space_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = StorePath::new(0, tmp.path().to_path_buf());
        let (total, free) = sp.space_mb().unwrap();
        assert!(total > 0 && free <= total);
    }
}
