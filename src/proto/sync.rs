//! Storage <-> storage replication messages (PROTOCOL.md §11): REPORT_SERVER_ID (9),
//! SYNC_CREATE/UPDATE_FILE (16/18), SYNC_DELETE_FILE (17), SYNC_APPEND/MODIFY_FILE (25/35),
//! SYNC_TRUNCATE_FILE (37), SYNC_CREATE_LINK / SYNC_RENAME_FILE (19/40) and the
//! FETCH_ONE_PATH_BINLOG (26) request. Re-exported by `storage`. Only std.
//!
//! Streaming heads (16/18, 25/35) decode from a prefix of the body like the upload heads:
//! `min(pkg_len, FIXED_LEN + 127)` bytes are always enough.

use super::{
    DecodeError, GROUP_NAME_LEN, MAX_REMOTE_NAME_LEN, Reader, STORAGE_ID_LEN, decode_remote_name,
    field_len, group16, named_head_len, put_fixed, put_u32, put_u64,
};

fn name_field(r: &mut Reader<'_>, len: u64, what: &'static str) -> Result<String, DecodeError> {
    let n = field_len(len, MAX_REMOTE_NAME_LEN, what)?;
    decode_remote_name(r.bytes(n, what)?, what)
}

fn check_pkg(pkg_len: u64, expect: u64, what: &'static str) -> Result<(), DecodeError> {
    if pkg_len != expect {
        return Err(DecodeError::BadLength { what, len: pkg_len });
    }
    Ok(())
}

/// REPORT_SERVER_ID (9) body: the sender's storage_id str[16].
pub fn encode_report_server_id(id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(STORAGE_ID_LEN);
    put_fixed(&mut out, id, STORAGE_ID_LEN);
    out
}

/// REPORT_SERVER_ID (9): exactly 16 bytes, non-empty id.
pub fn decode_report_server_id(b: &[u8]) -> Result<String, DecodeError> {
    if b.len() != STORAGE_ID_LEN {
        return Err(DecodeError::BadLength {
            what: "report server id",
            len: b.len() as u64,
        });
    }
    let id = Reader::new(b).fixed(STORAGE_ID_LEN, "storage id")?;
    if id.is_empty() {
        return Err(DecodeError::Invalid("storage id"));
    }
    Ok(id)
}

/// Fixed part of SYNC_CREATE_FILE (16) / SYNC_UPDATE_FILE (18): filename_len u64 +
/// file_size u64 + timestamp u32 + group str[16] + filename, then file_size content bytes
/// unless the request header status is non-zero (EEXIST: "no content sent").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncCreateHead {
    /// Remote name incl. `M00/`.
    pub remote: String,
    /// Size of the file (content length when sent).
    pub file_size: u64,
    /// Binlog record timestamp (= source mtime).
    pub timestamp: u32,
    /// Group; must be the receiver's.
    pub group: String,
}

impl SyncCreateHead {
    /// Bytes before the file name.
    pub const FIXED_LEN: usize = 8 + 8 + 4 + GROUP_NAME_LEN;

    /// The whole head's length (fixed part + name) from its first 8 bytes.
    pub fn head_len(prefix: &[u8]) -> Result<usize, DecodeError> {
        named_head_len(prefix, Self::FIXED_LEN, 1, "filename_len")
    }

    /// Fixed fields + name (content not included).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.remote.len());
        put_u64(&mut out, self.remote.len() as u64);
        put_u64(&mut out, self.file_size);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        out.extend_from_slice(self.remote.as_bytes());
        out
    }

    /// `with_content` = request header status was 0. pkg_len must be exactly
    /// 36 + name + (file_size if content is sent). Returns the head and where content starts.
    pub fn decode(
        prefix: &[u8],
        pkg_len: u64,
        with_content: bool,
    ) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(prefix);
        let name_len = r.u64("filename_len")?;
        let file_size = r.len64("file_size")?;
        let timestamp = r.u32("timestamp")?;
        let group = group16(&mut r)?;
        let n = field_len(name_len, MAX_REMOTE_NAME_LEN, "filename_len")?;
        let content = if with_content { file_size } else { 0 };
        let head = (Self::FIXED_LEN + n) as u64;
        check_pkg(pkg_len, head.saturating_add(content), "sync create package")?;
        let remote = name_field(&mut r, name_len, "filename")?;
        Ok((
            SyncCreateHead {
                remote,
                file_size,
                timestamp,
                group,
            },
            Self::FIXED_LEN + n,
        ))
    }
}

/// SYNC_DELETE_FILE (17): timestamp u32 + group str[16] + filename (rest of the body).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncDelete {
    /// Binlog record timestamp.
    pub timestamp: u32,
    /// Group.
    pub group: String,
    /// Remote name.
    pub remote: String,
}

