//! Tracker messages sent by clients and admin tools: QUERY_STORE / QUERY_FETCH (101-107),
//! LIST / DELETE (90-94, 108), FETCH_STORAGE_IDS (69) and PARAMETER_REQ (75) replies
//! (PROTOCOL.md §4, §9.8).
//!
//! The storage -> tracker messages live in `join` and `report`, the stat records in `stat`, the
//! 6.16 cluster-stat commands (96-98) in `cluster_stat`; all re-exported here so that
//! `proto::tracker::X` names every tracker message. Only std.
//!
//! `ip_size` is the tracker's `response_ip_addr_size` R (16 or 46): the query replies carry
//! an IP field of R - 1 bytes.

pub use super::cluster_stat::*;
pub use super::join::*;
pub use super::report::*;
pub use super::stat::*;

use super::{
    DecodeError, GROUP_NAME_LEN, MAX_REMOTE_NAME_LEN, Reader, STORAGE_ID_LEN, fixed_str, group16,
    put_fixed, put_u32, put_u64,
};

/// IP field width of the query replies for a given R (never below 1 byte).
fn ip_field(ip_size: usize) -> usize {
    ip_size.saturating_sub(1).max(1)
}

/// Read a u64 port field and narrow it to u16.
pub(super) fn port64(r: &mut Reader<'_>, what: &'static str) -> Result<u16, DecodeError> {
    let v = r.u64(what)?;
    u16::try_from(v).map_err(|_| DecodeError::Invalid(what))
}

/// Infer R from a reply of `len` bytes that is `fixed + (R - 1)` long (R = 16 or 46).
fn ip_size_from_len(len: usize, fixed: usize, what: &'static str) -> Result<usize, DecodeError> {
    match len.checked_sub(fixed) {
        Some(15) => Ok(16),
        Some(45) => Ok(46),
        _ => Err(DecodeError::BadLength {
            what,
            len: len as u64,
        }),
    }
}

/// Decode a body that is exactly one `group_name str[16]` (104, 107, 90, 108).
pub fn decode_group(body: &[u8]) -> Result<String, DecodeError> {
    if body.len() != GROUP_NAME_LEN {
        return Err(DecodeError::BadLength {
            what: "group body",
            len: body.len() as u64,
        });
    }
    group16(&mut Reader::new(body))
}

/// Encode a group-only body (16 bytes).
pub fn encode_group(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(GROUP_NAME_LEN);
    put_fixed(&mut out, group, GROUP_NAME_LEN);
    out
}

/// Reply of QUERY_STORE_*_ONE (101, 104): group str[16] + ip str[R-1] + port u64 +
/// store_path_index u8 = 40 bytes (R = 16) or 70 (R = 46).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreTarget {
    /// Group to upload into.
    pub group: String,
    /// Storage IP as seen by the client.
    pub ip: String,
    /// Storage port.
    pub port: u16,
    /// Store path the client should ask for.
    pub store_path_index: u8,
}

impl StoreTarget {
    /// 16 + (R-1) + 8 + 1 bytes.
    pub fn encode(&self, ip_size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + ip_size + 8);
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        put_fixed(&mut out, &self.ip, ip_field(ip_size));
        put_u64(&mut out, u64::from(self.port));
        out.push(self.store_path_index);
        out
    }

    /// Accepts 40 or 70 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let ip_size = ip_size_from_len(b.len(), GROUP_NAME_LEN + 9, "store target")?;
        let mut r = Reader::new(b);
        Ok(StoreTarget {
            group: group16(&mut r)?,
            ip: r.fixed(ip_size - 1, "storage ip")?,
            port: port64(&mut r, "storage port")?,
            store_path_index: r.u8("store_path_index")?,
        })
    }
}

