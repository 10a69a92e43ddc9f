//! Storage messages sent by clients: upload (11, 21, 23), delete (12), metadata (13, 15),
//! download (14), file info (22) (PROTOCOL.md §5); the appender operations' bodies are in
//! `appender`.
//!
//! Streaming requests (upload, slave upload, append, modify) carry file content after their
//! fixed fields in the same package; their `*Head::decode(prefix, pkg_len)` parses only the
//! fixed fields (plus a file name) from the first bytes and checks that `pkg_len` accounts
//! for the content exactly. A prefix of `min(pkg_len, FIXED_LEN + 127)` bytes is always
//! enough. The storage <-> storage sync messages live in `sync` (`proto::sync::X`).
//! Only std.

use super::{
    DecodeError, EXT_LEN, GROUP_NAME_LEN, MAX_REMOTE_NAME_LEN, PREFIX_LEN, Reader,
    decode_remote_name, field_len, group16, named_head_len, put_fixed, put_u64, valid_ext,
    valid_prefix,
};

/// Fixed part of UPLOAD_FILE (11) / UPLOAD_APPENDER_FILE (23).
pub const UPLOAD_HEAD_LEN: usize = 15;

/// Content length implied by `pkg_len - fixed`, which must equal the declared size.
pub(super) fn content_len(
    pkg_len: u64,
    fixed: u64,
    declared: u64,
    what: &'static str,
) -> Result<(), DecodeError> {
    match pkg_len.checked_sub(fixed) {
        Some(n) if n == declared => Ok(()),
        _ => Err(DecodeError::BadLength { what, len: pkg_len }),
    }
}

/// Read an 8-byte name length and then that many name bytes (1..=127).
pub(super) fn name_with_len(
    r: &mut Reader<'_>,
    len: u64,
    what: &'static str,
) -> Result<String, DecodeError> {
    let n = field_len(len, MAX_REMOTE_NAME_LEN, what)?;
    decode_remote_name(r.bytes(n, what)?, what)
}

/// Fixed part of UPLOAD_FILE (11) and UPLOAD_APPENDER_FILE (23): store_path_index u8 +
/// file_size u64 + ext str[6] = 15 bytes, followed by file_size content bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadHead {
    /// Store path from QUERY_STORE; 0xFF = storage chooses.
    pub store_path_index: u8,
    /// Content length.
    pub file_size: u64,
    /// Extension without the dot, may be empty.
    pub ext: String,
}

impl UploadHead {
    /// The 15 fixed bytes (content not included).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(UPLOAD_HEAD_LEN);
        out.push(self.store_path_index);
        put_u64(&mut out, self.file_size);
        put_fixed(&mut out, &self.ext, EXT_LEN);
        out
    }

    /// Parse the first 15 bytes of `prefix`; file_size must equal `pkg_len - 15` and the
    /// ext must be `[A-Za-z0-9._-]*`.
    pub fn decode(prefix: &[u8], pkg_len: u64) -> Result<Self, DecodeError> {
        let mut r = Reader::new(prefix);
        let store_path_index = r.u8("store_path_index")?;
        let file_size = r.len64("file_size")?;
        let ext = r.fixed(EXT_LEN, "file ext")?;
        content_len(pkg_len, UPLOAD_HEAD_LEN as u64, file_size, "upload package")?;
        if !valid_ext(&ext) {
            return Err(DecodeError::Invalid("file ext"));
        }
        Ok(UploadHead {
            store_path_index,
            file_size,
            ext,
        })
    }
}

/// Reply of UPLOAD_FILE (11), UPLOAD_SLAVE_FILE (21), UPLOAD_APPENDER_FILE (23),
/// REGENERATE_APPENDER_FILENAME (38), CREATE_LINK (20): group str[16] + remote name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadReply {
    /// Group of the new file.
    pub group: String,
    /// Remote file name (without the group).
    pub remote: String,
}

impl UploadReply {
    /// 16 + name bytes.
    pub fn encode(&self) -> Vec<u8> {
        FileRef {
            group: self.group.clone(),
            remote: self.remote.clone(),
        }
        .encode()
    }

