//! Trackers among themselves (PROTOCOL.md §10): the list of known trackers
//! (learnt from storages' JOINs), leader election, followers pinging the
//! leader, and a fresh tracker copying the system files from the leader
//! before it accepts storages.
//!
//! Better than upstream where cheap: with three or more known trackers a
//! leader needs a majority of them; two trackers that both think they lead
//! settle it by the election order instead of waiting for a storage to
//! complain; a tracker with no groups still answers GET_STATUS.

use super::handler::{Tracker, now};
use crate::client::{Connection, Error, Timeouts};
use crate::layout::tracker_dat;
use crate::proto::peer::{
    JoinLeader, PingLeader, SYS_FILE_CHUNK, SysFileChunk, SysFileRequest, TrackerStatus,
};
use crate::proto::{self, Cmd, status};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// System files a fresh tracker copies, by GET_ONE_SYS_FILE index.
pub const SYS_FILES: [&str; 4] = [
    tracker_dat::GROUPS_FILE,
    tracker_dat::STORAGES_FILE,
    tracker_dat::SYNC_TIMESTAMP_FILE,
    tracker_dat::CHANGELOG_FILE,
];
/// A tracker down longer than this re-copies the system files (upstream: 2 x 300 s).
pub const STALE_AFTER_SECS: u64 = 600;
/// Pings the leader may miss before a new election.
const MAX_PING_FAILURES: u32 = 3;

/// What this tracker knows about the tracker cluster.
#[derive(Debug, Default)]
pub struct Cluster {
    /// "ip:port" of this tracker, once known.
    pub me: Option<String>,
    /// Every known tracker ("ip:port"), this one included.
    pub trackers: BTreeSet<String>,
    /// The leader, if one is known.
    pub leader: Option<String>,
    /// Candidate announced by NOTIFY_NEXT_LEADER, waiting for its COMMIT.
    pub candidate: Option<String>,
    /// Bumped when the leader changes (beat replies carry the new one).
    pub leader_version: u64,
    /// The system files still have to be copied from another tracker.
    pub bootstrap: bool,
    /// Seconds this tracker was down before this start (0 if unknown).
    pub restart_interval: u64,
    /// What followers told this tracker while it led, by "ip:port" (as in `trackers`).
    pub followers: BTreeMap<String, Follower>,
}

/// A follower as the leader knows it from its JOIN_LEADER and PING_LEADER (PROTOCOL.md §10.2),
/// for the tracker cluster stat (96).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Follower {
    /// When it started (Unix seconds), from JOIN_LEADER.
    pub up_time: u64,
    /// Its version, from JOIN_LEADER.
    pub version: String,
    /// Its connection counts, from its last PING_LEADER.
    pub connections: proto::Connections,
    /// When its last PING_LEADER arrived (Unix seconds), 0 if none yet.
    pub last_heartbeat_time: u64,
}

/// A tracker's rank in elections (PROTOCOL.md §10.1), larger wins.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rank {
    pub if_leader: bool,
    pub running_time: u64,
    /// Stored negated so that a shorter downtime ranks higher.
    pub neg_restart_interval: i64,
    pub ip: String,
    pub port: u16,
}

/// Normalise a tracker line from a JOIN ("ip1,ip2:port" keeps the first ip).
pub fn normalise(addr: &str) -> Option<String> {
    let (host, port) = addr.trim().rsplit_once(':')?;
    let host = host
        .split(',')
        .next()?
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port: u16 = port.trim().parse().ok()?;
    (!host.is_empty() && port > 0).then(|| format!("{host}:{port}"))
}

fn split(addr: &str) -> (String, u16) {
    let (h, p) = addr.rsplit_once(':').unwrap_or((addr, "0"));
    (h.to_string(), p.parse().unwrap_or(0))
}

impl Cluster {
    /// Learn trackers named by a storage; returns whether any was new.
    pub fn learn(&mut self, lines: &[String]) -> bool {
        let mut new = false;
        for l in lines {
            if let Some(a) = normalise(l) {
                new |= self.trackers.insert(a);
            }
        }
        new
    }

    /// Trackers other than this one.
    pub fn others(&self) -> Vec<String> {
        self.trackers
            .iter()
            .filter(|t| Some(*t) != self.me.as_ref())
            .cloned()
            .collect()
    }

    /// Whether this tracker leads.
    pub fn is_leader(&self) -> bool {
        self.leader.is_some() && self.leader == self.me
    }

    /// Adopt `leader` (None: no leader known).
    pub fn set_leader(&mut self, leader: Option<String>) {
        if self.leader != leader {
            match &leader {
                Some(l) => log::info!(
                    "tracker leader is now {l}{}",
                    if Some(l) == self.me.as_ref() {
                        " (this tracker)"
                    } else {
                        ""
                    }
                ),
                None => log::info!("tracker leader unknown, electing"),
            }
            self.leader = leader;
            self.leader_version += 1;
        }
    }
}

