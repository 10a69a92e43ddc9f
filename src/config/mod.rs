//! Typed configuration from FastDFS-style ini files: tracker.conf, storage.conf and
//! client.conf (LAYOUT.md §3).
//!
//! Owns the ini reader (`ini`), value parsers (sizes, booleans, seconds, reserved space)
//! and one typed struct per role with the built-in defaults. Loading returns the config
//! plus warnings (unknown keys, known keys we do not implement) for the caller to log.
//!
//! Depends on std only and on no other fdfs module; inside, only `self::`/`super::` paths.

pub mod allow;
pub mod client;
pub mod http;
pub mod ini;
#[cfg(test)]
mod props;
mod read;
pub mod storage;
pub mod storage_ids;
pub mod tracker;

use std::fmt;
use std::io;
use std::path::PathBuf;

pub use self::allow::host_allowed;
pub use self::client::ClientConfig;
pub use self::ini::Reserved;
pub use self::read::check_tracker_server;
pub use self::storage::StorageConfig;
pub use self::tracker::{IpAddrSize, TrackerConfig};

/// Errors while loading a config file.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Io {
        /// File that failed.
        path: PathBuf,
        /// The I/O error.
        err: io::Error,
    },
    /// The file (or an included one) is not valid ini syntax at `line` (1-based).
    Syntax {
        /// File containing the bad line.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A required key is absent from the file at `path`.
    Missing {
        /// The config file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Why it is needed.
        why: String,
    },
    /// A directory named by `key` in the file at `path` cannot be used (a daemon's
    /// `base_path` or `store_pathN` must exist, as in FastDFS).
    Dir {
        /// The config file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The directory as configured.
        dir: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A key has a value of the wrong form or out of range; `msg` names the place.
    Value {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong, and where the key was set.
        msg: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, err } => write!(f, "{}: {err}", path.display()),
            ConfigError::Syntax { path, line, msg } => {
                write!(f, "{}:{line}: {msg}", path.display())
            }
            ConfigError::Missing { path, key, why } => {
                write!(f, "{}: no {key} line: {why}", path.display())
            }
            ConfigError::Dir {
                path,
                key,
                dir,
                why,
            } => write!(f, "{}: {key} = {}: {why}", path.display(), dir.display()),
            ConfigError::Value { key, value, msg } => {
                write!(f, "bad value for {key} = {value:?}: {msg}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}
