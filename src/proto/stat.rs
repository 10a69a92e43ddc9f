//! Stat records of the monitor commands: group stat (90/91), storage stat (92) and the
//! 348-byte storage counters block also carried by BEAT (83) (PROTOCOL.md §4.3, §4.4, §9.3).
//!
//! Both record kinds exist in a HEAD and a legacy layout; which one a tracker sends is a
//! configuration choice of the caller (py3fdfsv2 needs legacy, Java 1.39 needs HEAD).
//! Only std; no I/O.

use super::{
    DOMAIN_NAME_MAX_SIZE, DecodeError, GROUP17_LEN, IPV4_ADDRESS_SIZE, LEGACY_VERSION_SIZE, Reader,
    STORAGE_ID_LEN, VERSION_SIZE, put_fixed, put_u32, put_u64,
};

/// Group-stat record of LIST_ONE_GROUP (90) / LIST_ALL_GROUPS (91).
///
/// HEAD layout, 113 bytes: group str[17], then 12 x u64: total_mb, free_mb, reserved_mb,
/// trunk_free_mb, storage_count, storage_port, readable, writable, current_write_server,
/// store_path_count, subdir_count_per_path, current_trunk_file_id.
/// Legacy (<= 6.12) layout, 105 bytes: group str[17], then 11 x u64: total_mb, free_mb,
/// trunk_free_mb, storage_count, storage_port, storage_http_port, active_count,
/// current_write_server, store_path_count, subdir_count_per_path, current_trunk_file_id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupStat {
    /// Group name.
    pub name: String,
    /// Total MB of the writable server with the least free space.
    pub total_mb: u64,
    /// Free MB of that server.
    pub free_mb: u64,
    /// Reserved MB (HEAD only; 0 when decoded from legacy).
    pub reserved_mb: u64,
    /// Free MB inside trunk files.
    pub trunk_free_mb: u64,
    /// Servers in the group.
    pub storage_count: u64,
    /// Group port; -1 if servers use different ports (HEAD).
    pub storage_port: i64,
    /// ACTIVE readable servers (HEAD only).
    pub readable_count: u64,
    /// ACTIVE writable servers (HEAD only).
    pub writable_count: u64,
    /// ACTIVE servers (legacy only).
    pub active_count: u64,
    /// Round-robin index into the writable servers.
    pub current_write_server: u64,
    /// Store paths per server.
    pub store_path_count: u64,
    /// Subdirectories per level.
    pub subdir_count_per_path: u64,
    /// Current trunk file id, -1 without trunk files.
    pub current_trunk_file_id: i64,
}

/// Size of a HEAD (6.13.1+) group-stat record.
pub const GROUP_STAT_LEN: usize = 113;
/// Size of a legacy (<= 6.12) group-stat record.
pub const LEGACY_GROUP_STAT_LEN: usize = 105;

impl GroupStat {
    /// Append one record: 113 bytes, or 105 when `legacy` (http port written as 0).
    pub fn encode(&self, legacy: bool, out: &mut Vec<u8>) {
        put_fixed(out, &self.name, GROUP17_LEN);
        put_u64(out, self.total_mb);
        put_u64(out, self.free_mb);
        if legacy {
            put_u64(out, self.trunk_free_mb);
            put_u64(out, self.storage_count);
            put_u64(out, self.storage_port as u64);
            put_u64(out, 0); // storage_http_port: the built-in HTTP server is gone
            put_u64(out, self.active_count);
        } else {
            put_u64(out, self.reserved_mb);
            put_u64(out, self.trunk_free_mb);
            put_u64(out, self.storage_count);
            put_u64(out, self.storage_port as u64);
            put_u64(out, self.readable_count);
            put_u64(out, self.writable_count);
        }
        put_u64(out, self.current_write_server);
        put_u64(out, self.store_path_count);
        put_u64(out, self.subdir_count_per_path);
        put_u64(out, self.current_trunk_file_id as u64);
    }

    /// Decode a concatenation of records; the body must be a whole number of them.
    pub fn decode_list(b: &[u8], legacy: bool) -> Result<Vec<Self>, DecodeError> {
        let size = if legacy {
            LEGACY_GROUP_STAT_LEN
        } else {
            GROUP_STAT_LEN
        };
        if !b.len().is_multiple_of(size) {
            return Err(DecodeError::BadLength {
                what: "group stat list",
                len: b.len() as u64,
            });
        }
        b.chunks_exact(size)
            .map(|c| Self::decode_one(c, legacy))
            .collect()
    }

