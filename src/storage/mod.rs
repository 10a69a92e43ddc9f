//! The storage role: holds files in its store paths, serves uploads,
//! downloads, deletes and metadata, and reports to every tracker. Uses net,
//! proto, layout, config and client; never tracker.

mod appender;
mod beat;
mod binlog;
mod cached;
mod disk;
mod handler;
mod inline;
mod journal;
mod journal_recover;
mod placement;
mod refetch;
mod replica;
mod sync;
mod sync_status;

use journal::Commit;
pub use journal::CommitProbe;

use crate::config::{Reserved, StorageConfig};
use crate::layout::{DataInitFlag, Source, StorePath};
use crate::net::{Listeners, Pool, Server, ServerOptions, StopHandle};
use crate::proto::StatCounters;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Cluster parameters the tracker hands out (PARAMETER_REQ).
#[derive(Clone, Debug)]
pub struct Params {
    /// 0 round robin over store paths, 2 most free.
    pub store_path_mode: u8,
    pub reserved: Reserved,
    /// IP field width in QUERY_FILE_INFO replies.
    pub ip_size: usize,
    /// Storages are named by storage_ids.conf ids.
    pub use_storage_id: bool,
    /// File names carry the numeric id instead of the IP.
    pub id_in_filename: bool,
}

/// Round-robin directory cursor (PROTOCOL.md §6.5 mode 0).
#[derive(Clone, Copy, Debug, Default)]
struct Dist {
    high: u32,
    low: u32,
    count: u32,
}

/// Everything the storage's threads share.
pub struct Store {
    pub cfg: StorageConfig,
    pub paths: Vec<StorePath>,
    pools: Vec<Pool>,
    pub stats: Mutex<StatCounters>,
    dist: Mutex<Dist>,
    path_rr: AtomicUsize,
    pub params: RwLock<Params>,
    /// (total_mb, free_mb) per store path, refreshed by the report thread.
    pub space: RwLock<Vec<(u64, u64)>>,
    /// Bytes of uploads accepted per store path since `space` was read.
    debit: Vec<AtomicU64>,
    my_ip: RwLock<Ipv4Addr>,
    /// Our storage id, when the cluster uses storage ids.
    pub id: RwLock<Option<String>>,
    rng: AtomicU64,
    pub started: u64,
    pub init_flag: Mutex<DataInitFlag>,
    pub data_dir: PathBuf,
    /// Every change made here or received, in order (LAYOUT.md §2.4).
    pub binlog: binlog::Binlog,
    /// Newest record timestamp received from each source peer (SYNC_REPORT).
    pub received_from: Mutex<HashMap<String, u32>>,
    /// The other servers of the group.
    pub peers: sync::Peers,
    /// Serialises changes to one appender file.
    pub file_locks: appender::FileLocks,
    /// Throttled log of sync records refused or not applied, both ways.
    pub sync_log: sync_status::Throttle,
    /// Diverged copies to fetch whole from the peer that pushes them.
    pub refetch: refetch::Refetch,
    /// The redo journal, with `durable_uploads`.
    pub journal: Option<Arc<journal::Journal>>,
    /// Whether small changes on the network threads lately waited for the
    /// disk (a condition of `placement`).
    pub inline: inline::InlineWrites,
    /// Push threads, joined at shutdown.
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Our listening port (known once bound).
    port: std::sync::atomic::AtomicU16,
    /// The event loop's connection counters (set once bound).
    pub conns: std::sync::OnceLock<Arc<crate::net::ConnStats>>,
}

