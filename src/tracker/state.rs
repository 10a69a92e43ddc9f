//! The tracker's view of the cluster: groups, their storage servers, and the
//! rules that pick a server for an upload or a download (PROTOCOL.md §7, §8).
//! Pure data and decisions: no sockets, no files; `handler` and `persist` use it.

use crate::config::{Reserved, TrackerConfig};
use crate::proto::StatCounters;
use crate::proto::storage_status as st;
use std::collections::BTreeMap;

/// rw_mode bits (tracker_types.h): read permission 4, write permission 2.
pub const RW_READ: u8 = 4;
/// See [`RW_READ`].
pub const RW_WRITE: u8 = 2;

/// One storage server as the tracker knows it.
#[derive(Clone, Debug, Default)]
pub struct Storage {
    /// Storage id; the IP address when storage ids are off.
    pub id: String,
    pub ip: String,
    pub port: u16,
    pub status: u8,
    pub rw_mode: u8,
    pub version: String,
    pub join_time: u64,
    pub up_time: u64,
    /// (total_mb, free_mb) per store path, from REPORT_DISK_USAGE.
    pub paths: Vec<(u64, u64)>,
    pub total_mb: u64,
    pub free_mb: u64,
    pub store_path_count: u32,
    pub subdir_count_per_path: u32,
    pub upload_priority: i64,
    pub current_write_path: usize,
    pub sync_src: String,
    pub sync_until: u64,
    pub changelog_offset: u64,
    pub stat: StatCounters,
    /// Newest timestamp of each source's changes this server reported as
    /// received (SYNC_REPORT): the row of the sync-timestamp matrix.
    pub synced_from: BTreeMap<String, u32>,
    /// For an IP_CHANGED record: the id of the record that replaced it.
    pub moved_to: Option<String>,
    /// Bumped by every JOIN, so that closing an older connection does not mark
    /// a server that has already re-joined OFFLINE.
    pub conn_serial: u64,
}

impl Storage {
    /// ACTIVE and allowed to serve reads.
    pub fn readable(&self) -> bool {
        self.status == st::ACTIVE && self.rw_mode & RW_READ != 0
    }
    /// ACTIVE and allowed to take uploads.
    pub fn writable(&self) -> bool {
        self.status == st::ACTIVE && self.rw_mode & RW_WRITE != 0
    }
}

/// A group: servers that hold the same files.
#[derive(Clone, Debug, Default)]
pub struct Group {
    pub name: String,
    /// Shared port, -1 when servers use different ports.
    pub storage_port: i64,
    pub store_path_count: u32,
    pub subdir_count_per_path: u32,
    pub current_trunk_file_id: i64,
    /// Sorted by id.
    pub storages: Vec<Storage>,
    pub current_write_server: usize,
    pub current_read_server: usize,
    /// Bumped when the server list or a status changes; beat replies carry the
    /// list to each storage connection whose last copy is older.
    pub version: u64,
}

impl Group {
    /// The server with this id.
    pub fn get(&self, id: &str) -> Option<&Storage> {
        self.storages.iter().find(|s| s.id == id)
    }
    /// The server with this id, mutable.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Storage> {
        self.storages.iter_mut().find(|s| s.id == id)
    }
    /// The writable server with the least free space: it bounds what the group
    /// can still take (tracker_find_min_free_space).
    pub fn min_free(&self) -> Option<&Storage> {
        self.storages
            .iter()
            .filter(|s| s.writable())
            .min_by_key(|s| s.free_mb)
    }
    /// (total_mb, free_mb) that the group reports.
    pub fn space(&self) -> (u64, u64) {
        self.min_free().map_or((0, 0), |s| (s.total_mb, s.free_mb))
    }
    fn has_writable(&self) -> bool {
        self.storages.iter().any(|s| s.writable())
    }
    fn touch(&mut self) {
        self.version += 1;
    }
}

/// Why the state could not serve a request. The handlers carry it in
/// `tracker::Error::Refused`, whose `status` gives the errno on the wire
/// (in brackets here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such group or storage (ENOENT).
    NotFound,
    /// No storage with free space (ENOSPC).
    NoSpace,
    /// Invalid for this group or storage (EINVAL).
    Invalid,
    /// Busy: a storage still running (EBUSY).
    Busy,
    /// Already done (EALREADY).
    Already,
    /// Inconsistent state (EFAULT).
    Fault,
}

