//! Start-up replay of the redo journal ([`super::journal`]) after a crash:
//! what the journal holds and the disk lost is written again.
//!
//! - A file record is the whole content of a new file (an upload, a replica,
//!   a metadata file). It is rewritten when the file is missing or differs,
//!   unless a later binlog line in the journal deletes, renames or changes
//!   that file (those changes synced the file in place before they were
//!   acknowledged, so the file on disk is newer than the record).
//! - A delete line removes its file again if the crash brought it back.
//! - The binlog from the checkpoint's position on must hold the journal's
//!   lines in order: it is cut at the first line that differs (or is torn)
//!   and the missing lines are appended.

use crate::layout::RemoteName;
use crate::layout::binlog::{self as fmt, Record, op};
use crate::layout::journal::{self as format, Header, kind};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Generation of the journal found (0: none).
    pub generation: u64,
    pub files_restored: usize,
    pub files_removed: usize,
    pub lines_appended: usize,
}

/// Ops whose line means the named file changed in place after its record.
fn changes_in_place(o: u8) -> bool {
    matches!(
        o.to_ascii_uppercase(),
        op::DELETE | op::APPEND | op::MODIFY | op::TRUNCATE | op::RENAME
    )
}

/// Replay the journal at `path` onto the store paths `roots` (index = store
/// path index) and the binlog in `sync_dir`. A missing or unreadable journal
/// replays nothing.
pub fn replay(path: &Path, roots: &[PathBuf], sync_dir: &Path) -> io::Result<Replayed> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replayed::default()),
        Err(e) => return Err(e),
    };
    let Some(header) = Header::decode(&bytes) else {
        log::warn!("{}: no valid header, nothing replayed", path.display());
        return Ok(Replayed::default());
    };
    let records = format::replay_records(&bytes, &header);
    let mut done = Replayed {
        generation: header.generation,
        ..Replayed::default()
    };
    let lines: Vec<(usize, Record)> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == kind::LINE)
        .filter_map(|(i, r)| Some((i, Record::parse(std::str::from_utf8(r.data).ok()?)?)))
        .collect();
    // The last record index at which each file was changed in place.
    let mut changed: HashMap<&str, usize> = HashMap::new();
    for (i, l) in &lines {
        if changes_in_place(l.op) {
            changed.insert(l.name.as_str(), *i);
            if l.op.to_ascii_uppercase() == op::RENAME {
                // "new old": the old name is gone too.
                changed.insert(l.extra.as_str(), *i);
            }
        }
    }
    for (i, r) in records.iter().enumerate() {
        if r.kind != kind::FILE {
            continue;
        }
        let Some((name, file)) = locate(roots, r.name) else {
            continue;
        };
        if changed.get(name).is_some_and(|&j| j > i) {
            continue;
        }
        if fs::read(&file).is_ok_and(|have| have == r.data) {
            continue;
        }
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir)?;
        }
        crate::layout::store::atomic_write(&file, r.data)?;
        log::info!(
            "journal: restored {} ({} bytes)",
            file.display(),
            r.data.len()
        );
        done.files_restored += 1;
    }
    for (_, l) in &lines {
        if l.op.to_ascii_uppercase() != op::DELETE {
            continue;
        }
        if let Some((_, file)) = locate(roots, l.name.as_bytes())
            && fs::remove_file(&file).is_ok()
        {
            log::info!("journal: removed {} again", file.display());
            done.files_removed += 1;
        }
    }
    let journal_lines: Vec<&[u8]> = records
        .iter()
        .filter(|r| r.kind == kind::LINE)
        .map(|r| r.data)
        .collect();
    done.lines_appended = repair_binlog(sync_dir, header.binlog, &journal_lines)?;
    Ok(done)
}

/// The remote name and path of a journaled file name, if it is one of ours.
fn locate<'a>(roots: &[PathBuf], name: &'a [u8]) -> Option<(&'a str, PathBuf)> {
    let name = std::str::from_utf8(name).ok()?;
    let r = RemoteName::parse(name).ok()?;
    let root = roots.get(r.store_index as usize)?;
    Some((name, root.join(r.rel_path())))
}