    /// 16 + 1..=127 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let f = FileRef::decode(b)?;
        Ok(UploadReply {
            group: f.group,
            remote: f.remote,
        })
    }

    /// The full file id "group/remote".
    #[cfg(test)]
    pub fn file_id(&self) -> String {
        format!("{}/{}", self.group, self.remote)
    }
}

/// Body of DELETE_FILE (12), GET_METADATA (15), QUERY_FILE_INFO (22): group str[16] + remote
/// name (1..=127 bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileRef {
    /// Group of the file.
    pub group: String,
    /// Remote file name (without the group).
    pub remote: String,
}

impl FileRef {
    /// 16 + name bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + self.remote.len());
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        out.extend_from_slice(self.remote.as_bytes());
        out
    }

    /// 16 + 1..=127 bytes; a NUL in the name is invalid.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() <= GROUP_NAME_LEN || b.len() > GROUP_NAME_LEN + MAX_REMOTE_NAME_LEN {
            return Err(DecodeError::BadLength {
                what: "file reference",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let group = group16(&mut r)?;
        Ok(FileRef {
            group,
            remote: decode_remote_name(r.rest(), "remote file name")?,
        })
    }
}

/// Request of DOWNLOAD_FILE (14): file_offset u64 + download_bytes u64 (0 = to the end) +
/// group str[16] + remote name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Download {
    /// Start offset (>= 0).
    pub offset: u64,
    /// Bytes wanted; 0 = to the end of the file.
    pub length: u64,
    /// Group of the file.
    pub group: String,
    /// Remote file name.
    pub remote: String,
}

impl Download {
    /// 32 + name bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.remote.len());
        put_u64(&mut out, self.offset);
        put_u64(&mut out, self.length);
        out.extend_from_slice(
            &FileRef {
                group: self.group.clone(),
                remote: self.remote.clone(),
            }
            .encode(),
        );
        out
    }

    /// Negative offset or length (bit 63) is BadLength; the name is 1..=127 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let offset = r.len64("download offset")?;
        let length = r.len64("download bytes")?;
        let f = FileRef::decode(r.rest())?;
        Ok(Download {
            offset,
            length,
            group: f.group,
            remote: f.remote,
        })
    }
}

/// SET_METADATA op flag: 'O' (0x4F) overwrite, 'M' (0x4D) merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaOp {
    /// Replace all metadata ('O').
    Overwrite,
    /// Replace same-named entries and add new ones ('M').
    Merge,
}

impl MetaOp {
    /// The flag byte.
    pub fn byte(self) -> u8 {
        match self {
            MetaOp::Overwrite => b'O',
            MetaOp::Merge => b'M',
        }
    }

    /// The op for a flag byte, `None` for anything else.
    pub fn from_byte(b: u8) -> Option<MetaOp> {
        match b {
            b'O' => Some(MetaOp::Overwrite),
            b'M' => Some(MetaOp::Merge),
            _ => None,
        }
    }
}

/// Request of SET_METADATA (13): filename_len u64 + meta_size u64 + op_flag u8 +
/// group str[16] + filename + meta (the raw `name 0x02 value` / 0x01 encoding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetMetadata {
    /// Overwrite or merge.
    pub op: MetaOp,
    /// Group of the file.
    pub group: String,
    /// Remote file name.
    pub remote: String,
    /// Encoded metadata (see `encode_meta` / `decode_meta`).
    pub meta: Vec<u8>,
}

impl SetMetadata {
    /// Fixed part size.
    pub const FIXED_LEN: usize = 8 + 8 + 1 + GROUP_NAME_LEN;

