//! Storage -> tracker reports: BEAT (83), REPORT_DISK_USAGE (84), SYNC_REPORT (89), their
//! shared reply, the Brief record, the sync-source negotiation bodies (76, 85, 86, 87,
//! 88), REPORT_IP_CHANGED (78) and GET_SERVER_ID (70) (PROTOCOL.md §9.3-§9.7, §9.10,
//! §9.12). JOIN is in `join`. Re-exported by `tracker`. Only std.

use super::{
    DecodeError, GROUP_NAME_LEN, IP_ADDRESS_SIZE, MAX_IP_PORT_SIZE, Reader, STAT_COUNTERS_LEN,
    STORAGE_ID_LEN, StatCounters, group16, put_fixed, put_u32, put_u64,
};
/// FDFSStorageBrief, 67 bytes: status u8, port u32, id str[16], ip str[46] (§9.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Brief {
    /// Status (§8).
    pub status: u8,
    /// Port.
    pub port: u32,
    /// Storage id (leader brief: the tracker IP).
    pub id: String,
    /// IP address.
    pub ip: String,
}

/// Size of [`Brief`].
pub const BRIEF_LEN: usize = 1 + 4 + STORAGE_ID_LEN + IP_ADDRESS_SIZE;

impl Brief {
    /// Append 67 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.status);
        put_u32(out, self.port);
        put_fixed(out, &self.id, STORAGE_ID_LEN);
        put_fixed(out, &self.ip, IP_ADDRESS_SIZE);
    }

    /// Exactly 67 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != BRIEF_LEN {
            return Err(DecodeError::BadLength {
                what: "brief",
                len: b.len() as u64,
            });
        }
        Self::read(&mut Reader::new(b))
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Brief {
            status: r.u8("brief status")?,
            port: r.u32("brief port")?,
            id: r.fixed(STORAGE_ID_LEN, "brief id")?,
            ip: r.fixed(IP_ADDRESS_SIZE, "brief ip")?,
        })
    }

    /// A whole number of Briefs (REPLICA_CHG (85) request; server list of a beat reply).
    pub fn decode_list(b: &[u8]) -> Result<Vec<Self>, DecodeError> {
        if !b.len().is_multiple_of(BRIEF_LEN) {
            return Err(DecodeError::BadLength {
                what: "brief list",
                len: b.len() as u64,
            });
        }
        b.chunks_exact(BRIEF_LEN).map(Self::decode).collect()
    }

    /// Concatenated Briefs.
    #[cfg(test)]
    pub fn encode_list(list: &[Brief]) -> Vec<u8> {
        let mut out = Vec::with_capacity(list.len() * BRIEF_LEN);
        for b in list {
            b.encode(&mut out);
        }
        out
    }
}

/// Beat-reply flag: tracker leader changed, a leader Brief follows.
pub const CHANGE_FLAG_LEADER: u8 = 1;
/// Beat-reply flag: trunk server changed, a trunk Brief follows (all zero = none).
pub const CHANGE_FLAG_TRUNK: u8 = 2;
/// Beat-reply flag: group server list changed, every server's Brief follows.
pub const CHANGE_FLAG_SERVERS: u8 = 4;

/// Reply of BEAT (83), REPORT_DISK_USAGE (84), SYNC_REPORT (89): flags u8, then the parts
/// whose flag is set, in the order leader, trunk, servers (§9.3). A `Some` part means
/// "changed"; a trunk Brief with an empty id means the group has no trunk server now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BeatReply {
    /// New tracker leader (flag 1).
    pub leader: Option<Brief>,
    /// New trunk server (flag 2).
    pub trunk: Option<Brief>,
    /// Full server list of the group (flag 4).
    pub servers: Option<Vec<Brief>>,
}

