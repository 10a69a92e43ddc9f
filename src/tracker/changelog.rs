//! data/storage_changelog.dat (LAYOUT.md §1.4): an append-only log of storage
//! deletions and IP changes that storages read through CHANGELOG_REQ to drop
//! or rename their per-peer sync state.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::layout::tracker_dat::CHANGELOG_FILE as FILE;
/// Most bytes one CHANGELOG_REQ reply carries.
pub const MAX_CHUNK: usize = 8182;

/// Append `<ts> <group> <id> <status> <arg>` and fsync it.
pub fn append(
    data_dir: &Path,
    ts: u64,
    group: &str,
    id: &str,
    status: u8,
    arg: &str,
) -> io::Result<u64> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join(FILE))?;
    f.write_all(format!("{ts} {group} {id} {status} {arg}\n").as_bytes())?;
    f.sync_data()?;
    Ok(f.metadata()?.len())
}

/// Current size (where a new storage starts reading).
pub fn size(data_dir: &Path) -> u64 {
    std::fs::metadata(data_dir.join(FILE)).map_or(0, |m| m.len())
}

/// The whole lines after `offset`, at most [`MAX_CHUNK`] bytes (cut at a line
/// end, unlike upstream, so no record is ever split and lost).
pub fn read_from(data_dir: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let mut f = match std::fs::File::open(data_dir.join(FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; MAX_CHUNK];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    buf.truncate(n);
    let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    buf.truncate(end);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_and_read_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_from(dir.path(), 0).unwrap().is_empty());
        let end1 = append(dir.path(), 1, "group1", "10.0.0.2", 4, "").unwrap();
        append(dir.path(), 2, "group1", "10.0.0.3", 3, "10.0.0.9").unwrap();
        let all = read_from(dir.path(), 0).unwrap();
        assert_eq!(
            String::from_utf8(all).unwrap(),
            "1 group1 10.0.0.2 4 \n2 group1 10.0.0.3 3 10.0.0.9\n"
        );
        assert_eq!(
            read_from(dir.path(), end1).unwrap(),
            b"2 group1 10.0.0.3 3 10.0.0.9\n"
        );
        assert_eq!(size(dir.path()), end1 + 29);
    }
}
