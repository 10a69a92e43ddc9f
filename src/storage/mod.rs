//! The storage role: holds files in its store paths, serves uploads,
//! downloads, deletes and metadata, and reports to every tracker. Uses net,
//! proto, layout, config and client; never tracker.

mod appender;
mod beat;
mod binlog;
mod cached;
mod dedup;
mod disk;
mod durable;
mod error;
mod handler;
mod http;
mod identity;
mod journal;
mod journal_recover;
mod metrics;
mod placement;
mod refetch;
mod repair;
mod replica;
mod space;
mod stats;
mod sync;
mod sync_status;

pub use journal::CommitProbe;

use crate::config::StorageConfig;
use crate::layout::{DataInitFlag, StorePath};
use crate::net::{Listeners, Pool, Server, ServerOptions, StopHandle};
use durable::Durability;
use error::Error;
use identity::Identity;
use parking_lot::Mutex;
use space::Space;
use stats::Stats;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Everything the storage's threads share, in named parts.
pub struct Store {
    pub cfg: StorageConfig,
    pub paths: Vec<StorePath>,
    /// Who we are: address, storage id, port, the trackers' parameters.
    pub identity: Identity,
    /// The store paths' space and where new files go.
    pub space: Space,
    /// What we served and replicated.
    pub stats: Stats,
    /// With `durable_uploads`, the journal that makes changes durable.
    pub durable: Durability,
    /// Every change made here or received, in order (LAYOUT.md §2.4).
    pub binlog: binlog::Binlog,
    /// The other servers of the group.
    pub peers: sync::Peers,
    /// Serialises changes to one file.
    pub file_locks: appender::FileLocks,
    /// Throttled log of sync records refused or not applied, both ways.
    pub sync_log: sync_status::Throttle,
    /// Diverged copies to fetch whole from the peer that pushes them.
    pub refetch: refetch::Refetch,
    /// The index of stored contents, with `check_file_duplicate`.
    pub dedup: Option<dedup::Dedup>,
    /// Scrub, anti-entropy and disk recovery.
    pub repair: repair::Repair,
    /// The disk threads, one pool per store path.
    pools: Vec<Pool>,
    /// splitmix64 state for new names' random bits.
    rng: AtomicU64,
    data_dir: PathBuf,
    /// Push threads, joined at shutdown.
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Store {
    /// A fresh 64-bit random value (splitmix64 over an atomic counter).
    pub fn random64(&self) -> u64 {
        let mut z = self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The disk threads of store path `idx`.
    pub fn pool(&self, idx: usize) -> Option<&Pool> {
        self.pools.get(idx)
    }

    /// Keep a push thread, to join at shutdown.
    pub fn add_thread(&self, t: std::thread::JoinHandle<()>) {
        self.threads.lock().push(t);
    }

    /// The mark file of the push thread to `peer` (by id with storage ids,
    /// else by its IP and our port, LAYOUT.md §2.5).
    pub fn mark_path(&self, peer_id: &str, peer_ip: &str) -> PathBuf {
        let dir = self.binlog.dir();
        if self.identity.uses_storage_ids() {
            crate::layout::binlog::Mark::path(dir, peer_id, None)
        } else {
            crate::layout::binlog::Mark::path(dir, peer_ip, Some(self.identity.port()))
        }
    }

    /// Local address for outbound connections (`client_bind` + `bind_addr`),
    /// so trackers and peers see the address we serve on.
    pub fn outbound_ip(&self) -> Option<IpAddr> {
        if self.cfg.client_bind {
            self.cfg.bind_addr.as_deref().and_then(|b| b.parse().ok())
        } else {
            None
        }
    }

    /// Timeouts for outbound connections.
    pub fn timeouts(&self) -> crate::client::Timeouts {
        crate::client::Timeouts {
            connect: self.cfg.connect_timeout,
            network: self.cfg.network_timeout,
        }
    }

    /// The address of the storage with numeric id `id` (ourselves or a peer).
    pub fn id_to_ip(&self, id: u32) -> Option<String> {
        let id = id.to_string();
        if self.identity.id().as_deref() == Some(id.as_str()) {
            return Some(self.identity.my_ip().to_string());
        }
        self.peers.get(&id).map(|p| p.ip)
    }

    /// The `data/HH/HH` pair for the next file ([`Space::next_dir`]).
    pub fn next_dir(&self) -> (u8, u8) {
        self.space.next_dir(&self.cfg, || self.random64())
    }

    /// The store path for an upload of `size` bytes ([`Space::choose_path`]).
    pub fn choose_path(&self, asked: u8, size: u64) -> Result<u8, Error> {
        let params = self.identity.params();
        self.space
            .choose_path(&self.cfg, &params, asked, size, |i| {
                self.repair.recovering(i)
            })
    }

    /// Re-read every store path's space from the file system.
    pub fn refresh_space(&self) -> Vec<(u64, u64)> {
        self.space.refresh(&self.paths)
    }

    /// Write data/storage_stat.dat (counters and the directory cursor).
    pub fn save_stats(&self) -> io::Result<()> {
        let mut items: Vec<(String, String)> = self
            .stats
            .counted()
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in self.space.cursor() {
            items.push((k.into(), v.to_string()));
        }
        crate::layout::kv::write_kv(&self.data_dir.join("storage_stat.dat"), &items)
    }

    fn load_stats(&self) {
        let path = self.data_dir.join("storage_stat.dat");
        let items = match crate::layout::kv::read_kv(&path) {
            Ok(i) => i,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                log::warn!("reading {}: {e}", path.display());
                return;
            }
        };
        let subdirs = self.cfg.subdir_count_per_path;
        self.stats.count(|stats| {
            for (k, v) in items {
                let Ok(v) = v.trim().parse::<u64>() else {
                    continue;
                };
                if !self.space.restore_cursor(&k, v, subdirs) {
                    stats.set_field(&k, v);
                }
            }
        });
    }
}

/// A running storage server.
pub struct RunningStorage {
    server: Option<Server>,
    /// The HTTP server (`http.server_port`), stopped with the storage.
    http: Option<crate::http::server::HttpServer>,
    stop: StopHandle,
    quit: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    store: Arc<Store>,
}

impl RunningStorage {
    /// Address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server
            .as_ref()
            .expect("server lives until join")
            .local_addr()
    }

