//! The tracker's request handlers: one function per command, all answered on
//! the loop thread (they only touch the in-memory state under a short lock).

use super::cluster::Cluster;
use super::members::sync_body;
use super::state::{FetchKind, FileFacts, Refusal, State};
use crate::config::{IpAddrSize, TrackerConfig};
use crate::layout::{RemoteName, Source};
use crate::net::{Action, Begin, LogLimit, Plan, Pool, Reply, Service};
use crate::proto::peer::SYS_FILE_CHUNK;
use crate::proto::{self, Cmd, Header, status};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The tracker role: config plus the cluster state.
pub struct Tracker {
    pub cfg: TrackerConfig,
    pub state: Mutex<State>,
    pub started: u64,
    /// The other trackers and the leader.
    pub cluster: Mutex<Cluster>,
    /// storage_ids.conf entries (with use_storage_id).
    pub ids: Vec<crate::config::storage_ids::StorageId>,
    /// Set when the tracker is told to stop (before its loops close).
    pub stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Warnings about refused requests from servers, per (peer ip, command).
    pub refusals: LogLimit<(std::net::IpAddr, u8)>,
    /// data/storage_changelog.dat, served from memory.
    pub changelog: super::changelog::Changelog,
    /// The server's connection counters, set once it listens.
    pub conns: std::sync::OnceLock<std::sync::Arc<crate::net::ConnStats>>,
}

/// At most one warning per peer and command in this time.
pub const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Requests that storages and trackers send on their own (joins, heartbeats,
/// reports, sync negotiation): a refusal means a server is out of the
/// cluster or stuck, so it is logged as a warning. Clients' queries
/// (ENOENT for a group that does not exist) stay at debug.
fn from_a_server(cmd: Cmd) -> bool {
    use Cmd::*;
    matches!(
        cmd,
        StorageJoin
            | StorageBeat
            | StorageReportDiskUsage
            | StorageSyncReport
            | StorageSyncDestReq
            | StorageSyncNotify
            | StorageSyncSrcReq
            | StorageSyncDestQuery
            | StorageChangelogReq
            | StorageReportStatus
            | StorageReportIpChanged
            | StorageGetMyIp
            | StorageParameterReq
            | FetchStorageIds
            | StorageGetServerId
            | TrackerJoinLeader
            | TrackerPingLeader
    )
}

/// Per-connection state: who is at the other end.
pub struct Session {
    pub(super) peer: SocketAddr,
    pub(super) joined: Option<Joined>,
    /// System files being copied by a peer tracker (GET_SYS_FILES_START..END).
    sys_files: Option<Vec<Vec<u8>>>,
    /// A follower tracker sent JOIN_LEADER on this connection.
    follower: bool,
    /// Its "ip:port" when its JOIN_LEADER named its port (the key of `Cluster::followers`).
    follower_addr: Option<String>,
}

/// A storage that has JOINed on this connection.
pub(super) struct Joined {
    pub(super) group: String,
    pub(super) id: String,
    pub(super) serial: u64,
    /// Group version last sent in a beat reply on this connection.
    pub(super) sent_version: u64,
    /// Leader version last sent on this connection.
    pub(super) sent_leader: u64,
}

pub(super) type Res = Result<Vec<u8>, Refused>;

/// A refused request: the status sent back, and the reason the log gives.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) status: u8,
    pub(super) why: String,
}

impl Refused {
    pub(super) fn new(status: u8, why: impl Into<String>) -> Refused {
        Refused {
            status,
            why: why.into(),
        }
    }
}

impl From<u8> for Refused {
    fn from(status: u8) -> Refused {
        Refused {
            status,
            why: String::new(),
        }
    }
}

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Refused {
        Refused::new(r.status(), r.reason())
    }
}

pub(super) fn invalid(e: proto::DecodeError) -> Refused {
    Refused::new(status::EINVAL, e.to_string())
}

impl Tracker {
    /// This tracker's connection counts `[alloc, current, max]` (alloc: connections accepted
    /// since start); zeros before it listens.
    pub(super) fn connection_counts(&self) -> [u32; 3] {
        self.conns.get().map_or([0; 3], |c| c.counts())
    }

