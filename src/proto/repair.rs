//! fdfs's own storage commands for scrub and anti-entropy repair (upstream has
//! none; a C storage answers them with an error, and a repairing fdfs storage
//! then leaves that peer alone).
//!
//! `FDFS_TREE_DIGEST` (202), storage to storage. Request, [`DigestQuery`]
//! (24 bytes): `group str[16]`, `store_path u8`, `depth u8`, `high u8`,
//! `low u8`, `cutoff u32` (files whose ID timestamp is later are left out on
//! both sides: replication still has them in flight). Reply:
//! * depth 0: one [`DirDigest`] per top directory `data/HH` of the path;
//! * depth 1: one per directory `data/high/LL`;
//! * depth 2: the [`Entry`] list of `data/high/low`.
//!
//! `FDFS_REPAIR` (203), a tool to a storage. Request: one byte, [`REPAIR_START`]
//! and/or [`REPAIR_VERIFY`] (0: only report). Reply: [`RepairStat`].

use super::{DecodeError, GROUP_NAME_LEN, Reader, fixed_str, put_fixed, put_u32, put_u64};

/// Depth 0: the path's top directories.
pub const DEPTH_TOP: u8 = 0;
/// Depth 1: the directories under one top directory.
pub const DEPTH_LEAVES: u8 = 1;
/// Depth 2: the files of one directory.
pub const DEPTH_FILES: u8 = 2;
/// At most this many directories per level (`subdir_count_per_path` ≤ 256).
pub const MAX_DIRS: usize = 256;
/// At most this many bytes in one directory listing (a few hundred thousand files).
pub const MAX_LISTING: usize = 64 << 20;

/// What one FDFS_TREE_DIGEST asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestQuery {
    pub group: String,
    pub store_path: u8,
    pub depth: u8,
    pub high: u8,
    pub low: u8,
    pub cutoff: u32,
}

impl DigestQuery {
    pub const LEN: usize = GROUP_NAME_LEN + 4 + 4;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        out.extend_from_slice(&[self.store_path, self.depth, self.high, self.low]);
        put_u32(&mut out, self.cutoff);
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != Self::LEN {
            return Err(DecodeError::BadLength {
                what: "tree digest query",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let q = DigestQuery {
            group: fixed_str(r.bytes(GROUP_NAME_LEN, "group")?),
            store_path: r.u8("store path")?,
            depth: r.u8("depth")?,
            high: r.u8("high")?,
            low: r.u8("low")?,
            cutoff: r.u32("cutoff")?,
        };
        if q.depth > DEPTH_FILES {
            return Err(DecodeError::Invalid("digest depth"));
        }
        Ok(q)
    }
}

/// The files under one directory, summed: how many, and the wrapping sum of
/// their [`Entry::hash`]es (so neither side needs to sort).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirDigest {
    pub files: u32,
    pub sum: u64,
}

impl DirDigest {
    pub const LEN: usize = 12;

    pub fn add(&mut self, other: DirDigest) {
        self.files = self.files.wrapping_add(other.files);
        self.sum = self.sum.wrapping_add(other.sum);
    }

    pub fn encode_list(list: &[DirDigest]) -> Vec<u8> {
        let mut out = Vec::with_capacity(list.len() * Self::LEN);
        for d in list {
            put_u32(&mut out, d.files);
            put_u64(&mut out, d.sum);
        }
        out
    }

    pub fn decode_list(b: &[u8]) -> Result<Vec<DirDigest>, DecodeError> {
        if !b.len().is_multiple_of(Self::LEN) || b.len() / Self::LEN > MAX_DIRS {
            return Err(DecodeError::BadLength {
                what: "directory digests",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let mut out = Vec::with_capacity(b.len() / Self::LEN);
        while r.remaining() > 0 {
            out.push(DirDigest {
                files: r.u32("files")?,
                sum: r.u64("sum")?,
            });
        }
        Ok(out)
    }
}

/// What kind of file a listed name is; it says what its size and CRC mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Its ID carries its size and CRC32.
    Normal = 0,
    /// An appender file: its size changes, its ID carries no CRC.
    Appender = 1,
    /// A slave file: its ID carries its master's size and CRC, not its own.
    Slave = 2,
    /// A metadata file (`name-m`); `crc` is the CRC32 of its content.
    Meta = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::Normal,
            1 => Kind::Appender,
            2 => Kind::Slave,
            3 => Kind::Meta,
            _ => return None,
        })
    }
}

