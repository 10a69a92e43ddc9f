//! The tracker as a `net::Service`: its per-connection state, the command
//! table ([`Tracker::dispatch`]) and the one place where a refusal becomes
//! the reply's status and a log line ([`Tracker::refuse`]). The handlers, one
//! function per command, are grouped by who sends them: `queries.rs`
//! (clients), `members.rs` (storages), `peers.rs` (other trackers) and
//! `cluster_stat.rs`. All are answered on the loop thread: they only touch
//! the in-memory state under a short lock.

use super::cluster::Cluster;
pub(super) use super::error::{Error, Res};
use super::state::State;
use crate::config::{IpAddrSize, TrackerConfig};
use crate::net::{Action, Begin, LogLimit, Plan, Pool, Reply, Service};
use crate::proto::{Cmd, Header, status};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The tracker role: config plus the cluster state.
pub struct Tracker {
    pub cfg: TrackerConfig,
    pub state: Mutex<State>,
    pub started: u64,
    /// The other trackers and the leader.
    pub cluster: Mutex<Cluster>,
    /// storage_ids.conf entries (with use_storage_id).
    pub ids: Vec<crate::config::storage_ids::StorageId>,
    /// Set when the tracker is told to stop (before its loops close).
    pub stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Warnings about refused requests from servers, per (peer ip, command).
    pub refusals: LogLimit<(std::net::IpAddr, u8)>,
    /// data/storage_changelog.dat, served from memory.
    pub changelog: super::changelog::Changelog,
    /// The server's connection counters, set once it listens.
    pub conns: std::sync::OnceLock<std::sync::Arc<crate::net::ConnStats>>,
}

