//! The cluster-stat commands new in FastDFS 6.16 (PROTOCOL.md §4.7): requests and replies of
//! SERVER_TRACKER_CLUSTER_STAT (96), SERVER_STORAGE_CLUSTER_STAT (97) and
//! SERVER_STORAGE_VOLUMN_STAT (98), as sent by upstream's `fdfs_tracker_stat`,
//! `fdfs_storage_stat` and `fdfs_volumn_stat`. Only std.
//!
//! Each request is a fixed filter of 3 or 4 single-byte fields, and each reply a small header
//! followed by fixed-size records (tracker/tracker_proto.h). Which records a filter keeps is the
//! tracker's business; this module only names the bits.
//!
//! The "host" fields are `ip:port` text (IPv6 in brackets, as libfastcommon's
//! `format_ip_port`) in a NUL-padded field of [`MAX_IP_PORT_SIZE`] bytes. That is 46 + 6, sized
//! for an IP without brackets: the rare IPv6 text longer than 43 bytes (an IPv4 tail) with a
//! 5-digit port does not fit and is cut at 52 bytes (upstream writes past the field instead).

use super::{
    DecodeError, GROUP17_LEN, MAX_IP_PORT_SIZE, PKG_LEN_SIZE, Reader, STORAGE_ID_LEN, VERSION_SIZE,
    put_fixed, put_u32, put_u64,
};

/// 96 filter bit: compare `is_active` (FDFS_TRACKER_STAT_FILTER_BY_IS_ACTIVE).
pub const TRACKER_FILTER_IS_ACTIVE: u8 = 1;
/// 96 filter bit: compare `is_leader` (FDFS_TRACKER_STAT_FILTER_BY_IS_LEADER).
pub const TRACKER_FILTER_IS_LEADER: u8 = 2;
/// 97 filter bit: compare `is_trunk_server` (FDFS_STORAGE_STAT_FILTER_BY_IS_TRUNK_SERVER).
pub const STORAGE_FILTER_IS_TRUNK_SERVER: u8 = 1;
/// 97 filter bit: compare the status with `op_type` (FDFS_STORAGE_STAT_FILTER_BY_STATUS).
pub const STORAGE_FILTER_STATUS: u8 = 2;
/// 98 filter bit: compare `is_disk_available` (FDFS_VOLUMN_STAT_FILTER_BY_IS_DISK_AVAILABLE).
pub const VOLUMN_FILTER_IS_DISK_AVAILABLE: u8 = 1;
/// 98 filter bit: compare `is_trunk_available` (FDFS_VOLUMN_STAT_FILTER_BY_IS_TRUNK_AVAILABLE).
pub const VOLUMN_FILTER_IS_TRUNK_AVAILABLE: u8 = 2;
/// 98 filter bit: compare "disk or trunk available" (FDFS_VOLUMN_STAT_FILTER_BY_IS_SPACE_AVAILABLE).
pub const VOLUMN_FILTER_IS_SPACE_AVAILABLE: u8 = 4;

/// 97 `op_type`: keep storages whose status equals the filter's.
pub const OP_EQUAL: u8 = b'=';
/// 97 `op_type`: keep storages whose status differs from the filter's.
pub const OP_NOT_EQUAL: u8 = b'!';

/// Request body of 96 (TrackerStatFilter).
pub const TRACKER_FILTER_LEN: usize = 3;
/// Request body of 97 (StorageStatFilter).
pub const STORAGE_FILTER_LEN: usize = 4;
/// Request body of 98 (VolumnStatFilter).
pub const VOLUMN_FILTER_LEN: usize = 4;
/// Reply header of 96: `count u8` (TrackerClusterStatRespHeader).
pub const TRACKER_STAT_HEAD_LEN: usize = 1;
/// One tracker record of 96 (TrackerClusterStatRespBodyPart): 52 + 1 + 1 + 12 + 8 + 8 + 8.
pub const TRACKER_ENTRY_LEN: usize = 90;
/// Reply header of 97: `use_storage_id u8`, `use_trunk_file u8`, `count u32`.
pub const STORAGE_STAT_HEAD_LEN: usize = 6;
/// One storage record of 97 (StorageClusterStatRespBodyPart): 16 + 52 + 1 + 1 + 12 + 8 + 8 + 8.
pub const STORAGE_ENTRY_LEN: usize = 106;
/// Reply header of 98: `use_trunk_file u8`, `count u32`.
pub const VOLUMN_STAT_HEAD_LEN: usize = 5;
/// One group record of 98 (StorageVolumnStatRespBodyPart): 17 + 5 x 8 + 1 + 1.
pub const VOLUMN_ENTRY_LEN: usize = 59;

