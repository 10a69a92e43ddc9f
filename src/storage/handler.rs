//! The storage's request handlers: framing decisions on the loop thread, file
//! work on the disk pool of the file's store path. A request that fails is
//! answered and logged in one place, [`refuse`]; a peer's sync request is
//! answered by `sync_status` instead.

use super::Store;
use super::appender::{self, ChangeOp};
use super::cached;
use super::disk::{self, Upload};
use super::error::Error;
use super::journal::Commit;
use super::placement::{self, Kind, Now, Place};
use super::replica;
use super::sync_status::{self, Outcome, Pusher, Sent};
use crate::net::{Action, Begin, INLINE, Plan, Pool, Reply, Service};
use crate::proto::sync::SyncCreateHead;
use crate::proto::{self, Cmd, Header, StatCounters, status};
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest body of a request that names a file (group + name + offsets).
const SMALL_REQUEST: u64 = 1024;
/// The pool index of the repair module's own thread (`Place::Background`):
/// past any store path's (at most 256).
const REPAIR_POOL: usize = 1000;

/// The storage role served by the event loop.
pub struct StorageService {
    pub store: Arc<Store>,
}

/// Per-connection state.
pub struct Session {
    peer: SocketAddr,
    /// The storage id a peer announced with REPORT_SERVER_ID (sync connections).
    source: Option<String>,
}

impl Session {
    /// The peer as the pusher of sync requests.
    fn pusher(&self) -> Pusher {
        Pusher {
            addr: self.peer,
            id: self.source.clone(),
        }
    }

    /// Request `code` from this peer.
    fn req(&self, code: u8) -> Req {
        Req {
            code,
            from: self.pusher(),
        }
    }
}

/// A request as its log line names it: the command and who sent it.
#[derive(Clone)]
pub struct Req {
    /// The command code (not always one fdfs knows).
    code: u8,
    from: Pusher,
}

/// The status answering `e` to `req`, and the one log line of that failure,
/// at `e`'s level; a peer's sync requests, which it retries, are throttled
/// per peer.
fn refuse(store: &Store, req: &Req, e: &Error) -> u8 {
    let code = e.status();
    let cmd = Cmd::from_u8(req.code);
    let name = cmd.map_or("request", Cmd::name);
    let line = || {
        format!(
            "{name} from {}: {e}; answered {}",
            req.from,
            status::name(code)
        )
    };
    if cmd.is_some_and(sync_status::is_sync) {
        let key = sync_status::from_key(&req.from);
        store.sync_log.log(e.level(), &key, line);
    } else if log::log_enabled!(e.level()) {
        log::log!(e.level(), "{}", line());
    }
    code
}

/// The reply of a read: its own, or the error's.
fn reply_of(store: &Store, req: &Req, r: Result<Reply, Error>) -> Reply {
    r.unwrap_or_else(|e| Reply::error(refuse(store, req, &e)))
}

/// A request body being streamed to disk, and the request it belongs to.
pub struct Incoming {
    req: Req,
    body: Body,
}

/// What a streamed body is.
enum Body {
    /// A client upload.
    Upload(Upload),
    /// A file a peer pushes.
    Copy(replica::Copy),
    /// An append or modify (client or pushed), staged until complete.
    Change(appender::Change, Cmd),
}

/// Fixed head length of the commands whose head starts with a name length.
fn named_fixed_len(cmd: Cmd) -> usize {
    match cmd {
        Cmd::AppendFile => proto::AppendHead::FIXED_LEN,
        Cmd::ModifyFile => proto::ModifyHead::FIXED_LEN,
        Cmd::UploadSlaveFile => proto::SlaveHead::FIXED_LEN,
        _ => proto::sync::SyncWriteHead::FIXED_LEN,
    }
}

/// The whole head of such a request (fixed part + name), from its fixed part.
fn named_head_len(cmd: Cmd, fixed: &[u8]) -> Result<usize, proto::DecodeError> {
    match cmd {
        Cmd::AppendFile => proto::AppendHead::head_len(fixed),
        Cmd::ModifyFile => proto::ModifyHead::head_len(fixed),
        Cmd::UploadSlaveFile => proto::SlaveHead::head_len(fixed),
        _ => proto::sync::SyncWriteHead::head_len(fixed),
    }
}

