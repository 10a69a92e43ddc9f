//! `run_by_user` / `run_by_group`: a daemon started as root binds its port,
//! hands its directories to that user, then becomes it for good (groups,
//! then user: real, effective and saved ids, so it cannot come back).
//!
//! FastDFS switches only the effective ids, and chowns the directories it
//! creates; here the daemon also takes over what an earlier run as another
//! user left in `base_path/data`, `base_path/logs` and the store paths' file
//! trees, so that nothing it writes later (logs after SIGHUP, binlogs, marks,
//! appender files) is refused.

use super::super::CliError;
use nix::unistd::{Gid, Group, Uid, User, getegid, geteuid, setgid, setgroups, setuid};
use std::ffi::CString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The identity a daemon switches to.
pub struct RunBy {
    /// None: keep the user, change only the group.
    user: Option<User>,
    gid: Gid,
}

impl RunBy {
    /// Look up `run_by_user` and `run_by_group` (the user's own group when
    /// only the user is set). `None` when there is nothing to switch.
    pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<RunBy>, CliError> {
        let lookup =
            |e: nix::errno::Errno| CliError::Other(format!("looking up users: {}", e.desc()));
        let user =
            match user {
                Some(name) => Some(User::from_name(name).map_err(lookup)?.ok_or_else(|| {
                    CliError::Usage(format!("run_by_user = {name}: no such user"))
                })?),
                None => None,
            };
        let gid = match (group, &user) {
            (Some(name), _) => {
                Group::from_name(name)
                    .map_err(lookup)?
                    .ok_or_else(|| {
                        CliError::Usage(format!("run_by_group = {name}: no such group"))
                    })?
                    .gid
            }
            (None, Some(u)) => u.gid,
            (None, None) => return Ok(None),
        };
        let uid = user.as_ref().map_or_else(geteuid, |u| u.uid);
        if uid == geteuid() && gid == getegid() {
            return Ok(None);
        }
        if !geteuid().is_root() {
            let what = match (&user, group) {
                (Some(u), _) => format!("run_by_user = {}", u.name),
                (None, g) => format!("run_by_group = {}", g.unwrap_or_default()),
            };
            return Err(CliError::Usage(format!(
                "{what}: only a daemon started as root can switch (this one runs as uid {})",
                geteuid()
            )));
        }
        Ok(Some(RunBy { user, gid }))
    }

    fn uid(&self) -> Uid {
        self.user.as_ref().map_or_else(geteuid, |u| u.uid)
    }

    /// Give the daemon's directories to the user, before switching:
    /// `logs` and `data_dirs` (`base_path/data`, each store path's `data`,
    /// made if missing) with everything in them, except that a store path's
    /// file tree (`data/HH/`) is walked only while its first directory is not
    /// the user's yet (a new tree, or one from a run as another user): it
    /// may hold millions of files.
    pub fn hand_over(&self, logs: &Path, data_dirs: &[PathBuf]) -> io::Result<()> {
        let owner = (self.uid(), self.gid);
        give_tree(logs, owner)?;
        for dir in data_dirs {
            std::fs::create_dir_all(dir)?;
            let mut tree = Vec::new();
            for e in std::fs::read_dir(dir)? {
                let e = e?;
                let name = e.file_name();
                let hex = name.len() == 2
                    && name
                        .to_str()
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
                if hex && e.file_type()?.is_dir() {
                    tree.push(e.path());
                } else {
                    give_tree(&e.path(), owner)?;
                }
            }
            // "00" last: once it is the user's, the whole tree is.
            tree.sort();
            if let Some(first) = tree.first()
                && !owned_by(first, owner)?
            {
                for sub in tree.iter().rev() {
                    give_tree(sub, owner)?;
                }
            }
            give(dir, owner)?;
        }
        Ok(())
    }

    /// Become the user: supplementary groups, group, then user. For good.
    pub fn switch(&self) -> Result<(), CliError> {
        let fail = |what: &str, e: nix::errno::Errno| {
            CliError::Other(format!(
                "switching to run_by_user/group: {what}: {}",
                e.desc()
            ))
        };
        match &self.user {
            Some(u) => {
                let name = CString::new(u.name.as_bytes())
                    .map_err(|_| CliError::Usage(format!("run_by_user = {}: bad name", u.name)))?;
                nix::unistd::initgroups(&name, self.gid).map_err(|e| fail("initgroups", e))?;
            }
            None => setgroups(&[self.gid]).map_err(|e| fail("setgroups", e))?,
        }
        setgid(self.gid).map_err(|e| fail("setgid", e))?;
        if let Some(u) = &self.user {
            setuid(u.uid).map_err(|e| fail("setuid", e))?;
        }
        Ok(())
    }
}

/// Whether `path` belongs to `owner` already.
fn owned_by(path: &Path, (uid, gid): (Uid, Gid)) -> io::Result<bool> {
    let m = std::fs::symlink_metadata(path)?;
    Ok(m.uid() == uid.as_raw() && m.gid() == gid.as_raw())
}

/// Give `path` (not what a symlink points to) to `owner`.
fn give(path: &Path, owner: (Uid, Gid)) -> io::Result<()> {
    if owned_by(path, owner)? {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(owner.0.as_raw()), Some(owner.1.as_raw()))
        .map_err(|e| io::Error::new(e.kind(), format!("chown {}: {e}", path.display())))
}

/// Give `path` and, for a directory, everything below it to `owner` (the
/// directory last, so that an interrupted walk is redone).
fn give_tree(path: &Path, owner: (Uid, Gid)) -> io::Result<()> {
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if m.is_dir() {
        for e in std::fs::read_dir(path)? {
            give_tree(&e?.path(), owner)?;
        }
    }
    give(path, owner)
}