impl SyncDelete {
    /// 20 + name bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.remote.len());
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        out.extend_from_slice(self.remote.as_bytes());
        out
    }

    /// 20 + 1..=127 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let timestamp = r.u32("timestamp")?;
        let group = group16(&mut r)?;
        Ok(SyncDelete {
            timestamp,
            group,
            remote: decode_remote_name(r.rest(), "filename")?,
        })
    }
}

/// Fixed part of SYNC_APPEND_FILE (25) and SYNC_MODIFY_FILE (35): filename_len u64 +
/// start_offset u64 + length u64 + timestamp u32 + group str[16] + filename, then `length`
/// data bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncWriteHead {
    /// Remote name.
    pub remote: String,
    /// Where the data goes.
    pub offset: u64,
    /// Data length.
    pub length: u64,
    /// Binlog record timestamp.
    pub timestamp: u32,
    /// Group.
    pub group: String,
}

impl SyncWriteHead {
    /// Bytes before the file name.
    pub const FIXED_LEN: usize = 8 + 8 + 8 + 4 + GROUP_NAME_LEN;

    /// The whole head's length (fixed part + name) from its first 8 bytes.
    pub fn head_len(prefix: &[u8]) -> Result<usize, DecodeError> {
        named_head_len(prefix, Self::FIXED_LEN, 1, "filename_len")
    }

    /// Fixed fields + name (data not included).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.remote.len());
        put_u64(&mut out, self.remote.len() as u64);
        put_u64(&mut out, self.offset);
        put_u64(&mut out, self.length);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        out.extend_from_slice(self.remote.as_bytes());
        out
    }

    /// pkg_len must be exactly 44 + name + length. Returns the head and where data starts.
    pub fn decode(prefix: &[u8], pkg_len: u64) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(prefix);
        let name_len = r.u64("filename_len")?;
        let offset = r.len64("start_offset")?;
        let length = r.len64("length")?;
        let timestamp = r.u32("timestamp")?;
        let group = group16(&mut r)?;
        let n = field_len(name_len, MAX_REMOTE_NAME_LEN, "filename_len")?;
        check_pkg(
            pkg_len,
            ((Self::FIXED_LEN + n) as u64).saturating_add(length),
            "sync write package",
        )?;
        let remote = name_field(&mut r, name_len, "filename")?;
        Ok((
            SyncWriteHead {
                remote,
                offset,
                length,
                timestamp,
                group,
            },
            Self::FIXED_LEN + n,
        ))
    }
}

/// SYNC_TRUNCATE_FILE (37): filename_len u64 + old_file_size u64 + new_file_size u64 +
/// timestamp u32 + group str[16] + filename (the whole body).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncTruncate {
    /// Remote name.
    pub remote: String,
    /// Size the destination must have for the truncate to apply.
    pub old_size: u64,
    /// New size.
    pub new_size: u64,
    /// Binlog record timestamp.
    pub timestamp: u32,
    /// Group.
    pub group: String,
}

impl SyncTruncate {
    /// 44 + name bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(44 + self.remote.len());
        put_u64(&mut out, self.remote.len() as u64);
        put_u64(&mut out, self.old_size);
        put_u64(&mut out, self.new_size);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        out.extend_from_slice(self.remote.as_bytes());
        out
    }

    /// The body must be exactly 44 + name length.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let name_len = r.u64("filename_len")?;
        let old_size = r.len64("old_file_size")?;
        let new_size = r.len64("new_file_size")?;
        let timestamp = r.u32("timestamp")?;
        let group = group16(&mut r)?;
        if name_len != r.remaining() as u64 {
            return Err(DecodeError::BadLength {
                what: "sync truncate",
                len: b.len() as u64,
            });
        }
        let remote = name_field(&mut r, name_len, "filename")?;
        Ok(SyncTruncate {
            remote,
            old_size,
            new_size,
            timestamp,
            group,
        })
    }
}

/// SYNC_CREATE_LINK (19) and SYNC_RENAME_FILE (40): dest_filename_len u64 +
/// src_filename_len u64 + timestamp u32 + group str[16] + dest + src (the whole body).
/// 19 makes `dest` a symlink to `src`; 40 renames `src` to `dest`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncLink {
    /// New name (link or rename target).
    pub dest: String,
    /// Existing name.
    pub src: String,
    /// Binlog record timestamp.
    pub timestamp: u32,
    /// Group.
    pub group: String,
}