    /// 33 + name + meta bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.remote.len() + self.meta.len());
        put_u64(&mut out, self.remote.len() as u64);
        put_u64(&mut out, self.meta.len() as u64);
        out.push(self.op.byte());
        put_fixed(&mut out, &self.group, GROUP_NAME_LEN);
        out.extend_from_slice(self.remote.as_bytes());
        out.extend_from_slice(&self.meta);
        out
    }

    /// The lengths must add up to the body exactly; a flag other than 'O'/'M' is Invalid.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let name_len = r.u64("filename_len")?;
        let meta_len = r.u64("meta_size")?;
        let flag = r.u8("op_flag")?;
        let group = group16(&mut r)?;
        let name_len = field_len(name_len, MAX_REMOTE_NAME_LEN, "filename_len")?;
        let meta_len = field_len(meta_len, r.remaining(), "meta_size")?;
        if name_len.checked_add(meta_len) != Some(r.remaining()) {
            return Err(DecodeError::BadLength {
                what: "set metadata",
                len: b.len() as u64,
            });
        }
        let op = MetaOp::from_byte(flag).ok_or(DecodeError::Invalid("metadata op flag"))?;
        let remote = decode_remote_name(r.bytes(name_len, "filename")?, "remote file name")?;
        let meta = r.rest().to_vec();
        Ok(SetMetadata {
            op,
            group,
            remote,
            meta,
        })
    }
}

/// QUERY_FILE_INFO request flag (header status byte): leave the CRC32 of a
/// file whose name does not carry it at 0 instead of reading the whole file
/// (FDFS_QUERY_FINFO_FLAGS_NOT_CALC_CRC32).
pub const QUERY_FLAG_NO_CRC32: u8 = 1;

/// Reply of QUERY_FILE_INFO (22): file_size u64 + create_timestamp u64 + crc32 u64
/// (sign-extended from 32 bits, as upstream does) + source_ip str[R] = 40 or 70 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileInfo {
    /// Current size.
    pub size: u64,
    /// File mtime.
    pub create_time: u64,
    /// CRC32 of the content.
    pub crc32: u32,
    /// IP of the storage that created the file (empty if unknown).
    pub source_ip: String,
}

impl FileInfo {
    /// 24 + R bytes.
    pub fn encode(&self, ip_size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + ip_size);
        put_u64(&mut out, self.size);
        put_u64(&mut out, self.create_time);
        // Upstream stores the crc in an int and long2buff()s it: values >= 2^31 arrive as
        // 0xFFFFFFFF........ and clients rely on that exact form.
        put_u64(&mut out, i64::from(self.crc32 as i32) as u64);
        put_fixed(&mut out, &self.source_ip, ip_size);
        out
    }

    /// Accepts 40 or 70 bytes; the crc is the low 32 bits.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != 40 && b.len() != 70 {
            return Err(DecodeError::BadLength {
                what: "file info",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        Ok(FileInfo {
            size: r.u64("file_size")?,
            create_time: r.u64("create_timestamp")?,
            crc32: r.u64("crc32")? as u32,
            source_ip: r.fixed(b.len() - 24, "source ip")?,
        })
    }
}

/// Fixed part of UPLOAD_SLAVE_FILE (21): master_filename_len u64 + file_size u64 +
/// prefix str[16] + ext str[6] + master filename, followed by file_size content bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlaveHead {
    /// Content length.
    pub file_size: u64,
    /// Slave prefix, non-empty `[A-Za-z0-9._-]`.
    pub prefix: String,
    /// Slave ext, may be empty (= no extension).
    pub ext: String,
    /// Remote name of the master (no group), 11..=127 bytes.
    pub master: String,
}

impl SlaveHead {
    /// Bytes before the master name.
    pub const FIXED_LEN: usize = 8 + 8 + PREFIX_LEN + EXT_LEN;

    /// The whole head's length (fixed part + name) from its first 8 bytes.
    pub fn head_len(prefix: &[u8]) -> Result<usize, DecodeError> {
        named_head_len(prefix, Self::FIXED_LEN, 11, "master_filename_len")
    }

