//! Applying changes a peer pushes to us (PROTOCOL.md §11): whole-file copies
//! (SYNC_CREATE_FILE / SYNC_UPDATE_FILE, streamed to a temp file, checked
//! against the CRC32 in the name, then renamed), deletes and symbolic links.
//! Every applied change is logged as a replica (lower-case) record with the
//! source's timestamp. What each outcome is answered with is decided in
//! [`super::sync_status`].

use super::Store;
use super::error::io_status;
use super::journal::Commit;
use super::sync_status::{self, Found, Outcome, Pusher, Sent};
use crate::layout::RemoteName;
use crate::layout::binlog::{Record, op};
use crate::layout::tmpfile::TempFile;
use crate::net::Reply;
use crate::proto;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// A pushed file arriving. Dropped before `finish`, it removes its temp file.
pub struct Copy {
    store: Arc<Store>,
    /// None when no content is sent, or when it is discarded (same file already here).
    file: Option<TempFile>,
    dest: PathBuf,
    remote: String,
    timestamp: u32,
    size: u64,
    written: u64,
    crc: crc32fast::Hasher,
    /// The CRC32 the name promises (normal files only).
    expect_crc: Option<u32>,
    update: bool,
    /// The push carried no content (the sender knows we have the file).
    header_only: bool,
    pusher: Pusher,
}

/// Whether `name` carries the CRC32 of its whole content: a normal file
/// (27 base64 + 7 ext chars), not appender. Slaves and `-m` files do not.
fn promised_crc(name: &RemoteName) -> Option<u32> {
    if !name.is_normal() {
        return None;
    }
    name.info().ok().map(|i| i.crc32)
}

impl Copy {
    /// Start receiving `head` (already decoded) from `pusher`.
    pub fn begin(
        store: Arc<Store>,
        head: &proto::sync::SyncCreateHead,
        with_content: bool,
        update: bool,
        pusher: Pusher,
    ) -> Result<Copy, Outcome> {
        let (name, dest) = our_file(&store, &head.group, &head.remote)?;
        let same_here = fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == head.file_size);
        let exists = !with_content || (!update && same_here);
        let dir = dest
            .parent()
            .expect("file path has a directory")
            .to_path_buf();
        let file = if exists {
            None
        } else {
            let hidden = || format!(".sync-{:016x}", store.random64());
            Some(TempFile::create_in(&dir, hidden).map_err(|e| {
                Outcome::failed(
                    io_status(&e),
                    format!("creating a temp file in {}: {e}", dir.display()),
                )
            })?)
        };
        Ok(Copy {
            expect_crc: promised_crc(&name),
            store,
            file,
            dest,
            remote: head.remote.clone(),
            timestamp: head.timestamp,
            size: if with_content { head.file_size } else { 0 },
            written: 0,
            crc: crc32fast::Hasher::new(),
            update,
            header_only: !with_content,
            pusher,
        })
    }

    fn cmd(&self) -> proto::Cmd {
        if self.update {
            proto::Cmd::SyncUpdateFile
        } else {
            proto::Cmd::SyncCreateFile
        }
    }

    /// Where the file goes.
    pub fn dest(&self) -> &std::path::Path {
        &self.dest
    }

    /// Write a chunk of pushed content (dropped when we already have the file).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.written += data.len() as u64;
        if let Some(f) = &mut self.file {
            f.file().write_all(data)?;
            self.crc.update(data);
        }
        Ok(())
    }

    /// All content is in: verify, rename into place, log `c`/`u`, answer.
    /// A replica is as durable as an upload, so a failover loses nothing:
    /// the reply waits for the journal records returned with it.
    pub fn finish(mut self) -> (Reply, Commit) {
        let (o, commit) = self.outcome();
        let sent = Sent {
            timestamp: self.timestamp,
            bytes: self.written,
        };
        let code = sync_status::conclude(
            &self.store,
            &self.pusher,
            self.cmd(),
            &self.remote,
            sent,
            &o,
        );
        (Reply::status(code), commit)
    }

    fn outcome(&mut self) -> (Outcome, Commit) {
        if self.written != self.size {
            let why = format!("{} content bytes of {}", self.written, self.size);
            return (Outcome::new(Found::Invalid, why), Commit::NONE);
        }
        match self.apply() {
            Ok(applied) => applied,
            Err(e) => (Outcome::failed(io_status(&e), e.to_string()), Commit::NONE),
        }
    }

    fn apply(&mut self) -> io::Result<(Outcome, Commit)> {
        let replica = if self.update { op::UPDATE } else { op::CREATE };
        let rec = Record::new(self.timestamp, Record::replica_op(replica), &self.remote);
        let Some(mut file) = self.file.take() else {
            // Header-only request, or a create of a file we have already:
            // still logged, as upstream, so a server we are the sync source
            // of gets it too.
            let commit = self.store.binlog.append(&rec)?;
            let why = if self.header_only {
                "the sender says it is here already"
            } else {
                "the same file is here already"
            };
            return Ok((Outcome::new(Found::AlreadyThere, why), commit));
        };
        let crc = std::mem::take(&mut self.crc).finalize();
        if let Some(want) = self.expect_crc.filter(|&w| w != crc) {
            // Pushed again it would be refused again: dropped, and answered
            // so that the sender moves on (see sync_status).
            let why = format!("content CRC32 {crc:08x} is not the name's {want:08x}, not stored");
            return Ok((Outcome::new(Found::BadContent, why), Commit::NONE));
        }
        let mtime = UNIX_EPOCH + Duration::from_secs(self.timestamp as u64);
        file.file().set_modified(mtime)?;
        let content = self.store.durable.content(file.file())?;
        let dest = self.dest.clone();
        let update = self.update;
        let store = self.store.clone();
        let hidden = || format!(".sync-{:016x}", store.random64());
        let mut journaled = Commit::NONE;
        let line = self.store.binlog.append_with(|| {
            if update {
                file.persist_replace(&dest, hidden)?;
            } else if let Err(e) = file.persist_noreplace(&dest) {
                // A file of another size under this name: the pushed one wins.
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return Err(e);
                }
                file.persist_replace(&dest, hidden)?;
            }
            journaled = store.durable.journal_file(
                &rec.name,
                content.as_deref(),
                file.file(),
                dest.parent(),
            )?;
            Ok(Some(rec))
        })?;
        Ok((Outcome::applied(), journaled.max(line)))
    }
}

