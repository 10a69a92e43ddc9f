//! Binlog files of a storage (LAYOUT.md §2.4-2.5): `data/sync/binlog.NNN`
//! record lines, the `binlog_index.dat` index and the per-peer `.mark` files.
//! Formats only: writing and reading policy lives with the storage role.

use std::path::{Path, PathBuf};

/// A binlog file is rolled when it would grow past this (SYNC_BINLOG_FILE_MAX_SIZE).
pub const MAX_FILE_SIZE: u64 = 1 << 30;
/// Longest record line upstream writes or reads.
pub const MAX_LINE: usize = 256;

/// One binlog record: `<timestamp> <op> <filename>[ <extra>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Unix time of the change (the source's time for replicas).
    pub timestamp: u32,
    /// Op letter: upper-case for changes made here, lower-case for replicas.
    pub op: u8,
    /// Remote file name with its `Mxx/` prefix, without group.
    pub name: String,
    /// Op-specific rest of the line ("offset length", old name, ...), may be empty.
    pub extra: String,
}

/// Ops a source writes (SYNC.md §2).
pub mod op {
    /// File created.
    pub const CREATE: u8 = b'C';
    /// File deleted.
    pub const DELETE: u8 = b'D';
    /// Whole file replaced (metadata file rewritten).
    pub const UPDATE: u8 = b'U';
    /// Appended: extra = "offset length".
    pub const APPEND: u8 = b'A';
    /// Modified in place: extra = "offset length".
    pub const MODIFY: u8 = b'M';
    /// Truncated: extra = "old_size new_size".
    pub const TRUNCATE: u8 = b'T';
    /// Symbolic link: extra = link target.
    pub const LINK: u8 = b'L';
    /// Renamed: extra = old name.
    pub const RENAME: u8 = b'R';
}

impl Record {
    /// A record without extra.
    pub fn new(timestamp: u32, op: u8, name: &str) -> Record {
        Record {
            timestamp,
            op,
            name: name.to_string(),
            extra: String::new(),
        }
    }

    /// The replica (lower-case) form of a source op.
    pub fn replica_op(op: u8) -> u8 {
        op.to_ascii_lowercase()
    }

    /// Whether the op letter is a source (upper-case) op.
    pub fn is_source(&self) -> bool {
        self.op.is_ascii_uppercase()
    }

    /// The line, with its trailing newline.
    pub fn to_line(&self) -> String {
        if self.extra.is_empty() {
            format!("{} {} {}\n", self.timestamp, self.op as char, self.name)
        } else {
            format!(
                "{} {} {} {}\n",
                self.timestamp, self.op as char, self.name, self.extra
            )
        }
    }

    /// Parse one line (without or with its newline). `None` for lines that do
    /// not have a timestamp, a known op letter and a name — upstream writes
    /// some with an empty name (SYNC.md §7); readers skip them.
    pub fn parse(line: &str) -> Option<Record> {
        let line = line.trim_end_matches(['\n', '\r']);
        let mut parts = line.splitn(4, ' ');
        let timestamp = parts.next()?.parse::<u32>().ok()?;
        let op = parts.next()?;
        let name = parts.next()?;
        let extra = parts.next().unwrap_or("").to_string();
        let op = match op.as_bytes() {
            [c] if b"CDUAMTLRcduamtlr".contains(c) => *c,
            _ => return None,
        };
        if name.is_empty() {
            return None;
        }
        Some(Record {
            timestamp,
            op,
            name: name.to_string(),
            extra,
        })
    }
}

/// `data/sync/binlog.NNN` (three digits at least).
pub fn binlog_path(sync_dir: &Path, index: u32) -> PathBuf {
    sync_dir.join(format!("binlog.{index:03}"))
}

/// `data/sync/binlog_index.dat`.
pub fn index_path(sync_dir: &Path) -> PathBuf {
    sync_dir.join("binlog_index.dat")
}

