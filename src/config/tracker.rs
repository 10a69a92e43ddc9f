//! tracker.conf (LAYOUT.md §3.2; upstream tracker/tracker_func.c).
//!
//! Defaults are FastDFS's code defaults where the shipped file differs, except the ones
//! chosen for a friendlier start: `base_path` (`./fdfs-data/tracker`, not /opt),
//! timeouts 5 s / 60 s, `store_lookup = 2` and `store_group = group1`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;
use super::ini::{Ini, Reserved, parse_reserved};
use super::read::{Reader, existing_dir, is_valid_group_name};

/// IP field width in tracker replies (`response_ip_addr_size`, PROTOCOL.md §4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpAddrSize {
    /// 46 if any configured address is IPv6, else 16.
    Auto,
    /// 16 bytes (IP_ADDRESS_SIZE of IPv4 builds).
    V4,
    /// 46 bytes (INET6_ADDRSTRLEN).
    V6,
}

/// Typed tracker.conf.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Refuse to start when true.
    pub disabled: bool,
    /// Listen address; `None` = all addresses.
    pub bind_addr: Option<String>,
    /// Listen port; 0 = ephemeral (tests).
    pub port: u16,
    /// Timeout for outgoing connects.
    pub connect_timeout: Duration,
    /// Socket I/O timeout; idle connections are closed after it.
    pub network_timeout: Duration,
    /// Holds `data/` and `logs/`.
    pub base_path: PathBuf,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Accept threads.
    pub accept_threads: usize,
    /// Worker threads.
    pub work_threads: usize,
    /// Smallest per-connection buffer, bytes.
    pub min_buff_size: u64,
    /// Largest per-connection buffer, bytes.
    pub max_buff_size: u64,
    /// Group choice for uploads: 0 round robin, 1 `store_group`, 2 load balance.
    pub store_lookup: u8,
    /// Group used when `store_lookup = 1`.
    pub store_group: String,
    /// Storage choice: 0 round robin, 1 first by IP/id, 2 by upload_priority.
    pub store_server: u8,
    /// Store path choice: 0 round robin, 2 most free space.
    pub store_path: u8,
    /// Download server choice: 0 round robin, 1 source first.
    pub download_server: u8,
    /// Space each storage must keep free.
    pub reserved_storage_space: Reserved,
    /// Log level name, lower case (`info`, `debug`, ...).
    pub log_level: String,
    /// Allowed client hosts (`*`, IPs, CIDR, ranges, names); repeatable key.
    pub allow_hosts: Vec<String>,
    /// Heartbeat silence after which a storage is OFFLINE.
    pub check_active_interval: Duration,
    /// PROTOCOL.md §7.3.
    pub storage_sync_file_max_delay: Duration,
    /// PROTOCOL.md §7.3.
    pub storage_sync_file_max_time: Duration,
    /// Identify storages by storage_ids.conf.
    pub use_storage_id: bool,
    /// storage_ids.conf, resolved against the directory of the config file.
    pub storage_ids_filename: PathBuf,
    /// `id_type_in_filename = id` (true) or `ip` (false).
    pub id_type_in_filename_is_id: bool,
    /// Accept the id a storage sends in JOIN.
    pub trust_storage_server_id: bool,
    /// IP field width in replies.
    pub response_ip_addr_size: IpAddrSize,
    /// Our key `stat_record_layout = legacy|v616` (default v616): legacy 105/612-byte
    /// LIST_* records when true.
    pub legacy_stat_layout: bool,
    /// Our key `fetch_all_reply_layout = legacy|v616` (default legacy): per-server ports in
    /// QUERY_FETCH_ALL replies when true.
    pub fetch_all_layout_v616: bool,
    /// Slave files as symlinks.
    pub store_slave_file_use_link: bool,
    /// Trunk files (not implemented by fdfs; the servers decide how to react).
    pub use_trunk_file: bool,
    /// `run_by_user`: the user the daemon runs as once its port is bound.
    pub run_by_user: Option<String>,
    /// `run_by_group`: its group (default: the user's own group).
    pub run_by_group: Option<String>,
    /// The `http.*` keys: HTTP downloads (storage) and `/metrics` (both).
    pub http: super::http::HttpConfig,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            disabled: false,
            bind_addr: None,
            port: 22122,
            connect_timeout: Duration::from_secs(5),
            network_timeout: Duration::from_secs(60),
            base_path: PathBuf::from("./fdfs-data/tracker"),
            max_connections: 1024,
            accept_threads: 1,
            work_threads: 4,
            min_buff_size: 8 * 1024,
            max_buff_size: 128 * 1024,
            store_lookup: 2,
            store_group: "group1".to_string(),
            store_server: 0,
            store_path: 0,
            download_server: 0,
            reserved_storage_space: Reserved::Bytes(1024 * 1024 * 1024),
            log_level: "info".to_string(),
            allow_hosts: vec!["*".to_string()],
            check_active_interval: Duration::from_secs(100),
            storage_sync_file_max_delay: Duration::from_secs(86400),
            storage_sync_file_max_time: Duration::from_secs(300),
            use_storage_id: false,
            storage_ids_filename: PathBuf::from("storage_ids.conf"),
            id_type_in_filename_is_id: true,
            trust_storage_server_id: true,
            response_ip_addr_size: IpAddrSize::Auto,
            legacy_stat_layout: false,
            fetch_all_layout_v616: false,
            store_slave_file_use_link: false,
            use_trunk_file: false,
            run_by_user: None,
            run_by_group: None,
            http: super::http::HttpConfig::default(),
        }
    }
}

