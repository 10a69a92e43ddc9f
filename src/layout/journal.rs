//! The on-disk format of the storage's redo journal of `durable_uploads`
//! ([`FILE_NAME`] under `base_path/data`; the engine that writes and replays
//! it is the storage's). Only std and crc32fast: bytes in, bytes out.
//!
//! A header block, then two regions that generations of records take in
//! turn. Header: magic, generation, binlog position of the generation's
//! first line, region, salt, CRC. Rounds start on block boundaries; a
//! record: magic, CRC32 of the rest, tag (generation mixed with the header's
//! salt, so no record of an older life of the file, nor one inside a file's
//! content, can pass for a current one), kind, name length, data length,
//! name, data.

/// The journal's file name under `base_path/data`.
pub const FILE_NAME: &str = "fdfs_journal.dat";
/// Header block size; rounds start on multiples of it.
pub const BLOCK: u64 = 4096;
/// First 8 bytes of the header block.
pub const HEADER_MAGIC: &[u8; 8] = b"FDFSJRN2";
/// First 4 bytes of every record.
pub const RECORD_MAGIC: u32 = 0x4644_4A52;
/// magic, crc, tag, kind, name length, data length.
pub const RECORD_HEAD: usize = 4 + 4 + 8 + 1 + 2 + 4;

/// Record kinds.
pub mod kind {
    /// The whole content of a file, named by its remote name (`M00/HH/HH/x`).
    pub const FILE: u8 = 1;
    /// A binlog line, in binlog order.
    pub const LINE: u8 = 2;
}

/// The two regions `[start, end)` of a journal file of `len` bytes.
pub fn regions(len: u64) -> [(u64, u64); 2] {
    let half = len.saturating_sub(BLOCK) / 2 / BLOCK * BLOCK;
    [(BLOCK, BLOCK + half), (BLOCK + half, BLOCK + 2 * half)]
}

/// The tag that marks records of `generation` in a journal of `salt`.
pub fn tag(salt: u64, generation: u64) -> u64 {
    // splitmix64's finaliser.
    let mut z = salt ^ generation.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The checkpoint header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The oldest generation recovery must replay.
    pub generation: u64,
    /// Where that generation's binlog lines start: the binlog was durable
    /// up to here.
    pub binlog: (u32, u64),
    /// The region (0 or 1) that holds the generation.
    pub region: u8,
    /// Random per life of the file, mixed into every record's tag.
    pub salt: u64,
}

impl Header {
    /// The whole header block (BLOCK bytes), CRC included.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(BLOCK as usize);
        b.extend_from_slice(HEADER_MAGIC);
        b.extend_from_slice(&self.generation.to_be_bytes());
        b.extend_from_slice(&self.binlog.0.to_be_bytes());
        b.extend_from_slice(&self.binlog.1.to_be_bytes());
        b.push(self.region);
        b.extend_from_slice(&self.salt.to_be_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b.resize(BLOCK as usize, 0);
        b
    }

    /// The header in `b`, if its magic, CRC and region are sound.
    pub fn decode(b: &[u8]) -> Option<Header> {
        if b.len() < 41 || &b[..8] != HEADER_MAGIC {
            return None;
        }
        let crc = u32::from_be_bytes(b[37..41].try_into().ok()?);
        if crc32fast::hash(&b[..37]) != crc || b[28] > 1 {
            return None;
        }
        Some(Header {
            generation: u64::from_be_bytes(b[8..16].try_into().ok()?),
            binlog: (
                u32::from_be_bytes(b[16..20].try_into().ok()?),
                u64::from_be_bytes(b[20..28].try_into().ok()?),
            ),
            region: b[28],
            salt: u64::from_be_bytes(b[29..37].try_into().ok()?),
        })
    }
}

/// Append one record to `out`.
pub fn encode_record(out: &mut Vec<u8>, tag: u64, kind: u8, name: &[u8], data: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&tag.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// A decoded record, borrowing from the journal bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// One of [`kind`].
    pub kind: u8,
    /// The file's remote name ([`kind::FILE`]); empty for a line.
    pub name: &'a [u8],
    /// The file's content or the binlog line.
    pub data: &'a [u8],
}

/// The length of the record at the start of `b`, from its head alone (for
/// records this process encoded).
pub fn record_len(b: &[u8]) -> usize {
    let name_len = u16::from_be_bytes([b[17], b[18]]) as usize;
    let data_len = u32::from_be_bytes([b[19], b[20], b[21], b[22]]) as usize;
    RECORD_HEAD + name_len + data_len
}

/// Decode the record at the start of `b` if it is whole, intact and of
/// `tag`; returns it and its length.
pub fn decode_record(b: &[u8], tag: u64) -> Option<(Record<'_>, usize)> {
    if b.len() < RECORD_HEAD || u32::from_be_bytes(b[0..4].try_into().ok()?) != RECORD_MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes(b[4..8].try_into().ok()?);
    if u64::from_be_bytes(b[8..16].try_into().ok()?) != tag {
        return None;
    }
    let name_len = u16::from_be_bytes([b[17], b[18]]) as usize;
    let end = record_len(b);
    if b.len() < end || crc32fast::hash(&b[8..end]) != crc {
        return None;
    }
    Some((
        Record {
            kind: b[16],
            name: &b[RECORD_HEAD..RECORD_HEAD + name_len],
            data: &b[RECORD_HEAD + name_len..end],
        },
        end,
    ))
}

