//! File ids and remote filenames (PROTOCOL.md §6).
//!
//! A file id is `<group>/<remote filename>`; the remote filename of a normal file is
//! `M<idx>/<HH>/<HH>/<27 base64 chars><7-char ext part>`. The 27 chars encode 20 bytes
//! (source server, timestamp, size field, CRC32) with FastDFS's base64 variant.
//!
//! Only std and crc32fast: no filesystem access here.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::Error;

/// FastDFS base64 alphabet (index 0..63): URL-safe, as set up by fdfs_trackerd.c.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// FastDFS base64 pad character; never produced by our encoder, accepted by the decoder.
const PAD: u8 = b'.';

/// Length of the encoded 20-byte part of a name (FDFS_FILENAME_BASE64_LENGTH).
pub const NAME_BASE64_LEN: usize = 27;
/// Length of the ext part (FDFS_FILE_EXT_NAME_MAX_LEN + 1).
pub const EXT_PART_LEN: usize = 7;
/// Length of `Mxx/HH/HH/`.
pub const PATH_PREFIX_LEN: usize = 10;
/// Longest name component we accept (slave names add a prefix and ext to the master's).
pub const MAX_NAME_LEN: usize = 100;
/// Longest group name (FDFS_GROUP_NAME_MAX_LEN).
pub const GROUP_NAME_MAX_LEN: usize = 16;

/// Size-field flag of an appender file (FDFS_APPENDER_FILE_SIZE, 2^58).
pub const APPENDER_FLAG: u64 = 1 << 58;
/// Size-field flag of a file stored inside a trunk file (FDFS_TRUNK_FILE_MARK_SIZE, 2^59).
pub const TRUNK_FLAG: u64 = 1 << 59;
/// Bit 63 marks a size field whose low 32 bits are the size and high bits random.
const RANDOM_MARK: u64 = 1 << 63;

/// Encodes with FastDFS's base64 variant: alphabet `A-Z a-z 0-9 - _`, no padding, no line
/// breaks (20 bytes -> 27 chars).
pub fn base64_encode(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len().div_ceil(3) * 4);
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // A chunk of k bytes yields k+1 significant characters.
        for i in 0..=chunk.len() {
            let idx = (n >> (18 - 6 * i)) & 0x3F;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

fn b64_value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes FastDFS base64: accepts missing padding and trailing `.` pad characters.
/// Returns `None` on a character outside the alphabet or an impossible length.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let end = bytes.iter().rposition(|&c| c != PAD).map_or(0, |p| p + 1);
    let body = &bytes[..end];
    if bytes.len() - end > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= b64_value(c)? << (18 - 6 * i);
        }
        // k characters carry k-1 whole bytes.
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// Bytes 0..4 of the encoded name: who stored the file first (PROTOCOL.md §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// IPv4 address, the 4 octets in network order.
    Ip(Ipv4Addr),
    /// Numeric storage id 1..=16777215, written little-endian.
    Id(u32),
}

impl Source {
    fn to_bytes(self) -> [u8; 4] {
        match self {
            Source::Ip(ip) => ip.octets(),
            Source::Id(id) => id.to_le_bytes(),
        }
    }

    /// Decode rule of §6.1: a little-endian value in 1..=16777215 is an id, else an IPv4.
    fn from_bytes(b: [u8; 4]) -> Source {
        let v = u32::from_le_bytes(b);
        if (1..=16_777_215).contains(&v) {
            Source::Id(v)
        } else {
            Source::Ip(Ipv4Addr::from(b))
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Ip(ip) => write!(f, "{ip}"),
            Source::Id(id) => write!(f, "{id}"),
        }
    }
}

/// The 20 bytes behind the 27 base64 chars of a name (PROTOCOL.md §6.1):
/// source u32 (see [`Source`]), timestamp u32 BE, size field u64 BE, crc32 u32 BE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameInfo {
    /// Storage that created the file.
    pub source: Source,
    /// Unix time (mtime after the write, or the upload start for trunk files).
    pub timestamp: u32,
    /// Raw size field with its random bits and appender/trunk flags.
    pub size_field: u64,
    /// CRC32 of the content at upload time (0 for appender files).
    pub crc32: u32,
}

