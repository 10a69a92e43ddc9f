//! Who this storage is in its group: the address and storage id that file
//! names and peers know it by, its port, when it started, the cluster
//! parameters the trackers hand out, and its data-init flag file
//! (`.data_init_flag`: join time, sync source, last address).

use crate::config::Reserved;
use crate::layout::{DataInitFlag, Source};
use parking_lot::{Mutex, RwLock};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};

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

impl Default for Params {
    /// Until a tracker says otherwise: round robin, no reserve, 16-byte IPs,
    /// storages named by IP.
    fn default() -> Params {
        Params {
            store_path_mode: 0,
            reserved: Reserved::Ratio(0.0),
            ip_size: 16,
            use_storage_id: false,
            id_in_filename: false,
        }
    }
}

/// This storage's identity (see the module notes).
pub struct Identity {
    my_ip: RwLock<Ipv4Addr>,
    /// Set from `bind_addr`: the address learnt from a tracker connection
    /// does not replace it.
    ip_fixed: bool,
    /// Our storage id, when the cluster uses storage ids.
    id: RwLock<Option<String>>,
    /// Our listening port (known once bound).
    port: AtomicU16,
    started: u64,
    params: RwLock<Params>,
    init_flag: Mutex<DataInitFlag>,
    flag_path: PathBuf,
}

impl Identity {
    /// A storage at `my_ip` (fixed by `bind_addr` when `ip_fixed`) that
    /// started at `started` (seconds), whose data-init flag `flag` is saved
    /// at `flag_path`.
    pub fn new(
        my_ip: Ipv4Addr,
        ip_fixed: bool,
        started: u64,
        flag: DataInitFlag,
        flag_path: PathBuf,
    ) -> Identity {
        Identity {
            my_ip: RwLock::new(my_ip),
            ip_fixed,
            id: RwLock::new(None),
            port: AtomicU16::new(0),
            started,
            params: RwLock::new(Params::default()),
            init_flag: Mutex::new(flag),
            flag_path,
        }
    }

    /// Our IPv4 address (as file names and peers know it).
    pub fn my_ip(&self) -> Ipv4Addr {
        *self.my_ip.read()
    }

    /// The address a tracker connection left from: our address from now on,
    /// unless `bind_addr` fixed it.
    pub fn learn_ip(&self, ip: IpAddr) {
        if let IpAddr::V4(v4) = ip
            && !self.ip_fixed
        {
            *self.my_ip.write() = v4;
        }
    }

    /// Our storage id, when the cluster uses storage ids.
    pub fn id(&self) -> Option<String> {
        self.id.read().clone()
    }

    /// Our storage id is `id`; true if that is news.
    pub fn set_id(&self, id: String) -> bool {
        let mut mine = self.id.write();
        if mine.as_deref() == Some(id.as_str()) {
            return false;
        }
        *mine = Some(id);
        true
    }

    /// Our id in the group: the storage id, else the IP address.
    pub fn my_id(&self) -> String {
        self.id().unwrap_or_else(|| self.my_ip().to_string())
    }

    /// Our listening port.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// We listen on `port`.
    pub fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    /// When this server started (seconds since the epoch).
    pub fn started(&self) -> u64 {
        self.started
    }

    /// The cluster parameters as the trackers last said.
    pub fn params(&self) -> Params {
        self.params.read().clone()
    }

    /// A tracker said `p`.
    pub fn set_params(&self, p: Params) {
        *self.params.write() = p;
    }

    /// IP field width for replies, as the tracker said.
    pub fn ip_size(&self) -> usize {
        self.params.read().ip_size
    }

    /// Whether the cluster names storages by storage_ids.conf ids.
    pub fn uses_storage_ids(&self) -> bool {
        self.params.read().use_storage_id
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
        Source::Ip(self.my_ip())
    }

    /// The data-init flag as it is now.
    pub fn init_flag(&self) -> DataInitFlag {
        self.init_flag.lock().clone()
    }

    /// Change the data-init flag with `change`, and save it when that says
    /// it changed something.
    pub fn update_init_flag(
        &self,
        change: impl FnOnce(&mut DataInitFlag) -> bool,
    ) -> io::Result<()> {
        let mut f = self.init_flag.lock();
        if change(&mut f) {
            f.save(&self.flag_path)?;
        }
        Ok(())
    }
}
