//! `fdfs tracker` and `fdfs storage`: load the config, log to
//! `base_path/logs/`, print `listening on ADDR`, and run until SIGTERM/SIGINT.
//! SIGHUP reopens the log file (for logrotate).

use super::{CliError, CliResult};
use crate::config::{StorageConfig, TrackerConfig};
use clap::Args;
use nix::sys::signal::{SigSet, Signal};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arguments of `fdfs tracker`.
#[derive(Args, Debug)]
pub struct TrackerArgs {
    /// tracker.conf in FastDFS syntax (built-in defaults without it).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also log to stderr.
    #[arg(long)]
    pub log_stderr: bool,
}

/// Arguments of `fdfs storage`.
#[derive(Args, Debug)]
pub struct StorageArgs {
    /// storage.conf in FastDFS syntax (built-in defaults without it).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also log to stderr.
    #[arg(long)]
    pub log_stderr: bool,
}

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

/// Block the signals we handle in every thread (call before starting any),
/// so that only the signal thread receives them.
pub fn block_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    set.add(Signal::SIGPIPE);
    if let Err(e) = set.thread_block() {
        log::warn!("blocking signals: {e}");
    }
    set
}

/// Wait for signals: SIGHUP reopens the logs, SIGTERM/SIGINT call `stop`.
pub fn spawn_signal_thread(set: SigSet, logs: Vec<LogFile>, stop: impl Fn() + Send + 'static) {
    let r = std::thread::Builder::new()
        .name("fdfs-signals".into())
        .spawn(move || {
            loop {
                match set.wait() {
                    Ok(Signal::SIGHUP) => {
                        for l in &logs {
                            l.reopen();
                        }
                        log::info!("SIGHUP: log files reopened");
                    }
                    Ok(Signal::SIGTERM | Signal::SIGINT) => {
                        log::info!("stopping on signal");
                        stop();
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::error!("waiting for signals: {e}");
                        return;
                    }
                }
            }
        });
    if let Err(e) = r {
        log::error!("starting the signal thread: {e}");
    }
}

/// Print the bound address on stdout for scripts and tests.
pub fn announce(what: &str, addr: std::net::SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
    log::info!("{what} listening on {addr}");
}

fn config_err(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

/// Load tracker.conf (or defaults) and log the warnings.
pub fn load_tracker(path: Option<&Path>) -> Result<(TrackerConfig, Vec<String>), CliError> {
    match path {
        Some(p) => TrackerConfig::load(p).map_err(config_err),
        None => Ok((TrackerConfig::default(), Vec::new())),
    }
}

/// Load storage.conf (or defaults).
pub fn load_storage(path: Option<&Path>) -> Result<(StorageConfig, Vec<String>), CliError> {
    match path {
        Some(p) => StorageConfig::load(p).map_err(config_err),
        None => Ok((StorageConfig::default(), Vec::new())),
    }
}

/// Run `fdfs tracker`.
pub fn run_tracker(a: TrackerArgs) -> CliResult {
    let (cfg, warnings) = load_tracker(a.config.as_deref())?;
    if cfg.disabled {
        return Err(CliError::Usage("tracker.conf says disabled = true".into()));
    }
    let set = block_signals();
    let log = init_logging(&cfg.base_path, "trackerd.log", &cfg.log_level, a.log_stderr)?;
    for w in warnings {
        log::warn!("config: {w}");
    }
    let t = crate::tracker::start(cfg).map_err(|e| CliError::Other(format!("tracker: {e}")))?;
    announce("tracker", t.local_addr());
    spawn_signal_thread(set, vec![log], t.stopper());
    t.join();
    log::info!("tracker stopped");
    Ok(())
}

/// Run `fdfs storage`.
pub fn run_storage(a: StorageArgs) -> CliResult {
    let (cfg, warnings) = load_storage(a.config.as_deref())?;
    if cfg.disabled {
        return Err(CliError::Usage("storage.conf says disabled = true".into()));
    }
    let set = block_signals();
    let log = init_logging(&cfg.base_path, "storaged.log", &cfg.log_level, a.log_stderr)?;
    for w in warnings {
        log::warn!("config: {w}");
    }
    let s = crate::storage::start(cfg).map_err(|e| CliError::Other(format!("storage: {e}")))?;
    announce("storage", s.local_addr());
    spawn_signal_thread(set, vec![log], s.stopper());
    s.join();
    log::info!("storage stopped");
    Ok(())
}
