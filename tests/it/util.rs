//! Test harness shared by every integration test: starts real `fdfs` daemons on loopback
//! addresses in a private temp dir, runs the `fdfs` CLI (or any other program) with a deadline,
//! and speaks the raw FastDFS wire protocol for hostile tests.
//!
//! It depends only on the built binary (`CARGO_BIN_EXE_fdfs`) and on std plus a few crates,
//! never on the crate's internals, so it checks what a user (or a foreign client) sees.
//! When a test panics, the guards print every daemon's command line, exit status, stdout,
//! stderr and log files, plus the commands the test ran, and keep the temp dir.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sha1::{Digest, Sha1};

mod cref;
mod daemon;
mod group;
mod leader;
mod multi;
mod run;
mod wire;
pub use cref::*;
pub use daemon::*;
pub use group::*;
pub use leader::*;
pub use multi::*;
pub use run::*;
pub use wire::*;

/// The binary under test.
pub const FDFS: &str = env!("CARGO_BIN_EXE_fdfs");

/// How long a daemon may take to print `listening on` and a storage to become usable.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one CLI invocation may take before it is killed and the test fails.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon gets to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between two readiness probes (a poll interval, not a fixed wait).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Lines shown from the end of each log file in a failure report.
const LOG_TAIL_LINES: usize = 150;

/// Loopback address of the tracker.
pub const TRACKER_IP: &str = "127.0.0.1";
/// Group every test storage joins.
pub const GROUP: &str = "group1";

// ---------------------------------------------------------------------------------------------
// Content and comparison helpers

