//! Clusters with several trackers and storages of several groups, for the tracker-cluster tests:
//! N trackers on 127.0.0.1 (kernel-chosen ports, all listed in every storage.conf and passed as
//! repeated `--tracker` to the CLI), storages of any group on 127.0.0.2, .3, ..., optional
//! storage ids (storage_ids.conf), stopping a tracker and starting it again on the SAME port with
//! its data, moving a storage to another bind address, and polling `fdfs monitor --json` and
//! GET_LEADER until the cluster looks as the test expects.
//!
//! Like the rest of the harness it only runs the binary and speaks the wire; it never uses the
//! crate's internals.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use super::{
    CLI_TIMEOUT, Daemon, ENOENT, FDFS, POLL_INTERVAL, Run, TRACKER_IP, get_leader, path_str,
    run_program, sha1_hex, write_conf,
};

/// Deadline for the cluster to look as expected after a step (heartbeats are 1 s apart).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// How one storage is configured: its group, store path count and optional `server_id`.
#[derive(Clone, Debug)]
pub struct StorageSpec {
    group: String,
    store_paths: usize,
    server_id: Option<String>,
}

impl StorageSpec {
    /// A storage of `group` with one store path.
    pub fn new(group: &str) -> StorageSpec {
        StorageSpec {
            group: group.to_string(),
            store_paths: 1,
            server_id: None,
        }
    }

    /// Number of store paths (all on the same disk, so free_mb grows with the count).
    pub fn store_paths(mut self, n: usize) -> StorageSpec {
        self.store_paths = n;
        self
    }

    /// `server_id=<id>` in storage.conf; with [`MultiBuilder::storage_ids`] it also gets a
    /// line in storage_ids.conf.
    pub fn server_id(mut self, id: &str) -> StorageSpec {
        self.server_id = Some(id.to_string());
        self
    }
}

/// Options for a [`Multi`] cluster.
pub struct MultiBuilder {
    trackers: usize,
    tracker_extra: Vec<(String, String)>,
    storages: Vec<StorageSpec>,
    storage_ids: bool,
}

impl MultiBuilder {
    /// Number of trackers (default 2).
    pub fn trackers(mut self, n: usize) -> MultiBuilder {
        self.trackers = n;
        self
    }

    /// An extra line for every tracker.conf (written last, so it overrides the harness's).
    pub fn tracker_conf(mut self, key: &str, value: &str) -> MultiBuilder {
        self.tracker_extra
            .push((key.to_string(), value.to_string()));
        self
    }

    /// One more storage started by [`MultiBuilder::start`] (in order, each ACTIVE on every
    /// tracker before the next starts). Storage `i` binds 127.0.0.(i+2).
    pub fn storage(mut self, spec: StorageSpec) -> MultiBuilder {
        self.storages.push(spec);
        self
    }

    /// `n` storages of `group` with default options.
    pub fn storages(mut self, group: &str, n: usize) -> MultiBuilder {
        self.storages
            .extend((0..n).map(|_| StorageSpec::new(group)));
        self
    }

    /// Storage ids: writes `conf/storage_ids.conf` with `<server_id> <group> <ip>` for every
    /// storage of the builder that has a server_id, and sets use_storage_id=true,
    /// id_type_in_filename=id, trust_storage_server_id=true in every tracker.conf.
    pub fn storage_ids(mut self) -> MultiBuilder {
        self.storage_ids = true;
        self
    }

