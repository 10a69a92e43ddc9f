//! STORAGE_JOIN (81): the request in its five layouts (6.15+, 6.13-6.14, 6.12, 6.11,
//! <= 6.10) and the 17-byte reply (PROTOCOL.md §9.2). Re-exported by `tracker`. Only std.
//!
//! The tracker list after the fixed part changed twice: up to 6.10 it was 40-byte
//! NUL-padded "host:port" slots, from 6.11 to 6.14 100-byte slots, and since 6.15 it
//! is one '\n'-terminated "host:port" line per tracker. A 6.15+ tracker (checked
//! against the 6.16.1 binaries) refuses slots with EINVAL ("expect new line char"),
//! and a 6.11-6.14 tracker refuses lines (its length check wants whole slots).

use super::{
    DecodeError, GROUP17_LEN, IP_ADDRESS_SIZE, IPV4_ADDRESS_SIZE, LEGACY_VERSION_SIZE,
    MAX_TRACKERS, Reader, STORAGE_ID_LEN, VERSION_SIZE, put_fixed, put_u64, valid_group_name,
};
/// Width of one tracker address slot after the JOIN fixed part in 6.11-6.14
/// (FDFS_PROTO_MULTI_IP_PORT_SIZE = 2 x IP_ADDRESS_SIZE + 8): "host:port" NUL padded.
/// Also the longest tracker line 6.15+ accepts (FDFS_MAX_MULTI_IP_PORT_SIZE).
pub const JOIN_TRACKER_SLOT: usize = 2 * IP_ADDRESS_SIZE + 8;
/// Tracker slot width up to 6.10 (IP_ADDRESS_SIZE was 16).
pub const LEGACY_JOIN_TRACKER_SLOT: usize = 2 * IPV4_ADDRESS_SIZE + 8;

/// JOIN layouts: the fixed part, told apart by body size, and the form of the
/// tracker list (§9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinLayout {
    /// 6.15+: the 145-byte fixed part, then one "host:port\n" line per tracker.
    Lines,
    /// 6.13-6.14: the 145-byte fixed part (no http port / domain), 100-byte slots.
    Head,
    /// 6.12: 281 bytes (version 8).
    V612,
    /// 6.11: 279 bytes (version 6, storage id, tracker ip 46).
    V611,
    /// <= 6.10: 233 bytes (no storage id, tracker ip 16), 40-byte tracker slots.
    V610,
}

impl JoinLayout {
    /// All layouts, in the order a decoder tries them.
    pub const ALL: [JoinLayout; 5] = [
        JoinLayout::Lines,
        JoinLayout::Head,
        JoinLayout::V612,
        JoinLayout::V611,
        JoinLayout::V610,
    ];

    /// Size of the fixed part.
    pub fn fixed_len(self) -> usize {
        match self {
            JoinLayout::Lines | JoinLayout::Head => 145,
            JoinLayout::V612 => 281,
            JoinLayout::V611 => 279,
            JoinLayout::V610 => 233,
        }
    }

    /// Size of one tracker slot after the fixed part (the longest line for `Lines`).
    pub fn slot_len(self) -> usize {
        match self {
            JoinLayout::V610 => LEGACY_JOIN_TRACKER_SLOT,
            _ => JOIN_TRACKER_SLOT,
        }
    }

    /// Whether `b` has this layout's size: the fixed part, then `tracker_count`
    /// slots, or for `Lines` exactly `tracker_count` lines of 1..=100 bytes
    /// without NULs (a slot always ends in NUL, so the forms never collide).
    fn matches(self, b: &[u8]) -> bool {
        let fixed = self.fixed_len();
        if b.len() < fixed {
            return false;
        }
        let count = Reader::new(&b[fixed - 8..fixed])
            .u64("tracker_count")
            .unwrap_or(0);
        if !(1..=MAX_TRACKERS as u64).contains(&count) {
            return false;
        }
        if self != JoinLayout::Lines {
            return b.len() as u64 == fixed as u64 + count * self.slot_len() as u64;
        }
        let list = &b[fixed..];
        list.last() == Some(&b'\n')
            && !list.contains(&0)
            && list.iter().filter(|&&c| c == b'\n').count() as u64 == count
            && list[..list.len() - 1]
                .split(|&c| c == b'\n')
                .all(|l| !l.is_empty() && l.len() <= JOIN_TRACKER_SLOT)
    }
}

