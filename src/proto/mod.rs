//! FastDFS V6 wire format: the 10-byte package header, every command code, the errno
//! status table, and one encode/decode pair per message body (PROTOCOL.md §1-§6, §9, §11).
//!
//! This module owns bytes only. It must not depend on sockets, files, threads, clocks or any
//! other fdfs module: callers hand it a body slice and get typed values back (or a
//! [`DecodeError`]), and hand it values to get bytes. Every decoder checks lengths before it
//! reads, never panics on peer input and never allocates from an unchecked length.
//!
//! Integers are big-endian; fixed-width strings are NUL padded and read up to the first NUL
//! (lossy UTF-8), exactly like the C structs of upstream FastDFS.

pub mod appender;
pub mod cluster_stat;
mod cmd;
pub mod dedup;
pub mod join;
pub mod peer;
#[cfg(test)]
mod props;
pub mod repair;
pub mod report;
pub mod stat;
pub mod status;
pub mod storage;
pub mod storage_status;
pub mod sync;
pub mod tracker;

pub use appender::*;
pub use cmd::Cmd;
pub use storage::*;
pub use tracker::*;

use std::fmt;

/// Size of the package header: `pkg_len u64` + `cmd u8` + `status u8` (tracker_proto.h: TrackerHeader).
pub const HEADER_LEN: usize = 10;
/// FDFS_PROTO_PKG_LEN_SIZE: width of every "8-byte" integer field.
pub const PKG_LEN_SIZE: usize = 8;
/// FDFS_GROUP_NAME_MAX_LEN: group name field width (some structs reserve 17, see `GROUP17_LEN`).
pub const GROUP_NAME_LEN: usize = 16;
/// Group name field in stat and join structs (16 + NUL).
pub const GROUP17_LEN: usize = 17;
/// FDFS_STORAGE_ID_MAX_SIZE: storage id field width.
pub const STORAGE_ID_LEN: usize = 16;
/// IPV4_ADDRESS_SIZE ("255.255.255.255" + NUL); the default `response_ip_addr_size`.
pub const IPV4_ADDRESS_SIZE: usize = 16;
/// IP_ADDRESS_SIZE (= IPV6_ADDRESS_SIZE since 6.11): JOIN, Brief, REPORT_IP_CHANGED.
pub const IP_ADDRESS_SIZE: usize = 46;
/// FDFS_MAX_IP_PORT_SIZE: "host:port" text fields in cluster-stat replies (46 + 6).
pub const MAX_IP_PORT_SIZE: usize = 52;
/// FDFS_VERSION_SIZE since 6.12 (6 before).
pub const VERSION_SIZE: usize = 8;
/// FDFS_VERSION_SIZE before 6.12.
pub const LEGACY_VERSION_SIZE: usize = 6;
/// FDFS_DOMAIN_NAME_MAX_SIZE: only in pre-6.13 structs.
pub const DOMAIN_NAME_MAX_SIZE: usize = 128;
/// FDFS_FILE_EXT_NAME_MAX_LEN: ext field in upload requests.
pub const EXT_LEN: usize = 6;
/// FDFS_FILE_PREFIX_MAX_LEN: slave prefix field.
pub const PREFIX_LEN: usize = 16;
/// Longest remote file name a request may carry (file name buffers are 128 bytes with NUL).
pub const MAX_REMOTE_NAME_LEN: usize = 127;
/// FDFS_MAX_META_NAME_LEN: longer names are truncated when parsed.
pub const MAX_META_NAME_LEN: usize = 64;
/// FDFS_MAX_META_VALUE_LEN: longer values are truncated when parsed.
pub const MAX_META_VALUE_LEN: usize = 256;
/// FDFS_RECORD_SEPERATOR: between metadata records.
pub const META_RECORD_SEP: u8 = 0x01;
/// FDFS_FIELD_SEPERATOR: between a metadata name and its value.
pub const META_FIELD_SEP: u8 = 0x02;
/// FDFS_MAX_TRACKERS.
pub const MAX_TRACKERS: usize = 16;
/// Response command byte (TRACKER_PROTO_CMD_RESP = STORAGE_PROTO_CMD_RESP).
pub const RESP_CMD: u8 = 100;