/// Keys of the shipped tracker.conf that change nothing visible here (log rotation,
/// thread stacks, connection pools, trunk tuning): accepted silently.
const IGNORED: &[&str] = &[
    "thread_stack_size",
    "storage_ip_changed_auto_adjust",
    "slot_min_size",
    "slot_max_size",
    "trunk_alloc_alignment_size",
    "trunk_free_space_merge",
    "delete_unused_trunk_files",
    "trunk_file_size",
    "trunk_create_file_advance",
    "trunk_create_file_time_base",
    "trunk_create_file_interval",
    "trunk_create_file_space_threshold",
    "trunk_init_check_occupying",
    "trunk_init_reload_from_binlog",
    "trunk_compress_binlog_min_interval",
    "trunk_compress_binlog_interval",
    "trunk_compress_binlog_time_base",
    "trunk_binlog_max_backups",
    "use_connection_pool",
    "connection_pool_max_idle_time",
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

/// Parses a `legacy|v616` layout switch; `Ok(true)` for v616.
fn layout_switch(r: &mut Reader<'_>, key: &str, default_v616: bool) -> Result<bool, ConfigError> {
    match r.raw(key).map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(default_v616),
        Some("legacy") => Ok(false),
        Some("v616") => Ok(true),
        Some(_) => Err(r.error(key, "expected legacy or v616")),
    }
}

