//! The end of an upload with dedup on: link to the content's source, making
//! the upload that source first if the content is new.
//!
//! The index's lock is held only to decide and log ([`Dedup::claim`]); the
//! file, the link, their fsyncs and binlog lines are made outside it, so
//! uploads on different threads do not wait for each other's disk work.

use super::index::{Claim, Dedup, Placing};
use crate::layout::RemoteName;
use crate::layout::binlog::{Record, op};
use crate::layout::dedup::{Hash, Key};
use crate::storage::disk::Upload;
use crate::storage::journal::Commit;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// A slave's name that exists already is refused before its link is logged:
/// the same slave uploaded twice would otherwise log a link that is there,
/// counted twice after a crash.
fn must_be_free(dest: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(_) => Err(io::ErrorKind::AlreadyExists.into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether source `src` is still there with `size` bytes (a disk can be
/// tampered with).
fn intact(d: &Dedup, src: &str, size: u64) -> bool {
    d.path_of(src)
        .and_then(|p| fs::symlink_metadata(p).ok())
        .is_some_and(|m| m.is_file() && m.len() == size)
}

impl Upload {
    /// All content is in: the client's file becomes a link to the stored
    /// content. With `durable_uploads` the source's content is journaled (or
    /// synced) and the link's directory synced.
    pub(in crate::storage) fn finish_dedup(mut self) -> io::Result<(String, RemoteName, Commit)> {
        if self.written() != self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "upload ended early",
            ));
        }
        let store = self.store.clone();
        let d = store.dedup.as_ref().expect("finish_dedup without an index");
        let crc32 = self.crc.clone().finalize();
        let key = Key {
            size: self.size,
            crc32,
        };
        // Computed only if a source has this key, and then once.
        let mut hash: Option<Hash> = None;
        let timestamp = crate::storage::now() as u32;
        // A source found broken, not to be linked to again.
        let mut avoid: Option<String> = None;
        for _ in 0..10 {
            // A new name is not looked up first: symlink() refuses a taken
            // one, and a `+` intent naming a file that is not this link is
            // not counted at recovery (it does not point at the source). A
            // slave's name is given by the client, and may be taken by the
            // same slave uploaded before.
            let (link, link_path) = match self.slave.clone() {
                Some(slave) => {
                    let p = store.paths[self.path as usize].file_path(&slave);
                    must_be_free(&p)?;
                    (slave, p)
                }
                None => self.fresh_name(timestamp, crc32),
            };
            let claim = d.claim(
                key,
                || match hash {
                    Some(h) => Ok(h),
                    None => {
                        let h = self.content_hash()?;
                        hash = Some(h);
                        Ok(h)
                    }
                },
                &link.as_string(),
                avoid.as_deref(),
            )?;
            let made = match claim {
                Claim::Link(pending) => {
                    if !intact(d, pending.src(), key.size) {
                        avoid = Some(pending.src().to_string());
                        continue;
                    }
                    let src = pending.src().to_string();
                    let made = self.make_link(&src, &link, &link_path);
                    match &made {
                        Ok(_) => pending.made(),
                        // Nothing links to the source (its last link went
                        // meanwhile): take it back.
                        Err(_) if pending.failed() => {
                            let r = d
                                .lock()
                                .drop_source(&src, || super::remove_source(&store, d, &src));
                            if let Err(e2) = r {
                                log::error!("dedup: removing {src} after a failed link: {e2}");
                            }
                        }
                        Err(_) => {}
                    }
                    made
                }
                Claim::New(placing) => self.place_new(placing, &link, &link_path, timestamp, crc32),
            };
            match made {
                Ok(c) => return Ok((store.cfg.group_name.clone(), link, c)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && self.slave.is_none() => {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "could not find a unique file name",
        ))
    }

    /// The BLAKE3 hash of the content: from memory when it came whole, else
    /// read back from the temp file (just written: in the page cache).
    fn content_hash(&mut self) -> io::Result<Hash> {
        if let Some(data) = &self.whole {
            return Ok(blake3::hash(data).into());
        }
        let (k, h) = super::index::hash_file(self.temp()?.file())?;
        if k.size != self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "upload's temp file changed size",
            ));
        }
        Ok(h)
    }

    /// Store the content under a new source name, make `link` (at
    /// `link_path`) point at it, and log both (`C source`, `L link source`)
    /// in one binlog write. Uploads of the same content wait meanwhile, so
    /// a peer hears of the source before any link to it.
    fn place_new(
        &mut self,
        mut placing: Placing<'_>,
        link: &RemoteName,
        link_path: &Path,
        timestamp: u32,
        crc32: u32,
    ) -> io::Result<Commit> {
        let store = self.store.clone();
        let cfg = &store.cfg;
        let link_name = link.as_string();
        let whole = self.whole.take();
        if whole.is_none() {
            let size = self.size;
            let file = self.temp()?.file();
            if cfg.fsync_after_written_bytes > 0 && !cfg.durable_uploads
                || cfg.durable_uploads && size > crate::storage::journal::MAX_FILE
            {
                file.sync_data()?;
            }
            file.set_modified(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(timestamp as u64),
            )?;
        }
        let content = match &whole {
            Some(_) => None,
            None => store.durable.content(self.temp()?.file())?,
        };
        let mut temp = self.file.take();
        let mut place = |dest: &Path| -> io::Result<Option<fs::File>> {
            match &whole {
                Some(data) => {
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(dest)?;
                    let written = f.write_all(data).and_then(|()| {
                        if cfg.fsync_after_written_bytes > 0 && !cfg.durable_uploads {
                            f.sync_data()?;
                        }
                        Ok(())
                    });
                    if let Err(e) = written {
                        let _ = fs::remove_file(dest);
                        return Err(e);
                    }
                    Ok(Some(f))
                }
                None => {
                    let t = temp.as_mut().expect("a temp file holds the content");
                    t.persist_noreplace(dest)?;
                    Ok(None)
                }
            }
        };
        // The file first, under a name nobody has (create_new, a rename or
        // link that does not replace), then its intents: the log never names
        // somebody else's file as a source. A crash between leaves a file
        // nothing names, as it would a plain upload.
        let placed = self.new_name(timestamp, crc32, |remote, dest| {
            let f = place(dest)?;
            if let Err(e) = placing.begin(&remote.as_string(), &link_name) {
                let _ = fs::remove_file(dest);
                return Err(e);
            }
            Ok(f)
        });
        self.file = temp;
        let (remote, dest, written) = placed?;
        let name = remote.as_string();
        let content = match (&written, &whole) {
            (Some(f), Some(data)) => {
                store
                    .durable
                    .journal_file(&name, Some(data), f, dest.parent())
            }
            _ => {
                let file = self.temp()?.file();
                store
                    .durable
                    .journal_file(&name, content.as_deref(), file, dest.parent())
            }
        };
        let logged = content.and_then(|c| {
            self.link_file(&dest, link_path)?;
            let mut records = [
                Record::new(0, op::CREATE, &name),
                Record::new(0, op::LINK, &link_name),
            ];
            records[1].extra = name.clone();
            let logged = store.binlog.append_all_now(&mut records);
            if logged.is_err() {
                let _ = fs::remove_file(link_path);
            }
            Ok(c.max(logged?))
        });
        match logged {
            Ok(c) => {
                placing.linked();
                Ok(c)
            }
            Err(e) => {
                // Dropping `placing` lets the next upload of this content
                // place it; the index never counted this one, and the
                // binlog never named it.
                let _ = fs::remove_file(&dest);
                Err(e)
            }
        }
    }

    /// Make `link` (a new name, or the slave's) at `path` a link to `src` and
    /// log `L link src`.
    fn make_link(&self, src: &str, link: &RemoteName, path: &Path) -> io::Result<Commit> {
        let store = &self.store;
        let d = store.dedup.as_ref().expect("dedup on");
        let src_path = d
            .path_of(src)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{src}: not ours")))?;
        // A slave's name can be guessed: its stripe lock keeps a delete from
        // slipping between the link and its record. A new name is known to
        // nobody yet.
        let _guard = self.slave.is_some().then(|| store.file_locks.lock(path));
        self.link_file(&src_path, path)?;
        let name = link.as_string();
        // Outside the binlog's lock, like a plain upload's file; the record
        // takes its timestamp under it.
        let logged = store.binlog.append_with(|| {
            let mut r = Record::new(crate::storage::now() as u32, op::LINK, &name);
            r.extra = src.to_string();
            Ok(Some(r))
        });
        if logged.is_err() {
            let _ = fs::remove_file(path);
        }
        logged
    }

    /// Make `path` a symbolic link to `src_path` (its directory synced with
    /// `durable_uploads`).
    fn link_file(&self, src_path: &Path, path: &Path) -> io::Result<()> {
        // An absolute target, as upstream makes them: an upstream storage
        // uses a link's target as a path (stat, unlink) and finds the source
        // in it by its "/data/" (storage_service.c, storage_sync.c), so a C
        // server on these files needs it absolute.
        std::os::unix::fs::symlink(src_path, path)?;
        let synced = self.store.durable.sync_in_place(None, path.parent());
        if synced.is_err() {
            let _ = fs::remove_file(path);
        }
        synced
    }
}
