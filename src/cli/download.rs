//! `fdfs download`: fetch a file (or a range of it) to a path or stdout.

use super::interrupt::TempPaths;
use super::opts::{ClientOpts, storage_at};
use super::progress::Progress;
use super::{CliError, CliResult};
use crate::client::Error;
use clap::Args as ClapArgs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Arguments of `fdfs download`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// File ID, e.g. group1/M00/00/00/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt
    pub file_id: String,
    /// Where to write: a file, a directory (the file ID's last part in it), a
    /// device or FIFO, or - for standard output (default: the file ID's last
    /// part, in the current directory, not replacing a file without --force).
    pub dest: Option<PathBuf>,
    /// Start at this byte offset.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Download at most this many bytes (0 = to the end).
    #[arg(long, default_value_t = 0)]
    pub length: u64,
    /// Ask this storage server (IP:PORT) directly instead of the tracker's choice.
    #[arg(long, value_name = "IP:PORT")]
    pub storage: Option<String>,
    /// Without DEST, replace a file of the same name here; with -, write to
    /// standard output even when it is a terminal.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Run `fdfs download`, registering its temporary file in `temps` (removed
/// on a signal); errors name the file ID.
pub fn run(a: Args, temps: TempPaths) -> CliResult {
    let id = a.file_id.clone();
    run_inner(a, &temps).map_err(super::about(&id))
}

fn run_inner(a: Args, temps: &TempPaths) -> CliResult {
    let (_, remote) = crate::client::split_file_id(&a.file_id)?;
    let base_name = remote.rsplit('/').next().unwrap_or("download");
    let dest = match a.dest.clone() {
        // Into a directory under the file's own name, as cp does.
        Some(d) if d.is_dir() => d.join(base_name),
        Some(d) => d,
        None => PathBuf::from(base_name),
    };
    if !a.force {
        refuse_surprises(&dest, a.dest.is_none())?;
    }
    let tracker = a.client.tracker()?;
    let (mut s, group, remote) = storage_at(&tracker, &a.file_id, false, a.storage.as_deref())?;
    let mut p = Progress::new(&format!("download {}", a.file_id), 0);
    if dest.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        s.download(
            &group,
            &remote,
            a.offset,
            a.length,
            &mut out,
            &mut |d, t| p.update(d, t),
        )?;
        out.flush().map_err(|err| Error::Local {
            path: "stdout".into(),
            err,
        })?;
    } else {
        let name = dest.display().to_string();
        let local = |err| Error::Local {
            path: name.clone(),
            err,
        };
        // A device, FIFO or socket (/dev/null, a pipe to another program) is
        // written in place: renaming over it would replace it with a file. A
        // file is written beside itself (beside the file a symlink points
        // to) and renamed, so a failed download never leaves a truncated
        // file under the final name.
        let (file, part) = match not_a_regular_file(&dest) {
            Some(special) => (special.map_err(local)?, None),
            None => {
                let real = std::fs::canonicalize(&dest).unwrap_or(dest);
                let tmp = part_path(&real);
                (temps.create(&tmp).map_err(local)?, Some((tmp, real)))
            }
        };
        let mut f = std::io::BufWriter::with_capacity(256 * 1024, file);
        let r = s
            .download(&group, &remote, a.offset, a.length, &mut f, &mut |d, t| {
                p.update(d, t)
            })
            .and_then(|_| f.flush().map_err(local));
        let r = match &part {
            Some((tmp, real)) => r.and_then(|_| temps.persist(tmp, real).map_err(local)),
            None => r,
        };
        if let (Err(_), Some((tmp, _))) = (&r, &part) {
            temps.remove(tmp);
        }
        r?;
    }
    p.finish();
    s.quit();
    Ok(())
}

/// What a download does only with --force: replace a file that the user did
/// not name (no DEST given), or write file content to a terminal.
fn refuse_surprises(dest: &Path, implicit: bool) -> CliResult {
    if dest.as_os_str() == "-" && std::io::stdout().is_terminal() {
        return Err(CliError::Usage(
            "standard output is a terminal: redirect it, or use --force to print the file there"
                .into(),
        ));
    }
    if implicit && std::fs::symlink_metadata(dest).is_ok() {
        return Err(CliError::Usage(format!(
            "{} exists: give DEST, or use --force to replace it",
            dest.display()
        )));
    }
    Ok(())
}

/// `.NAME.fdfs-part` beside `dest`: where a download is written first.
fn part_path(dest: &std::path::Path) -> PathBuf {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    dir.join(format!(
        ".{}.fdfs-part",
        dest.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("download")
    ))
}

/// If `dest` exists and (after symlinks) is not a regular file or a
/// directory: it, opened for writing.
fn not_a_regular_file(dest: &std::path::Path) -> Option<std::io::Result<std::fs::File>> {
    let m = std::fs::metadata(dest).ok()?;
    if m.is_file() || m.is_dir() {
        return None;
    }
    Some(std::fs::OpenOptions::new().write(true).open(dest))
}
