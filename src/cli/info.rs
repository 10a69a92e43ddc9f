//! `fdfs info`: size, CRC32, creation time and source of a file.

use super::CliResult;
use super::local_time::local_time;
use super::opts::{ClientOpts, storage_at};
use crate::client::Error;
use clap::Args as ClapArgs;
use std::io::Write;

/// Arguments of `fdfs info`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// File ID.
    pub file_id: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Ask this storage server (IP:PORT) directly instead of the tracker's choice.
    #[arg(long, value_name = "IP:PORT")]
    pub storage: Option<String>,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Run `fdfs info`; errors name the file ID.
pub fn run(a: Args) -> CliResult {
    let id = a.file_id.clone();
    run_inner(a).map_err(super::about(&id))
}

fn run_inner(a: Args) -> CliResult {
    let tracker = a.client.tracker()?;
    let (mut s, group, remote) = storage_at(&tracker, &a.file_id, false, a.storage.as_deref())?;
    let i = s.file_info(&group, &remote)?;
    // Last: a C storage does not know the command and may close.
    let shared = match s.file_dedup(&group, &remote) {
        Ok(d) => {
            s.quit();
            d
        }
        // The figures are extra: the file's info is printed without them.
        Err(_) => None,
    };
    // Files backed by the same stored content (this one included); None:
    // not known (the storage does not say).
    let sharing = shared.as_ref().map(|d| d.refs);
    let text = if a.json {
        serde_json::json!({
            "file_id": a.file_id,
            "group": group,
            "size": i.size,
            "crc32": i.crc32,
            "crc32_hex": format!("{:08x}", i.crc32),
            "create_time": i.create_time,
            "source_ip": i.source_ip,
            "shared_with": sharing.map(|n| n.saturating_sub(1)),
            "content_source": shared.as_ref().filter(|d| d.refs > 0).map(|d| &d.source),
        })
        .to_string()
    } else {
        let content = match sharing {
            None => "unknown (no dedup figures from this storage)".to_string(),
            Some(0) => "own copy".to_string(),
            Some(1) => "deduplicated, not shared yet".to_string(),
            Some(n) => format!("shared with {} other files", n - 1),
        };
        format!(
            "file_id: {}\nsize: {}\ncrc32: {:08x} ({})\ncreate_time: {}\nsource_ip: {}\ncontent: {}",
            a.file_id,
            i.size,
            i.crc32,
            i.crc32,
            local_time(i.create_time),
            i.source_ip,
            content
        )
    };
    writeln!(std::io::stdout().lock(), "{text}").map_err(|err| Error::Local {
        path: "stdout".into(),
        err,
    })?;
    Ok(())
}
