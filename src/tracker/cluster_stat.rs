//! The cluster-stat commands new in FastDFS 6.16 (PROTOCOL.md §4.7), which upstream's
//! `fdfs_tracker_stat`, `fdfs_storage_stat` and `fdfs_volumn_stat` send:
//! SERVER_TRACKER_CLUSTER_STAT (96, leader only), SERVER_STORAGE_CLUSTER_STAT (97) and
//! SERVER_STORAGE_VOLUMN_STAT (98). The handlers check the request and the rules around it;
//! the records come from pure functions over the cluster and the state, so the filters are
//! tested without sockets. Wire layouts live in `proto::cluster_stat`.
//!
//! Where fdfs keeps no figure that upstream reports, the records say what fdfs has:
//! - connection `alloc` is the number of connections accepted since start (upstream: connection
//!   objects its pool allocated), for this tracker, its followers and the storages alike;
//! - no storage is a trunk server and trunk free space is 0, because this tracker does not
//!   elect trunk servers nor take trunk reports (so with `use_trunk_file`, the trunk is
//!   "available" exactly when the disk is);
//! - this tracker's own `last_heartbeat_time` is 0: a leader pings nobody (upstream leaves it 0
//!   too), and followers that never sent PING_LEADER have 0 and count as inactive.

use super::cluster::Cluster;
use super::handler::{Error, Res, Tracker, now};
use super::state::{State, has_space, reserved_mb};
use crate::config::Reserved;
use crate::proto::{
    Connections, HEADER_LEN, OP_EQUAL, OP_NOT_EQUAL, STORAGE_FILTER_IS_TRUNK_SERVER,
    STORAGE_FILTER_STATUS, StorageClusterStat, StorageEntry, StorageStatFilter,
    TRACKER_FILTER_IS_ACTIVE, TRACKER_FILTER_IS_LEADER, TrackerClusterStat, TrackerEntry,
    TrackerStatFilter, VOLUMN_FILTER_IS_DISK_AVAILABLE, VOLUMN_FILTER_IS_SPACE_AVAILABLE,
    VOLUMN_FILTER_IS_TRUNK_AVAILABLE, VolumnEntry, VolumnStat, VolumnStatFilter, format_ip_port,
};

/// A follower is active while its last PING_LEADER is at most this old (upstream's rule;
/// fdfs followers ping every half second).
const ACTIVE_WITHIN_SECS: u64 = 3;

/// What this tracker says about itself in 96 (its version is [`super::VERSION`]).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Own {
    /// When it started (Unix seconds).
    pub up_time: u64,
    /// Its connection counts now.
    pub connections: Connections,
}

impl Tracker {
    /// SERVER_TRACKER_CLUSTER_STAT (96): every known tracker, filtered. Only the leader
    /// answers (EOPNOTSUPP elsewhere), since only it hears every follower's pings; the C
    /// client asks GET_LEADER (95) first and sends this to the leader.
    pub(super) fn tracker_cluster_stat(&self, body: &[u8]) -> Res {
        let filter = TrackerStatFilter::decode(body)?;
        let [alloc, current, max] = self.connection_counts();
        let own = Own {
            up_time: self.started,
            connections: Connections {
                alloc,
                current,
                max,
            },
        };
        let c = self.cluster.lock();
        if !c.is_leader() {
            return Err(Error::NotHere("only the leader answers this"));
        }
        Ok(TrackerClusterStat {
            trackers: tracker_entries(&c, &own, &filter, now()),
        }
        .encode())
    }

    /// SERVER_STORAGE_CLUSTER_STAT (97): every storage of every group, filtered. Any tracker
    /// answers. EINVAL when a reply with every storage would exceed `max_buff_size`, checked
    /// before filtering as upstream does.
    pub(super) fn storage_cluster_stat(&self, body: &[u8]) -> Res {
        let filter = StorageStatFilter::decode(body)?;
        let st = self.state.lock();
        let total: usize = st.groups.values().map(|g| g.storages.len()).sum();
        self.check_reply_fits(StorageClusterStat::encoded_len(total))?;
        Ok(StorageClusterStat {
            use_storage_id: self.cfg.use_storage_id,
            use_trunk_file: self.cfg.use_trunk_file,
            storages: storage_entries(&st, &filter, self.cfg.use_trunk_file),
        }
        .encode())
    }

