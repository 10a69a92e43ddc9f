//! Blocking FastDFS client over std TCP with timeouts: ask a tracker where to
//! go, then talk to that storage. Used by the CLI and by the storage daemon for
//! its outbound calls. Uses proto and layout only.

mod conn;
pub mod spool;
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
    /// The tracker at `tracker` knows no group `group`.
    NoGroup { tracker: String, group: String },
    /// The tracker at `tracker` has no storage to offer although the group
    /// exists (`group` None: any group, for an upload): none is ACTIVE.
    /// `servers` is what it lists ("127.0.0.2:23000 OFFLINE").
    NoStorage {
        tracker: String,
        group: Option<String>,
        servers: Vec<String>,
    },
}

impl Error {
    /// The server's errno, if that is what failed.
    pub fn status(&self) -> Option<u8> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Writing locally met a closed pipe (the reader of our output left).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Local { err, .. } if err.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Connection-level failure (worth trying another server).
    pub fn is_io(&self) -> bool {
        matches!(self, Error::Io { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { addr, err } => write!(f, "{addr}: {}", OsMessage(err)),
            Error::Status {
                addr,
                cmd,
                status: s,
            } => write!(f, "{addr}: {}: {}", cmd.name(), status::describe(*s)),
            Error::Protocol { addr, msg } => write!(f, "{addr}: protocol error: {msg}"),
            Error::NoTracker(why) => write!(f, "no tracker reachable: {why}"),
            Error::BadFileId(id) => write!(f, "{id}: EINVAL: not a valid file ID"),
            Error::Local { path, err } => write!(f, "{path}: {}", OsMessage(err)),
            Error::NoGroup { tracker, group } => {
                write!(f, "tracker {tracker}: group {group} does not exist")
            }
            Error::NoStorage {
                tracker,
                group,
                servers,
            } => {
                match group {
                    Some(g) => {
                        write!(f, "tracker {tracker}: no storage of group {g} is available")?
                    }
                    None => write!(f, "tracker {tracker}: no storage of any group is available")?,
                }
                if servers.is_empty() {
                    f.write_str(" (it knows none)")
                } else {
                    write!(f, " ({})", servers.join(", "))
                }
            }
        }
    }
}

impl std::error::Error for Error {}

/// An I/O error as the OS words it ("No such file or directory"), without the
/// " (os error 2)" that Rust's `Display` adds: messages name the errno where
/// it matters, and the number means nothing to a user.
pub struct OsMessage<'a>(pub &'a std::io::Error);

impl fmt::Display for OsMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        let plain = self
            .0
            .raw_os_error()
            .and_then(|code| text.strip_suffix(&format!(" (os error {code})")));
        f.write_str(plain.unwrap_or(&text))
    }
}

/// Split "group1/M00/..." into group and remote file name.
pub fn split_file_id(file_id: &str) -> Result<(String, String), Error> {
    let (g, r) = crate::layout::file_id::split_file_id(file_id)
        .map_err(|_| Error::BadFileId(file_id.to_string()))?;
    // The name must also decode (source, time, size, CRC32): trackers refuse
    // one that does not with EINVAL, which would read as a server failure.
    crate::layout::RemoteName::parse(r)
        .and_then(|name| name.info())
        .map_err(|_| Error::BadFileId(file_id.to_string()))?;
    Ok((g.to_string(), r.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_message_has_no_errno_suffix() {
        let e = std::io::Error::from_raw_os_error(nix::libc::ENOENT);
        assert_eq!(OsMessage(&e).to_string(), "No such file or directory");
        let custom = std::io::Error::other("ended after 3 of 5 bytes");
        assert_eq!(OsMessage(&custom).to_string(), "ended after 3 of 5 bytes");
        let local = Error::Local {
            path: "/x".into(),
            err: std::io::Error::from_raw_os_error(nix::libc::EISDIR),
        };
        assert_eq!(local.to_string(), "/x: Is a directory");
    }
}
