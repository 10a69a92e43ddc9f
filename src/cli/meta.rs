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
        /// Print one JSON object of key -> value instead.
        #[arg(long)]
        json: bool,
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
        Op::Get { file_id, .. } | Op::Set { file_id, .. } => file_id.clone(),
    };
    run_inner(a).map_err(super::about(&id))
}

fn run_inner(a: Args) -> CliResult {
    let tracker = a.client.tracker()?;
    match a.op {
        Op::Get { file_id, json } => {
            let (mut s, g, r) = storage_for(&tracker, &file_id, true)?;
            let mut pairs = s.get_metadata(&g, &r)?;
            s.quit();
            // As documented (a server keeps them in the order they were set).
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let text = if json {
                let map: serde_json::Map<String, serde_json::Value> =
                    pairs.into_iter().map(|(k, v)| (k, v.into())).collect();
                format!("{}\n", serde_json::Value::Object(map))
            } else {
                pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).map_err(|err| Error::Local {
                path: "stdout".into(),
                err,
            })?;
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
