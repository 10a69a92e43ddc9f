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

/// SYNC_REPORT from `dest`: the newest timestamp it received from each source.
/// Its `last_synced_timestamp` becomes the minimum over its live sources (it
/// has everything up to its slowest source), as upstream does with round-robin
/// uploads (SYNC.md §6).
pub fn apply_sync_report(state: &mut State, group: &str, dest: &str, reports: &[(String, u32)]) {
    let Some(g) = state.groups.get_mut(group) else {
        return;
    };
    let mut min: Option<u64> = None;
    for (src, ts) in reports {
        if *ts == 0 || src == dest {
            continue;
        }
        if g.get(src).is_some_and(|s| s.status == st::ACTIVE) {
            min = Some(min.map_or(*ts as u64, |m| m.min(*ts as u64)));
        }
    }
    if let (Some(m), Some(d)) = (min, g.get_mut(dest)) {
        d.stat.last_synced_timestamp = m;
    }
}