    /// IP field width in replies (PROTOCOL.md §4.1.1).
    pub(super) fn ip_size(&self, st: &State) -> usize {
        match self.cfg.response_ip_addr_size {
            IpAddrSize::V4 => 16,
            IpAddrSize::V6 => 46,
            IpAddrSize::Auto => {
                let v6 = st
                    .groups
                    .values()
                    .flat_map(|g| &g.storages)
                    .any(|s| s.ip.contains(':'));
                if v6 { 46 } else { 16 }
            }
        }
    }

    fn dispatch(&self, s: &mut Session, cmd: Cmd, body: &[u8]) -> Res {
        use Cmd::*;
        match cmd {
            ActiveTest => Ok(Vec::new()),
            QueryStoreWithoutGroupOne
            | QueryStoreWithGroupOne
            | QueryStoreWithoutGroupAll
            | QueryStoreWithGroupAll => self.query_store(cmd, body),
            QueryFetchOne | QueryUpdate | QueryFetchAll => self.query_fetch(cmd, body),
            ListOneGroup | ListAllGroups => self.list_groups(cmd, body),
            ListStorage => self.list_storage(body),
            DeleteStorage => {
                let d = proto::DeleteStorage::decode(body).map_err(invalid)?;
                self.state.lock().delete_storage(&d.group, &d.id)?;
                // Storages learn it from the changelog and drop their sync state.
                self.changelog
                    .append(now(), &d.group, &d.id, proto::storage_status::DELETED, "");
                log::info!("storage {}/{} deleted by {}", d.group, d.id, s.peer);
                Ok(Vec::new())
            }
            DeleteGroup => {
                let g = proto::decode_group(body).map_err(invalid)?;
                self.state.lock().delete_group(&g)?;
                log::info!("group {g} deleted by {}", s.peer);
                Ok(Vec::new())
            }
            FetchStorageIds => {
                let req = proto::FetchStorageIds::decode(body).map_err(invalid)?;
                if !self.cfg.use_storage_id {
                    return if req.allow_empty {
                        Ok(proto::StorageIdsReply {
                            total: 0,
                            lines: Vec::new(),
                        }
                        .encode())
                    } else {
                        Err(status::EOPNOTSUPP.into())
                    };
                }
                // Lines from start_index on, as many as fit a reply.
                let mut lines = Vec::new();
                let mut size = 8;
                for e in self.ids.iter().skip(req.start_index as usize) {
                    let l = e.to_line();
                    if size + l.len() + 1 > 60 * 1024 {
                        break;
                    }
                    size += l.len() + 1;
                    lines.push(l);
                }
                Ok(proto::StorageIdsReply {
                    total: self.ids.len() as u32,
                    lines,
                }
                .encode())
            }
            StorageGetServerId => {
                if !self.cfg.use_storage_id {
                    return Err(status::EOPNOTSUPP.into());
                }
                let q = proto::GetServerId::decode(body).map_err(invalid)?;
                let (ip, port) = q.ip_port();
                let e = self
                    .ids
                    .iter()
                    .find(|e| {
                        e.group == q.group
                            && e.hosts.iter().any(|h| h == ip)
                            && port.is_none_or(|p| e.port.is_none_or(|q| q == p))
                    })
                    .ok_or(status::ENOENT)?;
                Ok(e.id.clone().into_bytes())
            }
            StorageParameterReq => Ok(self.parameters()),
            StorageJoin => self.join(s, body),
            StorageGetMyIp => self.get_my_ip(s, body),
            StorageBeat
            | StorageReportDiskUsage
            | StorageSyncReport
            | StorageSyncDestReq
            | StorageSyncNotify => self.joined_cmd(s, cmd, body),
            TrackerGetStatus => {
                let (if_leader, running_time, restart_interval) = self.local_status();
                Ok(proto::peer::TrackerStatus {
                    if_leader,
                    running_time,
                    restart_interval,
                }
                .encode())
            }
            TrackerNotifyNextLeader | TrackerCommitNextLeader => self.leader_change(s, cmd, body),
            TrackerNotifyReselectLeader => {
                let mut c = self.cluster.lock();
                if c.is_leader() {
                    log::warn!("{} asks the leader to resign: new election", s.peer);
                    c.set_leader(None);
                }
                Ok(Vec::new())
            }
            TrackerJoinLeader | TrackerPingLeader => {
                if !self.cluster.lock().is_leader() {
                    return Err(status::EOPNOTSUPP.into());
                }
                if cmd == TrackerJoinLeader {
                    if s.follower {
                        return Err(status::EEXIST.into());
                    }
                    s.follower = true;
                    // A body we cannot read still makes a follower, one the
                    // cluster stats cannot name.
                    if let Ok(j) = proto::peer::JoinLeader::decode(body) {
                        let addr = format!("{}:{}", s.peer.ip(), j.server_port);
                        let mut c = self.cluster.lock();
                        if let Some(addr) = super::cluster::normalise(&addr) {
                            c.learn(std::slice::from_ref(&addr));
                            let f = c.followers.entry(addr.clone()).or_default();
                            f.up_time = j.up_time;
                            f.version = j.version;
                            s.follower_addr = Some(addr);
                        }
                    }
                } else if !s.follower {
                    return Err(status::EINVAL.into());
                } else if let Some(addr) = &s.follower_addr {
                    let mut c = self.cluster.lock();
                    let f = c.followers.entry(addr.clone()).or_default();
                    // Older followers send no counts; a body we cannot read
                    // still counts as a ping.
                    if let Ok(proto::peer::PingLeader {
                        connections: Some(n),
                    }) = proto::peer::PingLeader::decode(body)
                    {
                        f.connections = n;
                    }
                    f.last_heartbeat_time = now();
                }
                Ok(Vec::new())
            }
            TrackerClusterStat => self.tracker_cluster_stat(body),
            StorageClusterStat => self.storage_cluster_stat(body),
            StorageVolumnStat => self.storage_volumn_stat(body),
            GetLeader => self
                .cluster
                .lock()
                .leader
                .clone()
                .map(String::into_bytes)
                .ok_or(status::ENOENT.into()),
            TrackerGetSysFilesStart => {
                let st = self.state.lock();
                if st.groups.is_empty() {
                    return Err(status::ENOENT.into());
                }
                s.sys_files = Some(super::persist::snapshot(
                    &st,
                    self.changelog.all(),
                    self.cfg.use_storage_id,
                ));
                Ok(Vec::new())
            }
            TrackerGetOneSysFile => {
                let q = proto::peer::SysFileRequest::decode(body).map_err(invalid)?;
                let files = s.sys_files.as_ref().ok_or(status::EINVAL)?;
                let file = files.get(q.index as usize).ok_or(status::EINVAL)?;
                let offset = q.offset.min(file.len() as u64) as usize;
                let end = (offset + SYS_FILE_CHUNK).min(file.len());
                Ok(proto::peer::SysFileChunk {
                    file_size: file.len() as u64,
                    chunk: &file[offset..end],
                }
                .encode())
            }
            TrackerGetSysFilesEnd => {
                s.sys_files = None;
                Ok(Vec::new())
            }
            StorageChangelogReq => self.changelog_req(s, body),
            StorageReportIpChanged => {
                if self.cfg.use_storage_id {
                    return Err(status::EOPNOTSUPP.into());
                }
                let proto::ReportIpChanged {
                    group,
                    old_ip: old,
                    new_ip: new,
                } = proto::ReportIpChanged::decode(body).map_err(invalid)?;
                if new != s.peer.ip().to_string() {
                    return Err(status::EINVAL.into());
                }
                self.state.lock().ip_changed(&group, &old, &new)?;
                self.changelog
                    .append(now(), &group, &old, proto::storage_status::IP_CHANGED, &new);
                log::info!("storage {group}/{old} now answers at {new}");
                Ok(Vec::new())
            }
            StorageSyncSrcReq => {
                let q = proto::GroupStorage::decode(body).map_err(invalid)?;
                Ok(match self.state.lock().sync_src(&q.group, &q.id)? {
                    Some((src, until)) => sync_body(&src, until),
                    None => Vec::new(),
                })
            }
            StorageReportStatus => {
                let r = proto::ReportStatus::decode(body).map_err(invalid)?;
                self.state
                    .lock()
                    .report_status(&r.group, &r.server.id, r.server.status)?;
                log::info!(
                    "{} reports {}/{} {}",
                    s.peer,
                    r.group,
                    r.server.id,
                    proto::storage_status::name(r.server.status)
                );
                Ok(Vec::new())
            }
            StorageSyncDestQuery => {
                let j = s.joined.as_ref().ok_or(status::EACCES)?;
                let st = self.state.lock();
                let me = st
                    .groups
                    .get(&j.group)
                    .and_then(|g| g.get(&j.id))
                    .ok_or(status::ENOENT)?;
                Ok(if me.sync_src.is_empty() {
                    Vec::new()
                } else {
                    sync_body(&me.sync_src, me.sync_until)
                })
            }
            _ => {
                log::warn!(
                    "{} from {}: not supported by this tracker",
                    cmd.name(),
                    s.peer
                );
                Err(status::EINVAL.into())
            }
        }
    }

