//! Reading what a client command sends: a file, or standard input (read
//! whole, because the protocol announces the size first).

use crate::client::Error;
use std::io::Read;
use std::path::Path;

/// An opened input with its size and a name for messages.
pub struct Input {
    pub reader: Box<dyn Read>,
    pub size: u64,
    pub name: String,
}

/// Open `path`, or standard input for "-".
pub fn open(path: &Path) -> Result<Input, Error> {
    let name = path.display().to_string();
    let local = |err: std::io::Error| Error::Local {
        path: name.clone(),
        err,
    };
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(local)?;
        let size = buf.len() as u64;
        return Ok(Input {
            reader: Box::new(std::io::Cursor::new(buf)),
            size,
            name: "stdin".into(),
        });
    }
    let f = std::fs::File::open(path).map_err(local)?;
    let size = f.metadata().map_err(local)?.len();
    Ok(Input {
        reader: Box::new(f),
        size,
        name,
    })
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