/// One file of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// The file's name in its directory (no path).
    pub name: String,
    pub size: u64,
    /// For [`Kind::Normal`] the CRC32 its ID carries, for [`Kind::Meta`] the
    /// content's; 0 otherwise.
    pub crc: u32,
    /// Last modification, seconds since the epoch.
    pub mtime: u32,
}

impl Entry {
    /// What the digests sum: kind, name, size and CRC, not the mtime (a
    /// replica's mtime is when it arrived). The first 8 bytes of a SHA-1, so
    /// that every fdfs version computes the same value.
    pub fn hash(&self) -> u64 {
        use sha1::{Digest, Sha1};
        let mut h = Sha1::new();
        h.update([self.kind as u8]);
        h.update(self.name.as_bytes());
        h.update(self.size.to_be_bytes());
        h.update(self.crc.to_be_bytes());
        let d = h.finalize();
        u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
    }

    /// 1 + 1 + name + 8 + 4 + 4 bytes each.
    pub fn encode_list(list: &[Entry]) -> Vec<u8> {
        let mut out = Vec::with_capacity(list.iter().map(|e| 18 + e.name.len()).sum());
        for e in list {
            out.push(e.kind as u8);
            out.push(e.name.len() as u8);
            out.extend_from_slice(e.name.as_bytes());
            put_u64(&mut out, e.size);
            put_u32(&mut out, e.crc);
            put_u32(&mut out, e.mtime);
        }
        out
    }