    fn decode_one(b: &[u8], legacy: bool) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let mut g = GroupStat {
            name: r.fixed(GROUP17_LEN, "group stat name")?,
            total_mb: r.u64("group total_mb")?,
            free_mb: r.u64("group free_mb")?,
            ..Default::default()
        };
        if legacy {
            g.trunk_free_mb = r.u64("group trunk_free_mb")?;
            g.storage_count = r.u64("group storage_count")?;
            g.storage_port = r.i64("group storage_port")?;
            r.u64("group http port")?;
            g.active_count = r.u64("group active_count")?;
        } else {
            g.reserved_mb = r.u64("group reserved_mb")?;
            g.trunk_free_mb = r.u64("group trunk_free_mb")?;
            g.storage_count = r.u64("group storage_count")?;
            g.storage_port = r.i64("group storage_port")?;
            g.readable_count = r.u64("group readable")?;
            g.writable_count = r.u64("group writable")?;
        }
        g.current_write_server = r.u64("group current_write_server")?;
        g.store_path_count = r.u64("group store_path_count")?;
        g.subdir_count_per_path = r.u64("group subdir_count")?;
        g.current_trunk_file_id = r.i64("group trunk file id")?;
        Ok(g)
    }
}

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// The 348-byte storage counters block (tracker_types.h: FDFSStorageStatBuff), sent
        /// in storage-stat records and as the BEAT body: 3 x u32 connection counts, then
        /// 42 x u64 in the order of the fields below.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct StatCounters {
            /// Connections allocated.
            pub connection_alloc: u32,
            /// Connections currently open.
            pub connection_current: u32,
            /// Highest number of connections open at once.
            pub connection_max: u32,
            $(
                #[doc = concat!("Counter `", stringify!($name), "`.")]
                pub $name: u64,
            )*
        }

        impl StatCounters {
            /// Every u64 field in block order, named as in storage_stat.dat
            /// (last_synced_timestamp and last_heart_beat_time are tracker-side only).
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }

            /// Set a u64 field by its storage_stat.dat name; false if the name is unknown.
            pub fn set_field(&mut self, name: &str, v: u64) -> bool {
                match name {
                    $(stringify!($name) => self.$name = v,)*
                    _ => return false,
                }
                true
            }

            fn put_u64s(&self, out: &mut Vec<u8>) {
                $(put_u64(out, self.$name);)*
            }

            fn read_u64s(&mut self, r: &mut Reader<'_>) -> Result<(), DecodeError> {
                $(self.$name = r.u64(stringify!($name))?;)*
                Ok(())
            }
        }
    };
}

counters!(
    total_upload_count,
    success_upload_count,
    total_append_count,
    success_append_count,
    total_modify_count,
    success_modify_count,
    total_truncate_count,
    success_truncate_count,
    total_set_meta_count,
    success_set_meta_count,
    total_delete_count,
    success_delete_count,
    total_download_count,
    success_download_count,
    total_get_meta_count,
    success_get_meta_count,
    total_create_link_count,
    success_create_link_count,
    total_delete_link_count,
    success_delete_link_count,
    total_upload_bytes,
    success_upload_bytes,
    total_append_bytes,
    success_append_bytes,
    total_modify_bytes,
    success_modify_bytes,
    total_download_bytes,
    success_download_bytes,
    total_sync_in_bytes,
    success_sync_in_bytes,
    total_sync_out_bytes,
    success_sync_out_bytes,
    total_file_open_count,
    success_file_open_count,
    total_file_read_count,
    success_file_read_count,
    total_file_write_count,
    success_file_write_count,
    last_source_update,
    last_sync_update,
    last_synced_timestamp,
    last_heart_beat_time,
);

/// Size of the counters block.
pub const STAT_COUNTERS_LEN: usize = 348;

