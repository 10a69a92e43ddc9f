//! The guard of one running `fdfs` daemon: started with its `listening on` lines read,
//! stopped on drop (SIGTERM, then SIGKILL), and reported in full when a test fails.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{FDFS, LOG_TAIL_LINES, POLL_INTERVAL, START_TIMEOUT, STOP_TIMEOUT};

/// One running `fdfs` daemon (tracker, storage, or the combined server). Stopped on drop.
pub struct Daemon {
    pub(crate) role: String,
    pub(crate) cmdline: String,
    pub(crate) child: Child,
    /// Addresses from its `listening on` lines, in print order.
    pub(crate) addrs: Vec<SocketAddr>,
    /// Every stdout line so far (the reader thread keeps appending until EOF).
    pub(crate) stdout: Arc<Mutex<Vec<String>>>,
    pub(crate) stderr_path: PathBuf,
    /// Config files and log directories to show in a failure report.
    pub(crate) conf_files: Vec<PathBuf>,
    pub(crate) log_dirs: Vec<PathBuf>,
    pub(crate) exit: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `fdfs args` and waits until it printed `listening_lines` lines `listening on ADDR`.
    pub fn start(
        role: &str,
        args: &[&str],
        work: &Path,
        listening_lines: usize,
        conf_files: Vec<PathBuf>,
        log_dirs: Vec<PathBuf>,
    ) -> Daemon {
        let cmdline = format!("{FDFS} {}", args.join(" "));
        let stderr_path = work.join(format!("{role}.stderr"));
        let stderr = fs::File::create(&stderr_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", stderr_path.display()));
        let mut child = Command::new(FDFS)
            .args(args)
            .current_dir(work)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmdline}: {e}"));

        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stdout.take().expect("stdout was piped above");
        let lines = Arc::clone(&stdout);
        // Keeps reading after the address lines so a later print never hits a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });

        // From here on the guard owns the child: a panic below stops it and prints the report.
        let mut daemon = Daemon {
            role: role.to_string(),
            cmdline,
            child,
            addrs: Vec::new(),
            stdout,
            stderr_path,
            conf_files,
            log_dirs,
            exit: None,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while daemon.addrs.len() < listening_lines {
            match rx.recv_timeout(POLL_INTERVAL) {
                Ok(text) => match text.parse::<SocketAddr>() {
                    Ok(addr) => daemon.addrs.push(addr),
                    Err(e) => panic!("{role}: bad `listening on {text}` line: {e}"),
                },
                Err(_) => {
                    daemon.assert_running();
                    if Instant::now() > deadline {
                        panic!("{role}: no `listening on` line within {START_TIMEOUT:?}");
                    }
                }
            }
        }
        daemon
    }

    /// First listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Stops it (SIGTERM, SIGKILL after a deadline); true if it exited by itself with status 0.
    pub fn stop_clean(&mut self) -> bool {
        self.stop();
        self.exit.is_some_and(|s| s.success())
    }

    /// Panics (with the report) if the daemon has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().unwrap_or(None);
        }
        if let Some(status) = self.exit {
            panic!("{} exited unexpectedly with {status}", self.role);
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `STOP_TIMEOUT`.
    pub(crate) fn stop(&mut self) {
        if self.exit.is_none() {
            self.exit = stop_child(&mut self.child, &self.role, STOP_TIMEOUT);
        }
    }

    /// Everything known about the daemon: command, status, output, configs, logs.
    pub(crate) fn report(&self) -> String {
        let mut r = String::new();
        let _ = writeln!(r, "===== {} =====", self.role);
        let _ = writeln!(r, "command: {}", self.cmdline);
        let exit = self
            .exit
            .map_or("still running".to_string(), |s| s.to_string());
        let _ = writeln!(r, "pid: {}, {exit}", self.child.id());
        let stdout = self.stdout.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(r, "--- stdout ---\n{}", stdout.join("\n"));
        let _ = writeln!(
            r,
            "--- stderr ({}) ---\n{}",
            self.stderr_path.display(),
            tail_file(&self.stderr_path)
        );
        for conf in &self.conf_files {
            let _ = writeln!(r, "--- {} ---\n{}", conf.display(), tail_file(conf));
        }
        for dir in &self.log_dirs {
            tail_dir(&mut r, dir);
        }
        r
    }
}

/// Stop `child` (named `name` in messages): its status if it has exited, else
/// SIGTERM, and SIGKILL if it has not exited within `timeout`.
pub(crate) fn stop_child(child: &mut Child, name: &str, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    eprintln!("{name}: did not exit within {timeout:?} of SIGTERM; killed");
    child.wait().ok()
}

/// Append to `r` the tail of every file in log directory `dir`.
pub(crate) fn tail_dir(r: &mut String, dir: &Path) {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            let _ = writeln!(r, "--- {}: {e} ---", dir.display());
            return;
        }
    };
    files.sort();
    for file in files.iter().filter(|f| f.is_file()) {
        let _ = writeln!(r, "--- {} ---\n{}", file.display(), tail_file(file));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

/// The last `LOG_TAIL_LINES` lines of a text file (or why it could not be read).
pub(crate) fn tail_file(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
            let head = if skip > 0 {
                format!("[{skip} earlier lines]\n")
            } else {
                String::new()
            };
            head + &lines[skip..].join("\n")
        }
        Err(e) => format!("({e})"),
    }
}
