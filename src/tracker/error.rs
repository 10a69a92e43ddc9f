//! Why the tracker refused a request: each variant carries what the log needs
//! (which group, storage or rule), and [`Error::status`] is the one table from
//! a refusal to the errno in the reply. The handlers return these; the reply
//! is made and the refusal logged once, in `handler.rs` (`Tracker::refuse`).

use super::state::Refusal;
use crate::proto::{self, status};
use std::fmt;

/// A refused tracker request.
#[derive(Debug)]
pub enum Error {
    /// The body does not decode. EINVAL.
    Decode(proto::DecodeError),
    /// A command code fdfs does not know. EINVAL.
    UnknownCommand(u8),
    /// A known command the tracker does not serve (a storage's command, say). EINVAL.
    Unsupported,
    /// The request breaks a rule of its command (a body where none goes, a
    /// ping before JOIN_LEADER, a leader that is not the candidate). EINVAL.
    Invalid(String),
    /// The state refused it (`about`: the group or storage asked of).
    /// ENOENT, ENOSPC, EINVAL, EBUSY, EALREADY or EFAULT, by the refusal.
    Refused { about: String, refusal: Refusal },
    /// What was asked of is not known here (a storage, a leader, an id). ENOENT.
    NotFound(String),
    /// A command that needs a JOIN on this connection first. EACCES.
    NotJoined,
    /// This tracker does not answer it (not the leader, no storage ids). EOPNOTSUPP.
    NotHere(&'static str),
    /// Not yet: this tracker still copies the cluster state from its peers. EAGAIN.
    NotYet(&'static str),
    /// Done already on this connection (a second JOIN_LEADER). EEXIST.
    Already(&'static str),
    /// A request body, or a reply, would not fit `max_buff_size` (as
    /// upstream, which has one buffer for either). EINVAL.
    TooBig {
        what: &'static str,
        need: u64,
        max: u64,
    },
}

/// What a tracker handler returns: the reply's body, or why not.
pub type Res = Result<Vec<u8>, Error>;

impl Error {
    /// The status byte of the reply: the errno upstream answers in that case.
    pub fn status(&self) -> u8 {
        match self {
            Error::Decode(_)
            | Error::UnknownCommand(_)
            | Error::Unsupported
            | Error::Invalid(_)
            | Error::TooBig { .. } => status::EINVAL,
            Error::Refused { refusal, .. } => match refusal {
                Refusal::NotFound => status::ENOENT,
                Refusal::NoSpace => status::ENOSPC,
                Refusal::Invalid => status::EINVAL,
                Refusal::Busy => status::EBUSY,
                Refusal::Already => status::EALREADY,
                Refusal::Fault => status::EFAULT,
            },
            Error::NotFound(_) => status::ENOENT,
            Error::NotJoined => status::EACCES,
            Error::NotHere(_) => status::EOPNOTSUPP,
            Error::NotYet(_) => status::EAGAIN,
            Error::Already(_) => status::EEXIST,
        }
    }

    /// Whether the peer sent what no tracker serves (a body that does not
    /// decode, an unknown or unsupported command) or asked for more than the
    /// config allows: worth a warning whoever sent it.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            Error::Decode(_) | Error::UnknownCommand(_) | Error::Unsupported | Error::TooBig { .. }
        )
    }

    /// The state's `refusal` of a request about `about` ("storage
    /// group1/10.0.0.5"); made in a `map_err` closure, so that a request
    /// served formats nothing.
    pub fn refused(refusal: Refusal, about: impl Into<String>) -> Error {
        Error::Refused {
            about: about.into(),
            refusal,
        }
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
            Error::UnknownCommand(c) => write!(f, "unknown command {c}"),
            Error::Unsupported => f.write_str("not supported by this tracker"),
            Error::Invalid(why) => f.write_str(why),
            Error::Refused { about, refusal } => write!(f, "{about}: {}", refusal.reason()),
            Error::NotFound(what) => write!(f, "no {what}"),
            Error::NotJoined => f.write_str("no JOIN on this connection"),
            Error::NotHere(why) | Error::NotYet(why) | Error::Already(why) => f.write_str(why),
            Error::TooBig { what, need, max } => {
                write!(f, "{what} of {need} bytes exceeds max_buff_size {max}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Decode(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statuses clients and storages (C ones too) act on.
    #[test]
    fn statuses() {
        let refused = |r| Error::refused(r, "group g").status();
        assert_eq!(refused(Refusal::NotFound), status::ENOENT);
        assert_eq!(refused(Refusal::NoSpace), status::ENOSPC);
        assert_eq!(refused(Refusal::Invalid), status::EINVAL);
        assert_eq!(refused(Refusal::Busy), status::EBUSY);
        assert_eq!(refused(Refusal::Already), status::EALREADY);
        assert_eq!(refused(Refusal::Fault), status::EFAULT);
        assert_eq!(Error::NotJoined.status(), status::EACCES);
        assert_eq!(Error::NotHere("x").status(), status::EOPNOTSUPP);
        assert_eq!(Error::NotYet("x").status(), status::EAGAIN);
        assert_eq!(Error::Already("x").status(), status::EEXIST);
        assert_eq!(Error::NotFound("leader".into()).status(), status::ENOENT);
        assert_eq!(Error::Unsupported.status(), status::EINVAL);
        let big = Error::TooBig {
            what: "reply",
            need: 2,
            max: 1,
        };
        assert_eq!(big.status(), status::EINVAL);
        assert_eq!(
            Error::refused(Refusal::Busy, "storage g/s").to_string(),
            "storage g/s: busy"
        );
    }
}