impl BeatReply {
    /// Flags byte + parts.
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0;
        let mut out = vec![0];
        if let Some(b) = &self.leader {
            flags |= CHANGE_FLAG_LEADER;
            b.encode(&mut out);
        }
        if let Some(b) = &self.trunk {
            flags |= CHANGE_FLAG_TRUNK;
            b.encode(&mut out);
        }
        if let Some(list) = &self.servers {
            flags |= CHANGE_FLAG_SERVERS;
            for b in list {
                b.encode(&mut out);
            }
        }
        out[0] = flags;
        out
    }

    /// An empty body is accepted as "nothing changed"; unknown flag bits are ignored.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut out = BeatReply::default();
        if b.is_empty() {
            return Ok(out);
        }
        let mut r = Reader::new(b);
        let flags = r.u8("beat flags")?;
        if flags & CHANGE_FLAG_LEADER != 0 {
            out.leader = Some(Brief::read(&mut r)?);
        }
        if flags & CHANGE_FLAG_TRUNK != 0 {
            out.trunk = Some(Brief::read(&mut r)?);
        }
        if flags & CHANGE_FLAG_SERVERS != 0 {
            out.servers = Some(Brief::decode_list(r.rest())?);
        }
        r.finish("beat reply")?;
        Ok(out)
    }
}

/// BEAT (83) request: empty, or the counters block when they changed.
pub fn encode_beat(stat: Option<&StatCounters>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(s) = stat {
        s.encode(&mut out);
    }
    out
}

/// BEAT (83) request: 0 or 348 bytes, anything else is BadLength.
pub fn decode_beat(b: &[u8]) -> Result<Option<StatCounters>, DecodeError> {
    match b.len() {
        0 => Ok(None),
        STAT_COUNTERS_LEN => StatCounters::decode(b).map(Some),
        n => Err(DecodeError::BadLength {
            what: "beat body",
            len: n as u64,
        }),
    }
}

/// REPORT_DISK_USAGE (84) request: per store path total_mb u64 + free_mb u64.
pub fn encode_disk_usage(paths: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(paths.len() * 16);
    for &(total, free) in paths {
        put_u64(&mut out, total);
        put_u64(&mut out, free);
    }
    out
}

/// REPORT_DISK_USAGE (84): the body must be exactly 16 x `path_count` bytes.
pub fn decode_disk_usage(b: &[u8], path_count: usize) -> Result<Vec<(u64, u64)>, DecodeError> {
    if path_count.checked_mul(16) != Some(b.len()) {
        return Err(DecodeError::BadLength {
            what: "disk usage",
            len: b.len() as u64,
        });
    }
    let mut r = Reader::new(b);
    (0..path_count)
        .map(|_| Ok((r.u64("total_mb")?, r.u64("free_mb")?)))
        .collect()
}

/// SYNC_REPORT (89) request: per peer storage_id str[16] + last_sync_src_timestamp u32.
pub fn encode_sync_report(e: &[(String, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(e.len() * 20);
    for (id, ts) in e {
        put_fixed(&mut out, id, STORAGE_ID_LEN);
        put_u32(&mut out, *ts);
    }
    out
}

/// SYNC_REPORT (89): a whole number of 20-byte entries.
pub fn decode_sync_report(b: &[u8]) -> Result<Vec<(String, u32)>, DecodeError> {
    if !b.len().is_multiple_of(STORAGE_ID_LEN + 4) {
        return Err(DecodeError::BadLength {
            what: "sync report",
            len: b.len() as u64,
        });
    }
    let mut r = Reader::new(b);
    let mut out = Vec::with_capacity(b.len() / (STORAGE_ID_LEN + 4));
    while r.remaining() > 0 {
        out.push((
            r.fixed(STORAGE_ID_LEN, "storage id")?,
            r.u32("sync timestamp")?,
        ));
    }
    Ok(out)
}

/// TrackerStorageSyncReqBody: src_id str[16] + until_timestamp u64 = 24 bytes. Reply of
/// SYNC_DEST_REQ (87) / SYNC_DEST_QUERY (79) / SYNC_SRC_REQ (86), request of SYNC_NOTIFY (88).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncSrc {
    /// Source storage id; empty = none.
    pub src_id: String,
    /// Push files up to this time.
    pub until_timestamp: u64,
}

/// Size of [`SyncSrc`].
pub const SYNC_SRC_LEN: usize = STORAGE_ID_LEN + 8;

impl SyncSrc {
    /// 24 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SYNC_SRC_LEN);
        put_fixed(&mut out, &self.src_id, STORAGE_ID_LEN);
        put_u64(&mut out, self.until_timestamp);
        out
    }

    /// Exactly 24 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != SYNC_SRC_LEN {
            return Err(DecodeError::BadLength {
                what: "sync src body",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        Ok(SyncSrc {
            src_id: r.fixed(STORAGE_ID_LEN, "src id")?,
            until_timestamp: r.u64("until")?,
        })
    }
}

/// Request of SYNC_SRC_REQ (86): group str[16] + dest_id str[16] (exactly 32), also the
/// not-joined form of CHANGELOG_REQ (77).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupStorage {
    /// Group name.
    pub group: String,
    /// Storage id.
    pub id: String,
}

