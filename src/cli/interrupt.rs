//! Ctrl-C, SIGTERM or SIGHUP during a client command: remove the temporary
//! files it registered (a download's `.NAME.fdfs-part`), then exit with 128 +
//! the signal number, as a shell reports a command killed by it. The signals
//! are blocked before any thread starts and taken by one thread with sigwait:
//! no code runs inside a signal handler.

use nix::sys::signal::{SigSet, Signal};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Temporary files to remove on a signal. A file is created and renamed
/// under the lock the signal thread takes before it removes them and exits,
/// so none is created behind its back or removed after becoming final.
#[derive(Clone, Default)]
pub struct TempPaths(Arc<Mutex<Vec<PathBuf>>>);

impl TempPaths {
    fn lock(&self) -> MutexGuard<'_, Vec<PathBuf>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Create (or truncate) `path` as a temporary file.
    pub fn create(&self, path: &Path) -> io::Result<File> {
        let mut paths = self.lock();
        let f = File::create(path)?;
        paths.push(path.to_path_buf());
        Ok(f)
    }

    /// Rename temporary `from` to its final name `to`.
    pub fn persist(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut paths = self.lock();
        std::fs::rename(from, to)?;
        paths.retain(|p| p != from);
        Ok(())
    }

    /// Remove temporary `path` (after a failure).
    pub fn remove(&self, path: &Path) {
        let mut paths = self.lock();
        let _ = std::fs::remove_file(path);
        paths.retain(|p| p != path);
    }
}

/// Block SIGINT, SIGTERM and SIGHUP in the calling thread, and so in every
/// thread it starts later (call it from `main` before any), and start the
/// thread that waits for them. Returns the list that thread cleans up.
pub fn watch() -> TempPaths {
    let paths = TempPaths::default();
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return paths;
    }
    let on_signal = paths.clone();
    let started = std::thread::Builder::new()
        .name("fdfs-signals".into())
        .spawn(move || wait_and_exit(set, &on_signal));
    if started.is_err() {
        // Nobody would take the signals: let them act as before.
        let _ = set.thread_unblock();
    }
    paths
}

fn wait_and_exit(set: SigSet, paths: &TempPaths) {
    let sig = match set.wait() {
        Ok(sig) => sig,
        Err(_) => {
            // Cannot wait: take the signals' default action in this thread.
            let _ = set.thread_unblock();
            loop {
                std::thread::park();
            }
        }
    };
    // Held until the exit: no temporary file appears or is renamed meanwhile.
    let paths = paths.lock();
    for p in paths.iter() {
        let _ = std::fs::remove_file(p);
    }
    std::process::exit(128 + sig as i32);
}