/// `ip:port` as libfastcommon's `format_ip_port` writes it: an IPv6 address in brackets.
pub fn format_ip_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn exact(body: &[u8], len: usize, what: &'static str) -> Result<(), DecodeError> {
    if body.len() != len {
        return Err(DecodeError::BadLength {
            what,
            len: body.len() as u64,
        });
    }
    Ok(())
}

/// The records must fill the rest of the body exactly: `count` of `size` bytes each.
#[cfg(test)]
fn check_records(
    r: &Reader<'_>,
    count: usize,
    size: usize,
    what: &'static str,
) -> Result<(), DecodeError> {
    let got = r.remaining();
    if count.checked_mul(size) != Some(got) {
        return Err(DecodeError::BadLength {
            what,
            len: got as u64,
        });
    }
    Ok(())
}

/// Three u32 connection counts, as the C structs' `connection` member.
///
/// Upstream's `alloc` is the number of connection objects its pool has allocated; fdfs
/// servers report the connections accepted since start in that slot (see `net::ConnStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Connections {
    /// Connection objects allocated (fdfs: connections accepted since start).
    pub alloc: u32,
    /// Connections open now.
    pub current: u32,
    /// Most connections open at once.
    pub max: u32,
}

impl Connections {
    /// The three counts, 12 bytes (also the PING_LEADER body, see `peer`).
    pub(super) fn put(&self, out: &mut Vec<u8>) {
        put_u32(out, self.alloc);
        put_u32(out, self.current);
        put_u32(out, self.max);
    }

    /// The three counts (12 bytes).
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Connections {
            alloc: r.u32("connection alloc")?,
            current: r.u32("connection current")?,
            max: r.u32("connection max")?,
        })
    }
}

/// Request of SERVER_TRACKER_CLUSTER_STAT (96), exactly 3 bytes:
/// `filter_by u8`, `is_active u8`, `is_leader u8`.
///
/// The values are kept as sent: upstream compares them byte for byte with 0 or 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerStatFilter {
    /// [`TRACKER_FILTER_IS_ACTIVE`] | [`TRACKER_FILTER_IS_LEADER`].
    pub filter_by: u8,
    /// Wanted `is_active` when its bit is set.
    pub is_active: u8,
    /// Wanted `is_leader` when its bit is set.
    pub is_leader: u8,
}

impl TrackerStatFilter {
    /// The 3-byte body.
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        vec![self.filter_by, self.is_active, self.is_leader]
    }

    /// Decode exactly 3 bytes.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        exact(body, TRACKER_FILTER_LEN, "tracker stat filter")?;
        Ok(TrackerStatFilter {
            filter_by: body[0],
            is_active: body[1],
            is_leader: body[2],
        })
    }
}

/// One tracker in a 96 reply, 90 bytes: `host str[52]`, `is_leader u8`, `is_active u8`,
/// connections 3 x u32, `version str[8]`, `up_time u64`, `last_heartbeat_time u64`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerEntry {
    /// `ip:port`, see [`format_ip_port`].
    pub host: String,
    /// It is the leader.
    pub is_leader: bool,
    /// The leader, or a follower that pinged the leader within the last 3 seconds.
    pub is_active: bool,
    /// Its connection counts.
    pub connections: Connections,
    /// e.g. "6.16.1"; empty when unknown.
    pub version: String,
    /// When the tracker started (Unix seconds), 0 if unknown.
    pub up_time: u64,
    /// When the leader last heard from it (Unix seconds), 0 if never.
    pub last_heartbeat_time: u64,
}

impl TrackerEntry {
    fn put(&self, out: &mut Vec<u8>) {
        put_fixed(out, &self.host, MAX_IP_PORT_SIZE);
        out.push(self.is_leader as u8);
        out.push(self.is_active as u8);
        self.connections.put(out);
        put_fixed(out, &self.version, VERSION_SIZE);
        put_u64(out, self.up_time);
        put_u64(out, self.last_heartbeat_time);
    }