impl NameInfo {
    /// The 20 raw bytes.
    pub fn to_bytes(self) -> [u8; 20] {
        let mut raw = [0u8; 20];
        raw[0..4].copy_from_slice(&self.source.to_bytes());
        raw[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        raw[8..16].copy_from_slice(&self.size_field.to_be_bytes());
        raw[16..20].copy_from_slice(&self.crc32.to_be_bytes());
        raw
    }

    /// Decodes the 20 raw bytes.
    pub fn from_bytes(raw: &[u8; 20]) -> NameInfo {
        let u32_at = |i: usize| [raw[i], raw[i + 1], raw[i + 2], raw[i + 3]];
        let mut size = [0u8; 8];
        size.copy_from_slice(&raw[8..16]);
        NameInfo {
            source: Source::from_bytes(u32_at(0)),
            timestamp: u32::from_be_bytes(u32_at(4)),
            size_field: u64::from_be_bytes(size),
            crc32: u32::from_be_bytes(u32_at(16)),
        }
    }

    /// The 27-char base64 form.
    pub fn encode(&self) -> String {
        base64_encode(&self.to_bytes())
    }

    /// Parses exactly 27 base64 chars.
    pub fn decode(s27: &str) -> Result<NameInfo, Error> {
        if s27.len() != NAME_BASE64_LEN {
            return Err(Error::BadName("encoded part must be 27 chars"));
        }
        let raw = base64_decode(s27).ok_or(Error::BadName("bad base64 in name"))?;
        let raw: [u8; 20] = raw
            .as_slice()
            .try_into()
            .map_err(|_| Error::BadName("bad base64 length in name"))?;
        Ok(NameInfo::from_bytes(&raw))
    }

    /// Real file size: the low 32 bits when bit 63 is set, else the whole field.
    pub fn file_size(&self) -> u64 {
        if self.size_field & RANDOM_MARK != 0 {
            self.size_field & 0xFFFF_FFFF
        } else {
            self.size_field
        }
    }

    /// Appender file (size-field bit 58).
    pub fn is_appender(&self) -> bool {
        self.size_field & APPENDER_FLAG != 0
    }

    /// Stored inside a trunk file (size-field bit 59).
    pub fn is_trunk(&self) -> bool {
        self.size_field & TRUNK_FLAG != 0
    }
}

/// Random high word of a size field: bit 31 set, 23 random bits (COMBINE_RAND_FILE_SIZE).
fn rand_high(rand: u32) -> u64 {
    u64::from((rand & 0x7F_FFFF) | 0x8000_0000) << 32
}

/// Size field of a normal file (§6.1 table): random high word when `size < 2^32`, else
/// the raw size.
pub fn normal_size_field(size: u64, rand: u32) -> u64 {
    if size < (1 << 32) {
        rand_high(rand) | size
    } else {
        size
    }
}

/// Size field of an appender file: random high word, size 0, bit 58 set.
pub fn appender_size_field(rand: u32) -> u64 {
    rand_high(rand) | APPENDER_FLAG
}

/// The 7-char ext part (§6.4): `7 - 1 - ext.len()` decimal digits taken from `rand`, then
/// `.ext`; 7 digits when `ext` is empty. `ext` must already be validated (len <= 6).
pub fn ext_part(ext: &str, rand: u32) -> String {
    let ext = if ext.len() >= EXT_PART_LEN {
        &ext[..EXT_PART_LEN - 1]
    } else {
        ext
    };
    let ndigits = if ext.is_empty() {
        EXT_PART_LEN
    } else {
        EXT_PART_LEN - 1 - ext.len()
    };
    // The low decimal digits of a u32 are close enough to uniform for name uniqueness.
    let digits = format!("{:07}", rand % 10_000_000);
    let mut out = String::with_capacity(EXT_PART_LEN);
    out.push_str(&digits[EXT_PART_LEN - ndigits..]);
    if !ext.is_empty() {
        out.push('.');
        out.push_str(ext);
    }
    out
}

/// A parsed remote filename `M<idx>/<high>/<low>/<name>` (PROTOCOL.md §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteName {
    /// Store path index (the two hex digits after `M`).
    pub store_index: u8,
    /// First directory level.
    pub high: u8,
    /// Second directory level.
    pub low: u8,
    /// File name inside the leaf directory; validated to be a single safe component.
    pub name: String,
}

fn upper_hex_byte(s: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    Some(digit(s[0])? << 4 | digit(s[1])?)
}

/// Checks the leaf name: 1..=100 chars of `[A-Za-z0-9._-]`, no leading '.', no "..".
/// This is stricter than upstream on purpose: the name becomes a path component.
fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::BadName("empty file name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::BadName("file name too long"));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err(Error::BadName("bad character in file name"));
    }
    if name.starts_with('.') || name.contains("..") {
        return Err(Error::BadName("dots not allowed there in file name"));
    }
    Ok(())
}