    fn query_store(&self, cmd: Cmd, body: &[u8]) -> Res {
        let group = match cmd {
            Cmd::QueryStoreWithGroupOne | Cmd::QueryStoreWithGroupAll => {
                Some(proto::decode_group(body).map_err(invalid)?)
            }
            _ if body.is_empty() => None,
            _ => return Err(status::EINVAL.into()),
        };
        let mut st = self.state.lock();
        let (name, order, path) = st.pick_store(group.as_deref(), &self.cfg)?;
        let ip_size = self.ip_size(&st);
        let g = &st.groups[&name];
        if matches!(
            cmd,
            Cmd::QueryStoreWithoutGroupOne | Cmd::QueryStoreWithGroupOne
        ) {
            let s = &g.storages[order[0]];
            let t = proto::StoreTarget {
                group: name.clone(),
                ip: s.ip.clone(),
                port: s.port,
                store_path_index: path,
            };
            Ok(t.encode(ip_size))
        } else {
            let servers = order
                .iter()
                .map(|&i| (g.storages[i].ip.clone(), g.storages[i].port))
                .collect();
            Ok(proto::StoreTargets {
                group: name.clone(),
                servers,
                store_path_index: path,
            }
            .encode(ip_size))
        }
    }

    fn query_fetch(&self, cmd: Cmd, body: &[u8]) -> Res {
        let q = proto::FetchQuery::decode(body).map_err(invalid)?;
        let name = RemoteName::parse(&q.remote).map_err(|_| status::EINVAL)?;
        let info = name.info().map_err(|_| status::EINVAL)?;
        let facts = FileFacts {
            source: match info.source {
                Source::Ip(ip) => ip.to_string(),
                Source::Id(id) => id.to_string(),
            },
            timestamp: info.timestamp as u64,
            normal: name.is_normal(),
        };
        let kind = match cmd {
            Cmd::QueryFetchOne => FetchKind::One,
            Cmd::QueryUpdate => FetchKind::Update,
            _ => FetchKind::All,
        };
        let mut st = self.state.lock();
        let found = st.pick_fetch(&q.group, &facts, kind, now(), &self.cfg)?;
        let ip_size = self.ip_size(&st);
        Ok(if kind == FetchKind::All {
            let all = proto::FetchAll {
                group: q.group,
                servers: found,
            };
            if self.cfg.fetch_all_layout_v616 {
                all.encode_v616(ip_size)
            } else {
                all.encode_legacy(ip_size)
            }
        } else {
            let (ip, port) = found.into_iter().next().ok_or(status::ENOENT)?;
            proto::FetchTarget {
                group: q.group,
                ip,
                port,
            }
            .encode(ip_size)
        })
    }

