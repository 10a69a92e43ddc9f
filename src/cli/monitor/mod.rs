//! `fdfs monitor`: the whole cluster as a person wants to read it (what FastDFS's
//! fdfs_monitor shows, aligned and with units), or one JSON object for scripts; and
//! `fdfs monitor delete` to remove a stopped storage server or an empty group from every
//! tracker. Talks to trackers through `client` only (PROTOCOL.md §4.3-4.5, §4.7).

use super::local_time::local_time;
use super::opts::ClientOpts;
use super::{CliError, CliResult};
use crate::client::{Error, TrackerClient};
use crate::proto::dedup::DedupStat;
use crate::proto::repair::RepairStat;
use crate::proto::stat::{GroupStat, StatCounters, StorageStat};
use crate::proto::{status, storage_status};
use clap::{Args as ClapArgs, Subcommand};
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{SystemTime, UNIX_EPOCH};
use text::*;

mod text;

/// Arguments of `fdfs monitor`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub op: Option<Op>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// What to do besides showing the cluster.
#[derive(Subcommand, Debug)]
pub enum Op {
    /// Delete a stopped storage server (DELETE_STORAGE) or, without STORAGE_ID, a group
    /// without servers (DELETE_GROUP), on every configured tracker.
    Delete {
        /// Group name.
        group: String,
        /// Storage id (its IP address when storage ids are not used).
        storage_id: Option<String>,
    },
}

/// Run `fdfs monitor`.
pub fn run(a: Args) -> CliResult {
    let tracker = a.client.tracker()?;
    match a.op {
        Some(Op::Delete { group, storage_id }) => delete(&tracker, &group, storage_id.as_deref()),
        None => show(&tracker, a.json),
    }
}

/// What one configured tracker said about itself.
struct TrackerView {
    /// Address as configured.
    addr: String,
    /// Why ACTIVE_TEST failed, None when it answered.
    down: Option<String>,
    /// GET_LEADER's answer: Ok(Some(addr)), Ok(None) = no leader known, Err = not asked or
    /// not understood (trackers before 6.15.5).
    says_leader: Result<Option<String>, String>,
    /// Whether this tracker is the leader; None when no tracker could say.
    is_leader: Option<bool>,
}

/// A group with its servers.
struct GroupView {
    stat: GroupStat,
    storages: Vec<StorageStat>,
    /// Each storage's dedup figures (same order); None: not asked (not
    /// ONLINE/ACTIVE), unreachable, or a storage without the command (C).
    dedup: Vec<Option<DedupStat>>,
    /// Each storage's scrub and repair figures (same order and rule).
    repair: Vec<Option<RepairStat>>,
}

/// Everything `fdfs monitor` shows.
struct Snapshot {
    trackers: Vec<TrackerView>,
    /// Tracker the groups came from.
    source: Option<String>,
    groups: Vec<GroupView>,
    /// Unix time when the snapshot was taken, for "N s ago".
    now: u64,
}

fn show(t: &TrackerClient, as_json: bool) -> CliResult {
    let (snap, err) = collect(t);
    let text = if as_json {
        let mut s = to_json(&snap).to_string();
        s.push('\n');
        s
    } else {
        to_text(&snap)
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|err| Error::Local {
            path: "stdout".into(),
            err,
        })?;
    err.map_or(Ok(()), |e| Err(e.into()))
}