    /// A function that stops the server from another thread.
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let stop = self.stop.clone();
        let quit = self.quit.clone();
        move || {
            quit.store(true, Ordering::SeqCst);
            stop.stop();
        }
    }

    /// Wait until stopped, then save the counters.
    pub fn join(mut self) {
        if let Some(s) = self.server.take() {
            s.join();
        }
        drop(self.http.take());
        self.quit.store(true, Ordering::SeqCst);
        sync::stop(&self.store);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let pushers: Vec<_> = self.store.threads.lock().drain(..).collect();
        for t in pushers {
            let _ = t.join();
        }
        if let Err(e) = self.store.binlog.sync() {
            log::error!("flushing the binlog: {e}");
        }
        if let Err(e) = self.store.durable.flush() {
            log::error!("flushing the journal: {e}");
        }
        if let Some(d) = &self.store.dedup
            && let Err(e) = d.lock().compact()
        {
            log::error!("saving the dedup index: {e}");
        }
        if let Err(e) = self.store.save_stats() {
            log::error!("saving storage_stat.dat: {e}");
        }
    }
}

/// Our IPv4 address for file names: bind_addr if set, else the address the
/// system would use to reach the first tracker (no packet is sent).
fn my_ipv4(cfg: &StorageConfig) -> Ipv4Addr {
    if let Some(IpAddr::V4(ip)) = cfg.bind_addr.as_deref().and_then(|b| b.parse().ok()) {
        return ip;
    }
    let probe = cfg.tracker_servers.first().and_then(|t| {
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        sock.connect(t.as_str()).ok()?;
        match sock.local_addr().ok()?.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        }
    });
    probe.unwrap_or(Ipv4Addr::LOCALHOST)
}

