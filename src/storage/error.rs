//! Why the storage could not serve a client's request: each variant carries
//! its cause (the I/O error and the path, the file, the rule broken), and
//! [`Error::status`] is the one table from an error to the errno in the
//! reply. The file operations return these; the handler turns one into the
//! reply's status and its one log line (`handler::refuse`). A peer's sync
//! requests answer through `sync_status` instead, whose `Outcome` says what
//! the receiver found.

use super::sync_status::{Found, Outcome};
use crate::proto::{self, status};
use log::Level;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A storage request that failed.
#[derive(Debug)]
pub enum Error {
    /// A body or head that does not decode. EINVAL.
    Decode(proto::DecodeError),
    /// A body whose length does not fit its command. EINVAL.
    Length(String),
    /// A command code fdfs does not know. EINVAL.
    UnknownCommand(u8),
    /// A command the storage does not serve (a tracker's, say). EINVAL.
    Unsupported,
    /// A request the storage cannot take: another group's file, a name it
    /// never gives, an offset past the end, a file that is not an appender
    /// file. EINVAL.
    Invalid(String),
    /// The file is not here, or is not a regular file. ENOENT.
    NotFound(PathBuf),
    /// The metadata file is a directory. EISDIR.
    IsDir(PathBuf),
    /// The name a slave file would get is taken. EEXIST.
    Exists(PathBuf),
    /// No writable store path has room for `size` more bytes. ENOSPC.
    NoSpace { size: u64 },
    /// A dedup source asked to go while `links` files hold its content. EPERM.
    Shared { name: String, links: u32 },
    /// No fresh name found for a file after several tries. EBUSY.
    Busy(&'static str),
    /// Store path `.0` is being refilled from the peers (a replaced disk):
    /// it is no repair source yet. EAGAIN.
    Refilling(PathBuf),
    /// An I/O call failed while `what` of `path`. Its errno; ENOENT for a
    /// missing file, EIO when the error has none that fits a byte.
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A client's append or modify that did not apply, and what was found:
    /// ENOENT when the file is missing, a local failure's errno, else EINVAL.
    NotApplied(Outcome),
}

impl Error {
    /// The status byte of the reply: the errno upstream answers in that case.
    pub fn status(&self) -> u8 {
        match self {
            Error::Decode(_)
            | Error::Length(_)
            | Error::UnknownCommand(_)
            | Error::Unsupported
            | Error::Invalid(_) => status::EINVAL,
            Error::NotFound(_) => status::ENOENT,
            Error::IsDir(_) => status::EISDIR,
            Error::Exists(_) => status::EEXIST,
            Error::NoSpace { .. } => status::ENOSPC,
            Error::Shared { .. } => status::EPERM,
            Error::Busy(_) => status::EBUSY,
            Error::Refilling(_) => status::EAGAIN,
            Error::Io { source, .. } => io_status(source),
            Error::NotApplied(o) => match o.found {
                Found::Missing => status::ENOENT,
                Found::Failed(code) => code,
                _ => status::EINVAL,
            },
        }
    }

    /// How loudly a request answered with this error is logged: what a
    /// client may well ask (a file that is not there) at debug, a client's
    /// mistake at info, what a server must not be sent or an operator should
    /// see (a full disk) as a warning, a failed disk as an error.
    pub fn level(&self) -> Level {
        match self {
            Error::NotFound(_) | Error::Exists(_) => Level::Debug,
            Error::Refilling(_) => Level::Info,
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => Level::Debug,
            Error::Invalid(_) => Level::Info,
            Error::Decode(_)
            | Error::Length(_)
            | Error::UnknownCommand(_)
            | Error::Unsupported
            | Error::IsDir(_)
            | Error::NoSpace { .. }
            | Error::Shared { .. }
            | Error::Busy(_) => Level::Warn,
            Error::Io { .. } => Level::Error,
            Error::NotApplied(o) => match o.found {
                Found::Missing => Level::Debug,
                Found::Failed(_) => Level::Error,
                _ => Level::Info,
            },
        }
    }

    /// An I/O error while `what` ("opening", "reading") of `path`, for
    /// `map_err` (the path is copied only when it failed).
    pub fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
        move |source| Error::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether it says the file is not here (ENOENT).
    pub fn is_not_found(&self) -> bool {
        self.status() == status::ENOENT
    }
}

/// errno of an I/O error, as a wire status (ENOSPC stays ENOSPC).
pub fn io_status(e: &io::Error) -> u8 {
    match e.kind() {
        io::ErrorKind::NotFound => status::ENOENT,
        _ => e
            .raw_os_error()
            .filter(|&n| (1..=255).contains(&n))
            .map_or(status::EIO, |n| n as u8),
    }
}

impl From<proto::DecodeError> for Error {
    fn from(e: proto::DecodeError) -> Error {
        Error::Decode(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Decode(e) => write!(f, "{e}"),
            Error::Length(why) | Error::Invalid(why) => f.write_str(why),
            Error::UnknownCommand(c) => write!(f, "unknown command {c}"),
            Error::Unsupported => f.write_str("not supported by this storage"),
            Error::NotFound(p) => write!(f, "{}: no such file", p.display()),
            Error::IsDir(p) => write!(f, "{}: a directory", p.display()),
            Error::Exists(p) => write!(f, "{}: exists already", p.display()),
            Error::NoSpace { size } => write!(f, "no store path has room for {size} bytes"),
            Error::Shared { name, links } => {
                write!(f, "{name} holds the content of {links} files")
            }
            Error::Busy(why) => f.write_str(why),
            Error::Refilling(p) => write!(f, "store path {} is being refilled", p.display()),
            Error::Io { what, path, source } => {
                write!(f, "{what} {}: {source}", path.display())
            }
            Error::NotApplied(o) => f.write_str(&o.why),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Decode(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statuses clients (C ones too) act on, as FastDFS answers them.
    #[test]
    fn statuses() {
        let p = || PathBuf::from("/x");
        let io = |e: io::Error| Error::io("reading", Path::new("/x"))(e).status();
        assert_eq!(Error::NotFound(p()).status(), status::ENOENT);
        assert_eq!(Error::IsDir(p()).status(), status::EISDIR);
        assert_eq!(Error::Exists(p()).status(), status::EEXIST);
        assert_eq!(Error::NoSpace { size: 1 }.status(), status::ENOSPC);
        assert_eq!(Error::Busy("x").status(), status::EBUSY);
        assert_eq!(Error::Refilling(p()).status(), status::EAGAIN);
        assert_eq!(Error::Unsupported.status(), status::EINVAL);
        assert_eq!(Error::Invalid("x".into()).status(), status::EINVAL);
        let shared = Error::Shared {
            name: "n".into(),
            links: 2,
        };
        assert_eq!(shared.status(), status::EPERM);
        assert_eq!(io(io::ErrorKind::NotFound.into()), status::ENOENT);
        assert_eq!(
            io(io::Error::from_raw_os_error(libc::ENOSPC)),
            status::ENOSPC
        );
        assert_eq!(io(io::Error::other("no errno")), status::EIO);
        assert_eq!(io(io::Error::from_raw_os_error(300)), status::EIO);
        let not = |found| Error::NotApplied(Outcome::new(found, "x")).status();
        assert_eq!(not(Found::Missing), status::ENOENT);
        assert_eq!(not(Found::Failed(status::ENOSPC)), status::ENOSPC);
        assert_eq!(not(Found::Invalid), status::EINVAL);
    }
}
