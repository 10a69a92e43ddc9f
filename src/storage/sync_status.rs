//! When a pushed binlog record is done: the status we answer a peer's sync
//! request with, what a peer's answer means to us as the sender, and the
//! rate-limited log of refusals. One table each way, so that fdfs and
//! C FastDFS 6.16.1 storages, pushing to each other, never disagree on
//! "done". The handlers find the [`Found`]; [`answer`] turns it into a
//! status, [`conclude`] logs and counts it, and the push thread asks
//! [`next`] what a peer's status means. Uses proto, and the [`Store`] only
//! for its log throttle, received counters and refetch queue; no file or
//! network I/O.
//!
//! The C sender (storage/storage_sync.c, storage_sync_data and its helpers)
//! keeps a record until its push succeeds, and retries it every 5 s for ever
//! (storage_sync_thread_entrance: any non-zero result breaks the session,
//! sleeps 5 s and starts again at the same record). So an answer it does not
//! count as done for a record that can never apply stops everything after it.
//!
//! # Receiver: what we answer
//!
//! | Command | Situation here | fdfs answers | C sender's view | C receiver answers |
//! |---|---|---|---|---|
//! | SYNC_CREATE_FILE 16 | stored | 0 | done | 0 |
//! | 16 | same-size file already here, or a header-only push | EEXIST | done | EEXIST |
//! | 16, 18 | content's CRC32 is not the one its (normal) name carries | EEXIST, not stored | done | 0, stored (no check) |
//! | SYNC_UPDATE_FILE 18 | stored (always replaces) | 0 | done | 0 |
//! | SYNC_DELETE_FILE 17 | deleted | 0 | done | 0 |
//! | 17 | not here | ENOENT | done | ENOENT |
//! | SYNC_APPEND_FILE 25 | our size == offset: appended | 0 | done | 0 |
//! | 25 | our size >= offset + length | EEXIST | done | EEXIST |
//! | 25 | not here, or our size < offset + length (and != offset) | ENOENT | sends the whole file (18) | ENOENT |
//! | SYNC_MODIFY_FILE 35 | offset <= our size: written | 0 | done | 0 |
//! | 35 | not here, or offset > our size | ENOENT | sends the whole file (18) | ENOENT |
//! | SYNC_TRUNCATE_FILE 37 | our size == old size: truncated | 0 | done | 0 |
//! | 37 | our size == new size | EEXIST | done | EEXIST (0 when old == new) |
//! | 37 | our size is neither | EEXIST, and the file is fetched whole from the sender (`refetch`) | done | EEXIST, left diverged |
//! | 37 | not here | EEXIST, and the file is fetched whole from the sender | done | ENOENT, which its own sender retries for ever |
//! | SYNC_RENAME_FILE 40 | renamed (over the new name if both are here) | 0 | done | 0 (EEXIST if both are here) |
//! | 40 | new name here, old one gone | EEXIST | done | EEXIST |
//! | 40 | neither name here | ENOENT | sends the new name whole (16) | ENOENT |
//! | SYNC_CREATE_LINK 19 | link made | 0 | done | 0 |
//! | 19 | link name already here | 0 | done | 0 |
//! | 19 | link target not here | ENOENT | sends the link's content whole under its name (16) | 0 |
//! | any | malformed, another group's, or a name we never store | EINVAL (closes) | retried every 5 s | EINVAL |
//! | any | local failure (disk full, I/O) | its errno | retried every 5 s | its errno |
//!
//! Sources: storage/storage_service.c, storage_sync_copy_file (+ its done
//! callback), storage_sync_delete_file, storage_sync_append_file,
//! storage_sync_modify_file (+ storage_sync_modify_file_done_callback),
//! storage_sync_truncate_file, storage_sync_rename_file,
//! storage_do_sync_link_file; storage/storage_sync.c for the sender's view.
//!
//! The two deliberate differences from the C receiver: a truncate of a file
//! we do not have is answered EEXIST, not ENOENT, because the C sender treats
//! ENOENT on a truncate as a failure and would retry it for ever; and content
//! that contradicts its name's CRC32 is dropped (answered EEXIST, so the
//! sender moves on) instead of stored. And where a C receiver leaves a copy
//! diverged after such a truncate (the C sender never follows up with the
//! whole file), we fetch the file from the sender ourselves.
//!
//! # Sender: what we make of an answer
//!
//! | Record | Pushed as | Answer | fdfs sender | C sender |
//! |---|---|---|---|---|
//! | C c r, U u | 16, 18 | 0, EEXIST | done | done |
//! | D d | 17 | 0, ENOENT | done | done |
//! | A, M | 25, 35 | 0, EEXIST | done | done |
//! | A, M | 25, 35 | ENOENT | sends the whole file (18) | same |
//! | T | 37 | 0 | done | done |
//! | T | 37 | EEXIST | asks the peer's size (QUERY_FILE_INFO 22): the new size is done, anything else (or ENOENT) sends the whole file (18) | done, a diverged copy stays diverged |
//! | T | 37 | ENOENT | sends the whole file (18) | retried for ever |
//! | R | 40 | 0, EEXIST | done | done |
//! | R | 40 | ENOENT | sends the new name whole (16) | same |
//! | L l | 19 | 0, ENOENT, EEXIST | done | done (0, ENOENT) |
//! | any | | anything else | retried (logged) | retried every 5 s |