    /// SERVER_STORAGE_VOLUMN_STAT (98): space of every group, filtered. Any tracker answers.
    /// EINVAL when a reply with every group would exceed `max_buff_size`.
    pub(super) fn storage_volumn_stat(&self, body: &[u8]) -> Res {
        let filter = VolumnStatFilter::decode(body)?;
        let st = self.state.lock();
        self.check_reply_fits(VolumnStat::encoded_len(st.groups.len()))?;
        Ok(VolumnStat {
            use_trunk_file: self.cfg.use_trunk_file,
            groups: volumn_entries(
                &st,
                &filter,
                &self.cfg.reserved_storage_space,
                self.cfg.use_trunk_file,
            ),
        }
        .encode())
    }

    /// Upstream answers these stats from one network buffer of at most `max_buff_size`
    /// bytes, header included, and refuses a reply that would not fit.
    fn check_reply_fits(&self, body_len: usize) -> Result<(), Error> {
        let need = (HEADER_LEN + body_len) as u64;
        if need > self.cfg.max_buff_size {
            return Err(Error::TooBig {
                what: "reply",
                need,
                max: self.cfg.max_buff_size,
            });
        }
        Ok(())
    }
}

/// 96 records: the trackers `c` knows, in address order, those the filter keeps. The leader
/// is always active; a follower while it pings (see [`ACTIVE_WITHIN_SECS`]).
pub(super) fn tracker_entries(
    c: &Cluster,
    own: &Own,
    filter: &TrackerStatFilter,
    now: u64,
) -> Vec<TrackerEntry> {
    let mut out = Vec::new();
    for addr in &c.trackers {
        let is_leader = c.leader.as_ref() == Some(addr);
        let follower = c.followers.get(addr);
        let is_active = is_leader
            || follower.is_some_and(|f| {
                f.last_heartbeat_time > 0
                    && now.saturating_sub(f.last_heartbeat_time) <= ACTIVE_WITHIN_SECS
            });
        if filter.filter_by & TRACKER_FILTER_IS_LEADER != 0 && is_leader as u8 != filter.is_leader {
            continue;
        }
        if filter.filter_by & TRACKER_FILTER_IS_ACTIVE != 0 && is_active as u8 != filter.is_active {
            continue;
        }
        let host = match addr.rsplit_once(':').map(|(ip, p)| (ip, p.parse::<u16>())) {
            Some((ip, Ok(port))) => format_ip_port(ip, port),
            _ => addr.clone(),
        };
        let entry = if c.me.as_ref() == Some(addr) {
            TrackerEntry {
                host,
                is_leader,
                is_active,
                connections: own.connections,
                version: super::VERSION.to_string(),
                up_time: own.up_time,
                last_heartbeat_time: 0,
            }
        } else {
            let f = follower.cloned().unwrap_or_default();
            TrackerEntry {
                host,
                is_leader,
                is_active,
                connections: f.connections,
                version: f.version,
                up_time: f.up_time,
                last_heartbeat_time: f.last_heartbeat_time,
            }
        };
        out.push(entry);
    }
    out
}

/// Whether a storage passes a 97 filter. The trunk bit counts only with trunk files on; the
/// status bit keeps `=` equal or `!` different, and nothing for another `op_type`.
fn storage_matches(
    f: &StorageStatFilter,
    status: u8,
    is_trunk_server: bool,
    use_trunk_file: bool,
) -> bool {
    if use_trunk_file
        && f.filter_by & STORAGE_FILTER_IS_TRUNK_SERVER != 0
        && is_trunk_server as u8 != f.is_trunk_server
    {
        return false;
    }
    if f.filter_by & STORAGE_FILTER_STATUS != 0 {
        return match f.op_type {
            OP_EQUAL => status == f.status,
            OP_NOT_EQUAL => status != f.status,
            _ => false,
        };
    }
    true
}

/// 97 records: the storages of every group (groups by name, storages by id, deleted ones
/// included as upstream lists them), those the filter keeps.
pub(super) fn storage_entries(
    st: &State,
    filter: &StorageStatFilter,
    use_trunk_file: bool,
) -> Vec<StorageEntry> {
    // This tracker elects no trunk server (see the module comment).
    let is_trunk_server = false;
    st.groups
        .values()
        .flat_map(|g| &g.storages)
        .filter(|s| storage_matches(filter, s.status, is_trunk_server, use_trunk_file))
        .map(|s| StorageEntry {
            id: s.id.clone(),
            host: format_ip_port(&s.ip, s.port),
            is_trunk_server,
            status: s.status,
            connections: Connections {
                alloc: s.stat.connection_alloc,
                current: s.stat.connection_current,
                max: s.stat.connection_max,
            },
            version: s.version.clone(),
            up_time: s.up_time,
            last_heartbeat_time: s.stat.last_heart_beat_time,
        })
        .collect()
}

