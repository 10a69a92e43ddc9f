//! The tracker role: learns groups and storage servers from their joins and
//! heartbeats, tells clients where to upload and download, and keeps its state
//! in `base_path/data`. Uses net, proto, layout and config; never storage.

mod changelog;
mod cluster;
mod cluster_stat;
mod error;
mod handler;
mod members;
mod metrics;
mod peers;
mod persist;
mod queries;
mod state;
mod stats;

use crate::config::TrackerConfig;
use crate::net::{Listeners, Server, ServerOptions, StopHandle};
use handler::{Tracker, now};
use parking_lot::Mutex;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Version string this tracker reports (FastDFS V6 layout, 8 bytes).
pub const VERSION: &str = "6.16.1";

/// A running tracker.
pub struct RunningTracker {
    server: Option<Server>,
    /// `/metrics` on `http.server_port`, stopped with the tracker.
    http: Option<crate::http::server::HttpServer>,
    stop: StopHandle,
    threads: Vec<std::thread::JoinHandle<()>>,
    quit: Arc<AtomicBool>,
}

impl RunningTracker {
    /// Address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server
            .as_ref()
            .expect("server lives until join")
            .local_addr()
    }

    /// Handle to stop it from a signal thread.
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let stop = self.stop.clone();
        let quit = self.quit.clone();
        move || {
            quit.store(true, Ordering::SeqCst);
            stop.stop();
        }
    }

    /// Wait until stopped; the state is saved on the way out.
    pub fn join(mut self) {
        if let Some(s) = self.server.take() {
            s.join();
        }
        drop(self.http.take());
        self.quit.store(true, Ordering::SeqCst);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// Network threads of a tracker with `cfg`.
fn net_threads(cfg: &TrackerConfig) -> usize {
    cfg.work_threads.clamp(1, 4)
}

/// Bind the tracker's port (before [`start`], so that a daemon can bind as
/// root and drop privileges before it touches its files).
pub fn bind(cfg: &TrackerConfig) -> io::Result<Listeners> {
    let l = Listeners::bind(cfg.bind_addr.as_deref(), cfg.port, net_threads(cfg))?;
    Ok(match cfg.http.server_port {
        0 => l,
        port => l.with_side(Listeners::bind(cfg.bind_addr.as_deref(), port, 1)?),
    })
}

/// Start a tracker with `cfg` on `listeners` (from [`bind`]): load saved
/// state, serve.
pub fn start(cfg: TrackerConfig, mut listeners: Listeners) -> io::Result<RunningTracker> {
    let http_listener = listeners.take_side();
    let data = cfg.base_path.join("data");
    std::fs::create_dir_all(&data)?;
    let state = persist::load(&data)
        .map_err(|e| io::Error::new(e.kind(), format!("loading {}: {e}", data.display())))?;
    let loaded: usize = state.groups.values().map(|g| g.storages.len()).sum();
    if loaded > 0 {
        log::info!(
            "loaded {} groups, {loaded} storage servers from {}",
            state.groups.len(),
            data.display()
        );
    }
    let ids = if cfg.use_storage_id {
        crate::config::storage_ids::load(&cfg.storage_ids_filename)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?
    } else {
        Vec::new()
    };
    let opts = ServerOptions {
        name: "fdfs-tracker".into(),
        max_connections: cfg.max_connections,
        idle_timeout: cfg.network_timeout.max(Duration::from_secs(1)),
        chunk_size: 64 * 1024,
        busy_poll: Duration::ZERO,
    };
    // A tracker that starts empty, or was down long, copies the system files
    // from a peer before it takes storages (PROTOCOL.md §10.3).
    let last_check = crate::layout::tracker_dat::load_tracker_status(
        &data.join(crate::layout::tracker_dat::TRACKER_STATUS_FILE),
    )?
    .map(|(_, c)| c);
    let restart_interval = last_check.map_or(0, |c| now().saturating_sub(c));
    let bootstrap = state.groups.is_empty() || restart_interval > cluster::STALE_AFTER_SECS;
    let cluster = cluster::Cluster {
        bootstrap,
        restart_interval,
        ..cluster::Cluster::default()
    };
    let quit = Arc::new(AtomicBool::new(false));
    let (changelog, log_writer) = changelog::Changelog::open(&data, quit.clone())?;
    let tracker = Arc::new(Tracker {
        changelog,
        stopping: quit.clone(),
        cfg,
        state: Mutex::new(state),
        started: now(),
        cluster: Mutex::new(cluster),
        ids,
        refusals: crate::net::LogLimit::new(handler::REFUSAL_LOG_EVERY),
        conns: std::sync::OnceLock::new(),
    });
    let server = Server::start(listeners, tracker.clone(), opts)?;
    let _ = tracker.conns.set(server.conn_stats());
    let local = server.local_addr();
    if !local.ip().is_unspecified() {
        let me = local.to_string();
        let mut c = tracker.cluster.lock();
        c.trackers.insert(me.clone());
        c.me = Some(me);
    }
    let stop = server.stop_handle();
    let (t, q) = (tracker.clone(), quit.clone());
    let relation = std::thread::Builder::new()
        .name("fdfs-tracker-peers".into())
        .spawn(move || cluster::run(&t, &q))?;
    let http = match http_listener {
        Some(l) => {
            let h = crate::http::server::start(
                l.into_first(),
                Arc::new(metrics::TrackerHttp(tracker.clone())),
                crate::http::server::Options {
                    name: "fdfs-tracker-http".into(),
                    workers: 1,
                    max_connections: 256,
                    head_timeout: Duration::from_secs(10),
                    idle_timeout: tracker.cfg.network_timeout.max(Duration::from_secs(1)),
                },
            )?;
            log::info!("/metrics on {}", h.local_addr());
            Some(h)
        }
        None => None,
    };
    let q = quit.clone();
    let housekeeper = std::thread::Builder::new()
        .name("fdfs-tracker-house".into())
        .spawn(move || housekeeping(&tracker, &data, &q))?;
    Ok(RunningTracker {
        http,
        server: Some(server),
        stop,
        threads: vec![housekeeper, relation, log_writer],
        quit,
    })
}

/// Once a second: mark silent storages OFFLINE and save changed state; on exit
/// save once more and record the last time the tracker was alive.
fn housekeeping(t: &Tracker, data: &std::path::Path, quit: &AtomicBool) {
    let timeout = t.cfg.check_active_interval.as_secs().max(1);
    let mut last_status = 0;
    let mut last_matrix = 0;
    loop {
        let stopping = quit.load(Ordering::SeqCst);
        let now = now();
        let mut st = t.state.lock();
        for gone in st.expire(now, timeout) {
            log::warn!("storage {gone}: no heartbeat for {timeout}s, now OFFLINE");
        }
        // Taken under the lock, written (and fsynced) after it is released,
        // so the network threads never wait for the disk.
        let saved = (st.dirty || stopping).then(|| {
            st.dirty = false;
            persist::Saved::take(&st, t.cfg.use_storage_id)
        });
        // The matrix changes with every sync report: saved every 10 s at most
        // (upstream: every 1000 reports), and on the way out.
        let matrix = ((st.matrix_dirty && now >= last_matrix + 10) || stopping).then(|| {
            st.matrix_dirty = false;
            last_matrix = now;
            persist::matrix_rows(&st)
        });
        drop(st);
        if let Some(saved) = saved
            && let Err(e) = saved.write(data)
        {
            t.state.lock().dirty = true;
            log::error!("saving tracker state in {}: {e}", data.display());
        }
        if let Some(rows) = matrix
            && let Err(e) = persist::save_matrix(&rows, data)
        {
            log::error!("saving the sync timestamps in {}: {e}", data.display());
        }
        if stopping || now >= last_status + 300 {
            last_status = now;
            let path = data.join(crate::layout::tracker_dat::TRACKER_STATUS_FILE);
            if let Err(e) = crate::layout::tracker_dat::save_tracker_status(&path, t.started, now) {
                log::warn!("writing {}: {e}", path.display());
            }
        }
        if stopping {
            return;
        }
        for _ in 0..10 {
            if quit.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
