//! `fdfs tracker` and `fdfs storage`: load the config, lock the pid file,
//! log to `base_path/logs/`, bind, switch to `run_by_user`, serve, print
//! `listening on ADDR`, and run until SIGTERM/SIGINT (SIGHUP reopens the log
//! file). With an ACTION, as FastDFS's `fdfs_trackerd FILE start|stop|restart`:
//! `start` runs the daemon in the background, `stop` ends the one of the
//! pid file, `restart` does both, `status` tells whether one runs.
//!
//! Every mistake found before the daemon serves is printed on the terminal
//! with exit status 2 when it is the configuration's (or a second daemon's)
//! fault, also under `start`.

mod detach;
mod logfile;
mod pidfile;
mod run_by;

pub use logfile::{LogFile, init_logging};
pub use pidfile::PidFile;

use super::{CliError, CliResult};
use crate::config::{StorageConfig, TrackerConfig};
use crate::net::Listeners;
use clap::{Args, ValueEnum};
use nix::sys::signal::{SigSet, Signal};
use run_by::RunBy;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to do with the daemon of a config (FastDFS's actions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// Start it in the background (exit 2 if one runs on this base_path).
    Start,
    /// Stop the running one (SIGTERM) and wait until it has exited.
    Stop,
    /// Stop the running one, if any, then start it in the background.
    Restart,
    /// Say whether one runs, and its pid (exit 3 if none).
    Status,
}

/// Arguments of `fdfs tracker`.
#[derive(Args, Debug)]
pub struct TrackerArgs {
    /// tracker.conf in FastDFS syntax (built-in defaults without it).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also log to stderr.
    #[arg(long)]
    pub log_stderr: bool,
    /// start, stop, restart or status; without it the tracker runs in the foreground.
    #[arg(value_enum, value_name = "ACTION")]
    pub action: Option<Action>,
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
    /// start, stop, restart or status; without it the storage runs in the foreground.
    #[arg(value_enum, value_name = "ACTION")]
    pub action: Option<Action>,
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
                        log::info!(
                            "stopping on signal: answering the requests under way, then exiting"
                        );
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
pub fn announce(what: &str, addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
    log::info!("{what} listening on {addr}");
}

/// An error of starting `role`: a port in use is the configuration's (or a
/// second daemon's) fault, exit 2; the rest exit 1. Rust's "(os error N)"
/// is left out.
pub fn start_error(role: &str) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| {
        let msg = plain(&format!("{role}: {e}"));
        if e.kind() == std::io::ErrorKind::AddrInUse {
            CliError::Usage(msg)
        } else {
            CliError::Other(msg)
        }
    }
}

