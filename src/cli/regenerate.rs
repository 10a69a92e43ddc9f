//! `fdfs regenerate`: turn an appender file into a normal one (new file ID
//! with its size and CRC32), printed on stdout.

use super::CliResult;
use super::opts::{ClientOpts, storage_for};
use crate::client::Error;
use clap::Args as ClapArgs;
use std::io::Write;

/// Arguments of `fdfs regenerate`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Appender file ID.
    pub file_id: String,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Run `fdfs regenerate`.
pub fn run(a: Args) -> CliResult {
    let go = || -> CliResult {
        let tracker = a.client.tracker()?;
        let (mut s, _, remote) = storage_for(&tracker, &a.file_id, true)?;
        let (group, new) = s.regenerate(&remote)?;
        s.quit();
        writeln!(std::io::stdout().lock(), "{group}/{new}").map_err(|err| Error::Local {
            path: "stdout".into(),
            err,
        })?;
        Ok(())
    };
    go().map_err(super::about(&a.file_id))
}