impl GroupStorage {
    /// 32 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + STORAGE_ID_LEN);
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        put_fixed(&mut out, &self.id, STORAGE_ID_LEN);
        out
    }

    /// Exactly 32 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != GROUP_NAME_LEN + STORAGE_ID_LEN {
            return Err(DecodeError::BadLength {
                what: "group + storage id",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        Ok(GroupStorage {
            group: group16(&mut r)?,
            id: r.fixed(STORAGE_ID_LEN, "storage id")?,
        })
    }
}

/// Request of REPORT_STATUS (76): group str[16] + one Brief (exactly 83 bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportStatus {
    /// Group name.
    pub group: String,
    /// The destination server and the status its source reports for it.
    pub server: Brief,
}

impl ReportStatus {
    /// 83 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + BRIEF_LEN);
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        self.server.encode(&mut out);
        out
    }

    /// Exactly 83 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != GROUP_NAME_LEN + BRIEF_LEN {
            return Err(DecodeError::BadLength {
                what: "report status",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        Ok(ReportStatus {
            group: group16(&mut r)?,
            server: Brief::read(&mut r)?,
        })
    }
}

/// Request of REPORT_IP_CHANGED (78): group str[16] + old_ip str[46] + new_ip str[46]
/// (exactly 108 bytes; IP_ADDRESS_SIZE since 6.11) (§9.10).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportIpChanged {
    /// Group name.
    pub group: String,
    /// The address the storage had (its `last_ip_addr`).
    pub old_ip: String,
    /// The address it has now.
    pub new_ip: String,
}

/// Size of [`ReportIpChanged`].
pub const REPORT_IP_CHANGED_LEN: usize = GROUP_NAME_LEN + 2 * IP_ADDRESS_SIZE;

impl ReportIpChanged {
    /// 108 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(REPORT_IP_CHANGED_LEN);
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        put_fixed(&mut out, &self.old_ip, IP_ADDRESS_SIZE);
        put_fixed(&mut out, &self.new_ip, IP_ADDRESS_SIZE);
        out
    }

    /// Exactly 108 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != REPORT_IP_CHANGED_LEN {
            return Err(DecodeError::BadLength {
                what: "report ip changed",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        Ok(ReportIpChanged {
            group: group16(&mut r)?,
            old_ip: r.fixed(IP_ADDRESS_SIZE, "old ip")?,
            new_ip: r.fixed(IP_ADDRESS_SIZE, "new ip")?,
        })
    }
}

/// Request of GET_SERVER_ID (70): group str[16] + the storage's address as text, "ip:port"
/// since 6.16.0 and "ip" before; 17..=68 bytes in all (§9.12). The reply is the id text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetServerId {
    /// Group name.
    pub group: String,
    /// "ip:port" or "ip", as sent (trailing NULs dropped).
    pub addr: String,
}