impl SyncLink {
    /// 36 + both names.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(36 + self.dest.len() + self.src.len());
        put_u64(&mut out, self.dest.len() as u64);
        put_u64(&mut out, self.src.len() as u64);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        out.extend_from_slice(self.dest.as_bytes());
        out.extend_from_slice(self.src.as_bytes());
        out
    }

    /// The body must be exactly 36 + both name lengths.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let dest_len = r.u64("dest_filename_len")?;
        let src_len = r.u64("src_filename_len")?;
        let timestamp = r.u32("timestamp")?;
        let group = group16(&mut r)?;
        let d = field_len(dest_len, MAX_REMOTE_NAME_LEN, "dest_filename_len")?;
        let s = field_len(src_len, MAX_REMOTE_NAME_LEN, "src_filename_len")?;
        if d + s != r.remaining() {
            return Err(DecodeError::BadLength {
                what: "sync link",
                len: b.len() as u64,
            });
        }
        let dest = name_field(&mut r, dest_len, "dest filename")?;
        let src = name_field(&mut r, src_len, "src filename")?;
        Ok(SyncLink {
            dest,
            src,
            timestamp,
            group,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "M00/00/00/wKgAAWVlAAAAAAAAAAAAAAAAAAA398.jpg";

    #[test]
    fn report_server_id() {
        let b = encode_report_server_id("100001");
        assert_eq!(b.len(), 16);
        assert_eq!(decode_report_server_id(&b).unwrap(), "100001");
        assert!(decode_report_server_id(&b[..15]).is_err());
        assert!(decode_report_server_id(&[0; 16]).is_err());
    }

    #[test]
    fn sync_create() {
        let h = SyncCreateHead {
            remote: NAME.into(),
            file_size: 10,
            timestamp: 1_700_000_000,
            group: "group1".into(),
        };
        let b = h.encode();
        assert_eq!(b.len(), 36 + 44);
        assert_eq!(
            SyncCreateHead::decode(&b, 90, true).unwrap(),
            (h.clone(), 80)
        );
        assert_eq!(
            SyncCreateHead::decode(&b, 80, false).unwrap(),
            (h.clone(), 80)
        );
        assert!(SyncCreateHead::decode(&b, 80, true).is_err());
        assert!(SyncCreateHead::decode(&b, 90, false).is_err());
        assert!(SyncCreateHead::decode(&b[..60], 90, true).is_err());
        let mut huge = b.clone();
        huge[8..16].copy_from_slice(&(i64::MAX as u64).to_be_bytes());
        assert!(SyncCreateHead::decode(&huge, 90, true).is_err());
        assert_eq!(
            SyncCreateHead::head_len(&b[..SyncCreateHead::FIXED_LEN]),
            Ok(80)
        );
        assert!(SyncCreateHead::head_len(&b[..7]).is_err());
        let mut long = b.clone();
        long[..8].copy_from_slice(&128u64.to_be_bytes());
        assert!(SyncCreateHead::head_len(&long).is_err());
        assert!(SyncCreateHead::head_len(&[0; 36]).is_err());
    }

    #[test]
    fn sync_delete() {
        let d = SyncDelete {
            timestamp: 5,
            group: "group1".into(),
            remote: NAME.into(),
        };
        assert_eq!(SyncDelete::decode(&d.encode()).unwrap(), d);
        assert!(SyncDelete::decode(&d.encode()[..20]).is_err());
        assert!(SyncDelete::decode(&[0; 10]).is_err());
    }

    #[test]
    fn sync_write() {
        let h = SyncWriteHead {
            remote: NAME.into(),
            offset: 100,
            length: 5,
            timestamp: 9,
            group: "group1".into(),
        };
        let b = h.encode();
        assert_eq!(SyncWriteHead::decode(&b, 44 + 44 + 5).unwrap(), (h, 88));
        assert!(SyncWriteHead::decode(&b, 44 + 44 + 4).is_err());
        assert_eq!(
            SyncWriteHead::head_len(&b[..SyncWriteHead::FIXED_LEN]),
            Ok(88)
        );
        assert!(SyncWriteHead::head_len(&b[..4]).is_err());
        assert!(SyncWriteHead::head_len(&[0; 44]).is_err());
    }

    #[test]
    fn sync_truncate() {
        let t = SyncTruncate {
            remote: NAME.into(),
            old_size: 10,
            new_size: 3,
            timestamp: 9,
            group: "group1".into(),
        };
        let b = t.encode();
        assert_eq!(b.len(), 44 + 44);
        assert_eq!(SyncTruncate::decode(&b).unwrap(), t);
        assert!(SyncTruncate::decode(&b[..87]).is_err());
    }

    #[test]
    fn sync_link() {
        let l = SyncLink {
            dest: format!("{NAME}_s"),
            src: NAME.into(),
            timestamp: 1,
            group: "group1".into(),
        };
        let b = l.encode();
        assert_eq!(b.len(), 36 + 46 + 44);
        assert_eq!(SyncLink::decode(&b).unwrap(), l);
        assert!(SyncLink::decode(&b[..b.len() - 1]).is_err());
        let mut big = b.clone();
        big[..8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            SyncLink::decode(&big),
            Err(DecodeError::BadLength { .. })
        ));
    }
}
