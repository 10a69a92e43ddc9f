//! What the dedup index trusts at start: the data tree. The log's changes
//! are checked against it ([`replay`]), and after a crash with
//! `durable_uploads`, or when the snapshot is unreadable, the links are
//! counted in it again ([`recount`]).

use super::{Content, Key, Name, content_key, forget, insert};
use crate::layout::dedup::Change;
use crate::layout::{RemoteName, StorePath};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Remote names and paths of our store paths.
pub(super) struct Names<'a> {
    pub(super) paths: &'a [StorePath],
}

impl Names<'_> {
    pub(super) fn path_of(&self, remote: &str) -> Option<PathBuf> {
        let n = RemoteName::parse(remote).ok()?;
        let sp = self.paths.iter().find(|p| p.index == n.store_index)?;
        Some(sp.file_path(&n))
    }

    /// The remote name of `target`, a path into one of our store paths.
    pub(super) fn remote_of(&self, target: &Path) -> Option<String> {
        for sp in self.paths {
            let Ok(rest) = target.strip_prefix(sp.data_dir()) else {
                continue;
            };
            let parts: Vec<&str> = rest.iter().map(|p| p.to_str()).collect::<Option<_>>()?;
            let [high, low, name] = parts.as_slice() else {
                return None;
            };
            let remote = format!("M{:02X}/{high}/{low}/{name}", sp.index);
            return RemoteName::parse(&remote).ok().map(|n| n.as_string());
        }
        None
    }

    /// Whether `link` is a symlink pointing at `src`.
    pub(super) fn links_to(&self, link: &str, src: &str) -> bool {
        let Some(path) = self.path_of(link) else {
            return false;
        };
        fs::read_link(path)
            .ok()
            .and_then(|t| self.remote_of(&t))
            .is_some_and(|s| s == src)
    }

    pub(super) fn exists(&self, remote: &str) -> bool {
        self.path_of(remote)
            .is_some_and(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
    }
}

/// Apply the log's changes to the snapshot's index, trusting only what is on
/// disk: a link counts if it is there now and did not count if the log's first
/// word about it is its creation. Returns the sources removed here.
pub(super) fn replay(
    names: &Names,
    by_key: &mut HashMap<Key, Vec<Name>>,
    by_src: &mut HashMap<Name, Content>,
    changes: &[Change],
) -> Vec<String> {
    // Per link: its source and whether it existed at the snapshot.
    let mut links: HashMap<&str, (&str, bool)> = HashMap::new();
    let mut sources = Vec::new();
    let mut drops = Vec::new();
    for c in changes {
        match c {
            Change::Source { key, hash, src } => {
                insert(by_key, by_src, src.clone(), Content::new(*key, *hash, 0));
                sources.push(src.as_str());
            }
            Change::Hash { src, hash } => {
                if let Some(c) = by_src.get_mut(src.as_str()) {
                    c.hash = Some(*hash);
                }
            }
            Change::Link { src, link } => {
                links.entry(link).or_insert((src, false));
            }
            Change::Unlink { src, link } | Change::Counted { src, link } => {
                links.entry(link).or_insert((src, true));
            }
            Change::Drop { src } => drops.push(src.as_str()),
        }
    }
    for (link, (src, before)) in links {
        let now = names.links_to(link, src);
        if let Some(c) = by_src.get_mut(src) {
            c.refs = (c.refs as i64 + now as i64 - before as i64).max(0) as u32;
        }
    }
    // A source whose file never got its name (a crash before the rename).
    for src in sources {
        if by_src.get(src).is_some_and(|c| c.refs == 0) && !names.exists(src) {
            forget(by_key, by_src, src);
        }
    }
    let mut removed = Vec::new();
    for src in drops {
        if by_src.get(src).is_none_or(|c| c.refs == 0) {
            if let Some(p) = names.path_of(src) {
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => log::warn!("dedup: removing {}: {e}", p.display()),
                }
            }
            forget(by_key, by_src, src);
            removed.push(src.to_string());
        }
    }
    removed
}

/// Count the links in the data tree: every symlink into our store paths is a
/// link, every regular file it points at a source (its key taken from its
/// name when the index does not know it yet, see [`content_key`]). Sources
/// nothing links to keep a count of 0.
pub(super) fn recount(
    names: &Names,
    by_key: &mut HashMap<Key, Vec<Name>>,
    by_src: &mut HashMap<Name, Content>,
) -> io::Result<()> {
    let mut refs: HashMap<String, u32> = HashMap::new();
    for sp in names.paths {
        let data = sp.data_dir();
        for high in read_dir_sorted(&data)? {
            for low in read_dir_sorted(&high)? {
                for f in read_dir_sorted(&low)? {
                    let Ok(m) = fs::symlink_metadata(&f) else {
                        continue;
                    };
                    if !m.file_type().is_symlink() {
                        continue;
                    }
                    if let Some(src) = fs::read_link(&f).ok().and_then(|t| names.remote_of(&t)) {
                        *refs.entry(src).or_insert(0) += 1;
                    }
                }
            }
        }
    }
    for c in by_src.values_mut() {
        c.refs = 0;
    }
    for (src, n) in refs {
        if let Some(c) = by_src.get_mut(src.as_str()) {
            c.refs = n;
            continue;
        }
        let Some(path) = names.path_of(&src) else {
            continue;
        };
        match content_key(&path, &src) {
            Ok((key, hash)) => {
                insert(by_key, by_src, src, Content::new(key, hash, n));
            }
            Err(e) => log::warn!("dedup recount: {} ({n} links): {e}", path.display()),
        }
    }
    Ok(())
}

/// Subdirectories / files of `dir` (only two-hex-digit directories at the
/// upper levels are data directories; that filter is left to the caller's
/// parse of the names).
fn read_dir_sorted(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    match fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd {
                v.push(e?.path());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {}
        Err(e) => return Err(e),
    }
    v.sort();
    Ok(v)
}
