//! `fdfs upload`: ask a tracker for a storage, stream the file to it, set
//! metadata if asked, print the file ID.

use super::opts::ClientOpts;
use super::progress::Progress;
use super::{CliError, CliResult};
use crate::client::{Error, StorageClient};
use clap::Args as ClapArgs;
use std::io::{Read, Write};
use std::path::PathBuf;

/// Arguments of `fdfs upload`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// File to upload, or - for standard input.
    pub file: PathBuf,
    /// Upload into this group instead of the one the tracker picks.
    #[arg(long)]
    pub group: Option<String>,
    /// Extension for the file ID (default: the file's own, without the dot; at most 6 chars).
    #[arg(long)]
    pub ext: Option<String>,
    /// Metadata to attach, KEY=VALUE (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
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
    let stdin = a.file.as_os_str() == "-";
    let ext = match &a.ext {
        Some(e) => e.trim_start_matches('.').to_string(),
        None if stdin => String::new(),
        None => a
            .file
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| crate::proto::valid_ext(e))
            .unwrap_or("")
            .to_string(),
    };
    if !crate::proto::valid_ext(&ext) {
        return Err(CliError::Usage(format!(
            "--ext {ext}: at most 6 characters of A-Z a-z 0-9 . _ -"
        )));
    }
    let name = a.file.display().to_string();
    let local = |err: std::io::Error| Error::Local {
        path: name.clone(),
        err,
    };
    // stdin has no size up front: read it whole (the protocol needs the size first).
    let (mut src, size): (Box<dyn Read>, u64) = if stdin {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(local)?;
        let n = buf.len() as u64;
        (Box::new(std::io::Cursor::new(buf)), n)
    } else {
        let f = std::fs::File::open(&a.file).map_err(local)?;
        let n = f.metadata().map_err(local)?.len();
        (Box::new(f), n)
    };
    let tracker = a.client.tracker()?;
    let target = tracker.query_store(a.group.as_deref())?;
    let addr = format!("{}:{}", target.ip, target.port);
    let mut s = StorageClient::connect(&addr, tracker.timeouts)?;
    let mut p = Progress::new(&format!("upload {name}"), size);
    let (group, remote) = s.upload(
        &mut *src,
        size,
        &ext,
        target.store_path_index,
        false,
        &mut |done| p.update(done, size),
    )?;
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