use super::Store;
use crate::net::LogLimit;
use crate::proto::{Cmd, status};
use log::Level;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The commands a peer pushes binlog records with.
pub fn is_sync(cmd: Cmd) -> bool {
    matches!(
        cmd,
        Cmd::SyncCreateFile
            | Cmd::SyncDeleteFile
            | Cmd::SyncUpdateFile
            | Cmd::SyncCreateLink
            | Cmd::SyncAppendFile
            | Cmd::SyncModifyFile
            | Cmd::SyncTruncateFile
            | Cmd::SyncRenameFile
    )
}

/// What a receiver found when it came to apply a pushed record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Applied now.
    Applied,
    /// The file already is as the record leaves it: the same file (create),
    /// the bytes already there (append), the new size (truncate), the new
    /// name (rename), the link.
    AlreadyThere,
    /// The file the record changes is not here (a rename's old name and new
    /// name, a link's target).
    Missing,
    /// The file is here but not in the state the change starts from: an
    /// append or modify past our end, a truncate from a size we do not have.
    Diverged,
    /// Pushed content whose CRC32 is not the one its name carries.
    BadContent,
    /// Malformed, another group's file, or a name we never store.
    Invalid,
    /// A local failure; the errno is the answer.
    Failed(u8),
}

/// What a receiver found, and why, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The situation, which decides the answer.
    pub found: Found,
    /// What was seen, for the log line (empty when applied).
    pub why: String,
}

impl Outcome {
    /// Applied, nothing to say.
    pub fn applied() -> Outcome {
        Outcome {
            found: Found::Applied,
            why: String::new(),
        }
    }

    /// Not applied (or not all of it), because `why`.
    pub fn new(found: Found, why: impl Into<String>) -> Outcome {
        Outcome {
            found,
            why: why.into(),
        }
    }

    /// A local failure with its errno.
    pub fn failed(code: u8, why: impl Into<String>) -> Outcome {
        Outcome::new(Found::Failed(code), why)
    }
}

/// Our answer to a sync request, and how loudly it is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The reply's status byte.
    pub status: u8,
    /// The level of the (throttled) log line about a request not applied.
    pub level: Level,
}