/// Reply of QUERY_STORE_*_ALL (106, 107): group str[16], then per writable server
/// ip str[R-1] + port u64, then one store_path_index byte.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreTargets {
    /// Chosen group.
    pub group: String,
    /// Every writable server of the group: (ip, port).
    pub servers: Vec<(String, u16)>,
    /// Store path index computed for the first server.
    pub store_path_index: u8,
}

impl StoreTargets {
    /// 16 + n (R - 1 + 8) + 1 bytes.
    pub fn encode(&self, ip_size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        for (ip, port) in &self.servers {
            put_fixed(&mut out, ip, ip_field(ip_size));
            put_u64(&mut out, u64::from(*port));
        }
        out.push(self.store_path_index);
        out
    }

    /// Decode with a known R; at least one server is required.
    #[cfg(test)]
    pub fn decode(b: &[u8], ip_size: usize) -> Result<Self, DecodeError> {
        let rec = ip_field(ip_size) + 8;
        let body = b.len().checked_sub(GROUP_NAME_LEN + 1);
        if !matches!(body, Some(n) if n >= rec && n.is_multiple_of(rec)) {
            return Err(DecodeError::BadLength {
                what: "store targets",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let group = group16(&mut r)?;
        let mut servers = Vec::new();
        while r.remaining() > 1 {
            let ip = r.fixed(ip_field(ip_size), "storage ip")?;
            servers.push((ip, port64(&mut r, "storage port")?));
        }
        let store_path_index = r.u8("store_path_index")?;
        Ok(StoreTargets {
            group,
            servers,
            store_path_index,
        })
    }
}

/// Request of QUERY_FETCH_ONE (102), QUERY_UPDATE (103), QUERY_FETCH_ALL (105):
/// group str[16] + remote file name (rest of the body).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchQuery {
    /// Group of the file.
    pub group: String,
    /// Remote file name without the group.
    pub remote: String,
}

impl FetchQuery {
    /// 16 + name bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        out.extend_from_slice(self.remote.as_bytes());
        out
    }

    /// Requires 16 < len < 16 + 128; the tracker validates the name's shape itself.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() <= GROUP_NAME_LEN || b.len() > GROUP_NAME_LEN + MAX_REMOTE_NAME_LEN {
            return Err(DecodeError::BadLength {
                what: "fetch query",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let group = group16(&mut r)?;
        let remote = super::decode_remote_name(r.rest(), "remote file name")?;
        Ok(FetchQuery { group, remote })
    }
}

/// Reply of QUERY_FETCH_ONE (102) / QUERY_UPDATE (103): group str[16] + ip str[R-1] +
/// port u64 = 39 bytes (R = 16) or 69 (R = 46).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchTarget {
    /// Group of the file.
    pub group: String,
    /// Storage IP.
    pub ip: String,
    /// Storage port.
    pub port: u16,
}

impl FetchTarget {
    /// 16 + (R-1) + 8 bytes.
    pub fn encode(&self, ip_size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + ip_size + 7);
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        put_fixed(&mut out, &self.ip, ip_field(ip_size));
        put_u64(&mut out, u64::from(self.port));
        out
    }

    /// Accepts 39 or 69 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let ip_size = ip_size_from_len(b.len(), GROUP_NAME_LEN + 8, "fetch target")?;
        let mut r = Reader::new(b);
        Ok(FetchTarget {
            group: group16(&mut r)?,
            ip: r.fixed(ip_size - 1, "storage ip")?,
            port: port64(&mut r, "storage port")?,
        })
    }
}

/// Reply of QUERY_FETCH_ALL (105). Two incompatible layouts exist (§4.2):
/// legacy (<= 6.15.5): group[16], ip[R-1] + port u64 of the first server, then ip[R-1] of each
/// further server (no port: they share the first one's); 6.16: group[16], then ip[R-1] +
/// port u64 per server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchAll {
    /// Group of the file.
    pub group: String,
    /// Servers holding the file: (ip, port).
    pub servers: Vec<(String, u16)>,
}

