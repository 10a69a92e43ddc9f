//! The storage's streamed requests (uploads, appends, modifies, slave files
//! and pushed copies): how each begins, and how its end becomes a reply.
//! A child of `handler`, which decides when to stream.

use super::*;

impl StorageService {
    /// The end of a streamed body: finish the upload, copy or change, count
    /// it and make its reply, which waits for the journal records returned.
    pub(super) fn finish_stream(&self, st: Incoming) -> (Reply, Commit) {
        let Incoming { req, body } = st;
        let up = match body {
            Body::Upload(up) => up,
            Body::Copy(c) => return c.finish(),
            Body::Change(c, cmd) => {
                let n = c.len();
                let (r, commit) = match c.finish() {
                    Ok(done) => done,
                    Err(e) => (Reply::error(refuse(&self.store, &req, &e)), Commit::NONE),
                };
                count(&self.store, |s| {
                    let ok = r.status == 0;
                    match cmd {
                        Cmd::AppendFile => {
                            s.total_append_count += 1;
                            s.success_append_count += ok as u64;
                            s.total_append_bytes += n;
                            s.success_append_bytes += if ok { n } else { 0 };
                        }
                        Cmd::ModifyFile => {
                            s.total_modify_count += 1;
                            s.success_modify_count += ok as u64;
                            s.total_modify_bytes += n;
                            s.success_modify_bytes += if ok { n } else { 0 };
                        }
                        _ => {}
                    }
                    if ok && matches!(cmd, Cmd::AppendFile | Cmd::ModifyFile) {
                        s.last_source_update = crate::storage::now();
                    }
                });
                return (r, commit);
            }
        };
        let size = up.written();
        let r = up.finish();
        count(&self.store, |c| {
            c.total_upload_count += 1;
            c.total_upload_bytes += size;
            if r.is_ok() {
                c.success_upload_count += 1;
                c.success_upload_bytes += size;
                c.last_source_update = crate::storage::now();
            }
        });
        match r {
            Ok((group, remote, commit)) => {
                let remote = remote.as_string();
                (
                    Reply::ok(proto::UploadReply { group, remote }.encode()),
                    commit,
                )
            }
            Err(e) => (Reply::error(refuse(&self.store, &req, &e)), Commit::NONE),
        }
    }

    pub(super) fn begin_upload(&self, s: &mut Session, h: &Header, head: &[u8]) -> Begin<Incoming> {
        let appender = h.cmd == Cmd::UploadAppenderFile as u8;
        let cmd = if appender {
            Cmd::UploadAppenderFile
        } else {
            Cmd::UploadFile
        };
        let u = match proto::UploadHead::decode(head, h.pkg_len) {
            Ok(u) => u,
            Err(e) => return Begin::Reject(self.refuse(s, h.cmd, &e.into())),
        };
        let store = &self.store;
        let path = match store.choose_path(u.store_path_index, u.file_size) {
            Ok(p) => p,
            Err(e) => {
                count(store, |c| c.total_upload_count += 1);
                return Begin::Reject(self.refuse(s, h.cmd, &e));
            }
        };
        let up = Upload::begin(store.clone(), path, u.file_size, u.ext, appender);
        Begin::Stream {
            state: Incoming {
                req: s.req(h.cmd),
                body: Body::Upload(up),
            },
            pool: self.stream_pool(cmd, h.pkg_len, path as usize),
        }
    }