/// The name and path of `remote` if it is a file of our group and store
/// paths; Invalid otherwise.
pub(super) fn our_file(
    store: &Store,
    group: &str,
    remote: &str,
) -> Result<(RemoteName, PathBuf), Outcome> {
    if group != store.cfg.group_name {
        return Err(Outcome::new(
            Found::Invalid,
            format!("group {group:?}, ours is {:?}", store.cfg.group_name),
        ));
    }
    let name = RemoteName::parse(remote)
        .map_err(|e| Outcome::new(Found::Invalid, format!("not a file name we store: {e}")))?;
    let path = store
        .paths
        .get(name.store_index as usize)
        .ok_or_else(|| {
            Outcome::new(
                Found::Invalid,
                format!("store path {} is not one of ours", name.store_index),
            )
        })?
        .file_path(&name);
    Ok((name, path))
}

/// SYNC_DELETE_FILE: remove the file, log `d`. Returns what it found and
/// the journal record of its line.
pub fn delete(store: &Store, d: &proto::sync::SyncDelete) -> (Outcome, Commit) {
    let path = match our_file(store, &d.group, &d.remote) {
        Ok((_, path)) => path,
        Err(o) => return (o, Commit::NONE),
    };
    if let super::dedup::PushedDelete::Done(r) =
        super::dedup::pushed_delete(store, &d.remote, &path, d.timestamp)
    {
        return match r {
            Ok(c) => (Outcome::applied(), c),
            Err(e) if e.is_not_found() => (Outcome::new(Found::Missing, "not here"), Commit::NONE),
            Err(e) => {
                let why = format!("removing a deduplicated file: {e}");
                (Outcome::failed(e.status(), why), Commit::NONE)
            }
        };
    }
    let mut outcome = Outcome::applied();
    let logged = store.binlog.append_with(|| match fs::remove_file(&path) {
        Ok(()) => Ok(Some(Record::new(
            d.timestamp,
            Record::replica_op(op::DELETE),
            &d.remote,
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            outcome = Outcome::new(Found::Missing, "not here");
            Ok(None)
        }
        Err(e) => {
            outcome = Outcome::failed(io_status(&e), format!("removing it: {e}"));
            Ok(None)
        }
    });
    match logged {
        Ok(commit) => (outcome, commit),
        Err(e) => (
            Outcome::failed(io_status(&e), format!("binlog: {e}")),
            Commit::NONE,
        ),
    }
}

/// SYNC_CREATE_LINK: make `dest` a symbolic link to `src` (both ours), log
/// `l dest src`. A link name that is here already is left alone; a target
/// that is not here makes no link. Returns what it found and the journal
/// record of its line.
pub fn link(store: &Store, l: &proto::sync::SyncLink) -> (Outcome, Commit) {
    let ((_, dest), (_, src)) = match (
        our_file(store, &l.group, &l.dest),
        our_file(store, &l.group, &l.src),
    ) {
        (Ok(d), Ok(s)) => (d, s),
        (Err(o), _) | (_, Err(o)) => return (o, Commit::NONE),
    };
    if fs::symlink_metadata(&dest).is_ok() {
        let o = Outcome::new(Found::AlreadyThere, "the link name is here already");
        return (o, Commit::NONE);
    }
    if !src.is_file() {
        let why = format!("its target {} is not here", l.src);
        return (Outcome::new(Found::Missing, why), Commit::NONE);
    }
    let make = || {
        let _guard = store.file_locks.lock(&dest);
        store.binlog.append_with(|| {
            // An absolute target, as upstream makes them.
            std::os::unix::fs::symlink(&src, &dest)?;
            if let Err(e) = store.durable.sync_in_place(None, dest.parent()) {
                let _ = fs::remove_file(&dest);
                return Err(e);
            }
            let mut r = Record::new(l.timestamp, Record::replica_op(op::LINK), &l.dest);
            r.extra = l.src.clone();
            Ok(Some(r))
        })
    };
    // With dedup on, the link is counted (lock order: the index, then the file).
    let made = match super::dedup::pushed_link(store, &l.src, &src, &l.dest, make) {
        Some(r) => r,
        None => make(),
    };
    match made {
        Ok(commit) => (Outcome::applied(), commit),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let o = Outcome::new(Found::AlreadyThere, "the link name is here already");
            (o, Commit::NONE)
        }
        Err(e) => {
            let why = format!("linking to {}: {e}", src.display());
            (Outcome::failed(io_status(&e), why), Commit::NONE)
        }
    }
}
