//! `fdfs delete`: delete one or more files.

use super::CliResult;
use super::opts::{ClientOpts, storage_for};
use clap::Args as ClapArgs;

/// Arguments of `fdfs delete`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// File IDs to delete.
    #[arg(required = true)]
    pub file_ids: Vec<String>,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Run `fdfs delete`: every ID is tried; the first error is returned after
/// the others were attempted, and each failure is reported.
pub fn run(a: Args) -> CliResult {
    let tracker = a.client.tracker()?;
    let mut first_err = None;
    for id in &a.file_ids {
        let r = storage_for(&tracker, id, true).and_then(|(mut s, g, r)| {
            s.delete(&g, &r)?;
            s.quit();
            Ok(())
        });
        if let Err(e) = r {
            let e = super::CliError::About(id.clone(), e);
            if first_err.is_some() {
                eprintln!("fdfs: {e}");
            } else {
                first_err = Some(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}