/// The receiver table (module docs): the status for `found` when applying
/// `cmd`. Commands that are not sync commands answer as `Invalid`.
pub fn answer(cmd: Cmd, found: Found) -> Answer {
    use Found::*;
    let (status, level) = match (cmd, found) {
        (_, Applied) => (status::OK, Level::Debug),
        (_, Failed(code)) => (code, Level::Warn),
        (_, Invalid) => (status::EINVAL, Level::Warn),
        // Re-pushes after a sender restarts (up to a mark interval of records).
        (Cmd::SyncCreateFile | Cmd::SyncUpdateFile, AlreadyThere) => (status::EEXIST, Level::Info),
        (Cmd::SyncCreateFile | Cmd::SyncUpdateFile, BadContent) => (status::EEXIST, Level::Warn),
        (Cmd::SyncDeleteFile, AlreadyThere | Missing) => (status::ENOENT, Level::Info),
        (Cmd::SyncAppendFile | Cmd::SyncModifyFile, AlreadyThere) => (status::EEXIST, Level::Info),
        // The sender answers with the whole file.
        (Cmd::SyncAppendFile | Cmd::SyncModifyFile, Missing) => (status::ENOENT, Level::Info),
        (Cmd::SyncAppendFile | Cmd::SyncModifyFile, Diverged) => (status::ENOENT, Level::Warn),
        (Cmd::SyncTruncateFile, AlreadyThere) => (status::EEXIST, Level::Info),
        // Never ENOENT: the C sender would retry it for ever.
        (Cmd::SyncTruncateFile, Missing | Diverged) => (status::EEXIST, Level::Warn),
        (Cmd::SyncRenameFile, AlreadyThere) => (status::EEXIST, Level::Info),
        (Cmd::SyncRenameFile, Missing) => (status::ENOENT, Level::Info),
        // The C sender counts only 0 and ENOENT as done for a link.
        (Cmd::SyncCreateLink, AlreadyThere) => (status::OK, Level::Info),
        (Cmd::SyncCreateLink, Missing) => (status::ENOENT, Level::Warn),
        // Combinations the handlers do not produce: whatever a sender counts done.
        (Cmd::SyncCreateFile | Cmd::SyncUpdateFile, Missing | Diverged) => {
            (status::EEXIST, Level::Warn)
        }
        (Cmd::SyncDeleteFile, Diverged | BadContent) => (status::ENOENT, Level::Warn),
        (Cmd::SyncAppendFile | Cmd::SyncModifyFile, BadContent) => (status::ENOENT, Level::Warn),
        (Cmd::SyncTruncateFile, BadContent) => (status::EEXIST, Level::Warn),
        (Cmd::SyncRenameFile, Diverged | BadContent) => (status::EEXIST, Level::Warn),
        (Cmd::SyncCreateLink, Diverged | BadContent) => (status::ENOENT, Level::Warn),
        (_, _) => (status::EINVAL, Level::Warn),
    };
    Answer { status, level }
}

/// What the C 6.16.1 sender does after `status` for a record it pushed
/// with `cmd` (storage/storage_sync.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CView {
    /// The record is done.
    Done,
    /// It sends the whole file instead, then the record is done if that is.
    SendsWhole,
    /// It keeps the record and tries it again in 5 s.
    Retries,
}

/// The C sender's rule for `status` answered to `cmd`: storage_sync_copy_file
/// (0, EEXIST), storage_sync_delete_file and storage_sync_link_file (0,
/// ENOENT), storage_sync_modify_file (0, EEXIST; ENOENT makes
/// storage_sync_data send the whole file), storage_sync_truncate_file (0,
/// EEXIST only), storage_sync_rename_file (0, EEXIST; ENOENT sends the new
/// name whole).
pub fn c_sender(cmd: Cmd, status: u8) -> CView {
    use status::{EEXIST, ENOENT, OK};
    match (cmd, status) {
        (_, OK) => CView::Done,
        (Cmd::SyncCreateFile | Cmd::SyncUpdateFile, EEXIST) => CView::Done,
        (Cmd::SyncDeleteFile | Cmd::SyncCreateLink, ENOENT) => CView::Done,
        (Cmd::SyncAppendFile | Cmd::SyncModifyFile, EEXIST) => CView::Done,
        (Cmd::SyncAppendFile | Cmd::SyncModifyFile, ENOENT) => CView::SendsWhole,
        (Cmd::SyncTruncateFile, EEXIST) => CView::Done,
        (Cmd::SyncRenameFile, EEXIST) => CView::Done,
        (Cmd::SyncRenameFile, ENOENT) => CView::SendsWhole,
        _ => CView::Retries,
    }
}