    fn list_groups(&self, cmd: Cmd, body: &[u8]) -> Res {
        let only = if cmd == Cmd::ListOneGroup {
            Some(proto::decode_group(body).map_err(invalid)?)
        } else if body.is_empty() {
            None
        } else {
            return Err(status::EINVAL.into());
        };
        let st = self.state.lock();
        let mut out = Vec::new();
        let mut found = false;
        for g in st
            .groups
            .values()
            .filter(|g| only.as_ref().is_none_or(|n| *n == g.name))
        {
            found = true;
            super::stats::group_stat(g, &self.cfg).encode(self.cfg.legacy_stat_layout, &mut out);
        }
        if only.is_some() && !found {
            return Err(status::ENOENT.into());
        }
        Ok(out)
    }

    fn list_storage(&self, body: &[u8]) -> Res {
        let q = proto::ListStorage::decode(body).map_err(invalid)?;
        let st = self.state.lock();
        let ip_size = self.ip_size(&st);
        let g = st.groups.get(&q.group).ok_or(status::ENOENT)?;
        let layout = if self.cfg.legacy_stat_layout {
            proto::StatLayout::Legacy612
        } else {
            proto::StatLayout::V616 { ip_size }
        };
        let mut out = Vec::new();
        let mut found = false;
        for s in g
            .storages
            .iter()
            .filter(|s| q.id.as_ref().is_none_or(|id| *id == s.id || *id == s.ip))
        {
            found = true;
            super::stats::storage_stat(s, g, &self.cfg).encode(layout, &mut out);
        }
        if q.id.is_some() && !found {
            return Err(status::ENOENT.into());
        }
        Ok(out)
    }
}

