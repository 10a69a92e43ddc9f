//! The redo journal of `durable_uploads`: what makes a change durable before
//! the client hears of it, at the cost of one sequential write per batch.
//!
//! Syncing each new file, its directory and the binlog costs several random
//! writes and a cache flush per upload (about 1 ms a batch on the test
//! machines, whose ext4 has no journal of its own). Instead, a change writes
//! its file as usual (page cache only) and adds to this journal a record of
//! the file's content and of its binlog line; one `pwrite` + `fdatasync` of
//! the preallocated journal file then makes every record of the batch durable
//! (group commit: the first waiter to find no flush running does it for all).
//! After a crash, [`super::journal_recover`] rewrites the files and binlog
//! lines the journal holds and the disk lost.
//!
//! When the journal is full, a checkpoint `syncfs`es the filesystems of the
//! store paths and the binlog, which makes everything so far durable in
//! place, and starts a new generation at the start of the file.
//!
//! File layout: a header block (magic, generation, binlog position of the
//! checkpoint, CRC) and from [`BLOCK`] on, rounds of records, each round
//! starting on a block boundary. A record: magic, CRC32 of the rest,
//! generation, kind, name length, data length, name, data.

use parking_lot::{Condvar, Mutex};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Header block size; rounds start on multiples of it.
pub const BLOCK: u64 = 4096;
pub const HEADER_MAGIC: &[u8; 8] = b"FDFSJRN1";
pub const RECORD_MAGIC: u32 = 0x4644_4A52;
/// magic, crc, generation, kind, name length, data length.
pub const RECORD_HEAD: usize = 4 + 4 + 8 + 1 + 2 + 4;
/// Files up to this size are journaled; bigger ones are synced in place.
pub const MAX_FILE: u64 = 1024 * 1024;
/// The journal's file name under `base_path/data`.
pub const FILE_NAME: &str = "fdfs_journal.dat";

/// Record kinds.
pub mod kind {
    /// The whole content of a file, named by its remote name (`M00/HH/HH/x`).
    pub const FILE: u8 = 1;
    /// A binlog line, in binlog order.
    pub const LINE: u8 = 2;
}

/// The checkpoint header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub generation: u64,
    /// The binlog was durable up to here at the checkpoint.
    pub binlog: (u32, u64),
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(BLOCK as usize);
        b.extend_from_slice(HEADER_MAGIC);
        b.extend_from_slice(&self.generation.to_be_bytes());
        b.extend_from_slice(&self.binlog.0.to_be_bytes());
        b.extend_from_slice(&self.binlog.1.to_be_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b.resize(BLOCK as usize, 0);
        b
    }

    pub fn decode(b: &[u8]) -> Option<Header> {
        if b.len() < 32 || &b[..8] != HEADER_MAGIC {
            return None;
        }
        let crc = u32::from_be_bytes(b[28..32].try_into().ok()?);
        if crc32fast::hash(&b[..28]) != crc {
            return None;
        }
        Some(Header {
            generation: u64::from_be_bytes(b[8..16].try_into().ok()?),
            binlog: (
                u32::from_be_bytes(b[16..20].try_into().ok()?),
                u64::from_be_bytes(b[20..28].try_into().ok()?),
            ),
        })
    }
}

/// Append one record to `out`.
pub fn encode_record(out: &mut Vec<u8>, generation: u64, kind: u8, name: &[u8], data: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&generation.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// A decoded record, borrowing from the journal bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: u8,
    pub name: &'a [u8],
    pub data: &'a [u8],
}

/// Decode the record at the start of `b` if it is whole, intact and of
/// `generation`; returns it and its length.
pub fn decode_record(b: &[u8], generation: u64) -> Option<(Record<'_>, usize)> {
    if b.len() < RECORD_HEAD || u32::from_be_bytes(b[0..4].try_into().ok()?) != RECORD_MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes(b[4..8].try_into().ok()?);
    if u64::from_be_bytes(b[8..16].try_into().ok()?) != generation {
        return None;
    }
    let name_len = u16::from_be_bytes(b[17..19].try_into().ok()?) as usize;
    let data_len = u32::from_be_bytes(b[19..23].try_into().ok()?) as usize;
    let end = RECORD_HEAD.checked_add(name_len)?.checked_add(data_len)?;
    if b.len() < end || crc32fast::hash(&b[8..end]) != crc {
        return None;
    }
    let name = &b[RECORD_HEAD..RECORD_HEAD + name_len];
    Some((
        Record {
            kind: b[16],
            name,
            data: &b[RECORD_HEAD + name_len..end],
        },
        end,
    ))
}

/// The records of `generation` in journal bytes `b` (header included), in
/// order: rounds start on block boundaries, and the first one that does not
/// hold a record of this generation ends the journal.
pub fn records(b: &[u8], generation: u64) -> Vec<Record<'_>> {
    let mut out = Vec::new();
    let mut at = BLOCK as usize;
    while at < b.len() {
        match decode_record(&b[at..], generation) {
            Some((r, n)) => {
                out.push(r);
                at += n;
            }
            None if !at.is_multiple_of(BLOCK as usize) => at = at.next_multiple_of(BLOCK as usize),
            None => break,
        }
    }
    out
}

