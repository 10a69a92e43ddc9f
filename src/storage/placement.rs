//! Which thread runs each storage request: one table, one decision. The
//! handler asks [`decide`] and does what it says; nothing else chooses.
//! `cached` (reads that refuse to wait) and `net` (the `INLINE` pool index)
//! only carry the decision out.
//!
//! A request runs in one of these places ([`Place`]):
//! * **the network thread, in the handler** (`Loop`): nothing to wait for,
//!   or the config accepts that a read may stall the loop's other
//!   connections (`disk_inline_reads`);
//! * **the network thread, with calls that refuse to wait for the disk**
//!   (`Cached`, `storage::cached`): a cached read costs a few microseconds,
//!   less than handing it to a disk thread and back; one that would wait
//!   asks again, and goes where the next rows say;
//! * **the network thread, as a job** (`Inline`, `net::INLINE`): a small
//!   change that touches only the page cache normally costs a few tens of
//!   microseconds, less than handing it to a disk thread and back (two
//!   wake-ups, and on a busy machine two waits for a CPU). The price: one
//!   that does wait for the disk (a cold directory, writeback throttling)
//!   holds up the other connections of its loop meanwhile;
//! * **a disk thread of the file's store path** (`Disk`): anything that may
//!   wait for the disk.
//!
//! [`TABLE`] says it: for each [`Kind`] of request, the first row whose
//! condition holds ([`Cond`]) places it.
//!
//! Each mechanism that keeps work on a network thread was measured against
//! sending that work to a disk thread (the figures are in the README); one
//! that did not pay for itself is gone: a back-off that sent every change to
//! the disk threads for 2 s after one on a network thread had waited more
//! than 10 ms (timed with `getrusage`) made no bench row better, and made
//! mixed loads slower, with or without big uploads filling the page cache
//! meanwhile: the waits it saw were mostly for locks and CPUs on a busy
//! machine, and the disk threads it sent changes to queue behind the big
//! writes.

use super::Store;
use crate::proto::Cmd;
use std::path::Path;

/// Uploads and appends up to this size may be done on the network thread:
/// one chunk of the default `buff_size`, written in one go.
pub const INLINE_MAX_BYTES: u64 = 256 * 1024;

/// What a request does, as far as where it runs goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Touches no file (ACTIVE_TEST, REPORT_SERVER_ID), or is refused.
    NoFile,
    /// A read with a form that refuses to wait (DOWNLOAD_FILE, GET_METADATA).
    CachedRead,
    /// A read of the inode only (QUERY_FILE_INFO of a name that carries
    /// its CRC32, or asked without it).
    Stat,
    /// Another read: of file content (QUERY_FILE_INFO that computes the
    /// CRC32 of an appender or slave).
    Read,
    /// A small change: new files (uploads, pushed copies), deletes, metadata,
    /// links.
    Change,
    /// A change to an appender file in place (append, modify, truncate, and
    /// pushed renames), which `durable_uploads` syncs rather than journals.
    InPlace,
    /// Reads a whole file to change it (REGENERATE_APPENDER_FILENAME).
    Long,
    /// A pushed link (SYNC_CREATE_LINK): a small change, but with dedup on
    /// its target may be new to the index, and is then read whole unless its
    /// name gives its size and CRC32.
    Link,
    /// Walks a whole store path (FDFS_TREE_DIGEST from a repairing peer).
    Walk,
}

/// The kind of storage command `cmd`.
pub fn kind(cmd: Cmd) -> Kind {
    match cmd {
        Cmd::DownloadFile | Cmd::GetMetadata => Kind::CachedRead,
        Cmd::QueryFileInfo => Kind::Stat,
        Cmd::FdfsDedupStat => Kind::Read,
        Cmd::UploadFile
        | Cmd::UploadAppenderFile
        | Cmd::UploadSlaveFile
        | Cmd::DeleteFile
        | Cmd::SetMetadata
        | Cmd::SyncCreateFile
        | Cmd::SyncUpdateFile
        | Cmd::SyncDeleteFile => Kind::Change,
        Cmd::SyncCreateLink => Kind::Link,
        Cmd::AppendFile
        | Cmd::ModifyFile
        | Cmd::TruncateFile
        | Cmd::SyncAppendFile
        | Cmd::SyncModifyFile
        | Cmd::SyncTruncateFile
        | Cmd::SyncRenameFile => Kind::InPlace,
        Cmd::RegenerateAppenderFilename => Kind::Long,
        Cmd::FdfsTreeDigest => Kind::Walk,
        _ => Kind::NoFile,
    }
}

