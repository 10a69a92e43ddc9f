//! Applying changes a peer pushes to us (PROTOCOL.md §11): whole-file copies
//! (SYNC_CREATE_FILE / SYNC_UPDATE_FILE, streamed to a temp file, checked
//! against the CRC32 in the name, then renamed) and deletes. Every applied
//! change is logged as a replica (lower-case) record with the source's
//! timestamp, and advances what we report as received from that source.

use super::Store;
use super::disk::io_status;
use crate::layout::RemoteName;
use crate::layout::binlog::{Record, op};
use crate::layout::tmpfile::TempFile;
use crate::net::Reply;
use crate::proto::{self, status};
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
    source: Option<String>,
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
    /// Start receiving `head` (already decoded) from the peer `source`.
    pub fn begin(
        store: Arc<Store>,
        head: &proto::sync::SyncCreateHead,
        with_content: bool,
        update: bool,
        source: Option<String>,
    ) -> Result<Copy, u8> {
        if head.group != store.cfg.group_name {
            return Err(status::EINVAL);
        }
        let name = RemoteName::parse(&head.remote).map_err(|_| status::EINVAL)?;
        let sp = store
            .paths
            .get(name.store_index as usize)
            .ok_or(status::EINVAL)?;
        let dest = sp.file_path(&name);
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
                log::error!(
                    "sync copy of {}: creating a temp file in {}: {e}",
                    head.remote,
                    dir.display()
                );
                io_status(&e)
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
            source,
        })
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

    /// All content is in: verify, rename into place, log `c`/`u`.
    pub fn finish(mut self) -> Reply {
        match self.apply() {
            Ok(answer) => {
                self.store
                    .received(self.source.as_deref(), self.timestamp, self.written);
                if answer == 0 {
                    Reply::ok(Vec::new())
                } else {
                    Reply::error(answer)
                }
            }
            Err(code) => Reply::error(code),
        }
    }

    fn apply(&mut self) -> Result<u8, u8> {
        if self.written != self.size {
            return Err(status::EINVAL);
        }
        let replica = if self.update { op::UPDATE } else { op::CREATE };
        let rec = Record::new(self.timestamp, Record::replica_op(replica), &self.remote);
        let Some(mut file) = self.file.take() else {
            // Header-only request, or a create of a file we have already:
            // still logged, as upstream, so a server we are the sync source
            // of gets it too.
            self.store.binlog.append(&rec).map_err(|e| io_status(&e))?;
            return Ok(status::EEXIST);
        };
        let crc = std::mem::take(&mut self.crc).finalize();
        if let Some(want) = self.expect_crc.filter(|&w| w != crc) {
            log::warn!(
                "sync copy of {} from {}: content CRC32 {crc:08x} does not match the name's {want:08x}, refused",
                self.remote,
                self.source.as_deref().unwrap_or("?")
            );
            return Err(status::EINVAL);
        }
        let mtime = UNIX_EPOCH + Duration::from_secs(self.timestamp as u64);
        file.file().set_modified(mtime).map_err(|e| io_status(&e))?;
        let content = self
            .store
            .journal_content(file.file())
            .map_err(|e| io_status(&e))?;
        let dest = self.dest.clone();
        let update = self.update;
        let store = self.store.clone();
        let hidden = || format!(".sync-{:016x}", store.random64());
        self.store
            .binlog
            .append_with(|| {
                if update {
                    file.persist_replace(&dest, hidden)?;
                } else if let Err(e) = file.persist_noreplace(&dest) {
                    // A file of another size under this name: the pushed one wins.
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return Err(e);
                    }
                    file.persist_replace(&dest, hidden)?;
                }
                store.journal_file(&rec.name, content.as_deref(), file.file(), dest.parent())?;
                Ok(Some(rec))
            })
            .map_err(|e| {
                log::error!("sync copy of {}: {e}", self.remote);
                io_status(&e)
            })?;
        // A replica is as durable as an upload, so a failover loses nothing
        // (the reply waits for the journal, see `Store::hold_until_durable`).
        Ok(0)
    }
}

/// SYNC_DELETE_FILE: remove the file (ENOENT if it is not here), log `d`.
pub fn delete(store: &Store, d: &proto::sync::SyncDelete, source: Option<&str>) -> Result<(), u8> {
    if d.group != store.cfg.group_name {
        return Err(status::EINVAL);
    }
    let name = RemoteName::parse(&d.remote).map_err(|_| status::EINVAL)?;
    let sp = store
        .paths
        .get(name.store_index as usize)
        .ok_or(status::EINVAL)?;
    let path = sp.file_path(&name);
    let mut result = Ok(());
    store
        .binlog
        .append_with(|| match fs::remove_file(&path) {
            Ok(()) => Ok(Some(Record::new(
                d.timestamp,
                Record::replica_op(op::DELETE),
                &d.remote,
            ))),
            Err(e) => {
                result = Err(io_status(&e));
                Ok(None)
            }
        })
        .map_err(|e| io_status(&e))?;
    store.received(source, d.timestamp, 0);
    result
}
