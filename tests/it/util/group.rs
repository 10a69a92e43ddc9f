//! Clusters whose storages come and go: adding a storage to a running group, restarting one
//! on its old port, asking the tracker for a storage's status, listing what a storage holds
//! on disk, and talking to one storage directly with `fdfs ... --storage`. Used by the
//! replication tests.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::{
    Cluster, Daemon, GROUP, POLL_INTERVAL, Run, list_storage, path_str, sha1_hex, write_conf,
};

impl Cluster {
    /// Starts one more storage of group1 on the next address (127.0.0.2 for the first, then
    /// .3, ...) with fresh directories, and returns its index. Does not wait until the tracker
    /// makes it ACTIVE: a storage joining a group with files goes through the sync states first
    /// (poll [`Cluster::storage_status`]).
    pub fn add_storage(&mut self) -> usize {
        let i = self.storage_ips.len();
        let name = format!("s{}", i + 1);
        let base = self.root.join(&name);
        let mut paths = vec![base.clone()];
        paths.extend((1..self.store_path_count).map(|p| self.root.join(format!("{name}p{p}"))));
        for p in &paths {
            fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        }
        self.store_paths.push(paths);
        self.storage_ips.push(format!("127.0.0.{}", i + 2));
        self.storage_confs.push(
            self.root
                .join("conf")
                .join(format!("storage{}.conf", i + 1)),
        );
        self.write_storage_conf(i, 0);
        let daemon = self.start_storage_daemon(i, &format!("storage{}", i + 1));
        self.daemons.push(daemon);
        i
    }

    /// Writes storage `i`'s config: its address and directories, the tracker's current
    /// address, fast heartbeats, then the builder's extra lines.
    fn write_storage_conf(&self, i: usize, port: u16) {
        let paths = &self.store_paths[i];
        let mut entries = vec![
            ("group_name", GROUP.to_string()),
            ("bind_addr", self.storage_ips[i].clone()),
            ("port", port.to_string()),
            ("base_path", path_str(&paths[0])),
            ("store_path_count", paths.len().to_string()),
        ];
        let keys: Vec<String> = (0..paths.len()).map(|p| format!("store_path{p}")).collect();
        entries.extend(
            keys.iter()
                .map(String::as_str)
                .zip(paths.iter().map(|p| path_str(p))),
        );
        entries.extend([
            ("subdir_count_per_path", "16".to_string()),
            ("tracker_server", self.tracker_addr().to_string()),
            ("heart_beat_interval", "1".to_string()),
            ("stat_report_interval", "1".to_string()),
        ]);
        entries.extend(self.storage_extra.iter().cloned());
        write_conf(&self.storage_confs[i], &entries);
    }

    /// Starts the storage daemon of config `i` under the name `role` (also its stderr file).
    fn start_storage_daemon(&self, i: usize, role: &str) -> Daemon {
        let conf = &self.storage_confs[i];
        Daemon::start(
            role,
            &["storage", "-c", &path_str(conf)],
            &self.work_dir(),
            1,
            vec![conf.clone()],
            vec![self.store_paths[i][0].join("logs")],
        )
    }

    /// Number of storages started so far (running or stopped).
    pub fn storage_count(&self) -> usize {
        self.storage_ips.len()
    }

    /// Stops storage `i` with SIGTERM (SIGKILL after a deadline); returns whether it exited
    /// by itself with status 0. Same as `stop_daemon(i + 1)`.
    pub fn stop_storage(&mut self, i: usize) -> bool {
        self.stop_daemon(i + 1)
    }

    /// Stops storage `i` if it runs (it must exit cleanly on SIGTERM) and starts it again on
    /// the SAME port with the same directories: peers key their sync state by IP and port.
    /// Returns once it listens; does not wait for the tracker to make it ACTIVE.
    pub fn restart_storage(&mut self, i: usize) {
        assert!(
            self.stop_storage(i),
            "storage {} must exit cleanly on SIGTERM",
            i + 1
        );
        self.respawn_storage(i);
    }

    /// Kills storage `i` with SIGKILL (a crash: nothing is flushed or saved) and starts it
    /// again as [`Cluster::restart_storage`] does.
    pub fn crash_and_restart_storage(&mut self, i: usize) {
        self.signal(i + 1, nix::sys::signal::Signal::SIGKILL);
        self.stop_storage(i);
        self.respawn_storage(i);
    }

    /// Starts stopped storage `i` again on its old port and directories.
    pub fn respawn_storage(&mut self, i: usize) {
        let port = self.storage_addr(i).port();
        self.write_storage_conf(i, port);
        let conf = Some(&self.storage_confs[i]);
        let run = 2 + self
            .retired
            .iter()
            .filter(|d| d.conf_files.first() == conf)
            .count();
        let daemon = self.start_storage_daemon(i, &format!("storage{}.run{run}", i + 1));
        assert_eq!(
            daemon.addr().port(),
            port,
            "restarted storage {} must listen on its old port",
            i + 1
        );
        let mut old = std::mem::replace(&mut self.daemons[i + 1], daemon);
        // The new run shows the same log directory; print it once.
        old.log_dirs.clear();
        self.retired.push(old);
    }

