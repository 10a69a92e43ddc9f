//! On-disk format of FastDFS V6 (LAYOUT.md §1-§2, PROTOCOL.md §6).
//!
//! Owns: file-id and remote-filename encoding/parsing (`file_id`), the store path tree
//! `data/HH/HH` and durable file writes (`store`), FastDFS `key=value` state files (`kv`)
//! the tracker's data files (`tracker_dat`) and the format of fdfs's own redo journal of
//! `durable_uploads` (`journal`).
//!
//! Must not depend on any other fdfs module (no config, proto, net, ...): it never sees a
//! socket or a thread. Inside, only `self::`/`super::` paths are used so the module also
//! builds as a crate root.

pub mod binlog;
pub mod dedup;
pub mod file_id;
pub mod journal;
pub mod kv;
#[cfg(test)]
mod props;
pub mod store;
pub mod tmpfile;
pub mod tracker_dat;

use std::fmt;

pub use self::file_id::{NameInfo, RemoteName, Source};
pub use self::kv::DataInitFlag;
pub use self::store::StorePath;

/// Errors of the layout layer: a file id or remote filename (or a part of it) that is
/// malformed; the text says which part. Servers answer EINVAL for it. Disk functions here
/// return `io::Error` as they get it, so the caller keeps its errno.
#[derive(Debug)]
pub enum Error {
    /// A malformed name; the text says which part.
    BadName(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadName(what) => write!(f, "invalid file name: {what}"),
        }
    }
}

impl std::error::Error for Error {}