/// Where a request runs (see the module notes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// On the network thread, in the handler.
    Loop,
    /// On the network thread with calls that refuse to wait; if they would,
    /// decide again with the cache tried.
    Cached,
    /// On the network thread as a job (`net::INLINE`).
    Inline,
    /// On a disk thread of the file's store path.
    Disk,
    /// On the repair module's own thread.
    Background,
}

/// What a row asks of the request and of the server now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// Always true: a kind's last row.
    Always,
    /// The cached fast path has not been tried for this request yet.
    CacheUntried,
    /// storage.conf `disk_inline_reads`: reads may wait for metadata (a
    /// path lookup, an inode) on the network thread, never for content.
    InlineReads,
    /// storage.conf `fsync_after_written_bytes` > 0: changes sync files.
    FsyncEvery,
    /// storage.conf `durable_uploads`.
    Durable,
    /// storage.conf `check_file_duplicate`.
    Dedup,
    /// storage.conf `disk_inline_writes = false`.
    InlineWritesOff,
    /// The body is bigger than [`INLINE_MAX_BYTES`].
    Big,
    /// Another change holds the lock of the request's file or of its
    /// metadata file (an append, a regeneration that reads the whole file).
    FileBusy,
}

/// One row of [`TABLE`].
#[derive(Debug)]
pub struct Row {
    pub kinds: &'static [Kind],
    pub when: Cond,
    pub place: Place,
    pub why: &'static str,
}

const CHANGES: &[Kind] = &[Kind::Change, Kind::InPlace, Kind::Link];
const READS: &[Kind] = &[Kind::CachedRead, Kind::Stat, Kind::Read];

/// Where each kind of request runs: the first row of its kind whose
/// condition holds. Cheap conditions come first, so a request is asked only
/// what its place depends on.
pub const TABLE: &[Row] = &[
    Row {
        kinds: &[Kind::Walk],
        when: Cond::Always,
        place: Place::Background,
        why: "may stat every file of a store path: must not hold up its disk threads",
    },
    Row {
        kinds: &[Kind::NoFile],
        when: Cond::Always,
        place: Place::Loop,
        why: "no file to wait for",
    },
    Row {
        kinds: &[Kind::CachedRead],
        when: Cond::CacheUntried,
        place: Place::Cached,
        why: "path and bytes in memory: a few microseconds, less than two thread hand-offs",
    },
    Row {
        kinds: &[Kind::Stat],
        when: Cond::InlineReads,
        place: Place::Loop,
        why: "disk_inline_reads: a stat may wait for an inode block on the loop, no hand-off",
    },
    Row {
        kinds: READS,
        when: Cond::Always,
        place: Place::Disk,
        why: "a read that may wait for the disk must not hold up the loop",
    },
    Row {
        kinds: &[Kind::Long],
        when: Cond::Always,
        place: Place::Disk,
        why: "reads the whole file",
    },
    Row {
        kinds: &[Kind::Link],
        when: Cond::Dedup,
        place: Place::Disk,
        why: "check_file_duplicate: a link's target new to the index is read whole when its name does not give its CRC32",
    },
    Row {
        kinds: CHANGES,
        when: Cond::FsyncEvery,
        place: Place::Disk,
        why: "fsync_after_written_bytes syncs what it writes",
    },
    Row {
        kinds: &[Kind::InPlace],
        when: Cond::Durable,
        place: Place::Disk,
        why: "durable_uploads syncs a change in place (only new files go through the journal)",
    },
    Row {
        kinds: CHANGES,
        when: Cond::InlineWritesOff,
        place: Place::Disk,
        why: "disk_inline_writes = false",
    },
    Row {
        kinds: CHANGES,
        when: Cond::Big,
        place: Place::Disk,
        why: "more than one chunk: several writes, and writeback may throttle them",
    },
    Row {
        kinds: CHANGES,
        when: Cond::FileBusy,
        place: Place::Disk,
        why: "another change holds the file's lock: wait on a disk thread, not the loop",
    },
    Row {
        kinds: CHANGES,
        when: Cond::Always,
        place: Place::Inline,
        why: "page cache only: cheaper than two thread wake-ups",
    },
];

/// What [`decide`] asks about a request.
pub trait Situation {
    /// Whether `c` holds for this request now.
    fn holds(&self, c: Cond) -> bool;
}

/// The row of [`TABLE`] that places a request of `kind` in situation `s`.
pub fn rule(kind: Kind, s: &impl Situation) -> &'static Row {
    TABLE
        .iter()
        .find(|r| r.kinds.contains(&kind) && s.holds(r.when))
        .expect("every kind ends with an Always row (tested)")
}

/// Where a request `cmd` runs in situation `s` (and why, in the trace log).
pub fn decide(cmd: Cmd, s: &impl Situation) -> Place {
    decide_kind(cmd, kind(cmd), s)
}

