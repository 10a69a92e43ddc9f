//! storage.conf (LAYOUT.md §3.3; upstream storage/storage_func.c).
//!
//! Defaults follow the brief of the fdfs team: code defaults of FastDFS, except
//! `base_path` (`./fdfs-data/storage`), timeouts 5 s / 60 s, `stat_report_interval` 60 s,
//! `sync_binlog_buff_interval` 1 s (the shipped value: 60 s would keep up to a minute of
//! binlog only in memory) and one tracker at 127.0.0.1:22122.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;
use super::ini::{Ini, parse_bool};
use super::read::{Reader, existing_dir, is_valid_group_name, tracker_servers};

/// Most store paths (the index is two hex digits in file names).
pub const MAX_STORE_PATHS: u32 = 256;
/// `busy_poll_us`: its default and its range.
pub const BUSY_POLL_US: u64 = 50;
pub const BUSY_POLL_US_RANGE: std::ops::RangeInclusive<u64> = 0..=1000;

/// Typed storage.conf.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// Refuse to start when true.
    pub disabled: bool,
    /// Group this storage belongs to: 1..=16 chars of `[A-Za-z0-9]`.
    pub group_name: String,
    /// Listen address; `None` = all addresses.
    pub bind_addr: Option<String>,
    /// Bind outgoing connections to `bind_addr`.
    pub client_bind: bool,
    /// Listen port; 0 = ephemeral (tests).
    pub port: u16,
    /// Timeout for outgoing connects.
    pub connect_timeout: Duration,
    /// Socket I/O timeout.
    pub network_timeout: Duration,
    /// Time between BEATs to the trackers.
    pub heart_beat_interval: Duration,
    /// Time between disk-usage reports.
    pub stat_report_interval: Duration,
    /// Holds `data/` (binlogs, marks, state) and `logs/`.
    pub base_path: PathBuf,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Per-connection buffer and streaming chunk size, bytes.
    pub buff_size: usize,
    /// Accept threads.
    pub accept_threads: usize,
    /// Worker threads.
    pub work_threads: usize,
    /// Separate disk reader and writer threads per store path.
    pub disk_rw_separated: bool,
    /// Disk reader threads per store path.
    pub disk_reader_threads: usize,
    /// Disk writer threads per store path.
    pub disk_writer_threads: usize,
    /// Sleep of a sync thread when the binlog has nothing new (`sync_wait_msec`, ms).
    pub sync_wait_msec: Duration,
    /// Pause after each synced file (`sync_interval`, ms).
    pub sync_interval: Duration,
    /// Binlog records between mark-file writes.
    pub write_mark_file_freq: u32,
    /// Store path roots, `store_path0..N`; `store_path0` defaults to `base_path`.
    pub store_paths: Vec<PathBuf>,
    /// `store_pathN_readonly`, one entry per store path.
    pub store_path_readonly: Vec<bool>,
    /// Subdirectories per level, 1..=256.
    pub subdir_count_per_path: u32,
    /// Tracker addresses as written (`host:port`, `ip1,ip2:port`, `[v6]:port`).
    pub tracker_servers: Vec<String>,
    /// Log level name, lower case.
    pub log_level: String,
    /// Allowed client hosts; repeatable key.
    pub allow_hosts: Vec<String>,
    /// 0 round robin, 1 hash (PROTOCOL.md §6.5).
    pub file_distribute_path_mode: u8,
    /// Files per directory before rotating (mode 0).
    pub file_distribute_rotate_count: u32,
    /// fsync data files every N bytes written; 0 = never.
    pub fsync_after_written_bytes: u64,
    /// Time between binlog buffer flushes.
    pub sync_binlog_buff_interval: Duration,
    /// Time between storage_stat.dat writes.
    pub sync_stat_file_interval: Duration,
    /// Lower = preferred when the tracker uses `store_server = 2`.
    pub upload_priority: i64,
    /// This server's storage id, when storage ids are used.
    pub server_id: Option<String>,
    /// Refuse to start on a store path whose mark differs from the saved one.
    pub check_store_path_mark: bool,
    /// Storage ids in use (normally learnt from the tracker; settable here).
    pub use_storage_id: bool,
    /// Our key `durable_uploads` (default false): a change is on disk (through
    /// the redo journal) before it is acknowledged.
    pub durable_uploads: bool,
    /// Our key `durable_journal_size` (default 64MB, at least 4MB): size of the
    /// redo journal file `base_path/data/fdfs_journal.dat`.
    pub durable_journal_size: u64,
    /// `check_file_duplicate` (default false): store the same content once
    /// (`storage::dedup`; fdfs's own index, no FastDHT). `file_signature_method`
    /// is accepted and ignored: a content is its size and CRC32, then its BLAKE3 hash.
    pub check_file_duplicate: bool,
    /// Our key `scrub_interval` (default 0: off): seconds from the start of
    /// one background scrub (every file read and checked against its ID) to
    /// the next (`storage::repair`).
    pub scrub_interval: Duration,
    /// Our key `scrub_bytes_per_second` (default 8MB): how fast a background
    /// scrub reads; 0 is no limit.
    pub scrub_bytes_per_second: u64,
    /// Our key `repair_interval` (default 0: off): seconds between two
    /// anti-entropy passes against the group's other fdfs storages.
    pub repair_interval: Duration,
    /// Our key `repair_min_age` (default 600 s): files younger than this are
    /// left to replication, which may still have them in flight.
    pub repair_min_age: Duration,
    /// Our key `disk_inline_reads` (default false): let the network thread
    /// wait for a file's path and inode (directory and inode blocks) to answer
    /// downloads, metadata reads and file info itself. File content is never
    /// read there: what is not in the page cache goes to a disk thread either
    /// way (see `storage::cached`).
    pub disk_inline_reads: bool,
    /// Our key `disk_inline_writes` (default true): small uploads, appends,
    /// deletes and metadata changes run on the network thread (see
    /// `storage::placement`).
    pub disk_inline_writes: bool,
    /// Our key `busy_poll_us` (default 50, 0 to 1000): how long a network
    /// thread keeps polling after a request before it sleeps, so that the
    /// next one needs no wake-up (see `net::spin`).
    pub busy_poll_us: u64,
    /// `run_by_user`: the user the daemon runs as once its port is bound.
    pub run_by_user: Option<String>,
    /// `run_by_group`: its group (default: the user's own group).
    pub run_by_group: Option<String>,
    /// The `http.*` keys: HTTP downloads (storage) and `/metrics` (both).
    pub http: super::http::HttpConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let base_path = PathBuf::from("./fdfs-data/storage");
        StorageConfig {
            disabled: false,
            group_name: "group1".to_string(),
            bind_addr: None,
            client_bind: true,
            port: 23000,
            connect_timeout: Duration::from_secs(5),
            network_timeout: Duration::from_secs(60),
            heart_beat_interval: Duration::from_secs(30),
            stat_report_interval: Duration::from_secs(60),
            store_paths: vec![base_path.clone()],
            base_path,
            max_connections: 1024,
            buff_size: 256 * 1024,
            accept_threads: 1,
            work_threads: 4,
            disk_rw_separated: true,
            disk_reader_threads: 1,
            disk_writer_threads: 1,
            sync_wait_msec: Duration::from_millis(100),
            sync_interval: Duration::ZERO,
            write_mark_file_freq: 500,
            store_path_readonly: vec![false],
            subdir_count_per_path: 256,
            tracker_servers: vec!["127.0.0.1:22122".to_string()],
            log_level: "info".to_string(),
            allow_hosts: vec!["*".to_string()],
            file_distribute_path_mode: 0,
            file_distribute_rotate_count: 100,
            fsync_after_written_bytes: 0,
            sync_binlog_buff_interval: Duration::from_secs(1),
            sync_stat_file_interval: Duration::from_secs(60),
            upload_priority: 10,
            server_id: None,
            check_store_path_mark: true,
            use_storage_id: false,
            durable_uploads: false,
            durable_journal_size: 64 * 1024 * 1024,
            check_file_duplicate: false,
            scrub_interval: Duration::ZERO,
            scrub_bytes_per_second: 8 << 20,
            repair_interval: Duration::ZERO,
            repair_min_age: Duration::from_secs(600),
            disk_inline_reads: false,
            disk_inline_writes: true,
            busy_poll_us: BUSY_POLL_US,
            run_by_user: None,
            run_by_group: None,
            http: super::http::HttpConfig::default(),
        }
    }
}

