//! The tracker's request handlers: one function per command, all answered on
//! the loop thread (they only touch the in-memory state under a short lock).

use super::cluster::{Cluster, SYS_FILE_CHUNK};
use super::state::{FetchKind, FileFacts, JoinInfo, Refusal, State};
use crate::config::{IpAddrSize, TrackerConfig};
use crate::layout::{RemoteName, Source};
use crate::net::{Action, Begin, Plan, Pool, Reply, Service};
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
    /// base_path/data.
    pub data_dir: std::path::PathBuf,
    /// storage_ids.conf entries (with use_storage_id).
    pub ids: Vec<crate::config::storage_ids::StorageId>,
}

/// Per-connection state: who is at the other end.
pub struct Session {
    peer: SocketAddr,
    joined: Option<Joined>,
    /// System files being copied by a peer tracker (GET_SYS_FILES_START..END).
    sys_files: Option<Vec<Vec<u8>>>,
    /// A follower tracker sent JOIN_LEADER on this connection.
    follower: bool,
}

/// A storage that has JOINed on this connection.
struct Joined {
    group: String,
    id: String,
    serial: u64,
    /// Group version last sent in a beat reply on this connection.
    sent_version: u64,
    /// Leader version last sent on this connection.
    sent_leader: u64,
}

type Res = Result<Vec<u8>, u8>;

impl From<Refusal> for u8 {
    fn from(r: Refusal) -> u8 {
        r.status()
    }
}

fn invalid(e: proto::DecodeError) -> u8 {
    log::debug!("bad request body: {e}");
    status::EINVAL
}

