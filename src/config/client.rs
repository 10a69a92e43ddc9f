//! client.conf (LAYOUT.md §3.4; upstream client/client_func.c). The `http.*` keys usually
//! pulled in with `#include http.conf` are accepted and ignored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;
use super::ini::Ini;
use super::read::{Reader, tracker_servers};

/// Typed client.conf.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Timeout for connects to trackers and storages.
    pub connect_timeout: Duration,
    /// Socket I/O timeout.
    pub network_timeout: Duration,
    /// Where the C client writes its logs; informational here.
    // Read so a client.conf round-trips; the CLI logs to stderr, not here.
    #[allow(dead_code)]
    pub base_path: Option<PathBuf>,
    /// Tracker addresses as written (`host:port`, `ip1,ip2:port`, `[v6]:port`).
    pub tracker_servers: Vec<String>,
    /// Storage ids in use.
    pub use_storage_id: bool,
    /// The `http.*` keys (FastDFS's client.conf includes http.conf): what
    /// `fdfs token` signs URLs with.
    pub http: super::http::HttpConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            network_timeout: Duration::from_secs(60),
            base_path: None,
            tracker_servers: Vec::new(),
            use_storage_id: false,
            http: super::http::HttpConfig::default(),
        }
    }
}

/// Known keys accepted silently.
const IGNORED: &[&str] = &[
    "log_level",
    "connect_first_by",
    "use_connection_pool",
    "connection_pool_max_idle_time",
    "load_fdfs_parameters_from_tracker",
    "storage_ids_filename",
];

impl ClientConfig {
    /// Builds the config from a parsed file; also returns unknown-key warnings.
    pub fn from_ini(ini: &Ini) -> Result<(Self, Vec<String>), ConfigError> {
        let d = ClientConfig::default();
        let mut r = Reader::new(ini);
        r.ignore(IGNORED);
        let cfg = ClientConfig {
            connect_timeout: r.secs_nonzero("connect_timeout", d.connect_timeout)?,
            network_timeout: r.secs_nonzero("network_timeout", d.network_timeout)?,
            base_path: r.opt_string("base_path").map(PathBuf::from),
            tracker_servers: tracker_servers(&mut r)?,
            use_storage_id: r.bool("use_storage_id", d.use_storage_id),
            http: super::http::read(&mut r, &ini.dir())?,
        };
        Ok((cfg, r.finish()))
    }

    /// Loads and parses a client.conf.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        ClientConfig::from_ini(&Ini::load(path)?)
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

    #[test]
    fn shipped_file_loads_with_include() {
        let (c, warnings) = ClientConfig::load(&testdata("client.conf")).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.network_timeout, Duration::from_secs(60));
        assert_eq!(c.base_path, Some(PathBuf::from("/opt/fastdfs")));
        assert_eq!(
            c.tracker_servers,
            vec!["192.168.0.196:22122", "192.168.0.197:22122"]
        );
        assert!(!c.use_storage_id);
        // The http.conf include was read.
        let ini = Ini::load(&testdata("client.conf")).unwrap();
        assert_eq!(ini.get("http.anti_steal.token_ttl"), Some("900"));
    }

    #[test]
    fn defaults_and_warnings() {
        let ini = Ini::parse(
            "tracker_server = [::1]:22122\nnetwork_timeout=30\nmystery=1\n",
            Path::new("c.conf"),
        )
        .unwrap();
        let (c, w) = ClientConfig::from_ini(&ini).unwrap();
        assert_eq!(c.tracker_servers, vec!["[::1]:22122"]);
        assert_eq!(c.network_timeout, Duration::from_secs(30));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(w, vec!["c.conf:3: unknown key mystery ignored".to_string()]);
        let (c, _) = ClientConfig::from_ini(&Ini::parse("", Path::new("c.conf")).unwrap()).unwrap();
        assert!(c.tracker_servers.is_empty() && c.base_path.is_none());
        let bad = Ini::parse("tracker_server = 1.2.3.4\n", Path::new("c.conf")).unwrap();
        assert!(matches!(
            ClientConfig::from_ini(&bad),
            Err(ConfigError::Value { .. })
        ));
    }
}