/// Make the binlog from `from` on equal `lines` (plus any intact lines after
/// them); returns how many lines were appended.
fn repair_binlog(sync_dir: &Path, from: (u32, u64), lines: &[&[u8]]) -> io::Result<usize> {
    let last = fmt::read_index(sync_dir).unwrap_or(from.0).max(from.0);
    let mut next = 0; // journal lines matched so far
    let mut cut: Option<(u32, u64)> = None;
    'files: for index in from.0..=last {
        let path = fmt::binlog_path(sync_dir, index);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut at = if index == from.0 { from.1 as usize } else { 0 };
        if at > bytes.len() {
            // The binlog lost even what the checkpoint had synced: append
            // after what is left.
            cut = Some((index, bytes.len() as u64));
            break;
        }
        while at < bytes.len() {
            let rest = &bytes[at..];
            let Some(end) = rest.iter().position(|&c| c == b'\n') else {
                cut = Some((index, at as u64));
                break 'files;
            };
            let line = &rest[..=end];
            let intact = std::str::from_utf8(line)
                .ok()
                .and_then(Record::parse)
                .is_some();
            let expected = lines.get(next);
            if expected.is_some_and(|l| *l == line) || (expected.is_none() && intact) {
                next += usize::from(expected.is_some());
                at += line.len();
                continue;
            }
            cut = Some((index, at as u64));
            break 'files;
        }
    }
    let (index, offset) = match cut {
        Some(c) => c,
        None if next == lines.len() => return Ok(0),
        None => {
            let p = fmt::binlog_path(sync_dir, last);
            (last, fs::metadata(&p).map_or(0, |m| m.len()))
        }
    };
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(fmt::binlog_path(sync_dir, index))?;
    f.set_len(offset)?;
    for later in index + 1..=last {
        let _ = fs::remove_file(fmt::binlog_path(sync_dir, later));
    }
    if last != index {
        fmt::write_index(sync_dir, index)?;
    }
    let mut f = OpenOptions::new()
        .append(true)
        .open(fmt::binlog_path(sync_dir, index))?;
    let rest = &lines[next..];
    for l in rest {
        f.write_all(l)?;
    }
    f.sync_all()?;
    if !rest.is_empty() {
        log::info!("journal: appended {} binlog lines", rest.len());
    }
    Ok(rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::journal::{BLOCK, FILE_NAME, encode_record};

    fn journal(dir: &Path, binlog: (u32, u64), recs: &[(u8, &str, &[u8])]) -> PathBuf {
        let h = Header {
            generation: 3,
            binlog,
            region: 0,
            salt: 5,
        };
        let mut b = h.encode();
        assert_eq!(b.len(), BLOCK as usize);
        for (k, name, data) in recs {
            encode_record(&mut b, format::tag(5, 3), *k, name.as_bytes(), data);
        }
        // Room for both regions.
        b.resize(BLOCK as usize * 3, 0);
        let p = dir.join(FILE_NAME);
        fs::write(&p, b).unwrap();
        p
    }

    #[test]
    fn restores_lost_files_and_binlog_lines_but_not_changed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let sync = dir.path().join("sync");
        fs::create_dir_all(root.join("data/00/01")).unwrap();
        fs::create_dir_all(&sync).unwrap();
        // The binlog kept the first line and a torn half of the second.
        let l1 = b"100 C M00/00/01/a.jpg\n";
        let l2 = b"101 C M00/00/01/b.jpg\n";
        let l3 = b"102 D M00/00/01/b.jpg\n";
        let l4 = b"103 C M00/00/01/c.jpg\n";
        let l5 = b"104 A M00/00/01/c.jpg 0 3\n";
        let old = b"99 C M00/00/01/z.jpg\n";
        let mut bl = old.to_vec();
        bl.extend_from_slice(l1);
        bl.extend_from_slice(b"101 C M0");
        fs::write(fmt::binlog_path(&sync, 0), &bl).unwrap();
        // a.jpg made it to disk; b.jpg came back after its delete; c.jpg was
        // appended to in place, so its record is older than the disk.
        fs::write(root.join("data/00/01/a.jpg"), b"A").unwrap();
        fs::write(root.join("data/00/01/b.jpg"), b"B").unwrap();
        fs::write(root.join("data/00/01/c.jpg"), b"C+++").unwrap();
        let p = journal(
            dir.path(),
            (0, old.len() as u64),
            &[
                (kind::FILE, "M00/00/01/a.jpg", b"A"),
                (kind::LINE, "", l1),
                (kind::FILE, "M00/00/01/b.jpg", b"B"),
                (kind::LINE, "", l2),
                (kind::LINE, "", l3),
                (kind::FILE, "M00/00/01/c.jpg", b"C"),
                (kind::LINE, "", l4),
                (kind::LINE, "", l5),
                (kind::FILE, "M00/00/01/d.jpg", b"D"),
                (kind::FILE, "../../etc/passwd", b"x"),
            ],
        );
        let r = replay(&p, std::slice::from_ref(&root), &sync).unwrap();
        assert_eq!(
            r,
            Replayed {
                generation: 3,
                files_restored: 1,
                files_removed: 1,
                lines_appended: 4
            }
        );
        assert_eq!(fs::read(root.join("data/00/01/d.jpg")).unwrap(), b"D");
        assert_eq!(fs::read(root.join("data/00/01/c.jpg")).unwrap(), b"C+++");
        assert!(!root.join("data/00/01/b.jpg").exists());
        let want = [&old[..], l1, l2, l3, l4, l5].concat();
        assert_eq!(fs::read(fmt::binlog_path(&sync, 0)).unwrap(), want);
        // A second replay finds nothing to do.
        let again = replay(&p, &[root], &sync).unwrap();
        assert_eq!(
            (
                again.files_restored,
                again.files_removed,
                again.lines_appended
            ),
            (0, 0, 0)
        );
        assert_eq!(fs::read(fmt::binlog_path(&sync, 0)).unwrap(), want);
    }
}
