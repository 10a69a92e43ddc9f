//! Spooling an input of unknown length (standard input, a pipe, a FIFO, a
//! character device) to an unnamed temporary file, so that its size is known
//! before the upload announces it, with memory use bounded by one buffer.

use super::CliError;
use crate::client::OsMessage;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Copy buffer; a pipe hands out at most 64 KiB per read anyway.
const BUF: usize = 256 * 1024;

/// Copy `src` (called `name` in messages) to its end into an unnamed file
/// under TMPDIR and rewind that. Returns the file and the number of bytes.
pub fn spool(src: &mut dyn Read, name: &str) -> Result<(File, u64), CliError> {
    let dir = std::env::temp_dir();
    let tmp_err = |err: io::Error| {
        CliError::Other(format!(
            "{}: spooling {name}: {}",
            dir.display(),
            OsMessage(&err)
        ))
    };
    let mut tmp = unnamed_file(&dir).map_err(tmp_err)?;
    let mut buf = vec![0u8; BUF];
    let mut size = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::Other(format!("{name}: {}", OsMessage(&e)))),
        };
        tmp.write_all(&buf[..n]).map_err(tmp_err)?;
        size += n as u64;
    }
    tmp.rewind().map_err(tmp_err)?;
    Ok((tmp, size))
}

/// A read-write file in `dir` that no other process can see and that is gone
/// however this process ends: O_TMPFILE, or where the file system lacks it a
/// hidden name removed right after creation.
fn unnamed_file(dir: &Path) -> io::Result<File> {
    let unnamed = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match unnamed {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) => {}
        r => return r,
    }
    let mut attempt = 0;
    loop {
        let path = dir.join(format!(".fdfs-spool-{}-{attempt}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spools_a_reader_and_leaves_no_name() {
        use std::os::unix::fs::MetadataExt;
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let (mut f, size) = spool(&mut io::Cursor::new(&data), "test").unwrap();
        assert_eq!(size, data.len() as u64);
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        assert!(back == data, "spooled bytes differ");
        // Unnamed: no link left in the file system.
        assert_eq!(f.metadata().unwrap().nlink(), 0);
    }
}
