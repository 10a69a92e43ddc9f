//! `fdfs bench --disk-commit DIR`: the most durable commits per second the
//! disk under DIR allows, without a server. Client threads each add a record
//! of `--size` bytes to a `durable_uploads` journal there (the storage's own,
//! through [`crate::storage::CommitProbe`]) and wait until its round is on disk.
//! With `--loopback` each client reaches its committer over a loopback TCP
//! connection first, which adds what a request's round trip costs on this
//! machine (wake-ups included) and nothing else: no protocol, no files.
//! With `--files` each commit first creates its file in a `XX/YY` tree and
//! appends a binlog line, as a storage must for an upload.
//!
//! A storage with `durable_uploads` does that work and more, so its durable
//! upload rate stays below these figures; they tell whether a slow durable
//! rate is the server's or the disk's.

use super::bench::{Args, Tally, content, report};
use super::{CliError, CliResult};
use crate::storage::CommitProbe;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The probe's journal file, under the directory measured.
const FILE: &str = "fdfs_commit_probe.dat";
/// Its size: the storage's default `durable_journal_size`.
const SIZE: u64 = 64 * 1024 * 1024;
/// With `--files`: the directory of the files made, and the tree's fan-out.
const TREE: &str = "fdfs_commit_probe";
const FANOUT: u64 = 16;

/// What each commit does: its journal record, after its file and binlog
/// line with `--files`.
struct Committer {
    journal: CommitProbe,
    /// The tree's root and its binlog (appended to).
    files: Option<(std::path::PathBuf, std::fs::File)>,
}

impl Committer {
    /// Commit `data` as file number `n` of client `client`, durably.
    fn commit(&self, client: usize, n: u64, data: &[u8]) -> std::io::Result<()> {
        let name = format!(
            "{:02X}/{:02X}/c{client}_{n}",
            n % FANOUT,
            n / FANOUT % FANOUT
        );
        if let Some((root, binlog)) = &self.files {
            std::fs::File::create_new(root.join(&name))?.write_all(data)?;
            let mut binlog: &std::fs::File = binlog;
            binlog.write_all(format!("1700000000 C {name}\n").as_bytes())?;
        }
        self.journal.commit_file(&name, data)
    }
}

/// Make the tree `--files` writes in, under `dir`.
fn make_tree(dir: &Path) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let root = dir.join(TREE);
    for i in 0..FANOUT * FANOUT {
        std::fs::create_dir_all(root.join(format!("{:02X}/{:02X}", i / FANOUT, i % FANOUT)))?;
    }
    let binlog = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(root.join("binlog"))?;
    Ok((root, binlog))
}

/// Run the probe on `dir`, as `a` says.
pub fn run(a: &Args, dir: &Path) -> CliResult {
    let md =
        std::fs::metadata(dir).map_err(|e| CliError::Other(format!("{}: {e}", dir.display())))?;
    if !md.is_dir() {
        return Err(CliError::Usage(format!(
            "--disk-commit {}: not a directory",
            dir.display()
        )));
    }
    if a.size == 0 || a.size > CommitProbe::MAX_FILE {
        return Err(CliError::Usage(format!(
            "--size {}: 1 byte to {} bytes with --disk-commit",
            a.size,
            CommitProbe::MAX_FILE
        )));
    }
    let (path, tree) = (dir.join(FILE), dir.join(TREE));
    let err = |p: &Path, e: std::io::Error| CliError::Other(format!("{}: {e}", p.display()));
    if a.files && tree.exists() {
        return Err(CliError::Usage(format!(
            "--files: {} exists (left by a probe that was stopped?): remove it first",
            tree.display()
        )));
    }
    let files = match a.files {
        true => Some(make_tree(dir).map_err(|e| err(&tree, e))?),
        false => None,
    };
    let journal = CommitProbe::start(&path, SIZE, dir).map_err(|e| err(&path, e));
    let out = journal.and_then(|journal| measure(a, &Arc::new(Committer { journal, files })));
    let _ = std::fs::remove_file(&path);
    if a.files {
        let _ = std::fs::remove_dir_all(&tree);
    }
    let (secs, tally) = out?;
    let label = match (a.loopback, a.files) {
        (false, false) => "disk-commit",
        (true, false) => "disk-commit-tcp",
        (false, true) => "disk-commit-files",
        (true, true) => "disk-commit-tcp-files",
    };
    report(a, label, a.clients.max(1), secs, tally)
}

