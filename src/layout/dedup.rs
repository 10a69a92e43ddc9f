//! Format of fdfs's dedup index (`check_file_duplicate = 1`), fdfs's own: upstream
//! keeps the same facts in a FastDHT cluster.
//!
//! Two text files under `base_path/data/`:
//! - `dedup.dat`, a snapshot: a header line `fdfs-dedup3 <generation>`, then one line per
//!   stored content: `<blake3 hex or -> <size> <crc32 hex> <refs> <source remote filename>`.
//! - `dedup.log`, what changed since: a header line `fdfs-dedup3-log <generation>`, then
//!   one [`Change`] per line. A log whose generation is not the snapshot's was
//!   folded into the snapshot already (a crash between writing the snapshot and
//!   starting the new log) and is ignored.
//!
//! The change lines are intents: each is written before the link or file it names is
//! made or removed, so that after a crash the reader checks those names on disk rather
//! than trusting the line. The one exception is `H`, a fact: a source's hash, learned
//! after its file was read. A last line without its newline was cut by the crash and is
//! dropped.
//!
//! Version 1 (`fdfs-dedup`) had SHA-1 signatures, version 2 (`fdfs-dedup2`) a BLAKE3
//! hash for every content. Each version reads the others' snapshots as unreadable, so
//! the index is rebuilt from the data tree.

use std::fmt::Write as _;

/// What picks the candidates for a content cheaply: its length and CRC32, which
/// an upload computes anyway (they are in its file name). Equal keys do not
/// make equal contents: CRC32 collisions are easy to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub size: u64,
    pub crc32: u32,
}

/// What identifies a content among those of one [`Key`]: the BLAKE3 hash of its
/// bytes. It is computed only when two contents share a key.
///
/// BLAKE3 rather than SHA-1: SHA-1 collisions can be made (two files of one size
/// and one SHA-1 would share one content), and BLAKE3 is several times faster.
pub type Hash = [u8; 32];

fn hex(hash: &Hash) -> String {
    let mut s = String::with_capacity(64);
    for b in hash {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn parse_hash(hex: &str) -> Option<Hash> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(hash)
}

/// `-` for a hash not computed yet.
fn opt_hex(hash: &Option<Hash>) -> String {
    hash.as_ref().map_or_else(|| "-".to_string(), hex)
}

/// Outer None: not a hash; inner None: `-`.
fn parse_opt_hash(s: &str) -> Option<Option<Hash>> {
    match s {
        "-" => Some(None),
        s => parse_hash(s).map(Some),
    }
}

impl Key {
    fn parse(size: &str, crc32: &str) -> Option<Key> {
        if crc32.len() != 8 {
            return None;
        }
        Some(Key {
            size: size.parse().ok()?,
            crc32: u32::from_str_radix(crc32, 16).ok()?,
        })
    }
}

/// One line of the change log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `S <hash or -> <size> <crc32> <source>`: `source` is about to hold a new content.
    Source {
        key: Key,
        hash: Option<Hash>,
        src: String,
    },
    /// `H <source> <hash>`: `source`'s content was read and has this hash.
    Hash { src: String, hash: Hash },
    /// `+ <source> <link>`: `link` is about to be made, pointing at `source`.
    Link { src: String, link: String },
    /// `- <source> <link>`: `link`, pointing at `source`, is about to be removed.
    Unlink { src: String, link: String },
    /// `= <source> <link>`: `link` was being made when the snapshot was
    /// written, and the snapshot counts it: it counts only if it is there.
    Counted { src: String, link: String },
    /// `X <source>`: `source`, no longer linked, is about to be removed.
    Drop { src: String },
}

/// Names must be one token: no blanks or line breaks (remote filenames never have any).
fn is_token(s: &str) -> bool {
    !s.is_empty() && !s.bytes().any(|b| b.is_ascii_whitespace())
}