impl Tracker {
    /// GET_STATUS values of this tracker: (if_leader, running_time, restart_interval),
    /// times truncated to multiples of 300 s as upstream.
    pub fn local_status(&self) -> (bool, u64, u64) {
        let c = self.cluster.lock();
        let running = now().saturating_sub(self.started) / 300 * 300;
        (c.is_leader(), running, c.restart_interval / 300 * 300)
    }

    fn rank_of(&self, addr: &str, (if_leader, running, restart): (bool, u64, u64)) -> Rank {
        let (ip, port) = split(addr);
        Rank {
            if_leader,
            running_time: running,
            neg_restart_interval: -(restart as i64),
            ip,
            port,
        }
    }
}

fn timeouts(t: &Tracker) -> Timeouts {
    Timeouts {
        connect: t.cfg.connect_timeout.min(Duration::from_secs(2)),
        network: Duration::from_secs(3),
    }
}

/// GET_STATUS of another tracker.
fn status_of(t: &Tracker, addr: &str) -> Result<(bool, u64, u64), Error> {
    let mut c = Connection::connect(addr, timeouts(t), None)?;
    let r = c.call(Cmd::TrackerGetStatus, &[], 64)?;
    c.quit();
    let s = TrackerStatus::decode(&r).map_err(|e| Error::Protocol {
        addr: addr.into(),
        msg: format!("GET_STATUS reply: {e}"),
    })?;
    Ok((s.if_leader, s.running_time, s.restart_interval))
}

fn send_text(t: &Tracker, addr: &str, cmd: Cmd, text: &str) -> Result<(), Error> {
    let mut c = Connection::connect(addr, timeouts(t), None)?;
    c.call(cmd, text.as_bytes(), 0)?;
    c.quit();
    Ok(())
}

/// The cluster thread: elect, follow, check for rival leaders, bootstrap.
pub fn run(t: &Tracker, quit: &AtomicBool) {
    let mut follower: Option<(String, Connection)> = None;
    let mut failures = 0u32;
    let mut waited_for_commit = 0u32;
    let mut seed = now() ^ std::process::id() as u64;
    while !quit.load(Ordering::SeqCst) {
        sleep_unless(quit, Duration::from_millis(500));
        let (me, leader, others, bootstrap) = {
            let c = t.cluster.lock();
            (c.me.clone(), c.leader.clone(), c.others(), c.bootstrap)
        };
        let Some(me) = me else { continue };
        if bootstrap {
            bootstrap_from_peers(t, &others);
            continue;
        }
        match leader {
            None => {
                follower = None;
                // Spread simultaneous elections apart.
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if waited_for_commit > 0 {
                    waited_for_commit -= 1;
                    continue;
                }
                if !elect(t, &me, &others) {
                    waited_for_commit = 2 + (seed >> 60) as u32 % 4;
                }
            }
            Some(l) if l == me => {
                follower = None;
                check_rivals(t, &me, &others);
            }
            Some(l) => {
                if ping_leader(t, &l, &mut follower) {
                    failures = 0;
                } else {
                    failures += 1;
                    follower = None;
                    if failures >= MAX_PING_FAILURES {
                        log::warn!("tracker leader {l} missed {failures} pings");
                        failures = 0;
                        t.cluster.lock().set_leader(None);
                    }
                }
            }
        }
    }
}