impl StatCounters {
    /// Append the 348-byte block.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.connection_alloc);
        put_u32(out, self.connection_current);
        put_u32(out, self.connection_max);
        self.put_u64s(out);
    }

    /// Decode exactly 348 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != STAT_COUNTERS_LEN {
            return Err(DecodeError::BadLength {
                what: "stat counters",
                len: b.len() as u64,
            });
        }
        Self::read(&mut Reader::new(b))
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut s = StatCounters {
            connection_alloc: r.u32("connection alloc")?,
            connection_current: r.u32("connection current")?,
            connection_max: r.u32("connection max")?,
            ..Default::default()
        };
        s.read_u64s(r)?;
        Ok(s)
    }
}

/// Which storage-stat record layout to write or expect (§4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatLayout {
    /// HEAD (6.15+): 471 + ip_size bytes, i.e. 487 (ip 16) or 517 (ip 46).
    V616 {
        /// `response_ip_addr_size` (16 or 46).
        ip_size: usize,
    },
    /// <= 6.10, 612 bytes (ip 16, domain 128, version 6, http port): what py3fdfsv2 parses.
    Legacy612,
}

impl StatLayout {
    /// Record size in bytes.
    pub fn record_len(self) -> usize {
        match self {
            StatLayout::V616 { ip_size } => {
                2 + STORAGE_ID_LEN * 2 + ip_size + VERSION_SIZE + 80 + STAT_COUNTERS_LEN + 1
            }
            StatLayout::Legacy612 => 612,
        }
    }
}

/// Storage-stat record of LIST_STORAGE (92).
///
/// HEAD: status 1, rw_mode 1, id str[16], ip str[R], src_id str[16], version str[8], then
/// 10 x u64 (join_time, up_time, total_mb, free_mb, reserved_mb, upload_priority,
/// store_path_count, subdir_count_per_path, current_write_path, storage_port), counters 348,
/// if_trunk_server 1.
/// Legacy612: status 1, id str[16], ip str[16], domain str[128], src_id str[16],
/// version str[6], then 10 x u64 (join_time, up_time, total_mb, free_mb, upload_priority,
/// store_path_count, subdir_count_per_path, current_write_path, storage_port,
/// storage_http_port), counters 348, if_trunk_server 1.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorageStat {
    /// Status (§8).
    pub status: u8,
    /// 0 none, 4 read-only, 2 write-only, 6 both (HEAD only; legacy decodes as 0).
    pub rw_mode: u8,
    /// Storage id (the IP without storage ids).
    pub id: String,
    /// IP address.
    pub ip: String,
    /// Sync source id, empty if none.
    pub src_id: String,
    /// Version string, e.g. "6.16.1" (6 bytes in legacy).
    pub version: String,
    /// First join time.
    pub join_time: u64,
    /// Process start time.
    pub up_time: u64,
    /// Sum of store path totals.
    pub total_mb: u64,
    /// Sum of store path free space.
    pub free_mb: u64,
    /// Reserved MB (HEAD only).
    pub reserved_mb: u64,
    /// Upload priority.
    pub upload_priority: u64,
    /// Store path count.
    pub store_path_count: u64,
    /// Subdirectories per level.
    pub subdir_count_per_path: u64,
    /// Current write path.
    pub current_write_path: u64,
    /// Storage port.
    pub storage_port: u64,
    /// Counters block.
    pub stat: StatCounters,
    /// This server is the group's trunk server.
    pub if_trunk_server: bool,
}

impl StorageStat {
    /// Append one record in `layout`.
    pub fn encode(&self, layout: StatLayout, out: &mut Vec<u8>) {
        out.push(self.status);
        match layout {
            StatLayout::V616 { ip_size } => {
                out.push(self.rw_mode);
                put_fixed(out, &self.id, STORAGE_ID_LEN);
                put_fixed(out, &self.ip, ip_size);
                put_fixed(out, &self.src_id, STORAGE_ID_LEN);
                put_fixed(out, &self.version, VERSION_SIZE);
                for v in [self.join_time, self.up_time, self.total_mb, self.free_mb] {
                    put_u64(out, v);
                }
                put_u64(out, self.reserved_mb);
            }
            StatLayout::Legacy612 => {
                put_fixed(out, &self.id, STORAGE_ID_LEN);
                put_fixed(out, &self.ip, IPV4_ADDRESS_SIZE);
                put_fixed(out, "", DOMAIN_NAME_MAX_SIZE);
                put_fixed(out, &self.src_id, STORAGE_ID_LEN);
                put_fixed(out, &self.version, LEGACY_VERSION_SIZE);
                for v in [self.join_time, self.up_time, self.total_mb, self.free_mb] {
                    put_u64(out, v);
                }
            }
        }
        put_u64(out, self.upload_priority);
        put_u64(out, self.store_path_count);
        put_u64(out, self.subdir_count_per_path);
        put_u64(out, self.current_write_path);
        put_u64(out, self.storage_port);
        if layout == StatLayout::Legacy612 {
            put_u64(out, 0); // storage_http_port
        }
        self.stat.encode(out);
        out.push(u8::from(self.if_trunk_server));
    }