impl GetServerId {
    /// 16 + addr bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + self.addr.len());
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        out.extend_from_slice(self.addr.as_bytes());
        out
    }

    /// 17..=68 bytes; the address must be UTF-8.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() <= GROUP_NAME_LEN || b.len() > GROUP_NAME_LEN + MAX_IP_PORT_SIZE {
            return Err(DecodeError::BadLength {
                what: "get server id",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let group = group16(&mut r)?;
        let addr = std::str::from_utf8(r.rest())
            .map_err(|_| DecodeError::Invalid("storage address"))?
            .trim_end_matches('\0')
            .to_string();
        Ok(GetServerId { group, addr })
    }

    /// The address split into IP and port: "ip:port", "[v6]:port" and a bare IP (no port,
    /// as sent before 6.16.0; an IPv6 address without brackets counts as bare).
    pub fn ip_port(&self) -> (&str, Option<u16>) {
        match self.addr.rsplit_once(':') {
            Some((ip, p)) if !ip.contains(':') || ip.starts_with('[') => {
                (ip.trim_matches(['[', ']']), p.parse::<u16>().ok())
            }
            _ => (&self.addr, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_ip_changed() {
        let r = ReportIpChanged {
            group: "group1".into(),
            old_ip: "10.0.0.1".into(),
            new_ip: "fe80::1".into(),
        };
        let b = r.encode();
        assert_eq!(b.len(), 108);
        assert_eq!(&b[16..24], b"10.0.0.1");
        assert_eq!(&b[62..69], b"fe80::1");
        assert_eq!(ReportIpChanged::decode(&b), Ok(r));
        assert!(ReportIpChanged::decode(&b[..107]).is_err());
        assert!(ReportIpChanged::decode(&[b.as_slice(), &[0]].concat()).is_err());
        // The pre-6.11 layout (16-byte IPs) is not spoken.
        assert!(ReportIpChanged::decode(&[0; 48]).is_err());
    }

    #[test]
    fn get_server_id() {
        let q = GetServerId {
            group: "group1".into(),
            addr: "192.168.0.5:23000".into(),
        };
        let b = q.encode();
        assert_eq!(&b[..7], b"group1\0");
        assert_eq!(&b[16..], b"192.168.0.5:23000");
        assert_eq!(GetServerId::decode(&b), Ok(q.clone()));
        assert_eq!(q.ip_port(), ("192.168.0.5", Some(23000)));
        let v6 = GetServerId {
            group: "g".into(),
            addr: "[fe80::1]:23001".into(),
        };
        assert_eq!(GetServerId::decode(&v6.encode()), Ok(v6.clone()));
        assert_eq!(v6.ip_port(), ("fe80::1", Some(23001)));
        let old = GetServerId {
            group: "g".into(),
            addr: "10.0.0.1".into(),
        };
        assert_eq!(old.ip_port(), ("10.0.0.1", None));
        let bare6 = GetServerId {
            group: "g".into(),
            addr: "fe80::1".into(),
        };
        assert_eq!(bare6.ip_port(), ("fe80::1", None));
        // A NUL-terminated address (C strings) decodes without its NULs.
        let nul = [b.as_slice(), b"\0\0"].concat();
        assert_eq!(GetServerId::decode(&nul).unwrap().addr, "192.168.0.5:23000");
        // Truncated: the group alone, or less; oversized: more than 52 address bytes.
        assert!(GetServerId::decode(&b[..16]).is_err());
        assert!(GetServerId::decode(&b[..5]).is_err());
        let long = [&b[..16], &[b'1'; 53][..]].concat();
        assert!(GetServerId::decode(&long).is_err());
        assert!(GetServerId::decode(&long[..68]).is_ok());
        let bad = [&b[..16], &[0xff, b'1'][..]].concat();
        assert_eq!(
            GetServerId::decode(&bad),
            Err(DecodeError::Invalid("storage address"))
        );
    }

    fn brief(n: u8) -> Brief {
        Brief {
            status: 7,
            port: 23000 + u32::from(n),
            id: format!("10000{n}"),
            ip: format!("10.0.0.{n}"),
        }
    }

    #[test]
    fn brief_golden() {
        let mut b = Vec::new();
        brief(1).encode(&mut b);
        assert_eq!(b.len(), 67);
        assert_eq!(&b[..5], &[7, 0, 0, 0x59, 0xd9]);
        assert_eq!(&b[5..11], b"100001");
        assert_eq!(&b[21..29], b"10.0.0.1");
        assert_eq!(Brief::decode(&b).unwrap(), brief(1));
        assert!(Brief::decode(&b[..66]).is_err());
    }

    #[test]
    fn beat_reply() {
        assert_eq!(BeatReply::default().encode(), [0]);
        assert_eq!(BeatReply::decode(&[0]).unwrap(), BeatReply::default());
        assert_eq!(BeatReply::decode(&[]).unwrap(), BeatReply::default());
        let full = BeatReply {
            leader: Some(brief(1)),
            trunk: Some(Brief::default()),
            servers: Some(vec![brief(2), brief(3)]),
        };
        let b = full.encode();
        assert_eq!(b[0], 7);
        assert_eq!(b.len(), 1 + 4 * 67);
        assert_eq!(BeatReply::decode(&b).unwrap(), full);
        let servers_only = BeatReply {
            servers: Some(vec![brief(2)]),
            ..Default::default()
        };
        assert_eq!(servers_only.encode()[0], 4);
        assert_eq!(
            BeatReply::decode(&servers_only.encode()).unwrap(),
            servers_only
        );
        let trunk_only = BeatReply {
            trunk: Some(brief(4)),
            ..Default::default()
        };
        assert_eq!(BeatReply::decode(&trunk_only.encode()).unwrap(), trunk_only);
        assert!(BeatReply::decode(&b[..b.len() - 1]).is_err());
        // Flag 1 without its Brief, and trailing bytes without flag 4.
        assert!(matches!(
            BeatReply::decode(&[1, 0]),
            Err(DecodeError::Short { .. })
        ));
        assert!(matches!(
            BeatReply::decode(&[0, 0]),
            Err(DecodeError::BadLength { .. })
        ));
    }

    #[test]
    fn beat_body() {
        assert!(encode_beat(None).is_empty());
        assert_eq!(decode_beat(&[]).unwrap(), None);
        let s = StatCounters {
            connection_max: 9,
            total_upload_count: 5,
            ..Default::default()
        };
        let b = encode_beat(Some(&s));
        assert_eq!(b.len(), 348);
        assert_eq!(decode_beat(&b).unwrap(), Some(s));
        assert!(decode_beat(&b[..100]).is_err());
    }

    #[test]
    fn disk_usage() {
        let p = vec![(1000, 500), (2000, 100)];
        let b = encode_disk_usage(&p);
        assert_eq!(b.len(), 32);
        assert_eq!(decode_disk_usage(&b, 2).unwrap(), p);
        assert!(decode_disk_usage(&b, 1).is_err());
        assert!(decode_disk_usage(&b, 3).is_err());
        assert!(decode_disk_usage(&b, usize::MAX).is_err());
        assert!(decode_disk_usage(&[], 0).unwrap().is_empty());
    }

    #[test]
    fn sync_report() {
        let e = vec![
            ("100002".to_string(), 1_700_000_000u32),
            ("10.0.0.3".into(), 0),
        ];
        let b = encode_sync_report(&e);
        assert_eq!(b.len(), 40);
        assert_eq!(&b[16..20], &1_700_000_000u32.to_be_bytes());
        assert_eq!(decode_sync_report(&b).unwrap(), e);
        assert!(decode_sync_report(&b[..39]).is_err());
        assert!(decode_sync_report(&[]).unwrap().is_empty());
    }

    #[test]
    fn negotiation_bodies() {
        let s = SyncSrc {
            src_id: "100001".into(),
            until_timestamp: 1_700_000_000,
        };
        assert_eq!(s.encode().len(), 24);
        assert_eq!(SyncSrc::decode(&s.encode()).unwrap(), s);
        assert!(SyncSrc::decode(&[0; 23]).is_err());
        let g = GroupStorage {
            group: "group1".into(),
            id: "100003".into(),
        };
        assert_eq!(GroupStorage::decode(&g.encode()).unwrap(), g);
        assert!(GroupStorage::decode(&[0; 31]).is_err());
        let r = ReportStatus {
            group: "group1".into(),
            server: brief(5),
        };
        assert_eq!(r.encode().len(), 83);
        assert_eq!(ReportStatus::decode(&r.encode()).unwrap(), r);
        assert!(ReportStatus::decode(&[0; 84]).is_err());
        let list = vec![brief(1), brief(2)];
        assert_eq!(
            Brief::decode_list(&Brief::encode_list(&list)).unwrap(),
            list
        );
        assert!(Brief::decode_list(&[0; 68]).is_err());
    }
}
