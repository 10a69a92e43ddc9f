//! Saving and reloading the tracker state in FastDFS's `data/*.dat` files
//! (LAYOUT.md §1), so a restarted tracker knows its groups and servers at once.

use super::state::{Group, RW_READ, RW_WRITE, State, Storage};
use crate::layout::tracker_dat::{
    self, GROUPS_FILE as GROUPS, GroupRecord, STORAGES_FILE as SERVERS,
    SYNC_TIMESTAMP_FILE as SYNC_TIMESTAMPS, StorageRecord,
};
use crate::proto::storage_status as st;
use std::io;
use std::path::Path;

/// What the tracker saves, taken from its state under the lock and written
/// after the lock is released (the writes fsync).
pub struct Saved {
    groups: Vec<GroupRecord>,
    servers: Vec<StorageRecord>,
}

impl Saved {
    /// Groups and servers of `state` (deleted servers are not written, as upstream).
    pub fn take(state: &State, with_ids: bool) -> Saved {
        let (groups, servers) = records(state, with_ids);
        Saved { groups, servers }
    }

    /// Write them to `data_dir`.
    pub fn write(&self, data_dir: &Path) -> io::Result<()> {
        tracker_dat::save_groups(&data_dir.join(GROUPS), &self.groups)?;
        tracker_dat::save_storages(&data_dir.join(SERVERS), &self.servers)
    }
}

/// Write the sync-timestamp matrix (rows from [`matrix_rows`]): one row per
/// source server, the value for each server k of its group being what k
/// reported as received from it.
pub fn save_matrix(rows: &[(String, String, Vec<u32>)], data_dir: &Path) -> io::Result<()> {
    tracker_dat::save_sync_timestamps(&data_dir.join(SYNC_TIMESTAMPS), rows)
}

/// The sync-timestamp matrix of `state`, for [`save_matrix`].
pub fn matrix_rows(state: &State) -> Vec<(String, String, Vec<u32>)> {
    let mut rows = Vec::new();
    for g in state.groups.values() {
        let live: Vec<&Storage> = g
            .storages
            .iter()
            .filter(|s| !matches!(s.status, st::DELETED | st::IP_CHANGED))
            .collect();
        for src in &live {
            let row = live
                .iter()
                .map(|d| {
                    if d.id == src.id {
                        0
                    } else {
                        d.synced_from.get(&src.id).copied().unwrap_or(0)
                    }
                })
                .collect();
            rows.push((g.name.clone(), src.id.clone(), row));
        }
    }
    rows
}

/// Load the matrix saved by [`save_matrix`] into `state` (rows of unknown
/// servers are ignored).
fn load_matrix(state: &mut State, data_dir: &Path) -> io::Result<()> {
    for (group, src, row) in tracker_dat::load_sync_timestamps(&data_dir.join(SYNC_TIMESTAMPS))? {
        let Some(g) = state.groups.get_mut(&group) else {
            continue;
        };
        let ids: Vec<String> = g
            .storages
            .iter()
            .filter(|s| !matches!(s.status, st::DELETED | st::IP_CHANGED))
            .map(|s| s.id.clone())
            .collect();
        for (k, ts) in row.into_iter().enumerate() {
            if let (Some(dest), true) = (ids.get(k), ts > 0)
                && let Some(d) = g.get_mut(dest)
            {
                d.synced_from.insert(src.clone(), ts);
            }
        }
    }
    Ok(())
}

/// The system files as a peer tracker copies them (GET_ONE_SYS_FILE order),
/// taken from memory so that a copy is never torn by a concurrent save.
pub fn snapshot(state: &State, changelog: Vec<u8>, with_ids: bool) -> Vec<Vec<u8>> {
    let (groups, servers) = records(state, with_ids);
    vec![
        tracker_dat::format_groups(&groups).into_bytes(),
        tracker_dat::format_storages(&servers).into_bytes(),
        tracker_dat::format_sync_timestamps(&matrix_rows(state)).into_bytes(),
        changelog,
    ]
}

fn records(state: &State, with_ids: bool) -> (Vec<GroupRecord>, Vec<StorageRecord>) {
    let groups: Vec<GroupRecord> = state
        .groups
        .values()
        .map(|g| GroupRecord {
            name: g.name.clone(),
            storage_port: g.storage_port,
            store_path_count: g.store_path_count,
            subdir_count_per_path: g.subdir_count_per_path,
            current_trunk_file_id: g.current_trunk_file_id,
            trunk_server: String::new(),
            last_trunk_server: String::new(),
        })
        .collect();
    let mut servers = Vec::new();
    for g in state.groups.values() {
        for s in g
            .storages
            .iter()
            .filter(|s| !matches!(s.status, st::DELETED | st::IP_CHANGED))
        {
            servers.push(StorageRecord {
                id: with_ids.then(|| s.id.clone()),
                group_name: g.name.clone(),
                ip_addr: s.ip.clone(),
                status: s.status,
                version: s.version.clone(),
                join_time: s.join_time,
                storage_port: s.port,
                sync_src_server: s.sync_src.clone(),
                sync_until_timestamp: s.sync_until,
                total_mb: s.total_mb,
                free_mb: s.free_mb,
                changelog_offset: s.changelog_offset,
                store_path_count: s.store_path_count,
                subdir_count_per_path: s.subdir_count_per_path,
                upload_priority: s.upload_priority,
                counters: s
                    .stat
                    .fields()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
    }
    (groups, servers)
}

/// Load what [`save`] wrote. Servers that were serving are OFFLINE until they
/// join again.
pub fn load(data_dir: &Path) -> io::Result<State> {
    let mut state = State::default();
    for r in tracker_dat::load_groups(&data_dir.join(GROUPS))? {
        state.groups.insert(
            r.name.clone(),
            Group {
                name: r.name,
                storage_port: r.storage_port,
                store_path_count: r.store_path_count,
                subdir_count_per_path: r.subdir_count_per_path,
                current_trunk_file_id: r.current_trunk_file_id,
                ..Group::default()
            },
        );
    }
    for r in tracker_dat::load_storages(&data_dir.join(SERVERS))? {
        let Some(g) = state.groups.get_mut(&r.group_name) else {
            log::warn!(
                "{SERVERS}: server {} names unknown group {}, skipped",
                r.ip_addr,
                r.group_name
            );
            continue;
        };
        let mut s = Storage {
            id: r.id.clone().unwrap_or_else(|| r.ip_addr.clone()),
            ip: r.ip_addr,
            port: r.storage_port,
            status: if matches!(r.status, st::ONLINE | st::ACTIVE) {
                st::OFFLINE
            } else {
                r.status
            },
            rw_mode: RW_READ | RW_WRITE,
            version: r.version,
            join_time: r.join_time,
            total_mb: r.total_mb,
            free_mb: r.free_mb,
            store_path_count: r.store_path_count,
            subdir_count_per_path: r.subdir_count_per_path,
            upload_priority: r.upload_priority,
            sync_src: r.sync_src_server,
            sync_until: r.sync_until_timestamp,
            changelog_offset: r.changelog_offset,
            ..Storage::default()
        };
        for (k, v) in &r.counters {
            s.stat.set_field(k, *v);
        }
        s.paths = vec![(0, 0); s.store_path_count as usize];
        g.storages.push(s);
        g.storages.sort_by(|a, b| a.id.cmp(&b.id));
    }
    load_matrix(&mut state, data_dir)?;
    Ok(state)
}