impl FetchAll {
    /// Legacy layout; further servers' ports are not sent. With no servers only the group
    /// is written (a tracker answers ENOENT instead).
    pub fn encode_legacy(&self, ip_size: usize) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        for (i, (ip, port)) in self.servers.iter().enumerate() {
            put_fixed(&mut out, ip, ip_field(ip_size));
            if i == 0 {
                put_u64(&mut out, u64::from(*port));
            }
        }
        out
    }

    /// Legacy layout; every server gets the first server's port.
    #[cfg(test)]
    pub fn decode_legacy(b: &[u8], ip_size: usize) -> Result<Self, DecodeError> {
        let ip = ip_field(ip_size);
        let first = GROUP_NAME_LEN + ip + 8;
        if b.len() < first || !(b.len() - first).is_multiple_of(ip) {
            return Err(DecodeError::BadLength {
                what: "fetch all",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let group = group16(&mut r)?;
        let first_ip = r.fixed(ip, "storage ip")?;
        let port = port64(&mut r, "storage port")?;
        let mut servers = vec![(first_ip, port)];
        while r.remaining() > 0 {
            servers.push((r.fixed(ip, "storage ip")?, port));
        }
        Ok(FetchAll { group, servers })
    }

    /// 6.16 layout: 16 + n (R - 1 + 8) bytes.
    pub fn encode_v616(&self, ip_size: usize) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        for (ip, port) in &self.servers {
            put_fixed(&mut out, ip, ip_field(ip_size));
            put_u64(&mut out, u64::from(*port));
        }
        out
    }

    /// 6.16 layout; at least one server is required.
    #[cfg(test)]
    pub fn decode_v616(b: &[u8], ip_size: usize) -> Result<Self, DecodeError> {
        let rec = ip_field(ip_size) + 8;
        let body = b.len().checked_sub(GROUP_NAME_LEN);
        if !matches!(body, Some(n) if n >= rec && n.is_multiple_of(rec)) {
            return Err(DecodeError::BadLength {
                what: "fetch all",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let group = group16(&mut r)?;
        let mut servers = Vec::new();
        while r.remaining() > 0 {
            let ip = r.fixed(ip_field(ip_size), "storage ip")?;
            servers.push((ip, port64(&mut r, "storage port")?));
        }
        Ok(FetchAll { group, servers })
    }
}

/// Split `group str[16] + id` bodies (92, 93, 94): the id is the rest, read up to a NUL.
fn group_and_id(b: &[u8]) -> Result<(String, String), DecodeError> {
    let mut r = Reader::new(b);
    let group = group16(&mut r)?;
    Ok((group, fixed_str(r.rest())))
}

/// Request of LIST_STORAGE (92): group str[16] + optional storage id (or IP) of at most
/// 15 bytes; body length 16..=31.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListStorage {
    /// Group to list.
    pub group: String,
    /// Only this server, if given.
    pub id: Option<String>,
}

impl ListStorage {
    /// 16 + id bytes (id truncated to 15).
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        if let Some(id) = &self.id {
            let b = id.as_bytes();
            out.extend_from_slice(&b[..b.len().min(STORAGE_ID_LEN - 1)]);
        }
        out
    }

    /// Requires 16 <= len < 32; an empty id means "all servers".
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < GROUP_NAME_LEN || b.len() >= GROUP_NAME_LEN + STORAGE_ID_LEN {
            return Err(DecodeError::BadLength {
                what: "list storage",
                len: b.len() as u64,
            });
        }
        let (group, id) = group_and_id(b)?;
        Ok(ListStorage {
            group,
            id: (!id.is_empty()).then_some(id),
        })
    }
}

/// Request of DELETE_STORAGE (93): group str[16] + storage id (or IP); 16 < len < 32.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteStorage {
    /// Group of the server.
    pub group: String,
    /// Storage id (or IP without storage ids).
    pub id: String,
}