/// Request of STORAGE_JOIN (81).
///
/// Fixed part since 6.13 (145 bytes): group str[17], storage_port u64,
/// store_path_count u64, subdir_count_per_path u64, upload_priority u64, join_time u64,
/// up_time u64, version str[8], init_flag u8, status i8, storage_id str[16],
/// current_tracker_ip str[46], tracker_count u64; then the tracker list (see
/// [`JoinLayout`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Join {
    /// Group name, `[A-Za-z0-9]{1,16}`.
    pub group: String,
    /// Storage service port.
    pub storage_port: u16,
    /// 1..=256.
    pub store_path_count: u32,
    /// 1..=256.
    pub subdir_count_per_path: u32,
    /// Upload priority.
    pub upload_priority: i64,
    /// First-join time.
    pub join_time: u64,
    /// Process start time.
    pub up_time: u64,
    /// e.g. "6.16.1".
    pub version: String,
    /// true = sync source not yet negotiated (`sync_old_done = 0`).
    pub init_flag: bool,
    /// The storage's own last known status; -1 if unknown and a tracker was unreachable.
    pub status: i8,
    /// Storage id (empty before 6.11 or without storage ids).
    pub storage_id: String,
    /// The tracker address the storage connected to.
    pub current_tracker_ip: String,
    /// Every tracker of the storage's config, "host:port" ("ip1,ip2:port", "[v6]:port").
    pub trackers: Vec<String>,
}

impl Join {
    /// The 6.15+ layout: 145 bytes + one "host:port\n" line per tracker.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.encode_fixed();
        for t in &self.trackers {
            // A tracker takes at most 100 bytes per line; no config address is longer.
            out.extend_from_slice(&t.as_bytes()[..t.len().min(JOIN_TRACKER_SLOT - 1)]);
            out.push(b'\n');
        }
        out
    }

    /// The 6.13-6.14 layout: 145 bytes + 100 per tracker, for a tracker that
    /// refuses lines.
    pub fn encode_slots(&self) -> Vec<u8> {
        let mut out = self.encode_fixed();
        for t in &self.trackers {
            // The receiver forces the slot's last byte to NUL, so keep one free.
            put_fixed(&mut out, t, JOIN_TRACKER_SLOT - 1);
            out.push(0);
        }
        out
    }

    fn encode_fixed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(145 + self.trackers.len() * JOIN_TRACKER_SLOT);
        put_fixed(&mut out, &self.group, GROUP17_LEN);
        put_u64(&mut out, u64::from(self.storage_port));
        put_u64(&mut out, u64::from(self.store_path_count));
        put_u64(&mut out, u64::from(self.subdir_count_per_path));
        put_u64(&mut out, self.upload_priority as u64);
        put_u64(&mut out, self.join_time);
        put_u64(&mut out, self.up_time);
        put_fixed(&mut out, &self.version, VERSION_SIZE);
        out.push(u8::from(self.init_flag));
        out.push(self.status as u8);
        put_fixed(&mut out, &self.storage_id, STORAGE_ID_LEN);
        put_fixed(&mut out, &self.current_tracker_ip, IP_ADDRESS_SIZE);
        put_u64(&mut out, self.trackers.len() as u64);
        out
    }

    /// Decode any known layout; see [`Join::decode_with_layout`].
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_with_layout(b).map(|(j, _)| j)
    }

    /// Decode and report which layout matched (see [`JoinLayout::matches`]). Then
    /// validates group name, port > 0, path/subdir counts 1..=256, tracker_count 1..=16.
    pub fn decode_with_layout(b: &[u8]) -> Result<(Self, JoinLayout), DecodeError> {
        if b.len() < JoinLayout::Head.fixed_len() {
            return Err(DecodeError::Short {
                what: "join body",
                need: JoinLayout::Head.fixed_len(),
                got: b.len(),
            });
        }
        let layout =
            JoinLayout::ALL
                .into_iter()
                .find(|l| l.matches(b))
                .ok_or(DecodeError::BadLength {
                    what: "join body",
                    len: b.len() as u64,
                })?;
        Ok((Self::decode_layout(b, layout)?, layout))
    }

    fn decode_layout(b: &[u8], layout: JoinLayout) -> Result<Self, DecodeError> {
        let head = matches!(layout, JoinLayout::Lines | JoinLayout::Head);
        let mut r = Reader::new(b);
        let group = r.fixed(GROUP17_LEN, "group name")?;
        if !valid_group_name(&group) {
            return Err(DecodeError::Invalid("group name"));
        }
        let port = r.u64("storage_port")?;
        if !head {
            r.u64("storage_http_port")?;
        }
        let paths = r.u64("store_path_count")?;
        let subdirs = r.u64("subdir_count_per_path")?;
        let mut j = Join {
            group,
            storage_port: u16::try_from(port)
                .ok()
                .filter(|&p| p > 0)
                .ok_or(DecodeError::Invalid("storage_port"))?,
            store_path_count: count_1_256(paths, "store_path_count")?,
            subdir_count_per_path: count_1_256(subdirs, "subdir_count_per_path")?,
            upload_priority: r.i64("upload_priority")?,
            join_time: r.u64("join_time")?,
            up_time: r.u64("up_time")?,
            ..Default::default()
        };
        let version_len = match layout {
            JoinLayout::Lines | JoinLayout::Head | JoinLayout::V612 => VERSION_SIZE,
            _ => LEGACY_VERSION_SIZE,
        };
        j.version = r.fixed(version_len, "version")?;
        if !head {
            r.bytes(super::DOMAIN_NAME_MAX_SIZE, "domain name")?;
        }
        j.init_flag = r.u8("init_flag")? != 0;
        j.status = r.u8("status")? as i8;
        if layout != JoinLayout::V610 {
            j.storage_id = r.fixed(STORAGE_ID_LEN, "storage id")?;
        }
        let ip_len = if layout == JoinLayout::V610 {
            IPV4_ADDRESS_SIZE
        } else {
            IP_ADDRESS_SIZE
        };
        j.current_tracker_ip = r.fixed(ip_len, "current tracker ip")?;
        let count = r.u64("tracker_count")?;
        if layout == JoinLayout::Lines {
            let list = r.rest();
            for line in list[..list.len().saturating_sub(1)].split(|&c| c == b'\n') {
                let t = std::str::from_utf8(line)
                    .map_err(|_| DecodeError::Invalid("tracker address"))?;
                j.trackers.push(t.trim().to_string());
            }
            return Ok(j);
        }
        for _ in 0..count {
            // The sender's last slot byte is meant to be NUL; never read it as text.
            let slot = r.bytes(layout.slot_len(), "tracker address")?;
            let t = super::fixed_str(&slot[..slot.len() - 1]);
            if t.is_empty() {
                return Err(DecodeError::Invalid("tracker address"));
            }
            j.trackers.push(t);
        }
        r.finish("join body")?;
        Ok(j)
    }
}