/// `msg` without the " (os error N)" that Rust appends to system errors.
fn plain(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" (os error ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " (os error ".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            rest = &tail[digits + 1..];
        } else {
            out.push_str(" (os error ");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// `e` without "(os error N)" in its message (see [`plain`]).
pub fn plain_error(e: CliError) -> CliError {
    match e {
        CliError::Usage(m) => CliError::Usage(plain(&m)),
        CliError::NotFound(m) => CliError::NotFound(plain(&m)),
        CliError::Other(m) => CliError::Other(plain(&m)),
        e => e,
    }
}

fn config_err(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(plain(&e.to_string()))
}

/// `path` made absolute against the working directory (a daemon started in
/// the background leaves it for `/`).
fn absolute(path: &mut PathBuf) -> Result<(), CliError> {
    *path = std::path::absolute(&*path)
        .map_err(|e| CliError::Usage(plain(&format!("{}: {e}", path.display()))))?;
    Ok(())
}

/// Load tracker.conf (or defaults); with a file, base_path must exist.
pub fn load_tracker(path: Option<&Path>) -> Result<(TrackerConfig, Vec<String>), CliError> {
    let (mut cfg, warnings) = match path {
        Some(p) => {
            let (cfg, w) = TrackerConfig::load(p).map_err(config_err)?;
            cfg.check_dirs(p).map_err(config_err)?;
            (cfg, w)
        }
        None => (TrackerConfig::default(), Vec::new()),
    };
    absolute(&mut cfg.base_path)?;
    absolute(&mut cfg.storage_ids_filename)?;
    Ok((cfg, warnings))
}

/// Load storage.conf (or defaults); with a file, base_path and the store
/// paths must exist, and tracker_server be set.
pub fn load_storage(path: Option<&Path>) -> Result<(StorageConfig, Vec<String>), CliError> {
    let (mut cfg, warnings) = match path {
        Some(p) => {
            let (cfg, w) = StorageConfig::load(p).map_err(config_err)?;
            cfg.check_dirs(p).map_err(config_err)?;
            (cfg, w)
        }
        None => (StorageConfig::default(), Vec::new()),
    };
    absolute(&mut cfg.base_path)?;
    for p in &mut cfg.store_paths {
        absolute(p)?;
    }
    Ok((cfg, warnings))
}

/// A daemon started: where it listens, how to stop it, and how to wait for it.
struct Running {
    addr: SocketAddr,
    stop: Box<dyn Fn() + Send>,
    join: Box<dyn FnOnce()>,
}

/// What `fdfs tracker` and `fdfs storage` differ in.
trait Role: Sized {
    /// "tracker" or "storage".
    const NAME: &'static str;
    /// Pid file in `base_path/data` (FastDFS's name).
    const PID_FILE: &'static str;
    /// Log file in `base_path/logs`.
    const LOG_FILE: &'static str;
    fn base_path(&self) -> &Path;
    fn log_level(&self) -> &str;
    fn disabled(&self) -> bool;
    /// `run_by_user`, `run_by_group`.
    fn run_by(&self) -> (Option<&str>, Option<&str>);
    /// Directories of data the daemon writes (`base_path/data` and the store paths').
    fn data_dirs(&self) -> Vec<PathBuf>;
    /// How long `stop` waits: a stopping daemon answers what it has accepted
    /// first, for up to `network_timeout`.
    fn stop_deadline(&self) -> Duration;
    fn bind(&self) -> std::io::Result<Listeners>;
    fn start(self, listeners: Listeners) -> std::io::Result<Running>;
}

impl Role for TrackerConfig {
    const NAME: &'static str = "tracker";
    const PID_FILE: &'static str = "fdfs_trackerd.pid";
    const LOG_FILE: &'static str = "trackerd.log";
    fn base_path(&self) -> &Path {
        &self.base_path
    }
    fn log_level(&self) -> &str {
        &self.log_level
    }
    fn disabled(&self) -> bool {
        self.disabled
    }
    fn run_by(&self) -> (Option<&str>, Option<&str>) {
        (self.run_by_user.as_deref(), self.run_by_group.as_deref())
    }
    fn data_dirs(&self) -> Vec<PathBuf> {
        vec![self.base_path.join("data")]
    }
    fn stop_deadline(&self) -> Duration {
        self.network_timeout + Duration::from_secs(30)
    }
    fn bind(&self) -> std::io::Result<Listeners> {
        crate::tracker::bind(self)
    }
    fn start(self, listeners: Listeners) -> std::io::Result<Running> {
        let t = crate::tracker::start(self, listeners)?;
        Ok(Running {
            addr: t.local_addr(),
            stop: Box::new(t.stopper()),
            join: Box::new(move || t.join()),
        })
    }
}

impl Role for StorageConfig {
    const NAME: &'static str = "storage";
    const PID_FILE: &'static str = "fdfs_storaged.pid";
    const LOG_FILE: &'static str = "storaged.log";
    fn base_path(&self) -> &Path {
        &self.base_path
    }
    fn log_level(&self) -> &str {
        &self.log_level
    }
    fn disabled(&self) -> bool {
        self.disabled
    }
    fn run_by(&self) -> (Option<&str>, Option<&str>) {
        (self.run_by_user.as_deref(), self.run_by_group.as_deref())
    }
    fn data_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.base_path.join("data")];
        for p in &self.store_paths {
            let d = p.join("data");
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        dirs
    }
    fn stop_deadline(&self) -> Duration {
        self.network_timeout + Duration::from_secs(30)
    }
    fn bind(&self) -> std::io::Result<Listeners> {
        crate::storage::bind(self)
    }
    fn start(self, listeners: Listeners) -> std::io::Result<Running> {
        let s = crate::storage::start(self, listeners)?;
        Ok(Running {
            addr: s.local_addr(),
            stop: Box::new(s.stopper()),
            join: Box::new(move || s.join()),
        })
    }
}

/// Run `fdfs tracker`.
pub fn run_tracker(a: TrackerArgs) -> CliResult {
    let (cfg, warnings) = load_tracker(a.config.as_deref())?;
    run(cfg, warnings, a.log_stderr, a.action).map_err(plain_error)
}

/// Run `fdfs storage`.
pub fn run_storage(a: StorageArgs) -> CliResult {
    let (cfg, warnings) = load_storage(a.config.as_deref())?;
    run(cfg, warnings, a.log_stderr, a.action).map_err(plain_error)
}

/// The pid file of a daemon with data in `base_path`.
pub fn pid_path(base_path: &Path, name: &str) -> PathBuf {
    base_path.join("data").join(name)
}

/// Carry out `action` (none: run in the foreground) for the daemon of `cfg`.
fn run<R: Role>(
    cfg: R,
    warnings: Vec<String>,
    log_stderr: bool,
    action: Option<Action>,
) -> CliResult {
    let pid_path = pid_path(cfg.base_path(), R::PID_FILE);
    match action {
        Some(Action::Stop) => return pidfile::stop(R::NAME, &pid_path, cfg.stop_deadline()),
        Some(Action::Status) => return pidfile::status(R::NAME, &pid_path),
        Some(Action::Restart) => match pidfile::stop(R::NAME, &pid_path, cfg.stop_deadline()) {
            Ok(()) | Err(CliError::NotFound(_)) => {}
            Err(e) => return Err(e),
        },
        Some(Action::Start) | None => {}
    }
    if cfg.disabled() {
        return Err(CliError::Usage(format!(
            "{}.conf says disabled = true",
            R::NAME
        )));
    }
    for w in &warnings {
        eprintln!("fdfs: warning: {w}");
    }
    let run_by = RunBy::resolve(cfg.run_by().0, cfg.run_by().1)?;
    let set = block_signals();
    let data = cfg.base_path().join("data");
    std::fs::create_dir_all(&data)
        .map_err(|e| CliError::Other(plain(&format!("{}: {e}", data.display()))))?;
    let pid = PidFile::lock(&pid_path, R::NAME)?;
    if action.is_none() {
        return serve(cfg, &warnings, log_stderr, pid, run_by, set, || {});
    }
    // From here on, the daemon: it reports how start-up went to the command
    // waiting for it.
    let ready = std::cell::Cell::new(Some(detach::detach()?));
    let r = serve(cfg, &warnings, log_stderr, pid, run_by, set, || {
        if let Some(ready) = ready.take() {
            ready.done();
        }
    })
    .map_err(plain_error);
    if let Some(ready) = ready.take() {
        // It never served: say why while the terminal is still ours.
        let code = match &r {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("fdfs: {e}");
                e.exit_code()
            }
        };
        ready.failed(code);
        std::process::exit(i32::from(code));
    }
    r
}