/// The binlog index being written, from binlog_index.dat (or the legacy
/// `binlog.index` holding just the number); 0 when neither exists.
pub fn read_index(sync_dir: &Path) -> std::io::Result<u32> {
    match super::kv::read_kv(&index_path(sync_dir)) {
        Ok(items) => Ok(super::kv::kv_get(&items, "current_write")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match std::fs::read_to_string(sync_dir.join("binlog.index")) {
                Ok(t) => Ok(t.trim().parse().unwrap_or(0)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Write binlog_index.dat.
pub fn write_index(sync_dir: &Path, current_write: u32) -> std::io::Result<()> {
    super::kv::write_kv(
        &index_path(sync_dir),
        &[
            ("current_write".into(), current_write.to_string()),
            ("current_compress".into(), "0".into()),
        ],
    )
}

/// A push reader's saved state for one peer (`<peer>.mark`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub binlog_index: u32,
    pub binlog_offset: u64,
    pub need_sync_old: bool,
    pub sync_old_done: bool,
    pub until_timestamp: u64,
    pub scan_row_count: u64,
    pub sync_row_count: u64,
}

impl Mark {
    /// Mark file of a peer: `<peer_id>.mark` with storage ids, else
    /// `<peer_ip>_<our_port>.mark` (LAYOUT.md §2.5).
    pub fn path(sync_dir: &Path, peer: &str, our_port: Option<u16>) -> PathBuf {
        match our_port {
            Some(p) => sync_dir.join(format!("{peer}_{p}.mark")),
            None => sync_dir.join(format!("{peer}.mark")),
        }
    }

    /// Load a mark file; `None` if there is none.
    pub fn load(path: &Path) -> std::io::Result<Option<Mark>> {
        let items = match super::kv::read_kv(path) {
            Ok(i) => i,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let n = |k: &str| {
            super::kv::kv_get(&items, k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(Some(Mark {
            binlog_index: n("binlog_index") as u32,
            binlog_offset: n("binlog_offset"),
            need_sync_old: n("need_sync_old") != 0,
            sync_old_done: n("sync_old_done") != 0,
            until_timestamp: n("until_timestamp"),
            scan_row_count: n("scan_row_count"),
            sync_row_count: n("sync_row_count"),
        }))
    }

    /// Write the mark file (atomically).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let b = |v: bool| if v { "1" } else { "0" }.to_string();
        super::kv::write_kv(
            path,
            &[
                ("binlog_index".into(), self.binlog_index.to_string()),
                ("binlog_offset".into(), self.binlog_offset.to_string()),
                ("need_sync_old".into(), b(self.need_sync_old)),
                ("sync_old_done".into(), b(self.sync_old_done)),
                ("until_timestamp".into(), self.until_timestamp.to_string()),
                ("scan_row_count".into(), self.scan_row_count.to_string()),
                ("sync_row_count".into(), self.sync_row_count.to_string()),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_round_trip() {
        let r = Record::new(
            1700000000,
            op::CREATE,
            "M00/00/01/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt",
        );
        assert_eq!(
            r.to_line(),
            "1700000000 C M00/00/01/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt\n"
        );
        assert_eq!(Record::parse(&r.to_line()), Some(r));
        let a = Record::parse("1700000005 A M00/00/01/wKgBZGVT8QCEEjRWAAAAAA4Qul0552.log 0 1024")
            .unwrap();
        assert_eq!((a.op, a.extra.as_str()), (b'A', "0 1024"));
        assert!(
            !Record::parse("1700000010 c M00/00/02/x")
                .unwrap()
                .is_source()
        );
        // Upstream's empty-name replica link records, and garbage, are skipped.
        assert_eq!(Record::parse("1700000011 l "), None);
        assert_eq!(Record::parse("x C name"), None);
        assert_eq!(Record::parse("1 Q name"), None);
        assert_eq!(Record::replica_op(op::DELETE), b'd');
    }

    #[test]
    fn index_and_mark_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_index(dir.path()).unwrap(), 0);
        std::fs::write(dir.path().join("binlog.index"), "4\n").unwrap();
        assert_eq!(read_index(dir.path()).unwrap(), 4, "legacy index file");
        write_index(dir.path(), 7).unwrap();
        assert_eq!(read_index(dir.path()).unwrap(), 7);
        assert_eq!(
            binlog_path(dir.path(), 7).file_name().unwrap(),
            "binlog.007"
        );
        let p = Mark::path(dir.path(), "10.0.0.2", Some(23000));
        assert_eq!(p.file_name().unwrap(), "10.0.0.2_23000.mark");
        assert_eq!(Mark::load(&p).unwrap(), None);
        let m = Mark {
            binlog_index: 1,
            binlog_offset: 4096,
            need_sync_old: true,
            until_timestamp: 17,
            ..Mark::default()
        };
        m.save(&p).unwrap();
        assert_eq!(Mark::load(&p).unwrap(), Some(m));
    }
}