fn count(store: &Store, f: impl FnOnce(&mut StatCounters)) {
    store.stats.count(f);
}

fn count_download(store: &Store, r: &Result<Reply, Error>) {
    count(store, |c| {
        c.total_download_count += 1;
        if let Ok(r) = r {
            c.success_download_count += 1;
            let n = r.pkg_len();
            c.total_download_bytes += n;
            c.success_download_bytes += n;
        }
    });
}

fn count_get_meta(store: &Store, r: &Result<Vec<u8>, Error>) {
    count(store, |c| {
        c.total_get_meta_count += 1;
        c.success_get_meta_count += r.is_ok() as u64;
    });
}

impl StorageService {
    fn body_limit(&self, cmd: Cmd) -> Option<u64> {
        match cmd {
            Cmd::ActiveTest => Some(0),
            Cmd::ReportServerId => Some(proto::STORAGE_ID_LEN as u64),
            Cmd::SyncDeleteFile
            | Cmd::TruncateFile
            | Cmd::SyncTruncateFile
            | Cmd::RegenerateAppenderFilename
            | Cmd::SyncRenameFile
            | Cmd::SyncCreateLink
            | Cmd::FdfsDedupStat
            | Cmd::FdfsRepair
            | Cmd::FdfsTreeDigest => Some(SMALL_REQUEST),
            Cmd::DeleteFile | Cmd::GetMetadata | Cmd::QueryFileInfo | Cmd::DownloadFile => {
                Some(SMALL_REQUEST)
            }
            // Metadata must fit in the connection buffer, as upstream.
            Cmd::SetMetadata => Some(self.store.cfg.buff_size as u64),
            _ => None,
        }
    }

    /// Run `job` at `place` (from [`placement::decide`]); `path`: the store
    /// path of its file, whose disk threads run it there.
    fn run(
        &self,
        place: Place,
        path: usize,
        job: impl FnOnce(&Store) -> Reply + Send + 'static,
    ) -> Action {
        let pool = match place {
            Place::Loop => return Action::Reply(job(&self.store)),
            Place::Inline => INLINE,
            // (The cached fast path is tried by the caller, which has the
            // cached call at hand, before it asks again.)
            Place::Disk | Place::Cached => path.min(self.store.paths.len() - 1),
            Place::Background => REPAIR_POOL,
        };
        let store = self.store.clone();
        Action::Work {
            pool,
            job: Box::new(move || job(&store)),
        }
    }

    /// Read the target's file where the table puts `cmd` in situation
    /// `now`: a read's reply goes out as it is.
    fn read_target(
        &self,
        (cmd, req): (Cmd, Req),
        now: Now<'_>,
        target: Result<disk::Target, Error>,
        job: impl FnOnce(&Store, Result<disk::Target, Error>) -> Result<Reply, Error> + Send + 'static,
    ) -> Action {
        let place = placement::decide(cmd, &now);
        let path = target.as_ref().map_or(0, |t| t.name.store_index as usize);
        self.run(place, path, move |store| {
            reply_of(store, &req, job(store, target))
        })
    }

    /// Change a client's file: the name is resolved here, once, and the job
    /// runs where the table puts `cmd` for that file. Its reply (the body
    /// the job returns) waits for the journal records it returns
    /// ([`durable`]).
    fn change_file(
        &self,
        (cmd, req): (Cmd, Req),
        group: &str,
        remote: &str,
        job: impl FnOnce(&Store, Result<disk::Target, Error>) -> Result<(Vec<u8>, Commit), Error>
        + Send
        + 'static,
    ) -> Action {
        let target = disk::resolve(&self.store, group, remote);
        let file = target.as_ref().ok().map(|t| t.path.as_path());
        let place = placement::decide(cmd, &Now::new(&self.store).file(file));
        let path = target.as_ref().map_or(0, |t| t.name.store_index as usize);
        self.run(
            place,
            path,
            durable(move |store| changed(store, &req, job(store, target))),
        )
    }