impl Refusal {
    /// What the log says.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotFound => "no such group or storage",
            Refusal::NoSpace => "no storage with free space",
            Refusal::Invalid => "invalid for this group or storage",
            Refusal::Busy => "busy",
            Refusal::Already => "already done",
            Refusal::Fault => "inconsistent state",
        }
    }
}

/// What a JOIN told us about a server.
#[derive(Clone, Debug, Default)]
pub struct JoinInfo {
    pub group: String,
    pub id: String,
    pub ip: String,
    pub port: u16,
    pub store_path_count: u32,
    pub subdir_count_per_path: u32,
    pub upload_priority: i64,
    pub join_time: u64,
    pub up_time: u64,
    pub version: String,
    pub init_flag: bool,
    pub status: i8,
    /// Client permissions (storage_ids.conf `rw=`).
    pub rw_mode: u8,
}

/// Where a download or update may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchKind {
    /// QUERY_FETCH_ONE
    One,
    /// QUERY_UPDATE
    Update,
    /// QUERY_FETCH_ALL
    All,
}

/// What the tracker knows about a file from its name.
#[derive(Clone, Debug)]
pub struct FileFacts {
    /// Source server: its id (numeric id or IP text).
    pub source: String,
    pub timestamp: u64,
    /// Neither appender nor slave: may be read from any synced server.
    pub normal: bool,
}

/// Every group and storage, plus the round-robin cursors.
#[derive(Debug, Default)]
pub struct State {
    pub groups: BTreeMap<String, Group>,
    pub current_write_group: usize,
    /// Group with most free space (store_lookup = 2).
    pub max_free_group: Option<String>,
    /// Set when something worth saving changed.
    pub dirty: bool,
    /// Set when a sync report changed the sync-timestamp matrix.
    pub matrix_dirty: bool,
}

impl State {
    /// Apply a JOIN; returns (status to tell the server, its sync source).
    pub fn join(&mut self, j: &JoinInfo) -> Result<(u8, String), Refusal> {
        let group = self.groups.entry(j.group.clone()).or_insert_with(|| Group {
            name: j.group.clone(),
            storage_port: j.port as i64,
            store_path_count: j.store_path_count,
            subdir_count_per_path: j.subdir_count_per_path,
            ..Group::default()
        });
        let others = group
            .storages
            .iter()
            .filter(|s| s.id != j.id && s.status != st::DELETED)
            .count();
        if others > 0 && group.subdir_count_per_path != j.subdir_count_per_path {
            return Err(Refusal::Invalid);
        }
        if others == 0 {
            group.subdir_count_per_path = j.subdir_count_per_path;
            group.store_path_count = j.store_path_count;
            group.storage_port = j.port as i64;
        } else {
            group.store_path_count = group.store_path_count.max(j.store_path_count);
            if group.storage_port != j.port as i64 {
                group.storage_port = -1;
            }
        }
        let known = group.get(&j.id).map(|s| s.status);
        let status = match known {
            None => {
                if j.init_flag || j.status <= 0 {
                    st::INIT
                } else {
                    match j.status as u8 {
                        st::DELETED | st::IP_CHANGED | st::NONE => return Err(Refusal::Fault),
                        st::ACTIVE => st::ONLINE,
                        s => s,
                    }
                }
            }
            Some(st::DELETED) => st::INIT,
            Some(st::OFFLINE | st::ONLINE | st::ACTIVE | st::RECOVERY) => st::ONLINE,
            Some(s) => s,
        };
        if known.is_none() {
            group.storages.push(Storage {
                id: j.id.clone(),
                ..Storage::default()
            });
            group.storages.sort_by(|a, b| a.id.cmp(&b.id));
        }
        let s = group.get_mut(&j.id).expect("inserted above");
        s.ip = j.ip.clone();
        s.port = j.port;
        s.status = status;
        s.version = j.version.clone();
        s.join_time = j.join_time;
        s.up_time = j.up_time;
        s.store_path_count = j.store_path_count;
        s.subdir_count_per_path = j.subdir_count_per_path;
        s.upload_priority = j.upload_priority;
        s.rw_mode = j.rw_mode;
        s.conn_serial += 1;
        if s.paths.len() != j.store_path_count as usize {
            s.paths = vec![(0, 0); j.store_path_count as usize];
        }
        let src = s.sync_src.clone();
        group.touch();
        self.dirty = true;
        Ok((status, src))
    }