/// The records of `tag` in `region` of journal bytes `b`, in order: rounds
/// start on block boundaries, and the first one that does not hold such a
/// record ends the generation.
pub fn records(b: &[u8], tag: u64, region: (u64, u64)) -> Vec<Record<'_>> {
    let end = (region.1 as usize).min(b.len());
    let mut out = Vec::new();
    let mut at = region.0 as usize;
    while at < end {
        match decode_record(&b[at..end], tag) {
            Some((r, n)) => {
                out.push(r);
                at += n;
            }
            None if !at.is_multiple_of(BLOCK as usize) => at = at.next_multiple_of(BLOCK as usize),
            None => break,
        }
    }
    out
}

/// What recovery replays from journal bytes `b` with header `h`: the records
/// of its generation, then those of the next one (written while the
/// checkpoint that would have named it was still running).
pub fn replay_records<'a>(b: &'a [u8], h: &Header) -> Vec<Record<'a>> {
    let r = regions(b.len() as u64);
    let here = h.region as usize;
    let mut out = records(b, tag(h.salt, h.generation), r[here]);
    out.extend(records(b, tag(h.salt, h.generation + 1), r[1 - here]));
    out
}

/// Re-tag `records` (encoded by this process) with `tag`, in place.
pub fn retag(records: &mut [u8], tag: u64) {
    let mut at = 0;
    while at < records.len() {
        let n = record_len(&records[at..]);
        let r = &mut records[at..at + n];
        r[8..16].copy_from_slice(&tag.to_be_bytes());
        let crc = crc32fast::hash(&r[8..]);
        r[4..8].copy_from_slice(&crc.to_be_bytes());
        at += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let t = tag(42, 7);
        let mut b = Vec::new();
        encode_record(&mut b, t, kind::FILE, b"M02/00/01/x.jpg", b"content");
        encode_record(&mut b, t, kind::LINE, b"", b"1 C M00/00/01/x.jpg\n");
        let (r, n) = decode_record(&b, t).unwrap();
        assert_eq!(
            (r.kind, r.name, r.data),
            (kind::FILE, &b"M02/00/01/x.jpg"[..], &b"content"[..])
        );
        let (r2, _) = decode_record(&b[n..], t).unwrap();
        assert_eq!(r2.data, b"1 C M00/00/01/x.jpg\n");
        assert!(decode_record(&b, tag(42, 8)).is_none(), "other generation");
        assert!(decode_record(&b, tag(43, 7)).is_none(), "other salt");
        assert!(decode_record(&b[..n - 1], t).is_none(), "torn");
        let mut bad = b.clone();
        bad[30] ^= 1;
        assert!(decode_record(&bad, t).is_none(), "crc");
        let h = Header {
            generation: 9,
            binlog: (3, 1234),
            region: 1,
            salt: 0xDEAD_BEEF,
        };
        assert_eq!(Header::decode(&h.encode()), Some(h));
        let mut e = h.encode();
        e[20] ^= 1;
        assert_eq!(Header::decode(&e), None);
    }

    /// A journal file image of `len` bytes: header `h`, then in each region
    /// line records of the given generation.
    fn image(h: &Header, len: u64, regions_recs: [(u64, &[&[u8]]); 2]) -> Vec<u8> {
        let mut b = h.encode();
        b.resize(len as usize, 0);
        for (i, (g, recs)) in regions_recs.iter().enumerate() {
            let mut out = Vec::new();
            for r in *recs {
                encode_record(&mut out, tag(h.salt, *g), kind::LINE, b"", r);
            }
            let at = regions(len)[i].0 as usize;
            b[at..at + out.len()].copy_from_slice(&out);
        }
        b
    }

    #[test]
    fn replay_takes_the_next_generation_from_the_other_region_only() {
        let h = Header {
            generation: 5,
            binlog: (0, 0),
            region: 1,
            salt: 77,
        };
        let len = BLOCK * 9;
        let data = |b: &[u8]| {
            replay_records(b, &h)
                .iter()
                .map(|r| r.data.to_vec())
                .collect::<Vec<_>>()
        };
        // Generation 5 in region 1, 6 after it in region 0.
        let b = image(&h, len, [(6, &[b"c"]), (5, &[b"a", b"b"])]);
        assert_eq!(data(&b), [b"a", b"b", b"c"]);
        // An older generation in the other region is not replayed.
        let b = image(&h, len, [(4, &[b"old"]), (5, &[b"a"])]);
        assert_eq!(data(&b), [b"a"]);
        // Nor one of another salt (an older life of the file).
        let other = Header { salt: 78, ..h };
        let mut b = image(&h, len, [(0, &[]), (5, &[b"a"])]);
        let stale = image(&other, len, [(6, &[b"stale"]), (0, &[])]);
        b[BLOCK as usize..len as usize / 2]
            .copy_from_slice(&stale[BLOCK as usize..len as usize / 2]);
        assert_eq!(data(&b), [b"a"]);
    }
}