    #[cfg(test)]
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(TrackerEntry {
            host: r.fixed(MAX_IP_PORT_SIZE, "tracker host")?,
            is_leader: r.u8("is_leader")? != 0,
            is_active: r.u8("is_active")? != 0,
            connections: Connections::read(r)?,
            version: r.fixed(VERSION_SIZE, "tracker version")?,
            up_time: r.u64("tracker up_time")?,
            last_heartbeat_time: r.u64("tracker last_heartbeat_time")?,
        })
    }
}

/// Reply of 96: `count u8`, then `count` [`TrackerEntry`] records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerClusterStat {
    /// At most 255: the count is one byte, and [`encode`](Self::encode) leaves out the rest.
    pub trackers: Vec<TrackerEntry>,
}

impl TrackerClusterStat {
    /// The reply body; only the first 255 trackers fit the one-byte count.
    pub fn encode(&self) -> Vec<u8> {
        let n = self.trackers.len().min(u8::MAX as usize);
        let mut out = Vec::with_capacity(TRACKER_STAT_HEAD_LEN + n * TRACKER_ENTRY_LEN);
        out.push(n as u8);
        for t in &self.trackers[..n] {
            t.put(&mut out);
        }
        out
    }

    /// Decode a reply; its length must be exactly 1 + count x 90, as the C client checks.
    #[cfg(test)]
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let count = r.u8("tracker count")? as usize;
        check_records(&r, count, TRACKER_ENTRY_LEN, "tracker cluster stat")?;
        let trackers = (0..count)
            .map(|_| TrackerEntry::read(&mut r))
            .collect::<Result<_, _>>()?;
        Ok(TrackerClusterStat { trackers })
    }
}

/// Request of SERVER_STORAGE_CLUSTER_STAT (97), exactly 4 bytes:
/// `filter_by u8`, `op_type u8` ([`OP_EQUAL`] or [`OP_NOT_EQUAL`]), `status u8`,
/// `is_trunk_server u8`. Values are kept as sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStatFilter {
    /// [`STORAGE_FILTER_IS_TRUNK_SERVER`] | [`STORAGE_FILTER_STATUS`].
    pub filter_by: u8,
    /// How the status is compared when its bit is set.
    pub op_type: u8,
    /// Status to compare with (see `storage_status`).
    pub status: u8,
    /// Wanted `is_trunk_server` when its bit is set.
    pub is_trunk_server: u8,
}

impl StorageStatFilter {
    /// The 4-byte body.
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        vec![
            self.filter_by,
            self.op_type,
            self.status,
            self.is_trunk_server,
        ]
    }

    /// Decode exactly 4 bytes.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        exact(body, STORAGE_FILTER_LEN, "storage stat filter")?;
        Ok(StorageStatFilter {
            filter_by: body[0],
            op_type: body[1],
            status: body[2],
            is_trunk_server: body[3],
        })
    }
}

/// One storage in a 97 reply, 106 bytes: `id str[16]`, `host str[52]`,
/// `is_trunk_server u8`, `status u8`, connections 3 x u32, `version str[8]`, `up_time u64`,
/// `last_heartbeat_time u64`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageEntry {
    /// Storage id (its IP when storage ids are off).
    pub id: String,
    /// `ip:port`, see [`format_ip_port`].
    pub host: String,
    /// It is its group's trunk server.
    pub is_trunk_server: bool,
    /// Its status (see `storage_status`).
    pub status: u8,
    /// Its connection counts, from its heartbeats.
    pub connections: Connections,
    /// Its version, from its JOIN.
    pub version: String,
    /// When the storage started (Unix seconds), as its JOIN said.
    pub up_time: u64,
    /// Its last heartbeat to this tracker (Unix seconds).
    pub last_heartbeat_time: u64,
}

impl StorageEntry {
    fn put(&self, out: &mut Vec<u8>) {
        put_fixed(out, &self.id, STORAGE_ID_LEN);
        put_fixed(out, &self.host, MAX_IP_PORT_SIZE);
        out.push(self.is_trunk_server as u8);
        out.push(self.status);
        self.connections.put(out);
        put_fixed(out, &self.version, VERSION_SIZE);
        put_u64(out, self.up_time);
        put_u64(out, self.last_heartbeat_time);
    }

