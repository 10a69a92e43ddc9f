//! fdfs's own storage command `FDFS_DEDUP_STAT` (201): what dedup saves on a
//! storage, or whether one file shares its content. Upstream has no such
//! command (its dedup state lives in FastDHT); a C storage answers it with an
//! error, which clients take as "no dedup there".
//!
//! Request: empty (the storage's figures) or a [`super::FileRef`] (one file).
//! Response to an empty request: [`DedupStat`], 33 bytes. To a file:
//! [`FileDedup`]: `refs u64` (how many files share the content, 0 when the file
//! is not deduplicated) + the remote name of the content's source (may be
//! empty).

use super::{DecodeError, Reader, put_u64};

/// A storage's dedup figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupStat {
    /// `check_file_duplicate` is on.
    pub enabled: bool,
    /// Distinct contents kept.
    pub contents: u64,
    /// Files whose content is kept once (links).
    pub links: u64,
    /// Files sharing a content with an earlier file.
    pub shared_files: u64,
    /// Bytes not stored because of that.
    pub saved_bytes: u64,
}

impl DedupStat {
    pub const LEN: usize = 1 + 4 * 8;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.push(self.enabled as u8);
        for v in [
            self.contents,
            self.links,
            self.shared_files,
            self.saved_bytes,
        ] {
            put_u64(&mut out, v);
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != Self::LEN {
            return Err(DecodeError::BadLength {
                what: "dedup stat",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        Ok(DedupStat {
            enabled: r.u8("enabled")? != 0,
            contents: r.u64("contents")?,
            links: r.u64("links")?,
            shared_files: r.u64("shared files")?,
            saved_bytes: r.u64("saved bytes")?,
        })
    }
}

/// Whether one file shares its content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileDedup {
    /// Files (this one included) backed by the same stored content; 0: the
    /// file is not deduplicated.
    pub refs: u64,
    /// Remote name of the stored content.
    pub source: String,
}

impl FileDedup {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.source.len());
        put_u64(&mut out, self.refs);
        out.extend_from_slice(self.source.as_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < 8 || b.len() > 8 + super::MAX_REMOTE_NAME_LEN {
            return Err(DecodeError::BadLength {
                what: "file dedup",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        let refs = r.u64("refs")?;
        let source = std::str::from_utf8(r.rest())
            .map_err(|_| DecodeError::Invalid("source name"))?
            .to_string();
        Ok(FileDedup { refs, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = DedupStat {
            enabled: true,
            contents: 1,
            links: 100,
            shared_files: 99,
            saved_bytes: 99 << 20,
        };
        assert_eq!(DedupStat::decode(&s.encode()), Ok(s));
        assert!(DedupStat::decode(&[0; 5]).is_err());
        let f = FileDedup {
            refs: 3,
            source: "M00/00/00/abc".into(),
        };
        assert_eq!(FileDedup::decode(&f.encode()), Ok(f));
        assert!(FileDedup::decode(&[0; 3]).is_err());
        assert!(FileDedup::decode(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff]).is_err());
    }
}