struct State {
    /// Records for the next round.
    buf: Vec<u8>,
    /// Records added so far / known durable.
    added: u64,
    done: u64,
    running: bool,
    /// The last round failed up to this record: its waiters get the error.
    failed: Option<(u64, io::ErrorKind, String)>,
    generation: u64,
    /// Where the next round is written.
    offset: u64,
    /// The binlog position after the newest line added.
    binlog_end: (u32, u64),
}

/// The journal of a durable storage.
pub struct Journal {
    file: File,
    size: u64,
    /// One directory per filesystem to `syncfs` at a checkpoint.
    roots: Vec<PathBuf>,
    st: Mutex<State>,
    cv: Condvar,
}

impl Journal {
    /// Open (creating and zero-filling to `size` bytes if needed) the journal
    /// at `path` and start a new generation after `previous` (recovery has
    /// replayed the old one). Everything on `roots`' filesystems is synced
    /// first, which the new header's binlog position `binlog` relies on.
    pub fn start(
        path: &Path,
        size: u64,
        roots: Vec<PathBuf>,
        previous: u64,
        binlog: (u32, u64),
    ) -> io::Result<Journal> {
        let size = size.max(4 * MAX_FILE).div_ceil(BLOCK) * BLOCK;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() != size {
            // Written, not just allocated: overwriting written blocks needs no
            // metadata update, so a round's fdatasync is one sequential write.
            file.set_len(0)?;
            let zeros = vec![0u8; 1024 * 1024];
            let mut at = 0;
            while at < size {
                let n = (size - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
        }
        let j = Journal {
            file,
            size,
            roots,
            st: Mutex::new(State {
                buf: Vec::new(),
                added: 0,
                done: 0,
                running: false,
                failed: None,
                generation: previous + 1,
                offset: BLOCK,
                binlog_end: binlog,
            }),
            cv: Condvar::new(),
        };
        j.sync_filesystems()?;
        let h = Header {
            generation: previous + 1,
            binlog,
        };
        j.file.write_all_at(&h.encode(), 0)?;
        j.file.sync_data()?;
        if let Some(dir) = path.parent() {
            crate::layout::store::fsync_dir(dir)?;
        }
        Ok(j)
    }

    /// Add the whole content of the file with remote name `name`; returns
    /// the number to wait for.
    pub fn add_file(&self, name: &str, data: &[u8]) -> u64 {
        let mut st = self.st.lock();
        let g = st.generation;
        encode_record(&mut st.buf, g, kind::FILE, name.as_bytes(), data);
        st.added += 1;
        st.added
    }

    /// Add a binlog line just written, which ends at binlog position `end`.
    /// Called under the binlog's lock, so lines keep the binlog's order.
    pub fn add_line(&self, line: &[u8], end: (u32, u64)) -> u64 {
        let mut st = self.st.lock();
        let g = st.generation;
        encode_record(&mut st.buf, g, kind::LINE, &[], line);
        st.binlog_end = end;
        st.added += 1;
        st.added
    }

    /// The number of the newest record added.
    pub fn added(&self) -> u64 {
        self.st.lock().added
    }

    /// Return once record `seq` (and all before it) is durable.
    pub fn commit(&self, seq: u64) -> io::Result<()> {
        let mut st = self.st.lock();
        loop {
            if let Some((upto, kind, msg)) = &st.failed
                && seq <= *upto
                && st.done < seq
            {
                return Err(io::Error::new(*kind, msg.clone()));
            }
            if st.done >= seq {
                return Ok(());
            }
            if st.running {
                self.cv.wait(&mut st);
                continue;
            }
            // Lead a round for every record added so far.
            st.running = true;
            let upto = st.added;
            let nrec = upto - st.done;
            let mut buf = std::mem::take(&mut st.buf);
            let (offset, generation, binlog_end) = (st.offset, st.generation, st.binlog_end);
            drop(st);
            let t0 = std::time::Instant::now();
            let result = self.round(&mut buf, offset, generation, binlog_end);
            log::trace!(
                "journal round: {nrec} records, {} us{}",
                t0.elapsed().as_micros(),
                if matches!(result, Ok(None)) {
                    ", checkpoint"
                } else {
                    ""
                }
            );
            st = self.st.lock();
            st.running = false;
            match result {
                Ok(Some(next)) => {
                    st.offset = next;
                    st.done = upto;
                }
                Ok(None) => {
                    // A checkpoint: records added meanwhile move to the new
                    // generation.
                    st.generation = generation + 1;
                    st.offset = BLOCK;
                    st.buf = regenerate(&st.buf, generation + 1);
                    st.done = upto;
                }
                Err(e) => st.failed = Some((upto, e.kind(), e.to_string())),
            }
            if st.buf.is_empty() {
                // Keep the allocation for the next round.
                buf.clear();
                st.buf = buf;
            }
            self.cv.notify_all();
        }
    }

    /// Write one round at `offset`; `Ok(Some(next offset))`, or `Ok(None)`
    /// after a checkpoint (which made the round durable in place).
    fn round(
        &self,
        buf: &mut Vec<u8>,
        offset: u64,
        generation: u64,
        binlog_end: (u32, u64),
    ) -> io::Result<Option<u64>> {
        let len = (buf.len() as u64).div_ceil(BLOCK) * BLOCK;
        if offset + len > self.size {
            self.checkpoint(generation + 1, binlog_end)?;
            return Ok(None);
        }
        buf.resize(len as usize, 0);
        self.file.write_all_at(buf, offset)?;
        self.file.sync_data()?;
        Ok(Some(offset + len))
    }

    /// Make everything durable in place and start generation `generation`.
    fn checkpoint(&self, generation: u64, binlog: (u32, u64)) -> io::Result<()> {
        self.sync_filesystems()?;
        let h = Header { generation, binlog };
        self.file.write_all_at(&h.encode(), 0)?;
        self.file.sync_data()
    }

    fn sync_filesystems(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        for root in &self.roots {
            let d = File::open(root)?;
            // SAFETY: syncfs only reads the descriptor, which `d` keeps open.
            if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Flush what is pending (shutdown).
    pub fn flush(&self) -> io::Result<()> {
        let seq = self.added();
        self.commit(seq)
    }
}

/// Re-encode `records` (of any generation) as records of `generation`.
fn regenerate(records: &[u8], generation: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len());
    let mut at = 0;
    while at + RECORD_HEAD <= records.len() {
        let g = u64::from_be_bytes(records[at + 8..at + 16].try_into().expect("8 bytes"));
        let Some((r, n)) = decode_record(&records[at..], g) else {
            break;
        };
        encode_record(&mut out, generation, r.kind, r.name, r.data);
        at += n;
    }
    out
}

/// The directories whose filesystems hold the binlog and the store paths,
/// one per filesystem.
pub fn filesystem_roots(dirs: &[PathBuf]) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for d in dirs {
        if let Ok(m) = std::fs::metadata(d)
            && !seen.contains(&m.dev())
        {
            seen.push(m.dev());
            out.push(d.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let mut b = Vec::new();
        encode_record(&mut b, 7, kind::FILE, b"M02/00/01/x.jpg", b"content");
        encode_record(&mut b, 7, kind::LINE, b"", b"1 C M00/00/01/x.jpg\n");
        let (r, n) = decode_record(&b, 7).unwrap();
        assert_eq!(
            (r.kind, r.name, r.data),
            (kind::FILE, &b"M02/00/01/x.jpg"[..], &b"content"[..])
        );
        let (r2, _) = decode_record(&b[n..], 7).unwrap();
        assert_eq!(r2.data, b"1 C M00/00/01/x.jpg\n");
        assert!(decode_record(&b, 8).is_none(), "other generation");
        assert!(decode_record(&b[..n - 1], 7).is_none(), "torn");
        let mut bad = b.clone();
        bad[30] ^= 1;
        assert!(decode_record(&bad, 7).is_none(), "crc");
        let h = Header {
            generation: 9,
            binlog: (3, 1234),
        };
        assert_eq!(Header::decode(&h.encode()), Some(h));
        let mut e = h.encode();
        e[20] ^= 1;
        assert_eq!(Header::decode(&e), None);
    }

    fn read_generation(path: &Path, g: u64) -> Vec<(u8, Vec<u8>)> {
        let bytes = std::fs::read(path).unwrap();
        records(&bytes, g)
            .into_iter()
            .map(|r| (r.kind, r.data.to_vec()))
            .collect()
    }

    #[test]
    fn concurrent_commits_are_durable_in_order_and_checkpoint_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let j = Arc::new(Journal::start(&path, 0, vec![dir.path().into()], 4, (0, 0)).unwrap());
        assert_eq!(
            Header::decode(&std::fs::read(&path).unwrap())
                .unwrap()
                .generation,
            5
        );
        let hs: Vec<_> = (0..4u8)
            .map(|t| {
                let j = j.clone();
                std::thread::spawn(move || {
                    for k in 0..25u32 {
                        let s = j.add_file(&format!("f{t}-{k}"), &[t; 100]);
                        j.commit(s).unwrap();
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        let recs = read_generation(&path, 5);
        assert_eq!(recs.len(), 100);
        // 1 MiB files overflow the 4 MiB journal: a checkpoint starts
        // generation 6 and the records after it are found there.
        let big = vec![1u8; MAX_FILE as usize];
        for i in 0..6 {
            let s = j.add_file(&format!("big{i}"), &big);
            j.commit(s).unwrap();
        }
        let s = j.add_line(b"1 C M00/00/00/last\n", (0, 20));
        j.commit(s).unwrap();
        let h = Header::decode(&std::fs::read(&path).unwrap()).unwrap();
        assert!(h.generation > 5);
        let recs = read_generation(&path, h.generation);
        assert_eq!(
            recs.last().unwrap(),
            &(kind::LINE, b"1 C M00/00/00/last\n".to_vec())
        );
    }
}