/// 98 records: one per group, by name, those the filter keeps. A group's space is that of
/// its writable server with the least free space (as in LIST_GROUPS); the disk is available
/// when its free space is above the reserve, the trunk when free plus trunk free space is.
pub(super) fn volumn_entries(
    st: &State,
    filter: &VolumnStatFilter,
    reserved: &Reserved,
    use_trunk_file: bool,
) -> Vec<VolumnEntry> {
    // This tracker takes no trunk free space reports (see the module comment).
    let trunk_free_mb = 0;
    let mut out = Vec::new();
    for g in st.groups.values() {
        let (total_mb, free_mb) = g.space();
        let disk = has_space(total_mb, free_mb, reserved);
        if filter.filter_by & VOLUMN_FILTER_IS_DISK_AVAILABLE != 0
            && disk as u8 != filter.is_disk_available
        {
            continue;
        }
        let trunk = use_trunk_file && has_space(total_mb, free_mb + trunk_free_mb, reserved);
        if use_trunk_file
            && filter.filter_by & VOLUMN_FILTER_IS_TRUNK_AVAILABLE != 0
            && trunk as u8 != filter.is_trunk_available
        {
            continue;
        }
        if filter.filter_by & VOLUMN_FILTER_IS_SPACE_AVAILABLE != 0
            && (disk || trunk) as u8 != filter.is_space_available
        {
            continue;
        }
        let reserved_mb = reserved_mb(reserved, total_mb);
        out.push(VolumnEntry {
            group: g.name.clone(),
            total_mb,
            free_mb,
            reserved_mb,
            avail_mb: if disk {
                free_mb.saturating_sub(reserved_mb)
            } else {
                0
            },
            trunk_free_mb: if trunk { trunk_free_mb } else { 0 },
            is_disk_available: disk,
            is_trunk_available: trunk,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::storage_status as sst;
    use crate::tracker::cluster::Follower;
    use crate::tracker::state::{Group, RW_READ, RW_WRITE, Storage};

    const NOW: u64 = 1_800_000_000;

    fn cluster() -> Cluster {
        let mut c = Cluster {
            me: Some("10.0.0.1:22122".into()),
            ..Cluster::default()
        };
        for t in ["10.0.0.1:22122", "10.0.0.2:22122", "fe80::3:22122"] {
            c.trackers.insert(t.into());
        }
        c.leader = c.me.clone();
        c.followers.insert(
            "10.0.0.2:22122".into(),
            Follower {
                up_time: 1_700_000_000,
                version: "6.16.1".into(),
                connections: Connections {
                    alloc: 5,
                    current: 1,
                    max: 2,
                },
                last_heartbeat_time: NOW - 1,
            },
        );
        // Joined once, then went silent.
        c.followers.insert(
            "fe80::3:22122".into(),
            Follower {
                up_time: 1_600_000_000,
                version: "6.15.0".into(),
                last_heartbeat_time: NOW - 4,
                ..Follower::default()
            },
        );
        c
    }

    fn own() -> Own {
        Own {
            up_time: 1_750_000_000,
            connections: Connections {
                alloc: 9,
                current: 3,
                max: 4,
            },
        }
    }

    fn hosts(v: &[TrackerEntry]) -> Vec<&str> {
        v.iter().map(|t| t.host.as_str()).collect()
    }

    fn tracker_filter(filter_by: u8, is_active: u8, is_leader: u8) -> TrackerStatFilter {
        TrackerStatFilter {
            filter_by,
            is_active,
            is_leader,
        }
    }

    #[test]
    fn trackers_unfiltered() {
        let v = tracker_entries(&cluster(), &own(), &tracker_filter(0, 0, 0), NOW);
        assert_eq!(
            hosts(&v),
            ["10.0.0.1:22122", "10.0.0.2:22122", "[fe80::3]:22122"]
        );
        let me = &v[0];
        assert!(me.is_leader && me.is_active);
        assert_eq!(me.version, crate::tracker::VERSION);
        assert_eq!(me.up_time, 1_750_000_000);
        assert_eq!(me.connections, own().connections);
        assert_eq!(me.last_heartbeat_time, 0);
        let f = &v[1];
        assert!(!f.is_leader && f.is_active);
        assert_eq!((f.up_time, f.version.as_str()), (1_700_000_000, "6.16.1"));
        assert_eq!(f.connections.alloc, 5);
        assert_eq!(f.last_heartbeat_time, NOW - 1);
        assert!(!v[2].is_active, "4 s without a ping is inactive");
    }

    #[test]
    fn trackers_filtered() {
        let c = cluster();
        let run = |f| tracker_entries(&c, &own(), &f, NOW);
        let leader = run(tracker_filter(TRACKER_FILTER_IS_LEADER, 0, 1));
        assert_eq!(hosts(&leader), ["10.0.0.1:22122"]);
        let followers = run(tracker_filter(TRACKER_FILTER_IS_LEADER, 0, 0));
        assert_eq!(hosts(&followers), ["10.0.0.2:22122", "[fe80::3]:22122"]);
        let active = run(tracker_filter(TRACKER_FILTER_IS_ACTIVE, 1, 0));
        assert_eq!(hosts(&active), ["10.0.0.1:22122", "10.0.0.2:22122"]);
        let inactive = run(tracker_filter(TRACKER_FILTER_IS_ACTIVE, 0, 0));
        assert_eq!(hosts(&inactive), ["[fe80::3]:22122"]);
        let both = run(tracker_filter(
            TRACKER_FILTER_IS_ACTIVE | TRACKER_FILTER_IS_LEADER,
            1,
            0,
        ));
        assert_eq!(hosts(&both), ["10.0.0.2:22122"]);
        // The values are ignored without their bit, and compared byte for byte with it.
        assert_eq!(run(tracker_filter(0, 7, 7)).len(), 3);
        assert!(run(tracker_filter(TRACKER_FILTER_IS_LEADER, 0, 7)).is_empty());
    }

    #[test]
    fn tracker_never_pinged_is_inactive() {
        let mut c = cluster();
        c.trackers.insert("10.0.0.9:22122".into());
        let v = tracker_entries(&c, &own(), &tracker_filter(0, 0, 0), NOW);
        let t = v.iter().find(|t| t.host == "10.0.0.9:22122").unwrap();
        assert!(!t.is_active && !t.is_leader);
        assert_eq!((t.up_time, t.version.as_str()), (0, ""));
    }

    fn storage(id: &str, status: u8, free_mb: u64) -> Storage {
        let mut s = Storage {
            id: id.into(),
            ip: id.into(),
            port: 23000,
            status,
            rw_mode: RW_READ | RW_WRITE,
            version: "6.16.1".into(),
            up_time: 1_700_000_100,
            total_mb: 1000,
            free_mb,
            ..Storage::default()
        };
        s.stat.connection_alloc = 11;
        s.stat.connection_current = 2;
        s.stat.connection_max = 3;
        s.stat.last_heart_beat_time = NOW - 2;
        s
    }

    fn state() -> State {
        let mut st = State::default();
        let groups = [
            (
                "group1",
                vec![
                    storage("10.0.1.1", sst::ACTIVE, 500),
                    storage("10.0.1.2", sst::OFFLINE, 900),
                ],
            ),
            ("group2", vec![storage("::1", sst::ACTIVE, 5)]),
            // No writable server: no space known.
            ("group3", vec![storage("10.0.3.1", sst::WAIT_SYNC, 800)]),
        ];
        for (name, storages) in groups {
            st.groups.insert(
                name.into(),
                Group {
                    name: name.into(),
                    storages,
                    ..Group::default()
                },
            );
        }
        st
    }

    fn ids(v: &[StorageEntry]) -> Vec<&str> {
        v.iter().map(|s| s.id.as_str()).collect()
    }

    fn storage_filter(filter_by: u8, op_type: u8, status: u8, trunk: u8) -> StorageStatFilter {
        StorageStatFilter {
            filter_by,
            op_type,
            status,
            is_trunk_server: trunk,
        }
    }

    #[test]
    fn storages_unfiltered() {
        let v = storage_entries(&state(), &storage_filter(0, 0, 0, 0), false);
        assert_eq!(ids(&v), ["10.0.1.1", "10.0.1.2", "::1", "10.0.3.1"]);
        let s = &v[0];
        assert_eq!(s.host, "10.0.1.1:23000");
        assert_eq!(s.status, sst::ACTIVE);
        assert_eq!(
            s.connections,
            Connections {
                alloc: 11,
                current: 2,
                max: 3
            }
        );
        assert_eq!((s.version.as_str(), s.up_time), ("6.16.1", 1_700_000_100));
        assert_eq!(s.last_heartbeat_time, NOW - 2);
        assert!(!s.is_trunk_server);
        assert_eq!(v[2].host, "[::1]:23000");
    }

    #[test]
    fn storages_by_status() {
        let st = state();
        let run = |f| storage_entries(&st, &f, false);
        let active = run(storage_filter(
            STORAGE_FILTER_STATUS,
            OP_EQUAL,
            sst::ACTIVE,
            0,
        ));
        assert_eq!(ids(&active), ["10.0.1.1", "::1"]);
        let other = run(storage_filter(
            STORAGE_FILTER_STATUS,
            OP_NOT_EQUAL,
            sst::ACTIVE,
            0,
        ));
        assert_eq!(ids(&other), ["10.0.1.2", "10.0.3.1"]);
        assert!(run(storage_filter(STORAGE_FILTER_STATUS, b'<', sst::ACTIVE, 0)).is_empty());
        // The op_type does not matter without the status bit.
        assert_eq!(run(storage_filter(0, b'<', sst::ACTIVE, 0)).len(), 4);
    }

    #[test]
    fn storages_by_trunk_server() {
        let st = state();
        let f = |trunk| storage_filter(STORAGE_FILTER_IS_TRUNK_SERVER, 0, 0, trunk);
        // Without trunk files the trunk bit is ignored.
        assert_eq!(storage_entries(&st, &f(1), false).len(), 4);
        // With them, no storage is a trunk server here.
        assert!(storage_entries(&st, &f(1), true).is_empty());
        assert_eq!(storage_entries(&st, &f(0), true).len(), 4);
    }

    fn volumn_filter(filter_by: u8, disk: u8, trunk: u8, space: u8) -> VolumnStatFilter {
        VolumnStatFilter {
            filter_by,
            is_disk_available: disk,
            is_trunk_available: trunk,
            is_space_available: space,
        }
    }

    fn names(v: &[VolumnEntry]) -> Vec<&str> {
        v.iter().map(|g| g.group.as_str()).collect()
    }

    #[test]
    fn volumns_unfiltered() {
        let ten_pct = Reserved::Ratio(0.1);
        let v = volumn_entries(&state(), &volumn_filter(0, 0, 0, 0), &ten_pct, false);
        assert_eq!(names(&v), ["group1", "group2", "group3"]);
        // group1: its one writable server has 500 of 1000 MB free.
        assert_eq!(
            v[0],
            VolumnEntry {
                group: "group1".into(),
                total_mb: 1000,
                free_mb: 500,
                reserved_mb: 100,
                avail_mb: 400,
                trunk_free_mb: 0,
                is_disk_available: true,
                is_trunk_available: false,
            }
        );
        // group2: 5 of 1000 MB free is below 10%: nothing available.
        assert!(!v[1].is_disk_available);
        assert_eq!((v[1].free_mb, v[1].reserved_mb, v[1].avail_mb), (5, 100, 0));
        // group3: nothing writable, no space known.
        assert_eq!((v[2].total_mb, v[2].free_mb), (0, 0));
        assert!(!v[2].is_disk_available);

        let mb = Reserved::Bytes(600 << 20);
        let v = volumn_entries(&state(), &volumn_filter(0, 0, 0, 0), &mb, false);
        assert_eq!((v[0].reserved_mb, v[0].avail_mb), (600, 0));
        assert!(
            !v[0].is_disk_available,
            "500 MB free is not above 600 reserved"
        );
    }

    #[test]
    fn volumns_filtered() {
        let st = state();
        let r = Reserved::Ratio(0.1);
        let run = |f, trunk| volumn_entries(&st, &f, &r, trunk);
        let f = volumn_filter(VOLUMN_FILTER_IS_DISK_AVAILABLE, 1, 0, 0);
        assert_eq!(names(&run(f, false)), ["group1"]);
        let f = volumn_filter(VOLUMN_FILTER_IS_DISK_AVAILABLE, 0, 0, 0);
        assert_eq!(names(&run(f, false)), ["group2", "group3"]);
        let f = volumn_filter(VOLUMN_FILTER_IS_SPACE_AVAILABLE, 0, 0, 1);
        assert_eq!(names(&run(f, false)), ["group1"]);
        let f = volumn_filter(VOLUMN_FILTER_IS_SPACE_AVAILABLE, 0, 0, 0);
        assert_eq!(names(&run(f, false)), ["group2", "group3"]);
        // The trunk bit counts only with trunk files; with them the trunk (no free trunk
        // space here) is available exactly when the disk is.
        let f = volumn_filter(VOLUMN_FILTER_IS_TRUNK_AVAILABLE, 0, 1, 0);
        assert_eq!(run(f, false).len(), 3);
        let v = run(f, true);
        assert_eq!(names(&v), ["group1"]);
        assert!(v[0].is_trunk_available);
        assert_eq!(v[0].trunk_free_mb, 0);
    }
}
