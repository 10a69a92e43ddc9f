//! Format of fdfs's dedup index (`check_file_duplicate = 1`), fdfs's own: upstream
//! keeps the same facts in a FastDHT cluster.
//!
//! Two text files under `base_path/data/`:
//! - `dedup.dat`, a snapshot: a header line `fdfs-dedup2 <generation>`, then one line per
//!   stored content: `<blake3 hex> <size> <refs> <source remote filename>`.
//! - `dedup.log`, what changed since: a header line `fdfs-dedup2-log <generation>`, then
//!   one [`Change`] per line. A log whose generation is not the snapshot's was
//!   folded into the snapshot already (a crash between writing the snapshot and
//!   starting the new log) and is ignored.
//!
//! The change lines are intents: each is written before the link or file it names is
//! made or removed, so that after a crash the reader checks those names on disk rather
//! than trusting the line. A last line without its newline was cut by the crash and is
//! dropped.
//!
//! Version 1 (`fdfs-dedup`, `fdfs-dedup-log`) had SHA-1 signatures. Each version reads
//! the other's snapshot as unreadable, so the index is rebuilt from the data tree.

use std::fmt::Write as _;

/// What identifies a content: the BLAKE3 hash of its bytes and its length.
///
/// BLAKE3 rather than SHA-1: SHA-1 collisions can be made (two files of one size
/// and one SHA-1 would share one content), and BLAKE3 is several times faster
/// (the README's dedup rows say what the hash costs an upload).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sig {
    pub hash: [u8; 32],
    pub size: u64,
}

impl Sig {
    fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.hash {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    fn parse(hex: &str, size: &str) -> Option<Sig> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut hash = [0u8; 32];
        for (i, b) in hash.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Sig {
            hash,
            size: size.parse().ok()?,
        })
    }
}

/// One line of the change log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `S <hash> <size> <source>`: `source` is about to hold a new content.
    Source { sig: Sig, src: String },
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
            Change::Source { sig, src } if is_token(src) => {
                format!("S {} {} {src}\n", sig.hex(), sig.size)
            }
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
            ["S", hex, size, src] if is_token(src) => Change::Source {
                sig: Sig::parse(hex, size)?,
                src: src.to_string(),
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
    pub sig: Sig,
    pub refs: u32,
    pub src: String,
}

const SNAPSHOT_MAGIC: &str = "fdfs-dedup2";
const LOG_MAGIC: &str = "fdfs-dedup2-log";

/// The snapshot file's bytes.
pub fn encode_snapshot(generation: u64, entries: &[Entry]) -> Vec<u8> {
    let mut s = format!("{SNAPSHOT_MAGIC} {generation}\n");
    for e in entries {
        let _ = writeln!(s, "{} {} {} {}", e.sig.hex(), e.sig.size, e.refs, e.src);
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
        let [hex, size, refs, src] = f.as_slice() else {
            return Err(bad());
        };
        if !is_token(src) {
            return Err(bad());
        }
        entries.push(Entry {
            sig: Sig::parse(hex, size).ok_or_else(bad)?,
            refs: refs.parse().map_err(|_| bad())?,
            src: src.to_string(),
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

    fn sig(n: u8) -> Sig {
        Sig {
            hash: [n; 32],
            size: 1000 + n as u64,
        }
    }

    #[test]
    fn changes_round_trip() {
        let all = [
            Change::Source {
                sig: sig(7),
                src: "M00/0A/3F/abc.jpg".into(),
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
                sig: sig(1),
                refs: 3,
                src: "M00/00/00/a".into(),
            },
            Entry {
                sig: sig(2),
                refs: 0,
                src: "M01/FF/FF/b.txt".into(),
            },
        ];
        let bytes = encode_snapshot(9, &e);
        assert_eq!(decode_snapshot(&bytes).unwrap(), (9, e));
        assert!(decode_snapshot(b"fdfs-dedup2 1\nzz 1 1 a\n").is_err());
        assert!(decode_snapshot(b"other 1\n").is_err());
        // Version 1, with SHA-1 signatures.
        let v1 = format!("fdfs-dedup 1\n{} 5 1 M00/00/00/a\n", "ab".repeat(20));
        assert!(decode_snapshot(v1.as_bytes()).is_err());
    }

    #[test]
    fn a_cut_last_line_is_dropped_and_bad_lines_counted() {
        let mut log = log_header(4).into_bytes();
        log.extend_from_slice(b"+ a b\nnonsense\n- a b\nX a");
        let r = decode_log(&log).unwrap();
        assert_eq!(r.generation, 4);
        assert_eq!(r.changes.len(), 2);
        assert_eq!(r.bad_lines, vec![3]);
        assert!(decode_log(b"fdfs-dedup2-log x\n").is_none());
        assert!(decode_log(b"fdfs-dedup-log 4\n").is_none(), "version 1");
    }
}