    /// The connection serial of a server (see [`Storage::conn_serial`]).
    pub fn serial(&self, group: &str, id: &str) -> u64 {
        self.groups
            .get(group)
            .and_then(|g| g.get(id))
            .map_or(0, |s| s.conn_serial)
    }

    /// A joined server's connection closed: ONLINE/ACTIVE become OFFLINE.
    pub fn disconnected(&mut self, group: &str, id: &str, serial: u64) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let Some(s) = g.get_mut(id) else { return };
        if s.conn_serial == serial && matches!(s.status, st::ONLINE | st::ACTIVE) {
            s.status = st::OFFLINE;
            g.touch();
            self.dirty = true;
        }
    }

    /// BEAT / REPORT_DISK_USAGE: the server is alive; ONLINE/OFFLINE become ACTIVE.
    pub fn alive(&mut self, group: &str, id: &str, now: u64) -> Option<&mut Storage> {
        let g = self.groups.get_mut(group)?;
        let s = g.get_mut(id)?;
        s.stat.last_heart_beat_time = now;
        if matches!(s.status, st::ONLINE | st::OFFLINE) {
            s.status = st::ACTIVE;
            g.touch();
            self.dirty = true;
        }
        g.get_mut(id)
    }

    /// REPORT_DISK_USAGE: record per-path space, recompute the group's best path
    /// and the group with most free space.
    pub fn disk_usage(
        &mut self,
        group: &str,
        id: &str,
        paths: Vec<(u64, u64)>,
        now: u64,
        most_free_path: bool,
    ) {
        if let Some(s) = self.alive(group, id, now) {
            s.total_mb = paths.iter().map(|p| p.0).sum();
            s.free_mb = paths.iter().map(|p| p.1).sum();
            if most_free_path {
                s.current_write_path = paths
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, p)| p.1)
                    .map_or(0, |(i, _)| i);
            }
            s.paths = paths;
        }
        self.max_free_group = self
            .groups
            .values()
            .filter(|g| g.has_writable())
            .max_by_key(|g| g.space().1)
            .map(|g| g.name.clone());
    }

    /// SYNC_DEST_REQ from a new server: give it a source if the group has one.
    pub fn sync_dest_req(
        &mut self,
        group: &str,
        id: &str,
        now: u64,
    ) -> Result<Option<(String, u64)>, Refusal> {
        let g = self.groups.get_mut(group).ok_or(Refusal::NotFound)?;
        let has_peer = g
            .storages
            .iter()
            .any(|s| s.id != id && matches!(s.status, st::OFFLINE | st::ONLINE | st::ACTIVE));
        let answer = if has_peer {
            let src = g
                .storages
                .iter()
                .find(|s| s.id != id && s.writable())
                .ok_or(Refusal::NotFound)?
                .id
                .clone();
            let me = g.get_mut(id).ok_or(Refusal::NotFound)?;
            me.status = st::WAIT_SYNC;
            me.sync_src = src.clone();
            me.sync_until = now;
            Some((src, now))
        } else {
            g.get_mut(id).ok_or(Refusal::NotFound)?.status = st::ONLINE;
            None
        };
        g.touch();
        self.dirty = true;
        Ok(answer)
    }

    /// SYNC_NOTIFY: the server tells which source it negotiated (empty = none).
    pub fn sync_notify(
        &mut self,
        group: &str,
        id: &str,
        src: &str,
        until: u64,
    ) -> Result<(), Refusal> {
        let g = self.groups.get_mut(group).ok_or(Refusal::NotFound)?;
        if !src.is_empty()
            && g.get(src)
                .is_none_or(|s| matches!(s.status, st::DELETED | st::IP_CHANGED))
        {
            return Err(Refusal::NotFound);
        }
        let me = g.get_mut(id).ok_or(Refusal::NotFound)?;
        if src.is_empty() {
            if matches!(me.status, st::INIT | st::WAIT_SYNC | st::SYNCING) {
                me.status = st::ONLINE;
            }
        } else {
            if me.status == st::INIT {
                me.status = st::WAIT_SYNC;
            }
            if me.sync_src.is_empty() {
                me.sync_src = src.to_string();
                me.sync_until = until;
            }
        }
        g.touch();
        self.dirty = true;
        Ok(())
    }

    /// Servers that stopped beating for `timeout` seconds become OFFLINE.
    pub fn expire(&mut self, now: u64, timeout: u64) -> Vec<String> {
        let mut gone = Vec::new();
        for g in self.groups.values_mut() {
            let mut changed = false;
            for s in &mut g.storages {
                if matches!(s.status, st::ONLINE | st::ACTIVE)
                    && s.stat.last_heart_beat_time + timeout < now
                {
                    s.status = st::OFFLINE;
                    changed = true;
                    gone.push(format!("{}/{} ({}:{})", g.name, s.id, s.ip, s.port));
                }
            }
            if changed {
                g.touch();
                self.dirty = true;
            }
        }
        gone
    }

    /// Pick a group for an upload (store_lookup), then a server and store path.
    pub fn pick_store(
        &mut self,
        group: Option<&str>,
        cfg: &TrackerConfig,
    ) -> Result<(String, Vec<usize>, u8), Refusal> {
        let name = match group {
            Some(g) => g.to_string(),
            None if cfg.store_lookup == 1 => cfg.store_group.clone(),
            None => self.pick_group(cfg)?,
        };
        let g = self.groups.get_mut(&name).ok_or(Refusal::NotFound)?;
        if !g.has_writable() {
            return Err(Refusal::NotFound);
        }
        if !group_has_space(g, &cfg.reserved_storage_space) {
            return Err(Refusal::NoSpace);
        }
        let writable: Vec<usize> = (0..g.storages.len())
            .filter(|&i| g.storages[i].writable())
            .collect();
        let first = match cfg.store_server {
            1 => 0,
            2 => (0..writable.len())
                .min_by_key(|&k| g.storages[writable[k]].upload_priority)
                .unwrap_or(0),
            _ => {
                let k = g.current_write_server % writable.len();
                g.current_write_server = (k + 1) % writable.len();
                k
            }
        };
        let mut order: Vec<usize> = writable[first..].to_vec();
        order.extend_from_slice(&writable[..first]);
        let path = pick_path(
            &mut g.storages[order[0]],
            &cfg.reserved_storage_space,
            cfg.store_path == 2,
        )?;
        Ok((name, order, path))
    }

    fn pick_group(&mut self, cfg: &TrackerConfig) -> Result<String, Refusal> {
        let names: Vec<String> = self.groups.keys().cloned().collect();
        if names.is_empty() {
            return Err(Refusal::NotFound);
        }
        if cfg.store_lookup == 2
            && let Some(best) = &self.max_free_group
            && let Some(g) = self.groups.get(best)
            && g.has_writable()
            && group_has_space(g, &cfg.reserved_storage_space)
        {
            return Ok(best.clone());
        }
        let start = self.current_write_group % names.len();
        if cfg.store_lookup == 0 {
            self.current_write_group = (start + 1) % names.len();
        }
        let mut any_writable = false;
        for k in 0..names.len() {
            let g = &self.groups[&names[(start + k) % names.len()]];
            if g.has_writable() {
                any_writable = true;
                if group_has_space(g, &cfg.reserved_storage_space) {
                    return Ok(g.name.clone());
                }
            }
        }
        Err(if any_writable {
            Refusal::NoSpace
        } else {
            Refusal::NotFound
        })
    }

    /// Servers that may serve a read (or an update) of a file (PROTOCOL.md §7.3).
    pub fn pick_fetch(
        &mut self,
        group: &str,
        f: &FileFacts,
        kind: FetchKind,
        now: u64,
        cfg: &TrackerConfig,
    ) -> Result<Vec<(String, u16)>, Refusal> {
        let g = self.groups.get_mut(group).ok_or(Refusal::NotFound)?;
        let mut source = g
            .storages
            .iter()
            .position(|s| s.id == f.source || s.ip == f.source);
        // A source that changed its IP answers under its new record.
        if let Some(next) = source.and_then(|i| g.storages[i].moved_to.clone()) {
            source = g.storages.iter().position(|s| s.id == next);
        }
        if kind == FetchKind::Update {
            if let Some(i) = source.filter(|&i| g.storages[i].writable()) {
                return Ok(vec![addr(&g.storages[i])]);
            }
            let w = g
                .storages
                .iter()
                .find(|s| s.writable())
                .ok_or(Refusal::NotFound)?;
            return Ok(vec![addr(w)]);
        }
        let readable: Vec<usize> = (0..g.storages.len())
            .filter(|&i| g.storages[i].readable())
            .collect();
        if readable.is_empty() {
            return Err(Refusal::NotFound);
        }
        if (!f.normal || cfg.download_server == 1)
            && let Some(i) = source.filter(|&i| g.storages[i].readable())
        {
            return Ok(vec![addr(&g.storages[i])]);
        }
        let has_file = |s: &Storage, is_source: bool| -> bool {
            // What this server received from the file's source, when it said so;
            // else its overall synced time.
            let synced = s
                .synced_from
                .get(&f.source)
                .map_or(s.stat.last_synced_timestamp, |&t| t as u64);
            is_source
                || f.timestamp + cfg.storage_sync_file_max_delay.as_secs() < now
                || synced > f.timestamp
                || (synced + 1 >= f.timestamp
                    && now.saturating_sub(f.timestamp) > cfg.storage_sync_file_max_time.as_secs())
        };
        let mut found = Vec::new();
        if f.normal {
            let start = g.current_read_server % readable.len();
            for k in 0..readable.len() {
                let i = readable[(start + k) % readable.len()];
                if has_file(&g.storages[i], Some(i) == source) {
                    found.push(addr(&g.storages[i]));
                    if kind == FetchKind::One {
                        g.current_read_server = (start + k + 1) % readable.len();
                        break;
                    }
                }
            }
        }
        if found.is_empty() {
            // Fallback: the group's store server, if it may be read.
            let store = if cfg.store_server == 2 {
                g.storages
                    .iter()
                    .filter(|s| s.writable())
                    .min_by_key(|s| s.upload_priority)
            } else {
                g.storages.iter().find(|s| s.writable())
            };
            match store {
                Some(s) if s.rw_mode & RW_READ != 0 => found.push(addr(s)),
                _ => return Err(Refusal::NotFound),
            }
        }
        Ok(found)
    }

    /// SYNC_SRC_REQ: the sync source of `dest` and its until time, if that
    /// source is alive; a dead source is forgotten (PROTOCOL.md §9.6).
    pub fn sync_src(&mut self, group: &str, dest: &str) -> Result<Option<(String, u64)>, Refusal> {
        let g = self.groups.get_mut(group).ok_or(Refusal::NotFound)?;
        let d = g.get(dest).ok_or(Refusal::NotFound)?;
        if matches!(d.status, st::INIT | st::DELETED | st::IP_CHANGED) {
            return Err(Refusal::NotFound);
        }
        if d.sync_src.is_empty() {
            return Ok(None);
        }
        let (src, until) = (d.sync_src.clone(), d.sync_until);
        let alive = g.get(&src).is_some_and(|s| {
            matches!(
                s.status,
                st::OFFLINE | st::ONLINE | st::ACTIVE | st::RECOVERY
            )
        });
        if alive {
            return Ok(Some((src, until)));
        }
        g.get_mut(dest).expect("looked up above").sync_src.clear();
        self.dirty = true;
        Ok(None)
    }

    /// REPORT_STATUS from a source about a server it syncs (PROTOCOL.md §9.7):
    /// forward moves only (WAIT_SYNC -> SYNCING -> OFFLINE), never over a
    /// server that is serving or newer.
    pub fn report_status(&mut self, group: &str, id: &str, status: u8) -> Result<(), Refusal> {
        let g = self.groups.get_mut(group).ok_or(Refusal::NotFound)?;
        let Some(s) = g.get_mut(id) else {
            return Ok(());
        };
        if status == st::NONE
            || s.status == status
            || matches!(s.status, st::INIT | st::ONLINE | st::ACTIVE | st::RECOVERY)
        {
            return Ok(());
        }
        if matches!(status, st::DELETED | st::IP_CHANGED) || status > s.status {
            s.status = status;
            g.touch();
            self.dirty = true;
        }
        Ok(())
    }

    /// Take in the state copied from another tracker: groups and servers we
    /// do not know yet, deletions, sync sources and sync timestamps; what live
    /// joins told us since wins.
    pub fn merge_copied(&mut self, other: State) {
        for (name, og) in other.groups {
            let g = self.groups.entry(name).or_insert_with(|| Group {
                storages: Vec::new(),
                ..og.clone()
            });
            for os in og.storages {
                match g.get_mut(&os.id) {
                    None => g.storages.push(os),
                    Some(s) => {
                        if s.sync_src.is_empty() {
                            s.sync_src = os.sync_src;
                            s.sync_until = os.sync_until;
                        }
                        for (k, v) in os.synced_from {
                            s.synced_from.entry(k).or_insert(v);
                        }
                        if os.status == st::DELETED && !matches!(s.status, st::ONLINE | st::ACTIVE)
                        {
                            s.status = st::DELETED;
                        }
                    }
                }
            }
            g.storages.sort_by(|a, b| a.id.cmp(&b.id));
            g.touch();
        }
        self.dirty = true;
        self.matrix_dirty = true;
    }

    /// REPORT_IP_CHANGED (no storage ids): the server `old` now answers at
    /// `new`; the new record takes over its state, the old one is kept as
    /// IP_CHANGED so that its files' source still resolves.
    pub fn ip_changed(&mut self, group: &str, old: &str, new: &str) -> Result<(), Refusal> {
        let g = self.groups.get_mut(group).ok_or(Refusal::NotFound)?;
        let prev = g.get(old).ok_or(Refusal::NotFound)?.clone();
        if prev.status == st::IP_CHANGED || g.get(new).is_some() {
            return Err(Refusal::Already);
        }
        g.storages.push(Storage {
            id: new.to_string(),
            ip: new.to_string(),
            conn_serial: 0,
            moved_to: None,
            ..prev
        });
        let o = g.get_mut(old).expect("looked up above");
        o.status = st::IP_CHANGED;
        o.moved_to = Some(new.to_string());
        for s in &mut g.storages {
            if s.sync_src == old {
                s.sync_src = new.to_string();
            }
            if let Some(ts) = s.synced_from.remove(old) {
                s.synced_from.insert(new.to_string(), ts);
            }
        }
        g.storages.sort_by(|a, b| a.id.cmp(&b.id));
        g.touch();
        self.dirty = true;
        Ok(())
    }

    /// DELETE_STORAGE: only servers that are not serving may be removed.
    pub fn delete_storage(&mut self, group: &str, id: &str) -> Result<(), Refusal> {
        let g = self.groups.get_mut(group).ok_or(Refusal::NotFound)?;
        let s = g.get_mut(id).ok_or(Refusal::NotFound)?;
        match s.status {
            st::ONLINE | st::ACTIVE | st::RECOVERY => return Err(Refusal::Busy),
            st::DELETED => return Err(Refusal::Already),
            st::IP_CHANGED => return Err(Refusal::NotFound),
            _ => s.status = st::DELETED,
        }
        g.touch();
        self.dirty = true;
        Ok(())
    }

    /// DELETE_GROUP: only a group whose servers are all deleted.
    pub fn delete_group(&mut self, group: &str) -> Result<(), Refusal> {
        let g = self.groups.get(group).ok_or(Refusal::NotFound)?;
        if g.storages.iter().any(|s| s.status != st::DELETED) {
            return Err(Refusal::Busy);
        }
        self.groups.remove(group);
        self.dirty = true;
        Ok(())
    }
}

