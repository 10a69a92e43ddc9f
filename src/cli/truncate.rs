//! `fdfs truncate`: set an appender file's size.

use super::CliResult;
use super::opts::{ClientOpts, storage_for};
use clap::Args as ClapArgs;

/// Arguments of `fdfs truncate`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Appender file ID.
    pub file_id: String,
    /// New size in bytes (larger than now extends it with zeros).
    pub size: u64,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Run `fdfs truncate`.
pub fn run(a: Args) -> CliResult {
    let go = || -> CliResult {
        let tracker = a.client.tracker()?;
        let (mut s, _, remote) = storage_for(&tracker, &a.file_id, true)?;
        s.truncate(&remote, a.size)?;
        s.quit();
        Ok(())
    };
    go().map_err(super::about(&a.file_id))
}