/// Known keys accepted silently: tuning that does not change what clients see.
const IGNORED: &[&str] = &[
    "thread_stack_size",
    "sync_min_threads",
    "sync_max_threads",
    "disk_recovery_threads",
    "file_signature_method",
    "key_namespace",
    "keep_alive",
    "file_sync_skip_invalid_record",
    "use_connection_pool",
    "connection_pool_max_idle_time",
    "compress_binlog",
    "compress_binlog_time",
    "sync_log_buff_interval",
    "log_file_rotate_everyday",
    "log_file_rotate_time",
    "log_file_compress_old",
    "log_file_compress_days_before",
    "log_file_rotate_on_size",
    "log_file_keep_days",
    "log_file_delete_old_time",
    "use_send_zc",
];

/// `store_pathN` -> N, `store_pathN_readonly` -> N (with `readonly` = true).
fn store_path_key(key: &str) -> Option<(u32, bool)> {
    let rest = key.strip_prefix("store_path")?;
    let (digits, readonly) = match rest.strip_suffix("_readonly") {
        Some(d) => (d, true),
        None => (rest, false),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(|n| (n, readonly))
}

impl StorageConfig {
    /// Builds the config from a parsed file; also returns warnings for unknown keys and
    /// for known keys whose setting fdfs does not implement.
    pub fn from_ini(ini: &Ini) -> Result<(Self, Vec<String>), ConfigError> {
        let d = StorageConfig::default();
        let mut r = Reader::new(ini);
        r.ignore(IGNORED);
        r.unsupported(
            "address_family",
            &["", "auto"],
            "the family follows bind_addr",
        );
        r.unsupported(
            "use_io_uring",
            &["", "false", "no", "off", "0"],
            "plain syscalls are used",
        );
        r.unsupported(
            "if_alias_prefix",
            &[""],
            "local IPs are taken from the tracker connection",
        );
        r.unsupported(
            "sync_start_time",
            &["", "00:00", "0:00"],
            "sync runs all day",
        );
        r.unsupported("sync_end_time", &["", "23:59"], "sync runs all day");
        if ini
            .section_get("access-log", "enabled")
            .is_some_and(parse_bool)
        {
            r.warn(
                "[access-log] enabled = true is not implemented: no access log is written".into(),
            );
        }

        let group_name = r.string("group_name", &d.group_name);
        if !is_valid_group_name(&group_name) {
            return Err(r.error("group_name", "group names are 1..16 chars of [A-Za-z0-9]"));
        }
        let base_path = r.path("base_path", &d.base_path)?;
        let (store_paths, store_path_readonly) = store_paths(&mut r, &base_path)?;
        let tracker_servers = tracker_servers(&mut r)?;
        if tracker_servers.is_empty() {
            // Joining a default tracker would hide the mistake (FastDFS refuses too).
            return Err(ConfigError::Missing {
                path: ini.origin().to_path_buf(),
                key: "tracker_server".into(),
                why: "a storage needs at least one tracker_server = HOST:PORT".into(),
            });
        }
        let mut allow_hosts = r.all("allow_hosts");
        if allow_hosts.is_empty() {
            allow_hosts = d.allow_hosts.clone();
        }
        let buff_size: u64 = r.bytes("buff_size", d.buff_size as u64)?;
        if !(4096..=256 << 20).contains(&buff_size) {
            return Err(r.error("buff_size", "must be between 4KB and 256MB"));
        }
        let heart_beat_interval = r.secs("heart_beat_interval", d.heart_beat_interval)?;
        if heart_beat_interval.is_zero() {
            return Err(r.error("heart_beat_interval", "must be at least 1 second"));
        }
        let stat_report_interval = r.secs("stat_report_interval", d.stat_report_interval)?;
        if stat_report_interval.is_zero() {
            return Err(r.error("stat_report_interval", "must be at least 1 second"));
        }

        let cfg = StorageConfig {
            disabled: r.bool("disabled", d.disabled),
            group_name,
            bind_addr: r.opt_string("bind_addr"),
            client_bind: r.bool("client_bind", d.client_bind),
            port: r.num("port", d.port)?,
            connect_timeout: r.secs_nonzero("connect_timeout", d.connect_timeout)?,
            network_timeout: r.secs_nonzero("network_timeout", d.network_timeout)?,
            heart_beat_interval,
            stat_report_interval,
            base_path,
            max_connections: r.num_in("max_connections", d.max_connections, 1..=1_000_000)?,
            buff_size: buff_size as usize,
            accept_threads: r.num_in("accept_threads", d.accept_threads, 1..=64)?,
            work_threads: r.num_in("work_threads", d.work_threads, 1..=1024)?,
            disk_rw_separated: r.bool("disk_rw_separated", d.disk_rw_separated),
            disk_reader_threads: r.num_in("disk_reader_threads", d.disk_reader_threads, 1..=256)?,
            disk_writer_threads: r.num_in("disk_writer_threads", d.disk_writer_threads, 1..=256)?,
            sync_wait_msec: r.millis("sync_wait_msec", d.sync_wait_msec)?,
            sync_interval: r.millis("sync_interval", d.sync_interval)?,
            write_mark_file_freq: r.num_in(
                "write_mark_file_freq",
                d.write_mark_file_freq,
                1..=u32::MAX,
            )?,
            store_paths,
            store_path_readonly,
            subdir_count_per_path: r.num_in(
                "subdir_count_per_path",
                d.subdir_count_per_path,
                1..=256,
            )?,
            tracker_servers,
            log_level: r.string("log_level", &d.log_level).to_ascii_lowercase(),
            allow_hosts,
            file_distribute_path_mode: r.num_in(
                "file_distribute_path_mode",
                d.file_distribute_path_mode,
                0..=1,
            )?,
            file_distribute_rotate_count: r.num_in(
                "file_distribute_rotate_count",
                d.file_distribute_rotate_count,
                1..=u32::MAX,
            )?,
            fsync_after_written_bytes: r
                .bytes("fsync_after_written_bytes", d.fsync_after_written_bytes)?,
            sync_binlog_buff_interval: r
                .secs("sync_binlog_buff_interval", d.sync_binlog_buff_interval)?,
            sync_stat_file_interval: r
                .secs_nonzero("sync_stat_file_interval", d.sync_stat_file_interval)?,
            upload_priority: r.num("upload_priority", d.upload_priority)?,
            server_id: r.opt_string("server_id"),
            check_store_path_mark: r.bool("check_store_path_mark", d.check_store_path_mark),
            use_storage_id: r.bool("use_storage_id", d.use_storage_id),
            durable_uploads: r.bool("durable_uploads", d.durable_uploads),
            durable_journal_size: r.bytes("durable_journal_size", d.durable_journal_size)?,
            check_file_duplicate: r.bool("check_file_duplicate", d.check_file_duplicate),
            scrub_interval: r.secs("scrub_interval", d.scrub_interval)?,
            scrub_bytes_per_second: r.bytes("scrub_bytes_per_second", d.scrub_bytes_per_second)?,
            repair_interval: r.secs("repair_interval", d.repair_interval)?,
            repair_min_age: r.secs("repair_min_age", d.repair_min_age)?,
            disk_inline_reads: r.bool("disk_inline_reads", d.disk_inline_reads),
            disk_inline_writes: r.bool("disk_inline_writes", d.disk_inline_writes),
            busy_poll_us: r.num_in("busy_poll_us", d.busy_poll_us, BUSY_POLL_US_RANGE)?,
            run_by_user: r.opt_string("run_by_user"),
            run_by_group: r.opt_string("run_by_group"),
            http: super::http::read(&mut r, &ini.dir())?,
        };
        Ok((cfg, r.finish()))
    }

    /// Loads and parses a storage.conf.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        StorageConfig::from_ini(&Ini::load(path)?)
    }

    /// Checks that `base_path` and every store path exist (a daemon started
    /// with the file at `conf` does not create them, as in FastDFS).
    pub fn check_dirs(&self, conf: &Path) -> Result<(), ConfigError> {
        existing_dir(conf, "base_path", &self.base_path)?;
        for (i, p) in self.store_paths.iter().enumerate() {
            existing_dir(conf, &format!("store_path{i}"), p)?;
        }
        Ok(())
    }
}