/// The 10-byte header in front of every request and response (PROTOCOL.md §1.3).
///
/// `pkg_len` is the body length only. On the wire it is a signed i64; a value with bit 63 set
/// is rejected by [`Header::decode`]. Upper limits per command are the server's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Body length in bytes (header excluded).
    pub pkg_len: u64,
    /// Command code in requests; [`RESP_CMD`] in responses.
    pub cmd: u8,
    /// 0 in requests (except the documented flag uses); errno in responses.
    pub status: u8,
}

impl Header {
    /// A request header with status 0.
    pub fn request(cmd: Cmd, pkg_len: u64) -> Header {
        Header {
            pkg_len,
            cmd: cmd as u8,
            status: 0,
        }
    }

    /// A response header: cmd is always 100, because the Node and Java clients insist on it.
    pub fn response(status: u8, pkg_len: u64) -> Header {
        Header {
            pkg_len,
            cmd: RESP_CMD,
            status,
        }
    }

    /// The header's 10 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&self.pkg_len.to_be_bytes());
        b[8] = self.cmd;
        b[9] = self.status;
        b
    }

    /// Parse the first 10 bytes of `b`. Extra bytes are ignored.
    pub fn decode(b: &[u8]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(b);
        let pkg_len = r.len64("header pkg_len")?;
        let cmd = r.u8("header cmd")?;
        let status = r.u8("header status")?;
        Ok(Header {
            pkg_len,
            cmd,
            status,
        })
    }

    /// The command code as a [`Cmd`], if known.
    #[cfg(test)]
    pub fn command(&self) -> Option<Cmd> {
        Cmd::from_u8(self.cmd)
    }
}

/// Why a body could not be decoded. Servers answer EINVAL for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The body ended before field `what`: `need` bytes were wanted, `got` remained.
    Short {
        what: &'static str,
        need: usize,
        got: usize,
    },
    /// A length (body or length field) that the message does not allow.
    BadLength { what: &'static str, len: u64 },
    /// A field value that the message does not allow.
    Invalid(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short { what, need, got } => {
                write!(f, "{what}: need {need} bytes, got {got}")
            }
            DecodeError::BadLength { what, len } => write!(f, "{what}: bad length {len}"),
            DecodeError::Invalid(what) => write!(f, "invalid {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Append a big-endian u64 (FastDFS long2buff).
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append a big-endian u32 (FastDFS int2buff).
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append `s` as a fixed `width`-byte field: truncated if longer, NUL padded if shorter.
pub fn put_fixed(out: &mut Vec<u8>, s: &str, width: usize) {
    let b = s.as_bytes();
    let n = b.len().min(width);
    out.extend_from_slice(&b[..n]);
    out.resize(out.len() + (width - n), 0);
}

/// Text of a fixed field: bytes up to the first NUL, lossy UTF-8.
pub fn fixed_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Cursor over a body for decoding; every read checks the remaining length first.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let got = self.remaining();
        if got < n {
            return Err(DecodeError::Short { what, need: n, got });
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.pos..];
        self.pos = self.b.len();
        s
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.bytes(1, what)?[0])
    }

    /// A big-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A big-endian u64 (raw; may be a negative i64 on the wire).
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A big-endian i64.
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(self.u64(what)? as i64)
    }

    /// An 8-byte length/size/offset field: negative on the wire (bit 63 set) is BadLength.
    pub fn len64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let v = self.u64(what)?;
        if v > i64::MAX as u64 {
            return Err(DecodeError::BadLength { what, len: v });
        }
        Ok(v)
    }

    /// A fixed `width`-byte NUL-padded string.
    pub fn fixed(&mut self, width: usize, what: &'static str) -> Result<String, DecodeError> {
        Ok(fixed_str(self.bytes(width, what)?))
    }

    /// Fail with BadLength unless everything was read.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError::BadLength {
                what,
                len: self.b.len() as u64,
            });
        }
        Ok(())
    }
}

/// Encode metadata: `name 0x02 value` records joined by 0x01, no trailing separator (§5.7).
pub fn encode_meta(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(META_RECORD_SEP);
        }
        out.extend_from_slice(n.as_bytes());
        out.push(META_FIELD_SEP);
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Decode metadata like upstream fdfs_split_metadata: names are cut to 64 bytes and values to
/// 256; a record without 0x02 has an empty value. Empty records (e.g. from a trailing 0x01)
/// are skipped, because an entry with an empty name cannot be addressed by any client.
pub fn decode_meta(b: &[u8]) -> Vec<(String, String)> {
    b.split(|&c| c == META_RECORD_SEP)
        .filter(|rec| !rec.is_empty())
        .map(|rec| {
            let (name, value) = match rec.iter().position(|&c| c == META_FIELD_SEP) {
                Some(i) => (&rec[..i], &rec[i + 1..]),
                None => (rec, &rec[rec.len()..]),
            };
            let name = &name[..name.len().min(MAX_META_NAME_LEN)];
            let value = &value[..value.len().min(MAX_META_VALUE_LEN)];
            (
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            )
        })
        .collect()
}

