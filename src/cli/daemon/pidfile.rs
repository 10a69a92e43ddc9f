//! The pid file, `base_path/data/fdfs_trackerd.pid` or `fdfs_storaged.pid`
//! (FastDFS's names and format: the pid in decimal): it keeps a second daemon
//! off a base_path in use, and tells `stop`, `restart` and `status` which
//! process to signal.
//!
//! A running fdfs holds an exclusive `flock` on it for its whole life, so a
//! pid file left by a crash is never mistaken for a live daemon. FastDFS's C
//! daemons write the same file without a lock: a pid in it counts as live
//! only while that process is a FastDFS daemon (`/proc/PID/comm`), never
//! because the number was reused.

use super::super::CliError;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The locked pid file of the running daemon; removed when dropped.
pub struct PidFile {
    path: PathBuf,
    file: Flock<File>,
}

impl PidFile {
    /// Lock the pid file at `path` (made if missing) for a daemon of `role`, or
    /// say which process already uses it.
    pub fn lock(path: &Path, role: &str) -> Result<PidFile, CliError> {
        let io_err = |e: std::io::Error| CliError::Other(format!("{}: {e}", path.display()));
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(io_err)?;
            let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(f) => f,
                Err((file, Errno::EWOULDBLOCK)) => {
                    let who = read_pid(&file).map_or("another fdfs".into(), |p| format!("pid {p}"));
                    return Err(CliError::Usage(format!(
                        "{role} already running: {who} holds {} (one daemon per base_path)",
                        path.display()
                    )));
                }
                Err((_, e)) => return Err(io_err(e.into())),
            };
            // The daemon that held it may have removed it between our open and
            // our lock: then the lock is on a file nobody else will look at.
            let ours = file.metadata().map_err(io_err)?;
            match std::fs::metadata(path) {
                Ok(m) if (m.dev(), m.ino()) == (ours.dev(), ours.ino()) => {}
                _ => continue,
            }
            if let Some(pid) = read_pid(&file)
                && pid != std::process::id() as i32
                && let Some(name) = fastdfs_daemon(pid)
            {
                return Err(CliError::Usage(format!(
                    "{role} already running: {} names pid {pid}, a running {name} \
                     (one daemon per base_path)",
                    path.display()
                )));
            }
            return Ok(PidFile {
                path: path.to_path_buf(),
                file,
            });
        }
    }

    /// Write our pid (after detaching, which changes it).
    pub fn write_pid(&self) -> Result<(), CliError> {
        let pid = std::process::id().to_string();
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all_at(pid.as_bytes(), 0))
            .map_err(|e| CliError::Other(format!("{}: {e}", self.path.display())))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only if the name is still ours (never another daemon's newer file).
        let same = match (self.file.metadata(), std::fs::metadata(&self.path)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        };
        if same && let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("removing {}: {e}", self.path.display());
        }
    }
}

/// The pid in a pid file, if it holds one.
fn read_pid(mut file: &File) -> Option<i32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|&p| p > 0)
}

/// If `pid` is a live FastDFS daemon, its name: an fdfs `tracker`, `storage`
/// or `server`, or FastDFS's `fdfs_trackerd` / `fdfs_storaged`.
fn fastdfs_daemon(pid: i32) -> Option<String> {
    if !alive(pid) {
        return None;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    match comm.trim() {
        c @ ("fdfs_trackerd" | "fdfs_storaged") => Some(c.to_string()),
        "fdfs" => {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let sub = cmdline.split(|&b| b == 0).nth(1)?;
            let sub = std::str::from_utf8(sub).ok()?;
            ["tracker", "storage", "server"]
                .contains(&sub)
                .then(|| format!("fdfs {sub}"))
        }
        _ => None,
    }
}

/// Whether process `pid` exists and has not exited (a zombie has).
fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err_and(|e| e == Errno::ESRCH) {
        return false;
    }
    // "PID (comm) STATE ...": comm may hold spaces and parentheses.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Who runs on the base_path of a pid file.
pub enum Holder {
    /// This process (pid, name).
    Running(i32, String),
    /// Nobody; says why (no pid file, a stale one).
    None(String),
}

/// Who holds the pid file at `path`: the fdfs daemon that has it locked, or
/// the FastDFS daemon it names.
pub fn holder(path: &Path) -> Result<Holder, CliError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Holder::None(format!("no pid file {}", path.display())));
        }
        Err(e) => return Err(CliError::Other(format!("{}: {e}", path.display()))),
    };
    let pid = read_pid(&file);
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Err((_, Errno::EWOULDBLOCK)) => match pid {
            Some(p) => Ok(Holder::Running(p, "fdfs".into())),
            None => Err(CliError::Other(format!(
                "{} is locked by a daemon that has not written its pid yet; try again",
                path.display()
            ))),
        },
        Err((_, e)) => Err(CliError::Other(format!("{}: {e}", path.display()))),
        Ok(_unlocked_on_drop) => match pid.and_then(|p| fastdfs_daemon(p).map(|n| (p, n))) {
            Some((p, name)) => Ok(Holder::Running(p, name)),
            None => Ok(Holder::None(match pid {
                Some(p) => format!("{} names pid {p}, which is not running", path.display()),
                None => format!("{} holds no pid", path.display()),
            })),
        },
    }
}

