//! One thread per configured tracker: fetch parameters, JOIN, negotiate the
//! sync source once, then BEAT and REPORT_DISK_USAGE on their intervals. On any
//! error the connection is dropped and re-made with a growing pause.

use super::Store;
use super::identity::Params;
use crate::client::{Connection, Error};
use crate::config::ini::parse_reserved;
use crate::proto::{self, Cmd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Our version string in JOIN (FastDFS V6 layout, 8 bytes).
pub const VERSION: &str = "6.16.1";

/// Start the report thread for `tracker`.
pub fn spawn(
    store: Arc<Store>,
    tracker: String,
    port: u16,
    quit: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("fdfs-beat-{tracker}"))
        .spawn(move || {
            let mut pause = Duration::from_millis(200);
            let mut last_err = String::new();
            let mut slots = false;
            while !quit.load(Ordering::SeqCst) {
                match session(&store, &tracker, port, &quit, &mut slots) {
                    Ok(()) => return,
                    Err(e) => {
                        let msg = e.to_string();
                        // Say it once per distinct failure, not every retry.
                        if msg != last_err {
                            log::warn!("tracker {tracker}: {msg}; retrying");
                            last_err = msg;
                        }
                    }
                }
                sleep_unless(&quit, pause);
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        })
}

fn sleep_unless(quit: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !quit.load(Ordering::SeqCst) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50).min(d));
    }
}

fn bad(addr: &str, e: proto::DecodeError) -> Error {
    Error::Protocol {
        addr: addr.to_string(),
        msg: e.to_string(),
    }
}