/// Ask every tracker about itself, then the first that answers (the leader first) about
/// the groups. The error says why no cluster data could be had.
fn collect(t: &TrackerClient) -> (Snapshot, Option<Error>) {
    let mut trackers: Vec<TrackerView> = t
        .addrs
        .iter()
        .map(|addr| match t.active_test_at(addr) {
            Ok(()) => TrackerView {
                addr: addr.clone(),
                down: None,
                says_leader: t.leader_at(addr).map_err(|e| e.to_string()),
                is_leader: None,
            },
            Err(e) => TrackerView {
                addr: addr.clone(),
                down: Some(e.to_string()),
                says_leader: Err("unreachable".into()),
                is_leader: None,
            },
        })
        .collect();
    let answered: Vec<Option<String>> = trackers
        .iter()
        .filter_map(|v| v.says_leader.clone().ok())
        .collect();
    if !answered.is_empty() {
        // Several trackers may name different leaders during an election: each named one
        // counts.
        let named: Vec<&String> = answered.iter().flatten().collect();
        for v in &mut trackers {
            v.is_leader = Some(named.iter().any(|l| same_addr(&v.addr, l)));
        }
    }

    let mut order: Vec<&TrackerView> = trackers.iter().filter(|v| v.down.is_none()).collect();
    order.sort_by_key(|v| v.is_leader != Some(true));
    let mut last: Option<Error> = None;
    let mut data = None;
    for v in order {
        match fetch_groups(t, &v.addr) {
            Ok(groups) => {
                data = Some((v.addr.clone(), groups));
                break;
            }
            Err(e) => {
                log::debug!("tracker {}: {e}", v.addr);
                last = Some(e);
            }
        }
    }
    let err = match (&data, last) {
        (Some(_), _) => None,
        (None, Some(e)) => Some(e),
        (None, None) => Some(Error::NoTracker(
            trackers
                .iter()
                .filter_map(|v| v.down.clone())
                .collect::<Vec<_>>()
                .join("; "),
        )),
    };
    let (source, groups) = match data {
        Some((s, g)) => (Some(s), g),
        None => (None, Vec::new()),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (
        Snapshot {
            trackers,
            source,
            groups,
            now,
        },
        err,
    )
}

fn fetch_groups(t: &TrackerClient, addr: &str) -> Result<Vec<GroupView>, Error> {
    t.list_groups_at(addr)?
        .into_iter()
        .map(|stat| {
            let storages = t.list_storages_at(addr, &stat.name)?;
            let (dedup, repair) = storages.iter().map(|s| fdfs_figures(t, s)).unzip();
            Ok(GroupView {
                stat,
                storages,
                dedup,
                repair,
            })
        })
        .collect()
}

/// Ask a storage that is up what dedup saves there and how its scrub and
/// repair went (fdfs's own commands; a C storage has neither).
fn fdfs_figures(t: &TrackerClient, s: &StorageStat) -> (Option<DedupStat>, Option<RepairStat>) {
    if !matches!(s.status, storage_status::ONLINE | storage_status::ACTIVE) {
        return (None, None);
    }
    let addr = format!("{}:{}", s.ip, s.storage_port);
    let Ok(mut c) = crate::client::StorageClient::connect(&addr, t.timeouts) else {
        return (None, None);
    };
    let Ok(Some(d)) = c.dedup_stat() else {
        return (None, None);
    };
    let r = c.repair(0).ok().flatten();
    c.quit();
    (Some(d), r)
}

fn repair_json(r: &Option<RepairStat>) -> Value {
    match r {
        None => Value::Null,
        Some(r) => json!({
            "running": r.running,
            "recovering_paths": r.recovering_paths,
            "passes": r.passes,
            "scrubbed_files": r.scrubbed_files,
            "scrubbed_bytes": r.scrubbed_bytes,
            "scrub_done": r.scrub_done,
            "scrub_total": r.scrub_total,
            "corrupt": r.corrupt,
            "missing": r.missing,
            "repaired": r.repaired,
            "deletes_sent": r.deletes_sent,
            "unrepairable": r.unrepairable,
            "bad_binlog_records": r.bad_binlog_records,
            "dirs_compared": r.dirs_compared,
            "dirs_differing": r.dirs_differing,
            "peers_skipped": r.peers_skipped,
            "last_pass_end": r.last_pass_end,
            "digest_bytes": r.digest_bytes,
        }),
    }
}

fn dedup_json(d: &Option<DedupStat>) -> Value {
    match d {
        None => Value::Null,
        Some(d) => json!({
            "enabled": d.enabled,
            "contents": d.contents,
            "files": d.links,
            "shared_files": d.shared_files,
            "saved_bytes": d.saved_bytes,
        }),
    }
}

/// Whether a configured tracker address and the leader's "ip:port" name the same socket
/// (the configured one may be a host name).
fn same_addr(configured: &str, leader: &str) -> bool {
    if configured == leader {
        return true;
    }
    let Ok(l) = leader.parse::<SocketAddr>() else {
        return false;
    };
    configured
        .to_socket_addrs()
        .is_ok_and(|mut it| it.any(|a| a == l))
}

/// ACTIVE servers of a group: counted from the list (HEAD group records do not carry it).
fn active_count(g: &GroupView) -> u64 {
    g.storages
        .iter()
        .filter(|s| s.status == storage_status::ACTIVE)
        .count() as u64
}

/// Seconds `me` is behind each other live server of its group: how much newer that
/// server's last client change is than what `me` has synced (0 when nothing is pending).
/// Deleted and replaced servers send nothing any more, so they are left out.
fn sync_lags<'a>(me: &StorageStat, group: &'a [StorageStat]) -> Vec<(&'a str, u64)> {
    group
        .iter()
        .filter(|s| s.id != me.id)
        .filter(|s| {
            !matches!(
                s.status,
                storage_status::DELETED | storage_status::IP_CHANGED
            )
        })
        .map(|s| {
            let lag = s
                .stat
                .last_source_update
                .saturating_sub(me.stat.last_synced_timestamp);
            (s.id.as_str(), lag)
        })
        .collect()
}

