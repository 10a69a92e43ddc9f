//! On-disk format of FastDFS V6 (LAYOUT.md §1-§2, PROTOCOL.md §6).
//!
//! Owns: file-id and remote-filename encoding/parsing (`file_id`), the store path tree
//! `data/HH/HH` and durable file writes (`store`), FastDFS `key=value` state files (`kv`)
//! and the tracker's data files (`tracker_dat`).
//!
//! Must not depend on any other fdfs module (no config, proto, net, ...): it never sees a
//! socket or a thread. Inside, only `self::`/`super::` paths are used so the module also
//! builds as a crate root.

pub mod binlog;
pub mod file_id;
pub mod kv;
#[cfg(test)]
mod props;
pub mod store;
pub mod tmpfile;
pub mod tracker_dat;

use std::fmt;
use std::io;

pub use self::file_id::{NameInfo, RemoteName, Source};
pub use self::kv::DataInitFlag;
pub use self::store::StorePath;

/// Errors of the layout layer. Each maps to the Linux errno FastDFS puts in the status byte.
#[derive(Debug)]
pub enum Error {
    /// A file id / remote filename (or a part of it) is malformed; the text says which part.
    /// Maps to EINVAL (22).
    BadName(&'static str),
    /// The file does not exist. Maps to ENOENT (2).
    NotFound,
    /// Any other I/O failure; maps to its raw OS error, or EIO (5).
    Io(io::Error),
}

impl Error {
    /// Linux errno for the response status byte: BadName 22, NotFound 2, Io raw or 5.
    pub fn errno(&self) -> i32 {
        match self {
            Error::BadName(_) => nix::errno::Errno::EINVAL as i32,
            Error::NotFound => nix::errno::Errno::ENOENT as i32,
            Error::Io(e) => e.raw_os_error().unwrap_or(nix::errno::Errno::EIO as i32),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadName(what) => write!(f, "invalid file name: {what}"),
            Error::NotFound => f.write_str("file not found"),
            Error::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::NotFound {
            Error::NotFound
        } else {
            Error::Io(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        assert_eq!(Error::BadName("x").errno(), 22);
        assert_eq!(Error::NotFound.errno(), 2);
        assert_eq!(Error::Io(io::Error::from_raw_os_error(28)).errno(), 28);
        assert_eq!(Error::Io(io::Error::other("x")).errno(), 5);
        let e: Error = io::Error::from(io::ErrorKind::NotFound).into();
        assert!(matches!(e, Error::NotFound));
        let e: Error = io::Error::from_raw_os_error(13).into();
        assert_eq!(e.errno(), 13);
    }
}