impl Tracker {
    /// IP field width in replies (PROTOCOL.md §4.1.1).
    fn ip_size(&self, st: &State) -> usize {
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
                let mut st = self.state.lock();
                st.delete_storage(&d.group, &d.id)?;
                // Storages learn it from the changelog and drop their sync state.
                if let Err(e) = super::changelog::append(
                    &self.data_dir,
                    now(),
                    &d.group,
                    &d.id,
                    proto::storage_status::DELETED,
                    "",
                ) {
                    log::error!("writing the changelog: {e}");
                }
                drop(st);
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
                        Err(status::EOPNOTSUPP)
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
                    return Err(status::EOPNOTSUPP);
                }
                // group[16] + "ip:port" (6.16) or + "ip" (older).
                let group = proto::fixed_str(body.get(..16).ok_or(status::EINVAL)?);
                let rest = std::str::from_utf8(&body[16..])
                    .map_err(|_| status::EINVAL)?
                    .trim_end_matches('\0');
                let (ip, port) = match rest.rsplit_once(':') {
                    Some((ip, p)) if !ip.contains(':') || ip.starts_with('[') => {
                        (ip.trim_matches(['[', ']']), p.parse::<u16>().ok())
                    }
                    _ => (rest, None),
                };
                let e = self
                    .ids
                    .iter()
                    .find(|e| {
                        e.group == group
                            && e.hosts.iter().any(|h| h == ip)
                            && port.is_none_or(|p| e.port.is_none_or(|q| q == p))
                    })
                    .ok_or(status::ENOENT)?;
                Ok(e.id.clone().into_bytes())
            }
            StorageParameterReq => Ok(self.parameters()),
            StorageJoin => self.join(s, body),
            StorageBeat
            | StorageReportDiskUsage
            | StorageSyncReport
            | StorageSyncDestReq
            | StorageSyncNotify => self.joined_cmd(s, cmd, body),
            TrackerGetStatus => {
                let (leader, running, restart) = self.local_status();
                let mut out = vec![leader as u8];
                proto::put_u64(&mut out, running);
                proto::put_u64(&mut out, restart);
                Ok(out)
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
                    return Err(status::EOPNOTSUPP);
                }
                if cmd == TrackerJoinLeader {
                    if s.follower {
                        return Err(status::EEXIST);
                    }
                    s.follower = true;
                    if body.len() == 24 {
                        let port = u64::from_be_bytes(body[16..24].try_into().expect("8 bytes"));
                        self.cluster
                            .lock()
                            .learn(&[format!("{}:{port}", s.peer.ip())]);
                    }
                } else if !s.follower {
                    return Err(status::EINVAL);
                }
                Ok(Vec::new())
            }
            GetLeader => self
                .cluster
                .lock()
                .leader
                .clone()
                .map(String::into_bytes)
                .ok_or(status::ENOENT),
            TrackerGetSysFilesStart => {
                let st = self.state.lock();
                if st.groups.is_empty() {
                    return Err(status::ENOENT);
                }
                s.sys_files = Some(super::persist::snapshot(
                    &st,
                    &self.data_dir,
                    self.cfg.use_storage_id,
                ));
                Ok(Vec::new())
            }
            TrackerGetOneSysFile => {
                if body.len() != 9 {
                    return Err(status::EINVAL);
                }
                let files = s.sys_files.as_ref().ok_or(status::EINVAL)?;
                let file = files.get(body[0] as usize).ok_or(status::EINVAL)?;
                let offset = u64::from_be_bytes(body[1..9].try_into().expect("8 bytes"))
                    .min(file.len() as u64) as usize;
                let end = (offset + SYS_FILE_CHUNK).min(file.len());
                let mut out = Vec::with_capacity(8 + end - offset);
                proto::put_u64(&mut out, file.len() as u64);
                out.extend_from_slice(&file[offset..end]);
                Ok(out)
            }
            TrackerGetSysFilesEnd => {
                s.sys_files = None;
                Ok(Vec::new())
            }
            StorageChangelogReq => {
                let j = s.joined.as_ref().ok_or(status::EACCES)?;
                let offset = self
                    .state
                    .lock()
                    .groups
                    .get(&j.group)
                    .and_then(|g| g.get(&j.id))
                    .map_or(0, |x| x.changelog_offset);
                let chunk =
                    super::changelog::read_from(&self.data_dir, offset).map_err(|_| status::EIO)?;
                if !chunk.is_empty() {
                    let mut st = self.state.lock();
                    if let Some(x) = st.groups.get_mut(&j.group).and_then(|g| g.get_mut(&j.id)) {
                        x.changelog_offset = offset + chunk.len() as u64;
                        st.dirty = true;
                    }
                }
                Ok(chunk)
            }
            StorageReportIpChanged => {
                if self.cfg.use_storage_id {
                    return Err(status::EOPNOTSUPP);
                }
                let ip = proto::IP_ADDRESS_SIZE;
                if body.len() != 16 + 2 * ip {
                    return Err(status::EINVAL);
                }
                let group = proto::fixed_str(&body[..16]);
                let (old, new) = (
                    proto::fixed_str(&body[16..16 + ip]),
                    proto::fixed_str(&body[16 + ip..]),
                );
                if new != s.peer.ip().to_string() {
                    return Err(status::EINVAL);
                }
                self.state.lock().ip_changed(&group, &old, &new)?;
                if let Err(e) = super::changelog::append(
                    &self.data_dir,
                    now(),
                    &group,
                    &old,
                    proto::storage_status::IP_CHANGED,
                    &new,
                ) {
                    log::error!("writing the changelog: {e}");
                }
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
                Err(status::EINVAL)
            }
        }
    }

    fn query_store(&self, cmd: Cmd, body: &[u8]) -> Res {
        let group = match cmd {
            Cmd::QueryStoreWithGroupOne | Cmd::QueryStoreWithGroupAll => {
                Some(proto::decode_group(body).map_err(invalid)?)
            }
            _ if body.is_empty() => None,
            _ => return Err(status::EINVAL),
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
            return Err(status::EINVAL);
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
            return Err(status::ENOENT);
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
            return Err(status::ENOENT);
        }
        Ok(out)
    }

    fn join(&self, s: &mut Session, body: &[u8]) -> Res {
        let j = proto::Join::decode(body).map_err(invalid)?;
        {
            let mut c = self.cluster.lock();
            if c.me.is_none() && !j.current_tracker_ip.is_empty() {
                c.me = Some(format!("{}:{}", j.current_tracker_ip, self.port()));
                let me = c.me.clone().expect("just set");
                c.trackers.insert(me);
            }
            if c.learn(&j.trackers) {
                log::info!("known trackers: {:?}", c.trackers);
            }
            if c.bootstrap {
                if c.others().is_empty() {
                    c.bootstrap = false;
                } else {
                    // Copy the cluster's state from a peer first (cluster thread).
                    return Err(status::EAGAIN);
                }
            }
        }
        let ip = s.peer.ip().to_string();
        let (id, rw_mode) = self.storage_id_of(&j, &ip).inspect_err(|_| {
            log::warn!(
                "join of {} from {}: no storage id (storage_ids.conf)",
                j.group,
                s.peer
            );
        })?;
        let info = JoinInfo {
            group: j.group.clone(),
            id: id.clone(),
            ip,
            port: j.storage_port,
            store_path_count: j.store_path_count,
            subdir_count_per_path: j.subdir_count_per_path,
            upload_priority: j.upload_priority,
            join_time: j.join_time,
            up_time: j.up_time,
            version: j.version.clone(),
            init_flag: j.init_flag,
            status: j.status,
            rw_mode,
        };
        let mut st = self.state.lock();
        let (my_status, src_id) = st.join(&info).map_err(|r| {
            log::warn!("join of {}/{id} from {} refused: {r:?}", j.group, s.peer);
            r.status()
        })?;
        let serial = st.serial(&j.group, &id);
        if my_status == proto::storage_status::INIT {
            // A new server has nothing to learn from older changelog lines.
            let end = super::changelog::size(&self.data_dir);
            if let Some(x) = st.groups.get_mut(&j.group).and_then(|g| g.get_mut(&id))
                && x.changelog_offset == 0
            {
                x.changelog_offset = end;
            }
        }
        drop(st);
        log::info!(
            "storage {}/{id} joined from {} (port {}, status {})",
            j.group,
            s.peer,
            j.storage_port,
            my_status
        );
        s.joined = Some(Joined {
            group: j.group,
            id,
            serial,
            sent_version: 0,
            sent_leader: 0,
        });
        Ok(proto::JoinReply {
            status: my_status,
            src_id,
        }
        .encode())
    }

    /// Commands that need a JOIN on this connection first (EACCES otherwise).
    fn joined_cmd(&self, s: &mut Session, cmd: Cmd, body: &[u8]) -> Res {
        let j = s.joined.as_mut().ok_or(status::EACCES)?;
        let now = now();
        let mut st = self.state.lock();
        match cmd {
            Cmd::StorageBeat => {
                let counters = proto::decode_beat(body).map_err(invalid)?;
                let me = st.alive(&j.group, &j.id, now).ok_or(status::ENOENT)?;
                if let Some(mut c) = counters {
                    // The tracker owns these two; the storage sends zeros.
                    c.last_synced_timestamp = me.stat.last_synced_timestamp;
                    c.last_heart_beat_time = now;
                    me.stat = c;
                }
            }
            Cmd::StorageReportDiskUsage => {
                let n = st
                    .groups
                    .get(&j.group)
                    .and_then(|g| g.get(&j.id))
                    .map_or(0, |s| s.paths.len());
                let paths = proto::decode_disk_usage(body, n).map_err(invalid)?;
                st.disk_usage(&j.group, &j.id, paths, now, self.cfg.store_path == 2);
            }
            Cmd::StorageSyncReport => {
                let reports = proto::decode_sync_report(body).map_err(invalid)?;
                super::stats::apply_sync_report(&mut st, &j.group, &j.id, &reports);
            }
            Cmd::StorageSyncDestReq => {
                return Ok(match st.sync_dest_req(&j.group, &j.id, now)? {
                    Some((src, until)) => sync_body(&src, until),
                    None => Vec::new(),
                });
            }
            Cmd::StorageSyncNotify => {
                if body.len() != 24 {
                    return Err(status::EINVAL);
                }
                let mut r = proto::Reader::new(body);
                let src = r.fixed(16, "src_id").map_err(invalid)?;
                let until = r.u64("until").map_err(invalid)?;
                st.sync_notify(&j.group, &j.id, &src, until)?;
                return Ok(Vec::new());
            }
            _ => unreachable!("joined_cmd called for {cmd:?}"),
        }
        // BEAT, DISK_USAGE and SYNC_REPORT share the reply: the server list when
        // it changed since this connection last got it.
        let g = st.groups.get(&j.group).ok_or(status::ENOENT)?;
        let mut reply = proto::BeatReply::default();
        {
            let c = self.cluster.lock();
            if c.leader_version != j.sent_leader
                && let Some(l) = &c.leader
            {
                let (ip, port) = l.rsplit_once(':').unwrap_or((l, "0"));
                reply.leader = Some(proto::Brief {
                    status: 0,
                    port: port.parse().unwrap_or(0),
                    id: ip.into(),
                    ip: ip.into(),
                });
                j.sent_leader = c.leader_version;
            }
        }
        if g.version != j.sent_version {
            j.sent_version = g.version;
            reply.servers = Some(
                g.storages
                    .iter()
                    .map(|s| proto::Brief {
                        status: s.status,
                        port: s.port as u32,
                        id: s.id.clone(),
                        ip: s.ip.clone(),
                    })
                    .collect(),
            );
        }
        Ok(reply.encode())
    }

    /// PARAMETER_REQ reply: every key upstream sends (PROTOCOL.md §9.8), since
    /// a storage assumes odd defaults for missing ones.
    fn parameters(&self) -> Vec<u8> {
        let c = &self.cfg;
        let b = |v: bool| if v { "1".to_string() } else { "0".to_string() };
        let reserved = match c.reserved_storage_space {
            crate::config::Reserved::Bytes(n) => format!("{}MB", n / (1024 * 1024)),
            crate::config::Reserved::Ratio(r) => format!("{:.2}%", r * 100.0),
        };
        let ip_size = self.ip_size(&self.state.lock());
        let pairs: Vec<(String, String)> = vec![
            ("use_storage_id".into(), b(c.use_storage_id)),
            (
                "id_type_in_filename".into(),
                if c.id_type_in_filename_is_id {
                    "id"
                } else {
                    "ip"
                }
                .into(),
            ),
            (
                "trust_storage_server_id".into(),
                b(c.trust_storage_server_id),
            ),
            ("response_ip_addr_size".into(), ip_size.to_string()),
            ("storage_ip_changed_auto_adjust".into(), "1".into()),
            (
                "storage_sync_file_max_delay".into(),
                c.storage_sync_file_max_delay.as_secs().to_string(),
            ),
            ("store_path".into(), c.store_path.to_string()),
            ("reserved_storage_space".into(), reserved),
            ("use_trunk_file".into(), b(c.use_trunk_file)),
            ("slot_min_size".into(), "256".into()),
            ("slot_max_size".into(), (1024 * 1024).to_string()),
            ("trunk_alloc_alignment_size".into(), "256".into()),
            ("trunk_file_size".into(), (64 * 1024 * 1024).to_string()),
            ("trunk_create_file_advance".into(), "0".into()),
            ("trunk_create_file_time_base".into(), "02:00".into()),
            ("trunk_create_file_interval".into(), "86400".into()),
            (
                "trunk_create_file_space_threshold".into(),
                (20u64 << 30).to_string(),
            ),
            ("trunk_init_check_occupying".into(), "0".into()),
            ("trunk_init_reload_from_binlog".into(), "0".into()),
            ("trunk_free_space_merge".into(), "1".into()),
            ("delete_unused_trunk_files".into(), "0".into()),
            ("trunk_compress_binlog_min_interval".into(), "86400".into()),
            ("trunk_compress_binlog_interval".into(), "86400".into()),
            ("trunk_compress_binlog_time_base".into(), "03:00".into()),
            ("trunk_binlog_max_backups".into(), "7".into()),
            (
                "store_slave_file_use_link".into(),
                b(c.store_slave_file_use_link),
            ),
        ];
        proto::ParameterReply(pairs).encode()
    }
}