fn counters_json(c: &StatCounters) -> Value {
    let mut m = Map::new();
    m.insert("connection_alloc".into(), c.connection_alloc.into());
    m.insert("connection_current".into(), c.connection_current.into());
    m.insert("connection_max".into(), c.connection_max.into());
    for (name, v) in c.fields() {
        m.insert(name.into(), v.into());
    }
    Value::Object(m)
}

fn storage_json(
    s: &StorageStat,
    group: &[StorageStat],
    (dedup, repair): (&Option<DedupStat>, &Option<RepairStat>),
) -> Value {
    let lags: Map<String, Value> = sync_lags(s, group)
        .into_iter()
        .map(|(id, lag)| (id.to_string(), lag.into()))
        .collect();
    json!({
        "id": s.id,
        "ip": s.ip,
        "port": s.storage_port,
        "status": storage_status::name(s.status),
        "status_code": s.status,
        "rw_mode": s.rw_mode,
        "version": s.version,
        "join_time": s.join_time,
        "up_time": s.up_time,
        "total_mb": s.total_mb,
        "free_mb": s.free_mb,
        "reserved_mb": s.reserved_mb,
        "upload_priority": s.upload_priority,
        "store_path_count": s.store_path_count,
        "subdir_count_per_path": s.subdir_count_per_path,
        "current_write_path": s.current_write_path,
        "src_id": s.src_id,
        "if_trunk_server": s.if_trunk_server,
        "last_heart_beat_time": s.stat.last_heart_beat_time,
        "last_source_update": s.stat.last_source_update,
        "last_sync_update": s.stat.last_sync_update,
        "last_synced_timestamp": s.stat.last_synced_timestamp,
        "counters": counters_json(&s.stat),
        "sync_lag": lags,
        "dedup": dedup_json(dedup),
        "repair": repair_json(repair),
    })
}