    #[cfg(test)]
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(StorageEntry {
            id: r.fixed(STORAGE_ID_LEN, "storage id")?,
            host: r.fixed(MAX_IP_PORT_SIZE, "storage host")?,
            is_trunk_server: r.u8("is_trunk_server")? != 0,
            status: r.u8("storage status")?,
            connections: Connections::read(r)?,
            version: r.fixed(VERSION_SIZE, "storage version")?,
            up_time: r.u64("storage up_time")?,
            last_heartbeat_time: r.u64("storage last_heartbeat_time")?,
        })
    }
}

/// Reply of 97: `use_storage_id u8`, `use_trunk_file u8`, `count u32`, then `count`
/// [`StorageEntry`] records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageClusterStat {
    /// The tracker names storages by id (tracker.conf `use_storage_id`).
    pub use_storage_id: bool,
    /// Trunk files are on (tracker.conf `use_trunk_file`).
    pub use_trunk_file: bool,
    /// The storages of every group, group by group.
    pub storages: Vec<StorageEntry>,
}

impl StorageClusterStat {
    /// Length of the reply body for `count` storages.
    pub fn encoded_len(count: usize) -> usize {
        STORAGE_STAT_HEAD_LEN + count * STORAGE_ENTRY_LEN
    }

    /// The reply body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len(self.storages.len()));
        out.push(self.use_storage_id as u8);
        out.push(self.use_trunk_file as u8);
        put_u32(&mut out, self.storages.len() as u32);
        for s in &self.storages {
            s.put(&mut out);
        }
        out
    }

    /// Decode a reply; its length must be exactly 6 + count x 106.
    #[cfg(test)]
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let use_storage_id = r.u8("use_storage_id")? != 0;
        let use_trunk_file = r.u8("use_trunk_file")? != 0;
        let count = r.u32("storage count")? as usize;
        check_records(&r, count, STORAGE_ENTRY_LEN, "storage cluster stat")?;
        let storages = (0..count)
            .map(|_| StorageEntry::read(&mut r))
            .collect::<Result<_, _>>()?;
        Ok(StorageClusterStat {
            use_storage_id,
            use_trunk_file,
            storages,
        })
    }
}

/// Request of SERVER_STORAGE_VOLUMN_STAT (98), exactly 4 bytes: `filter_by u8`,
/// `is_disk_available u8`, `is_trunk_available u8`, `is_space_available u8`. Values are kept
/// as sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolumnStatFilter {
    /// `VOLUMN_FILTER_*` bits.
    pub filter_by: u8,
    /// Wanted `is_disk_available` when its bit is set.
    pub is_disk_available: u8,
    /// Wanted `is_trunk_available` when its bit is set.
    pub is_trunk_available: u8,
    /// Wanted "disk or trunk available" when its bit is set.
    pub is_space_available: u8,
}

impl VolumnStatFilter {
    /// The 4-byte body.
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        vec![
            self.filter_by,
            self.is_disk_available,
            self.is_trunk_available,
            self.is_space_available,
        ]
    }

    /// Decode exactly 4 bytes.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        exact(body, VOLUMN_FILTER_LEN, "volumn stat filter")?;
        Ok(VolumnStatFilter {
            filter_by: body[0],
            is_disk_available: body[1],
            is_trunk_available: body[2],
            is_space_available: body[3],
        })
    }
}

/// One group in a 98 reply, 59 bytes: `group_name str[17]`, `total_mb`, `free_mb`,
/// `reserved_mb`, `avail_mb`, `trunk_free_mb` (5 x u64), `is_disk_available u8`,
/// `is_trunk_available u8`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumnEntry {
    /// Group name.
    pub group: String,
    /// The group's disk space in MB.
    pub total_mb: u64,
    /// The group's free disk space in MB.
    pub free_mb: u64,
    /// Space kept free by `reserved_storage_space`, in MB.
    pub reserved_mb: u64,
    /// Free space above the reserve; 0 when the disk is not available.
    pub avail_mb: u64,
    /// Free trunk space; 0 when the trunk is not available.
    pub trunk_free_mb: u64,
    /// Free disk space is above the reserve.
    pub is_disk_available: bool,
    /// Free disk plus trunk space is above the reserve (always false without trunk files).
    pub is_trunk_available: bool,
}

impl VolumnEntry {
    fn put(&self, out: &mut Vec<u8>) {
        put_fixed(out, &self.group, GROUP17_LEN);
        put_u64(out, self.total_mb);
        put_u64(out, self.free_mb);
        put_u64(out, self.reserved_mb);
        put_u64(out, self.avail_mb);
        put_u64(out, self.trunk_free_mb);
        out.push(self.is_disk_available as u8);
        out.push(self.is_trunk_available as u8);
    }