fn addr(s: &Storage) -> (String, u16) {
    (s.ip.clone(), s.port)
}

/// Reserved space of a server or group in MB.
pub fn reserved_mb(r: &Reserved, total_mb: u64) -> u64 {
    match *r {
        Reserved::Bytes(b) => b / (1024 * 1024),
        Reserved::Ratio(x) => (total_mb as f64 * x) as u64,
    }
}

fn group_has_space(g: &Group, r: &Reserved) -> bool {
    let (total, free) = g.space();
    has_space(total, free, r)
}

/// Whether `free_mb` of `total_mb` is above the reserve (fdfs_check_reserved_space): more
/// than the reserved MB, or a free share above the reserved ratio (never with total 0).
pub fn has_space(total_mb: u64, free_mb: u64, r: &Reserved) -> bool {
    match *r {
        Reserved::Bytes(_) => free_mb > reserved_mb(r, total_mb),
        Reserved::Ratio(x) => total_mb > 0 && (free_mb as f64 / total_mb as f64) > x,
    }
}

/// Choose the store path of `s` for the next upload: its current one (round
/// robin or most free), skipping paths below their share of the reserve.
fn pick_path(s: &mut Storage, r: &Reserved, most_free: bool) -> Result<u8, Refusal> {
    let n = s.paths.len().max(1);
    let per_path_reserve = reserved_mb(r, s.total_mb) / n as u64;
    let start = s.current_write_path % n;
    for k in 0..n {
        let i = (start + k) % n;
        let free = s.paths.get(i).map_or(0, |p| p.1);
        if free > per_path_reserve {
            if !most_free {
                s.current_write_path = (i + 1) % n;
            }
            return Ok(i as u8);
        }
    }
    Err(Refusal::NoSpace)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