impl Tracker {
    /// Our listening port.
    fn port(&self) -> u16 {
        self.cluster
            .lock()
            .me
            .as_deref()
            .and_then(|m| m.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(self.cfg.port)
    }

    /// The id and rw_mode of a joining storage: with storage ids, the id it
    /// sends (trust_storage_server_id) or the one storage_ids.conf gives its
    /// address; else its IP.
    fn storage_id_of(&self, j: &proto::Join, ip: &str) -> Result<(String, u8), u8> {
        use super::state::{RW_READ, RW_WRITE};
        if !self.cfg.use_storage_id {
            return Ok((ip.to_string(), RW_READ | RW_WRITE));
        }
        let listed = |id: &str| self.ids.iter().find(|e| e.id == id);
        if self.cfg.trust_storage_server_id && !j.storage_id.is_empty() {
            let rw = listed(&j.storage_id).map_or(RW_READ | RW_WRITE, |e| e.rw_mode);
            return Ok((j.storage_id.clone(), rw));
        }
        let e = self
            .ids
            .iter()
            .find(|e| e.matches(&j.group, ip, j.storage_port))
            .ok_or(status::ENOENT)?;
        Ok((e.id.clone(), e.rw_mode))
    }

    /// NOTIFY_NEXT_LEADER / COMMIT_NEXT_LEADER from an electing tracker.
    fn leader_change(&self, s: &Session, cmd: Cmd, body: &[u8]) -> Res {
        let addr = std::str::from_utf8(body)
            .ok()
            .and_then(super::cluster::normalise)
            .ok_or(status::EINVAL)?;
        let mut c = self.cluster.lock();
        if cmd == Cmd::TrackerNotifyNextLeader {
            if c.is_leader() && c.me.as_deref() != Some(addr.as_str()) {
                // Upstream's rule: a leader told of another candidate resigns.
                log::warn!(
                    "{} proposes {addr} as leader while we lead: stepping down",
                    s.peer
                );
                c.set_leader(None);
                return Err(status::EINVAL);
            }
            c.trackers.insert(addr.clone());
            c.candidate = Some(addr);
            Ok(Vec::new())
        } else if c.candidate.as_deref() == Some(addr.as_str()) {
            c.candidate = None;
            c.set_leader(Some(addr));
            Ok(Vec::new())
        } else {
            Err(status::EINVAL)
        }
    }
}

/// SyncReqBody: src_id[16] + until u64.
fn sync_body(src: &str, until: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    proto::put_fixed(&mut out, src, 16);
    proto::put_u64(&mut out, until);
    out
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
            // The body was read whole: the connection stays usable.
            return Action::Reply(Reply {
                close: false,
                ..Reply::error(status::EINVAL)
            });
        };
        Action::Reply(match self.dispatch(s, cmd, &body) {
            Ok(body) => Reply::ok(body),
            Err(code) => {
                log::debug!("{} from {}: {}", cmd.name(), s.peer, status::describe(code));
                // The tracker always reads whole requests, so the connection
                // stays usable after any error (upstream does the same).
                Reply {
                    close: false,
                    ..Reply::error(code)
                }
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

    fn close(&self, s: Session) {
        if let Some(j) = s.joined {
            self.state.lock().disconnected(&j.group, &j.id, j.serial);
            log::info!("storage {}/{} disconnected ({})", j.group, j.id, s.peer);
        }
    }
}