/// Start the daemon of `cfg` and serve until stopped; `serving` is called
/// once it serves (and has said so on stdout). The pid file goes at the end.
fn serve<R: Role>(
    cfg: R,
    warnings: &[String],
    log_stderr: bool,
    pid: PidFile,
    run_by: Option<RunBy>,
    set: SigSet,
    serving: impl FnOnce(),
) -> CliResult {
    pid.write_pid()?;
    let base = cfg.base_path().to_path_buf();
    let log = init_logging(&base, R::LOG_FILE, cfg.log_level(), log_stderr)?;
    for w in warnings {
        log::warn!("config: {w}");
    }
    let listeners = cfg.bind().map_err(start_error(R::NAME))?;
    if let Some(rb) = &run_by {
        rb.hand_over(&base.join("logs"), &cfg.data_dirs())
            .map_err(start_error(R::NAME))?;
        rb.switch()?;
    }
    let running = cfg.start(listeners).map_err(start_error(R::NAME))?;
    announce(R::NAME, running.addr);
    spawn_signal_thread(set, vec![log], running.stop);
    serving();
    (running.join)();
    log::info!("{} stopped", R::NAME);
    drop(pid);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_drops_os_error_numbers() {
        assert_eq!(
            plain("/x/data: Permission denied (os error 13)"),
            "/x/data: Permission denied"
        );
        assert_eq!(
            plain("loading /d: No such file (os error 2): x (os error 2)"),
            "loading /d: No such file: x"
        );
        assert_eq!(plain("a (os error x) b"), "a (os error x) b");
        let e = std::io::Error::from_raw_os_error(98);
        assert_eq!(plain(&e.to_string()), "Address already in use");
    }
}