impl Tracker {
    fn log_refusal(&self, s: &Session, cmd: Cmd, r: &Refused) {
        let server = from_a_server(cmd);
        // A client's query refused (a group with no storage, say) is routine:
        // its line is made only when debug logging is on.
        if !server && !log::log_enabled!(log::Level::Debug) {
            return;
        }
        let who = match &s.joined {
            Some(j) => format!("{} (storage {}/{})", s.peer, j.group, j.id),
            None => s.peer.to_string(),
        };
        let sep = if r.why.is_empty() { "" } else { ": " };
        let msg = format_args!(
            "{} from {who} refused with {}{sep}{}",
            cmd.name(),
            status::describe(r.status),
            r.why
        );
        if server {
            self.refusals
                .warn(&(s.peer.ip(), cmd as u8), module_path!(), msg);
        } else {
            log::debug!("{msg}");
        }
    }
}

impl Service for Tracker {
    type Session = Session;
    type Stream = ();

    fn open(&self, peer: SocketAddr) -> Option<Session> {
        if !crate::config::host_allowed(&self.cfg.allow_hosts, peer.ip()) {
            return None;
        }
        Some(Session {
            peer,
            joined: None,
            sys_files: None,
            follower: false,
            follower_addr: None,
        })
    }

    fn plan(&self, s: &mut Session, h: &Header) -> Plan {
        match Cmd::from_u8(h.cmd) {
            Some(Cmd::Quit) => Plan::Quit,
            _ if h.pkg_len > self.cfg.max_buff_size => {
                log::warn!(
                    "request from {} announces {} bytes (max_buff_size {}), closing",
                    s.peer,
                    h.pkg_len,
                    self.cfg.max_buff_size
                );
                Plan::Reject(status::EINVAL)
            }
            _ => Plan::Buffer,
        }
    }

    fn request(&self, s: &mut Session, h: Header, body: Vec<u8>) -> Action {
        let Some(cmd) = Cmd::from_u8(h.cmd) else {
            log::warn!("unknown command {} from {}", h.cmd, s.peer);
            return Action::Reply(Reply::error(status::EINVAL));
        };
        Action::Reply(match self.dispatch(s, cmd, &body) {
            Ok(body) => Reply::ok(body),
            Err(r) => {
                self.log_refusal(s, cmd, &r);
                Reply::error(r.status)
            }
        })
    }

    fn begin_stream(&self, _: &mut Session, _: &Header, _: &[u8]) -> Begin<()> {
        Begin::Reject(status::EINVAL)
    }

    fn stream_chunk(&self, _: &mut (), _: &[u8]) -> Result<(), u8> {
        Err(status::EINVAL)
    }

    fn stream_end(&self, _: ()) -> Reply {
        Reply::error(status::EINVAL)
    }

    fn pool(&self, _: usize) -> Option<&Pool> {
        None
    }

    /// Never: the tracker reads every request whole, so the connection stays
    /// usable after any error (upstream does the same).
    fn close_after_error(&self, _: u8) -> bool {
        false
    }

    fn close(&self, s: Session) {
        // When we stop, our own closing of the connections says nothing about
        // the storages; marking them OFFLINE would make loops still serving
        // answer clients "no storage" (ENOENT, which clients do not retry
        // elsewhere) instead of the truth.
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if let Some(j) = s.joined {
            self.state.lock().disconnected(&j.group, &j.id, j.serial);
            log::info!("storage {}/{} disconnected ({})", j.group, j.id, s.peer);
        }
    }
}