impl RemoteName {
    /// Parses `"M00/0A/3F/<name>"`: store index, 2 upper-case hex digits each, then a
    /// name of 1..=100 chars of `[A-Za-z0-9._-]`, not starting with '.', without "..".
    /// Anything else is `BadName`, so the result never maps outside `data/`.
    pub fn parse(remote: &str) -> Result<RemoteName, Error> {
        let b = remote.as_bytes();
        if b.len() > PATH_PREFIX_LEN + MAX_NAME_LEN {
            return Err(Error::BadName("remote filename too long"));
        }
        if b.len() <= PATH_PREFIX_LEN {
            return Err(Error::BadName("remote filename too short"));
        }
        if b[0] != b'M' || b[3] != b'/' || b[6] != b'/' || b[9] != b'/' {
            return Err(Error::BadName(
                "remote filename must look like Mxx/HH/HH/name",
            ));
        }
        let store_index = upper_hex_byte(&b[1..3]).ok_or(Error::BadName("bad store path index"))?;
        let high = upper_hex_byte(&b[4..6]).ok_or(Error::BadName("bad first directory"))?;
        let low = upper_hex_byte(&b[7..9]).ok_or(Error::BadName("bad second directory"))?;
        // The prefix is ASCII, so index 10 is a char boundary.
        let name = &remote[PATH_PREFIX_LEN..];
        check_name(name)?;
        Ok(RemoteName {
            store_index,
            high,
            low,
            name: name.to_string(),
        })
    }

    /// Builds a name from parts; the caller provides a name made by this module.
    pub fn new(store_index: u8, high: u8, low: u8, name: String) -> RemoteName {
        RemoteName {
            store_index,
            high,
            low,
            name,
        }
    }

    /// `M<idx>/<HH>/<HH>/<name>` with upper-case hex.
    pub fn as_string(&self) -> String {
        format!(
            "M{:02X}/{:02X}/{:02X}/{}",
            self.store_index, self.high, self.low, self.name
        )
    }

    /// Decodes the 20 bytes carried by the first 27 chars of the name.
    pub fn info(&self) -> Result<NameInfo, Error> {
        let head = self
            .name
            .get(..NAME_BASE64_LEN)
            .ok_or(Error::BadName("name shorter than 27 chars"))?;
        NameInfo::decode(head)
    }

    /// A normal file: exactly the 27 + 7 characters of a generated name, not
    /// an appender. Only such a name carries the CRC32 of the whole content
    /// and the time of its last change; a slave whose name comes out short
    /// (no ext) is not one, although upstream's length rule thinks so.
    pub fn is_normal(&self) -> bool {
        self.name.len() == NAME_BASE64_LEN + EXT_PART_LEN
            && self.info().is_ok_and(|i| !i.is_appender() && !i.is_trunk())
    }

    /// Path relative to the store path root: `data/HH/HH/<name>`.
    pub fn rel_path(&self) -> PathBuf {
        let mut p = PathBuf::from("data");
        p.push(format!("{:02X}", self.high));
        p.push(format!("{:02X}", self.low));
        p.push(&self.name);
        p
    }
}

impl fmt::Display for RemoteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