    /// How far a read answered on the network thread may go to open its file
    /// (never further than the page cache for its content).
    fn lookup(&self) -> cached::Lookup {
        if self.store.cfg.disk_inline_reads {
            cached::Lookup::MayWait
        } else {
            cached::Lookup::Cached
        }
    }

    /// A change from a peer to the file `remote` names (sync requests, which
    /// check the name themselves), where the table puts `cmd`. Its reply
    /// waits for the journal records it returns ([`durable`]).
    fn on_path(
        &self,
        cmd: Cmd,
        remote: &str,
        job: impl FnOnce(&Store) -> (Reply, Commit) + Send + 'static,
    ) -> Action {
        let place = placement::decide(cmd, &Now::new(&self.store));
        let path = crate::layout::RemoteName::parse(remote).map_or(0, |n| n.store_index as usize);
        self.run(place, path, durable(job))
    }

    /// The pool that writes a streamed body of `len` bytes for store path
    /// `path`: where the table puts `cmd` (a streamed body is a change,
    /// made on this network thread or a disk thread).
    fn stream_pool(&self, cmd: Cmd, len: u64, path: usize) -> usize {
        match placement::decide(cmd, &Now::new(&self.store).bytes(len)) {
            Place::Inline | Place::Loop | Place::Background => INLINE,
            Place::Disk | Place::Cached => path.min(self.store.paths.len() - 1),
        }
    }

    /// Answer a sync request's `outcome` (see [`sync_status::conclude`]).
    fn sync_reply(
        store: &Store,
        p: &Pusher,
        cmd: Cmd,
        remote: &str,
        timestamp: u32,
        o: &Outcome,
    ) -> Reply {
        let sent = Sent {
            timestamp,
            bytes: 0,
        };
        Reply::status(sync_status::conclude(store, p, cmd, remote, sent, o))
    }

    /// Stream a body whose head is `head` bytes; one too short for it is
    /// refused.
    fn stream_head(&self, s: &Session, h: &Header, head: usize) -> Plan {
        if h.pkg_len < head as u64 {
            let why = format!("body of {} bytes, shorter than its head", h.pkg_len);
            Plan::Reject(self.refuse(s, h.cmd, &Error::Length(why)))
        } else {
            Plan::Stream { head }
        }
    }

    /// The status answering `e` to request `code` from `s` ([`refuse`]).
    fn refuse(&self, s: &Session, code: u8, e: &Error) -> u8 {
        refuse(&self.store, &s.req(code), e)
    }