/// Deterministic pseudo-random bytes (xorshift64*), seeded from `seed` (use the test's name),
/// so every test uploads different content and a failure is reproducible.
pub fn random_bytes(seed: &str, len: usize) -> Vec<u8> {
    // FNV-1a of the seed; `| 1` because xorshift must not start at 0.
    let mut state = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lower-case hex SHA-1 of `data`.
pub fn sha1_hex(data: &[u8]) -> String {
    Sha1::digest(data)
        .iter()
        .fold(String::with_capacity(40), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Asserts two byte strings are equal, reporting lengths and SHA-1s instead of the bytes.
#[track_caller]
pub fn assert_same_bytes(what: &str, expected: &[u8], actual: &[u8]) {
    if expected != actual {
        let first_diff = expected.iter().zip(actual).position(|(a, b)| a != b);
        panic!(
            "{what}: content differs: expected {} bytes sha1 {}, got {} bytes sha1 {} \
             (first differing offset: {first_diff:?})",
            expected.len(),
            sha1_hex(expected),
            actual.len(),
            sha1_hex(actual),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Clusters

/// Options for a test cluster: one tracker on 127.0.0.1 and `storages` storages of group1
/// on 127.0.0.2, 127.0.0.3, ..., all on ports chosen by the kernel.
pub struct ClusterBuilder {
    storages: usize,
    store_paths: usize,
    tracker_extra: Vec<(&'static str, String)>,
    storage_extra: Vec<(&'static str, String)>,
}

impl ClusterBuilder {
    /// Number of storage servers (default 1), started one after the other so storage `i`
    /// joins when storages `0..i` are ACTIVE.
    pub fn storages(mut self, n: usize) -> Self {
        self.storages = n;
        self
    }

    /// Number of store paths per storage (default 1).
    pub fn store_paths(mut self, n: usize) -> Self {
        self.store_paths = n;
        self
    }

    /// An extra tracker.conf line (written last, so it overrides the harness's value).
    pub fn tracker_conf(mut self, key: &'static str, value: &str) -> Self {
        self.tracker_extra.push((key, value.to_string()));
        self
    }

    /// An extra line for every storage.conf (written last).
    pub fn storage_conf(mut self, key: &'static str, value: &str) -> Self {
        self.storage_extra.push((key, value.to_string()));
        self
    }

    /// Writes the configs, starts the daemons and waits until the tracker hands out the
    /// storages for uploads.
    pub fn start(self) -> Cluster {
        let mut cluster = Cluster::empty(self.store_paths, self.storage_extra);
        let root = cluster.root.clone();
        let work = root.join("work");
        let conf_dir = root.join("conf");
        let tracker_base = root.join("tracker");
        for d in [&conf_dir, &tracker_base] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }

        let tracker_conf = conf_dir.join("tracker.conf");
        let mut tracker_entries = vec![
            ("bind_addr", TRACKER_IP.to_string()),
            ("port", "0".to_string()),
            ("base_path", path_str(&tracker_base)),
            ("check_active_interval", "5".to_string()),
            // The tests must not depend on how full the machine's disk is.
            ("reserved_storage_space", "1%".to_string()),
        ];
        tracker_entries.extend(self.tracker_extra.iter().cloned());
        write_conf(&tracker_conf, &tracker_entries);
        let tracker = start_tracker(&tracker_conf, &work);
        cluster.daemons.push(tracker);
        cluster.tracker_conf = Some(tracker_conf);

        for _ in 0..self.storages {
            cluster.add_storage();
            // One at a time, so the join order (and thus each storage's sync source) is fixed.
            cluster.wait_ready();
        }
        cluster
    }
}

/// Starts `fdfs storage -c CONF` (named `role` in reports) in `work` and waits for its
/// `listening on` line; `logs` is shown in a failure report.
pub fn start_storage_conf(role: &str, conf: &Path, work: &Path, logs: PathBuf) -> Daemon {
    Daemon::start(
        role,
        &["storage", "-c", &path_str(conf)],
        work,
        1,
        vec![conf.to_path_buf()],
        vec![logs],
    )
}

/// Starts a tracker with the config at `conf` (base_path inside it).
fn start_tracker(conf: &Path, work: &Path) -> Daemon {
    let base = conf
        .parent()
        .and_then(Path::parent)
        .expect("conf lives in <root>/conf")
        .join("tracker");
    Daemon::start(
        "tracker",
        &["tracker", "-c", &path_str(conf)],
        work,
        1,
        vec![conf.to_path_buf()],
        vec![base.join("logs")],
    )
}

/// Mode 0755 on a directory, so that any user can enter it.
pub fn open_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
}

pub fn path_str(p: &Path) -> String {
    p.to_str().expect("temp dir paths are UTF-8").to_string()
}

pub fn write_conf(path: &Path, entries: &[(&str, String)]) {
    let mut text = String::from("# written by tests/it/util.rs\n");
    for (k, v) in entries {
        let _ = writeln!(text, "{k}={v}");
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A running set of daemons in a private temp dir. Dropping it stops them; if the test is
/// panicking it prints their reports and the commands run, and keeps the temp dir.
pub struct Cluster {
    /// Tracker first (or the combined server), then storages in order.
    daemons: Vec<Daemon>,
    /// Store paths of each storage.
    store_paths: Vec<Vec<PathBuf>>,
    storage_ips: Vec<String>,
    /// One line per program run through this cluster, for failure reports.
    history: Mutex<Vec<String>>,
    root: PathBuf,
    dir: Option<tempfile::TempDir>,
    /// The tracker's config (None for the combined server).
    tracker_conf: Option<PathBuf>,
    /// Config file of each storage (empty for the combined server).
    storage_confs: Vec<PathBuf>,
    /// Store paths per storage, and the extra storage.conf lines, for storages added later.
    store_path_count: usize,
    storage_extra: Vec<(&'static str, String)>,
    /// Earlier runs of restarted storages, kept for the failure report.
    retired: Vec<Daemon>,
}

impl Cluster {
    /// Options for a cluster; `Cluster::builder().start()` gives one tracker and one storage.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            storages: 1,
            store_paths: 1,
            tracker_extra: Vec::new(),
            storage_extra: Vec::new(),
        }
    }

    /// One tracker and one storage with one store path.
    pub fn start() -> Cluster {
        Cluster::builder().start()
    }

    /// A cluster with nothing started yet, in a new temp dir with its `work/` dir.
    fn empty(store_path_count: usize, storage_extra: Vec<(&'static str, String)>) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("fdfs-it-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().to_path_buf();
        // Readable by all (tempfile makes it 0700), so that a daemon that switches to
        // run_by_user can still reach its directories inside.
        open_to_all(&root);
        let work = root.join("work");
        fs::create_dir_all(&work).unwrap_or_else(|e| panic!("mkdir {}: {e}", work.display()));
        Cluster {
            daemons: Vec::new(),
            store_paths: Vec::new(),
            storage_ips: Vec::new(),
            history: Mutex::new(Vec::new()),
            root,
            dir: Some(dir),
            tracker_conf: None,
            storage_confs: Vec::new(),
            store_path_count,
            storage_extra,
            retired: Vec::new(),
        }
    }

    /// `fdfs server --dir <tmp>/server ...`: tracker and storage in one process. The tracker
    /// address is the first `listening on` line, the storage the second.
    pub fn start_combined() -> Cluster {
        let mut cluster = Cluster::empty(1, Vec::new());
        let work = cluster.root.join("work");
        let server_dir = cluster.root.join("server");
        // The server lays out its own tree under --dir; show every logs/ directory in it.
        let log_dirs = ["logs", "tracker/logs", "storage/logs"]
            .map(|d| server_dir.join(d))
            .to_vec();
        let server = Daemon::start(
            "server",
            &[
                "server",
                "--dir",
                &path_str(&server_dir),
                // Free ports (tests run in parallel), and a small tree: 256x256 directories
                // take seconds to create.
                "--tracker-port",
                "0",
                "--storage-port",
                "0",
                "--subdirs",
                "16",
            ],
            &work,
            2,
            Vec::new(),
            log_dirs,
        );
        cluster.storage_ips.push(server.addrs[1].ip().to_string());
        cluster.daemons.push(server);
        cluster.wait_ready();
        cluster
    }

    /// The tracker's config file (not for the combined server).
    pub fn tracker_conf(&self) -> &Path {
        self.tracker_conf
            .as_deref()
            .expect("a cluster with a separate tracker")
    }

    /// Storage `i`'s config file (not for the combined server).
    pub fn storage_conf(&self, i: usize) -> &Path {
        &self.storage_confs[i]
    }

    /// Address of the tracker.
    pub fn tracker_addr(&self) -> SocketAddr {
        self.daemons[0].addr()
    }

    /// Address of storage `i` (0-based).
    pub fn storage_addr(&self, i: usize) -> SocketAddr {
        match self.daemons.get(i + 1) {
            Some(d) => d.addr(),
            // The combined server: its second line is the storage.
            None => self.daemons[0].addrs[1],
        }
    }

    /// IP storage `i` binds (and reports as source IP of the files it creates).
    pub fn storage_ip(&self, i: usize) -> &str {
        &self.storage_ips[i]
    }

    /// Store path `p` of storage `i`.
    pub fn store_path(&self, i: usize, p: usize) -> &Path {
        &self.store_paths[i][p]
    }

    /// The cluster's temp dir (daemon dirs, configs, `work/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Scratch directory for test files; also the working directory of programs run.
    pub fn work_dir(&self) -> PathBuf {
        self.root.join("work")
    }

    /// Panics (with reports) if any daemon died.
    #[track_caller]
    pub fn assert_running(&mut self) {
        for d in &mut self.daemons {
            d.assert_running();
        }
    }

    /// Sends `sig` to daemon `i` (0 = tracker, 1.. = storages).
    pub fn pid(&self, i: usize) -> u32 {
        self.daemons[i].child.id()
    }

    /// Sends `sig` to daemon `i` (0 = tracker, 1.. = storages).
    pub fn signal(&self, i: usize, sig: Signal) {
        let pid = Pid::from_raw(self.daemons[i].child.id() as i32);
        kill(pid, sig).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
    }

    /// Stops daemon `i` with SIGTERM (SIGKILL after a deadline); returns whether it
    /// exited by itself with status 0.
    pub fn stop_daemon(&mut self, i: usize) -> bool {
        self.daemons[i].stop();
        self.daemons[i].exit.is_some_and(|s| s.success())
    }

    /// Stops the tracker and starts it again with the same config and data (on a new port).
    pub fn restart_tracker(&mut self) {
        let conf = self
            .tracker_conf
            .clone()
            .expect("restart needs a separate tracker");
        assert!(self.stop_daemon(0), "tracker must exit cleanly on SIGTERM");
        self.daemons[0] = start_tracker(&conf, &self.work_dir());
    }

    /// Polls the tracker until it hands out storages for upload and every storage started so
    /// far is among them (QUERY_STORE_WITHOUT_GROUP_ONE for one storage, _ALL for several):
    /// only ACTIVE storages are offered.
    pub fn wait_ready(&mut self) {
        let tracker = self.tracker_addr();
        let wanted: Vec<SocketAddr> = (0..self.storage_ips.len())
            .map(|i| self.storage_addr(i))
            .collect();
        let cmd = if wanted.len() == 1 {
            CMD_QUERY_STORE_ONE
        } else {
            CMD_QUERY_STORE_ALL
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last;
        loop {
            match query_store(tracker, cmd) {
                Ok(Ok(offered)) if wanted.iter().all(|w| offered.contains(w)) => return,
                Ok(Ok(offered)) => {
                    last = format!("tracker offers {offered:?}, storages listen on {wanted:?}");
                }
                Ok(Err(status)) => last = format!("tracker answered status {status}"),
                Err(e) => last = format!("tracker query failed: {e}"),
            }
            self.assert_running();
            if Instant::now() > deadline {
                panic!("cluster not ready within {START_TIMEOUT:?}: {last}");
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Runs `fdfs ARGS --tracker <tracker>` and records it in the history.
    pub fn fdfs(&self, args: &[&str]) -> Run {
        self.fdfs_stdin(args, None)
    }

    /// Like [`Cluster::fdfs`], with `stdin` fed to the program.
    pub fn fdfs_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let tracker = self.tracker_addr().to_string();
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--tracker", &tracker]);
        self.run(Path::new(FDFS), &full, stdin, CLI_TIMEOUT)
    }

    /// `fdfs ARGS --tracker <tracker>` ready to spawn in the work dir with stdio of the
    /// test's choice (for tests that watch or signal the program while it runs); recorded in
    /// the history as spawned.
    pub fn fdfs_command(&self, args: &[&str]) -> Command {
        let tracker = self.tracker_addr().to_string();
        let mut cmd = Command::new(FDFS);
        cmd.args(args)
            .args(["--tracker", &tracker])
            .current_dir(self.work_dir());
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!(
                "{FDFS} {} --tracker {tracker} (spawned)",
                args.join(" ")
            ));
        cmd
    }

    /// Runs any program in the work dir and records it in the history.
    pub fn run<S: AsRef<OsStr>>(
        &self,
        program: &Path,
        args: &[S],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Run {
        let run = run_program(program, args, stdin, &self.work_dir(), timeout);
        record(&self.history, &run);
        run
    }

    /// Writes `data` to `work/<name>` and returns the path.
    pub fn write_file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.work_dir().join(name);
        fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Uploads `data` with `fdfs upload FILE EXTRA...` and returns the printed file ID.
    #[track_caller]
    pub fn upload(&self, data: &[u8], extra: &[&str]) -> String {
        let path = self.write_file(&format!("upload-{}", sha1_hex(data)), data);
        let mut args = vec!["upload", path.to_str().expect("UTF-8 temp path")];
        args.extend_from_slice(extra);
        let run = self.fdfs(&args).success();
        let id = run.stdout_str();
        assert!(
            id.starts_with(&format!("{GROUP}/M")) && !id.contains(char::is_whitespace),
            "upload must print the file ID alone\n{}",
            run.describe()
        );
        id
    }

    /// Downloads a whole file with `fdfs download ID -`.
    #[track_caller]
    pub fn download(&self, id: &str) -> Vec<u8> {
        self.fdfs(&["download", id, "-"]).success().stdout
    }

    /// Uploads fresh random content and reads it back: the servers still work.
    #[track_caller]
    pub fn assert_serves(&mut self, seed: &str) {
        self.assert_running();
        let data = random_bytes(seed, 70_001);
        let id = self.upload(&data, &[]);
        assert_same_bytes(
            &format!("download of {id} ({seed})"),
            &data,
            &self.download(&id),
        );
    }
}

/// When the test is failing: print the commands it ran and keep its temp dir
/// (the daemons' own Drop prints their reports).
/// Add `run` to a test's history (printed if the test fails).
pub fn record(history: &Mutex<Vec<String>>, run: &Run) {
    let status = run
        .status
        .map_or("killed at deadline".to_string(), |s| s.to_string());
    history
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(format!("{} -> {status}", run.cmdline));
}

pub fn report_failure(history: &Mutex<Vec<String>>, dir: &mut Option<tempfile::TempDir>) {
    if !thread::panicking() {
        return;
    }
    let history = history.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "===== commands run by the test =====\n{}",
        history.join("\n")
    );
    if let Some(dir) = dir.take() {
        eprintln!("===== temp dir kept: {} =====", dir.keep().display());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Storages first, so none of them logs a lost tracker while we stop it.
        for d in self.daemons.iter_mut().rev() {
            d.stop();
        }
        report_failure(&self.history, &mut self.dir);
        // The daemons' own Drop prints their reports (after this, in field order).
    }
}

/// Sends a QUERY_STORE (101/106) and returns the offered storage addresses, or the status.
fn query_store(tracker: SocketAddr, cmd: u8) -> io::Result<Result<Vec<SocketAddr>, u8>> {
    let mut raw = Raw::try_connect(tracker)?;
    raw.send(cmd, 0, &[])?;
    let reply = raw.recv()?;
    if reply.status != 0 {
        return Ok(Err(reply.status));
    }
    // group(16) + n * (ip(15 or 45) + port(8)) + store_path_index(1); accept both IP widths.
    let body = &reply.body;
    let records = body.get(16..body.len().saturating_sub(1)).unwrap_or(&[]);
    let width = if records.len() % 23 == 0 { 23 } else { 53 };
    let mut addrs = Vec::new();
    for rec in records.chunks(width) {
        if rec.len() != width {
            return Err(io::Error::other(format!(
                "bad QUERY_STORE reply of {} bytes",
                body.len()
            )));
        }
        let ip = fixed_str(&rec[..width - 8]);
        let port = u64::from_be_bytes(rec[width - 8..].try_into().expect("8-byte slice"));
        let addr = format!("{ip}:{port}")
            .parse()
            .map_err(|e| io::Error::other(format!("{ip}:{port}: {e}")))?;
        addrs.push(addr);
    }
    Ok(Ok(addrs))
}

/// Parses `key=value` lines (the output of `fdfs meta get`).
pub fn parse_meta(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("meta line without '=': {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// A `BTreeMap` from literal pairs, for comparing metadata.
pub fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