/// What we do after a peer answered `status` to a push of `cmd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The record is done.
    Done,
    /// Send the whole current file (SYNC_UPDATE_FILE; SYNC_CREATE_FILE of
    /// the new name after a rename).
    SendWhole,
    /// Ask the peer the file's size (QUERY_FILE_INFO): the record's new size
    /// means done, anything else sends the whole file.
    CheckSize,
    /// Keep the record; the session ends and starts again later.
    Retry,
}

/// The sender table (module docs). QUERY_FILE_INFO is the size check of a
/// truncate: 0 is compared by the caller, ENOENT sends the whole file.
pub fn next(cmd: Cmd, status: u8) -> Next {
    use status::{EEXIST, ENOENT, OK};
    match (cmd, status) {
        (_, OK) => Next::Done,
        (Cmd::SyncCreateFile | Cmd::SyncUpdateFile, EEXIST) => Next::Done,
        (Cmd::SyncDeleteFile, ENOENT) => Next::Done,
        (Cmd::SyncAppendFile | Cmd::SyncModifyFile, EEXIST) => Next::Done,
        (Cmd::SyncAppendFile | Cmd::SyncModifyFile, ENOENT) => Next::SendWhole,
        // A C receiver answers EEXIST both when the truncate is already in
        // and when its copy diverged; only its size tells which.
        (Cmd::SyncTruncateFile, EEXIST) => Next::CheckSize,
        (Cmd::SyncTruncateFile, ENOENT) => Next::SendWhole,
        (Cmd::SyncRenameFile, EEXIST) => Next::Done,
        (Cmd::SyncRenameFile, ENOENT) => Next::SendWhole,
        (Cmd::SyncCreateLink, EEXIST) => Next::Done,
        // The peer lacks the target (the sender removed it before the peer
        // got it, or a dedup source went while the peer linked to it): the
        // link's content goes whole under its own name.
        (Cmd::SyncCreateLink, ENOENT) => Next::SendWhole,
        (Cmd::QueryFileInfo, ENOENT) => Next::SendWhole,
        _ => Next::Retry,
    }
}

/// Who pushed a request: its address and, once it said so with
/// REPORT_SERVER_ID, its storage id (C's parallel sync connections never say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pusher {
    /// Address of the connection.
    pub addr: SocketAddr,
    /// Storage id from REPORT_SERVER_ID.
    pub id: Option<String>,
}

impl fmt::Display for Pusher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) if *id != self.addr.ip().to_string() => write!(f, "{} ({id})", self.addr),
            _ => write!(f, "{}", self.addr),
        }
    }
}

/// The status for a sync request's outcome `o`: logs what was not applied
/// (throttled per peer), and notes a record the C sender counts as done as
/// received from its source (the bytes only when applied).
pub fn conclude(store: &Store, p: &Pusher, cmd: Cmd, remote: &str, sent: Sent, o: &Outcome) -> u8 {
    let a = answer(cmd, o.found);
    if c_sender(cmd, a.status) == CView::Done {
        let bytes = if o.found == Found::Applied {
            sent.bytes
        } else {
            0
        };
        store.stats.received(p.id.as_deref(), sent.timestamp, bytes);
    }
    if cmd == Cmd::SyncTruncateFile && matches!(o.found, Found::Missing | Found::Diverged) {
        // Answered as done, so a C sender moves on without ever sending the
        // file: fetch it whole from the sender instead (see `refetch`).
        store.refetch.request(p.addr.ip(), remote);
    }
    if o.found != Found::Applied {
        store.sync_log.log(a.level, &from_key(p), || {
            format!(
                "{} of {remote} from {p}: {}; answered {}",
                cmd.name(),
                o.why,
                status::name(a.status)
            )
        });
    }
    a.status
}

/// The throttle key of the lines about requests `p` pushes to us.
pub fn from_key(p: &Pusher) -> String {
    format!("sync from {}", p.addr.ip())
}