impl Change {
    /// The line, with its newline; `None` if a name is not a single token.
    pub fn encode(&self) -> Option<String> {
        let line = match self {
            Change::Source { key, hash, src } if is_token(src) => {
                format!("S {} {} {:08x} {src}\n", opt_hex(hash), key.size, key.crc32)
            }
            Change::Hash { src, hash } if is_token(src) => format!("H {src} {}\n", hex(hash)),
            Change::Link { src, link } if is_token(src) && is_token(link) => {
                format!("+ {src} {link}\n")
            }
            Change::Unlink { src, link } if is_token(src) && is_token(link) => {
                format!("- {src} {link}\n")
            }
            Change::Counted { src, link } if is_token(src) && is_token(link) => {
                format!("= {src} {link}\n")
            }
            Change::Drop { src } if is_token(src) => format!("X {src}\n"),
            _ => return None,
        };
        Some(line)
    }

    /// Parse one line (without its newline).
    pub fn decode(line: &str) -> Option<Change> {
        let f: Vec<&str> = line.split(' ').collect();
        Some(match f.as_slice() {
            ["S", hash, size, crc, src] if is_token(src) => Change::Source {
                key: Key::parse(size, crc)?,
                hash: parse_opt_hash(hash)?,
                src: src.to_string(),
            },
            ["H", src, hash] if is_token(src) => Change::Hash {
                src: src.to_string(),
                hash: parse_hash(hash)?,
            },
            ["+", src, link] if is_token(src) && is_token(link) => Change::Link {
                src: src.to_string(),
                link: link.to_string(),
            },
            ["-", src, link] if is_token(src) && is_token(link) => Change::Unlink {
                src: src.to_string(),
                link: link.to_string(),
            },
            ["=", src, link] if is_token(src) && is_token(link) => Change::Counted {
                src: src.to_string(),
                link: link.to_string(),
            },
            ["X", src] if is_token(src) => Change::Drop {
                src: src.to_string(),
            },
            _ => return None,
        })
    }
}

/// One content of the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: Key,
    /// None until a second content of the same key made it worth computing.
    pub hash: Option<Hash>,
    pub refs: u32,
    /// Shared with the index's maps: a snapshot's copy costs no allocation.
    pub src: std::sync::Arc<str>,
}

const SNAPSHOT_MAGIC: &str = "fdfs-dedup3";
const LOG_MAGIC: &str = "fdfs-dedup3-log";

/// The snapshot file's bytes.
pub fn encode_snapshot(generation: u64, entries: &[Entry]) -> Vec<u8> {
    let mut s = format!("{SNAPSHOT_MAGIC} {generation}\n");
    for e in entries {
        let _ = writeln!(
            s,
            "{} {} {:08x} {} {}",
            opt_hex(&e.hash),
            e.key.size,
            e.key.crc32,
            e.refs,
            e.src
        );
    }
    s.into_bytes()
}

/// The snapshot's generation and entries; an error names the bad line (1-based).
pub fn decode_snapshot(bytes: &[u8]) -> Result<(u64, Vec<Entry>), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let mut lines = text.lines();
    let generation = header(lines.next(), SNAPSHOT_MAGIC).ok_or("bad header line")?;
    let mut entries = Vec::new();
    for (i, line) in lines.enumerate() {
        let bad = || format!("line {}: {line:?}", i + 2);
        let f: Vec<&str> = line.split(' ').collect();
        let [hash, size, crc, refs, src] = f.as_slice() else {
            return Err(bad());
        };
        if !is_token(src) {
            return Err(bad());
        }
        entries.push(Entry {
            key: Key::parse(size, crc).ok_or_else(bad)?,
            hash: parse_opt_hash(hash).ok_or_else(bad)?,
            refs: refs.parse().map_err(|_| bad())?,
            src: (*src).into(),
        });
    }
    Ok((generation, entries))
}

/// The header line of a new log.
pub fn log_header(generation: u64) -> String {
    format!("{LOG_MAGIC} {generation}\n")
}

/// What a log holds: its generation and its complete lines, decoded. A line that
/// does not parse, other than a last one cut short, is reported with its number.
pub struct LogRead {
    pub generation: u64,
    pub changes: Vec<Change>,
    pub bad_lines: Vec<usize>,
}

