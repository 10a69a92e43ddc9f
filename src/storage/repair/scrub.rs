//! The scrub: read every file of every store path and check it against what
//! its ID promises; a damaged or missing file is replaced by an intact copy
//! from a peer at once (`peer::fetch_intact`).

use super::Figures;
use super::peer::{self, Expect};
use super::tree::{self, Named};
use crate::layout::binlog::op;
use crate::proto::repair::Kind;
use crate::storage::Store;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What reading a file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact,
    /// Not the size or CRC its ID promises, or unreadable.
    Corrupt(String),
    /// A link whose content is gone.
    Missing,
    /// Deleted while we looked.
    Gone,
}

/// Reads at most `rate` bytes per second on average (0: no limit).
struct Throttle {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Throttle {
    fn pace(&mut self, n: u64, quit: &AtomicBool) {
        self.bytes += n;
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        while let Some(wait) = due.checked_sub(self.start.elapsed()) {
            if wait.is_zero() || quit.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(wait.min(Duration::from_millis(100)));
        }
    }
}

/// Scrub every store path (that is not being refilled). A throttled
/// (background) scrub reads at `scrub_bytes_per_second` and gives way to a
/// manual pass.
pub fn run(store: &Arc<Store>, throttled: bool, quit: &AtomicBool) {
    let f = &store.repair.figures;
    let total: u64 = store.paths.iter().map(|sp| count(store, sp.index)).sum();
    let appenders = appender_sizes(store, None);
    f.scrub_total.store(total, Ordering::Relaxed);
    f.scrub_done.store(0, Ordering::Relaxed);
    let mut pace = Throttle {
        rate: if throttled {
            store.cfg.scrub_bytes_per_second
        } else {
            0
        },
        start: Instant::now(),
        bytes: 0,
    };
    let n = store.cfg.subdir_count_per_path.clamp(1, 256) as usize;
    for sp in &store.paths {
        for high in 0..n {
            for low in 0..n {
                let stop = quit.load(Ordering::Relaxed)
                    || store.repair.recovering(sp.index as usize)
                    || throttled && store.repair.manual_waiting();
                if stop {
                    return;
                }
                let dir = sp
                    .data_dir()
                    .join(format!("{high:02X}"))
                    .join(format!("{low:02X}"));
                let Ok(rd) = fs::read_dir(&dir) else { continue };
                for de in rd.flatten() {
                    let Some(name) = de.file_name().to_str().map(str::to_string) else {
                        continue;
                    };
                    let Some(named) = tree::classify(sp.index, high as u8, low as u8, &name) else {
                        continue;
                    };
                    let path = dir.join(&name);
                    let read_before = pace.bytes;
                    let mut verdict = check(&path, &named, &mut pace, quit);
                    Figures::add(&f.scrubbed_bytes, pace.bytes - read_before);
                    if verdict == Verdict::Intact && named.kind == Kind::Appender {
                        verdict = check_appender(store, &named, &path, &appenders);
                    }
                    Figures::add(&f.scrub_done, 1);
                    settle(store, &named, &path, verdict);
                }
            }
        }
    }
}

/// What the binlog says each appender file's size is now: the end of its
/// last append or truncate (and of a modify past it). An appender whose
/// binlog lines say neither (only created, or created before the binlog
/// began) is not in the map. Only `only` when given.
pub fn appender_sizes(store: &Store, only: Option<&str>) -> HashMap<String, u64> {
    let mut sizes: HashMap<String, u64> = HashMap::new();
    let mut r = crate::storage::binlog::Reader::new(store.binlog.dir(), 0, 0);
    let end = store.binlog.write_pos();
    let two = |s: &str| -> Option<(u64, u64)> {
        let (a, b) = s.split_once(' ')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    while let Ok(Some(rec)) = r.next(end) {
        if only.is_some_and(|o| o != rec.name) {
            continue;
        }
        let is_appender = || {
            crate::layout::RemoteName::parse(&rec.name)
                .ok()
                .and_then(|n| n.info().ok())
                .is_some_and(|i| i.is_appender())
        };
        match rec.op.to_ascii_uppercase() {
            op::APPEND | op::MODIFY | op::TRUNCATE if is_appender() => {
                let Some((a, b)) = two(&rec.extra) else {
                    continue;
                };
                match rec.op.to_ascii_uppercase() {
                    op::APPEND => {
                        sizes.insert(rec.name, a + b);
                    }
                    op::TRUNCATE => {
                        sizes.insert(rec.name, b);
                    }
                    _ => {
                        if let Some(s) = sizes.get_mut(&rec.name) {
                            *s = (*s).max(a + b);
                        }
                    }
                }
            }
            op::DELETE | op::CREATE => {
                sizes.remove(&rec.name);
            }
            // Regenerated: the old name is gone.
            op::RENAME => {
                sizes.remove(&rec.extra);
            }
            _ => {}
        }
    }
    sizes
}

/// An appender file against its recorded state: its size must be what its
/// binlog lines say. A mismatch is checked again under the file's lock with
/// the binlog read anew (a change may have come in since the scrub began).
fn check_appender(
    store: &Store,
    named: &Named,
    path: &Path,
    sizes: &HashMap<String, u64>,
) -> Verdict {
    let name = named.remote_string();
    let Some(&want) = sizes.get(&name) else {
        return Verdict::Intact;
    };
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).ok();
    if size(path) == Some(want) {
        return Verdict::Intact;
    }
    let _guard = store.file_locks.lock(path);
    let now = appender_sizes(store, Some(&name));
    match (now.get(&name), size(path)) {
        (_, None) => Verdict::Gone,
        (Some(&w), Some(s)) if s != w => Verdict::Corrupt(format!(
            "{s} bytes where its binlog says {w} (appender file)"
        )),
        _ => Verdict::Intact,
    }
}

/// Files of the group in store path `index`, for the progress figure.
fn count(store: &Store, index: u8) -> u64 {
    let sp = &store.paths[index as usize];
    let n = store.cfg.subdir_count_per_path.clamp(1, 256) as usize;
    let mut total = 0;
    for high in 0..n {
        for low in 0..n {
            let dir = sp
                .data_dir()
                .join(format!("{high:02X}"))
                .join(format!("{low:02X}"));
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            total += rd
                .flatten()
                .filter(|de| {
                    de.file_name().to_str().is_some_and(|name| {
                        tree::classify(sp.index, high as u8, low as u8, name).is_some()
                    })
                })
                .count() as u64;
        }
    }
    total
}

/// Read `path` whole and judge it.
fn check(path: &Path, named: &Named, pace: &mut Throttle, quit: &AtomicBool) -> Verdict {
    let link = match fs::symlink_metadata(path) {
        Ok(m) => m.file_type().is_symlink(),
        Err(_) => return Verdict::Gone,
    };
    if link {
        // Dedup: the content is a file of the tree, checked on its own.
        return match fs::metadata(path) {
            Ok(_) => Verdict::Intact,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Verdict::Missing,
            Err(e) => Verdict::Corrupt(format!("its link cannot be followed: {e}")),
        };
    }
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Verdict::Gone,
        Err(e) => return Verdict::Corrupt(format!("cannot be opened: {e}")),
    };
    // A file that is in the page cache before the scrub reads it is wanted
    // there (it is being served); one that is not goes again afterwards.
    let len = file.metadata().map_or(0, |m| m.len());
    let was_cached = crate::net::pages_present(&file, 0, len) != Some(false);
    let mut crc = crc32fast::Hasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                crc.update(&buf[..k]);
                size += k as u64;
                pace.pace(k as u64, quit);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Verdict::Corrupt(format!("read error at byte {size}: {e}")),
        }
    }
    // What was read for checking should not push hot files out of the cache.
    if !was_cached {
        let _ = nix::fcntl::posix_fadvise(
            file.as_fd(),
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
    }
    judge(named, size, crc.finalize())
}

