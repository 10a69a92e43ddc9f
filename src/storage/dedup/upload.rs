//! The end of an upload with dedup on: link to the content's source, making
//! the upload that source first if the content is new.

use super::index::Locked;
use crate::layout::RemoteName;
use crate::layout::binlog::{Record, op};
use crate::layout::dedup::Sig;
use crate::storage::disk::Upload;
use crate::storage::journal::Commit;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// A name that exists already is retried by `Upload::new_name`; checked before
/// a change is logged, so the index's log never names somebody else's file.
fn must_be_free(dest: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(_) => Err(io::ErrorKind::AlreadyExists.into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Upload {
    /// All content is in and its SHA-1 is `sha1`: the client's file becomes a
    /// link to the stored content. With `durable_uploads` the source's content
    /// is journaled (or synced) and the link's directory synced.
    pub(in crate::storage) fn finish_dedup(
        mut self,
        sha1: [u8; 20],
    ) -> io::Result<(String, RemoteName, Commit)> {
        if self.written() != self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "upload ended early",
            ));
        }
        let store = self.store.clone();
        let d = store.dedup.as_ref().expect("finish_dedup without an index");
        let sig = Sig {
            sha1,
            size: self.size,
        };
        let crc32 = self.crc.clone().finalize();
        let timestamp = crate::storage::now() as u32;
        let mut g = d.lock();
        let existing = g.source(&sig).map(str::to_string).filter(|s| {
            // Still there with that size (a disk can be tampered with).
            d.path_of(s)
                .and_then(|p| fs::symlink_metadata(p).ok())
                .is_some_and(|m| m.is_file() && m.len() == sig.size)
        });
        let (src, fresh, placed) = match existing {
            Some(s) => (s, false, Commit::NONE),
            None => {
                let (s, c) = self.place_source(&mut g, sig, timestamp, crc32)?;
                (s, true, c)
            }
        };
        match self.make_link(&mut g, &src, timestamp, crc32) {
            Ok((name, linked)) => Ok((store.cfg.group_name.clone(), name, placed.max(linked))),
            Err(e) => {
                if fresh {
                    // Nothing links to the new source: take it back.
                    let r = g.drop_source(&src, || super::remove_source(&store, d, &src));
                    if let Err(e2) = r {
                        log::error!("dedup: removing {src} after a failed link: {e2}");
                    }
                }
                Err(e)
            }
        }
    }

    /// Store the content under a new source name and log `C source`.
    fn place_source(
        &mut self,
        g: &mut Locked<'_>,
        sig: Sig,
        timestamp: u32,
        crc32: u32,
    ) -> io::Result<(String, Commit)> {
        let store = self.store.clone();
        let cfg = &store.cfg;
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
        let placed = self.new_name(timestamp, crc32, |remote, dest| {
            must_be_free(dest)?;
            g.add_source(sig, &remote.as_string(), || match &whole {
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
            })
        });
        self.file = temp;
        let (remote, dest, written) = placed?;
        let name = remote.as_string();
        let logged = match (&written, &whole) {
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
        }
        .and_then(|c| Ok(c.max(store.binlog.append_now(op::CREATE, &name)?)));
        match logged {
            Ok(c) => Ok((name, c)),
            Err(e) => {
                let _ = g.drop_source(&name, || fs::remove_file(&dest));
                Err(e)
            }
        }
    }

    /// Make the client's name (a new one, or the slave's) a link to `src` and
    /// log `L name src`.
    fn make_link(
        &self,
        g: &mut Locked<'_>,
        src: &str,
        timestamp: u32,
        crc32: u32,
    ) -> io::Result<(RemoteName, Commit)> {
        let store = &self.store;
        let d = store.dedup.as_ref().expect("dedup on");
        let src_path = d
            .path_of(src)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{src}: not ours")))?;
        let link = |remote: &RemoteName, dest: &Path| -> io::Result<Commit> {
            let name = remote.as_string();
            store.binlog.append_with(|| {
                // An absolute target, as upstream makes them.
                std::os::unix::fs::symlink(&src_path, dest)?;
                if let Err(e) = store.durable.sync_in_place(None, dest.parent()) {
                    let _ = fs::remove_file(dest);
                    return Err(e);
                }
                let mut r = Record::new(crate::storage::now() as u32, op::LINK, &name);
                r.extra = src.to_string();
                Ok(Some(r))
            })
        };
        if let Some(slave) = self.slave.clone() {
            let dest = store.paths[self.path as usize].file_path(&slave);
            let _guard = store.file_locks.lock(&dest);
            must_be_free(&dest)?;
            let c = g.add_link(src, &slave.as_string(), || link(&slave, &dest))?;
            return Ok((slave, c));
        }
        let (remote, _, c) = self.new_name(timestamp, crc32, |remote, dest| {
            must_be_free(dest)?;
            g.add_link(src, &remote.as_string(), || link(remote, dest))
        })?;
        Ok((remote, c))
    }
}