/// The throttle key of the lines about our pushes to the peer `id`.
pub fn to_key(id: &str) -> String {
    format!("sync to {id}")
}

/// A pushed record's source timestamp and the content bytes it carried.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    /// The record's timestamp on its source.
    pub timestamp: u32,
    /// File content bytes in the request.
    pub bytes: u64,
}

/// How often a peer may fill the log with sync lines of one level.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// At most one line per peer, direction and level every [`LOG_EVERY`]; the next line
/// that goes out says how many were held back. A peer that retries a refused
/// record every 5 s, or re-pushes hundreds after a restart, then costs a few
/// lines, not a flood.
pub struct Throttle(LogLimit<(String, Level)>);

impl Default for Throttle {
    fn default() -> Self {
        Throttle(LogLimit::new(LOG_EVERY))
    }
}

impl Throttle {
    /// Log `line()` at `level` unless a line of that level with the same
    /// `key` ([`from_key`], [`to_key`]) went out less than [`LOG_EVERY`] ago.
    pub fn log(&self, level: Level, key: &str, line: impl FnOnce() -> String) {
        self.0
            .log(level, &(key.to_string(), level), module_path!(), line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_commands() {
        let sync: Vec<Cmd> = Cmd::ALL.iter().copied().filter(|&c| is_sync(c)).collect();
        assert_eq!(sync.len(), SYNC_CMDS.len());
        assert!(SYNC_CMDS.iter().all(|&c| is_sync(c)));
    }

    const SYNC_CMDS: [Cmd; 8] = [
        Cmd::SyncCreateFile,
        Cmd::SyncUpdateFile,
        Cmd::SyncDeleteFile,
        Cmd::SyncAppendFile,
        Cmd::SyncModifyFile,
        Cmd::SyncTruncateFile,
        Cmd::SyncRenameFile,
        Cmd::SyncCreateLink,
    ];
    const SETTLED: [Found; 5] = [
        Found::Applied,
        Found::AlreadyThere,
        Found::Missing,
        Found::Diverged,
        Found::BadContent,
    ];

    #[test]
    fn a_c_sender_never_retries_what_cannot_change() {
        for cmd in SYNC_CMDS {
            for found in SETTLED {
                let a = answer(cmd, found);
                assert_ne!(
                    c_sender(cmd, a.status),
                    CView::Retries,
                    "{} {found:?} answered {}",
                    cmd.name(),
                    status::name(a.status)
                );
                assert_ne!(
                    next(cmd, a.status),
                    Next::Retry,
                    "our own sender, {} {found:?}",
                    cmd.name()
                );
            }
        }
    }

    #[test]
    fn refusals_and_failures_are_retried_and_loud() {
        for cmd in SYNC_CMDS {
            let a = answer(cmd, Found::Invalid);
            assert_eq!((a.status, a.level), (status::EINVAL, Level::Warn));
            assert_eq!(c_sender(cmd, a.status), CView::Retries);
            let a = answer(cmd, Found::Failed(status::ENOSPC));
            assert_eq!((a.status, a.level), (status::ENOSPC, Level::Warn));
            assert_eq!(next(cmd, a.status), Next::Retry);
        }
    }

    /// The receiver rows of the module table, as C's receiver answers them
    /// unless the table says otherwise.
    #[test]
    fn receiver_rows() {
        use Found::*;
        use status::{EEXIST, ENOENT, OK};
        let rows = [
            (Cmd::SyncCreateFile, AlreadyThere, EEXIST),
            (Cmd::SyncCreateFile, BadContent, EEXIST),
            (Cmd::SyncUpdateFile, BadContent, EEXIST),
            (Cmd::SyncDeleteFile, Missing, ENOENT),
            (Cmd::SyncAppendFile, AlreadyThere, EEXIST),
            (Cmd::SyncAppendFile, Missing, ENOENT),
            (Cmd::SyncAppendFile, Diverged, ENOENT),
            (Cmd::SyncModifyFile, Missing, ENOENT),
            (Cmd::SyncModifyFile, Diverged, ENOENT),
            (Cmd::SyncTruncateFile, AlreadyThere, EEXIST),
            (Cmd::SyncTruncateFile, Diverged, EEXIST),
            (Cmd::SyncTruncateFile, Missing, EEXIST),
            (Cmd::SyncRenameFile, AlreadyThere, EEXIST),
            (Cmd::SyncRenameFile, Missing, ENOENT),
            (Cmd::SyncCreateLink, AlreadyThere, OK),
            (Cmd::SyncCreateLink, Missing, ENOENT),
        ];
        for (cmd, found, want) in rows {
            assert_eq!(
                status::name(answer(cmd, found).status),
                status::name(want),
                "{} {found:?}",
                cmd.name()
            );
        }
        for cmd in SYNC_CMDS {
            assert_eq!(answer(cmd, Applied).status, OK);
        }
    }

    /// What a C receiver answers, and what we do about it.
    #[test]
    fn sender_rows() {
        use status::{EEXIST, EINVAL, ENOENT, OK};
        let rows = [
            (Cmd::SyncCreateFile, EEXIST, Next::Done),
            (Cmd::SyncCreateFile, ENOENT, Next::Retry),
            (Cmd::SyncUpdateFile, EEXIST, Next::Done),
            (Cmd::SyncDeleteFile, ENOENT, Next::Done),
            (Cmd::SyncDeleteFile, EEXIST, Next::Retry),
            (Cmd::SyncAppendFile, EEXIST, Next::Done),
            (Cmd::SyncAppendFile, ENOENT, Next::SendWhole),
            (Cmd::SyncModifyFile, ENOENT, Next::SendWhole),
            (Cmd::SyncTruncateFile, OK, Next::Done),
            (Cmd::SyncTruncateFile, EEXIST, Next::CheckSize),
            (Cmd::SyncTruncateFile, ENOENT, Next::SendWhole),
            (Cmd::SyncRenameFile, EEXIST, Next::Done),
            (Cmd::SyncRenameFile, ENOENT, Next::SendWhole),
            (Cmd::SyncCreateLink, ENOENT, Next::SendWhole),
            (Cmd::SyncCreateLink, EEXIST, Next::Done),
            (Cmd::QueryFileInfo, ENOENT, Next::SendWhole),
            (Cmd::QueryFileInfo, EINVAL, Next::Retry),
        ];
        for (cmd, st, want) in rows {
            assert_eq!(next(cmd, st), want, "{} {}", cmd.name(), status::name(st));
        }
        for cmd in SYNC_CMDS {
            assert_eq!(next(cmd, EINVAL), Next::Retry, "{}", cmd.name());
        }
    }

    /// Upstream's sender rules, including the one this module works around.
    #[test]
    fn c_sender_rows() {
        use status::{EEXIST, ENOENT};
        assert_eq!(c_sender(Cmd::SyncTruncateFile, ENOENT), CView::Retries);
        assert_eq!(c_sender(Cmd::SyncTruncateFile, EEXIST), CView::Done);
        assert_eq!(c_sender(Cmd::SyncCreateLink, EEXIST), CView::Retries);
        assert_eq!(c_sender(Cmd::SyncDeleteFile, EEXIST), CView::Retries);
        assert_eq!(c_sender(Cmd::SyncAppendFile, ENOENT), CView::SendsWhole);
        assert_eq!(c_sender(Cmd::SyncRenameFile, ENOENT), CView::SendsWhole);
    }

    #[test]
    fn pusher_names_its_id_when_it_differs_from_its_address() {
        let addr: SocketAddr = "10.0.0.5:4312".parse().expect("address");
        let p = |id: Option<&str>| Pusher {
            addr,
            id: id.map(str::to_string),
        };
        assert_eq!(p(None).to_string(), "10.0.0.5:4312");
        assert_eq!(p(Some("10.0.0.5")).to_string(), "10.0.0.5:4312");
        assert_eq!(p(Some("100001")).to_string(), "10.0.0.5:4312 (100001)");
    }
}