impl DeleteStorage {
    /// 16 + id bytes (id truncated to 15).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        let b = self.id.as_bytes();
        out.extend_from_slice(&b[..b.len().min(STORAGE_ID_LEN - 1)]);
        out
    }

    /// Requires 16 < len < 32 and a non-empty id.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() <= GROUP_NAME_LEN || b.len() >= GROUP_NAME_LEN + STORAGE_ID_LEN {
            return Err(DecodeError::BadLength {
                what: "delete storage",
                len: b.len() as u64,
            });
        }
        let (group, id) = group_and_id(b)?;
        if id.is_empty() {
            return Err(DecodeError::Invalid("storage id"));
        }
        Ok(DeleteStorage { group, id })
    }
}

/// Request of FETCH_STORAGE_IDS (69): start_index u32 + allow_empty u8 (since 6.11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchStorageIds {
    /// Index of the first id wanted.
    pub start_index: u32,
    /// With storage ids off, answer 8 zero bytes instead of EOPNOTSUPP.
    pub allow_empty: bool,
}

impl FetchStorageIds {
    /// 5 bytes (HEAD form).
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5);
        put_u32(&mut out, self.start_index);
        out.push(u8::from(self.allow_empty));
        out
    }

    /// Accepts 4 bytes (<= 6.10, some Java clients) or 5 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != 4 && b.len() != 5 {
            return Err(DecodeError::BadLength {
                what: "fetch storage ids",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let start_index = r.u32("start_index")?;
        let allow_empty = r.remaining() == 1 && r.u8("allow_empty")? != 0;
        Ok(FetchStorageIds {
            start_index,
            allow_empty,
        })
    }
}

/// Reply of FETCH_STORAGE_IDS (69): total_count u32 + current_count u32, then current_count
/// lines `"<id> <group> <host>[:<port>] [rw=...]\n"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageIdsReply {
    /// Number of ids the tracker has in total.
    pub total: u32,
    /// The lines of this chunk, without their '\n'.
    pub lines: Vec<String>,
}

impl StorageIdsReply {
    /// 8 bytes + one '\n'-terminated line per entry (current_count = lines.len()).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_u32(&mut out, self.total);
        put_u32(&mut out, self.lines.len() as u32);
        for l in &self.lines {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// The number of lines must equal current_count.
    #[cfg(test)]
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let total = r.u32("total_count")?;
        let current = r.u32("current_count")?;
        let text = String::from_utf8_lossy(r.rest());
        let lines: Vec<String> = text.split_terminator('\n').map(str::to_string).collect();
        if lines.len() as u64 != u64::from(current) {
            return Err(DecodeError::BadLength {
                what: "storage id lines",
                len: lines.len() as u64,
            });
        }
        Ok(StorageIdsReply { total, lines })
    }
}

/// Reply of PARAMETER_REQ (75): `name=value\n` lines, in order (§9.8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParameterReply(pub Vec<(String, String)>);