    #[cfg(test)]
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(VolumnEntry {
            group: r.fixed(GROUP17_LEN, "volumn group")?,
            total_mb: r.u64("volumn total_mb")?,
            free_mb: r.u64("volumn free_mb")?,
            reserved_mb: r.u64("volumn reserved_mb")?,
            avail_mb: r.u64("volumn avail_mb")?,
            trunk_free_mb: r.u64("volumn trunk_free_mb")?,
            is_disk_available: r.u8("is_disk_available")? != 0,
            is_trunk_available: r.u8("is_trunk_available")? != 0,
        })
    }
}

/// Reply of 98: `use_trunk_file u8`, `count u32`, then `count` [`VolumnEntry`] records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumnStat {
    /// Trunk files are on (tracker.conf `use_trunk_file`).
    pub use_trunk_file: bool,
    /// One record per group, by name.
    pub groups: Vec<VolumnEntry>,
}

impl VolumnStat {
    /// Length of the reply body for `count` groups.
    pub fn encoded_len(count: usize) -> usize {
        VOLUMN_STAT_HEAD_LEN + count * VOLUMN_ENTRY_LEN
    }

    /// The reply body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len(self.groups.len()));
        out.push(self.use_trunk_file as u8);
        put_u32(&mut out, self.groups.len() as u32);
        for g in &self.groups {
            g.put(&mut out);
        }
        out
    }

    /// Decode a reply; its length must be exactly 5 + count x 59.
    #[cfg(test)]
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let use_trunk_file = r.u8("use_trunk_file")? != 0;
        let count = r.u32("group count")? as usize;
        check_records(&r, count, VOLUMN_ENTRY_LEN, "volumn stat")?;
        let groups = (0..count)
            .map(|_| VolumnEntry::read(&mut r))
            .collect::<Result<_, _>>()?;
        Ok(VolumnStat {
            use_trunk_file,
            groups,
        })
    }
}

// The record widths are sums of the shared field widths; keep them tied together.
const _: () = assert!(
    TRACKER_ENTRY_LEN == MAX_IP_PORT_SIZE + 2 + 12 + VERSION_SIZE + 2 * PKG_LEN_SIZE
        && STORAGE_ENTRY_LEN
            == STORAGE_ID_LEN + MAX_IP_PORT_SIZE + 2 + 12 + VERSION_SIZE + 2 * PKG_LEN_SIZE
        && VOLUMN_ENTRY_LEN == GROUP17_LEN + 5 * PKG_LEN_SIZE + 2
);

#[cfg(test)]
mod tests {
    use super::*;

    fn be64(b: &[u8], off: usize) -> u64 {
        u64::from_be_bytes(b[off..off + 8].try_into().unwrap())
    }