/// True if every char is one upstream allows in ext and prefix names: `[A-Za-z0-9._-]`.
pub fn valid_name_chars(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A valid upload ext: at most 6 bytes of `[A-Za-z0-9._-]`, may be empty.
pub fn valid_ext(s: &str) -> bool {
    s.len() <= EXT_LEN && valid_name_chars(s)
}

/// A valid slave prefix: 1..=16 bytes of `[A-Za-z0-9._-]`.
pub fn valid_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= PREFIX_LEN && valid_name_chars(s)
}

/// A valid group name: 1..=16 bytes of `[A-Za-z0-9]`.
pub fn valid_group_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= GROUP_NAME_LEN && s.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Read a variable-length remote file name (no group) taking all of `b`: 1..=127 bytes, no
/// NUL. Only the length is checked here; the storage validates the name's shape itself.
pub fn decode_remote_name(b: &[u8], what: &'static str) -> Result<String, DecodeError> {
    if b.is_empty() || b.len() > MAX_REMOTE_NAME_LEN {
        return Err(DecodeError::BadLength {
            what,
            len: b.len() as u64,
        });
    }
    if b.contains(&0) {
        return Err(DecodeError::Invalid(what));
    }
    Ok(String::from_utf8_lossy(b).into_owned())
}

/// Body of commands that carry only a group (104, 107, 90, 108): exactly 16 bytes.
pub(crate) fn group16(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    r.fixed(GROUP_NAME_LEN, "group name")
}

/// Length of an 8-byte length field as usize, rejecting values that cannot fit in the
/// body that is left (so callers never allocate or slice from an unchecked length).
pub(crate) fn field_len(v: u64, max: usize, what: &'static str) -> Result<usize, DecodeError> {
    if v > max as u64 {
        return Err(DecodeError::BadLength { what, len: v });
    }
    Ok(v as usize)
}

