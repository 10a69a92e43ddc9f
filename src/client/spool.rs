//! Spooling an input of unknown length (standard input, a pipe, a FIFO, a
//! character device) to an unnamed temporary file, so that its size is known
//! before the upload announces it, with memory use bounded by one buffer.

use super::Error;
use crate::layout::tmpfile::anonymous;
use std::fs::File;
use std::io::{self, Read, Seek, Write};

/// Copy buffer; a pipe hands out at most 64 KiB per read anyway.
const BUF: usize = 256 * 1024;

/// Copy `src` (called `name` in messages) to its end into an unnamed file
/// under TMPDIR and rewind that. Returns the file and the number of bytes.
pub fn spool(src: &mut dyn Read, name: &str) -> Result<(File, u64), Error> {
    let dir = std::env::temp_dir();
    let tmp_err = |err: io::Error| Error::Local {
        path: format!("{}: spooling {name}", dir.display()),
        err,
    };
    let mut tmp = anonymous(&dir, 0o600, |attempt| {
        format!(".fdfs-spool-{}-{attempt}", std::process::id())
    })
    .map_err(tmp_err)?;
    let mut buf = vec![0u8; BUF];
    let mut size = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(Error::Local {
                    path: name.to_string(),
                    err,
                });
            }
        };
        tmp.write_all(&buf[..n]).map_err(tmp_err)?;
        size += n as u64;
    }
    tmp.rewind().map_err(tmp_err)?;
    Ok((tmp, size))
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