    /// Base path of storage `i` (also its store path 0): `logs/`, `data/sync/binlog.000`, ...
    pub fn base_path(&self, i: usize) -> &Path {
        &self.store_paths[i][0]
    }

    /// Status the tracker reports for storage `i` in LIST_STORAGE (None if it does not list
    /// it or cannot be asked).
    pub fn storage_status(&self, i: usize) -> Option<u8> {
        let ip = self.storage_ip(i);
        match list_storage(self.tracker_addr(), GROUP) {
            Ok(Ok(list)) => list.into_iter().find(|(id, _)| id == ip).map(|(_, s)| s),
            _ => None,
        }
    }

    /// Polls LIST_STORAGE until storage `i` has `status`; panics after `timeout` (or if a
    /// daemon died) naming the last status seen.
    #[track_caller]
    pub fn wait_storage_status(&mut self, i: usize, status: u8, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.storage_status(i);
            if now == Some(status) {
                return;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "storage {} ({}) not in status {status} within {timeout:?}: last seen {now:?}",
                i + 1,
                self.storage_ip(i)
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Every stored file of storage `i`: remote name (`Mxx/HH/HH/name`, metadata `-m` files
    /// included) -> size. Only the `data/HH/HH/` level is read; names starting with '.'
    /// (temp files, `.fastdfs_vars`) are skipped. Cheap: no file is read.
    pub fn storage_listing(&self, i: usize) -> BTreeMap<String, u64> {
        self.stored_paths(i)
            .into_iter()
            .filter_map(|(name, path)| Some((name, fs::metadata(path).ok()?.len())))
            .collect()
    }

    /// Like [`Cluster::storage_listing`] with the SHA-1 of each file instead of its size.
    /// A file vanishing while it is read (a concurrent delete) is left out.
    pub fn storage_files(&self, i: usize) -> BTreeMap<String, String> {
        self.stored_paths(i)
            .into_iter()
            .filter_map(|(name, path)| Some((name, sha1_hex(&fs::read(path).ok()?))))
            .collect()
    }

    /// (remote name, path) of every regular file in `data/HH/HH/` of storage `i`'s store
    /// paths, except names starting with '.'.
    fn stored_paths(&self, i: usize) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for (p, store) in self.store_paths[i].iter().enumerate() {
            for (high, high_dir) in hex_subdirs(&store.join("data")) {
                for (low, low_dir) in hex_subdirs(&high_dir) {
                    let Ok(entries) = fs::read_dir(&low_dir) else {
                        continue;
                    };
                    for e in entries.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if !name.starts_with('.') && e.file_type().is_ok_and(|t| t.is_file()) {
                            out.push((format!("M{p:02X}/{high}/{low}/{name}"), e.path()));
                        }
                    }
                }
            }
        }
        out
    }

    /// Polls until storage `i`'s first binlog file has exactly `line`.
    #[track_caller]
    pub fn wait_binlog_line(&self, i: usize, line: &str) {
        let binlog = self.base_path(i).join("data/sync/binlog.000");
        poll_until(
            &format!("`{line}` in {}", binlog.display()),
            Duration::from_secs(10),
            || {
                let text = fs::read_to_string(&binlog).map_err(|e| e.to_string())?;
                if text.lines().any(|l| l == line) {
                    Ok(())
                } else {
                    Err(format!("binlog is:\n{text}"))
                }
            },
        );
    }

    /// Storage `i`'s entry in `fdfs monitor --json` (its `dedup`, `repair`, ... figures).
    #[track_caller]
    pub fn monitor_of(&self, i: usize) -> serde_json::Value {
        let run = self.fdfs(&["monitor", "--json"]).success();
        let v: serde_json::Value = serde_json::from_slice(&run.stdout).expect("monitor --json");
        let ip = self.storage_ip(i).to_string();
        v["groups"][0]["storages"]
            .as_array()
            .expect("storages")
            .iter()
            .find(|s| s["ip"] == ip.as_str())
            .unwrap_or_else(|| panic!("storage {ip} not in {v}"))
            .clone()
    }

    /// Runs `fdfs ARGS --storage <storage i>`: talks to that storage directly.
    pub fn fdfs_on(&self, i: usize, args: &[&str]) -> Run {
        let storage = self.storage_addr(i).to_string();
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--storage", &storage]);
        self.fdfs(&full)
    }
}

/// What `fdfs info --json` says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Current size in bytes.
    pub size: u64,
    /// CRC32 (from the name for normal files, computed over the content for appender and
    /// slave files).
    pub crc32: u32,
    /// IP of the storage that created the file.
    pub source_ip: String,
}