/// Replay the redo journal left by a crash (whatever the mode now), then open
/// the binlog. Also returns the generation of the journal found (0: none).
fn replay_and_open_binlog(
    data_dir: &Path,
    paths: &[StorePath],
) -> io::Result<(binlog::Binlog, u64)> {
    let roots: Vec<_> = paths.iter().map(|p| p.root.clone()).collect();
    let jpath = data_dir.join(crate::layout::journal::FILE_NAME);
    let r = journal_recover::replay(&jpath, &roots, &data_dir.join("sync"))?;
    if r.files_restored + r.files_removed + r.lines_appended > 0 {
        log::warn!(
            "journal replayed after a crash: {} files restored, {} removed again, {} binlog lines appended",
            r.files_restored,
            r.files_removed,
            r.lines_appended
        );
    }
    Ok((binlog::Binlog::open(&data_dir.join("sync"))?, r.generation))
}

/// With `durable_uploads`, start a new journal generation after `previous`
/// (and send binlog lines to it); without, remove a journal that was replayed.
fn open_journal(
    cfg: &StorageConfig,
    data_dir: &Path,
    binlog: &binlog::Binlog,
    previous: u64,
) -> io::Result<Option<Arc<journal::Journal>>> {
    let jpath = data_dir.join(crate::layout::journal::FILE_NAME);
    if !cfg.durable_uploads {
        if jpath.exists() {
            std::fs::remove_file(&jpath)?;
        }
        return Ok(None);
    }
    let mut dirs = vec![data_dir.to_path_buf()];
    dirs.extend(cfg.store_paths.iter().cloned());
    let roots = journal::filesystem_roots(&dirs);
    let j = Arc::new(journal::Journal::start(
        &jpath,
        cfg.durable_journal_size,
        roots,
        previous + 1,
        binlog.write_pos(),
    )?);
    binlog.set_journal(j.clone());
    Ok(Some(j))
}

/// Network threads of a storage with `cfg`.
fn net_threads(cfg: &StorageConfig) -> usize {
    cfg.work_threads.clamp(1, 4)
}

/// Bind the storage's port (before [`start`], so that a daemon can bind as
/// root and drop privileges before it touches its files).
pub fn bind(cfg: &StorageConfig) -> io::Result<Listeners> {
    let l = Listeners::bind(cfg.bind_addr.as_deref(), cfg.port, net_threads(cfg))?;
    Ok(match cfg.http.server_port {
        0 => l,
        port => l.with_side(Listeners::bind(cfg.bind_addr.as_deref(), port, 1)?),
    })
}

/// Prepare the store paths of `cfg`, replay a journal left by a crash and
/// make the storage's shared state, with its disk pools (not serving yet).
fn open(cfg: StorageConfig) -> io::Result<Arc<Store>> {
    let data_dir = cfg.base_path.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let paths: Vec<StorePath> = cfg
        .store_paths
        .iter()
        .enumerate()
        .map(|(i, p)| StorePath::new(i as u8, p.clone()))
        .collect();
    // Before the trees are made: a path that comes back empty is refilled.
    repair::recovery::detect(&data_dir, &paths)?;
    for p in &paths {
        let t = std::time::Instant::now();
        let n = cfg.subdir_count_per_path;
        log::info!(
            "store path {}: making sure its {n}x{n} data directories exist",
            p.root.display()
        );
        if p.init(cfg.subdir_count_per_path)? {
            log::info!(
                "store path {} initialised in {:.1}s",
                p.root.display(),
                t.elapsed().as_secs_f64()
            );
        }
    }
    let flag_path = data_dir.join(".data_init_flag");
    let flag = match DataInitFlag::load(&flag_path)? {
        Some(f) => f,
        None => {
            let f = DataInitFlag {
                storage_join_time: now(),
                ..DataInitFlag::default()
            };
            f.save(&flag_path)?;
            f
        }
    };
    let mut pools = Vec::new();
    for (i, _) in paths.iter().enumerate() {
        let threads = if cfg.disk_rw_separated {
            cfg.disk_reader_threads + cfg.disk_writer_threads
        } else {
            cfg.disk_writer_threads
        };
        pools.push(Pool::new(&format!("fdfs-dio-p{i:02}"), threads.max(1))?);
    }

    let (binlog, previous) = replay_and_open_binlog(&data_dir, &paths)?;
    let path_count = paths.len();
    let dedup_paths = paths.clone();
    let seed = now() ^ ((std::process::id() as u64) << 32) ^ (&data_dir as *const _ as u64);
    let ip_fixed = cfg.bind_addr.as_deref().is_some_and(|b| !b.is_empty());
    let identity = Identity::new(my_ipv4(&cfg), ip_fixed, now(), flag, flag_path);
    let store = Arc::new(Store {
        identity,
        space: Space::new(paths.len()),
        stats: Stats::default(),
        durable: Durability::new(open_journal(&cfg, &data_dir, &binlog, previous)?),
        paths,
        pools,
        rng: AtomicU64::new(seed),
        peers: sync::Peers::default(),
        file_locks: appender::FileLocks::default(),
        sync_log: sync_status::Throttle::default(),
        refetch: refetch::Refetch::default(),
        repair: repair::Repair::new(path_count)?,
        // After the journal's replay (`durable` above), which may bring back files.
        dedup: match cfg.check_file_duplicate {
            true => Some(dedup::open(
                &data_dir,
                dedup_paths,
                &binlog,
                cfg.durable_uploads,
            )?),
            false => None,
        },
        binlog,
        threads: Mutex::new(Vec::new()),
        data_dir,
        cfg,
    });
    store.load_stats();
    store.refresh_space();
    Ok(store)
}

