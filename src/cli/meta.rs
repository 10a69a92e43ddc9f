//! `fdfs meta get|set`: a file's metadata as key=value lines.

use super::CliResult;
use super::opts::{ClientOpts, storage_for};
use super::upload::parse_pairs;
use crate::client::Error;
use clap::{Args as ClapArgs, Subcommand};
use std::io::Write;

/// Arguments of `fdfs meta`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub op: Op,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// `get` or `set`.
#[derive(Subcommand, Debug)]
pub enum Op {
    /// Print the metadata, one key=value per line, sorted by key.
    Get {
        /// File ID.
        file_id: String,
    },
    /// Replace the metadata (or merge with --merge).
    Set {
        /// File ID.
        file_id: String,
        /// KEY=VALUE pairs; none with no --merge removes all metadata.
        pairs: Vec<String>,
        /// Keep existing keys, replacing only those given.
        #[arg(long)]
        merge: bool,
    },
}

/// Run `fdfs meta`; errors name the file ID.
pub fn run(a: Args) -> CliResult {
    let id = match &a.op {
        Op::Get { file_id } | Op::Set { file_id, .. } => file_id.clone(),
    };
    run_inner(a).map_err(super::about(&id))
}

fn run_inner(a: Args) -> CliResult {
    let tracker = a.client.tracker()?;
    match a.op {
        Op::Get { file_id } => {
            let (mut s, g, r) = storage_for(&tracker, &file_id, true)?;
            let pairs = s.get_metadata(&g, &r)?;
            s.quit();
            let mut out = std::io::stdout().lock();
            for (k, v) in pairs {
                writeln!(out, "{k}={v}").map_err(|err| Error::Local {
                    path: "stdout".into(),
                    err,
                })?;
            }
        }
        Op::Set {
            file_id,
            pairs,
            merge,
        } => {
            let pairs = parse_pairs(&pairs)?;
            let (mut s, g, r) = storage_for(&tracker, &file_id, true)?;
            s.set_metadata(&g, &r, &pairs, merge)?;
            s.quit();
        }
    }
    Ok(())
}