    fn be32(b: &[u8], off: usize) -> u32 {
        u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn tracker(host: &str, leader: bool) -> TrackerEntry {
        TrackerEntry {
            host: host.into(),
            is_leader: leader,
            is_active: true,
            connections: Connections {
                alloc: 7,
                current: 2,
                max: 3,
            },
            version: "6.16.1".into(),
            up_time: 1_700_000_000,
            last_heartbeat_time: 1_700_000_500,
        }
    }

    #[test]
    fn filters_round_trip_and_golden() {
        let t = TrackerStatFilter {
            filter_by: TRACKER_FILTER_IS_ACTIVE | TRACKER_FILTER_IS_LEADER,
            is_active: 1,
            is_leader: 0,
        };
        // Field order of TrackerStatFilter: filter_by, is_active, is_leader.
        assert_eq!(t.encode(), [3, 1, 0]);
        assert_eq!(TrackerStatFilter::decode(&t.encode()).unwrap(), t);
        let s = StorageStatFilter {
            filter_by: STORAGE_FILTER_STATUS,
            op_type: OP_NOT_EQUAL,
            status: 7,
            is_trunk_server: 0,
        };
        assert_eq!(s.encode(), [2, b'!', 7, 0]);
        assert_eq!(StorageStatFilter::decode(&s.encode()).unwrap(), s);
        let v = VolumnStatFilter {
            filter_by: VOLUMN_FILTER_IS_SPACE_AVAILABLE,
            is_disk_available: 0,
            is_trunk_available: 0,
            is_space_available: 1,
        };
        assert_eq!(v.encode(), [4, 0, 0, 1]);
        assert_eq!(VolumnStatFilter::decode(&v.encode()).unwrap(), v);
        // Values other than 0/1 are kept as sent.
        assert_eq!(TrackerStatFilter::decode(&[2, 9, 9]).unwrap().is_leader, 9);
    }

    #[test]
    fn filters_need_exact_length() {
        for n in [0, 2, 4] {
            assert!(matches!(
                TrackerStatFilter::decode(&vec![0; n]),
                Err(DecodeError::BadLength { .. })
            ));
        }
        for n in [0, 3, 5] {
            assert!(StorageStatFilter::decode(&vec![0; n]).is_err());
            assert!(VolumnStatFilter::decode(&vec![0; n]).is_err());
        }
    }

    #[test]
    fn tracker_reply_golden() {
        let r = TrackerClusterStat {
            trackers: vec![
                tracker("127.0.0.1:22122", true),
                tracker("[::1]:22123", false),
            ],
        };
        let b = r.encode();
        assert_eq!(b.len(), 1 + 2 * 90);
        assert_eq!(b[0], 2);
        let e = &b[1..91];
        assert_eq!(&e[..15], b"127.0.0.1:22122");
        assert!(e[15..52].iter().all(|&c| c == 0));
        assert_eq!((e[52], e[53]), (1, 1));
        assert_eq!((be32(e, 54), be32(e, 58), be32(e, 62)), (7, 2, 3));
        assert_eq!(&e[66..74], b"6.16.1\0\0");
        assert_eq!(be64(e, 74), 1_700_000_000);
        assert_eq!(be64(e, 82), 1_700_000_500);
        assert_eq!(b[91 + 52], 0, "second tracker is not the leader");
        assert_eq!(TrackerClusterStat::decode(&b).unwrap(), r);
        let empty = TrackerClusterStat::default().encode();
        assert_eq!(empty, [0]);
        assert_eq!(TrackerClusterStat::decode(&empty).unwrap().trackers, []);
    }

    #[test]
    fn tracker_reply_bad_lengths() {
        let b = TrackerClusterStat {
            trackers: vec![tracker("a:1", true)],
        }
        .encode();
        assert!(matches!(
            TrackerClusterStat::decode(&[]),
            Err(DecodeError::Short { .. })
        ));
        assert!(matches!(
            TrackerClusterStat::decode(&b[..b.len() - 1]),
            Err(DecodeError::BadLength { .. })
        ));
        let mut long = b.clone();
        long.push(0);
        assert!(TrackerClusterStat::decode(&long).is_err());
        // A count that promises more records than there are bytes.
        let mut lying = b;
        lying[0] = 200;
        assert!(TrackerClusterStat::decode(&lying).is_err());
    }

    #[test]
    fn tracker_reply_count_is_one_byte() {
        let r = TrackerClusterStat {
            trackers: vec![tracker("a:1", false); 300],
        };
        let b = r.encode();
        assert_eq!(b[0], 255);
        assert_eq!(b.len(), 1 + 255 * TRACKER_ENTRY_LEN);
        assert_eq!(TrackerClusterStat::decode(&b).unwrap().trackers.len(), 255);
    }

    fn storage(id: &str) -> StorageEntry {
        StorageEntry {
            id: id.into(),
            host: "192.168.1.10:23000".into(),
            is_trunk_server: false,
            status: 7,
            connections: Connections {
                alloc: 10,
                current: 1,
                max: 4,
            },
            version: "6.16.1".into(),
            up_time: 1_700_000_100,
            last_heartbeat_time: 1_700_000_200,
        }
    }

    #[test]
    fn storage_reply_golden() {
        let r = StorageClusterStat {
            use_storage_id: true,
            use_trunk_file: false,
            storages: vec![
                storage("100001"),
                StorageEntry {
                    is_trunk_server: true,
                    ..storage("100002")
                },
            ],
        };
        let b = r.encode();
        assert_eq!(b.len(), StorageClusterStat::encoded_len(2));
        assert_eq!(b.len(), 6 + 2 * 106);
        assert_eq!(&b[..6], &[1, 0, 0, 0, 0, 2]);
        let e = &b[6..112];
        assert_eq!(&e[..7], b"100001\0");
        assert_eq!(&e[16..34], b"192.168.1.10:23000");
        assert_eq!((e[68], e[69]), (0, 7));
        assert_eq!((be32(e, 70), be32(e, 74), be32(e, 78)), (10, 1, 4));
        assert_eq!(&e[82..90], b"6.16.1\0\0");
        assert_eq!(be64(e, 90), 1_700_000_100);
        assert_eq!(be64(e, 98), 1_700_000_200);
        assert_eq!(b[112 + 68], 1, "second storage is the trunk server");
        assert_eq!(StorageClusterStat::decode(&b).unwrap(), r);
    }

    #[test]
    fn storage_reply_bad_lengths() {
        let b = StorageClusterStat {
            storages: vec![storage("s1")],
            ..Default::default()
        }
        .encode();
        assert!(matches!(
            StorageClusterStat::decode(&b[..5]),
            Err(DecodeError::Short { .. })
        ));
        assert!(StorageClusterStat::decode(&b[..b.len() - 1]).is_err());
        let mut long = b.clone();
        long.push(0);
        assert!(StorageClusterStat::decode(&long).is_err());
        let mut huge = b;
        huge[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(StorageClusterStat::decode(&huge).is_err());
        assert_eq!(
            StorageClusterStat::decode(&[0, 1, 0, 0, 0, 0]).unwrap(),
            StorageClusterStat {
                use_trunk_file: true,
                ..Default::default()
            }
        );
    }

    fn volumn(name: &str) -> VolumnEntry {
        VolumnEntry {
            group: name.into(),
            total_mb: 1000,
            free_mb: 600,
            reserved_mb: 100,
            avail_mb: 500,
            trunk_free_mb: 0,
            is_disk_available: true,
            is_trunk_available: false,
        }
    }

    #[test]
    fn volumn_reply_golden() {
        let r = VolumnStat {
            use_trunk_file: true,
            groups: vec![volumn("group1"), volumn("G0123456789abcde")],
        };
        let b = r.encode();
        assert_eq!(b.len(), VolumnStat::encoded_len(2));
        assert_eq!(b.len(), 5 + 2 * 59);
        assert_eq!(&b[..5], &[1, 0, 0, 0, 2]);
        let e = &b[5..64];
        assert_eq!(&e[..7], b"group1\0");
        assert_eq!(
            (
                be64(e, 17),
                be64(e, 25),
                be64(e, 33),
                be64(e, 41),
                be64(e, 49)
            ),
            (1000, 600, 100, 500, 0)
        );
        assert_eq!((e[57], e[58]), (1, 0));
        // A 16-character group name still ends with the 17th byte's NUL.
        assert_eq!(&b[64..81], b"G0123456789abcde\0");
        assert_eq!(VolumnStat::decode(&b).unwrap(), r);
    }

    #[test]
    fn volumn_reply_bad_lengths() {
        let b = VolumnStat {
            use_trunk_file: false,
            groups: vec![volumn("g")],
        }
        .encode();
        assert!(matches!(
            VolumnStat::decode(&b[..4]),
            Err(DecodeError::Short { .. })
        ));
        assert!(VolumnStat::decode(&b[..b.len() - 1]).is_err());
        let mut long = b.clone();
        long.extend_from_slice(&[0; 59]);
        assert!(VolumnStat::decode(&long).is_err());
        assert_eq!(VolumnStat::decode(&[0, 0, 0, 0, 0]).unwrap().groups, []);
    }

    #[test]
    fn ip_port_text() {
        assert_eq!(format_ip_port("10.0.0.1", 22122), "10.0.0.1:22122");
        assert_eq!(format_ip_port("fe80::1", 23000), "[fe80::1]:23000");
        // Eight full hextets fit the 52-byte field with a NUL to spare.
        let v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        assert!(format_ip_port(v6, 65535).len() < MAX_IP_PORT_SIZE);
        // The longest IPv6 text (45 bytes, IPv4 tail) does not: 46 + 6 leaves no room for
        // the brackets. The field is cut at 52 bytes; the C client reads 51 of them.
        let mapped = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
        let e = TrackerEntry {
            host: format_ip_port(mapped, 65535),
            ..TrackerEntry::default()
        };
        let b = TrackerClusterStat { trackers: vec![e] }.encode();
        assert_eq!(b.len(), 1 + TRACKER_ENTRY_LEN);
        assert_eq!(&b[1..53], &format!("[{mapped}]:6553").as_bytes()[..52]);
    }
}