    fn handle(&self, s: &mut Session, h: Header, cmd: Cmd, body: &[u8]) -> Result<Action, Error> {
        Ok(match cmd {
            Cmd::ActiveTest => Action::Reply(Reply::ok(Vec::new())),
            Cmd::ReportServerId => {
                let id = proto::sync::decode_report_server_id(body)?;
                log::debug!("sync connection from {} is peer {id}", s.peer);
                s.source = Some(id);
                Action::Reply(Reply::ok(Vec::new()))
            }
            Cmd::TruncateFile => {
                let t = proto::Truncate::decode(body)?;
                let group = self.store.cfg.group_name.clone();
                let asked = (cmd, s.req(h.cmd));
                self.change_file(asked, &group, &t.remote, move |store, target| {
                    let r = target.and_then(|x| appender::truncate(store, &x, t.new_size));
                    count(store, |c| {
                        c.total_truncate_count += 1;
                        c.success_truncate_count += r.is_ok() as u64;
                    });
                    r.map(|commit| (Vec::new(), commit))
                })
            }
            Cmd::RegenerateAppenderFilename => {
                let remote = proto::decode_remote_name(body, "appender filename")?;
                let group = self.store.cfg.group_name.clone();
                let asked = (cmd, s.req(h.cmd));
                self.change_file(asked, &group.clone(), &remote, move |store, target| {
                    let r = target.and_then(|x| appender::regenerate(store, &x));
                    r.map(|(new, commit)| {
                        (proto::UploadReply { group, remote: new }.encode(), commit)
                    })
                })
            }
            Cmd::SyncTruncateFile => {
                let t = proto::sync::SyncTruncate::decode(body)?;
                let p = s.pusher();
                self.on_path(cmd, &t.remote.clone(), move |store| {
                    let (o, commit) = appender::sync_truncate(store, &t);
                    let reply = Self::sync_reply(store, &p, cmd, &t.remote, t.timestamp, &o);
                    (reply, commit)
                })
            }
            Cmd::SyncRenameFile => {
                let l = proto::sync::SyncLink::decode(body)?;
                let p = s.pusher();
                self.on_path(cmd, &l.src.clone(), move |store| {
                    let (o, commit) = appender::sync_rename(store, &l);
                    if !appender::regenerated_whole(store, &l.group, &l.dest) {
                        log::warn!(
                            "{} (from {}): not the size its name says after the rename; \
                             copying it whole from {}",
                            l.dest,
                            l.src,
                            p.addr.ip()
                        );
                        store.refetch.request(p.addr.ip(), &l.dest);
                    }
                    let what = format!("{} (from {})", l.dest, l.src);
                    (
                        Self::sync_reply(store, &p, cmd, &what, l.timestamp, &o),
                        commit,
                    )
                })
            }
            Cmd::SyncCreateLink => {
                let l = proto::sync::SyncLink::decode(body)?;
                let p = s.pusher();
                self.on_path(cmd, &l.dest.clone(), move |store| {
                    let (o, commit) = replica::link(store, &l);
                    let what = format!("{} (to {})", l.dest, l.src);
                    (
                        Self::sync_reply(store, &p, cmd, &what, l.timestamp, &o),
                        commit,
                    )
                })
            }
            Cmd::SyncDeleteFile => {
                let d = proto::sync::SyncDelete::decode(body)?;
                let p = s.pusher();
                self.on_path(cmd, &d.remote.clone(), move |store| {
                    let (o, commit) = replica::delete(store, &d);
                    let reply = Self::sync_reply(store, &p, cmd, &d.remote, d.timestamp, &o);
                    (reply, commit)
                })
            }
            Cmd::DownloadFile => {
                let d = proto::Download::decode(body)?;
                let target = disk::resolve(&self.store, &d.group, &d.remote);
                let now = Now::new(&self.store);
                // A file of a path being refilled may have to be copied first.
                let refilling = target
                    .as_ref()
                    .is_ok_and(|t| self.store.repair.recovering(t.pool()));
                if !refilling
                    && placement::decide(cmd, &now) == Place::Cached
                    && let Ok(t) = &target
                    && let Some(r) =
                        cached::download(&t.path, t.pool(), d.offset, d.length, self.lookup())
                {
                    count_download(&self.store, &r);
                    return Ok(Action::Reply(reply_of(&self.store, &s.req(h.cmd), r)));
                }
                let asked = (cmd, s.req(h.cmd));
                self.read_target(asked, now.cache_tried(), target, move |store, target| {
                    if let Ok(t) = &target {
                        super::repair::recovery::fetch_for_read(store, &t.name);
                    }
                    let r =
                        target.and_then(|t| disk::download(&t.path, t.pool(), d.offset, d.length));
                    count_download(store, &r);
                    r
                })
            }
            Cmd::DeleteFile => {
                let f = proto::FileRef::decode(body)?;
                let asked = (cmd, s.req(h.cmd));
                self.change_file(asked, &f.group, &f.remote, move |store, target| {
                    let r = target.and_then(|t| disk::delete(store, &t));
                    count(store, |c| {
                        c.total_delete_count += 1;
                        c.success_delete_count += r.is_ok() as u64;
                    });
                    r.map(|commit| (Vec::new(), commit))
                })
            }
            Cmd::SetMetadata => {
                let m = proto::SetMetadata::decode(body)?;
                let asked = (cmd, s.req(h.cmd));
                self.change_file(asked, &m.group, &m.remote, move |store, target| {
                    let r = target.and_then(|t| disk::set_metadata(store, &t, m.op, &m.meta));
                    count(store, |c| {
                        c.total_set_meta_count += 1;
                        c.success_set_meta_count += r.is_ok() as u64;
                    });
                    r.map(|commit| (Vec::new(), commit))
                })
            }
            Cmd::GetMetadata => {
                let f = proto::FileRef::decode(body)?;
                let target = disk::resolve(&self.store, &f.group, &f.remote);
                let now = Now::new(&self.store);
                if placement::decide(cmd, &now) == Place::Cached
                    && let Ok(t) = &target
                    && let Some(r) =
                        cached::get_metadata(&self.store.file_locks, &t.path, self.lookup())
                {
                    count_get_meta(&self.store, &r);
                    let r = r.map(Reply::ok);
                    return Ok(Action::Reply(reply_of(&self.store, &s.req(h.cmd), r)));
                }
                let asked = (cmd, s.req(h.cmd));
                self.read_target(asked, now.cache_tried(), target, move |store, target| {
                    let r = target.and_then(|t| disk::get_metadata(&store.file_locks, &t.path));
                    count_get_meta(store, &r);
                    r.map(Reply::ok)
                })
            }
            Cmd::QueryFileInfo => {
                let f = proto::FileRef::decode(body)?;
                let flags = h.status;
                let target = disk::resolve(&self.store, &f.group, &f.remote);
                // A stat, unless the CRC32 must be read from the content.
                let kind = match &target {
                    Ok(t) if disk::crc_from_content(&t.name, flags) => Kind::Read,
                    _ => Kind::Stat,
                };
                let place = placement::decide_kind(cmd, kind, &Now::new(&self.store));
                let path = target.as_ref().map_or(0, |t| t.name.store_index as usize);
                let req = s.req(h.cmd);
                self.run(place, path, move |store| {
                    let ip_size = store.identity.ip_size();
                    let r = target.and_then(|t| disk::file_info(store, &t, flags, ip_size));
                    reply_of(store, &req, r.map(Reply::ok))
                })
            }
            Cmd::FdfsTreeDigest => {
                let body = body.to_vec();
                let place = placement::decide(cmd, &Now::new(&self.store));
                let req = s.req(h.cmd);
                self.run(place, 0, move |store| {
                    reply_of(store, &req, super::repair::digest_query(store, &body))
                })
            }
            Cmd::FdfsRepair => Action::Reply(super::repair::command(&self.store, body)?),
            Cmd::FdfsDedupStat => {
                let body = body.to_vec();
                let place = placement::decide(cmd, &Now::new(&self.store).cache_tried());
                let req = s.req(h.cmd);
                self.run(place, 0, move |store| {
                    reply_of(store, &req, super::dedup::stat(store, &body))
                })
            }
            _ => return Err(Error::Unsupported),
        })
    }
}

