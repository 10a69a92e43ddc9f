//! `fdfs server`: a tracker and one storage in one process with built-in
//! defaults, for a first try on one machine.

use super::daemon::{
    PidFile, announce, block_signals, init_logging, pid_path, spawn_signal_thread, start_error,
};
use super::{CliError, CliResult};
use crate::config::{StorageConfig, TrackerConfig};
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `fdfs server`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Data directory (tracker/ and storage/ are made inside).
    #[arg(long, default_value = "./fdfs-data")]
    pub dir: PathBuf,
    /// Address both servers listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Tracker port (0 picks a free one).
    #[arg(long, default_value_t = 22122)]
    pub tracker_port: u16,
    /// Storage port (0 picks a free one).
    #[arg(long, default_value_t = 23000)]
    pub storage_port: u16,
    /// Subdirectories per level in the store path (FastDFS default 256; fewer start faster).
    #[arg(long, default_value_t = 256)]
    pub subdirs: u32,
    /// Serve HTTP downloads and /metrics on this port (storage.conf
    /// http.server_port; 0, the default, serves no HTTP).
    #[arg(long, default_value_t = 0)]
    pub http_port: u16,
    /// Group name of the storage.
    #[arg(long, default_value = "group1")]
    pub group: String,
    /// Acknowledge uploads only once they are on disk (storage.conf durable_uploads).
    #[arg(long)]
    pub durable: bool,
    /// Store every upload's content even when the same content is stored
    /// already (storage.conf check_file_duplicate = 0; on by default here).
    #[arg(long)]
    pub no_dedup: bool,
    /// Seconds between the starts of two background scrubs, which read every
    /// file and check it against its ID at --scrub-rate (storage.conf
    /// scrub_interval; 0 turns the scrub off).
    #[arg(long, value_name = "SECS", default_value_t = 86400)]
    pub scrub_interval: u64,
    /// Bytes per second a background scrub reads (storage.conf
    /// scrub_bytes_per_second; 0: no limit).
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    pub scrub_rate: u64,
    /// Let the network threads wait for paths and inodes to serve reads (storage.conf disk_inline_reads).
    #[arg(long)]
    pub inline_reads: bool,
    /// Send every upload, delete and metadata change to the disk threads
    /// (storage.conf disk_inline_writes = false).
    #[arg(long)]
    pub no_inline_writes: bool,
    /// Microseconds a storage network thread keeps polling after a request
    /// before it sleeps (storage.conf busy_poll_us; 0 turns it off).
    #[arg(long, default_value_t = crate::config::storage::BUSY_POLL_US,
        value_parser = clap::value_parser!(u64).range(crate::config::storage::BUSY_POLL_US_RANGE))]
    pub busy_poll_us: u64,
    /// Also log to stderr.
    #[arg(long)]
    pub log_stderr: bool,
}

/// Run `fdfs server`.
pub fn run(a: Args) -> CliResult {
    serve(a).map_err(super::daemon::plain_error)
}

fn serve(a: Args) -> CliResult {
    let set = block_signals();
    let dir = std::path::absolute(&a.dir)
        .map_err(|e| CliError::Other(format!("{}: {e}", a.dir.display())))?;
    let tcfg = TrackerConfig {
        bind_addr: Some(a.bind.clone()),
        port: a.tracker_port,
        base_path: dir.join("tracker"),
        check_active_interval: Duration::from_secs(10),
        ..TrackerConfig::default()
    };
    let sbase = dir.join("storage");
    // One pid file per role directory, as two daemons would have.
    let mut pids = Vec::new();
    for (base, name, role) in [
        (&tcfg.base_path, "fdfs_trackerd.pid", "tracker"),
        (&sbase, "fdfs_storaged.pid", "storage"),
    ] {
        let path = pid_path(base, name);
        if let Some(data) = path.parent() {
            std::fs::create_dir_all(data)
                .map_err(|e| CliError::Other(format!("{}: {e}", data.display())))?;
        }
        let pid = PidFile::lock(&path, role)?;
        pid.write_pid()?;
        pids.push(pid);
    }
    let log = init_logging(&dir, "fdfs-server.log", &tcfg.log_level, a.log_stderr)?;
    let tracker_listeners = crate::tracker::bind(&tcfg).map_err(start_error("tracker"))?;
    let tracker = crate::tracker::start(tcfg, tracker_listeners).map_err(start_error("tracker"))?;
    announce("tracker", tracker.local_addr());
    let scfg = StorageConfig {
        group_name: a.group.clone(),
        bind_addr: Some(a.bind.clone()),
        port: a.storage_port,
        store_paths: vec![sbase.clone()],
        base_path: sbase,
        subdir_count_per_path: a.subdirs,
        tracker_servers: vec![tracker.local_addr().to_string()],
        heart_beat_interval: Duration::from_secs(2),
        stat_report_interval: Duration::from_secs(5),
        durable_uploads: a.durable,
        check_file_duplicate: !a.no_dedup,
        scrub_interval: Duration::from_secs(a.scrub_interval),
        scrub_bytes_per_second: a.scrub_rate,
        disk_inline_reads: a.inline_reads,
        disk_inline_writes: !a.no_inline_writes,
        busy_poll_us: a.busy_poll_us,
        http: crate::config::http::HttpConfig {
            server_port: a.http_port,
            ..Default::default()
        },
        ..StorageConfig::default()
    };
    if !crate::proto::valid_group_name(&scfg.group_name) {
        return Err(CliError::Usage(format!(
            "--group {}: 1 to 16 of A-Z a-z 0-9",
            scfg.group_name
        )));
    }
    eprintln!(
        "fdfs: data in {}, logs in {}",
        dir.display(),
        dir.join("logs").display()
    );
    let storage_listeners = crate::storage::bind(&scfg).map_err(start_error("storage"))?;
    let storage = crate::storage::start(scfg, storage_listeners).map_err(start_error("storage"))?;
    announce("storage", storage.local_addr());
    let (stop_t, stop_s) = (tracker.stopper(), storage.stopper());
    spawn_signal_thread(set, vec![log], move || {
        stop_s();
        stop_t();
    });
    storage.join();
    tracker.join();
    drop(pids);
    Ok(())
}