/// Checks a group name: 1..=16 chars of `[A-Za-z0-9]`.
pub fn is_valid_group_name(group: &str) -> bool {
    !group.is_empty()
        && group.len() <= GROUP_NAME_MAX_LEN
        && group.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Splits `"group1/M00/..."` into `("group1", "M00/...")`. The group must be
/// `[A-Za-z0-9]{1,16}`; the remote part is checked by [`RemoteName::parse`], not here.
pub fn split_file_id(file_id: &str) -> Result<(&str, &str), Error> {
    let (group, remote) = file_id
        .split_once('/')
        .ok_or(Error::BadName("file id has no '/'"))?;
    if !is_valid_group_name(group) {
        return Err(Error::BadName("bad group name in file id"));
    }
    if remote.is_empty() {
        return Err(Error::BadName("empty remote filename in file id"));
    }
    Ok((group, remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Size field of a file stored in a trunk file: random high word | size | bit 59.
    fn trunk_size_field(size: u32, rand: u32) -> u64 {
        rand_high(rand) | u64::from(size) | TRUNK_FLAG
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const IP100: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 100);

    /// PROTOCOL.md §6.6, all four rows.
    #[test]
    fn golden_vectors() {
        let content = b"hello fastdfs\n";
        // The name's CRC32 field is zlib's CRC32 of the content (PROTOCOL.md §6.3).
        assert_eq!(crc32fast::hash(content), 0x0e10_ba5d);
        let rows = [
            (
                NameInfo {
                    source: Source::Ip(IP100),
                    timestamp: 1_700_000_000,
                    size_field: normal_size_field(14, 0x0012_3456),
                    crc32: 0x0e10_ba5d,
                },
                "c0a80164 6553f100 80123456 0000000e 0e10ba5d",
                "wKgBZGVT8QCAEjRWAAAADg4Qul0",
            ),
            (
                NameInfo {
                    source: Source::Ip(IP100),
                    timestamp: 1_700_000_000,
                    size_field: appender_size_field(0x0012_3456),
                    crc32: 0x0e10_ba5d,
                },
                "c0a80164 6553f100 84123456 00000000 0e10ba5d",
                "wKgBZGVT8QCEEjRWAAAAAA4Qul0",
            ),
            (
                NameInfo {
                    source: Source::Id(100_001),
                    timestamp: 1_700_000_000,
                    size_field: normal_size_field(14, 0x8012_3456),
                    crc32: 0x0e10_ba5d,
                },
                "a1860100 6553f100 80123456 0000000e 0e10ba5d",
                "oYYBAGVT8QCAEjRWAAAADg4Qul0",
            ),
            (
                NameInfo {
                    source: Source::Ip(Ipv4Addr::new(192, 168, 1, 101)),
                    timestamp: 1_700_000_010,
                    size_field: normal_size_field(2048, 0x0065_4321),
                    crc32: 0x1234_abcd,
                },
                "c0a80165 6553f10a 80654321 00000800 1234abcd",
                "wKgBZWVT8QqAZUMhAAAIABI0q80",
            ),
        ];
        for (info, raw, text) in rows {
            assert_eq!(info.to_bytes().to_vec(), hex(raw));
            assert_eq!(info.encode(), text);
            assert_eq!(NameInfo::decode(text).unwrap(), info);
        }
        let normal = NameInfo::decode("wKgBZGVT8QCAEjRWAAAADg4Qul0").unwrap();
        assert_eq!(normal.file_size(), 14);
        assert!(!normal.is_appender() && !normal.is_trunk());
        let app = NameInfo::decode("wKgBZGVT8QCEEjRWAAAAAA4Qul0").unwrap();
        assert_eq!(app.file_size(), 0);
        assert!(app.is_appender());
        assert_eq!(app.size_field, 0x8412_3456_0000_0000);
    }

    #[test]
    fn full_remote_filename_example() {
        let info = NameInfo {
            source: Source::Ip(IP100),
            timestamp: 1_700_000_000,
            size_field: normal_size_field(14, 0x0012_3456),
            crc32: 0x0e10_ba5d,
        };
        let name = format!("{}{}", info.encode(), ext_part("txt", 123_456_421));
        let r = RemoteName::new(0, 0, 1, name);
        let s = r.as_string();
        assert_eq!(s, "M00/00/01/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt");
        assert_eq!(r.to_string(), s);
        let fid = format!("group1/{s}");
        assert_eq!(fid, "group1/M00/00/01/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt");
        let (g, rest) = split_file_id(&fid).unwrap();
        assert_eq!(g, "group1");
        let p = RemoteName::parse(rest).unwrap();
        assert_eq!(p, r);
        assert_eq!(p.info().unwrap(), info);
        assert_eq!(
            p.rel_path(),
            PathBuf::from("data/00/01/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt")
        );
    }

    #[test]
    fn base64_round_trip_many_lengths() {
        let mut seed = 0x1234_5678u32;
        for len in 0..200usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let enc = base64_encode(&data);
            assert_eq!(enc.len(), (len * 4).div_ceil(3), "len {len}");
            assert!(!enc.contains('.') && !enc.contains('='));
            assert_eq!(base64_decode(&enc).unwrap(), data, "len {len}");
            // Padded with '.' decodes the same.
            let padded = format!("{enc}{}", ".".repeat((4 - enc.len() % 4) % 4));
            assert_eq!(base64_decode(&padded).unwrap(), data, "len {len}");
        }
        assert_eq!(base64_encode(&[0xFB, 0xFF]), "-_8");
        assert!(base64_decode("ab+c").is_none());
        assert!(base64_decode("ab/c").is_none());
        assert!(base64_decode("abcde").is_none());
        assert!(base64_decode("a\0cd").is_none());
        assert!(NameInfo::decode("wKgBZGVT8QCAEjRWAAAADg4Qul").is_err());
        assert!(NameInfo::decode("wKgBZGVT8QCAEjRWAAAADg4Qu+0").is_err());
    }

    #[test]
    fn source_decode_rule() {
        assert_eq!(
            Source::from_bytes([0xa1, 0x86, 0x01, 0x00]),
            Source::Id(100_001)
        );
        assert_eq!(
            Source::from_bytes([0xff, 0xff, 0xff, 0x00]),
            Source::Id(16_777_215)
        );
        assert_eq!(
            Source::from_bytes([0, 0, 0, 0]),
            Source::Ip(Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(
            Source::from_bytes([10, 0, 0, 5]),
            Source::Ip(Ipv4Addr::new(10, 0, 0, 5))
        );
        assert_eq!(Source::Id(100_001).to_string(), "100001");
    }

    #[test]
    fn size_fields() {
        let v = normal_size_field(5, 0xFFFF_FFFF);
        assert_eq!(v >> 55, 0x100, "bit 63 set, bits 55..62 clear");
        assert_eq!(v & 0xFFFF_FFFF, 5);
        let big = 5u64 << 32;
        assert_eq!(normal_size_field(big, 7), big);
        let info = |size_field| NameInfo {
            source: Source::Id(1),
            timestamp: 0,
            size_field,
            crc32: 0,
        };
        assert_eq!(info(big).file_size(), big);
        let t = info(trunk_size_field(300, 9));
        assert!(t.is_trunk() && !t.is_appender());
        assert_eq!(t.file_size(), 300);
    }

    #[test]
    fn ext_parts() {
        assert_eq!(ext_part("", 1234), "0001234");
        assert_eq!(ext_part("txt", 1_000_421), "421.txt");
        assert_eq!(ext_part("jpeg", 99), "99.jpeg");
        assert_eq!(ext_part("abcdef", 5), ".abcdef");
        for r in [0, 1, u32::MAX, 4_000_000_000] {
            for e in ["", "a", "ab", "abc", "abcd", "abcde", "abcdef"] {
                assert_eq!(ext_part(e, r).len(), 7);
            }
        }
    }

    #[test]
    fn parse_rejects_bad_names() {
        let bad = [
            "",
            "../",
            "M00/00/00/..",
            "M00/00/00/.",
            "M00/00/00/a/b",
            "M00/00/00/",
            "M00/0a/00/abc",
            "M00/00/ff/abc",
            "M0G/00/00/abc",
            "m00/00/00/abc",
            "M00/00/00/ab\0c",
            "M00/00/00/.hidden",
            "M00/00/00/a..b",
            "/M00/00/00/abc",
            "/etc/passwd",
            "M00/00/00//abc",
            "M00\\00/00/abc",
            "M00/00/00/abc def",
            "M00/00/00/ab\u{e9}c",
            "M00/00/00/a\\b",
            "M00-00-00-abc",
        ];
        for s in bad {
            assert!(RemoteName::parse(s).is_err(), "{s:?} accepted");
        }
        let long = format!("M00/00/00/{}", "a".repeat(101));
        assert!(RemoteName::parse(&long).is_err());
        let max = format!("M00/00/00/{}", "a".repeat(100));
        assert!(RemoteName::parse(&max).is_ok());
        assert!(RemoteName::parse(&"x".repeat(100_000)).is_err());
        assert_eq!(
            RemoteName::parse("M0A/FF/3C/a.b_c-d").unwrap().store_index,
            10
        );
        for err in [RemoteName::parse("../"), RemoteName::parse("M00/00/00/..")] {
            assert!(matches!(err, Err(Error::BadName(_))));
        }
    }

    #[test]
    fn rel_path_never_escapes() {
        for s in [
            "M00/00/00/abc",
            "M01/FF/FF/a.b",
            "M00/10/20/x-y_z.txt",
            "M00/00/00/a.b.c",
        ] {
            let r = RemoteName::parse(s).unwrap();
            let p = r.rel_path();
            assert!(
                p.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            );
            assert!(!p.to_string_lossy().contains(".."));
            assert_eq!(p.components().count(), 4);
            assert_eq!(r.as_string(), s);
        }
    }

    #[test]
    fn split_file_ids() {
        assert_eq!(split_file_id("g/M00/x").unwrap(), ("g", "M00/x"));
        for bad in [
            "",
            "group1",
            "/M00/00/00/a",
            "group_1/M00",
            "g1/",
            &format!("{}/x", "a".repeat(17)),
        ] {
            assert!(split_file_id(bad).is_err(), "{bad:?}");
        }
        assert!(split_file_id(&format!("{}/x", "a".repeat(16))).is_ok());
    }
}
