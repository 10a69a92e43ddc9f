//! Blocking FastDFS client over std TCP with timeouts: ask a tracker where to
//! go, then talk to that storage. Used by the CLI and by the storage daemon for
//! its outbound calls. Uses proto and layout only.

mod conn;
mod storage;
mod tracker;

pub use conn::{Connection, Timeouts};
pub use storage::StorageClient;
pub use tracker::TrackerClient;

use crate::proto::{Cmd, status};
use std::fmt;

/// Everything that can go wrong talking to a server.
#[derive(Debug)]
pub enum Error {
    /// Connecting, reading or writing failed.
    Io { addr: String, err: std::io::Error },
    /// The server answered with an errno.
    Status { addr: String, cmd: Cmd, status: u8 },
    /// The reply did not make sense.
    Protocol { addr: String, msg: String },
    /// No tracker could be reached.
    NoTracker(String),
    /// A file ID that does not parse.
    BadFileId(String),
    /// A local file could not be read or written.
    Local { path: String, err: std::io::Error },
}

impl Error {
    /// The server's errno, if that is what failed.
    pub fn status(&self) -> Option<u8> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Connection-level failure (worth trying another server).
    pub fn is_io(&self) -> bool {
        matches!(self, Error::Io { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { addr, err } => write!(f, "{addr}: {err}"),
            Error::Status {
                addr,
                cmd,
                status: s,
            } => write!(f, "{addr}: {}: {}", cmd.name(), status::describe(*s)),
            Error::Protocol { addr, msg } => write!(f, "{addr}: protocol error: {msg}"),
            Error::NoTracker(why) => write!(f, "no tracker reachable: {why}"),
            Error::BadFileId(id) => write!(f, "{id}: EINVAL: not a valid file ID"),
            Error::Local { path, err } => write!(f, "{path}: {err}"),
        }
    }
}

impl std::error::Error for Error {}

/// Split "group1/M00/..." into group and remote file name.
pub fn split_file_id(file_id: &str) -> Result<(String, String), Error> {
    let (g, r) = crate::layout::file_id::split_file_id(file_id)
        .map_err(|_| Error::BadFileId(file_id.to_string()))?;
    crate::layout::RemoteName::parse(r).map_err(|_| Error::BadFileId(file_id.to_string()))?;
    Ok((g.to_string(), r.to_string()))
}
