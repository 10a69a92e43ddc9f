//! What `durable_uploads` adds to a change: its new file's content goes to
//! the redo journal (or, too big for it, is synced in place), and its reply
//! waits until the journal records it added, handed up as a
//! [`Commit`] token, are on disk. Without `durable_uploads` all of this
//! does nothing, and every token is [`Commit::NONE`].

use super::journal::{self, Commit, Journal};
use crate::net::{Release, Reply};
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// The journal of a durable storage, or nothing (see the module notes).
pub struct Durability {
    journal: Option<Arc<Journal>>,
}

impl Durability {
    /// Durable with `journal`; `None`: not durable.
    pub fn new(journal: Option<Arc<Journal>>) -> Durability {
        Durability { journal }
    }

    /// The content of a finished new file (an upload, a replica) if it is
    /// small enough for the journal. Read it before taking the binlog lock,
    /// and hand it to [`Durability::journal_file`] under it.
    pub fn content(&self, file: &File) -> io::Result<Option<Vec<u8>>> {
        if self.journal.is_none() {
            return Ok(None);
        }
        let size = file.metadata()?.len();
        if size > journal::MAX_FILE {
            return Ok(None);
        }
        use std::os::unix::fs::FileExt;
        let mut data = vec![0u8; size as usize];
        file.read_exact_at(&mut data, 0)?;
        Ok(Some(data))
    }

    /// Once `file` is named `remote` in `dir`: journal its `content` (from
    /// [`Durability::content`]), or, when that is too big, sync the file and
    /// directory in place. Call before logging the change's binlog line; its
    /// reply waits for the token returned ([`Durability::when_durable`]).
    pub fn journal_file(
        &self,
        remote: &str,
        content: Option<&[u8]>,
        file: &File,
        dir: Option<&Path>,
    ) -> io::Result<Commit> {
        let Some(j) = &self.journal else {
            return Ok(Commit::NONE);
        };
        if let Some(c) = content.and_then(|data| j.add_file(remote, data)) {
            return Ok(c);
        }
        self.sync_in_place(Some(file), dir)?;
        Ok(Commit::NONE)
    }

    /// A metadata file at `path`, named `remote`, was rewritten with
    /// `bytes`: journal them, or sync it in place when they are too big.
    pub fn journal_bytes(&self, remote: &str, bytes: &[u8], path: &Path) -> io::Result<Commit> {
        let Some(j) = &self.journal else {
            return Ok(Commit::NONE);
        };
        if let Some(c) = j.add_file(remote, bytes) {
            return Ok(c);
        }
        self.sync_in_place(Some(&File::open(path)?), path.parent())?;
        Ok(Commit::NONE)
    }

    /// Sync a file changed in place and its directory.
    pub fn sync_in_place(&self, file: Option<&File>, dir: Option<&Path>) -> io::Result<()> {
        if self.journal.is_none() {
            return Ok(());
        }
        if let Some(f) = file {
            f.sync_all()?;
        }
        match dir {
            Some(d) => crate::layout::store::fsync_dir(d),
            None => Ok(()),
        }
    }

    /// The reply of a change, as it may go out: a success whose change added
    /// journal records (`commit`: its binlog lines, the files it journaled)
    /// is held back until they are durable. The worker goes on with other
    /// jobs meanwhile; the journal's flusher releases the reply after the
    /// round that wrote them, or turns it into that round's error. (Changes
    /// made in place have synced their file and directory already; an error
    /// reply goes at once.)
    pub fn when_durable(&self, (mut reply, commit): (Reply, Commit)) -> Reply {
        let Some(j) = &self.journal else {
            return reply;
        };
        if commit.is_none() || reply.status != 0 {
            return reply;
        }
        let j = j.clone();
        reply.hold = Some(Box::new(move |release: Release| {
            j.on_durable(
                commit,
                Box::new(move |outcome| {
                    release(outcome.err().map(|e| {
                        log::error!("journal round of a change: {e}");
                        super::error::io_status(&e)
                    }))
                }),
            )
        }));
        reply
    }

    /// Make everything journaled so far durable (shutdown).
    pub fn flush(&self) -> io::Result<()> {
        match &self.journal {
            Some(j) => j.flush(),
            None => Ok(()),
        }
    }
}