/// One connected session with a tracker; returns Ok only when asked to quit.
/// `slots` says which tracker-list form the JOIN uses: lines (6.15+) unless
/// this tracker refused them, then the 6.11-6.14 slots, flipping on every
/// EINVAL so that a tracker replaced by another version is still joined.
fn session(
    store: &Arc<Store>,
    tracker: &str,
    port: u16,
    quit: &Arc<AtomicBool>,
    slots: &mut bool,
) -> Result<(), Error> {
    let cfg = &store.cfg;
    let mut c = Connection::connect(tracker, store.timeouts(), store.outbound_ip())?;
    if let Some(ip) = c.local_ip() {
        store.identity.learn_ip(ip);
    }
    let params = c.call(Cmd::StorageParameterReq, &[], 64 * 1024)?;
    apply_params(
        store,
        &proto::ParameterReply::decode(&params)
            .map_err(|e| bad(tracker, e))?
            .0,
    );
    learn_id(store, &mut c, tracker, port)?;

    let flag = store.identity.init_flag();
    report_ip_change(store, &mut c, &flag)?;
    let join = proto::Join {
        group: cfg.group_name.clone(),
        storage_port: port,
        store_path_count: store.paths.len() as u32,
        subdir_count_per_path: cfg.subdir_count_per_path,
        upload_priority: cfg.upload_priority,
        join_time: flag.storage_join_time,
        up_time: store.identity.started(),
        version: VERSION.into(),
        init_flag: !flag.sync_old_done,
        status: proto::storage_status::INIT as i8,
        storage_id: store.identity.id().unwrap_or_default(),
        current_tracker_ip: tracker
            .rsplit_once(':')
            .map_or(tracker, |(h, _)| h)
            .to_string(),
        trackers: cfg.tracker_servers.clone(),
    };
    let body = if *slots {
        join.encode_slots()
    } else {
        join.encode()
    };
    let r = match c.call(Cmd::StorageJoin, &body, 64) {
        Err(e) if e.status() == Some(proto::status::EINVAL) => {
            *slots = !*slots;
            log::warn!(
                "tracker {tracker} refused our JOIN with the tracker list as {} (EINVAL); \
                 next try sends {} ({})",
                if *slots { "lines" } else { "100-byte slots" },
                if *slots { "100-byte slots" } else { "lines" },
                if *slots {
                    "as FastDFS 6.11-6.14 expects"
                } else {
                    "as FastDFS 6.15+ expects"
                },
            );
            return Err(e);
        }
        r => r?,
    };
    let reply = proto::JoinReply::decode(&r).map_err(|e| bad(tracker, e))?;
    log::info!(
        "joined tracker {tracker} as {}:{port}, status {}",
        cfg.group_name,
        reply.status
    );
    remember_address(store, port);

    if !flag.sync_old_done {
        // First start of this server: ask for a sync source (none in a new group).
        let r = c.call(Cmd::StorageSyncDestReq, &[], 64)?;
        let saved = store.identity.update_init_flag(|f| {
            // An empty reply: no source (the group is new).
            if let Ok(src) = proto::SyncSrc::decode(&r) {
                f.sync_src_server = src.src_id;
                f.sync_until_timestamp = src.until_timestamp;
            }
            f.sync_old_done = true;
            true
        });
        saved.map_err(|err| Error::Local {
            path: ".data_init_flag".into(),
            err,
        })?;
    } else {
        // Every (re)join tells the tracker which source we negotiated.
        let body = proto::SyncSrc {
            src_id: flag.sync_src_server.clone(),
            until_timestamp: flag.sync_until_timestamp,
        }
        .encode();
        if let Err(e) = c.call(Cmd::StorageSyncNotify, &body, 0) {
            log::debug!("tracker {tracker}: SYNC_NOTIFY: {e}");
        }
    }

    let beat_every = cfg.heart_beat_interval.max(Duration::from_millis(200));
    let usage_every = cfg.stat_report_interval.max(Duration::from_millis(200));
    let mut next_usage = Instant::now();
    let mut next_beat = Instant::now();
    let mut last_sent = proto::StatCounters::default();
    let mut last_report = Vec::new();
    // Every reply may carry the group's server list: start pushing to new peers.
    let on_reply = |r: &[u8]| -> Result<(), Error> {
        let reply = proto::BeatReply::decode(r).map_err(|e| bad(tracker, e))?;
        if let Some(servers) = reply.servers {
            super::sync::update(store, &servers, quit);
        }
        Ok(())
    };
    while !quit.load(Ordering::SeqCst) {
        let now_i = Instant::now();
        if now_i >= next_usage {
            next_usage = now_i + usage_every;
            let body = proto::encode_disk_usage(&store.refresh_space());
            on_reply(&c.call(Cmd::StorageReportDiskUsage, &body, 1 << 20)?)?;
        }
        if now_i >= next_beat {
            next_beat = now_i + beat_every;
            let stats = store.stats.now();
            let send = (stats != last_sent).then_some(&stats);
            on_reply(&c.call(Cmd::StorageBeat, &proto::encode_beat(send), 1 << 20)?)?;
            last_sent = stats;
            apply_changelog(store, &mut c)?;
            // What we have received from each peer, when it moved.
            let report = sync_report(store);
            if report != last_report && !report.is_empty() {
                on_reply(&c.call(
                    Cmd::StorageSyncReport,
                    &proto::encode_sync_report(&report),
                    1 << 20,
                )?)?;
                last_report = report;
            }
        }
        let wake = next_beat.min(next_usage);
        sleep_unless(quit, wake.saturating_duration_since(Instant::now()));
    }
    c.quit();
    Ok(())
}

/// (peer id, newest timestamp received from it) for every known peer.
fn sync_report(store: &Store) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = store
        .peers
        .ids()
        .into_iter()
        .map(|id| {
            let ts = store.stats.received_from(&id);
            (id, ts)
        })
        .collect();
    v.sort();
    v
}

fn apply_params(store: &Store, pairs: &[(String, String)]) {
    let mut p: Params = store.identity.params();
    for (k, v) in pairs {
        match k.as_str() {
            "store_path" => p.store_path_mode = v.trim().parse().unwrap_or(0),
            "response_ip_addr_size" => p.ip_size = if v.trim() == "46" { 46 } else { 16 },
            "use_storage_id" => p.use_storage_id = v.trim() == "1",
            "id_type_in_filename" => p.id_in_filename = v.trim() == "id",
            "reserved_storage_space" => match parse_reserved(v.trim()) {
                Ok(r) => p.reserved = r,
                Err(e) => log::warn!("tracker parameter reserved_storage_space={v}: {e}"),
            },
            _ => {}
        }
    }
    store.identity.set_params(p);
}