impl Store {
    /// A fresh 64-bit random value (splitmix64 over an atomic counter).
    pub fn random64(&self) -> u64 {
        let mut z = self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// What goes into the first 4 bytes of new file names.
    pub fn source(&self) -> Source {
        if self.params.read().id_in_filename {
            let id = self
                .id
                .read()
                .as_deref()
                .and_then(|i| i.parse::<u32>().ok());
            if let Some(n) = id.filter(|n| (1..=16_777_215).contains(n)) {
                return Source::Id(n);
            }
        }
        Source::Ip(*self.my_ip.read())
    }

    /// Our IPv4 address (as file names and peers know it).
    pub fn my_ip(&self) -> Ipv4Addr {
        *self.my_ip.read()
    }

    /// Our id in the group: the IP address (storage ids come with issue 4).
    pub fn my_id(&self) -> String {
        self.id
            .read()
            .clone()
            .unwrap_or_else(|| self.my_ip.read().to_string())
    }

    /// The mark file of the push thread to `peer` (by id with storage ids,
    /// else by its IP and our port, LAYOUT.md §2.5).
    pub fn mark_path(&self, peer_id: &str, peer_ip: &str) -> PathBuf {
        let dir = self.binlog.dir();
        if self.params.read().use_storage_id {
            crate::layout::binlog::Mark::path(dir, peer_id, None)
        } else {
            crate::layout::binlog::Mark::path(dir, peer_ip, Some(self.port()))
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

    /// Our listening port.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// A change from `source` with this timestamp was applied here.
    pub fn received(&self, source: Option<&str>, timestamp: u32, bytes: u64) {
        if let Some(src) = source {
            let mut m = self.received_from.lock();
            let e = m.entry(src.to_string()).or_insert(0);
            *e = (*e).max(timestamp);
        }
        let mut s = self.stats.lock();
        s.last_sync_update = now();
        s.total_sync_in_bytes += bytes;
        s.success_sync_in_bytes += bytes;
    }

    /// The counters with the current connection figures filled in.
    pub fn stats_now(&self) -> StatCounters {
        let mut s = *self.stats.lock();
        if let Some(c) = self.conns.get() {
            [s.connection_alloc, s.connection_current, s.connection_max] = c.counts();
        }
        s
    }

    /// The reply of a change, as it may go out: with `durable_uploads`, a
    /// success whose change added journal records (`commit`: its binlog
    /// lines, the files it journaled) is held back until they are durable.
    /// The worker goes on with other jobs meanwhile; the journal's flusher
    /// releases the reply after the round that wrote them, or turns it into
    /// that round's error. (Changes made in place have synced their file and
    /// directory already; an error reply goes at once.)
    pub fn when_durable(
        &self,
        (mut reply, commit): (crate::net::Reply, Commit),
    ) -> crate::net::Reply {
        let Some(j) = &self.journal else {
            return reply;
        };
        if commit.is_none() || reply.status != 0 {
            return reply;
        }
        let j = j.clone();
        reply.hold = Some(Box::new(move |release: crate::net::Release| {
            j.on_durable(
                commit,
                Box::new(move |outcome| {
                    release(outcome.err().map(|e| {
                        log::error!("journal round of a change: {e}");
                        disk::io_status(&e)
                    }))
                }),
            )
        }));
        reply
    }

    /// With `durable_uploads`, the content of a finished new file (an upload,
    /// a replica) if it is small enough for the journal. Read it before taking
    /// the binlog lock, and hand it to [`Store::journal_file`] under it.
    pub fn journal_content(&self, file: &std::fs::File) -> io::Result<Option<Vec<u8>>> {
        if self.journal.is_none() {
            return Ok(None);
        }
        let size = file.metadata()?.len();
        if size > journal::MAX_FILE {
            return Ok(None);
        }
        use std::os::unix::fs::FileExt;
        let mut data = vec![0u8; size as usize];
        file.read_exact_at(&mut data, 0)?;
        Ok(Some(data))
    }

    /// With `durable_uploads`, once `file` is named `remote` in `dir`: journal
    /// its `content` (from [`Store::journal_content`]), or, when that is too
    /// big, sync the file and directory in place. Call before logging the
    /// change's binlog line; its reply waits for the token returned
    /// ([`Store::when_durable`]).
    pub fn journal_file(
        &self,
        remote: &str,
        content: Option<&[u8]>,
        file: &std::fs::File,
        dir: Option<&std::path::Path>,
    ) -> io::Result<Commit> {
        let Some(j) = &self.journal else {
            return Ok(Commit::NONE);
        };
        if let Some(c) = content.and_then(|data| j.add_file(remote, data)) {
            return Ok(c);
        }
        self.sync_in_place(Some(file), dir)?;
        Ok(Commit::NONE)
    }

    /// With `durable_uploads`: sync a file changed in place and its directory.
    pub fn sync_in_place(
        &self,
        file: Option<&std::fs::File>,
        dir: Option<&std::path::Path>,
    ) -> io::Result<()> {
        if self.journal.is_none() {
            return Ok(());
        }
        if let Some(f) = file {
            f.sync_all()?;
        }
        match dir {
            Some(d) => crate::layout::store::fsync_dir(d),
            None => Ok(()),
        }
    }

    /// `bytes` of file content were pushed to a peer.
    pub fn sent(&self, bytes: u64) {
        let mut s = self.stats.lock();
        s.total_sync_out_bytes += bytes;
        s.success_sync_out_bytes += bytes;
    }

    /// The address of the storage with numeric id `id` (ourselves or a peer).
    pub fn id_to_ip(&self, id: u32) -> Option<String> {
        let id = id.to_string();
        if self.id.read().as_deref() == Some(id.as_str()) {
            return Some(self.my_ip.read().to_string());
        }
        self.peers.get(&id).map(|p| p.ip)
    }

    /// IP field width for replies, as the tracker said.
    pub fn ip_size(&self) -> usize {
        self.params.read().ip_size
    }

    /// The `data/HH/HH` pair for the next file, rotating every
    /// `file_distribute_rotate_count` files (mode 0) or at random (mode 1).
    pub fn next_dir(&self) -> (u8, u8) {
        let n = self.cfg.subdir_count_per_path.max(1);
        if self.cfg.file_distribute_path_mode == 1 {
            let r = self.random64();
            return (((r >> 8) % n as u64) as u8, (r % n as u64) as u8);
        }
        let mut d = self.dist.lock();
        let pick = (d.high as u8, d.low as u8);
        d.count += 1;
        if d.count >= self.cfg.file_distribute_rotate_count.max(1) {
            d.count = 0;
            d.low += 1;
            if d.low >= n {
                d.low = 0;
                d.high = (d.high + 1) % n;
            }
        }
        pick
    }

    /// The store path for an upload: the one the tracker named if usable,
    /// else by the tracker's `store_path` rule; ENOSPC below the reserve.
    pub fn choose_path(&self, asked: u8, size: u64) -> Result<u8, u8> {
        use crate::proto::status::{EINVAL, ENOSPC};
        let n = self.paths.len();
        let writable = |i: usize| {
            !self
                .cfg
                .store_path_readonly
                .get(i)
                .copied()
                .unwrap_or(false)
        };
        let space = self.space.read();
        let params = self.params.read();
        let fits = |i: usize| -> bool {
            let (total, free) = space.get(i).copied().unwrap_or((0, 0));
            let debit = self.debit[i].load(Ordering::Relaxed);
            fits_reserve((total, free), debit, size, params.reserved, n)
        };
        let idx = asked as usize;
        let first = if asked != 0xFF && idx < n && writable(idx) {
            idx
        } else if asked != 0xFF && idx >= n {
            return Err(EINVAL);
        } else if params.store_path_mode == 2 {
            (0..n)
                .filter(|&i| writable(i))
                .max_by_key(|&i| space.get(i).map_or(0, |s| s.1))
                .unwrap_or(0)
        } else {
            self.path_rr.fetch_add(1, Ordering::Relaxed) % n
        };
        let chosen = (0..n)
            .map(|k| (first + k) % n)
            .find(|&i| writable(i) && fits(i))
            .ok_or(ENOSPC)?;
        drop(space);
        drop(params);
        // Debit the upload now: the figure is re-read from the file system
        // only every stat_report_interval, and fast writers would otherwise
        // overrun the reserve between two reads. (In bytes: small files
        // rounded up to a megabyte each made 25k uploads look like 25 GB.)
        self.debit[chosen].fetch_add(size, Ordering::Relaxed);
        Ok(chosen as u8)
    }

    /// Re-read every store path's space from the file system.
    pub fn refresh_space(&self) -> Vec<(u64, u64)> {
        let v: Vec<(u64, u64)> = self
            .paths
            .iter()
            .map(|p| {
                p.space_mb().unwrap_or_else(|e| {
                    log::warn!("statvfs {}: {e}", p.root.display());
                    (0, 0)
                })
            })
            .collect();
        let mut space = self.space.write();
        *space = v.clone();
        for d in &self.debit {
            d.store(0, Ordering::Relaxed);
        }
        v
    }

    /// Write data/storage_stat.dat (counters and the directory cursor).
    pub fn save_stats(&self) -> io::Result<()> {
        let mut items: Vec<(String, String)> = self
            .stats
            .lock()
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let d = *self.dist.lock();
        items.push(("dist_path_index_high".into(), d.high.to_string()));
        items.push(("dist_path_index_low".into(), d.low.to_string()));
        items.push(("dist_write_file_count".into(), d.count.to_string()));
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
        let mut stats = self.stats.lock();
        let mut d = self.dist.lock();
        let n = self.cfg.subdir_count_per_path.max(1);
        for (k, v) in items {
            let Ok(v) = v.trim().parse::<u64>() else {
                continue;
            };
            match k.as_str() {
                "dist_path_index_high" => d.high = (v as u32) % n,
                "dist_path_index_low" => d.low = (v as u32) % n,
                "dist_write_file_count" => d.count = v as u32,
                _ => {
                    stats.set_field(&k, v);
                }
            }
        }
    }
}

/// A running storage server.
pub struct RunningStorage {
    server: Option<Server>,
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
        if let Some(j) = &self.store.journal
            && let Err(e) = j.flush()
        {
            log::error!("flushing the journal: {e}");
        }
        if let Err(e) = self.store.save_stats() {
            log::error!("saving storage_stat.dat: {e}");
        }
    }
}

/// Whether `size` more bytes leave store path space `(total_mb, free_mb)`,
/// of which `debit` bytes were taken since it was read, above the reserve
/// (an absolute reserve is shared by the `n` store paths).
fn fits_reserve(
    (total, free): (u64, u64),
    debit: u64,
    size: u64,
    reserved: Reserved,
    n: usize,
) -> bool {
    let reserve = match reserved {
        Reserved::Bytes(b) => b / (1 << 20) / n as u64,
        Reserved::Ratio(r) => (total as f64 * r) as u64,
    };
    free.saturating_sub(debit.saturating_add(size) >> 20) > reserve
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
    Listeners::bind(cfg.bind_addr.as_deref(), cfg.port, net_threads(cfg))
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
    let n_paths = paths.len();
    let seed = now() ^ ((std::process::id() as u64) << 32) ^ (&data_dir as *const _ as u64);
    let store = Arc::new(Store {
        my_ip: RwLock::new(my_ipv4(&cfg)),
        paths,
        pools,
        stats: Mutex::new(StatCounters::default()),
        dist: Mutex::new(Dist::default()),
        path_rr: AtomicUsize::new(0),
        params: RwLock::new(Params {
            store_path_mode: 0,
            reserved: Reserved::Ratio(0.0),
            ip_size: 16,
            use_storage_id: false,
            id_in_filename: false,
        }),
        id: RwLock::new(None),
        space: RwLock::new(Vec::new()),
        debit: (0..n_paths).map(|_| AtomicU64::new(0)).collect(),
        rng: AtomicU64::new(seed),
        started: now(),
        init_flag: Mutex::new(flag),
        received_from: Mutex::new(HashMap::new()),
        peers: sync::Peers::default(),
        file_locks: appender::FileLocks::default(),
        sync_log: sync_status::Throttle::default(),
        refetch: refetch::Refetch::default(),
        journal: open_journal(&cfg, &data_dir, &binlog, previous)?,
        inline: inline::InlineWrites::default(),
        binlog,
        threads: Mutex::new(Vec::new()),
        port: std::sync::atomic::AtomicU16::new(0),
        conns: std::sync::OnceLock::new(),
        data_dir,
        cfg,
    });
    store.load_stats();
    store.refresh_space();
    Ok(store)
}

/// Start a storage server with `cfg` on `listeners` (from [`bind`]): prepare
/// the store paths, serve, and start reporting to the trackers.
pub fn start(cfg: StorageConfig, listeners: Listeners) -> io::Result<RunningStorage> {
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
    store.port.store(port, Ordering::Relaxed);
    let _ = store.conns.set(server.conn_stats());
    let quit = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in &store.cfg.tracker_servers {
        threads.push(beat::spawn(store.clone(), t.clone(), port, quit.clone())?);
    }
    threads.extend(refetch::Refetch::spawn(store.clone(), quit.clone())?);
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
    Ok(RunningStorage {
        stop: server.stop_handle(),
        server: Some(server),
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

/// Replace the IP used in new file names (learnt from the tracker connection).
pub(crate) fn set_my_ip(store: &Store, ip: IpAddr) {
    if let IpAddr::V4(v4) = ip
        && store.cfg.bind_addr.as_deref().is_none_or(str::is_empty)
    {
        *store.my_ip.write() = v4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_debited_in_bytes_against_the_reserve() {
        let r = Reserved::Ratio(0.2);
        // 1000 MB disk, 300 MB free, 200 MB reserved.
        assert!(fits_reserve((1000, 300), 0, 4096, r, 1));
        // 25,000 small files are 100 MB, not 25,000 MB.
        assert!(fits_reserve((1000, 300), 25_000 * 4096, 4096, r, 1));
        assert!(!fits_reserve((1000, 300), 100 << 20, 1 << 20, r, 1));
        assert!(!fits_reserve((1000, 300), 0, 100 << 20, r, 1));
        // An absolute reserve is split over the store paths.
        assert!(fits_reserve(
            (1000, 300),
            0,
            0,
            Reserved::Bytes(500 << 20),
            2
        ));
        assert!(!fits_reserve(
            (1000, 300),
            0,
            0,
            Reserved::Bytes(600 << 20),
            1
        ));
    }
}