pub fn decode_log(bytes: &[u8]) -> Option<LogRead> {
    // A line cut by a crash has no newline: drop it.
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let text = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = text.lines();
    let generation = header(lines.next(), LOG_MAGIC)?;
    let mut read = LogRead {
        generation,
        changes: Vec::new(),
        bad_lines: Vec::new(),
    };
    for (i, line) in lines.enumerate() {
        match Change::decode(line) {
            Some(c) => read.changes.push(c),
            None => read.bad_lines.push(i + 2),
        }
    }
    Some(read)
}

fn header(line: Option<&str>, magic: &str) -> Option<u64> {
    let rest = line?.strip_prefix(magic)?.strip_prefix(' ')?;
    rest.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key {
            size: 1000 + n as u64,
            crc32: 0xdead_0000 + n as u32,
        }
    }

    #[test]
    fn changes_round_trip() {
        let all = [
            Change::Source {
                key: key(7),
                hash: Some([7; 32]),
                src: "M00/0A/3F/abc.jpg".into(),
            },
            Change::Source {
                key: key(8),
                hash: None,
                src: "M00/0A/3F/abd.jpg".into(),
            },
            Change::Hash {
                src: "M00/0A/3F/abd.jpg".into(),
                hash: [8; 32],
            },
            Change::Link {
                src: "M00/0A/3F/abc.jpg".into(),
                link: "M00/01/02/def".into(),
            },
            Change::Unlink {
                src: "M00/0A/3F/abc.jpg".into(),
                link: "M00/01/02/def".into(),
            },
            Change::Counted {
                src: "M00/0A/3F/abc.jpg".into(),
                link: "M00/01/02/def".into(),
            },
            Change::Drop {
                src: "M00/0A/3F/abc.jpg".into(),
            },
        ];
        for c in all {
            let line = c.encode().unwrap();
            assert!(line.ends_with('\n'));
            assert_eq!(Change::decode(line.trim_end_matches('\n')), Some(c));
        }
    }

    #[test]
    fn names_with_blanks_are_refused() {
        let c = Change::Drop {
            src: "M00/a b".into(),
        };
        assert_eq!(c.encode(), None);
        assert_eq!(Change::decode("X "), None);
        assert_eq!(Change::decode("+ a"), None);
        assert_eq!(Change::decode("S 00 1 x"), None);
    }

    #[test]
    fn snapshot_round_trip_and_errors() {
        let e = vec![
            Entry {
                key: key(1),
                hash: Some([1; 32]),
                refs: 3,
                src: "M00/00/00/a".into(),
            },
            Entry {
                key: key(2),
                hash: None,
                refs: 0,
                src: "M01/FF/FF/b.txt".into(),
            },
        ];
        let bytes = encode_snapshot(9, &e);
        assert_eq!(decode_snapshot(&bytes).unwrap(), (9, e));
        assert!(decode_snapshot(b"fdfs-dedup3 1\nzz 1 00000000 1 a\n").is_err());
        assert!(decode_snapshot(b"fdfs-dedup3 1\n- 1 0000000 1 a\n").is_err());
        assert!(decode_snapshot(b"other 1\n").is_err());
        // Version 1, with SHA-1 signatures.
        let v1 = format!("fdfs-dedup 1\n{} 5 1 M00/00/00/a\n", "ab".repeat(20));
        assert!(decode_snapshot(v1.as_bytes()).is_err());
        // Version 2, a BLAKE3 hash for every content.
        let v2 = format!("fdfs-dedup2 1\n{} 5 1 M00/00/00/a\n", "ab".repeat(32));
        assert!(decode_snapshot(v2.as_bytes()).is_err());
    }

    #[test]
    fn a_cut_last_line_is_dropped_and_bad_lines_counted() {
        let mut log = log_header(4).into_bytes();
        log.extend_from_slice(b"+ a b\nnonsense\n- a b\nX a");
        let r = decode_log(&log).unwrap();
        assert_eq!(r.generation, 4);
        assert_eq!(r.changes.len(), 2);
        assert_eq!(r.bad_lines, vec![3]);
        assert!(decode_log(b"fdfs-dedup3-log x\n").is_none());
        assert!(decode_log(b"fdfs-dedup2-log 4\n").is_none(), "version 2");
        assert!(decode_log(b"fdfs-dedup-log 4\n").is_none(), "version 1");
    }
}