fn to_json(snap: &Snapshot) -> Value {
    let trackers: Vec<Value> = snap
        .trackers
        .iter()
        .map(|v| {
            json!({
                "addr": v.addr,
                "reachable": v.down.is_none(),
                "leader": v.is_leader,
                "leader_addr": v.says_leader.clone().ok().flatten(),
                "error": v.down,
            })
        })
        .collect();
    let groups: Vec<Value> = snap
        .groups
        .iter()
        .map(|g| {
            let s = &g.stat;
            json!({
                "name": s.name,
                "total_mb": s.total_mb,
                "free_mb": s.free_mb,
                "reserved_mb": s.reserved_mb,
                "trunk_free_mb": s.trunk_free_mb,
                "storage_count": s.storage_count,
                "active_count": active_count(g),
                "readable_count": s.readable_count,
                "writable_count": s.writable_count,
                "storage_port": s.storage_port,
                "current_write_server": s.current_write_server,
                "store_path_count": s.store_path_count,
                "subdir_count_per_path": s.subdir_count_per_path,
                "current_trunk_file_id": s.current_trunk_file_id,
                "storages": g.storages.iter().zip(g.dedup.iter().zip(&g.repair))
                    .map(|(st, (d, r))| storage_json(st, &g.storages, (d, r))).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "trackers": trackers,
        "source": snap.source,
        "groups": groups,
    })
}

/// `monitor delete`: the command goes to every tracker, since trackers do not forward it;
/// done if any tracker did it (or had already done it).
fn delete(t: &TrackerClient, group: &str, id: Option<&str>) -> CliResult {
    let what = match id {
        Some(id) => format!("storage {id} of {group}"),
        None => format!("group {group}"),
    };
    let mut done = false;
    let mut errors: Vec<Error> = Vec::new();
    let many = t.addrs.len() > 1;
    for addr in &t.addrs {
        let r = match id {
            Some(id) => t.delete_storage_at(addr, group, id),
            None => t.delete_group_at(addr, group),
        };
        match r {
            Ok(()) => {
                done = true;
                eprintln!("{addr}: {what} deleted");
            }
            Err(e) if e.status() == Some(status::EALREADY) => {
                done = true;
                eprintln!("{addr}: {what} was already deleted");
            }
            Err(e) => {
                // With one tracker the final error says the same.
                if many {
                    eprintln!("{e}");
                }
                errors.push(e);
            }
        }
    }
    if done {
        return Ok(());
    }
    // Prefer the answer that says most: a refusal (EBUSY) over "unknown" (ENOENT) over
    // an unreachable tracker.
    let rank = |e: &Error| match e.status() {
        Some(s) if s != status::ENOENT => 0,
        Some(_) => 1,
        None if !e.is_io() => 0,
        None => 2,
    };
    errors.sort_by_key(rank);
    let first = errors.into_iter().next();
    Err(match first {
        Some(e) if e.is_io() => CliError::Client(Error::NoTracker(e.to_string())),
        Some(e) => CliError::About(format!("delete {what}"), e),
        None => CliError::Usage("no tracker configured".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(id: &str, status: u8, source_update: u64, synced: u64) -> StorageStat {
        let mut s = StorageStat {
            id: id.into(),
            ip: id.into(),
            status,
            storage_port: 23000,
            ..Default::default()
        };
        s.stat.last_source_update = source_update;
        s.stat.last_synced_timestamp = synced;
        s
    }

    #[test]
    fn lag_per_peer() {
        let g = vec![
            storage("a", storage_status::ACTIVE, 100, 90),
            storage("b", storage_status::ACTIVE, 120, 100),
            storage("c", storage_status::DELETED, 500, 0),
            storage("d", storage_status::OFFLINE, 50, 0),
        ];
        assert_eq!(sync_lags(&g[0], &g), vec![("b", 30), ("d", 0)]);
        assert_eq!(sync_lags(&g[1], &g), vec![("a", 0), ("d", 0)]);
    }

    #[test]
    fn units() {
        assert_eq!(mb_text(512), "512 MB");
        assert_eq!(mb_text(102_400), "102400 MB (100.00 GiB)");
        assert_eq!(mb_text(3 << 20), "3145728 MB (3.00 TiB)");
        assert_eq!(bytes_text(10), "10 B");
        assert_eq!(bytes_text(1536), "1.50 KiB");
        assert_eq!(duration_text(42), "42s");
        assert_eq!(duration_text(125), "2m 5s");
        assert_eq!(duration_text(3 * 3600 + 60), "3h 1m");
        assert_eq!(duration_text(2 * 86_400 + 3600), "2d 1h");
        assert_eq!(time_text(0, 5), "never");
        assert!(time_text(100, 160).ends_with("(1m 0s ago)"));
        assert_eq!(rw_text(6), "read-write (6)");
    }

    #[test]
    fn addresses() {
        assert!(same_addr("127.0.0.1:22122", "127.0.0.1:22122"));
        assert!(same_addr("localhost:22122", "127.0.0.1:22122"));
        assert!(!same_addr("127.0.0.1:22123", "127.0.0.1:22122"));
        assert!(!same_addr("127.0.0.1:22122", "garbage"));
    }

    fn snapshot() -> Snapshot {
        let mut s = storage("127.0.0.2", storage_status::ACTIVE, 1_700_000_000, 0);
        s.stat.total_upload_count = 3;
        s.stat.success_upload_count = 2;
        s.stat.total_upload_bytes = 4096;
        let peer = storage("127.0.0.3", storage_status::OFFLINE, 0, 1_700_000_000);
        Snapshot {
            trackers: vec![
                TrackerView {
                    addr: "127.0.0.1:22122".into(),
                    down: None,
                    says_leader: Ok(Some("127.0.0.1:22122".into())),
                    is_leader: Some(true),
                },
                TrackerView {
                    addr: "127.0.0.1:1".into(),
                    down: Some("refused".into()),
                    says_leader: Err("unreachable".into()),
                    is_leader: Some(false),
                },
            ],
            source: Some("127.0.0.1:22122".into()),
            groups: vec![GroupView {
                stat: GroupStat {
                    name: "group1".into(),
                    storage_count: 2,
                    storage_port: 23000,
                    ..Default::default()
                },
                storages: vec![s, peer],
                dedup: vec![
                    Some(DedupStat {
                        enabled: true,
                        contents: 1,
                        links: 100,
                        shared_files: 99,
                        saved_bytes: 99 << 20,
                    }),
                    None,
                ],
                repair: vec![
                    Some(RepairStat {
                        passes: 1,
                        repaired: 3,
                        corrupt: 2,
                        ..Default::default()
                    }),
                    None,
                ],
            }],
            now: 1_700_000_010,
        }
    }

    #[test]
    fn json_shape() {
        let v = to_json(&snapshot());
        assert_eq!(v["trackers"][0]["leader"], true);
        assert_eq!(v["trackers"][1]["reachable"], false);
        let g = &v["groups"][0];
        assert_eq!(g["name"], "group1");
        assert_eq!(g["active_count"], 1);
        let s = &g["storages"][0];
        assert_eq!(s["status"], "ACTIVE");
        assert_eq!(s["status_code"], 7);
        assert_eq!(s["port"], 23000);
        assert_eq!(s["counters"]["success_upload_count"], 2);
        assert_eq!(s["counters"]["connection_max"], 0);
        assert_eq!(s["sync_lag"]["127.0.0.3"], 0);
        assert_eq!(g["storages"][1]["sync_lag"]["127.0.0.2"], 0);
        assert_eq!(s["dedup"]["shared_files"], 99);
        assert_eq!(s["dedup"]["saved_bytes"], 99u64 << 20);
        assert_eq!(s["repair"]["repaired"], 3);
        assert_eq!(s["repair"]["corrupt"], 2);
        assert!(g["storages"][1]["dedup"].is_null());
    }

    #[test]
    fn text_shape() {
        let t = to_text(&snapshot());
        for want in [
            "Tracker 1: 127.0.0.1:22122  reachable  leader\n",
            "Tracker 2: 127.0.0.1:1  UNREACHABLE (refused)\n",
            "\nGroup 1: group1\n",
            "  Storage 2: 127.0.0.3\n",
            "    status                   = OFFLINE\n",
            "    upload count             = 3 total, 2 ok\n",
            "    upload bytes             = 4096 total, 0 ok (4.00 KiB)\n",
            "    download bytes           = 0 total, 0 ok\n",
            "    sync lag from 127.0.0.3  = 0s\n",
            "    last synced timestamp    = never\n",
            "    dedup                    = 100 files on 1 contents, 99 shared, 99.00 MiB saved\n",
            "    dedup                    = (not known)\n",
        ] {
            assert!(t.contains(want), "{want:?} missing from\n{t}");
        }
    }
}