/// Exit code of `fdfs` for a file that does not exist (fdfs(1)).
pub const EXIT_NOT_FOUND: i32 = 3;

impl Cluster {
    /// `fdfs info ID --json`, asking storage `i` directly (or the tracker's choice for None).
    /// `Err` carries the account of a failed run or of unreadable output.
    pub fn try_info(&self, i: Option<usize>, id: &str) -> Result<FileInfo, String> {
        let args = ["info", id, "--json"];
        let run = match i {
            Some(i) => self.fdfs_on(i, &args),
            None => self.fdfs(&args),
        };
        if !run.status.is_some_and(|s| s.success()) {
            return Err(run.describe());
        }
        let json: serde_json::Value = serde_json::from_slice(&run.stdout)
            .map_err(|e| format!("info --json is not JSON ({e})\n{}", run.describe()))?;
        let field = |k: &str| {
            json.get(k)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("info --json lacks a numeric {k:?}: {json}"))
        };
        Ok(FileInfo {
            size: field("size")?,
            crc32: u32::try_from(field("crc32")?)
                .map_err(|_| format!("info --json crc32 above 32 bits: {json}"))?,
            source_ip: json
                .get("source_ip")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// Like [`Cluster::try_info`], panicking on failure.
    #[track_caller]
    pub fn info(&self, i: Option<usize>, id: &str) -> FileInfo {
        self.try_info(i, id)
            .unwrap_or_else(|why| panic!("fdfs info {id}: {why}"))
    }

    /// Index of the storage that created `id` (the source IP `fdfs info` reports).
    #[track_caller]
    pub fn source_storage(&self, id: &str) -> usize {
        let ip = self.info(None, id).source_ip;
        (0..self.storage_count())
            .find(|&i| self.storage_ip(i) == ip)
            .unwrap_or_else(|| panic!("source IP {ip:?} of {id} is no storage of the cluster"))
    }

    /// Polls every storage with `fdfs info/download ID --storage` until each one holds
    /// exactly `expected` (size first, then the downloaded bytes), or panics after `timeout`
    /// naming what the lagging storage had.
    #[track_caller]
    pub fn wait_content_everywhere(
        &self,
        id: &str,
        expected: &[u8],
        timeout: Duration,
        what: &str,
    ) {
        let start = Instant::now();
        for i in 0..self.storage_count() {
            poll_until(
                &format!(
                    "{what}: {id} on storage {} ({}) to be its expected {} bytes",
                    i + 1,
                    self.storage_ip(i),
                    expected.len()
                ),
                timeout.saturating_sub(start.elapsed()),
                || {
                    let info = self.try_info(Some(i), id)?;
                    if info.size != expected.len() as u64 {
                        return Err(format!("info says {} bytes", info.size));
                    }
                    let run = self.fdfs_on(i, &["download", id, "-"]);
                    if !run.status.is_some_and(|s| s.success()) {
                        return Err(run.describe());
                    }
                    // Byte comparison, not SHA-1: the tests' dependencies are unoptimised.
                    if run.stdout != expected {
                        let first = expected.iter().zip(&run.stdout).position(|(a, b)| a != b);
                        return Err(format!(
                            "download gives {} bytes, first difference at {first:?}",
                            run.stdout.len()
                        ));
                    }
                    Ok(())
                },
            );
        }
    }

    /// Polls every storage until `fdfs download ID --storage` exits with
    /// [`EXIT_NOT_FOUND`], or panics after `timeout` with the last run.
    #[track_caller]
    pub fn wait_gone_everywhere(&self, id: &str, timeout: Duration, what: &str) {
        let start = Instant::now();
        for i in 0..self.storage_count() {
            poll_until(
                &format!(
                    "{what}: {id} to be gone (exit {EXIT_NOT_FOUND}) on storage {} ({})",
                    i + 1,
                    self.storage_ip(i)
                ),
                timeout.saturating_sub(start.elapsed()),
                || {
                    let run = self.fdfs_on(i, &["download", id, "-"]);
                    match run.status.and_then(|s| s.code()) {
                        Some(EXIT_NOT_FOUND) => Ok(()),
                        _ => Err(run.describe()),
                    }
                },
            );
        }
    }
}

/// Subdirectories of `dir` named by two upper-case hex digits, sorted: (name, path).
fn hex_subdirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| {
            n.len() == 2
                && n.bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        })
        .collect();
    out.sort();
    out
}

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` and the last
/// value of `f`'s complaint after `timeout`. `f` returns `Err(why)` while not there yet.
#[track_caller]
pub fn poll_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(why) if Instant::now() > deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {why}")
            }
            Err(_) => thread::sleep(POLL_INTERVAL),
        }
    }
}