impl TrackerConfig {
    /// Builds the config from a parsed file; also returns warnings for unknown keys and
    /// for known keys whose setting fdfs does not implement.
    pub fn from_ini(ini: &Ini) -> Result<(Self, Vec<String>), ConfigError> {
        let d = TrackerConfig::default();
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

        let response_ip_addr_size = match r
            .raw("response_ip_addr_size")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("auto") => IpAddrSize::Auto,
            Some("ipv4") => IpAddrSize::V4,
            Some("ipv6") => IpAddrSize::V6,
            Some(_) => return Err(r.error("response_ip_addr_size", "expected auto, IPv4 or IPv6")),
        };
        let id_type_in_filename_is_id = match r
            .raw("id_type_in_filename")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("id") => true,
            Some("ip") => false,
            Some(_) => return Err(r.error("id_type_in_filename", "expected id or ip")),
        };
        let reserved_storage_space = match r.raw("reserved_storage_space") {
            None | Some("") => d.reserved_storage_space,
            Some(v) => parse_reserved(v).map_err(|m| r.error("reserved_storage_space", m))?,
        };
        let storage_ids_filename = {
            let p = r.path("storage_ids_filename", &d.storage_ids_filename)?;
            if p.is_absolute() {
                p
            } else {
                ini.base_dir().join(p)
            }
        };
        let mut allow_hosts = r.all("allow_hosts");
        if allow_hosts.is_empty() {
            allow_hosts = d.allow_hosts.clone();
        }

        let cfg = TrackerConfig {
            disabled: r.bool("disabled", d.disabled),
            bind_addr: r.opt_string("bind_addr"),
            port: r.num("port", d.port)?,
            connect_timeout: r.secs_nonzero("connect_timeout", d.connect_timeout)?,
            network_timeout: r.secs_nonzero("network_timeout", d.network_timeout)?,
            base_path: r.path("base_path", &d.base_path)?,
            max_connections: r.num_in("max_connections", d.max_connections, 1..=1_000_000)?,
            accept_threads: r.num_in("accept_threads", d.accept_threads, 1..=64)?,
            work_threads: r.num_in("work_threads", d.work_threads, 1..=1024)?,
            min_buff_size: r.bytes("min_buff_size", d.min_buff_size)?,
            max_buff_size: r.bytes("max_buff_size", d.max_buff_size)?,
            store_lookup: r.num_in("store_lookup", d.store_lookup, 0..=2)?,
            store_group: r.string("store_group", &d.store_group),
            store_server: r.num_in("store_server", d.store_server, 0..=2)?,
            store_path: r.num_in("store_path", d.store_path, 0..=2)?,
            download_server: r.num_in("download_server", d.download_server, 0..=1)?,
            reserved_storage_space,
            log_level: r.string("log_level", &d.log_level).to_ascii_lowercase(),
            allow_hosts,
            check_active_interval: r
                .secs_nonzero("check_active_interval", d.check_active_interval)?,
            storage_sync_file_max_delay: r
                .secs("storage_sync_file_max_delay", d.storage_sync_file_max_delay)?,
            storage_sync_file_max_time: r
                .secs("storage_sync_file_max_time", d.storage_sync_file_max_time)?,
            use_storage_id: r.bool("use_storage_id", d.use_storage_id),
            storage_ids_filename,
            id_type_in_filename_is_id,
            trust_storage_server_id: r.bool("trust_storage_server_id", d.trust_storage_server_id),
            response_ip_addr_size,
            legacy_stat_layout: !layout_switch(&mut r, "stat_record_layout", true)?,
            fetch_all_layout_v616: layout_switch(&mut r, "fetch_all_reply_layout", false)?,
            store_slave_file_use_link: r
                .bool("store_slave_file_use_link", d.store_slave_file_use_link),
            use_trunk_file: r.bool("use_trunk_file", d.use_trunk_file),
            run_by_user: r.opt_string("run_by_user"),
            run_by_group: r.opt_string("run_by_group"),
            http: super::http::read(&mut r, &ini.dir())?,
        };
        if cfg.min_buff_size > cfg.max_buff_size {
            // Blame the key the user actually wrote.
            let key = if ini.get("max_buff_size").is_some() {
                "max_buff_size"
            } else {
                "min_buff_size"
            };
            return Err(r.error(key, "min_buff_size must not exceed max_buff_size"));
        }
        if (cfg.store_lookup == 1 || ini.get("store_group").is_some())
            && !is_valid_group_name(&cfg.store_group)
        {
            return Err(r.error("store_group", "group names are 1..16 chars of [A-Za-z0-9]"));
        }
        Ok((cfg, r.finish()))
    }

    /// Loads and parses a tracker.conf.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        TrackerConfig::from_ini(&Ini::load(path)?)
    }

    /// Checks that `base_path` exists (a daemon started with the file at
    /// `conf` does not create it, as in FastDFS).
    pub fn check_dirs(&self, conf: &Path) -> Result<(), ConfigError> {
        existing_dir(conf, "base_path", &self.base_path)
    }
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

    fn from_text(text: &str) -> Result<(TrackerConfig, Vec<String>), ConfigError> {
        TrackerConfig::from_ini(&Ini::parse(text, Path::new("/etc/fdfs/tracker.conf")).unwrap())
    }

    #[test]
    fn shipped_file_loads() {
        let (c, warnings) = TrackerConfig::load(&fixture()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(!c.disabled);
        assert_eq!(c.bind_addr, None);
        assert_eq!(c.port, 22122);
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.network_timeout, Duration::from_secs(60));
        assert_eq!(c.base_path, PathBuf::from("/opt/fastdfs"));
        assert_eq!(c.max_connections, 1024);
        assert_eq!((c.accept_threads, c.work_threads), (1, 4));
        assert_eq!((c.min_buff_size, c.max_buff_size), (8192, 131072));
        assert_eq!(c.store_lookup, 2);
        assert_eq!(c.store_group, "group2");
        assert_eq!((c.store_server, c.store_path, c.download_server), (0, 0, 0));
        assert_eq!(c.reserved_storage_space, Reserved::Ratio(0.20));
        assert_eq!(c.log_level, "info");
        assert_eq!(c.allow_hosts, vec!["*"]);
        assert_eq!(c.check_active_interval, Duration::from_secs(120));
        assert_eq!(c.storage_sync_file_max_delay, Duration::from_secs(86400));
        assert_eq!(c.storage_sync_file_max_time, Duration::from_secs(300));
        assert!(!c.use_storage_id);
        assert_eq!(
            c.storage_ids_filename,
            fixture().parent().unwrap().join("storage_ids.conf")
        );
        assert!(c.id_type_in_filename_is_id);
        assert!(c.trust_storage_server_id);
        assert_eq!(c.response_ip_addr_size, IpAddrSize::Auto);
        assert!(!c.legacy_stat_layout);
        assert!(!c.fetch_all_layout_v616);
        assert!(!c.store_slave_file_use_link);
        assert!(!c.use_trunk_file);
    }

    fn fixture() -> PathBuf {
        testdata("tracker.conf")
    }

    #[test]
    fn defaults_when_empty() {
        let (c, w) = from_text("").unwrap();
        assert!(w.is_empty());
        assert_eq!(c.port, 22122);
        assert_eq!(c.base_path, PathBuf::from("./fdfs-data/tracker"));
        assert_eq!(c.store_group, "group1");
        assert_eq!(c.store_lookup, 2);
        assert_eq!(c.check_active_interval, Duration::from_secs(100));
        assert_eq!(c.reserved_storage_space, Reserved::Bytes(1 << 30));
        assert_eq!(
            c.storage_ids_filename,
            PathBuf::from("/etc/fdfs/storage_ids.conf")
        );
    }

    #[test]
    fn values_and_switches() {
        let (c, w) = from_text(
            "port = 0\nbind_addr = 127.0.0.1\nreserved_storage_space = 10%\nallow_hosts = 10.0.0.1\n\
             allow_hosts = 127.0.0.[1-9]\nresponse_ip_addr_size = IPv4\nid_type_in_filename = ip\n\
             stat_record_layout = legacy\nfetch_all_reply_layout = V616\nuse_storage_id = yes\n\
             storage_ids_filename = /abs/ids.conf\nnetwork_timeout = 0\nmin_buff_size = 16 KB\n\
             log_level = DEBUG\nrun_by_user = fdfs\nfoo = bar\nhttp.server_port = 8080\n",
        )
        .unwrap();
        assert_eq!(c.port, 0);
        assert_eq!(c.bind_addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(c.reserved_storage_space, Reserved::Ratio(0.10));
        assert_eq!(c.allow_hosts, vec!["10.0.0.1", "127.0.0.[1-9]"]);
        assert_eq!(c.response_ip_addr_size, IpAddrSize::V4);
        assert!(!c.id_type_in_filename_is_id);
        assert!(c.legacy_stat_layout && c.fetch_all_layout_v616 && c.use_storage_id);
        assert_eq!(c.storage_ids_filename, PathBuf::from("/abs/ids.conf"));
        assert_eq!(
            c.network_timeout,
            Duration::from_secs(60),
            "0 means default"
        );
        assert_eq!(c.min_buff_size, 16384);
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.run_by_user.as_deref(), Some("fdfs"));
        assert_eq!(c.run_by_group, None);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("unknown key foo ignored") && w[0].contains("tracker.conf:16"));
    }

    #[test]
    fn bad_values() {
        for (text, key) in [
            ("port = 70000\n", "port"),
            ("port = -1\n", "port"),
            ("store_lookup = 3\n", "store_lookup"),
            ("store_group = bad_name\n", "store_group"),
            ("reserved_storage_space = 120%\n", "reserved_storage_space"),
            ("response_ip_addr_size = 32\n", "response_ip_addr_size"),
            ("stat_record_layout = new\n", "stat_record_layout"),
            ("min_buff_size = 1MB\n", "min_buff_size"),
            ("network_timeout = soon\n", "network_timeout"),
            ("base_path =\n", "base_path"),
            ("work_threads = 0\n", "work_threads"),
        ] {
            match from_text(text) {
                Err(ConfigError::Value { key: k, msg, .. }) => {
                    assert_eq!(k, key, "{text}");
                    assert!(msg.contains("tracker.conf:1"), "{msg}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
