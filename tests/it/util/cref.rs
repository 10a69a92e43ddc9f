//! Mixed clusters with upstream C FastDFS 6.16.1 (the prebuilt daemons and tools of
//! `../shared/ref`, or `$FDFS_REF_DIR`): a tracker and storages of either kind, each on its own
//! loopback address of a per-test `127.0.N.0/24` and on ports the kernel handed out, all
//! written from upstream's own sample configs (so an fdfs daemon reads exactly what a C one
//! reads, and the two can take turns on the same config and directories).
//!
//! A C storage refuses a tracker at exactly 127.0.0.1 and storages of one group share a port,
//! hence the per-test network: tracker at .1, storages at .2, .3, ... When the reference build
//! is missing, [`ref_dir_or_skip`] says so on stderr and the test returns.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{
    CLI_TIMEOUT, FDFS, POLL_INTERVAL, Run, record, report_failure, run_program, stop_child,
    tail_dir, tail_file,
};

/// How long a daemon of either kind gets to accept connections after its start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a daemon gets to exit after SIGTERM before SIGKILL (a C storage flushes its
/// binlog and mark files on the way out).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The upstream build to test against, if present: `$FDFS_REF_DIR`, else `../shared/ref`
/// beside the repository.
pub fn ref_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FDFS_REF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ref"));
    dir.join("bin/fdfs_trackerd").is_file().then_some(dir)
}

/// The reference dir, or `None` after printing loudly why `test` is skipped.
pub fn ref_dir_or_skip(test: &str) -> Option<PathBuf> {
    let dir = ref_dir();
    if dir.is_none() {
        eprintln!(
            "SKIPPED {test}: upstream C FastDFS not found ($FDFS_REF_DIR, or ../shared/ref \
             beside the repository, must hold bin/fdfs_trackerd); this interop test did not run"
        );
    }
    dir
}

/// Which implementation a daemon is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Upstream's `fdfs_trackerd` / `fdfs_storaged`.
    C,
    /// This repository's `fdfs tracker` / `fdfs storage`.
    Fdfs,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::C => "c",
            Kind::Fdfs => "fdfs",
        }
    }
}

/// Per-test third octet of `127.0.N.0/24`, so parallel tests never share an address.
fn next_net() -> u8 {
    static NEXT: AtomicU8 = AtomicU8::new(100);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    assert!(n < 250, "too many mixed clusters in one test run");
    n
}

/// A port no socket holds right now (bound on every address, then released).
fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// One daemon process of either kind; stopped on drop, reported when the test fails.
struct Proc {
    name: String,
    cmdline: String,
    child: Child,
    stderr: PathBuf,
    logs: PathBuf,
    conf: PathBuf,
    exit: Option<std::process::ExitStatus>,
}

impl Proc {
    fn stop(&mut self) -> bool {
        if self.exit.is_none() {
            self.exit = stop_child(&mut self.child, &self.name, STOP_TIMEOUT);
        }
        self.exit.is_some_and(|s| s.success())
    }

