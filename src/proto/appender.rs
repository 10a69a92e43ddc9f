//! Bodies of the appender operations clients send a storage: APPEND_FILE (24),
//! MODIFY_FILE (34), TRUNCATE_FILE (36) (PROTOCOL.md §5). Streaming heads work as in
//! `storage`. Only std.

use super::storage::{content_len, name_with_len};
use super::{DecodeError, MAX_REMOTE_NAME_LEN, Reader, field_len, named_head_len, put_u64};

/// Fixed part of APPEND_FILE (24): appender_filename_len u64 + file_size u64 + filename,
/// followed by file_size content bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendHead {
    /// Remote name of the appender file (no group).
    pub remote: String,
    /// Bytes to append.
    pub file_size: u64,
}

impl AppendHead {
    /// Bytes before the file name.
    pub const FIXED_LEN: usize = 16;

    /// The whole head's length (fixed part + name) from its first 8 bytes.
    pub fn head_len(prefix: &[u8]) -> Result<usize, DecodeError> {
        named_head_len(prefix, Self::FIXED_LEN, 1, "appender_filename_len")
    }

    /// Fixed fields + name (content not included).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.remote.len());
        put_u64(&mut out, self.remote.len() as u64);
        put_u64(&mut out, self.file_size);
        out.extend_from_slice(self.remote.as_bytes());
        out
    }

    /// Returns the head and the offset where content starts. The name is 1..=127 bytes;
    /// whether it is an appender name is the storage's check.
    pub fn decode(prefix: &[u8], pkg_len: u64) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(prefix);
        let name_len = r.u64("appender_filename_len")?;
        let file_size = r.len64("file_size")?;
        let n = field_len(name_len, MAX_REMOTE_NAME_LEN, "appender_filename_len")?;
        content_len(
            pkg_len,
            (Self::FIXED_LEN + n) as u64,
            file_size,
            "append package",
        )?;
        let remote = name_with_len(&mut r, name_len, "appender filename")?;
        Ok((AppendHead { remote, file_size }, Self::FIXED_LEN + n))
    }
}

/// Fixed part of MODIFY_FILE (34): appender_filename_len u64 + file_offset u64 +
/// modify_size u64 + filename, followed by modify_size content bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModifyHead {
    /// Remote name of the appender file (no group).
    pub remote: String,
    /// Where the write starts.
    pub offset: u64,
    /// Bytes to write.
    pub size: u64,
}

impl ModifyHead {
    /// Bytes before the file name.
    pub const FIXED_LEN: usize = 24;

    /// The whole head's length (fixed part + name) from its first 8 bytes.
    pub fn head_len(prefix: &[u8]) -> Result<usize, DecodeError> {
        named_head_len(prefix, Self::FIXED_LEN, 1, "appender_filename_len")
    }

    /// Fixed fields + name (content not included).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.remote.len());
        put_u64(&mut out, self.remote.len() as u64);
        put_u64(&mut out, self.offset);
        put_u64(&mut out, self.size);
        out.extend_from_slice(self.remote.as_bytes());
        out
    }

    /// Returns the head and the offset where content starts.
    pub fn decode(prefix: &[u8], pkg_len: u64) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(prefix);
        let name_len = r.u64("appender_filename_len")?;
        let offset = r.len64("file_offset")?;
        let size = r.len64("modify_size")?;
        let n = field_len(name_len, MAX_REMOTE_NAME_LEN, "appender_filename_len")?;
        content_len(
            pkg_len,
            (Self::FIXED_LEN + n) as u64,
            size,
            "modify package",
        )?;
        let remote = name_with_len(&mut r, name_len, "appender filename")?;
        Ok((
            ModifyHead {
                remote,
                offset,
                size,
            },
            Self::FIXED_LEN + n,
        ))
    }
}

/// Request of TRUNCATE_FILE (36): appender_filename_len u64 + truncated_file_size u64 +
/// filename (the whole body).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Truncate {
    /// Remote name of the appender file (no group).
    pub remote: String,
    /// New size.
    pub new_size: u64,
}

impl Truncate {
    /// 16 + name bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.remote.len());
        put_u64(&mut out, self.remote.len() as u64);
        put_u64(&mut out, self.new_size);
        out.extend_from_slice(self.remote.as_bytes());
        out
    }

    /// The body must be exactly 16 + name length.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let name_len = r.u64("appender_filename_len")?;
        let new_size = r.len64("truncated_file_size")?;
        if name_len != r.remaining() as u64 {
            return Err(DecodeError::BadLength {
                what: "truncate body",
                len: b.len() as u64,
            });
        }
        Ok(Truncate {
            remote: name_with_len(&mut r, name_len, "appender filename")?,
            new_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_modify_truncate() {
        let remote = "M00/00/00/wKgAAWVlAAAAAAAAAAAAAAAAAAA398.txt".to_string();
        let a = AppendHead {
            remote: remote.clone(),
            file_size: 7,
        };
        let b = a.encode();
        assert_eq!(
            AppendHead::decode(&b, 16 + 44 + 7).unwrap(),
            (a.clone(), 60)
        );
        assert!(AppendHead::decode(&b, 16 + 44 + 6).is_err());
        assert!(AppendHead::decode(&b[..40], 16 + 44 + 7).is_err());
        let mut long = b.clone();
        long[..8].copy_from_slice(&200u64.to_be_bytes());
        assert!(matches!(
            AppendHead::decode(&long, 1000),
            Err(DecodeError::BadLength { .. })
        ));
        // head_len: from the first 8 bytes; truncated, oversized and empty names refused.
        assert_eq!(AppendHead::head_len(&b[..AppendHead::FIXED_LEN]), Ok(60));
        assert_eq!(AppendHead::head_len(&b[..8]), Ok(60));
        assert!(matches!(
            AppendHead::head_len(&b[..7]),
            Err(DecodeError::Short { .. })
        ));
        assert_eq!(
            AppendHead::head_len(&long),
            Err(DecodeError::BadLength {
                what: "appender_filename_len",
                len: 200
            })
        );
        let mut max = b.clone();
        max[..8].copy_from_slice(&127u64.to_be_bytes());
        assert_eq!(AppendHead::head_len(&max), Ok(16 + 127));
        max[..8].copy_from_slice(&128u64.to_be_bytes());
        assert!(AppendHead::head_len(&max).is_err());
        assert!(AppendHead::head_len(&[0; 16]).is_err());

        let m = ModifyHead {
            remote: remote.clone(),
            offset: 5,
            size: 2,
        };
        let b = m.encode();
        assert_eq!(ModifyHead::decode(&b, 24 + 44 + 2).unwrap(), (m, 68));
        assert!(ModifyHead::decode(&b, 24 + 44).is_err());
        assert_eq!(ModifyHead::head_len(&b[..ModifyHead::FIXED_LEN]), Ok(68));
        assert!(ModifyHead::head_len(&[0; 24]).is_err());

        let t = Truncate {
            remote,
            new_size: 0,
        };
        let b = t.encode();
        assert_eq!(Truncate::decode(&b).unwrap(), t);
        assert!(Truncate::decode(&b[..b.len() - 1]).is_err());
        let mut extra = b.clone();
        extra.push(b'x');
        assert!(Truncate::decode(&extra).is_err());
    }
}
