//! Turning tracker state into the monitor records (LIST_* replies) and folding
//! storages' sync reports into each server's `last_synced_timestamp`.

use super::state::{Group, RW_READ, RW_WRITE, State, Storage, reserved_mb};
use crate::config::TrackerConfig;
use crate::proto::{GroupStat, StorageStat, storage_status as st};

/// The group-stat record of `g` (PROTOCOL.md §4.3).
pub fn group_stat(g: &Group, cfg: &TrackerConfig) -> GroupStat {
    let (total_mb, free_mb) = g.space();
    let live = g.storages.iter().filter(|s| s.status != st::DELETED);
    GroupStat {
        name: g.name.clone(),
        total_mb,
        free_mb,
        reserved_mb: reserved_mb(&cfg.reserved_storage_space, total_mb),
        trunk_free_mb: 0,
        storage_count: g.storages.len() as u64,
        storage_port: g.storage_port,
        readable_count: live.clone().filter(|s| s.readable()).count() as u64,
        writable_count: live.clone().filter(|s| s.writable()).count() as u64,
        active_count: live.filter(|s| s.status == st::ACTIVE).count() as u64,
        current_write_server: g.current_write_server as u64,
        store_path_count: g.store_path_count as u64,
        subdir_count_per_path: g.subdir_count_per_path as u64,
        current_trunk_file_id: if cfg.use_trunk_file {
            g.current_trunk_file_id
        } else {
            -1
        },
    }
}

/// The storage-stat record of `s` (PROTOCOL.md §4.4).
pub fn storage_stat(s: &Storage, _g: &Group, cfg: &TrackerConfig) -> StorageStat {
    StorageStat {
        status: s.status,
        rw_mode: s.rw_mode & (RW_READ | RW_WRITE),
        id: s.id.clone(),
        ip: s.ip.clone(),
        src_id: s.sync_src.clone(),
        version: s.version.clone(),
        join_time: s.join_time,
        up_time: s.up_time,
        total_mb: s.total_mb,
        free_mb: s.free_mb,
        reserved_mb: reserved_mb(&cfg.reserved_storage_space, s.total_mb),
        upload_priority: s.upload_priority as u64,
        store_path_count: s.store_path_count as u64,
        subdir_count_per_path: s.subdir_count_per_path as u64,
        current_write_path: s.current_write_path as u64,
        storage_port: s.port as u64,
        stat: s.stat,
        if_trunk_server: false,
    }
}

/// SYNC_REPORT from `dest`: the newest timestamp it received from each
/// source. Kept per source (download routing asks "has it received this
/// source's file?"); its `last_synced_timestamp` is the minimum over its live
/// sources, as upstream computes it for round-robin uploads (SYNC.md §6).
pub fn apply_sync_report(state: &mut State, group: &str, dest: &str, reports: &[(String, u32)]) {
    let Some(g) = state.groups.get_mut(group) else {
        return;
    };
    let live: Vec<(String, u32)> = reports
        .iter()
        .filter(|(src, ts)| {
            *ts != 0 && src != dest && g.get(src).is_some_and(|s| s.status == st::ACTIVE)
        })
        .cloned()
        .collect();
    let Some(d) = g.get_mut(dest) else { return };
    for (src, ts) in &live {
        let e = d.synced_from.entry(src.clone()).or_insert(0);
        if *ts > *e {
            *e = *ts;
            state.matrix_dirty = true;
        }
    }
    if let Some(min) = live.iter().map(|(_, ts)| *ts as u64).min() {
        d.stat.last_synced_timestamp = min;
    }
}