/// `fdfs ROLE status`: print the pid of the running daemon.
pub fn status(role: &str, path: &Path) -> Result<(), CliError> {
    match holder(path)? {
        Holder::Running(pid, _) => {
            println!("{role} running, pid {pid}");
            Ok(())
        }
        Holder::None(why) => Err(CliError::NotFound(format!("{role} not running: {why}"))),
    }
}

/// `fdfs ROLE stop`: SIGTERM the daemon of the pid file at `path` and wait up
/// to `deadline` for it to exit, saying so on stderr as it goes.
pub fn stop(role: &str, path: &Path, deadline: Duration) -> Result<(), CliError> {
    let (pid, name) = match holder(path)? {
        Holder::Running(pid, name) => (pid, name),
        Holder::None(why) => return Err(CliError::NotFound(format!("{role} not running: {why}"))),
    };
    match kill(Pid::from_raw(pid), Signal::SIGTERM) {
        Ok(()) => {}
        Err(Errno::ESRCH) => {
            return Err(CliError::NotFound(format!(
                "{role} not running: pid {pid} has exited"
            )));
        }
        Err(e) => {
            return Err(CliError::Other(format!(
                "signalling pid {pid}: {}",
                e.desc()
            )));
        }
    }
    eprintln!("fdfs: stopping {role} pid {pid} ({name}); it answers the requests under way first");
    let start = Instant::now();
    let mut next_note = Duration::from_secs(5);
    while alive(pid) {
        let waited = start.elapsed();
        if waited >= deadline {
            return Err(CliError::Other(format!(
                "{role} pid {pid} still running {} s after SIGTERM (see its log)",
                waited.as_secs()
            )));
        }
        if waited >= next_note {
            eprintln!(
                "fdfs: waiting for pid {pid} to exit ({} s)",
                waited.as_secs()
            );
            next_note += Duration::from_secs(5);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("fdfs: {role} pid {pid} stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_pid_file_keeps_a_second_daemon_out_and_goes_at_exit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fdfs_trackerd.pid");
        let first = PidFile::lock(&path, "tracker").expect("first lock");
        first.write_pid().expect("write pid");
        let me = std::process::id();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), me.to_string());
        match PidFile::lock(&path, "tracker") {
            Err(CliError::Usage(m)) => assert!(
                m.contains(&format!("pid {me}")) && m.contains(&path.display().to_string()),
                "{m}"
            ),
            _ => panic!("second lock must fail"),
        }
        assert!(matches!(holder(&path), Ok(Holder::Running(p, _)) if p == me as i32));
        drop(first);
        assert!(!path.exists(), "removed at exit");
        assert!(matches!(holder(&path), Ok(Holder::None(_))));
    }

    #[test]
    fn a_stale_pid_is_free() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fdfs_storaged.pid");
        // A pid that has exited (a reaped child).
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let gone = child.id();
        child.wait().expect("wait");
        std::fs::write(&path, gone.to_string()).unwrap();
        assert!(matches!(holder(&path), Ok(Holder::None(_))));
        let f = PidFile::lock(&path, "storage").expect("stale pid file is free");
        f.write_pid().unwrap();
    }
}
