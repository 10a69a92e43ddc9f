//! Reading what a client command sends. The protocol announces the size
//! before the body, so a regular file is sent as it is, and anything else
//! (standard input, a pipe, FIFO, character device, `<(cmd)`) is first read to
//! its end into an unnamed temporary file (see `client::spool`).

use super::CliError;
use crate::client::OsMessage;
use crate::client::spool::spool;
use std::fs::File;
use std::io::Seek;
use std::os::fd::AsFd;
use std::path::Path;

/// An opened input with its size and a name for messages.
pub struct Input {
    pub file: File,
    pub size: u64,
    pub name: String,
}

/// Open `path`, or standard input for "-".
pub fn open(path: &Path) -> Result<Input, CliError> {
    if path.as_os_str() == "-" {
        let name = "stdin".to_string();
        let fd = std::io::stdin().as_fd().try_clone_to_owned();
        let fd = fd.map_err(|e| local(&name, e))?;
        return sized(File::from(fd), name);
    }
    let name = path.display().to_string();
    let f = File::open(path).map_err(|e| local(&name, e))?;
    sized(f, name)
}

/// `f` as an input: a regular file from its current position (standard input
/// redirected from a file may have been read partly), anything else spooled.
fn sized(mut f: File, name: String) -> Result<Input, CliError> {
    let m = f.metadata().map_err(|e| local(&name, e))?;
    if m.is_dir() {
        return Err(CliError::Usage(format!("{name}: Is a directory")));
    }
    if m.is_file() {
        let pos = f.stream_position().map_err(|e| local(&name, e))?;
        return Ok(Input {
            file: f,
            size: m.len().saturating_sub(pos),
            name,
        });
    }
    let (file, size) = spool(&mut f, &name)?;
    Ok(Input { file, size, name })
}

fn local(name: &str, err: std::io::Error) -> CliError {
    CliError::Other(format!("{name}: {}", OsMessage(&err)))
}

/// The ext for a file ID: `--ext`, else the file's own extension if valid.
pub fn ext_for(path: &Path, given: Option<&str>) -> Result<String, super::CliError> {
    let ext = match given {
        Some(e) => e.trim_start_matches('.').to_string(),
        None if path.as_os_str() == "-" => String::new(),
        None => path
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| crate::proto::valid_ext(e))
            .unwrap_or("")
            .to_string(),
    };
    if !crate::proto::valid_ext(&ext) {
        return Err(super::CliError::Usage(format!(
            "--ext {ext}: at most 6 characters of A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(ext)
}