    /// Decode a concatenation of records; the body must be a whole number of them.
    pub fn decode_list(b: &[u8], layout: StatLayout) -> Result<Vec<Self>, DecodeError> {
        let size = layout.record_len();
        if !b.len().is_multiple_of(size) {
            return Err(DecodeError::BadLength {
                what: "storage stat list",
                len: b.len() as u64,
            });
        }
        b.chunks_exact(size)
            .map(|c| Self::decode_one(c, layout))
            .collect()
    }

    fn decode_one(b: &[u8], layout: StatLayout) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let mut s = StorageStat {
            status: r.u8("storage status")?,
            ..Default::default()
        };
        match layout {
            StatLayout::V616 { ip_size } => {
                s.rw_mode = r.u8("rw_mode")?;
                s.id = r.fixed(STORAGE_ID_LEN, "storage id")?;
                s.ip = r.fixed(ip_size, "storage ip")?;
                s.src_id = r.fixed(STORAGE_ID_LEN, "src id")?;
                s.version = r.fixed(VERSION_SIZE, "version")?;
            }
            StatLayout::Legacy612 => {
                s.id = r.fixed(STORAGE_ID_LEN, "storage id")?;
                s.ip = r.fixed(IPV4_ADDRESS_SIZE, "storage ip")?;
                r.bytes(DOMAIN_NAME_MAX_SIZE, "domain name")?;
                s.src_id = r.fixed(STORAGE_ID_LEN, "src id")?;
                s.version = r.fixed(LEGACY_VERSION_SIZE, "version")?;
            }
        }
        s.join_time = r.u64("join_time")?;
        s.up_time = r.u64("up_time")?;
        s.total_mb = r.u64("total_mb")?;
        s.free_mb = r.u64("free_mb")?;
        if layout != StatLayout::Legacy612 {
            s.reserved_mb = r.u64("reserved_mb")?;
        }
        s.upload_priority = r.u64("upload_priority")?;
        s.store_path_count = r.u64("store_path_count")?;
        s.subdir_count_per_path = r.u64("subdir_count_per_path")?;
        s.current_write_path = r.u64("current_write_path")?;
        s.storage_port = r.u64("storage_port")?;
        if layout == StatLayout::Legacy612 {
            r.u64("storage_http_port")?;
        }
        s.stat = StatCounters::read(&mut r)?;
        s.if_trunk_server = r.u8("if_trunk_server")? != 0;
        r.finish("storage stat")?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> GroupStat {
        GroupStat {
            name: "group1".into(),
            total_mb: 1000,
            free_mb: 500,
            reserved_mb: 10,
            trunk_free_mb: 3,
            storage_count: 2,
            storage_port: 23000,
            readable_count: 2,
            writable_count: 1,
            active_count: 2,
            current_write_server: 1,
            store_path_count: 1,
            subdir_count_per_path: 256,
            current_trunk_file_id: -1,
        }
    }

    #[test]
    fn group_stat_head() {
        let g = group();
        let mut b = Vec::new();
        g.encode(false, &mut b);
        g.encode(false, &mut b);
        assert_eq!(b.len(), 2 * GROUP_STAT_LEN);
        assert_eq!(&b[17..25], &1000u64.to_be_bytes());
        assert_eq!(&b[105..113], &[0xff; 8]);
        let mut want = g.clone();
        want.active_count = 0;
        assert_eq!(
            GroupStat::decode_list(&b, false).unwrap(),
            vec![want.clone(), want]
        );
        assert!(GroupStat::decode_list(&[], false).unwrap().is_empty());
        assert!(GroupStat::decode_list(&b[..112], false).is_err());
        assert!(GroupStat::decode_list(&b, true).is_err()); // 226 is not a multiple of 105
    }

