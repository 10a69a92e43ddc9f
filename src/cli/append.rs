//! `fdfs append` and `fdfs modify`: write into an appender file.

use super::input;
use super::opts::{ClientOpts, storage_for};
use super::progress::Progress;
use super::{CliResult, about};
use clap::Args as ClapArgs;
use std::path::PathBuf;

/// Arguments of `fdfs append`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Appender file ID (from `fdfs upload --appender`).
    pub file_id: String,
    /// Data to add at the end, or - for standard input (anything but a regular
    /// file is read to its end into a temporary file under $TMPDIR first).
    pub file: PathBuf,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Arguments of `fdfs modify`.
#[derive(ClapArgs, Debug)]
pub struct ModifyArgs {
    /// Appender file ID.
    pub file_id: String,
    /// Byte offset to write at (at most the file's current size).
    pub offset: u64,
    /// Data to write, or - for standard input (anything but a regular file is
    /// read to its end into a temporary file under $TMPDIR first).
    pub file: PathBuf,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Run `fdfs append`.
pub fn run(a: Args) -> CliResult {
    write(&a.file_id, None, &a.file, &a.client).map_err(about(&a.file_id))
}

/// Run `fdfs modify`.
pub fn run_modify(a: ModifyArgs) -> CliResult {
    write(&a.file_id, Some(a.offset), &a.file, &a.client).map_err(about(&a.file_id))
}

fn write(
    file_id: &str,
    offset: Option<u64>,
    file: &std::path::Path,
    client: &ClientOpts,
) -> CliResult {
    let mut src = input::open(file)?;
    let tracker = client.tracker()?;
    let (mut s, _, remote) = storage_for(&tracker, file_id, true)?;
    let size = src.size;
    let mut p = Progress::new(
        &format!(
            "{} {}",
            if offset.is_some() { "modify" } else { "append" },
            src.name
        ),
        size,
    );
    match offset {
        None => s.append(&remote, &mut src.file, size, &mut |d| p.update(d, size))?,
        Some(o) => s.modify(&remote, o, &mut src.file, size, &mut |d| p.update(d, size))?,
    }
    p.finish();
    s.quit();
    Ok(())
}