fn sleep_unless(quit: &AtomicBool, d: Duration) {
    let end = std::time::Instant::now() + d;
    while !quit.load(Ordering::SeqCst) && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One election round. Returns true when it ended (leader chosen or we are
/// it), false when we wait for another candidate's commit or lack a quorum.
fn elect(t: &Tracker, me: &str, others: &[String]) -> bool {
    let mut ranks = vec![t.rank_of(me, t.local_status())];
    for o in others {
        match status_of(t, o) {
            Ok(s) => ranks.push(t.rank_of(o, s)),
            Err(e) => log::debug!("election: tracker {o}: {e}"),
        }
    }
    let known = others.len() + 1;
    if known >= 3 && ranks.len() * 2 <= known {
        log::warn!(
            "election: only {} of {known} trackers answer, no majority; waiting",
            ranks.len()
        );
        return false;
    }
    let best = ranks
        .iter()
        .max()
        .expect("ranks holds this tracker")
        .clone();
    let best_addr = format!("{}:{}", best.ip, best.port);
    if best_addr != me {
        if best.if_leader {
            // It already leads (we restarted, or joined late): follow it.
            t.cluster.lock().set_leader(Some(best_addr));
            return true;
        }
        // The best tracker runs the election; wait for its commit.
        return false;
    }
    let reachable: Vec<String> = ranks
        .iter()
        .map(|r| format!("{}:{}", r.ip, r.port))
        .filter(|a| a != me)
        .collect();
    for o in &reachable {
        if let Err(e) = send_text(t, o, Cmd::TrackerNotifyNextLeader, me) {
            log::warn!("election: tracker {o} refused our candidacy: {e}");
            return false;
        }
    }
    for o in &reachable {
        if let Err(e) = send_text(t, o, Cmd::TrackerCommitNextLeader, me) {
            log::warn!("election: commit to tracker {o}: {e}");
        }
    }
    t.cluster.lock().set_leader(Some(me.to_string()));
    true
}

/// A leader that finds another leader ranked above it steps down.
fn check_rivals(t: &Tracker, me: &str, others: &[String]) {
    let mine = t.rank_of(me, (false, t.local_status().1, t.local_status().2));
    for o in others {
        if let Ok((true, running, restart)) = status_of(t, o) {
            let theirs = t.rank_of(o, (false, running, restart));
            if theirs > mine {
                log::warn!("tracker {o} also leads and ranks higher: stepping down");
                t.cluster.lock().set_leader(Some(o.clone()));
                return;
            }
        }
    }
}

/// JOIN_LEADER once per connection, then PING_LEADER. False on failure.
fn ping_leader(t: &Tracker, leader: &str, conn: &mut Option<(String, Connection)>) -> bool {
    if conn.as_ref().is_none_or(|(a, _)| a != leader) {
        let joined = Connection::connect(leader, timeouts(t), None).and_then(|mut c| {
            let body = JoinLeader {
                up_time: t.started,
                version: super::VERSION.to_string(),
                server_port: split(t.cluster.lock().me.as_deref().unwrap_or("")).1,
            }
            .encode();
            c.call(Cmd::TrackerJoinLeader, &body, 0)?;
            Ok(c)
        });
        match joined {
            Ok(c) => *conn = Some((leader.to_string(), c)),
            Err(e) => {
                if e.status() == Some(status::EOPNOTSUPP) {
                    // It no longer leads: elect again.
                    t.cluster.lock().set_leader(None);
                }
                log::debug!("join leader {leader}: {e}");
                return false;
            }
        }
    }
    let (_, c) = conn.as_mut().expect("connected above");
    // TrackerPingLeaderBody: our connection counts, which the leader shows in cluster stats.
    let [alloc, current, max] = t.connection_counts();
    let body = PingLeader {
        connections: Some(proto::Connections {
            alloc,
            current,
            max,
        }),
    }
    .encode();
    match c.call(Cmd::TrackerPingLeader, &body, 64 * 1024) {
        Ok(_) => true,
        Err(e) => {
            if e.status() == Some(status::EOPNOTSUPP) {
                t.cluster.lock().set_leader(None);
            }
            log::debug!("ping leader {leader}: {e}");
            false
        }
    }
}

/// Copy the system files from the best other tracker that has groups, then
/// load them; with nobody to copy from, start with what we have.
fn bootstrap_from_peers(t: &Tracker, others: &[String]) {
    let mut ranked: Vec<(super::cluster::Rank, String)> = others
        .iter()
        .filter_map(|o| status_of(t, o).ok().map(|s| (t.rank_of(o, s), o.clone())))
        .collect();
    ranked.sort();
    for (_, peer) in ranked.iter().rev() {
        match copy_sys_files(t, peer) {
            Ok(true) => {
                log::info!("copied the system files from tracker {peer}");
                break;
            }
            Ok(false) => log::debug!("tracker {peer} has no groups to copy"),
            Err(e) => log::warn!("copying the system files from tracker {peer}: {e}"),
        }
    }
    t.cluster.lock().bootstrap = false;
}

/// GET_SYS_FILES_START / GET_ONE_SYS_FILE... / END from `peer`, written to our
/// data dir and loaded. Ok(false) when the peer has no groups.
fn copy_sys_files(t: &Tracker, peer: &str) -> Result<bool, Error> {
    let mut c = Connection::connect(peer, timeouts(t), None)?;
    match c.call(Cmd::TrackerGetSysFilesStart, &[], 0) {
        Ok(_) => {}
        Err(e) if e.status() == Some(status::ENOENT) => return Ok(false),
        Err(e) => return Err(e),
    }
    let data = t.cfg.base_path.join("data");
    let mut files = Vec::new();
    for (i, name) in SYS_FILES.iter().enumerate() {
        let mut content = Vec::new();
        loop {
            let req = SysFileRequest {
                index: i as u8,
                offset: content.len() as u64,
            };
            let r = c.call(Cmd::TrackerGetOneSysFile, &req.encode(), SYS_FILE_CHUNK + 8)?;
            let SysFileChunk { file_size, chunk } =
                SysFileChunk::decode(&r).map_err(|e| Error::Protocol {
                    addr: peer.into(),
                    msg: e.to_string(),
                })?;
            content.extend_from_slice(chunk);
            if content.len() as u64 >= file_size || chunk.is_empty() {
                break;
            }
        }
        files.push((name, content));
    }
    let _ = c.call(Cmd::TrackerGetSysFilesEnd, &[], 0);
    c.quit();
    for (name, content) in &files {
        let path = data.join(name);
        crate::layout::store::atomic_write(&path, content).map_err(|err| Error::Local {
            path: path.display().to_string(),
            err,
        })?;
    }
    let loaded = super::persist::load(&data).map_err(|err| Error::Local {
        path: data.display().to_string(),
        err,
    })?;
    let mut st = t.state.lock();
    st.merge_copied(loaded);
    Ok(true)
}