    #[test]
    fn group_stat_legacy() {
        let g = group();
        let mut b = Vec::new();
        g.encode(true, &mut b);
        assert_eq!(b.len(), LEGACY_GROUP_STAT_LEN);
        // field 7 (offset 17 + 5*8) is the http port, written 0; field 8 is active_count.
        assert_eq!(&b[57..65], &[0; 8]);
        assert_eq!(&b[65..73], &2u64.to_be_bytes());
        let d = GroupStat::decode_list(&b, true).unwrap();
        let want = GroupStat {
            reserved_mb: 0,
            readable_count: 0,
            writable_count: 0,
            ..g
        };
        assert_eq!(d, vec![want]);
    }

    fn counters() -> StatCounters {
        let mut c = StatCounters {
            connection_alloc: 1,
            connection_current: 2,
            connection_max: 3,
            ..Default::default()
        };
        let names: Vec<&str> = c.fields().iter().map(|f| f.0).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(c.set_field(n, 100 + i as u64));
        }
        c
    }

    #[test]
    fn counters_block() {
        let c = counters();
        assert_eq!(c.fields().len(), 42);
        let mut b = Vec::new();
        c.encode(&mut b);
        assert_eq!(b.len(), STAT_COUNTERS_LEN);
        assert_eq!(&b[..12], &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        // Offsets from the §4.4 table.
        let at = |off: usize| u64::from_be_bytes(b[off..off + 8].try_into().unwrap());
        assert_eq!(at(12), c.total_upload_count);
        assert_eq!(at(108), c.total_download_count);
        assert_eq!(at(300), c.total_file_write_count);
        assert_eq!(at(316), c.last_source_update);
        assert_eq!(at(340), c.last_heart_beat_time);
        assert_eq!(StatCounters::decode(&b).unwrap(), c);
        assert!(StatCounters::decode(&b[..347]).is_err());
        assert!(!c.clone().set_field("nope", 1));
        assert_eq!(c.fields()[0], ("total_upload_count", 100));
    }

    fn storage() -> StorageStat {
        StorageStat {
            status: 7,
            rw_mode: 6,
            id: "100001".into(),
            ip: "192.168.1.10".into(),
            src_id: "100002".into(),
            version: "6.16.1".into(),
            join_time: 1_700_000_000,
            up_time: 1_700_000_100,
            total_mb: 2000,
            free_mb: 1000,
            reserved_mb: 100,
            upload_priority: 10,
            store_path_count: 1,
            subdir_count_per_path: 256,
            current_write_path: 0,
            storage_port: 23000,
            stat: counters(),
            if_trunk_server: true,
        }
    }

    #[test]
    fn storage_stat_head() {
        for (ip_size, len) in [(16, 487), (46, 517)] {
            let layout = StatLayout::V616 { ip_size };
            assert_eq!(layout.record_len(), len);
            let s = storage();
            let mut b = Vec::new();
            s.encode(layout, &mut b);
            assert_eq!(b.len(), len);
            assert_eq!(b[len - 1], 1);
            assert_eq!(StorageStat::decode_list(&b, layout).unwrap(), vec![s]);
            assert!(StorageStat::decode_list(&b[1..], layout).is_err());
        }
    }

    #[test]
    fn storage_stat_legacy() {
        let s = storage();
        let mut b = Vec::new();
        s.encode(StatLayout::Legacy612, &mut b);
        s.encode(StatLayout::Legacy612, &mut b);
        assert_eq!(b.len(), 2 * 612);
        assert_eq!(&b[1..7], b"100001");
        assert_eq!(&b[161..167], b"100002"); // src_id after status, id, ip, domain
        let want = StorageStat {
            rw_mode: 0,
            reserved_mb: 0,
            ..s
        };
        let d = StorageStat::decode_list(&b, StatLayout::Legacy612).unwrap();
        assert_eq!(d, vec![want.clone(), want]);
        assert!(StorageStat::decode_list(&b[..611], StatLayout::Legacy612).is_err());
    }
}
