//! Handlers for what storage servers send: who they are (storage ids,
//! GET_MY_IP, PARAMETER_REQ), JOIN and the commands that need it (beats,
//! disk usage, sync reports and negotiation), their status and address
//! changes, and the changelog.

use super::handler::{Error, Joined, Res, Session, Tracker, now};
use super::state::JoinInfo;
use crate::proto::{self, Cmd};

impl Tracker {
    pub(super) fn join(&self, s: &mut Session, body: &[u8]) -> Res {
        let j = proto::Join::decode(body)?;
        // Before the lock: `port` takes it too (a tracker listening on every
        // address learns its own from the first JOIN, under that lock).
        let port = self.port();
        {
            let mut c = self.cluster.lock();
            if c.me.is_none() && !j.current_tracker_ip.is_empty() {
                c.me = Some(format!("{}:{}", j.current_tracker_ip, port));
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
                    return Err(Error::NotYet(
                        "this tracker is still copying the cluster state from its peers",
                    ));
                }
            }
        }
        let ip = s.peer.ip().to_string();
        let (id, rw_mode) = self.storage_id_of(&j, &ip)?;
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
        let (my_status, src_id) = st
            .join(&info)
            .map_err(|r| Error::refused(r, format!("storage {}/{id}", j.group)))?;
        let serial = st.serial(&j.group, &id);
        if my_status == proto::storage_status::INIT {
            // A new server has nothing to learn from older changelog lines.
            let end = self.changelog.size();
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

    /// STORAGE_GET_MY_IP (60): the address the storage is known by, which a C
    /// storage asks every tracker first and cannot start without. With storage
    /// ids, the addresses of its storage_ids.conf entry ("ip1,ip2"), else the
    /// address its connection comes from (as upstream, also when the entry is
    /// missing).
    pub(super) fn get_my_ip(&self, s: &Session, body: &[u8]) -> Res {
        let q = proto::MyIpQuery::decode(body)?;
        let ip = s.peer.ip().to_string();
        if self.cfg.use_storage_id {
            if let Some(e) = self.ids.iter().find(|e| e.matches(&q.group, &ip, q.port)) {
                return Ok(e.hosts.join(",").into_bytes());
            }
            log::warn!(
                "GET_MY_IP from {}: group {} port {} is not in storage_ids.conf",
                s.peer,
                q.group,
                q.port
            );
        }
        Ok(ip.into_bytes())
    }

    /// STORAGE_CHANGELOG_REQ (77): the changelog lines this storage has not seen yet.
    /// On a joined connection the body is empty; a C storage restarting also asks on a
    /// connection of its own before it joins, naming itself (group str[16] + id str[16])
    /// and retrying until it gets an answer or ENOENT.
    pub(super) fn changelog_req(&self, s: &Session, body: &[u8]) -> Res {
        let (group, id) = match &s.joined {
            Some(j) if body.is_empty() => (j.group.clone(), j.id.clone()),
            Some(_) => return Err(Error::Invalid("a body after JOIN".into())),
            None => {
                let q = proto::GroupStorage::decode(body)?;
                (q.group, q.id)
            }
        };
        let offset = self
            .state
            .lock()
            .groups
            .get(&group)
            .and_then(|g| g.get(&id))
            .map(|x| x.changelog_offset)
            .ok_or_else(|| Error::NotFound(format!("storage {group}/{id}")))?;
        let chunk = self.changelog.read_from(offset);
        if !chunk.is_empty() {
            let mut st = self.state.lock();
            if let Some(x) = st.groups.get_mut(&group).and_then(|g| g.get_mut(&id)) {
                x.changelog_offset = offset + chunk.len() as u64;
                st.dirty = true;
            }
        }
        Ok(chunk)
    }

    /// Commands that need a JOIN on this connection first (EACCES otherwise).
    pub(super) fn joined_cmd(&self, s: &mut Session, cmd: Cmd, body: &[u8]) -> Res {
        let j = s.joined.as_mut().ok_or(Error::NotJoined)?;
        let gone = || Error::NotFound(about(j));
        let now = now();
        let mut st = self.state.lock();
        match cmd {
            Cmd::StorageBeat => {
                let counters = proto::decode_beat(body)?;
                let me = st.alive(&j.group, &j.id, now).ok_or_else(gone)?;
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
                let paths = proto::decode_disk_usage(body, n)?;
                st.disk_usage(&j.group, &j.id, paths, now, self.cfg.store_path == 2);
            }
            Cmd::StorageSyncReport => {
                let reports = proto::decode_sync_report(body)?;
                super::stats::apply_sync_report(&mut st, &j.group, &j.id, &reports);
            }
            Cmd::StorageSyncDestReq => {
                let found = st.sync_dest_req(&j.group, &j.id, now);
                return Ok(match found.map_err(|r| Error::refused(r, about(j)))? {
                    Some((src, until)) => sync_body(&src, until),
                    None => Vec::new(),
                });
            }
            Cmd::StorageSyncNotify => {
                let n = proto::SyncSrc::decode(body)?;
                st.sync_notify(&j.group, &j.id, &n.src_id, n.until_timestamp)
                    .map_err(|r| Error::refused(r, about(j)))?;
                return Ok(Vec::new());
            }
            _ => unreachable!("joined_cmd called for {cmd:?}"),
        }
        // BEAT, DISK_USAGE and SYNC_REPORT share the reply: the server list when
        // it changed since this connection last got it.
        let g = st.groups.get(&j.group).ok_or_else(gone)?;
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
    pub(super) fn parameters(&self) -> Vec<u8> {
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
    pub(super) fn port(&self) -> u16 {
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
    fn storage_id_of(&self, j: &proto::Join, ip: &str) -> Result<(String, u8), Error> {
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
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "storage id in storage_ids.conf for group {} port {} at this address",
                    j.group, j.storage_port
                ))
            })?;
        Ok((e.id.clone(), e.rw_mode))
    }
}

