//! The daemons' log file, `base_path/logs/<role>d.log`, which SIGHUP reopens
//! (for logrotate).

use super::super::CliError;
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A log file that SIGHUP can reopen after logrotate moved it.
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
    stderr: bool,
}

impl LogFile {
    fn open(path: &Path) -> std::io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }

    /// Reopen the file at its path.
    pub fn reopen(&self) {
        match Self::open(&self.path) {
            Ok(f) => *self.file.lock() = f,
            Err(e) => log::error!("reopening log {}: {e}", self.path.display()),
        }
    }
}

impl Write for LogFile {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.stderr {
            let _ = std::io::stderr().write_all(b);
        }
        self.file.lock().write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.lock().flush()
    }
}

/// Log to `base_path/logs/<name>` at `level` (RUST_LOG overrides).
pub fn init_logging(
    base_path: &Path,
    name: &str,
    level: &str,
    stderr: bool,
) -> Result<LogFile, CliError> {
    let dir = base_path.join("logs");
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::Other(format!("{}: {e}", dir.display())))?;
    let path = dir.join(name);
    let file =
        LogFile::open(&path).map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?;
    let log = LogFile {
        path,
        file: Arc::new(Mutex::new(file)),
        stderr,
    };
    let level = match level.to_ascii_lowercase().as_str() {
        "emerg" | "alert" | "crit" | "err" | "error" => "error",
        "warn" | "warning" | "notice" => "warn",
        "debug" => "debug",
        _ => "info",
    };
    let mut b = env_logger::Builder::new();
    b.parse_filters(&format!("fdfs={level}"));
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format_timestamp_millis()
        .target(env_logger::Target::Pipe(Box::new(log.clone())));
    // A second init (the all-in-one server) keeps the first logger.
    let _ = b.try_init();
    Ok(log)
}