/// At most one warning per peer and command in this time.
pub const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Requests that storages and trackers send on their own (joins, heartbeats,
/// reports, sync negotiation): a refusal means a server is out of the
/// cluster or stuck, so it is logged as a warning. Clients' queries
/// (ENOENT for a group that does not exist) stay at debug.
fn from_a_server(cmd: Cmd) -> bool {
    use Cmd::*;
    matches!(
        cmd,
        StorageJoin
            | StorageBeat
            | StorageReportDiskUsage
            | StorageSyncReport
            | StorageSyncDestReq
            | StorageSyncNotify
            | StorageSyncSrcReq
            | StorageSyncDestQuery
            | StorageChangelogReq
            | StorageReportStatus
            | StorageReportIpChanged
            | StorageGetMyIp
            | StorageParameterReq
            | FetchStorageIds
            | StorageGetServerId
            | TrackerJoinLeader
            | TrackerPingLeader
    )
}

/// Per-connection state: who is at the other end.
pub struct Session {
    pub(super) peer: SocketAddr,
    pub(super) joined: Option<Joined>,
    /// System files being copied by a peer tracker (GET_SYS_FILES_START..END).
    pub(super) sys_files: Option<Vec<Vec<u8>>>,
    /// A follower tracker sent JOIN_LEADER on this connection.
    pub(super) follower: bool,
    /// Its "ip:port" when its JOIN_LEADER named its port (the key of `Cluster::followers`).
    pub(super) follower_addr: Option<String>,
}

/// A storage that has JOINed on this connection.
pub(super) struct Joined {
    pub(super) group: String,
    pub(super) id: String,
    pub(super) serial: u64,
    /// Group version last sent in a beat reply on this connection.
    pub(super) sent_version: u64,
    /// Leader version last sent on this connection.
    pub(super) sent_leader: u64,
}

impl Tracker {
    /// This tracker's connection counts `[alloc, current, max]` (alloc: connections accepted
    /// since start); zeros before it listens.
    pub(super) fn connection_counts(&self) -> [u32; 3] {
        self.conns.get().map_or([0; 3], |c| c.counts())
    }

    /// IP field width in replies (PROTOCOL.md §4.1.1).
    pub(super) fn ip_size(&self, st: &State) -> usize {
        match self.cfg.response_ip_addr_size {
            IpAddrSize::V4 => 16,
            IpAddrSize::V6 => 46,
            IpAddrSize::Auto => {
                let v6 = st
                    .groups
                    .values()
                    .flat_map(|g| &g.storages)
                    .any(|s| s.ip.contains(':'));
                if v6 { 46 } else { 16 }
            }
        }
    }

    /// The command table: each command to the handler of its family
    /// (clients' queries in `queries.rs`, storages' in `members.rs`, other
    /// trackers' in `peers.rs`, the 6.16 stats in `cluster_stat.rs`).
    fn dispatch(&self, s: &mut Session, cmd: Cmd, body: &[u8]) -> Res {
        use Cmd::*;
        match cmd {
            ActiveTest => Ok(Vec::new()),
            // Clients: where to upload or download, what is there.
            QueryStoreWithoutGroupOne
            | QueryStoreWithGroupOne
            | QueryStoreWithoutGroupAll
            | QueryStoreWithGroupAll => self.query_store(cmd, body),
            QueryFetchOne | QueryUpdate | QueryFetchAll => self.query_fetch(cmd, body),
            ListOneGroup | ListAllGroups => self.list_groups(cmd, body),
            ListStorage => self.list_storage(body),
            DeleteStorage => self.delete_storage(s, body),
            DeleteGroup => self.delete_group(s, body),
            // Storages: who they are, then what they report.
            FetchStorageIds => self.fetch_storage_ids(body),
            StorageGetServerId => self.get_server_id(body),
            StorageParameterReq => Ok(self.parameters()),
            StorageGetMyIp => self.get_my_ip(s, body),
            StorageJoin => self.join(s, body),
            StorageBeat
            | StorageReportDiskUsage
            | StorageSyncReport
            | StorageSyncDestReq
            | StorageSyncNotify => self.joined_cmd(s, cmd, body),
            StorageSyncDestQuery => self.sync_dest_query(s),
            StorageSyncSrcReq => self.sync_src_req(body),
            StorageReportStatus => self.report_status(s, body),
            StorageReportIpChanged => self.report_ip_changed(s, body),
            StorageChangelogReq => self.changelog_req(s, body),
            // Other trackers: elections, followers, copying the state.
            TrackerGetStatus => Ok(self.get_status()),
            TrackerNotifyNextLeader | TrackerCommitNextLeader => self.leader_change(s, cmd, body),
            TrackerNotifyReselectLeader => Ok(self.reselect_leader(s)),
            TrackerJoinLeader => self.join_leader(s, body),
            TrackerPingLeader => self.ping_leader(s, body),
            GetLeader => self.get_leader(),
            TrackerGetSysFilesStart => self.sys_files_start(s),
            TrackerGetOneSysFile => self.one_sys_file(s, body),
            TrackerGetSysFilesEnd => Ok(self.sys_files_end(s)),
            // The cluster stats of FastDFS 6.16.
            TrackerClusterStat => self.tracker_cluster_stat(body),
            StorageClusterStat => self.storage_cluster_stat(body),
            StorageVolumnStat => self.storage_volumn_stat(body),
            _ => Err(Error::Unsupported),
        }
    }
}

impl Tracker {
    /// The status answering `e` to command `code` from `s`, and the one log
    /// line of that refusal. A server refused, or a request no tracker
    /// serves, is a warning (at most one a minute per peer and command); a
    /// client's query refused (a group with no storage, say) is routine and
    /// logged at debug.
    fn refuse(&self, s: &Session, code: u8, e: &Error) -> u8 {
        let status = e.status();
        let cmd = Cmd::from_u8(code);
        let warn = e.is_bad_request() || cmd.is_some_and(from_a_server);
        if !warn && !log::log_enabled!(log::Level::Debug) {
            return status;
        }
        let who = match &s.joined {
            Some(j) => format!("{} (storage {}/{})", s.peer, j.group, j.id),
            None => s.peer.to_string(),
        };
        let msg = format_args!(
            "{} from {who} refused with {}: {e}",
            cmd.map_or("request", Cmd::name),
            status::describe(status),
        );
        if warn {
            self.refusals
                .warn(&(s.peer.ip(), code), module_path!(), msg);
        } else {
            log::debug!("{msg}");
        }
        status
    }
}

impl Service for Tracker {
    type Session = Session;
    type Stream = ();

    fn open(&self, peer: SocketAddr) -> Option<Session> {
        if !crate::config::host_allowed(&self.cfg.allow_hosts, peer.ip()) {
            return None;
        }
        Some(Session {
            peer,
            joined: None,
            sys_files: None,
            follower: false,
            follower_addr: None,
        })
    }

    fn plan(&self, s: &mut Session, h: &Header) -> Plan {
        match Cmd::from_u8(h.cmd) {
            Some(Cmd::Quit) => Plan::Quit,
            _ if h.pkg_len > self.cfg.max_buff_size => {
                let e = Error::TooBig {
                    what: "body",
                    need: h.pkg_len,
                    max: self.cfg.max_buff_size,
                };
                // The body is never read: the connection closes.
                Plan::Reject(self.refuse(s, h.cmd, &e))
            }
            _ => Plan::Buffer,
        }
    }

    fn request(&self, s: &mut Session, h: Header, body: Vec<u8>) -> Action {
        let r = match Cmd::from_u8(h.cmd) {
            Some(cmd) => self.dispatch(s, cmd, &body),
            None => Err(Error::UnknownCommand(h.cmd)),
        };
        Action::Reply(match r {
            Ok(body) => Reply::ok(body),
            Err(e) => Reply::error(self.refuse(s, h.cmd, &e)),
        })
    }

    fn begin_stream(&self, _: &mut Session, _: &Header, _: &[u8]) -> Begin<()> {
        Begin::Reject(status::EINVAL)
    }

    fn stream_chunk(&self, _: &mut (), _: &[u8]) -> Result<(), u8> {
        Err(status::EINVAL)
    }

    fn stream_end(&self, _: ()) -> Reply {
        Reply::error(status::EINVAL)
    }

    fn pool(&self, _: usize) -> Option<&Pool> {
        None
    }

    /// Never: the tracker reads every request whole, so the connection stays
    /// usable after any error (upstream does the same).
    fn close_after_error(&self, _: u8) -> bool {
        false
    }

    fn close(&self, s: Session) {
        // When we stop, our own closing of the connections says nothing about
        // the storages; marking them OFFLINE would make loops still serving
        // answer clients "no storage" (ENOENT, which clients do not retry
        // elsewhere) instead of the truth.
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if let Some(j) = s.joined {
            self.state.lock().disconnected(&j.group, &j.id, j.serial);
            log::info!("storage {}/{} disconnected ({})", j.group, j.id, s.peer);
        }
    }
}