fn measure(a: &Args, journal: &Arc<Committer>) -> Result<(f64, Tally), CliError> {
    let clients = a.clients.max(1);
    let (duration, total) = super::bench::limits(a)?;
    let mut conns: Vec<Option<TcpStream>> = if a.loopback {
        committers(journal, a.size as usize, clients)?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        (0..clients).map(|_| None).collect()
    };
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = conns
        .iter_mut()
        .enumerate()
        .map(|(c, conn)| {
            let (journal, issued, mut conn) = (journal.clone(), issued.clone(), conn.take());
            let data = content(a.size, c as u64 + 1);
            std::thread::spawn(move || {
                let mut t = Tally {
                    latencies_us: Vec::with_capacity(1 << 16),
                    ..Tally::default()
                };
                let mut ack = [0u8; 1];
                loop {
                    let i = issued.fetch_add(1, Ordering::Relaxed);
                    if total.is_some_and(|n| i >= n) || start.elapsed() >= duration {
                        break;
                    }
                    let t0 = Instant::now();
                    let done = match &mut conn {
                        None => journal.commit(c, i, &data),
                        Some(s) => s.write_all(&data).and_then(|()| s.read_exact(&mut ack)),
                    };
                    match done {
                        Ok(()) if ack[0] == 0 => t.done(data.len() as u64, t0),
                        Ok(()) => {
                            t.fail("the committer failed: see its file, binlog or journal".into())
                        }
                        Err(e) => {
                            t.fail(e.to_string());
                            break;
                        }
                    }
                }
                t
            })
        })
        .collect();
    let all = Tally::join(handles)?;
    Ok((start.elapsed().as_secs_f64(), all))
}

/// Start `n` committer threads, each behind a loopback connection (the
/// shortest path from a request to the journal: this is a probe, not a
/// server). Each reads records of `size` bytes, commits each and answers
/// one byte, 0 once durable. A thread ends when its client closes.
fn committers(journal: &Arc<Committer>, size: usize, n: usize) -> Result<Vec<TcpStream>, CliError> {
    let io = |e: std::io::Error| CliError::Other(format!("loopback: {e}"));
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let mut clients = Vec::new();
    for c in 0..n {
        let client = TcpStream::connect(addr).map_err(io)?;
        let (mut server, _) = listener.accept().map_err(io)?;
        client.set_nodelay(true).map_err(io)?;
        server.set_nodelay(true).map_err(io)?;
        let journal = journal.clone();
        std::thread::spawn(move || {
            let mut rec = vec![0u8; size];
            let mut n = 0u64;
            while server.read_exact(&mut rec).is_ok() {
                n += 1;
                let status = u8::from(journal.commit(c, n, &rec).is_err());
                if server.write_all(&[status]).is_err() {
                    break;
                }
            }
        });
        clients.push(client);
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        a: Args,
    }

    fn args(dir: &Path, clients: usize, count: u64, flags: &[&str]) -> Args {
        let dir = dir.to_str().unwrap();
        let (c, n) = (clients.to_string(), count.to_string());
        let mut argv = vec![
            "bench",
            "--disk-commit",
            dir,
            "--clients",
            &c,
            "--count",
            &n,
        ];
        argv.extend(flags);
        <Cmd as clap::Parser>::parse_from(argv).a
    }

    /// 40 commits from 2 clients: all counted, all in the journal, and with
    /// --files each file and binlog line made.
    fn probe(flags: &[&str]) {
        let dir = tempfile::tempdir().unwrap();
        let a = args(dir.path(), 2, 40, flags);
        let path = dir.path().join(FILE);
        let journal = CommitProbe::start(&path, SIZE, dir.path()).unwrap();
        let files = a.files.then(|| make_tree(dir.path()).unwrap());
        let c = Arc::new(Committer { journal, files });
        let (_, t) = measure(&a, &c).unwrap();
        assert_eq!(t.errors, 0, "{:?}", t.first_error);
        assert_eq!(t.latencies_us.len(), 40);
        assert_eq!(t.bytes, 40 * 4096);
        assert!(c.journal.added() >= 40);
        if a.files {
            let root = dir.path().join(TREE);
            let binlog = std::fs::read_to_string(root.join("binlog")).unwrap();
            assert_eq!(binlog.lines().count(), 40);
            for line in binlog.lines() {
                let name = line.rsplit(' ').next().unwrap();
                assert_eq!(std::fs::metadata(root.join(name)).unwrap().len(), 4096);
            }
        }
    }

    #[test]
    fn commits_in_process() {
        probe(&[]);
    }

    #[test]
    fn commits_over_loopback() {
        probe(&["--loopback"]);
    }

    #[test]
    fn commits_with_files() {
        probe(&["--files"]);
        probe(&["--files", "--loopback"]);
    }

    #[test]
    fn removes_what_it_made() {
        let dir = tempfile::tempdir().unwrap();
        run(&args(dir.path(), 1, 5, &["--files", "--json"]), dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn flags_need_disk_commit() {
        let argv = ["bench", "--loopback"];
        assert!(<Cmd as clap::Parser>::try_parse_from(argv).is_err());
        let argv = ["bench", "--files"];
        assert!(<Cmd as clap::Parser>::try_parse_from(argv).is_err());
    }
}