fn count_1_256(v: u64, what: &'static str) -> Result<u32, DecodeError> {
    if (1..=256).contains(&v) {
        Ok(v as u32)
    } else {
        Err(DecodeError::Invalid(what))
    }
}

/// Reply of STORAGE_JOIN (81): my_status u8 + src_id str[16] = 17 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinReply {
    /// The storage's status as the tracker sees it.
    pub status: u8,
    /// Its sync source, empty if none.
    pub src_id: String,
}

/// Size of [`JoinReply`].
pub const JOIN_REPLY_LEN: usize = 1 + STORAGE_ID_LEN;

impl JoinReply {
    /// 17 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.status];
        put_fixed(&mut out, &self.src_id, STORAGE_ID_LEN);
        out
    }

    /// Exactly 17 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != JOIN_REPLY_LEN {
            return Err(DecodeError::BadLength {
                what: "join reply",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        Ok(JoinReply {
            status: r.u8("status")?,
            src_id: r.fixed(STORAGE_ID_LEN, "src id")?,
        })
    }
}

/// Request of STORAGE_GET_MY_IP (60): group str[17] + the storage's port as a
/// 4-byte big-endian int (FDFSGetMyIPReqBody). The reply is the address text
/// alone ("ip", or "ip1,ip2" for a storage id with two addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MyIpQuery {
    /// Group name.
    pub group: String,
    /// The storage's service port.
    pub port: u16,
}

/// Size of [`MyIpQuery`].
pub const MY_IP_QUERY_LEN: usize = GROUP17_LEN + 4;