/// [`decide`] for a request `cmd` whose kind its body settles (`kind`
/// instead of the command's usual one).
pub fn decide_kind(cmd: Cmd, kind: Kind, s: &impl Situation) -> Place {
    let r = rule(kind, s);
    log::trace!("{} runs {:?}: {}", cmd.name(), r.place, r.why);
    r.place
}

/// A request as the storage sees it now: the [`Situation`] the handler
/// passes to [`decide`].
pub struct Now<'a> {
    store: &'a Store,
    bytes: u64,
    file: Option<&'a Path>,
    cache_tried: bool,
}

impl<'a> Now<'a> {
    /// A request with no body to speak of and no file known yet.
    pub fn new(store: &'a Store) -> Now<'a> {
        Now {
            store,
            bytes: 0,
            file: None,
            cache_tried: false,
        }
    }

    /// Its body is `bytes` long.
    pub fn bytes(self, bytes: u64) -> Now<'a> {
        Now { bytes, ..self }
    }

    /// It changes the file at `path` (whose lock it will take).
    pub fn file(self, path: Option<&'a Path>) -> Now<'a> {
        Now { file: path, ..self }
    }

    /// Its cached fast path has been tried, and would have waited.
    pub fn cache_tried(self) -> Now<'a> {
        Now {
            cache_tried: true,
            ..self
        }
    }
}