    /// Writes the configs, starts the trackers, then the storages one by one, and waits until
    /// every tracker shows every storage ACTIVE with its disk usage and one tracker leads.
    pub fn start(self) -> Multi {
        let dir = tempfile::Builder::new()
            .prefix("fdfs-it-multi-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().to_path_buf();
        for d in ["work", "conf"] {
            let p = root.join(d);
            fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        }
        let mut tracker_extra = self.tracker_extra;
        if self.storage_ids {
            let path = root.join("conf/storage_ids.conf");
            let mut text = String::from("# written by tests/it/util/multi.rs\n");
            for (i, spec) in self.storages.iter().enumerate() {
                if let Some(id) = &spec.server_id {
                    let _ = writeln!(text, "{id} {} {}", spec.group, storage_ip_of(i));
                }
            }
            fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            // Before the test's own lines, so a test can still override them.
            let ids = [
                ("use_storage_id", "true".to_string()),
                ("storage_ids_filename", path_str(&path)),
                ("id_type_in_filename", "id".to_string()),
                ("trust_storage_server_id", "true".to_string()),
            ];
            tracker_extra.splice(0..0, ids.map(|(k, v)| (k.to_string(), v)));
        }
        let mut multi = Multi {
            storages: Vec::new(),
            trackers: Vec::new(),
            retired: Vec::new(),
            history: Mutex::new(Vec::new()),
            root,
            dir: Some(dir),
        };
        for t in 0..self.trackers {
            multi.create_tracker(t, &tracker_extra);
        }
        for spec in self.storages {
            multi.add_storage(spec);
            // One at a time: the join order (and so each storage's sync source) is fixed.
            multi.wait_state(SETTLE_TIMEOUT);
        }
        multi.wait_leader(SETTLE_TIMEOUT);
        multi
    }
}

/// Address storage `i` binds at first.
fn storage_ip_of(i: usize) -> String {
    format!("127.0.0.{}", i + 2)
}

/// One tracker: its config and data, its fixed address once started, and its process.
struct TrackerSlot {
    conf: PathBuf,
    base: PathBuf,
    entries: Vec<(String, String)>,
    addr: SocketAddr,
    /// None while stopped.
    daemon: Option<Daemon>,
    runs: usize,
}

/// One storage: its spec, current address, directories, config and process.
struct StorageSlot {
    spec: StorageSpec,
    ip: String,
    port: u16,
    paths: Vec<PathBuf>,
    conf: PathBuf,
    daemon: Option<Daemon>,
    runs: usize,
}

/// Running trackers and storages in a private temp dir. Dropping it stops them (storages
/// first); if the test is panicking it prints the commands run, every daemon's report, and
/// keeps the temp dir.
pub struct Multi {
    // Storages before trackers: fields drop in this order, so reports come storages first.
    storages: Vec<StorageSlot>,
    trackers: Vec<TrackerSlot>,
    /// Earlier runs of restarted daemons, for the failure report.
    retired: Vec<Daemon>,
    history: Mutex<Vec<String>>,
    root: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl Multi {
    /// Options: by default 2 trackers and no storage.
    pub fn builder() -> MultiBuilder {
        MultiBuilder {
            trackers: 2,
            tracker_extra: Vec::new(),
            storages: Vec::new(),
            storage_ids: false,
        }
    }

    /// Scratch directory for test files; also the working directory of programs run.
    pub fn work_dir(&self) -> PathBuf {
        self.root.join("work")
    }

    // -----------------------------------------------------------------------------------------
    // Trackers

    /// Writes tracker `t`'s config (port 0: the kernel picks) and starts it.
    fn create_tracker(&mut self, t: usize, extra: &[(String, String)]) {
        let base = self.root.join(format!("tracker{}", t + 1));
        fs::create_dir_all(&base).unwrap_or_else(|e| panic!("mkdir {}: {e}", base.display()));
        let mut entries = vec![
            ("bind_addr".to_string(), TRACKER_IP.to_string()),
            ("base_path".to_string(), path_str(&base)),
            ("check_active_interval".to_string(), "5".to_string()),
            // The tests must not depend on how full the machine's disk is.
            ("reserved_storage_space".to_string(), "1%".to_string()),
        ];
        entries.extend(extra.iter().cloned());
        let conf = self.root.join(format!("conf/tracker{}.conf", t + 1));
        let mut slot = TrackerSlot {
            conf,
            base,
            entries,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            daemon: None,
            runs: 0,
        };
        let daemon = start_tracker_slot(&mut slot, &self.work_dir(), t);
        slot.addr = daemon.addr();
        slot.daemon = Some(daemon);
        self.trackers.push(slot);
    }

    /// Address of tracker `t` (kept across restarts).
    pub fn tracker_addr(&self, t: usize) -> SocketAddr {
        self.trackers[t].addr
    }

    /// Whether tracker `t` runs (was not stopped by the test).
    pub fn tracker_running(&self, t: usize) -> bool {
        self.trackers[t].daemon.is_some()
    }

    /// Indexes of the running trackers.
    pub fn running_trackers(&self) -> Vec<usize> {
        (0..self.trackers.len())
            .filter(|&t| self.tracker_running(t))
            .collect()
    }

    /// Index of the tracker listening on `addr` ("ip:port").
    pub fn tracker_index(&self, addr: &str) -> Option<usize> {
        self.trackers
            .iter()
            .position(|s| s.addr.to_string() == addr)
    }

    /// Stops tracker `t` with SIGTERM (SIGKILL after a deadline); returns whether it exited by
    /// itself with status 0.
    pub fn stop_tracker(&mut self, t: usize) -> bool {
        let Some(mut d) = self.trackers[t].daemon.take() else {
            panic!("tracker {} is not running", t + 1);
        };
        d.stop();
        let clean = d.exit.is_some_and(|s| s.success());
        // Later runs show the same log directory; print it once, with this run.
        self.retired.push(d);
        clean
    }

    /// Sends `sig` to running tracker `t` without waiting (takes `&self`, so a workload can
    /// run on other threads meanwhile); [`Multi::stop_tracker`] then collects its exit.
    pub fn signal_tracker(&self, t: usize, sig: Signal) {
        let Some(d) = &self.trackers[t].daemon else {
            panic!("tracker {} is not running", t + 1);
        };
        let pid = Pid::from_raw(d.child.id() as i32);
        kill(pid, sig).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
    }

    /// Starts stopped tracker `t` again on its old port with its old config and data.
    pub fn start_tracker(&mut self, t: usize) {
        assert!(
            !self.tracker_running(t),
            "tracker {} is already running",
            t + 1
        );
        let work = self.work_dir();
        let slot = &mut self.trackers[t];
        let daemon = start_tracker_slot(slot, &work, t);
        assert_eq!(
            daemon.addr(),
            slot.addr,
            "restarted tracker {} must listen on its old address",
            t + 1
        );
        slot.daemon = Some(daemon);
    }

    // -----------------------------------------------------------------------------------------
    // Storages

    /// Starts one more storage (next address 127.0.0.N, fresh directories, every tracker in
    /// its config) and returns its index. Does not wait for the trackers to make it ACTIVE
    /// (use [`Multi::wait_state`]).
    pub fn add_storage(&mut self, spec: StorageSpec) -> usize {
        let i = self.storages.len();
        let name = format!("s{}", i + 1);
        let mut paths = vec![self.root.join(&name)];
        paths.extend((1..spec.store_paths).map(|p| self.root.join(format!("{name}p{p}"))));
        for p in &paths {
            fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        }
        let mut slot = StorageSlot {
            spec,
            ip: storage_ip_of(i),
            port: 0,
            paths,
            conf: self.root.join(format!("conf/storage{}.conf", i + 1)),
            daemon: None,
            runs: 0,
        };
        let daemon = self.start_storage_slot(&mut slot, i);
        slot.port = daemon.addr().port();
        slot.daemon = Some(daemon);
        self.storages.push(slot);
        i
    }

    /// Writes the slot's config (current ip and port) and starts the storage.
    fn start_storage_slot(&self, slot: &mut StorageSlot, i: usize) -> Daemon {
        let mut entries: Vec<(String, String)> = vec![
            ("group_name".into(), slot.spec.group.clone()),
            ("bind_addr".into(), slot.ip.clone()),
            ("port".into(), slot.port.to_string()),
            ("base_path".into(), path_str(&slot.paths[0])),
            ("store_path_count".into(), slot.paths.len().to_string()),
        ];
        for (p, path) in slot.paths.iter().enumerate() {
            entries.push((format!("store_path{p}"), path_str(path)));
        }
        entries.push(("subdir_count_per_path".into(), "16".into()));
        for t in &self.trackers {
            entries.push(("tracker_server".into(), t.addr.to_string()));
        }
        entries.extend([
            ("heart_beat_interval".into(), "1".into()),
            ("stat_report_interval".into(), "1".into()),
        ]);
        if let Some(id) = &slot.spec.server_id {
            entries.push(("server_id".into(), id.clone()));
        }
        let borrowed: Vec<(&str, String)> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        write_conf(&slot.conf, &borrowed);
        slot.runs += 1;
        let role = match slot.runs {
            1 => format!("storage{}", i + 1),
            n => format!("storage{}.run{n}", i + 1),
        };
        let log_dirs = if slot.runs == 1 {
            vec![slot.paths[0].join("logs")]
        } else {
            // The first run's report already shows this directory (it is retired first).
            Vec::new()
        };
        Daemon::start(
            &role,
            &["storage", "-c", &path_str(&slot.conf)],
            &self.work_dir(),
            1,
            vec![slot.conf.clone()],
            log_dirs,
        )
    }

    /// Current bind address of storage `i`.
    pub fn storage_ip(&self, i: usize) -> &str {
        &self.storages[i].ip
    }

    /// Current address of storage `i`.
    pub fn storage_addr(&self, i: usize) -> SocketAddr {
        format!("{}:{}", self.storages[i].ip, self.storages[i].port)
            .parse()
            .expect("storage addresses are IPv4")
    }

    /// The id trackers know storage `i` by: its server_id, else its IP.
    pub fn storage_id(&self, i: usize) -> &str {
        let s = &self.storages[i];
        s.spec.server_id.as_deref().unwrap_or(&s.ip)
    }

    /// Group of storage `i`.
    pub fn storage_group(&self, i: usize) -> &str {
        &self.storages[i].spec.group
    }

    /// Whether storage `i` runs.
    pub fn storage_running(&self, i: usize) -> bool {
        self.storages[i].daemon.is_some()
    }

    /// Stops storage `i`; returns whether it exited by itself with status 0.
    pub fn stop_storage(&mut self, i: usize) -> bool {
        let Some(mut d) = self.storages[i].daemon.take() else {
            panic!("storage {} is not running", i + 1);
        };
        d.stop();
        let clean = d.exit.is_some_and(|s| s.success());
        self.retired.push(d);
        clean
    }

    /// Starts stopped storage `i` again with bind address `ip` (its old one or a new one), on
    /// its old port with the same directories and server_id. Does not wait for ACTIVE.
    pub fn start_storage_at(&mut self, i: usize, ip: &str) {
        assert!(
            !self.storage_running(i),
            "storage {} is already running",
            i + 1
        );
        let mut slot = self.storages.remove(i);
        slot.ip = ip.to_string();
        let daemon = self.start_storage_slot(&mut slot, i);
        let port = slot.port;
        self.storages.insert(i, slot);
        assert_eq!(
            daemon.addr().port(),
            port,
            "restarted storage {} must listen on its old port",
            i + 1
        );
        self.storages[i].daemon = Some(daemon);
    }

    /// Panics (with reports) if a daemon the test did not stop has died.
    #[track_caller]
    pub fn assert_running(&mut self) {
        for d in self
            .trackers
            .iter_mut()
            .filter_map(|t| t.daemon.as_mut())
            .chain(self.storages.iter_mut().filter_map(|s| s.daemon.as_mut()))
        {
            d.assert_running();
        }
    }

    // -----------------------------------------------------------------------------------------
    // Client runs

    /// Runs `fdfs ARGS --tracker T1 --tracker T2 ...` with every tracker (running or not) in
    /// index order, and records it in the history.
    pub fn fdfs(&self, args: &[&str]) -> Run {
        let all: Vec<usize> = (0..self.trackers.len()).collect();
        self.fdfs_via(&all, args)
    }

    /// Runs `fdfs ARGS` with `--tracker` for each of `trackers`, in that order.
    pub fn fdfs_via(&self, trackers: &[usize], args: &[&str]) -> Run {
        let addrs: Vec<String> = trackers
            .iter()
            .map(|&t| self.trackers[t].addr.to_string())
            .collect();
        let mut full: Vec<&str> = args.to_vec();
        for a in &addrs {
            full.extend(["--tracker", a.as_str()]);
        }
        let run = run_program(Path::new(FDFS), &full, None, &self.work_dir(), CLI_TIMEOUT);
        super::record(&self.history, &run);
        run
    }

    /// Runs any program in the work dir with a deadline and records it in the history.
    pub fn run<S: AsRef<std::ffi::OsStr>>(
        &self,
        program: &Path,
        args: &[S],
        timeout: Duration,
    ) -> Run {
        let run = run_program(program, args, None, &self.work_dir(), timeout);
        super::record(&self.history, &run);
        run
    }

    /// Uploads `data` with `fdfs upload FILE EXTRA...` through `trackers` (in that order) and
    /// returns the printed file ID (any group).
    #[track_caller]
    pub fn upload_via(&self, trackers: &[usize], data: &[u8], extra: &[&str]) -> String {
        let path = self.work_dir().join(format!("upload-{}", sha1_hex(data)));
        fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let mut args = vec!["upload", path.to_str().expect("UTF-8 temp path")];
        args.extend_from_slice(extra);
        let run = self.fdfs_via(trackers, &args).success();
        let id = run.stdout_str();
        assert!(
            id.starts_with("group") && id.contains("/M") && !id.contains(char::is_whitespace),
            "upload must print the file ID alone\n{}",
            run.describe()
        );
        let _ = fs::remove_file(&path);
        id
    }

    /// [`Multi::upload_via`] with every tracker in index order.
    #[track_caller]
    pub fn upload(&self, data: &[u8], extra: &[&str]) -> String {
        let all: Vec<usize> = (0..self.trackers.len()).collect();
        self.upload_via(&all, data, extra)
    }

    /// Downloads a whole file with `fdfs download ID -` through every tracker.
    #[track_caller]
    pub fn download(&self, id: &str) -> Vec<u8> {
        self.fdfs(&["download", id, "-"]).success().stdout
    }

    /// `fdfs monitor --json` asking only `trackers` (in that order): the parsed object, or why
    /// there is none (for polling).
    pub fn try_monitor_json(&self, trackers: &[usize]) -> Result<Value, String> {
        let run = self.fdfs_via(trackers, &["monitor", "--json"]);
        if !run.status.is_some_and(|s| s.success()) {
            return Err(run.describe());
        }
        serde_json::from_slice(&run.stdout)
            .map_err(|e| format!("monitor --json printed no JSON: {e}\n{}", run.describe()))
    }

    // -----------------------------------------------------------------------------------------
    // Waiting for the cluster to settle

    /// Status every tracker should show for each storage: ACTIVE while it runs, OFFLINE once
    /// stopped. Keyed by group, then id: (status, ip, port).
    pub fn expected_storages(&self) -> BTreeMap<String, BTreeMap<String, (String, String, u16)>> {
        let mut out: BTreeMap<String, BTreeMap<String, _>> = BTreeMap::new();
        for (i, s) in self.storages.iter().enumerate() {
            let status = if s.daemon.is_some() {
                "ACTIVE"
            } else {
                "OFFLINE"
            };
            out.entry(s.spec.group.clone()).or_default().insert(
                self.storage_id(i).to_string(),
                (status.to_string(), s.ip.clone(), s.port),
            );
        }
        out
    }

    /// Polls `fdfs monitor --json --tracker T` for every running tracker T alone until each
    /// shows exactly the expected groups and storages ([`Multi::expected_storages`]) with the
    /// expected status, ip and port, and disk usage (total_mb > 0) for each ACTIVE one.
    /// Returns the last JSON of each running tracker (in index order).
    #[track_caller]
    pub fn wait_state(&mut self, timeout: Duration) -> Vec<Value> {
        let want = self.expected_storages();
        let deadline = Instant::now() + timeout;
        loop {
            let mut views = Vec::new();
            let mut why = Vec::new();
            for t in self.running_trackers() {
                match self.try_monitor_json(&[t]) {
                    Ok(v) => {
                        if let Err(e) = state_matches(&v, &want) {
                            why.push(format!("tracker {} ({}): {e}", t + 1, self.tracker_addr(t)));
                        }
                        views.push(v);
                    }
                    Err(e) => why.push(format!("tracker {}: {e}", t + 1)),
                }
            }
            if why.is_empty() {
                return views;
            }
            self.assert_running();
            if Instant::now() > deadline {
                panic!(
                    "cluster did not settle within {timeout:?}; want {want:?}\n{}\nlast views:\n{}",
                    why.join("\n"),
                    views
                        .iter()
                        .map(|v| format!("{v:#}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls until exactly one tracker leads: every running tracker answers GET_LEADER with
    /// the same running tracker, and `fdfs monitor --json` (every tracker listed) marks that
    /// one, and only it, `leader`, the running ones reachable and the stopped ones not.
    /// Returns the leader's index.
    #[track_caller]
    pub fn wait_leader(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let why = match self.leader_now() {
                Ok(t) => return t,
                Err(why) => why,
            };
            self.assert_running();
            if Instant::now() > deadline {
                panic!("no single leader within {timeout:?}: {why}");
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The leader if the trackers agree on exactly one (see [`Multi::wait_leader`]).
    fn leader_now(&self) -> Result<usize, String> {
        let mut named = Vec::new();
        for t in self.running_trackers() {
            match get_leader(self.tracker_addr(t)) {
                Ok(Ok(l)) => named.push((t, l)),
                Ok(Err(status)) => {
                    let what = if status == ENOENT {
                        " (ENOENT: no leader known)"
                    } else {
                        ""
                    };
                    return Err(format!(
                        "tracker {}: GET_LEADER status {status}{what}",
                        t + 1
                    ));
                }
                Err(e) => return Err(format!("tracker {}: GET_LEADER: {e}", t + 1)),
            }
        }
        let first = named.first().map(|(_, l)| l.clone()).unwrap_or_default();
        if named.iter().any(|(_, l)| *l != first) {
            return Err(format!("trackers name different leaders: {named:?}"));
        }
        let leader = self
            .tracker_index(&first)
            .filter(|&t| self.tracker_running(t))
            .ok_or_else(|| format!("leader {first:?} is not a running tracker: {named:?}"))?;
        let all: Vec<usize> = (0..self.trackers.len()).collect();
        let v = self.try_monitor_json(&all)?;
        let trackers = v["trackers"]
            .as_array()
            .ok_or(format!("no trackers: {v}"))?;
        if trackers.len() != self.trackers.len() {
            return Err(format!("monitor lists {} trackers: {v}", trackers.len()));
        }
        for (t, tv) in trackers.iter().enumerate() {
            let want_addr = self.tracker_addr(t).to_string();
            let running = self.tracker_running(t);
            let ok = tv["addr"] == want_addr.as_str()
                && tv["reachable"] == running
                && tv["leader"] == (t == leader)
                && (!running || tv["leader_addr"] == first.as_str());
            if !ok {
                return Err(format!(
                    "monitor's tracker {} ({want_addr}, running {running}) disagrees with \
                     leader {first}: {tv}",
                    t + 1
                ));
            }
        }
        Ok(leader)
    }
}

/// Starts the tracker of `slot` (writing its config with its known port, 0 the first time).
fn start_tracker_slot(slot: &mut TrackerSlot, work: &Path, t: usize) -> Daemon {
    let mut entries: Vec<(&str, String)> = vec![("port", slot.addr.port().to_string())];
    entries.extend(slot.entries.iter().map(|(k, v)| (k.as_str(), v.clone())));
    write_conf(&slot.conf, &entries);
    slot.runs += 1;
    let role = match slot.runs {
        1 => format!("tracker{}", t + 1),
        n => format!("tracker{}.run{n}", t + 1),
    };
    let log_dirs = if slot.runs == 1 {
        vec![slot.base.join("logs")]
    } else {
        Vec::new()
    };
    Daemon::start(
        &role,
        &["tracker", "-c", &path_str(&slot.conf)],
        work,
        1,
        vec![slot.conf.clone()],
        log_dirs,
    )
}

/// Whether a monitor JSON object shows exactly `want` (group -> id -> (status, ip, port)),
/// with disk usage for the ACTIVE storages; Err says what differs.
fn state_matches(
    v: &Value,
    want: &BTreeMap<String, BTreeMap<String, (String, String, u16)>>,
) -> Result<(), String> {
    let groups = v["groups"].as_array().ok_or("no groups array")?;
    let names: Vec<&str> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
    let want_names: Vec<&str> = want.keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    if sorted != want_names {
        return Err(format!("groups {names:?}, want {want_names:?}"));
    }
    for g in groups {
        let name = g["name"].as_str().unwrap_or_default();
        let want_g = &want[name];
        let storages = g["storages"]
            .as_array()
            .ok_or(format!("{name}: no storages"))?;
        let mut got = BTreeMap::new();
        for s in storages {
            let id = s["id"].as_str().unwrap_or_default().to_string();
            let status = s["status"].as_str().unwrap_or_default().to_string();
            let ip = s["ip"].as_str().unwrap_or_default().to_string();
            let port = s["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(0);
            if status == "ACTIVE" && s["total_mb"].as_u64().unwrap_or(0) == 0 {
                return Err(format!("{name}/{id}: ACTIVE but no disk usage yet: {s}"));
            }
            got.insert(id, (status, ip, port));
        }
        if &got != want_g {
            return Err(format!("{name}: storages {got:?}, want {want_g:?}"));
        }
        if g["storage_count"] != want_g.len() {
            return Err(format!(
                "{name}: storage_count {}, want {}",
                g["storage_count"],
                want_g.len()
            ));
        }
    }
    Ok(())
}

impl Drop for Multi {
    fn drop(&mut self) {
        // Storages first, so none of them logs a lost tracker while we stop it.
        for d in self.storages.iter_mut().filter_map(|s| s.daemon.as_mut()) {
            d.stop();
        }
        for d in self.trackers.iter_mut().filter_map(|t| t.daemon.as_mut()) {
            d.stop();
        }
        super::report_failure(&self.history, &mut self.dir);
        // The daemons' own Drop prints their reports (storages, trackers, then retired runs).
    }
}