    /// Fixed fields + master name (content not included).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.master.len());
        put_u64(&mut out, self.master.len() as u64);
        put_u64(&mut out, self.file_size);
        put_fixed(&mut out, &self.prefix, PREFIX_LEN);
        put_fixed(&mut out, &self.ext, EXT_LEN);
        out.extend_from_slice(self.master.as_bytes());
        out
    }

    /// Returns the head and the offset where content starts in the package body.
    pub fn decode(prefix: &[u8], pkg_len: u64) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(prefix);
        let name_len = r.u64("master_filename_len")?;
        let file_size = r.len64("file_size")?;
        let slave_prefix = r.fixed(PREFIX_LEN, "prefix name")?;
        let ext = r.fixed(EXT_LEN, "file ext")?;
        if !(11..=MAX_REMOTE_NAME_LEN as u64).contains(&name_len) {
            return Err(DecodeError::BadLength {
                what: "master_filename_len",
                len: name_len,
            });
        }
        content_len(
            pkg_len,
            Self::FIXED_LEN as u64 + name_len,
            file_size,
            "slave upload package",
        )?;
        if !valid_prefix(&slave_prefix) {
            return Err(DecodeError::Invalid("prefix name"));
        }
        if !valid_ext(&ext) {
            return Err(DecodeError::Invalid("file ext"));
        }
        let master = name_with_len(&mut r, name_len, "master filename")?;
        let head = SlaveHead {
            file_size,
            prefix: slave_prefix,
            ext,
            master,
        };
        Ok((head, Self::FIXED_LEN + name_len as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_head() {
        let h = UploadHead {
            store_path_index: 0xff,
            file_size: 5,
            ext: "jpg".into(),
        };
        let b = h.encode();
        assert_eq!(b, [0xff, 0, 0, 0, 0, 0, 0, 0, 5, b'j', b'p', b'g', 0, 0, 0]);
        assert_eq!(UploadHead::decode(&b, 20).unwrap(), h);
        let mut with_content = b.clone();
        with_content.extend_from_slice(b"hello");
        assert_eq!(UploadHead::decode(&with_content, 20).unwrap(), h);
        assert!(matches!(
            UploadHead::decode(&b, 21),
            Err(DecodeError::BadLength { .. })
        ));
        assert!(matches!(
            UploadHead::decode(&b, 3),
            Err(DecodeError::BadLength { .. })
        ));
        assert!(matches!(
            UploadHead::decode(&b[..14], 20),
            Err(DecodeError::Short { .. })
        ));
        let bad = UploadHead {
            ext: "a/b".into(),
            ..h.clone()
        };
        assert_eq!(
            UploadHead::decode(&bad.encode(), 20),
            Err(DecodeError::Invalid("file ext"))
        );
        let empty = UploadHead {
            store_path_index: 0,
            file_size: 0,
            ext: String::new(),
        };
        assert_eq!(UploadHead::decode(&empty.encode(), 15).unwrap(), empty);
        let mut neg = b.clone();
        neg[1] = 0x80;
        assert!(matches!(
            UploadHead::decode(&neg, 20),
            Err(DecodeError::BadLength { .. })
        ));
    }

    #[test]
    fn upload_reply_and_file_ref() {
        let r = UploadReply {
            group: "group1".into(),
            remote: "M00/00/00/wKgAAWVlAAAAAAAAAAAAAAAAAAA398.jpg".into(),
        };
        let b = r.encode();
        assert_eq!(b.len(), 60);
        assert_eq!(UploadReply::decode(&b).unwrap(), r);
        assert_eq!(
            r.file_id(),
            "group1/M00/00/00/wKgAAWVlAAAAAAAAAAAAAAAAAAA398.jpg"
        );
        let f = FileRef {
            group: "group1".into(),
            remote: "M00/00/00/x".into(),
        };
        assert_eq!(FileRef::decode(&f.encode()).unwrap(), f);
        assert!(FileRef::decode(&f.encode()[..16]).is_err());
        assert!(FileRef::decode(&[b'a'; 16 + 128]).is_err());
        assert!(FileRef::decode(&[b'a'; 16 + 127]).is_ok());
    }

    #[test]
    fn download() {
        let d = Download {
            offset: 10,
            length: 0,
            group: "group1".into(),
            remote: "M00/00/00/x".into(),
        };
        let b = d.encode();
        assert_eq!(&b[..16], &[0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Download::decode(&b).unwrap(), d);
        assert!(Download::decode(&b[..32]).is_err());
        assert!(Download::decode(&b[..10]).is_err());
        let mut neg = b.clone();
        neg[8] = 0xff;
        assert!(matches!(
            Download::decode(&neg),
            Err(DecodeError::BadLength { .. })
        ));
    }

    #[test]
    fn set_metadata() {
        let m = SetMetadata {
            op: MetaOp::Merge,
            group: "group1".into(),
            remote: "M00/00/00/x".into(),
            meta: b"a\x02b".to_vec(),
        };
        let b = m.encode();
        assert_eq!(b[16], b'M');
        assert_eq!(b.len(), 33 + 11 + 3);
        assert_eq!(SetMetadata::decode(&b).unwrap(), m);
        let empty = SetMetadata {
            op: MetaOp::Overwrite,
            meta: vec![],
            ..m.clone()
        };
        assert_eq!(SetMetadata::decode(&empty.encode()).unwrap(), empty);
        assert!(SetMetadata::decode(&b[..b.len() - 1]).is_err());
        let mut extra = b.clone();
        extra.push(0);
        assert!(SetMetadata::decode(&extra).is_err());
        let mut flag = b.clone();
        flag[16] = b'X';
        assert_eq!(
            SetMetadata::decode(&flag),
            Err(DecodeError::Invalid("metadata op flag"))
        );
        // Huge meta_size must not overflow or allocate.
        let mut huge = b.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            SetMetadata::decode(&huge),
            Err(DecodeError::BadLength { .. })
        ));
        let mut zero_name = b.clone();
        zero_name[..8].copy_from_slice(&0u64.to_be_bytes());
        assert!(SetMetadata::decode(&zero_name).is_err());
        assert!(SetMetadata::decode(&b[..20]).is_err());
    }

    #[test]
    fn file_info_sign_extension() {
        let f = FileInfo {
            size: 1234,
            create_time: 1_700_000_000,
            crc32: 0x9e10_ba5d,
            source_ip: "192.168.0.1".into(),
        };
        let b = f.encode(16);
        assert_eq!(b.len(), 40);
        assert_eq!(
            &b[16..24],
            &[0xff, 0xff, 0xff, 0xff, 0x9e, 0x10, 0xba, 0x5d]
        );
        assert_eq!(FileInfo::decode(&b).unwrap(), f);
        let small = FileInfo {
            crc32: 0x1234_5678,
            ..f.clone()
        };
        assert_eq!(
            &small.encode(16)[16..24],
            &[0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]
        );
        assert_eq!(f.encode(46).len(), 70);
        assert_eq!(FileInfo::decode(&f.encode(46)).unwrap(), f);
        assert!(FileInfo::decode(&b[..39]).is_err());
        assert!(FileInfo::decode(&[0; 41]).is_err());
    }

    #[test]
    fn slave_head() {
        let h = SlaveHead {
            file_size: 3,
            prefix: "_150x150".into(),
            ext: "jpg".into(),
            master: "M00/00/00/wKgAAWVlAAAAAAAAAAAAAAAAAAA398.jpg".into(),
        };
        let b = h.encode();
        let pkg = (b.len() + 3) as u64;
        assert_eq!(SlaveHead::decode(&b, pkg).unwrap(), (h.clone(), 38 + 44));
        assert!(SlaveHead::decode(&b, pkg + 1).is_err());
        assert!(matches!(
            SlaveHead::decode(&b[..50], pkg),
            Err(DecodeError::Short { .. })
        ));
        let no_prefix = SlaveHead {
            prefix: String::new(),
            ..h.clone()
        };
        assert_eq!(
            SlaveHead::decode(&no_prefix.encode(), pkg),
            Err(DecodeError::Invalid("prefix name"))
        );
        let short_master = SlaveHead {
            master: "M00/00/00/".into(),
            ..h.clone()
        };
        assert!(SlaveHead::decode(&short_master.encode(), (38 + 10 + 3) as u64).is_err());
        // The fixed part alone tells how much head follows; the master name needs 11..=127.
        assert_eq!(SlaveHead::head_len(&b[..SlaveHead::FIXED_LEN]), Ok(b.len()));
        assert!(SlaveHead::head_len(&short_master.encode()).is_err());
        let bad_ext = SlaveHead {
            ext: "j g".into(),
            ..h
        };
        assert_eq!(
            SlaveHead::decode(&bad_ext.encode(), pkg),
            Err(DecodeError::Invalid("file ext"))
        );
    }
}