/// Resolves `store_path_count` and the `store_pathN[_readonly]` lines. Without
/// `store_path_count` the count is one past the highest `store_pathN`; `store_path0`
/// defaults to `base_path`; any other missing path is an error; paths past the count are
/// ignored with a warning.
fn store_paths(
    r: &mut Reader<'_>,
    base_path: &Path,
) -> Result<(Vec<PathBuf>, Vec<bool>), ConfigError> {
    let ini = r.ini();
    let numbered: Vec<(&str, u32, bool)> = ini
        .keys()
        .into_iter()
        .filter_map(|k| store_path_key(k).map(|(n, ro)| (k, n, ro)))
        .collect();
    let highest = numbered
        .iter()
        .filter(|(_, _, ro)| !ro)
        .map(|(_, n, _)| n + 1)
        .max();
    let count = match r.raw("store_path_count") {
        None | Some("") => highest.unwrap_or(1),
        Some(_) => r.num_in("store_path_count", 1, 1..=MAX_STORE_PATHS)?,
    };
    if count > MAX_STORE_PATHS {
        return Err(r.error(
            "store_path_count",
            format!("at most {MAX_STORE_PATHS} store paths"),
        ));
    }
    let mut paths = Vec::with_capacity(count as usize);
    let mut readonly = Vec::with_capacity(count as usize);
    for i in 0..count {
        let key = format!("store_path{i}");
        let path = match r.raw(&key) {
            Some("") => return Err(r.error(&key, "must not be empty")),
            Some(v) => PathBuf::from(v),
            None if i == 0 => base_path.to_path_buf(),
            None => {
                return Err(ConfigError::Value {
                    key,
                    value: String::new(),
                    msg: format!(
                        "missing: store_path_count = {count} needs store_path0..store_path{}",
                        count - 1
                    ),
                });
            }
        };
        paths.push(path);
        readonly.push(r.bool(&format!("store_path{i}_readonly"), false));
    }
    for (key, n, _) in numbered {
        if n >= count {
            r.mark(key);
            let loc = ini.location(key).unwrap_or_default();
            r.warn(format!("{loc}: {key} ignored: store_path_count = {count}"));
        }
    }
    Ok((paths, readonly))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> PathBuf {
        Path::new(file!())
            .parent()
            .unwrap()
            .join("testdata")
            .join(name)
    }

    fn from_text(text: &str) -> Result<(StorageConfig, Vec<String>), ConfigError> {
        StorageConfig::from_ini(&Ini::parse(text, Path::new("/etc/fdfs/storage.conf")).unwrap())
    }

    #[test]
    fn shipped_file_loads() {
        let (c, warnings) = StorageConfig::load(&testdata("storage.conf")).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(!c.disabled);
        assert_eq!(c.group_name, "group1");
        assert_eq!(c.bind_addr, None);
        assert!(c.client_bind);
        assert_eq!(c.port, 23000);
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.network_timeout, Duration::from_secs(60));
        assert_eq!(c.heart_beat_interval, Duration::from_secs(30));
        assert_eq!(c.stat_report_interval, Duration::from_secs(60));
        assert_eq!(c.base_path, PathBuf::from("/opt/fastdfs"));
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.buff_size, 256 * 1024);
        assert_eq!((c.accept_threads, c.work_threads), (1, 4));
        assert!(c.disk_rw_separated);
        assert_eq!((c.disk_reader_threads, c.disk_writer_threads), (2, 1));
        assert_eq!(c.sync_wait_msec, Duration::from_millis(10));
        assert_eq!(c.sync_interval, Duration::ZERO);
        assert_eq!(c.write_mark_file_freq, 500);
        assert_eq!(c.store_paths, vec![PathBuf::from("/opt/fastdfs")]);
        assert_eq!(c.store_path_readonly, vec![false]);
        assert_eq!(c.subdir_count_per_path, 256);
        assert_eq!(
            c.tracker_servers,
            vec!["192.168.209.121:22122", "192.168.209.122:22122"]
        );
        assert_eq!(c.log_level, "info");
        assert_eq!(c.allow_hosts, vec!["*"]);
        assert_eq!(c.file_distribute_path_mode, 0);
        assert_eq!(c.file_distribute_rotate_count, 100);
        assert_eq!(c.fsync_after_written_bytes, 0);
        assert_eq!(c.sync_binlog_buff_interval, Duration::from_secs(1));
        assert_eq!(c.sync_stat_file_interval, Duration::from_secs(60));
        assert_eq!(c.upload_priority, 10);
        assert_eq!(c.server_id, None);
        assert!(c.check_store_path_mark);
        assert!(!c.use_storage_id && !c.durable_uploads);
    }

    #[test]
    fn defaults_when_empty() {
        match from_text("") {
            Err(e @ ConfigError::Missing { .. }) => assert_eq!(
                e.to_string(),
                "/etc/fdfs/storage.conf: no tracker_server line: \
                 a storage needs at least one tracker_server = HOST:PORT"
            ),
            other => panic!("a storage.conf without tracker_server: {other:?}"),
        }
        let (c, w) = from_text("tracker_server = 127.0.0.1:22122\n").unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.base_path, PathBuf::from("./fdfs-data/storage"));
        assert_eq!(c.store_paths, vec![c.base_path.clone()]);
        assert_eq!(c.sync_wait_msec, Duration::from_millis(100));
        assert_eq!(c.port, 23000);
        assert!(c.disk_inline_writes && !c.disk_inline_reads);
        assert!(!c.check_file_duplicate);
        assert_eq!(c.busy_poll_us, 50);
    }

    #[test]
    fn store_paths_and_trackers() {
        let (c, w) = from_text(
            "base_path = /b\nstore_path1 = /d1\nstore_path2 = /d2\nstore_path2_readonly = true\n\
             tracker_server = 127.0.0.1:22122\ntracker_server = 127.0.0.2:22122\nport = 0\n\
             buff_size = 64KB\nfsync_after_written_bytes = 1M\ndurable_uploads = on\ncheck_file_duplicate = 1\ndisk_inline_reads = yes\ndisk_inline_writes = no\n\
             busy_poll_us = 0\nserver_id = 100001\n[access-log]\nenabled = true\n",
        )
        .unwrap();
        assert_eq!(
            c.store_paths,
            vec![
                PathBuf::from("/b"),
                PathBuf::from("/d1"),
                PathBuf::from("/d2")
            ]
        );
        assert_eq!(c.store_path_readonly, vec![false, false, true]);
        assert_eq!(
            c.tracker_servers,
            vec!["127.0.0.1:22122", "127.0.0.2:22122"]
        );
        assert_eq!(c.port, 0);
        assert_eq!(c.buff_size, 65536);
        assert_eq!(c.fsync_after_written_bytes, 1 << 20);
        assert!(c.durable_uploads && c.disk_inline_reads && !c.disk_inline_writes);
        assert!(c.check_file_duplicate);
        assert_eq!(c.busy_poll_us, 0);
        assert_eq!(c.server_id.as_deref(), Some("100001"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("access-log"));

        let (c, w) = from_text(
            "store_path_count = 1\nstore_path0 = /a\nstore_path1 = /b\ntracker_server = h:1\nbogus = 1\n",
        )
        .unwrap();
        assert_eq!(c.store_paths, vec![PathBuf::from("/a")]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|m| m.contains("store_path1 ignored")));
        assert!(
            w.iter()
                .any(|m| m.contains("unknown key bogus ignored") && m.contains("storage.conf:5"))
        );
    }

    #[test]
    fn bad_values() {
        for (text, key) in [
            ("group_name = group_1\n", "group_name"),
            ("group_name = abcdefghijklmnopq\n", "group_name"),
            ("subdir_count_per_path = 300\n", "subdir_count_per_path"),
            ("subdir_count_per_path = 0\n", "subdir_count_per_path"),
            ("store_path_count = 2\n", "store_path1"),
            ("store_path_count = 0\n", "store_path_count"),
            ("tracker_server = nohost\n", "tracker_server"),
            ("tracker_server = h:0\n", "tracker_server"),
            ("heart_beat_interval = 0\n", "heart_beat_interval"),
            ("buff_size = 12\n", "buff_size"),
            (
                "file_distribute_path_mode = 2\n",
                "file_distribute_path_mode",
            ),
            ("port = 65536\n", "port"),
            ("busy_poll_us = 1001\n", "busy_poll_us"),
        ] {
            let text = format!("tracker_server = h:1\n{text}");
            match from_text(&text) {
                Err(ConfigError::Value { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn store_path_key_forms() {
        assert_eq!(store_path_key("store_path0"), Some((0, false)));
        assert_eq!(store_path_key("store_path12_readonly"), Some((12, true)));
        assert_eq!(store_path_key("store_path_count"), None);
        assert_eq!(store_path_key("store_path"), None);
    }
}