impl Tracker {
    /// STORAGE_FETCH_STORAGE_IDS (69): storage_ids.conf from `start_index`
    /// on, as many lines as fit a reply.
    pub(super) fn fetch_storage_ids(&self, body: &[u8]) -> Res {
        let req = proto::FetchStorageIds::decode(body)?;
        if !self.cfg.use_storage_id {
            return if req.allow_empty {
                Ok(proto::StorageIdsReply {
                    total: 0,
                    lines: Vec::new(),
                }
                .encode())
            } else {
                Err(Error::NotHere("use_storage_id is off"))
            };
        }
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

    /// STORAGE_GET_SERVER_ID (70): the id storage_ids.conf gives an address.
    pub(super) fn get_server_id(&self, body: &[u8]) -> Res {
        if !self.cfg.use_storage_id {
            return Err(Error::NotHere("use_storage_id is off"));
        }
        let q = proto::GetServerId::decode(body)?;
        let (ip, port) = q.ip_port();
        let e = self
            .ids
            .iter()
            .find(|e| {
                e.group == q.group
                    && e.hosts.iter().any(|h| h == ip)
                    && port.is_none_or(|p| e.port.is_none_or(|q| q == p))
            })
            .ok_or_else(|| Error::NotFound(format!("storage id for {ip} in group {}", q.group)))?;
        Ok(e.id.clone().into_bytes())
    }

    /// STORAGE_SYNC_DEST_QUERY (79): the sync source of the storage joined
    /// on this connection, if it has one.
    pub(super) fn sync_dest_query(&self, s: &Session) -> Res {
        let j = s.joined.as_ref().ok_or(Error::NotJoined)?;
        let st = self.state.lock();
        let me = st
            .groups
            .get(&j.group)
            .and_then(|g| g.get(&j.id))
            .ok_or_else(|| Error::NotFound(about(j)))?;
        Ok(if me.sync_src.is_empty() {
            Vec::new()
        } else {
            sync_body(&me.sync_src, me.sync_until)
        })
    }

    /// STORAGE_SYNC_SRC_REQ (86): the sync source of a storage it names.
    pub(super) fn sync_src_req(&self, body: &[u8]) -> Res {
        let q = proto::GroupStorage::decode(body)?;
        let found = self.state.lock().sync_src(&q.group, &q.id);
        let found =
            found.map_err(|r| Error::refused(r, format!("storage {}/{}", q.group, q.id)))?;
        Ok(match found {
            Some((src, until)) => sync_body(&src, until),
            None => Vec::new(),
        })
    }

    /// STORAGE_REPORT_STATUS (76): a storage says what another one's status is.
    pub(super) fn report_status(&self, s: &Session, body: &[u8]) -> Res {
        let r = proto::ReportStatus::decode(body)?;
        self.state
            .lock()
            .report_status(&r.group, &r.server.id, r.server.status)
            .map_err(|e| Error::refused(e, format!("storage {}/{}", r.group, r.server.id)))?;
        log::info!(
            "{} reports {}/{} {}",
            s.peer,
            r.group,
            r.server.id,
            proto::storage_status::name(r.server.status)
        );
        Ok(Vec::new())
    }

    /// STORAGE_REPORT_IP_CHANGED (78): a storage (without storage ids)
    /// answers at a new address, the one it connects from.
    pub(super) fn report_ip_changed(&self, s: &Session, body: &[u8]) -> Res {
        if self.cfg.use_storage_id {
            return Err(Error::NotHere("use_storage_id is on"));
        }
        let proto::ReportIpChanged {
            group,
            old_ip: old,
            new_ip: new,
        } = proto::ReportIpChanged::decode(body)?;
        if new != s.peer.ip().to_string() {
            return Err(Error::Invalid(format!(
                "new address {new} is not the one it connects from"
            )));
        }
        self.state
            .lock()
            .ip_changed(&group, &old, &new)
            .map_err(|r| Error::refused(r, format!("storage {group}/{old}")))?;
        self.changelog
            .append(now(), &group, &old, proto::storage_status::IP_CHANGED, &new);
        log::info!("storage {group}/{old} now answers at {new}");
        Ok(Vec::new())
    }
}

/// How a refusal names the storage joined on a connection.
fn about(j: &Joined) -> String {
    format!("storage {}/{}", j.group, j.id)
}

/// The reply naming a sync source (TrackerStorageSyncReqBody).
pub(super) fn sync_body(src: &str, until: u64) -> Vec<u8> {
    proto::SyncSrc {
        src_id: src.to_string(),
        until_timestamp: until,
    }
    .encode()
}
