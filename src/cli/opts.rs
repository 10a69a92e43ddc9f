//! Options shared by the client subcommands: where the trackers are.

use super::CliError;
use crate::client::{Error, OsMessage, StorageClient, Timeouts, TrackerClient};
use crate::config::{ClientConfig, ConfigError, check_tracker_server};
use clap::Args;
use std::path::{Path, PathBuf};

/// Default client config read when nothing else names a tracker.
const SYSTEM_CLIENT_CONF: &str = "/etc/fdfs/client.conf";
/// Last resort: a tracker on this machine.
const DEFAULT_TRACKER: &str = "127.0.0.1:22122";

/// `--tracker` / `-c`, flattened into each client subcommand.
#[derive(Args, Debug, Clone)]
pub struct ClientOpts {
    /// Tracker address HOST:PORT (repeatable; tried in order). Overrides the
    /// config file and $FDFS_TRACKER.
    #[arg(long = "tracker", value_name = "HOST:PORT", global = true)]
    pub trackers: Vec<String>,
    /// client.conf in FastDFS syntax (tracker_server, connect_timeout, network_timeout).
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

impl ClientOpts {
    /// The client config: -c FILE, else /etc/fdfs/client.conf when neither
    /// --tracker nor $FDFS_TRACKER says where the tracker is, else defaults.
    pub fn client_config(&self) -> Result<ClientConfig, CliError> {
        let load = |p: &Path| -> Result<ClientConfig, CliError> {
            let (cfg, warnings) = ClientConfig::load(p).map_err(|e| match e {
                ConfigError::Io { path, err } => {
                    CliError::Usage(format!("{}: {}", path.display(), OsMessage(&err)))
                }
                e => CliError::Usage(e.to_string()),
            })?;
            for w in warnings {
                log::debug!("{}: {w}", p.display());
            }
            Ok(cfg)
        };
        Ok(match &self.config {
            Some(p) => load(p)?,
            None if Path::new(SYSTEM_CLIENT_CONF).exists()
                && self.trackers.is_empty()
                && std::env::var_os("FDFS_TRACKER").is_none() =>
            {
                load(Path::new(SYSTEM_CLIENT_CONF))?
            }
            None => ClientConfig::default(),
        })
    }

    /// The tracker client: --tracker, then -c FILE, then $FDFS_TRACKER, then
    /// /etc/fdfs/client.conf, then 127.0.0.1:22122.
    pub fn tracker(&self) -> Result<TrackerClient, CliError> {
        let mut cfg = self.client_config()?;
        if !self.trackers.is_empty() {
            cfg.tracker_servers = checked("--tracker", &self.trackers)?;
        } else if self.config.is_none()
            && let Ok(env) = std::env::var("FDFS_TRACKER")
        {
            let addrs: Vec<String> = env
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            cfg.tracker_servers = checked("FDFS_TRACKER", &addrs)?;
        }
        if cfg.tracker_servers.is_empty() {
            cfg.tracker_servers.push(DEFAULT_TRACKER.to_string());
        }
        let t = Timeouts {
            connect: cfg.connect_timeout,
            network: cfg.network_timeout,
        };
        Ok(TrackerClient::new(cfg.tracker_servers, t))
    }
}

/// `addrs` if each is HOST:PORT; a usage error naming `source` and the first
/// bad one otherwise (a missing port would only fail later, as "unreachable").
fn checked(source: &str, addrs: &[String]) -> Result<Vec<String>, CliError> {
    for a in addrs {
        if let Err(why) = check_tracker_server(a) {
            return Err(CliError::Usage(format!(
                "{source} {a}: not a tracker address HOST:PORT ({why})"
            )));
        }
    }
    Ok(addrs.to_vec())
}

/// Ask the tracker which storage holds `file_id` (or may change it, with
/// `update`) and connect to it. Returns (client, group, remote name).
pub fn storage_for(
    t: &TrackerClient,
    file_id: &str,
    update: bool,
) -> Result<(StorageClient, String, String), Error> {
    storage_at(t, file_id, update, None)
}

/// Like [`storage_for`], but go straight to `direct` ("ip:port") when given.
pub fn storage_at(
    t: &TrackerClient,
    file_id: &str,
    update: bool,
    direct: Option<&str>,
) -> Result<(StorageClient, String, String), Error> {
    let (group, remote) = crate::client::split_file_id(file_id)?;
    let addr = match direct {
        Some(a) => a.to_string(),
        None => {
            let target = t.query_fetch(&group, &remote, update)?;
            format!("{}:{}", target.ip, target.port)
        }
    };
    let s = StorageClient::connect(&addr, t.timeouts)?;
    Ok((s, group, remote))
}