impl ParameterReply {
    /// One `name=value\n` line per pair.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        for (k, v) in &self.0 {
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            out.push('\n');
        }
        out.into_bytes()
    }

    /// Parse like the upstream ini reader: blank lines, `#` comments and lines without '='
    /// are skipped; keys and values are trimmed. Never fails on text; kept fallible for
    /// symmetry with the other decoders.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let text = String::from_utf8_lossy(b);
        let pairs = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Ok(ParameterReply(pairs))
    }

    /// The value of `key`, if present (first occurrence).
    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_body() {
        let b = encode_group("group1");
        assert_eq!(b.len(), 16);
        assert_eq!(decode_group(&b).unwrap(), "group1");
        assert!(decode_group(&b[..15]).is_err());
        assert!(decode_group(&[b'a'; 17]).is_err());
        assert_eq!(decode_group(&[b'g'; 16]).unwrap(), "g".repeat(16));
    }

    #[test]
    fn store_target_golden() {
        let t = StoreTarget {
            group: "group1".into(),
            ip: "192.168.0.1".into(),
            port: 23000,
            store_path_index: 0,
        };
        let b = t.encode(16);
        let mut want = Vec::new();
        want.extend_from_slice(b"group1\0\0\0\0\0\0\0\0\0\0");
        want.extend_from_slice(b"192.168.0.1\0\0\0\0");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x59, 0xd8]);
        want.push(0);
        assert_eq!(b, want);
        assert_eq!(b.len(), 40);
        assert_eq!(StoreTarget::decode(&b).unwrap(), t);
        let b70 = t.encode(46);
        assert_eq!(b70.len(), 70);
        assert_eq!(StoreTarget::decode(&b70).unwrap(), t);
        assert!(StoreTarget::decode(&b[..39]).is_err());
        assert!(StoreTarget::decode(&[0; 41]).is_err());
        assert!(StoreTarget::decode(&[]).is_err());
        // A port that does not fit in u16 is invalid.
        let mut bad = b.clone();
        bad[31] = 1;
        assert!(matches!(
            StoreTarget::decode(&bad),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn store_targets() {
        let t = StoreTargets {
            group: "g".into(),
            servers: vec![("10.0.0.1".into(), 23000), ("10.0.0.2".into(), 23001)],
            store_path_index: 3,
        };
        for r in [16, 46] {
            let b = t.encode(r);
            assert_eq!(b.len(), 16 + 2 * (r - 1 + 8) + 1);
            assert_eq!(StoreTargets::decode(&b, r).unwrap(), t);
            assert!(StoreTargets::decode(&b[..b.len() - 1], r).is_err());
        }
        let empty = StoreTargets {
            servers: vec![],
            ..t
        };
        assert!(StoreTargets::decode(&empty.encode(16), 16).is_err());
    }

    #[test]
    fn fetch_query() {
        let q = FetchQuery {
            group: "group1".into(),
            remote: "M00/00/00/abc.jpg".into(),
        };
        let b = q.encode();
        assert_eq!(FetchQuery::decode(&b).unwrap(), q);
        assert!(FetchQuery::decode(&b[..16]).is_err());
        let mut long = encode_group("g");
        long.extend_from_slice(&[b'a'; 127]);
        assert!(FetchQuery::decode(&long).is_ok());
        long.push(b'a');
        assert!(FetchQuery::decode(&long).is_err());
    }

    #[test]
    fn fetch_target() {
        let t = FetchTarget {
            group: "group1".into(),
            ip: "127.0.0.1".into(),
            port: 23000,
        };
        let b = t.encode(16);
        assert_eq!(b.len(), 39);
        assert_eq!(&b[31..39], &23000u64.to_be_bytes());
        assert_eq!(FetchTarget::decode(&b).unwrap(), t);
        assert_eq!(t.encode(46).len(), 69);
        assert_eq!(FetchTarget::decode(&t.encode(46)).unwrap(), t);
        assert!(FetchTarget::decode(&b[..38]).is_err());
    }

    #[test]
    fn fetch_all_layouts() {
        let f = FetchAll {
            group: "group1".into(),
            servers: vec![("10.0.0.1".into(), 23000), ("10.0.0.2".into(), 23000)],
        };
        let legacy = f.encode_legacy(16);
        assert_eq!(legacy.len(), 16 + 15 + 8 + 15);
        assert_eq!(FetchAll::decode_legacy(&legacy, 16).unwrap(), f);
        let new = f.encode_v616(16);
        assert_eq!(new.len(), 16 + 2 * 23);
        assert_eq!(FetchAll::decode_v616(&new, 16).unwrap(), f);
        assert!(FetchAll::decode_legacy(&new[..new.len() - 1], 16).is_err());
        assert!(FetchAll::decode_v616(&legacy, 16).is_err());
        let one = FetchAll {
            servers: vec![("10.0.0.1".into(), 23000)],
            ..f.clone()
        };
        assert_eq!(one.encode_legacy(46), one.encode_v616(46));
        assert_eq!(
            FetchAll::decode_legacy(&one.encode_legacy(46), 46).unwrap(),
            one
        );
        assert!(FetchAll::decode_legacy(&encode_group("g"), 16).is_err());
        assert!(FetchAll::decode_v616(&encode_group("g"), 16).is_err());
    }

    #[test]
    fn list_delete_storage() {
        let l = ListStorage {
            group: "group1".into(),
            id: Some("192.168.1.10".into()),
        };
        assert_eq!(ListStorage::decode(&l.encode()).unwrap(), l);
        let all = ListStorage {
            group: "group1".into(),
            id: None,
        };
        assert_eq!(all.encode().len(), 16);
        assert_eq!(ListStorage::decode(&all.encode()).unwrap(), all);
        assert!(ListStorage::decode(&[b'a'; 15]).is_err());
        assert!(ListStorage::decode(&[b'a'; 32]).is_err());
        let long = ListStorage {
            group: "g".into(),
            id: Some("x".repeat(20)),
        };
        assert_eq!(long.encode().len(), 31);

        let d = DeleteStorage {
            group: "group1".into(),
            id: "100001".into(),
        };
        assert_eq!(DeleteStorage::decode(&d.encode()).unwrap(), d);
        assert!(DeleteStorage::decode(&encode_group("group1")).is_err());
        assert!(DeleteStorage::decode(&[b'a'; 32]).is_err());
        let mut nul = encode_group("g");
        nul.push(0);
        assert_eq!(
            DeleteStorage::decode(&nul),
            Err(DecodeError::Invalid("storage id"))
        );
    }

    #[test]
    fn fetch_storage_ids() {
        let f = FetchStorageIds {
            start_index: 7,
            allow_empty: true,
        };
        assert_eq!(f.encode(), [0, 0, 0, 7, 1]);
        assert_eq!(FetchStorageIds::decode(&f.encode()).unwrap(), f);
        let old = FetchStorageIds::decode(&[0, 0, 1, 0]).unwrap();
        assert_eq!(
            old,
            FetchStorageIds {
                start_index: 256,
                allow_empty: false
            }
        );
        assert!(FetchStorageIds::decode(&[0; 3]).is_err());
        assert!(FetchStorageIds::decode(&[0; 6]).is_err());

        let r = StorageIdsReply {
            total: 3,
            lines: vec![
                "100001 group1 192.168.0.1".into(),
                "100002 group1 [::1]:23000".into(),
            ],
        };
        let b = r.encode();
        assert_eq!(&b[..8], &[0, 0, 0, 3, 0, 0, 0, 2]);
        assert_eq!(StorageIdsReply::decode(&b).unwrap(), r);
        let empty = StorageIdsReply {
            total: 0,
            lines: vec![],
        };
        assert_eq!(empty.encode(), [0; 8]);
        assert_eq!(StorageIdsReply::decode(&[0; 8]).unwrap(), empty);
        let mut lying = b.clone();
        lying[7] = 200;
        assert!(StorageIdsReply::decode(&lying).is_err());
        assert!(StorageIdsReply::decode(&[0; 7]).is_err());
    }

    #[test]
    fn parameters() {
        let p = ParameterReply(vec![
            ("use_storage_id".into(), "0".into()),
            ("reserved_storage_space".into(), "20.00%".into()),
        ]);
        let b = p.encode();
        assert_eq!(b, b"use_storage_id=0\nreserved_storage_space=20.00%\n");
        assert_eq!(ParameterReply::decode(&b).unwrap(), p);
        let messy = ParameterReply::decode(b"\n# c\n a = b \nnoeq\nk=v=w\n").unwrap();
        assert_eq!(
            messy.0,
            vec![("a".into(), "b".into()), ("k".into(), "v=w".into())]
        );
        assert_eq!(messy.get("k"), Some("v=w"));
        assert_eq!(messy.get("x"), None);
    }
}
