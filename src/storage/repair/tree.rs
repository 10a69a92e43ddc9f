//! A store path's files as the scrub and anti-entropy see them: which names
//! are files of the group (and of what kind), one directory's listing, and
//! the digests of every directory of a path.

use crate::layout::{NameInfo, RemoteName, StorePath};
use crate::proto::repair::{DirDigest, Entry, Kind};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A name found in `data/high/low`, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub kind: Kind,
    pub remote: RemoteName,
    /// What the first 27 characters carry (for a metadata file: its file's).
    pub info: NameInfo,
}

impl Named {
    /// The remote name of the file itself (a metadata file's is its file's
    /// plus `-m`).
    pub fn remote_string(&self) -> String {
        self.remote.as_string()
    }

    /// The size and CRC32 the ID promises: only a normal file's ID does.
    pub fn promised(&self) -> Option<(u64, u32)> {
        (self.kind == Kind::Normal).then(|| (self.info.file_size(), self.info.crc32))
    }
}

/// What `name` in directory `high/low` of store path `index` is; `None` for
/// anything that is no file of the group (temporary and hidden files, trunk
/// files, names this storage would refuse).
pub fn classify(index: u8, high: u8, low: u8, name: &str) -> Option<Named> {
    let (base, meta) = match name.strip_suffix("-m") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let remote = RemoteName::parse(&format!("M{index:02X}/{high:02X}/{low:02X}/{base}")).ok()?;
    let info = remote.info().ok()?;
    if info.is_trunk() {
        return None;
    }
    let kind = if meta {
        Kind::Meta
    } else if info.is_appender() {
        Kind::Appender
    } else if remote.is_normal() {
        Kind::Normal
    } else {
        Kind::Slave
    };
    let remote = match meta {
        true => RemoteName::new(index, high, low, name.to_string()),
        false => remote,
    };
    Some(Named { kind, remote, info })
}

/// The listing of `data/high/low` of `sp`: every file of the group whose ID
/// time is at most `cutoff`, with its size (a link's content's), and for a
/// metadata file the CRC32 of its content. A link whose content is gone is
/// left out (it is missing). Sorted by name.
pub fn list_dir(sp: &StorePath, high: u8, low: u8, cutoff: u32) -> io::Result<Vec<Entry>> {
    let dir = sp
        .data_dir()
        .join(format!("{high:02X}"))
        .join(format!("{low:02X}"));
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    };
    let mut out = Vec::new();
    for de in rd {
        let de = de?;
        let Some(name) = de.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(n) = classify(sp.index, high, low, &name) else {
            continue;
        };
        if n.info.timestamp > cutoff {
            continue;
        }
        let path = dir.join(&name);
        // Follows a link: its content is what a download serves.
        let Ok(md) = fs::metadata(&path) else {
            continue;
        };
        if !md.is_file() {
            continue;
        }
        let crc = match n.kind {
            Kind::Normal => n.info.crc32,
            Kind::Meta => match fs::read(&path) {
                Ok(b) => crc32fast::hash(&b),
                Err(_) => continue,
            },
            Kind::Appender | Kind::Slave => 0,
        };
        out.push(Entry {
            kind: n.kind,
            name,
            size: md.len(),
            crc,
            mtime: md.mtime().clamp(0, u32::MAX as i64) as u32,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The digest of one listing.
pub fn digest(list: &[Entry]) -> DirDigest {
    let mut d = DirDigest::default();
    for e in list {
        d.add(DirDigest {
            files: 1,
            sum: e.hash(),
        });
    }
    d
}

/// Digests of every leaf directory of `sp`, `subdirs * subdirs` of them in
/// order (`high * subdirs + low`). `stop` is asked between directories.
pub fn digest_leaves(
    sp: &StorePath,
    subdirs: u32,
    cutoff: u32,
    stop: &dyn Fn() -> bool,
) -> io::Result<Vec<DirDigest>> {
    let n = subdirs.clamp(1, 256) as usize;
    let mut out = Vec::with_capacity(n * n);
    for high in 0..n {
        for low in 0..n {
            if stop() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "stopping"));
            }
            out.push(digest(&list_dir(sp, high as u8, low as u8, cutoff)?));
        }
    }
    Ok(out)
}

/// Leaf digests summed per top directory.
pub fn tops(leaves: &[DirDigest], subdirs: u32) -> Vec<DirDigest> {
    let n = subdirs.clamp(1, 256) as usize;
    leaves
        .chunks(n)
        .map(|c| {
            let mut d = DirDigest::default();
            c.iter().for_each(|x| d.add(*x));
            d
        })
        .collect()
}

/// Whether `path`'s directory entry exists at all (a dangling link does).
pub fn entry_exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::file_id::{NameInfo, Source, appender_size_field, normal_size_field};

    fn name(ts: u32, size: u64, crc: u32, appender: bool) -> String {
        let info = NameInfo {
            source: Source::Ip("10.0.0.5".parse().unwrap()),
            timestamp: ts,
            size_field: match appender {
                true => appender_size_field(1),
                false => normal_size_field(size, 7),
            },
            crc32: crc,
        };
        format!("{}1234567", info.encode())
    }

    #[test]
    fn lists_and_digests_what_matters() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = StorePath::new(0, tmp.path().to_path_buf());
        sp.init(2).unwrap();
        let dir = sp.data_dir().join("01").join("00");
        let a = name(100, 3, crc32fast::hash(b"abc"), false);
        let b = name(200, 0, 0, true);
        let young = name(900, 1, 0, false);
        fs::write(dir.join(&a), b"abc").unwrap();
        fs::write(dir.join(format!("{a}-m")), b"k\x02v").unwrap();
        fs::write(dir.join(&b), b"12345").unwrap();
        fs::write(dir.join(&young), b"x").unwrap();
        fs::write(dir.join(".tmp-1"), b"x").unwrap();
        fs::write(dir.join("junk"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.join("gone"), dir.join(name(100, 9, 9, false))).unwrap();
        let list = list_dir(&sp, 1, 0, 500).unwrap();
        let kinds: Vec<_> = list.iter().map(|e| (e.kind, e.size)).collect();
        assert_eq!(list.len(), 3, "{list:?}");
        assert!(kinds.contains(&(Kind::Normal, 3)));
        assert!(kinds.contains(&(Kind::Appender, 5)));
        assert!(kinds.contains(&(Kind::Meta, 3)));
        let leaves = digest_leaves(&sp, 2, 500, &|| false).unwrap();
        assert_eq!(leaves.len(), 4);
        assert_eq!(leaves[2], digest(&list));
        assert_eq!(leaves[0], DirDigest::default());
        let t = tops(&leaves, 2);
        assert_eq!(t[1].files, 3);
        // A flipped size shows.
        fs::write(dir.join(&a), b"ab").unwrap();
        assert_ne!(digest_leaves(&sp, 2, 500, &|| false).unwrap()[2], leaves[2]);
    }

    #[test]
    fn classifies_slaves_and_refuses_strangers() {
        let a = name(100, 3, 1, false);
        assert_eq!(classify(0, 0, 0, &a).unwrap().kind, Kind::Normal);
        let slave = format!("{}_150x150.jpg", &a[..27]);
        assert_eq!(classify(0, 0, 0, &slave).unwrap().kind, Kind::Slave);
        assert!(classify(0, 0, 0, "..").is_none());
        assert!(classify(0, 0, 0, ".refetch-00").is_none());
        let m = classify(0, 0, 0, &format!("{a}-m")).unwrap();
        assert_eq!(m.kind, Kind::Meta);
        assert!(m.remote_string().ends_with("-m"));
    }
}