/// A change `job` as it runs: with `durable_uploads`, its reply waits for
/// the journal records it returns ([`super::durable::Durability::when_durable`]).
fn durable(
    job: impl FnOnce(&Store) -> (Reply, Commit) + Send + 'static,
) -> impl FnOnce(&Store) -> Reply + Send + 'static {
    move |store| store.durable.when_durable(job(store))
}

/// The reply of a change to `req` and the journal records it waits for
/// (none for an error).
fn changed(store: &Store, req: &Req, r: Result<(Vec<u8>, Commit), Error>) -> (Reply, Commit) {
    match r {
        Ok((body, commit)) => (Reply::ok(body), commit),
        Err(e) => (Reply::error(refuse(store, req, &e)), Commit::NONE),
    }
}

impl Service for StorageService {
    type Session = Session;
    type Stream = Incoming;

    fn open(&self, peer: SocketAddr) -> Option<Session> {
        if !crate::config::host_allowed(&self.store.cfg.allow_hosts, peer.ip()) {
            return None;
        }
        Some(Session { peer, source: None })
    }

    fn plan(&self, s: &mut Session, h: &Header) -> Plan {
        // Refused here, a request closes its connection: its body is never read.
        let Some(cmd) = Cmd::from_u8(h.cmd) else {
            return Plan::Reject(self.refuse(s, h.cmd, &Error::UnknownCommand(h.cmd)));
        };
        match cmd {
            Cmd::Quit => Plan::Quit,
            Cmd::SyncCreateFile | Cmd::SyncUpdateFile => {
                self.stream_head(s, h, SyncCreateHead::FIXED_LEN)
            }
            Cmd::UploadFile | Cmd::UploadAppenderFile => {
                self.stream_head(s, h, proto::UPLOAD_HEAD_LEN)
            }
            // Heads that start with a name length: read the fixed part first.
            Cmd::AppendFile
            | Cmd::ModifyFile
            | Cmd::UploadSlaveFile
            | Cmd::SyncAppendFile
            | Cmd::SyncModifyFile => self.stream_head(s, h, named_fixed_len(cmd)),
            _ => match self.body_limit(cmd) {
                Some(limit) if h.pkg_len <= limit => Plan::Buffer,
                Some(limit) => {
                    let why = format!("body of {} bytes exceeds {limit}", h.pkg_len);
                    Plan::Reject(self.refuse(s, h.cmd, &Error::Length(why)))
                }
                None => Plan::Reject(self.refuse(s, h.cmd, &Error::Unsupported)),
            },
        }
    }

