//! `fdfs token`: a download URL signed with FastDFS's anti-steal token, for
//! scripts and web back ends that hand out links.

use super::opts::ClientOpts;
use super::{CliError, CliResult};
use crate::client::Error;
use crate::http::token;
use clap::Args as ClapArgs;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `fdfs token`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// File ID.
    pub file_id: String,
    /// Seconds the URL stays valid (default: the servers' token TTL,
    /// http.anti_steal.token_ttl in client.conf, 600 if not set). The servers
    /// must use the same TTL as client.conf says.
    #[arg(long, value_name = "SECS")]
    pub ttl: Option<u64>,
    /// Start of the URL, such as https://img.example.com (default: http://
    /// the address of a storage holding the file, asked of the tracker, with
    /// --port).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// HTTP port of the storages, for the default base URL (default:
    /// http.server_port in client.conf).
    #[arg(long)]
    pub port: Option<u16>,
    /// Read the secret key from this file (default: $FDFS_HTTP_SECRET, else
    /// http.anti_steal.secret_key in client.conf).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Print only the query (token=...&ts=...).
    #[arg(long)]
    pub query_only: bool,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Run `fdfs token`.
pub fn run(a: Args) -> CliResult {
    let id = a.file_id.clone();
    run_inner(a).map_err(super::about(&id))
}

fn run_inner(a: Args) -> CliResult {
    let (group, remote) = crate::client::split_file_id(&a.file_id)?;
    let cfg = a.client.client_config()?;
    let secret = match &a.secret_file {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|err| Error::Local {
                path: p.display().to_string(),
                err,
            })?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        None => std::env::var("FDFS_HTTP_SECRET").unwrap_or(cfg.http.secret_key.clone()),
    };
    if secret.is_empty() {
        return Err(CliError::Usage(
            "no secret key: --secret-file, $FDFS_HTTP_SECRET or http.anti_steal.secret_key in client.conf"
                .into(),
        ));
    }
    let server_ttl = cfg.http.token_ttl;
    let ttl = a.ttl.unwrap_or(server_ttl);
    // Servers accept a token while now - ts <= their TTL.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ts = (now + ttl).saturating_sub(server_ttl).max(1);
    let file_id = format!("{group}/{remote}");
    let query = format!(
        "token={}&ts={ts}",
        token::make(secret.as_bytes(), &file_id, ts)
    );
    let text = if a.query_only {
        query
    } else {
        let base = match &a.base_url {
            Some(b) => b.trim_end_matches('/').to_string(),
            None => {
                let port = a.port.unwrap_or(cfg.http.server_port);
                if port == 0 {
                    return Err(CliError::Usage(
                        "no HTTP port: --base-url, --port or http.server_port in client.conf"
                            .into(),
                    ));
                }
                let t = a.client.tracker()?;
                let target = t.query_fetch(&group, &remote, false)?;
                format!("http://{}:{port}", target.ip)
            }
        };
        format!("{base}/{file_id}?{query}")
    };
    writeln!(std::io::stdout().lock(), "{text}").map_err(|err| Error::Local {
        path: "stdout".into(),
        err,
    })?;
    Ok(())
}