    fn running(&mut self) -> bool {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().unwrap_or(None);
        }
        self.exit.is_none()
    }

    fn report(&self) -> String {
        let mut r = String::new();
        let _ = writeln!(r, "===== {} =====\ncommand: {}", self.name, self.cmdline);
        let exit = self.exit.map_or("still running".into(), |s| s.to_string());
        let _ = writeln!(r, "pid {}: {exit}", self.child.id());
        let _ = writeln!(r, "--- stderr ---\n{}", tail_file(&self.stderr));
        let _ = writeln!(
            r,
            "--- {} ---\n{}",
            self.conf.display(),
            tail_file(&self.conf)
        );
        tail_dir(&mut r, &self.logs);
        r
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

/// A storage of the mixed group: where it lives and what runs there now.
struct Storage {
    kind: Kind,
    ip: String,
    base: PathBuf,
    conf: PathBuf,
    proc: Option<Proc>,
    /// Earlier runs, kept for the failure report.
    retired: Vec<Proc>,
}

/// A tracker of the cluster: its config, and what runs there now.
struct Tracker {
    conf: PathBuf,
    base: PathBuf,
    proc: Option<Proc>,
    /// Earlier runs, kept for the failure report.
    retired: Vec<Proc>,
}

/// One or two trackers and the storages of `group1`, of any mix of kinds.
pub struct Mixed {
    refdir: PathBuf,
    root: PathBuf,
    dir: Option<tempfile::TempDir>,
    net: u8,
    tracker_port: u16,
    storage_port: u16,
    trackers: Vec<Tracker>,
    storages: Vec<Storage>,
    /// client.conf for upstream's tools, pointing at the tracker.
    client_conf: PathBuf,
    history: Mutex<Vec<String>>,
}

/// Global-part lines of upstream's sample `name`, with `set` replacing (or adding) keys.
/// Overrides go first, before any `[section]`: a key appended at the end would land in the
/// last section, where the C daemons do not look for it.
fn conf_from_sample(refdir: &Path, name: &str, set: &[(&str, String)]) -> String {
    let sample = fs::read_to_string(refdir.join("etc").join(name))
        .unwrap_or_else(|e| panic!("read {}/etc/{name}: {e}", refdir.display()));
    let mut out = String::from("# written by tests/it/util/cref.rs from upstream's sample\n");
    for (k, v) in set {
        let _ = writeln!(out, "{k} = {v}");
    }
    let mut global = true;
    for line in sample.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            global = false;
        }
        let key = t.split('=').next().unwrap_or("").trim();
        if global && !t.starts_with('#') && set.iter().any(|(k, _)| *k == key) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl Mixed {
    /// A tracker of `kind` on `127.0.N.1`, started and accepting connections.
    pub fn new(refdir: &Path, kind: Kind) -> Mixed {
        Mixed::with_trackers(refdir, &[kind])
    }

    /// Trackers of these kinds on `127.0.N.1`, `127.0.N.201`, ..., all started (every storage
    /// lists all of them).
    pub fn with_trackers(refdir: &Path, kinds: &[Kind]) -> Mixed {
        let dir = tempfile::Builder::new()
            .prefix("fdfs-mixed-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().to_path_buf();
        for d in ["work", "conf"] {
            fs::create_dir_all(root.join(d)).expect("mkdir in temp dir");
        }
        let net = next_net();
        let mut m = Mixed {
            refdir: refdir.to_path_buf(),
            client_conf: root.join("conf/client.conf"),
            root,
            dir: Some(dir),
            net,
            tracker_port: free_port(),
            storage_port: free_port(),
            trackers: Vec::new(),
            storages: Vec::new(),
            history: Mutex::new(Vec::new()),
        };
        for t in 0..kinds.len() {
            let base = m.root.join(format!("tracker{t}"));
            fs::create_dir_all(&base).expect("mkdir tracker base");
            let conf = m.root.join(format!("conf/tracker{t}.conf"));
            let text = conf_from_sample(
                refdir,
                "tracker.conf",
                &[
                    ("bind_addr", m.tracker_ip(t)),
                    ("port", m.tracker_port.to_string()),
                    ("base_path", base.display().to_string()),
                    ("reserved_storage_space", "1%".into()),
                    ("check_active_interval", "10".into()),
                    ("store_lookup", "0".into()),
                    ("work_threads", "2".into()),
                ],
            );
            fs::write(&conf, text).expect("write tracker.conf");
            m.trackers.push(Tracker {
                conf,
                base,
                proc: None,
                retired: Vec::new(),
            });
        }
        let client = format!(
            "connect_timeout = 5\nnetwork_timeout = 30\nbase_path = {}\n\
             tracker_server = {}\nlog_level = info\nuse_connection_pool = false\n",
            m.root.join("work").display(),
            m.tracker_addr()
        );
        fs::write(&m.client_conf, client).expect("write client.conf");
        for (t, &kind) in kinds.iter().enumerate() {
            m.start_tracker_n(t, kind);
        }
        m
    }

    fn tracker_ip(&self, t: usize) -> String {
        format!("127.0.{}.{}", self.net, if t == 0 { 1 } else { 200 + t })
    }

    /// "ip:port" of the first tracker.
    pub fn tracker_addr(&self) -> String {
        self.tracker_addr_n(0)
    }

    /// "ip:port" of tracker `t`.
    pub fn tracker_addr_n(&self, t: usize) -> String {
        format!("{}:{}", self.tracker_ip(t), self.tracker_port)
    }

    /// The client.conf that upstream's tools take first.
    pub fn client_conf(&self) -> &Path {
        &self.client_conf
    }

    /// Scratch directory; programs run here.
    pub fn work_dir(&self) -> PathBuf {
        self.root.join("work")
    }

    /// Path of an upstream binary.
    pub fn c_bin(&self, name: &str) -> PathBuf {
        self.refdir.join("bin").join(name)
    }

    fn spawn(&self, name: &str, kind: Kind, role: &str, conf: &Path, logs: PathBuf) -> Proc {
        let stderr = self.root.join(format!("{name}.stderr"));
        let (program, args): (PathBuf, Vec<String>) = match kind {
            Kind::C => (
                self.c_bin(if role == "tracker" {
                    "fdfs_trackerd"
                } else {
                    "fdfs_storaged"
                }),
                vec!["-N".into(), conf.display().to_string()],
            ),
            Kind::Fdfs => (
                PathBuf::from(FDFS),
                vec![role.into(), "-c".into(), conf.display().to_string()],
            ),
        };
        let cmdline = format!("{} {}", program.display(), args.join(" "));
        let child = Command::new(&program)
            .args(&args)
            .current_dir(self.work_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("create stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmdline}: {e}"));
        Proc {
            name: name.into(),
            cmdline,
            child,
            stderr,
            logs,
            conf: conf.to_path_buf(),
            exit: None,
        }
    }

    /// Waits until `addr` accepts connections, or panics if `p` exits or time runs out.
    fn wait_listening(p: &mut Proc, addr: &str) {
        let sa: SocketAddr = addr.parse().expect("ip:port");
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_err() {
            assert!(p.running(), "{} exited during start-up", p.name);
            assert!(
                Instant::now() < deadline,
                "{} not listening on {addr} within {START_TIMEOUT:?}",
                p.name
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts the first tracker (again) as `kind`, on the same config and base_path.
    pub fn start_tracker(&mut self, kind: Kind) {
        self.start_tracker_n(0, kind);
    }

    /// Starts tracker `t` (again) as `kind`, on the same config and base_path.
    pub fn start_tracker_n(&mut self, t: usize, kind: Kind) {
        assert!(
            self.trackers[t].proc.is_none(),
            "tracker {t} already running"
        );
        let name = format!("{}-tracker{t}", kind.name());
        let (conf, logs) = (
            self.trackers[t].conf.clone(),
            self.trackers[t].base.join("logs"),
        );
        let mut p = self.spawn(&name, kind, "tracker", &conf, logs);
        Self::wait_listening(&mut p, &self.tracker_addr_n(t));
        self.trackers[t].proc = Some(p);
    }

    /// Stops the first tracker with SIGTERM; whether it exited cleanly.
    pub fn stop_tracker(&mut self) -> bool {
        let tr = &mut self.trackers[0];
        let mut p = tr.proc.take().expect("tracker running");
        let ok = p.stop();
        tr.retired.push(p);
        ok
    }

    /// Adds storage `i` of `kind` (at `127.0.N.(i+2)`) and starts it.
    pub fn add_storage(&mut self, kind: Kind) -> usize {
        self.add_storage_with(kind, &[])
    }

    /// [`Mixed::add_storage`] with more storage.conf settings.
    pub fn add_storage_with(&mut self, kind: Kind, extra: &[(&'static str, &str)]) -> usize {
        let i = self.storages.len();
        let ip = format!("127.0.{}.{}", self.net, i + 2);
        let base = self.root.join(format!("storage{i}"));
        fs::create_dir_all(&base).expect("mkdir storage base");
        let conf = self.root.join(format!("conf/storage{i}.conf"));
        let mut set = vec![
            ("group_name", "group1".to_string()),
            ("bind_addr", ip.clone()),
            ("port", self.storage_port.to_string()),
            ("base_path", base.display().to_string()),
            ("store_path_count", "1".into()),
            ("store_path0", base.display().to_string()),
            ("subdir_count_per_path", "16".into()),
            ("heart_beat_interval", "1".into()),
            ("stat_report_interval", "1".into()),
            ("sync_binlog_buff_interval", "1".into()),
            ("work_threads", "2".into()),
            ("disk_recovery_threads", "1".into()),
        ];
        set.extend((0..self.trackers.len()).map(|t| ("tracker_server", self.tracker_addr_n(t))));
        set.extend(extra.iter().map(|&(k, v)| (k, v.to_string())));
        let text = conf_from_sample(&self.refdir, "storage.conf", &set);
        fs::write(&conf, text).expect("write storage.conf");
        self.storages.push(Storage {
            kind,
            ip,
            base,
            conf,
            proc: None,
            retired: Vec::new(),
        });
        self.start_storage(i, kind);
        i
    }

    /// Starts storage `i` (again) as `kind`, on its config and directories.
    pub fn start_storage(&mut self, i: usize, kind: Kind) {
        let s = &self.storages[i];
        assert!(s.proc.is_none(), "storage {i} already running");
        let name = format!("{}-storage{i}", kind.name());
        let (conf, logs, addr) = (s.conf.clone(), s.base.join("logs"), self.storage_addr(i));
        let mut p = self.spawn(&name, kind, "storage", &conf, logs);
        Self::wait_listening(&mut p, &addr);
        let s = &mut self.storages[i];
        s.kind = kind;
        s.proc = Some(p);
    }

    /// Stops storage `i` with SIGTERM; whether it exited cleanly.
    pub fn stop_storage(&mut self, i: usize) -> bool {
        let s = &mut self.storages[i];
        let mut p = s.proc.take().expect("storage running");
        let ok = p.stop();
        s.retired.push(p);
        ok
    }

    /// "ip:port" of storage `i`.
    pub fn storage_addr(&self, i: usize) -> String {
        format!("{}:{}", self.storages[i].ip, self.storage_port)
    }

    /// Number of storages added (running or stopped).
    pub fn storage_count(&self) -> usize {
        self.storages.len()
    }

    /// Base path (and store path 0) of storage `i`.
    pub fn storage_base(&self, i: usize) -> &Path {
        &self.storages[i].base
    }

    /// IP of storage `i`.
    pub fn storage_ip(&self, i: usize) -> &str {
        &self.storages[i].ip
    }

    /// Which implementation runs storage `i` now.
    pub fn storage_kind(&self, i: usize) -> Kind {
        self.storages[i].kind
    }

    /// Panics with the reports if a daemon that should run has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        for t in &mut self.trackers {
            if let Some(p) = &mut t.proc {
                assert!(p.running(), "{} exited", p.name);
            }
        }
        for s in &mut self.storages {
            if let Some(p) = &mut s.proc {
                assert!(p.running(), "{} exited", p.name);
            }
        }
    }

    /// Runs any program in the work dir, recorded for the failure report.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, program: &Path, args: &[S]) -> Run {
        let run = run_program(program, args, None, &self.work_dir(), CLI_TIMEOUT);
        record(&self.history, &run);
        run
    }

    /// Runs upstream tool `name` with the client.conf first.
    pub fn c_tool(&self, name: &str, args: &[&str]) -> Run {
        let conf = self.client_conf.display().to_string();
        let mut full = vec![conf.as_str()];
        full.extend_from_slice(args);
        self.run(&self.c_bin(name), &full)
    }

    /// Runs `fdfs ARGS --tracker <tracker>`.
    pub fn fdfs(&self, args: &[&str]) -> Run {
        let t = self.tracker_addr();
        let mut full = args.to_vec();
        full.extend(["--tracker", &t]);
        self.run(Path::new(FDFS), &full)
    }

    /// Runs `fdfs ARGS --tracker <tracker> --storage <storage i>`.
    pub fn fdfs_on(&self, i: usize, args: &[&str]) -> Run {
        let s = self.storage_addr(i);
        let mut full = args.to_vec();
        full.extend(["--storage", &s]);
        self.fdfs(&full)
    }

    /// Writes `data` to `work/<name>`.
    pub fn write_file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.work_dir().join(name);
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for Mixed {
    fn drop(&mut self) {
        // Storages first, so none logs a lost tracker while the tracker stops.
        for s in self.storages.iter_mut().rev() {
            if let Some(p) = &mut s.proc {
                p.stop();
            }
        }
        for t in &mut self.trackers {
            if let Some(p) = &mut t.proc {
                p.stop();
            }
        }
        report_failure(&self.history, &mut self.dir);
    }
}