    /// APPEND / MODIFY / UPLOAD_SLAVE and their sync forms: the fixed head
    /// holds the name length, then the name follows.
    pub(super) fn begin_named(
        &self,
        s: &mut Session,
        h: &Header,
        cmd: Cmd,
        head: &[u8],
    ) -> Begin<Incoming> {
        let need = match named_head_len(cmd, head) {
            Ok(n) => n,
            Err(e) => return Begin::Reject(self.refuse(s, h.cmd, &e.into())),
        };
        if head.len() < need {
            return Begin::MoreHead(need);
        }
        let store = self.store.clone();
        let group = store.cfg.group_name.clone();
        let bad = |e: proto::DecodeError| Begin::Reject(self.refuse(s, h.cmd, &e.into()));
        // A client's change refused, or a peer's concluded: the status.
        let started = match cmd {
            Cmd::AppendFile => {
                let (a, _) = match proto::AppendHead::decode(head, h.pkg_len) {
                    Ok(x) => x,
                    Err(e) => return bad(e),
                };
                disk::resolve(&store, &group, &a.remote)
                    .and_then(|t| {
                        appender::Change::begin(store.clone(), t, ChangeOp::Append, a.file_size)
                    })
                    .map_err(|e| self.refuse(s, h.cmd, &e))
            }
            Cmd::ModifyFile => {
                let (m, _) = match proto::ModifyHead::decode(head, h.pkg_len) {
                    Ok(x) => x,
                    Err(e) => return bad(e),
                };
                disk::resolve(&store, &group, &m.remote)
                    .and_then(|t| {
                        let op = ChangeOp::Modify(m.offset);
                        appender::Change::begin(store.clone(), t, op, m.size)
                    })
                    .map_err(|e| self.refuse(s, h.cmd, &e))
            }
            Cmd::UploadSlaveFile => {
                let (sl, _) = match proto::SlaveHead::decode(head, h.pkg_len) {
                    Ok(x) => x,
                    Err(e) => return bad(e),
                };
                return self.begin_slave(s, sl);
            }
            _ => {
                let (w, _) = match proto::sync::SyncWriteHead::decode(head, h.pkg_len) {
                    Ok(x) => x,
                    Err(e) => return bad(e),
                };
                let p = s.pusher();
                appender::Change::begin_sync(
                    store.clone(),
                    &w,
                    cmd == Cmd::SyncModifyFile,
                    p.clone(),
                )
                .map_err(|o| {
                    let sent = Sent {
                        timestamp: w.timestamp,
                        bytes: 0,
                    };
                    sync_status::conclude(&store, &p, cmd, &w.remote, sent, &o)
                })
            }
        };
        match started {
            Ok(c) => {
                let pool = self.stream_pool(cmd, h.pkg_len, c.store_index());
                Begin::Stream {
                    state: Incoming {
                        req: s.req(h.cmd),
                        body: Body::Change(c, cmd),
                    },
                    pool,
                }
            }
            Err(code) => Begin::Reject(code),
        }
    }

    /// UPLOAD_SLAVE_FILE: stored like an upload, named after its master.
    pub(super) fn begin_slave(&self, s: &mut Session, sl: proto::SlaveHead) -> Begin<Incoming> {
        let store = &self.store;
        let group = store.cfg.group_name.clone();
        let named = disk::resolve(store, &group, &sl.master).and_then(|master| {
            if !master.path.is_file() {
                return Err(Error::NotFound(master.path));
            }
            let slave = disk::slave_name(&master.name, &sl.prefix, &sl.ext)?;
            let path = store.paths[slave.store_index as usize].file_path(&slave);
            if path.exists() {
                return Err(Error::Exists(path));
            }
            store
                .choose_path(slave.store_index, sl.file_size)
                .map(|_| slave)
        });
        let cmd = Cmd::UploadSlaveFile;
        let slave = match named {
            Ok(n) => n,
            Err(e) => return Begin::Reject(self.refuse(s, cmd as u8, &e)),
        };
        let pool = self.stream_pool(cmd, sl.file_size, slave.store_index as usize);
        let up = Upload::begin_slave(store.clone(), slave, sl.file_size);
        Begin::Stream {
            state: Incoming {
                req: s.req(cmd as u8),
                body: Body::Upload(up),
            },
            pool,
        }
    }

    /// SYNC_CREATE_FILE / SYNC_UPDATE_FILE: the head holds the name length,
    /// so it is read in two steps.
    pub(super) fn begin_copy(
        &self,
        s: &mut Session,
        h: &Header,
        head: &[u8],
        update: bool,
    ) -> Begin<Incoming> {
        let cmd = if update {
            Cmd::SyncUpdateFile
        } else {
            Cmd::SyncCreateFile
        };
        let need = match SyncCreateHead::head_len(head) {
            Ok(n) => n,
            Err(e) => return Begin::Reject(self.refuse(s, h.cmd, &e.into())),
        };
        if head.len() < need {
            return Begin::MoreHead(need);
        }
        let with_content = h.status == 0;
        let head = match SyncCreateHead::decode(head, h.pkg_len, with_content) {
            Ok((head, _)) => head,
            Err(e) => return Begin::Reject(self.refuse(s, h.cmd, &e.into())),
        };
        let pool =
            crate::layout::RemoteName::parse(&head.remote).map_or(0, |n| n.store_index as usize);
        let p = s.pusher();
        match replica::Copy::begin(self.store.clone(), &head, with_content, update, p.clone()) {
            Ok(c) => Begin::Stream {
                state: Incoming {
                    req: s.req(h.cmd),
                    body: Body::Copy(c),
                },
                pool: self.stream_pool(cmd, h.pkg_len, pool),
            },
            Err(o) => {
                let sent = Sent {
                    timestamp: head.timestamp,
                    bytes: 0,
                };
                let code = sync_status::conclude(&self.store, &p, cmd, &head.remote, sent, &o);
                Begin::Reject(code)
            }
        }
    }
}
