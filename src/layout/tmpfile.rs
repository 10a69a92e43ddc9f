//! Files that become visible only when complete.
//!
//! On Linux a file is created with O_TMPFILE: it has no name until it is
//! linked under its final one, so a half-written file is never visible, a
//! crash leaves nothing behind, and the directory is touched once instead of
//! twice (create + rename) — directory locks are what concurrent uploads into
//! one directory contend on. Where O_TMPFILE is not supported, a hidden
//! temporary name and a rename do the same job.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// An O_TMPFILE in `dir` with `mode`: `None` where the file system (or the
/// kernel) does not support it.
fn open_unnamed(dir: &Path, mode: u32) -> io::Result<Option<File>> {
    let unnamed = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(mode)
        .custom_flags(nix::libc::O_TMPFILE)
        .open(dir);
    match unnamed {
        Ok(file) => Ok(Some(file)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::EOPNOTSUPP | nix::libc::EISDIR | nix::libc::EINVAL)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

/// A read-write file in `dir` that no other process can see and that is gone
/// however this process ends: an O_TMPFILE, or where that is missing a file
/// under a `hidden` name (retried on a clash) removed right after creation.
pub fn anonymous(dir: &Path, mode: u32, hidden: impl Fn(u32) -> String) -> io::Result<File> {
    if let Some(f) = open_unnamed(dir, mode)? {
        return Ok(f);
    }
    let mut attempt = 0;
    loop {
        let path = dir.join(hidden(attempt));
        match create_new(&path, mode) {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// A file being written, not yet under its final name.
pub struct TempFile {
    file: File,
    /// The hidden name, when O_TMPFILE was not available.
    named: Option<PathBuf>,
    persisted: bool,
}

impl TempFile {
    /// Create in `dir`; `hidden` gives a fresh hidden name (".up-…") for the
    /// fallback.
    pub fn create_in(dir: &Path, hidden: impl Fn() -> String) -> io::Result<TempFile> {
        if let Some(file) = open_unnamed(dir, 0o644)? {
            return Ok(TempFile {
                file,
                named: None,
                persisted: false,
            });
        }
        // Not supported by this file system (or kernel): use a name.
        let path = dir.join(hidden());
        let file = create_new(&path, 0o644)?;
        Ok(TempFile {
            file,
            named: Some(path),
            persisted: false,
        })
    }

    /// The open file.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Give it the name `dest`; fails with AlreadyExists if that name is taken.
    pub fn persist_noreplace(&mut self, dest: &Path) -> io::Result<()> {
        match &self.named {
            Some(tmp) => rename_noreplace(tmp, dest)?,
            None => link_fd(&self.file, dest)?,
        }
        self.persisted = true;
        self.named = None;
        Ok(())
    }

    /// Give it the name `dest`, replacing a file that has it.
    pub fn persist_replace(&mut self, dest: &Path, hidden: impl Fn() -> String) -> io::Result<()> {
        let dir = dest.parent().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "destination has no directory")
        })?;
        if self.named.is_none() {
            // Name it first (hidden), then rename over the target.
            let tmp = dir.join(hidden());
            link_fd(&self.file, &tmp)?;
            self.named = Some(tmp);
        }
        let tmp = self.named.take().expect("named above");
        if let Err(e) = std::fs::rename(&tmp, dest) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let (false, Some(p)) = (self.persisted, &self.named) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// linkat(2) an O_TMPFILE descriptor to `dest` (EEXIST if taken). Through
/// /proc/self/fd, which needs no privilege; AT_EMPTY_PATH as a fallback.
fn link_fd(file: &File, dest: &Path) -> io::Result<()> {
    use nix::fcntl::AtFlags;
    use std::os::fd::AsRawFd;
    let proc = format!("/proc/self/fd/{}", file.as_raw_fd());
    match nix::unistd::linkat(
        nix::fcntl::AT_FDCWD,
        proc.as_str(),
        nix::fcntl::AT_FDCWD,
        dest,
        AtFlags::AT_SYMLINK_FOLLOW,
    ) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ENOENT) if !Path::new("/proc/self/fd").exists() => {
            nix::unistd::linkat(file, "", nix::fcntl::AT_FDCWD, dest, AtFlags::AT_EMPTY_PATH)
                .map_err(io::Error::from)
        }
        Err(e) => Err(io::Error::from(e)),
    }
}

/// rename(2) that fails with AlreadyExists instead of replacing `to`.
///
/// The renameat2 system call itself: glibc has a wrapper (and nix wraps it
/// for glibc only), but musl up to 1.2.4, which the static build links, has
/// none.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both paths are NUL-terminated and live across the call; the
    // kernel only reads them.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_renameat2,
            nix::libc::AT_FDCWD,
            from.as_ptr(),
            nix::libc::AT_FDCWD,
            to.as_ptr(),
            nix::libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn invisible_until_persisted_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TempFile::create_in(dir.path(), || ".up-1".into()).unwrap();
        t.file().write_all(b"hello").unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing visible while writing"
        );
        let dest = dir.path().join("final");
        std::fs::write(&dest, b"taken").unwrap();
        assert_eq!(
            t.persist_noreplace(&dest).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let other = dir.path().join("other");
        t.persist_noreplace(&other).unwrap();
        assert_eq!(std::fs::read(&other).unwrap(), b"hello");
        assert_eq!(std::fs::read(&dest).unwrap(), b"taken");
    }

    #[test]
    fn dropped_leaves_nothing_and_replace_replaces() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut t = TempFile::create_in(dir.path(), || ".up-2".into()).unwrap();
            t.file().write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let dest = dir.path().join("f");
        std::fs::write(&dest, b"old").unwrap();
        let mut t = TempFile::create_in(dir.path(), || ".up-3".into()).unwrap();
        t.file().write_all(b"new").unwrap();
        t.persist_replace(&dest, || ".sync-1".into()).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn rename_noreplace_refuses_a_taken_name() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
        let c = dir.path().join("c");
        rename_noreplace(&a, &c).unwrap();
        assert!(!a.exists());
        assert_eq!(std::fs::read(&c).unwrap(), b"a");
        let e = rename_noreplace(&a, &c).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