/// The length of a whole streamed head whose fixed part (`fixed_len` bytes) starts with the
/// file name length u64 and is followed by the name: a server reads the fixed part, then
/// knows how much more head to read. Only the first 8 bytes of `prefix` are looked at; a
/// name length outside `min..=127` is BadLength.
pub(crate) fn named_head_len(
    prefix: &[u8],
    fixed_len: usize,
    min: u64,
    what: &'static str,
) -> Result<usize, DecodeError> {
    let n = Reader::new(prefix).u64(what)?;
    if !(min..=MAX_REMOTE_NAME_LEN as u64).contains(&n) {
        return Err(DecodeError::BadLength { what, len: n });
    }
    Ok(fixed_len + n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_golden() {
        let h = Header::request(Cmd::UploadFile, 0x0102);
        assert_eq!(h.encode(), [0, 0, 0, 0, 0, 0, 1, 2, 11, 0]);
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
        let r = Header::response(status::ENOENT, 0);
        assert_eq!(r.encode(), [0, 0, 0, 0, 0, 0, 0, 0, 100, 2]);
        assert_eq!(Header::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn header_limits() {
        assert_eq!(
            Header::decode(&[0; 9]),
            Err(DecodeError::Short {
                what: "header status",
                need: 1,
                got: 0
            })
        );
        assert!(matches!(
            Header::decode(&[0; 3]),
            Err(DecodeError::Short { .. })
        ));
        let big = Header::request(Cmd::UploadFile, 1 << 62);
        assert_eq!(Header::decode(&big.encode()).unwrap().pkg_len, 1 << 62);
        let neg = Header {
            pkg_len: 1 << 63,
            cmd: 11,
            status: 0,
        };
        assert!(matches!(
            Header::decode(&neg.encode()),
            Err(DecodeError::BadLength { .. })
        ));
        let neg1 = Header {
            pkg_len: u64::MAX,
            cmd: 11,
            status: 0,
        };
        assert!(matches!(
            Header::decode(&neg1.encode()),
            Err(DecodeError::BadLength { .. })
        ));
        // Extra bytes after the header are ignored.
        let mut b = Header::request(Cmd::ActiveTest, 0).encode().to_vec();
        b.push(7);
        assert_eq!(Header::decode(&b).unwrap().command(), Some(Cmd::ActiveTest));
    }

    #[test]
    fn fixed_fields() {
        let mut v = Vec::new();
        put_fixed(&mut v, "group1", 16);
        assert_eq!(v.len(), 16);
        assert_eq!(&v[..7], b"group1\0");
        let mut w = Vec::new();
        put_fixed(&mut w, "abcdefghijklmnopqrstuvwxyz", 16);
        assert_eq!(w, b"abcdefghijklmnop");
        assert_eq!(Reader::new(&w).fixed(16, "g").unwrap(), "abcdefghijklmnop");
        assert_eq!(Reader::new(&v).fixed(16, "g").unwrap(), "group1");
        assert_eq!(fixed_str(b"a\xffb\0c"), "a\u{fffd}b");
    }

    #[test]
    fn reader_checks() {
        let mut r = Reader::new(&[0, 0, 0, 5, 1]);
        assert_eq!(r.u32("x").unwrap(), 5);
        assert_eq!(r.remaining(), 1);
        assert_eq!(
            r.u64("y"),
            Err(DecodeError::Short {
                what: "y",
                need: 8,
                got: 1
            })
        );
        assert_eq!(r.rest(), &[1]);
        assert_eq!(r.remaining(), 0);
        assert!(r.finish("z").is_ok());
        let mut r = Reader::new(&[0xff; 8]);
        assert!(matches!(r.len64("l"), Err(DecodeError::BadLength { .. })));
    }

    #[test]
    fn meta_round_trip() {
        let pairs = vec![
            ("width".to_string(), "100".to_string()),
            ("k".into(), "".into()),
        ];
        let b = encode_meta(&pairs);
        assert_eq!(b, b"width\x02100\x01k\x02");
        assert_eq!(decode_meta(&b), pairs);
        assert!(decode_meta(b"").is_empty());
        assert!(encode_meta(&[]).is_empty());
        assert_eq!(decode_meta(b"novalue"), vec![("novalue".into(), "".into())]);
        assert_eq!(
            decode_meta(b"a\x02b\x01\x01"),
            vec![("a".into(), "b".into())]
        );
        // A value may contain 0x02; only the first one splits.
        assert_eq!(
            decode_meta(b"a\x02b\x02c"),
            vec![("a".into(), "b\u{2}c".into())]
        );
        let long = format!("{}\x02{}", "n".repeat(100), "v".repeat(300));
        let d = decode_meta(long.as_bytes());
        assert_eq!(d[0].0.len(), 64);
        assert_eq!(d[0].1.len(), 256);
    }

    #[test]
    fn name_validation() {
        assert!(valid_ext(""));
        assert!(valid_ext("jpg"));
        assert!(valid_ext("tar.gz"));
        assert!(!valid_ext("toolong"));
        assert!(!valid_ext("a/b"));
        assert!(!valid_ext("a b"));
        assert!(valid_prefix("_150x150"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("a/"));
        assert!(valid_group_name("group1"));
        assert!(valid_group_name("G0123456789abcde"));
        assert!(!valid_group_name("G0123456789abcdef"));
        assert!(!valid_group_name(""));
        assert!(!valid_group_name("group_1"));
    }

    #[test]
    fn remote_names() {
        assert_eq!(
            decode_remote_name(b"M00/00/00/a", "n").unwrap(),
            "M00/00/00/a"
        );
        assert!(decode_remote_name(b"", "n").is_err());
        assert!(decode_remote_name(&[b'a'; 128], "n").is_err());
        assert!(decode_remote_name(&[b'a'; 127], "n").is_ok());
        assert_eq!(
            decode_remote_name(b"a\0b", "n"),
            Err(DecodeError::Invalid("n"))
        );
    }

    #[test]
    fn error_display() {
        let e = DecodeError::Short {
            what: "group",
            need: 16,
            got: 3,
        };
        assert_eq!(e.to_string(), "group: need 16 bytes, got 3");
        assert_eq!(
            DecodeError::BadLength {
                what: "body",
                len: 5
            }
            .to_string(),
            "body: bad length 5"
        );
        assert_eq!(DecodeError::Invalid("flag").to_string(), "invalid flag");
    }
}