impl MyIpQuery {
    /// 21 bytes.
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MY_IP_QUERY_LEN);
        put_fixed(&mut out, &self.group, GROUP17_LEN);
        out.extend_from_slice(&u32::from(self.port).to_be_bytes());
        out
    }

    /// Exactly 21 bytes, a valid group name and a port of 1..=65535.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != MY_IP_QUERY_LEN {
            return Err(DecodeError::BadLength {
                what: "get my ip body",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let group = r.fixed(GROUP17_LEN, "group name")?;
        if !valid_group_name(&group) {
            return Err(DecodeError::Invalid("group name"));
        }
        let port = u16::try_from(r.u32("port")?)
            .ok()
            .filter(|&p| p > 0)
            .ok_or(DecodeError::Invalid("port"))?;
        Ok(MyIpQuery { group, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join() -> Join {
        Join {
            group: "group1".into(),
            storage_port: 23000,
            store_path_count: 2,
            subdir_count_per_path: 256,
            upload_priority: 10,
            join_time: 1_700_000_000,
            up_time: 1_700_000_500,
            version: "6.16.1".into(),
            init_flag: true,
            status: -1,
            storage_id: "100001".into(),
            current_tracker_ip: "10.0.0.1".into(),
            trackers: vec!["10.0.0.1:22122".into(), "10.0.0.2,10.1.0.2:22122".into()],
        }
    }

    #[test]
    fn join_lines_round_trip() {
        let j = join();
        let b = j.encode();
        assert_eq!(
            &b[145..],
            b"10.0.0.1:22122\n10.0.0.2,10.1.0.2:22122\n".as_slice()
        );
        assert_eq!(&b[137..145], &2u64.to_be_bytes());
        assert_eq!(
            Join::decode_with_layout(&b).unwrap(),
            (j, JoinLayout::Lines)
        );
    }

    /// The JOIN body a C 6.16.1 `fdfs_storaged` sent to a stand-in tracker at
    /// 127.0.0.10:22199 (group1, port 23999, one store path, 16 subdirs, first
    /// start), captured off the wire.
    const C_6161_JOIN: &str = "67726f75703100000000000000000000000000000000005dbf000000000000000100000000000000\
        10000000000000000a000000006b166b44000000006b166b44362e31362e31000001000000000000\
        00000000000000000000003132372e302e302e313000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000013132372e302e302e31303a32323139\
        390a";

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn join_lines_golden() {
        let b = unhex(C_6161_JOIN);
        let (j, l) = Join::decode_with_layout(&b).unwrap();
        assert_eq!(l, JoinLayout::Lines);
        assert_eq!(j.group, "group1");
        assert_eq!(j.storage_port, 23999);
        assert_eq!(j.store_path_count, 1);
        assert_eq!(j.subdir_count_per_path, 16);
        assert_eq!(j.version, "6.16.1");
        assert!(j.init_flag);
        assert_eq!(j.current_tracker_ip, "127.0.0.10");
        assert_eq!(j.trackers, vec!["127.0.0.10:22199".to_string()]);
        // What we send for the same facts is byte for byte the same.
        assert_eq!(j.encode(), b);
    }

    #[test]
    fn join_lines_rejects() {
        let good = join().encode();
        // One line missing its '\n', one line too many, an empty line, a NUL.
        assert!(Join::decode(&good[..good.len() - 1]).is_err());
        let mut more = good.clone();
        more.extend_from_slice(b"10.0.0.3:22122\n");
        assert!(Join::decode(&more).is_err());
        let mut empty = join();
        empty.trackers = vec![String::new(), "t:1".into()];
        assert!(Join::decode(&empty.encode()).is_err());
        let mut nul = good.clone();
        nul[146] = 0;
        assert!(Join::decode(&nul).is_err());
        // A line longer than upstream's 100-byte limit.
        let mut long = join();
        long.trackers = vec![format!("{}:1", "a".repeat(101))];
        let mut b = long.encode_fixed();
        b.extend_from_slice(long.trackers[0].as_bytes());
        b.push(b'\n');
        assert!(Join::decode(&b).is_err());
    }

    #[test]
    fn join_head_round_trip() {
        let j = join();
        let b = j.encode_slots();
        assert_eq!(b.len(), 145 + 2 * 100);
        assert_eq!(&b[..7], b"group1\0");
        assert_eq!(b[17 + 48 + 8], 1); // init_flag
        assert_eq!(b[17 + 48 + 8 + 1], 0xff); // status -1
        assert_eq!(&b[137..145], &2u64.to_be_bytes());
        assert_eq!(&b[145..159], b"10.0.0.1:22122");
        assert_eq!(Join::decode_with_layout(&b).unwrap(), (j, JoinLayout::Head));
    }

    /// Build a pre-6.13 body by hand from the §9.2 table.
    fn legacy_join(layout: JoinLayout) -> Vec<u8> {
        let j = join();
        let mut b = Vec::new();
        put_fixed(&mut b, &j.group, 17);
        for v in [23000u64, 8080, 2, 256, 10, 1_700_000_000, 1_700_000_500] {
            put_u64(&mut b, v);
        }
        let vlen = if layout == JoinLayout::V612 { 8 } else { 6 };
        put_fixed(&mut b, "6.10", vlen);
        put_fixed(&mut b, "www.example.com", 128);
        b.push(1);
        b.push(255);
        if layout != JoinLayout::V610 {
            put_fixed(&mut b, "100001", 16);
        }
        let ip = if layout == JoinLayout::V610 { 16 } else { 46 };
        put_fixed(&mut b, "10.0.0.1", ip);
        put_u64(&mut b, 1);
        assert_eq!(b.len(), layout.fixed_len());
        put_fixed(&mut b, "10.0.0.1:22122", layout.slot_len());
        b
    }

    #[test]
    fn join_legacy_layouts() {
        for layout in [JoinLayout::V612, JoinLayout::V611, JoinLayout::V610] {
            let b = legacy_join(layout);
            let (j, l) = Join::decode_with_layout(&b).unwrap();
            assert_eq!(l, layout);
            assert_eq!(j.group, "group1");
            assert_eq!(j.storage_port, 23000);
            assert_eq!(j.store_path_count, 2);
            assert_eq!(j.upload_priority, 10);
            assert_eq!(j.up_time, 1_700_000_500);
            assert_eq!(j.version, "6.10");
            assert_eq!(j.status, -1);
            assert_eq!(
                j.storage_id,
                if layout == JoinLayout::V610 {
                    ""
                } else {
                    "100001"
                }
            );
            assert_eq!(j.current_tracker_ip, "10.0.0.1");
            assert_eq!(j.trackers, vec!["10.0.0.1:22122".to_string()]);
        }
    }

    #[test]
    fn join_rejects() {
        let good = join().encode_slots();
        assert!(matches!(
            Join::decode(&good[..100]),
            Err(DecodeError::Short { .. })
        ));
        assert!(matches!(
            Join::decode(&good[..good.len() - 1]),
            Err(DecodeError::BadLength { .. })
        ));
        let mut extra = good.clone();
        extra.push(0);
        assert!(Join::decode(&extra).is_err());
        let with = |f: &dyn Fn(&mut Join)| {
            let mut j = join();
            f(&mut j);
            Join::decode(&j.encode_slots())
        };
        assert_eq!(
            with(&|j| j.group = "group_1".into()),
            Err(DecodeError::Invalid("group name"))
        );
        assert_eq!(
            with(&|j| j.group = String::new()),
            Err(DecodeError::Invalid("group name"))
        );
        assert_eq!(
            with(&|j| j.storage_port = 0),
            Err(DecodeError::Invalid("storage_port"))
        );
        assert_eq!(
            with(&|j| j.store_path_count = 257),
            Err(DecodeError::Invalid("store_path_count"))
        );
        assert_eq!(
            with(&|j| j.subdir_count_per_path = 0),
            Err(DecodeError::Invalid("subdir_count_per_path"))
        );
        assert!(with(&|j| j.trackers.clear()).is_err());
        assert!(with(&|j| j.trackers = vec!["t:1".into(); 17]).is_err());
        assert_eq!(
            with(&|j| j.trackers = vec![String::new()]),
            Err(DecodeError::Invalid("tracker address"))
        );
        // A port above 65535 on the wire.
        let mut b = good.clone();
        b[17 + 5] = 1;
        assert_eq!(Join::decode(&b), Err(DecodeError::Invalid("storage_port")));
    }

    /// What a C 6.16.1 storage (group1, port 23999) sent, off the wire.
    #[test]
    fn my_ip_query_golden() {
        let b = unhex("67726f7570310000000000000000000000" /* group */);
        let mut b = b;
        b.extend_from_slice(&unhex("00005dbf"));
        let q = MyIpQuery::decode(&b).unwrap();
        assert_eq!(
            q,
            MyIpQuery {
                group: "group1".into(),
                port: 23999
            }
        );
        assert_eq!(q.encode(), b);
        assert!(MyIpQuery::decode(&b[..20]).is_err());
        let mut zero = b.clone();
        zero[17..].fill(0);
        assert_eq!(MyIpQuery::decode(&zero), Err(DecodeError::Invalid("port")));
        let mut big = b.clone();
        big[17] = 1;
        assert_eq!(MyIpQuery::decode(&big), Err(DecodeError::Invalid("port")));
    }

    #[test]
    fn join_reply() {
        let r = JoinReply {
            status: 7,
            src_id: "100002".into(),
        };
        let b = r.encode();
        assert_eq!(b.len(), 17);
        assert_eq!(JoinReply::decode(&b).unwrap(), r);
        assert!(JoinReply::decode(&b[..16]).is_err());
    }
}