/// Start a storage server with `cfg` on `listeners` (from [`bind`]): prepare
/// the store paths, serve, and start reporting to the trackers.
pub fn start(cfg: StorageConfig, mut listeners: Listeners) -> io::Result<RunningStorage> {
    let http_listener = listeners.take_side();
    let store = open(cfg)?;
    let cfg = &store.cfg;
    let opts = ServerOptions {
        name: "fdfs-storage".into(),
        max_connections: cfg.max_connections,
        idle_timeout: cfg.network_timeout.max(Duration::from_secs(1)),
        chunk_size: cfg.buff_size.max(4096),
        busy_poll: Duration::from_micros(cfg.busy_poll_us),
    };
    let svc = Arc::new(handler::StorageService {
        store: store.clone(),
    });
    let server = Server::start(listeners, svc, opts)?;
    let port = server.local_addr().port();
    store.identity.set_port(port);
    store.stats.set_conns(server.conn_stats());
    let quit = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in &store.cfg.tracker_servers {
        threads.push(beat::spawn(store.clone(), t.clone(), port, quit.clone())?);
    }
    threads.extend(refetch::Refetch::spawn(store.clone(), quit.clone())?);
    threads.push(repair::spawn(store.clone(), quit.clone())?);
    let (st, q) = (store.clone(), quit.clone());
    threads.push(
        std::thread::Builder::new()
            .name("fdfs-stat".into())
            .spawn(move || stat_saver(&st, &q))?,
    );
    log::info!(
        "storage of {} serving {} store path(s) on {}",
        store.cfg.group_name,
        store.paths.len(),
        server.local_addr()
    );
    let http = match http_listener {
        Some(l) => {
            let handler = Arc::new(http::StorageHttp::new(store.clone())?);
            let h = crate::http::server::start(
                l.into_first(),
                handler,
                crate::http::server::Options {
                    name: "fdfs-http".into(),
                    workers: (store.cfg.disk_reader_threads * store.paths.len()).clamp(2, 16),
                    max_connections: store.cfg.max_connections,
                    head_timeout: Duration::from_secs(10),
                    idle_timeout: store.cfg.network_timeout.max(Duration::from_secs(1)),
                },
            )?;
            log::info!("HTTP downloads and /metrics on {}", h.local_addr());
            Some(h)
        }
        None => None,
    };
    Ok(RunningStorage {
        stop: server.stop_handle(),
        server: Some(server),
        http,
        quit,
        threads,
        store,
    })
}

/// Save storage_stat.dat every `sync_stat_file_interval`.
fn stat_saver(store: &Store, quit: &AtomicBool) {
    let every = store
        .cfg
        .sync_stat_file_interval
        .max(Duration::from_secs(1));
    let mut next = std::time::Instant::now() + every;
    while !quit.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if std::time::Instant::now() >= next {
            next += every;
            if let Err(e) = store.save_stats() {
                log::warn!("saving storage_stat.dat: {e}");
            }
        }
    }
}