/// Whether `size` and `crc` are what `named`'s ID promises.
pub fn judge(named: &Named, size: u64, crc: u32) -> Verdict {
    match named.promised() {
        Some((want_size, _)) if size != want_size => {
            Verdict::Corrupt(format!("{size} bytes where its ID says {want_size}"))
        }
        Some((_, want_crc)) if crc != want_crc => {
            Verdict::Corrupt(format!("CRC32 {crc:08x} where its ID says {want_crc:08x}"))
        }
        _ => Verdict::Intact,
    }
}

/// Count what was found and replace a damaged or missing file.
fn settle(store: &Store, named: &Named, path: &Path, verdict: Verdict) {
    let f = &store.repair.figures;
    let why = match verdict {
        Verdict::Intact => {
            Figures::add(&f.scrubbed_files, 1);
            return;
        }
        Verdict::Gone => return,
        Verdict::Corrupt(why) => {
            Figures::add(&f.scrubbed_files, 1);
            Figures::add(&f.corrupt, 1);
            why
        }
        Verdict::Missing => {
            Figures::add(&f.missing, 1);
            "its content is gone".to_string()
        }
    };
    log::warn!(
        "scrub: {} ({}) is damaged: {why}; fetching an intact copy from a peer",
        named.remote_string(),
        path.display()
    );
    let expect = match named.kind {
        Kind::Normal => Expect::Promised,
        _ => Expect::Any,
    };
    match peer::fetch_intact(store, named, expect, None) {
        Ok(from) => {
            Figures::add(&f.repaired, 1);
            log::info!(
                "scrub: {} replaced by an intact copy from {from}",
                named.remote_string()
            );
        }
        Err(e) if !tree::entry_exists(path) => {
            log::info!(
                "scrub: {} was deleted meanwhile ({e})",
                named.remote_string()
            );
        }
        Err(e) => {
            Figures::add(&f.unrepairable, 1);
            log::error!(
                "scrub: {} ({}) is damaged and no peer has it intact: {e}; kept as it is",
                named.remote_string(),
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_checks_size_then_crc() {
        let info = crate::layout::NameInfo {
            source: crate::layout::Source::Id(1),
            timestamp: 1,
            size_field: crate::layout::file_id::normal_size_field(3, 5),
            crc32: crc32fast::hash(b"abc"),
        };
        let name = format!("{}1234567", info.encode());
        let n = tree::classify(0, 0, 0, &name).unwrap();
        assert_eq!(judge(&n, 3, crc32fast::hash(b"abc")), Verdict::Intact);
        assert!(matches!(judge(&n, 2, 0), Verdict::Corrupt(w) if w.contains("2 bytes")));
        assert!(matches!(judge(&n, 3, 1), Verdict::Corrupt(w) if w.contains("CRC32")));
        let appender = tree::Named {
            kind: Kind::Appender,
            ..n
        };
        assert_eq!(judge(&appender, 99, 1), Verdict::Intact);
    }
}