impl Situation for Now<'_> {
    fn holds(&self, c: Cond) -> bool {
        let cfg = &self.store.cfg;
        match c {
            Cond::Always => true,
            Cond::CacheUntried => !self.cache_tried,
            Cond::InlineReads => cfg.disk_inline_reads,
            Cond::FsyncEvery => cfg.fsync_after_written_bytes > 0,
            Cond::Durable => cfg.durable_uploads,
            Cond::Dedup => cfg.check_file_duplicate,
            Cond::InlineWritesOff => !cfg.disk_inline_writes,
            Cond::Big => self.bytes > INLINE_MAX_BYTES,
            Cond::FileBusy => self.file.is_some_and(|p| {
                let locks = &self.store.file_locks;
                locks.is_locked(p) || locks.is_locked(&crate::layout::store::meta_path(p))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A situation where exactly these conditions hold (and `Always`).
    struct Holds<'a>(&'a [Cond]);

    impl Situation for Holds<'_> {
        fn holds(&self, c: Cond) -> bool {
            c == Cond::Always || self.0.contains(&c)
        }
    }

    const KINDS: [Kind; 9] = [
        Kind::Walk,
        Kind::NoFile,
        Kind::CachedRead,
        Kind::Stat,
        Kind::Read,
        Kind::Change,
        Kind::InPlace,
        Kind::Long,
        Kind::Link,
    ];

    #[test]
    fn every_kind_ends_with_one_always_row_and_no_row_is_dead() {
        for k in KINDS {
            let rows: Vec<_> = TABLE.iter().filter(|r| r.kinds.contains(&k)).collect();
            let last = rows.last().unwrap_or_else(|| panic!("{k:?} has no row"));
            assert_eq!(last.when, Cond::Always, "{k:?} ends with Always");
            let always = rows.iter().filter(|r| r.when == Cond::Always).count();
            assert_eq!(always, 1, "{k:?}: rows after an Always row are never used");
            assert!(rows.iter().all(|r| !r.why.is_empty()));
        }
    }

    #[test]
    fn nothing_that_may_wait_for_the_disk_runs_in_the_handler() {
        // The loop runs a request in the handler only when it touches no
        // file, or when the config says reads may stall it.
        for r in TABLE.iter().filter(|r| r.place == Place::Loop) {
            assert!(
                r.kinds == [Kind::NoFile] || r.when == Cond::InlineReads,
                "{r:?}"
            );
        }
        // A change is a job, never made in the handler itself.
        for k in [Kind::Change, Kind::InPlace, Kind::Long, Kind::Link] {
            assert!(
                TABLE
                    .iter()
                    .filter(|r| r.kinds.contains(&k))
                    .all(|r| matches!(r.place, Place::Inline | Place::Disk))
            );
        }
    }

    #[test]
    fn every_storage_command_has_its_kind() {
        use Cmd::*;
        let want = [
            (ActiveTest, Kind::NoFile),
            (ReportServerId, Kind::NoFile),
            (Quit, Kind::NoFile),
            (DownloadFile, Kind::CachedRead),
            (GetMetadata, Kind::CachedRead),
            (QueryFileInfo, Kind::Stat),
            (FdfsDedupStat, Kind::Read),
            (UploadFile, Kind::Change),
            (UploadAppenderFile, Kind::Change),
            (UploadSlaveFile, Kind::Change),
            (DeleteFile, Kind::Change),
            (SetMetadata, Kind::Change),
            (SyncCreateFile, Kind::Change),
            (SyncUpdateFile, Kind::Change),
            (SyncDeleteFile, Kind::Change),
            (SyncCreateLink, Kind::Link),
            (AppendFile, Kind::InPlace),
            (ModifyFile, Kind::InPlace),
            (TruncateFile, Kind::InPlace),
            (SyncAppendFile, Kind::InPlace),
            (SyncModifyFile, Kind::InPlace),
            (SyncTruncateFile, Kind::InPlace),
            (SyncRenameFile, Kind::InPlace),
            (RegenerateAppenderFilename, Kind::Long),
            (FdfsTreeDigest, Kind::Walk),
        ];
        for (cmd, k) in want {
            assert_eq!(kind(cmd), k, "{cmd:?}");
        }
        // Anything else the storage refuses on the loop.
        for &cmd in Cmd::ALL {
            if !want.iter().any(|w| w.0 == cmd) {
                assert_eq!(kind(cmd), Kind::NoFile, "{cmd:?}");
            }
        }
    }

    #[test]
    fn reads_try_the_cache_then_go_to_a_disk_thread() {
        use Cmd::*;
        let fresh = Holds(&[Cond::CacheUntried]);
        assert_eq!(decide(DownloadFile, &fresh), Place::Cached);
        assert_eq!(decide(GetMetadata, &fresh), Place::Cached);
        assert_eq!(decide(QueryFileInfo, &fresh), Place::Disk, "no cached form");
        assert_eq!(
            decide(DownloadFile, &Holds(&[])),
            Place::Disk,
            "cache missed"
        );
        // disk_inline_reads: the cache first all the same (its lookup may
        // then wait for metadata), then a disk thread for content; a stat on
        // the loop, but not a file info that reads the content.
        let inline = Holds(&[Cond::CacheUntried, Cond::InlineReads]);
        assert_eq!(decide(DownloadFile, &inline), Place::Cached);
        assert_eq!(
            decide(GetMetadata, &Holds(&[Cond::InlineReads])),
            Place::Disk
        );
        assert_eq!(decide(QueryFileInfo, &inline), Place::Loop);
        assert_eq!(decide_kind(QueryFileInfo, Kind::Read, &inline), Place::Disk);
        // Reads never care about the change conditions.
        let busy = Holds(&[Cond::FileBusy, Cond::Big]);
        assert_eq!(decide(QueryFileInfo, &busy), Place::Disk);
        assert_eq!(decide(ActiveTest, &busy), Place::Loop);
    }

    #[test]
    fn small_changes_run_on_the_loop_unless_something_may_wait() {
        use Cmd::*;
        for cmd in [
            UploadFile,
            DeleteFile,
            SetMetadata,
            SyncCreateFile,
            AppendFile,
        ] {
            assert_eq!(decide(cmd, &Holds(&[])), Place::Inline, "{cmd:?}");
            for c in [
                Cond::FsyncEvery,
                Cond::InlineWritesOff,
                Cond::Big,
                Cond::FileBusy,
            ] {
                assert_eq!(decide(cmd, &Holds(&[c])), Place::Disk, "{cmd:?} {c:?}");
            }
        }
        // durable_uploads journals new files but syncs changes in place.
        let durable = Holds(&[Cond::Durable]);
        assert_eq!(decide(UploadFile, &durable), Place::Inline, "journaled");
        assert_eq!(decide(DeleteFile, &durable), Place::Inline);
        assert_eq!(decide(AppendFile, &durable), Place::Disk, "synced");
        assert_eq!(decide(SyncTruncateFile, &durable), Place::Disk);
        assert_eq!(
            decide(RegenerateAppenderFilename, &Holds(&[])),
            Place::Disk,
            "reads the whole file"
        );
    }

    #[test]
    fn a_request_is_asked_only_what_its_place_depends_on() {
        /// Fails the test when asked anything but `Always` and these; only
        /// `Always` holds.
        struct Strict<'a>(&'a [Cond]);
        impl Situation for Strict<'_> {
            fn holds(&self, c: Cond) -> bool {
                assert!(c == Cond::Always || self.0.contains(&c), "asked {c:?}");
                c == Cond::Always
            }
        }
        // The lock check (a hash of the path) is asked last, after the
        // config and the size.
        let change = [
            Cond::FsyncEvery,
            Cond::InlineWritesOff,
            Cond::Big,
            Cond::FileBusy,
        ];
        assert_eq!(
            rule(Kind::Change, &Strict(&change)).when,
            Cond::Always,
            "every condition false: inline"
        );
        assert_eq!(decide(Cmd::ActiveTest, &Strict(&[])), Place::Loop);
        assert_eq!(
            decide(Cmd::QueryFileInfo, &Strict(&[Cond::InlineReads])),
            Place::Disk
        );
    }
}
