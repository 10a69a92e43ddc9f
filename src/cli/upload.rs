//! `fdfs upload`: ask a tracker for a storage, stream the file to it, set
//! metadata if asked, print the file ID. Also appender files (`--appender`)
//! and slave files (`--master ID --prefix P`).

use super::input;
use super::opts::{ClientOpts, storage_for};
use super::progress::Progress;
use super::{CliError, CliResult};
use crate::client::{Error, StorageClient};
use clap::Args as ClapArgs;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `fdfs upload`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// File to upload, or - for standard input. Anything but a regular file (a
    /// pipe, FIFO, /dev/stdin) is read to its end into a temporary file under
    /// $TMPDIR first.
    pub file: PathBuf,
    /// Upload into this group instead of the one the tracker picks.
    #[arg(long, conflicts_with = "master")]
    pub group: Option<String>,
    /// Extension for the file ID (default: the file's own, without the dot; at most 6 chars).
    #[arg(long)]
    pub ext: Option<String>,
    /// Metadata to attach, KEY=VALUE (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Make an appender file (can later grow with `fdfs append`, change with `modify`/`truncate`).
    #[arg(long, conflicts_with = "master")]
    pub appender: bool,
    /// Upload a slave file of this master file ID (e.g. a thumbnail), named after it.
    #[arg(long, value_name = "FILE_ID", requires = "prefix")]
    pub master: Option<String>,
    /// With --master: text put into the slave's name after the master's name,
    /// before the extension (FastDFS's "prefix name"): master ...AAAA.jpg with
    /// --prefix _150x150 gives ...AAAA_150x150.jpg (its extension is --ext or
    /// the uploaded file's own, if any).
    #[arg(long, requires = "master")]
    pub prefix: Option<String>,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Parse KEY=VALUE pairs.
pub fn parse_pairs(items: &[String]) -> Result<Vec<(String, String)>, CliError> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CliError::Usage(format!("{kv}: metadata must be KEY=VALUE"))),
        })
        .collect()
}

/// Run `fdfs upload`.
pub fn run(a: Args) -> CliResult {
    let meta = parse_pairs(&a.meta)?;
    let ext = input::ext_for(&a.file, a.ext.as_deref())?;
    if let Some(p) = &a.prefix
        && (p.is_empty() || p.len() > 16 || !crate::proto::valid_name_chars(p))
    {
        return Err(CliError::Usage(format!(
            "--prefix {p}: 1 to 16 characters of A-Z a-z 0-9 . _ -"
        )));
    }
    let mut src = input::open(&a.file)?;
    let tracker = a.client.tracker()?;
    let size = src.size;
    let mut p = Progress::new(&format!("upload {}", src.name), size);
    let (mut s, group, remote) = match &a.master {
        Some(master) => {
            // A slave lives next to its master: on the master's storage.
            let (mut s, _, master_remote) = storage_for(&tracker, master, true)?;
            let prefix = a.prefix.as_deref().unwrap_or_default();
            let (g, r) = s.upload_slave(
                &master_remote,
                prefix,
                &ext,
                &mut src.file,
                size,
                &mut |d| p.update(d, size),
            )?;
            (s, g, r)
        }
        None => {
            let target = tracker.query_store(a.group.as_deref())?;
            let addr = format!("{}:{}", target.ip, target.port);
            let mut s = StorageClient::connect(&addr, tracker.timeouts)?;
            let (g, r) = s.upload(
                &mut src.file,
                size,
                &ext,
                target.store_path_index,
                a.appender,
                &mut |d| p.update(d, size),
            )?;
            (s, g, r)
        }
    };
    p.finish();
    let file_id = format!("{group}/{remote}");
    if !meta.is_empty()
        && let Err(e) = s.set_metadata(&group, &remote, &meta, false)
    {
        // Do not leave a file without the metadata the caller asked for.
        let _ = s.delete(&group, &remote);
        return Err(e.into());
    }
    s.quit();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{file_id}").map_err(|err| Error::Local {
        path: "stdout".into(),
        err,
    })?;
    Ok(())
}