/// With storage ids, learn ours: storage.conf's `server_id`, else the one
/// storage_ids.conf gives our address (GET_SERVER_ID).
fn learn_id(store: &Store, c: &mut Connection, tracker: &str, port: u16) -> Result<(), Error> {
    if !store.identity.uses_storage_ids() {
        return Ok(());
    }
    let id = match &store.cfg.server_id {
        Some(id) => id.clone(),
        None => {
            let body = proto::GetServerId {
                group: store.cfg.group_name.clone(),
                addr: format!("{}:{port}", store.identity.my_ip()),
            }
            .encode();
            let r = c.call(Cmd::StorageGetServerId, &body, 64)?;
            let id = proto::fixed_str(&r);
            if id.is_empty() {
                return Err(Error::Protocol {
                    addr: tracker.into(),
                    msg: "empty storage id".into(),
                });
            }
            id
        }
    };
    if store.identity.set_id(id.clone()) {
        log::info!("storage id {id}");
    }
    Ok(())
}

/// CHANGELOG_REQ: drop the sync state of deleted peers, follow IP changes.
fn apply_changelog(store: &Store, c: &mut Connection) -> Result<(), Error> {
    let r = c.call(Cmd::StorageChangelogReq, &[], 64 * 1024)?;
    for line in String::from_utf8_lossy(&r).lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 5 || f[1] != store.cfg.group_name {
            continue;
        }
        let (ts, old, st, new) = (f[0], f[2], f[3], f[4]);
        let old_mark = store.mark_path(old, old);
        if !old_mark.exists() {
            continue;
        }
        let done = match st.parse::<u8>() {
            Ok(proto::storage_status::DELETED) => {
                std::fs::rename(&old_mark, old_mark.with_extension(format!("mark.{ts}")))
            }
            Ok(proto::storage_status::IP_CHANGED) if !new.is_empty() => {
                std::fs::rename(&old_mark, store.mark_path(new, new))
            }
            _ => continue,
        };
        match done {
            Ok(()) => log::info!(
                "changelog: peer {old} {}",
                if st == "4" {
                    "deleted, its mark set aside"
                } else {
                    "moved, mark renamed"
                }
            ),
            Err(e) => log::warn!("changelog: mark of {old}: {e}"),
        }
    }
    Ok(())
}

/// Without storage ids a server is known by its IP: when it starts under a
/// new one, tell the tracker (REPORT_IP_CHANGED) so that its record, sync
/// source and the peers' marks follow (PROTOCOL.md §9.10).
fn report_ip_change(
    store: &Store,
    c: &mut Connection,
    flag: &crate::layout::DataInitFlag,
) -> Result<(), Error> {
    let now_ip = store.identity.my_ip().to_string();
    if store.identity.uses_storage_ids()
        || flag.last_ip_addr.is_empty()
        || flag.last_ip_addr == now_ip
    {
        return Ok(());
    }
    let body = proto::ReportIpChanged {
        group: store.cfg.group_name.clone(),
        old_ip: flag.last_ip_addr.clone(),
        new_ip: now_ip.clone(),
    }
    .encode();
    match c.call(Cmd::StorageReportIpChanged, &body, 0) {
        Ok(_) => log::info!(
            "reported our address change {} -> {now_ip}",
            flag.last_ip_addr
        ),
        // Another tracker took it first, or it never knew the old address.
        Err(e)
            if matches!(
                e.status(),
                Some(proto::status::ENOENT | proto::status::EALREADY)
            ) => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Save the address we serve under, for the next start's comparison.
fn remember_address(store: &Store, port: u16) {
    let ip = store.identity.my_ip().to_string();
    let saved = store.identity.update_init_flag(|f| {
        if f.last_ip_addr == ip && f.last_server_port == port {
            return false;
        }
        f.last_ip_addr = ip;
        f.last_server_port = port;
        true
    });
    if let Err(e) = saved {
        log::warn!("saving .data_init_flag: {e}");
    }
}