    pub fn decode_list(b: &[u8]) -> Result<Vec<Entry>, DecodeError> {
        if b.len() > MAX_LISTING {
            return Err(DecodeError::BadLength {
                what: "directory listing",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        // Each entry takes at least 19 bytes, so this never over-allocates.
        let mut out = Vec::with_capacity(b.len() / 19);
        while r.remaining() > 0 {
            let kind = Kind::from_u8(r.u8("kind")?).ok_or(DecodeError::Invalid("file kind"))?;
            let n = r.u8("name length")? as usize;
            let name = std::str::from_utf8(r.bytes(n, "name")?)
                .map_err(|_| DecodeError::Invalid("name"))?;
            // Never a path: no separator, no "." or "..", nothing hidden.
            if name.is_empty() || name.starts_with('.') || !super::valid_name_chars(name) {
                return Err(DecodeError::Invalid("name"));
            }
            out.push(Entry {
                kind,
                name: name.to_string(),
                size: r.u64("size")?,
                crc: r.u32("crc")?,
                mtime: r.u32("mtime")?,
            });
        }
        Ok(out)
    }
}

/// FDFS_REPAIR request flag: start a pass now (unless one is running).
pub const REPAIR_START: u8 = 1;
/// FDFS_REPAIR request flag: that pass also reads every file (a scrub).
pub const REPAIR_VERIFY: u8 = 2;

/// A storage's scrub and repair figures, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairStat {
    /// A pass (scrub or repair) is running now.
    pub running: bool,
    /// Store paths being refilled from a peer (a replaced disk).
    pub recovering_paths: u8,
    /// Repair passes finished.
    pub passes: u64,
    /// Files and bytes the scrub has read and checked.
    pub scrubbed_files: u64,
    pub scrubbed_bytes: u64,
    /// The current scrub's position: files done and files it will check.
    pub scrub_done: u64,
    pub scrub_total: u64,
    /// Files found corrupt (content or size) and missing (a link without
    /// its content, or held by a peer and never deleted here).
    pub corrupt: u64,
    pub missing: u64,
    /// Files copied here from a peer, and deletes sent to peers.
    pub repaired: u64,
    pub deletes_sent: u64,
    /// Damaged or missing files no peer had intact.
    pub unrepairable: u64,
    /// Binlog records skipped because they do not parse.
    pub bad_binlog_records: u64,
    /// Directories compared with peers, and directories that differed.
    pub dirs_compared: u64,
    pub dirs_differing: u64,
    /// Peers left alone (C FastDFS, which has no repair command).
    pub peers_skipped: u64,
    /// When the last pass ended (seconds since the epoch; 0: never).
    pub last_pass_end: u64,
    /// In a reply that started a pass: that pass is done when `passes`
    /// reaches this (0 otherwise).
    pub done_at: u64,
    /// Bytes of FDFS_TREE_DIGEST requests and replies this storage exchanged
    /// with its peers (what comparing cost on the wire).
    pub digest_bytes: u64,
}

impl RepairStat {
    pub const LEN: usize = 2 + 17 * 8;

    fn numbers(&self) -> [u64; 17] {
        [
            self.passes,
            self.scrubbed_files,
            self.scrubbed_bytes,
            self.scrub_done,
            self.scrub_total,
            self.corrupt,
            self.missing,
            self.repaired,
            self.deletes_sent,
            self.unrepairable,
            self.bad_binlog_records,
            self.dirs_compared,
            self.dirs_differing,
            self.peers_skipped,
            self.last_pass_end,
            self.done_at,
            self.digest_bytes,
        ]
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.push(self.running as u8);
        out.push(self.recovering_paths);
        for v in self.numbers() {
            put_u64(&mut out, v);
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != Self::LEN {
            return Err(DecodeError::BadLength {
                what: "repair stat",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let running = r.u8("running")? != 0;
        let recovering_paths = r.u8("recovering paths")?;
        let mut n = [0u64; 17];
        for v in &mut n {
            *v = r.u64("figure")?;
        }
        Ok(RepairStat {
            running,
            recovering_paths,
            passes: n[0],
            scrubbed_files: n[1],
            scrubbed_bytes: n[2],
            scrub_done: n[3],
            scrub_total: n[4],
            corrupt: n[5],
            missing: n[6],
            repaired: n[7],
            deletes_sent: n[8],
            unrepairable: n[9],
            bad_binlog_records: n[10],
            dirs_compared: n[11],
            dirs_differing: n[12],
            peers_skipped: n[13],
            last_pass_end: n[14],
            done_at: n[15],
            digest_bytes: n[16],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trips_and_checks_depth() {
        let q = DigestQuery {
            group: "group1".into(),
            store_path: 1,
            depth: DEPTH_FILES,
            high: 0x0a,
            low: 0xff,
            cutoff: 1_700_000_000,
        };
        assert_eq!(DigestQuery::decode(&q.encode()).unwrap(), q);
        let mut bad = q.encode();
        bad[GROUP_NAME_LEN + 1] = 3;
        assert!(DigestQuery::decode(&bad).is_err());
        assert!(DigestQuery::decode(&bad[1..]).is_err());
    }

    #[test]
    fn lists_round_trip() {
        let d = vec![DirDigest { files: 3, sum: 9 }, DirDigest::default()];
        assert_eq!(
            DirDigest::decode_list(&DirDigest::encode_list(&d)).unwrap(),
            d
        );
        assert!(DirDigest::decode_list(&[0; 13]).is_err());
        assert!(DirDigest::decode_list(&vec![0; 257 * 12]).is_err());
        let e = vec![
            Entry {
                kind: Kind::Normal,
                name: "wKgAAmWk3JKAAAAAAAAAAAAAAAA123.jpg".into(),
                size: 10,
                crc: 0xdead_beef,
                mtime: 5,
            },
            Entry {
                kind: Kind::Meta,
                name: "wKgAAmWk3JKAAAAAAAAAAAAAAAA123.jpg-m".into(),
                size: 1,
                crc: 2,
                mtime: 3,
            },
        ];
        assert_eq!(Entry::decode_list(&Entry::encode_list(&e)).unwrap(), e);
        let mut bad = Entry::encode_list(&e);
        bad[0] = 9;
        assert!(Entry::decode_list(&bad).is_err());
        let mut slash = Entry::encode_list(&e[..1]);
        slash[2] = b'/';
        assert!(Entry::decode_list(&slash).is_err());
    }

    #[test]
    fn hash_depends_on_what_matters_only() {
        let a = Entry {
            kind: Kind::Normal,
            name: "x".into(),
            size: 1,
            crc: 2,
            mtime: 3,
        };
        let b = Entry {
            mtime: 99,
            ..a.clone()
        };
        assert_eq!(a.hash(), b.hash());
        let c = Entry {
            size: 2,
            ..a.clone()
        };
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn stat_round_trips() {
        let s = RepairStat {
            running: true,
            recovering_paths: 1,
            passes: 2,
            corrupt: 3,
            last_pass_end: 4,
            bad_binlog_records: 5,
            ..Default::default()
        };
        assert_eq!(RepairStat::decode(&s.encode()).unwrap(), s);
        assert!(RepairStat::decode(&[0; 3]).is_err());
    }
}