    fn request(&self, s: &mut Session, h: Header, body: Vec<u8>) -> Action {
        let cmd = Cmd::from_u8(h.cmd).expect("plan() refused unknown commands");
        match self.handle(s, h, cmd, &body) {
            Ok(a) => a,
            Err(e) => Action::Reply(Reply::error(self.refuse(s, h.cmd, &e))),
        }
    }

    fn begin_stream(&self, s: &mut Session, h: &Header, head: &[u8]) -> Begin<Incoming> {
        match Cmd::from_u8(h.cmd) {
            Some(Cmd::SyncCreateFile) => self.begin_copy(s, h, head, false),
            Some(Cmd::SyncUpdateFile) => self.begin_copy(s, h, head, true),
            Some(
                cmd @ (Cmd::AppendFile
                | Cmd::ModifyFile
                | Cmd::UploadSlaveFile
                | Cmd::SyncAppendFile
                | Cmd::SyncModifyFile),
            ) => self.begin_named(s, h, cmd, head),
            _ => self.begin_upload(s, h, head),
        }
    }

    /// A failed chunk is answered (by the loop, once the rest of the body
    /// is read) with the status returned, so it is logged here.
    fn stream_chunk(&self, st: &mut Incoming, data: &[u8]) -> Result<(), u8> {
        let r = match &mut st.body {
            Body::Upload(up) => up.write(data),
            Body::Copy(c) => c.write(data),
            Body::Change(c, _) => c.write(data),
        };
        r.map_err(|source| {
            let path = match &st.body {
                Body::Upload(up) => up.dir(),
                Body::Copy(c) => c.dest().to_path_buf(),
                Body::Change(c, _) => c.path().to_path_buf(),
            };
            let e = Error::Io {
                what: "writing received content for",
                path,
                source,
            };
            refuse(&self.store, &st.req, &e)
        })
    }

    fn stream_end(&self, st: Incoming) -> Reply {
        // Its records: one journal round for the batch. (A failed round
        // answers an error; the counters have counted a success by then.)
        self.store.durable.when_durable(self.finish_stream(st))
    }

    /// EINVAL, as upstream: the request may not have been read whole, and
    /// clients reconnect after it.
    fn close_after_error(&self, status: u8) -> bool {
        status == status::EINVAL
    }

    fn pool(&self, idx: usize) -> Option<&Pool> {
        match idx {
            REPAIR_POOL => Some(&self.store.repair.pool),
            _ => self.store.pool(idx),
        }
    }

    fn close(&self, _: Session) {}
}

#[path = "handler_stream.rs"]
mod stream;

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
