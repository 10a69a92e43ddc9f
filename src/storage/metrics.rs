//! The storage's `GET /metrics` (Prometheus text format): requests by command
//! and status with a latency histogram per command, bytes in and out, the
//! FastDFS counters, disk space per store path, how far each peer's push is
//! behind, connections and what dedup saves.

use super::Store;
use crate::http::metrics::Page;
use crate::proto::{Cmd, status};

/// Bytes of binlog from `from` to `to` (positions: file index, offset).
fn binlog_bytes(store: &Store, from: (u32, u64), to: (u32, u64)) -> u64 {
    if from >= to {
        return 0;
    }
    if from.0 == to.0 {
        return to.1 - from.1;
    }
    let dir = store.binlog.dir();
    let size = |i: u32| {
        std::fs::metadata(crate::layout::binlog::binlog_path(dir, i)).map_or(0, |m| m.len())
    };
    let mut n = size(from.0).saturating_sub(from.1);
    for i in from.0 + 1..to.0 {
        n += size(i);
    }
    n + to.1
}

/// The page.
pub fn page(store: &Store) -> String {
    let mut p = Page::default();
    let group = store.cfg.group_name.as_str();
    let id = store.identity.my_id();
    let me = [("group", group), ("storage", id.as_str())];
    if let Some(server) = store.stats.server() {
        p.requests("fdfs_storage", &server.requests, Cmd::label, |s| {
            status::name(s).to_string()
        });
    }
    let c = store.stats.now();
    p.gauge(
        "fdfs_storage_connections",
        "Connections open now.",
        &[(me.to_vec(), c.connection_current as f64)],
    );
    p.counter(
        "fdfs_storage_connections_accepted_total",
        "Connections accepted since start.",
        &[(me.to_vec(), c.connection_alloc as f64)],
    );
    // FastDFS's own counters (storage_stat.dat), total and success pairs.
    let fields = c.fields();
    let mut ops: Vec<(Vec<(&str, &str)>, f64)> = Vec::new();
    for pair in fields.chunks_exact(2) {
        let [(name, total), (_, ok)] = pair else {
            continue;
        };
        let Some(what) = name.strip_prefix("total_") else {
            continue;
        };
        ops.push((vec![("counter", what), ("result", "total")], *total as f64));
        ops.push((vec![("counter", what), ("result", "success")], *ok as f64));
    }
    p.counter(
        "fdfs_storage_fastdfs_counter_total",
        "FastDFS's storage counters (what fdfs_monitor shows), total and successful.",
        &ops,
    );
    // statvfs each time (cheap); the report thread's figures carry debits.
    let space: Vec<(u64, u64)> = (store.paths.iter())
        .map(|sp| sp.space_mb().unwrap_or((0, 0)))
        .collect();
    let paths: Vec<String> = store
        .paths
        .iter()
        .map(|sp| format!("M{:02X}", sp.index))
        .collect();
    let roots: Vec<String> = store
        .paths
        .iter()
        .map(|sp| sp.root.display().to_string())
        .collect();
    let mb = 1024.0 * 1024.0;
    let per_path = |f: &dyn Fn(&(u64, u64)) -> u64| -> Vec<(Vec<(&str, &str)>, f64)> {
        (space.iter().zip(paths.iter().zip(&roots)))
            .map(|(s, (p, r))| {
                (
                    vec![("path", p.as_str()), ("dir", r.as_str())],
                    f(s) as f64 * mb,
                )
            })
            .collect()
    };
    p.gauge(
        "fdfs_storage_disk_total_bytes",
        "Size of the file system of each store path.",
        &per_path(&|s| s.0),
    );
    p.gauge(
        "fdfs_storage_disk_free_bytes",
        "Free space on the file system of each store path.",
        &per_path(&|s| s.1),
    );
    let end = store.binlog.write_pos();
    let now = super::now();
    let progress = store.peers.progress();
    let behind: Vec<(Vec<(&str, &str)>, f64)> = (progress.iter())
        .map(|(peer, pr)| {
            (
                vec![("peer", peer.as_str())],
                binlog_bytes(store, pr.pos, end) as f64,
            )
        })
        .collect();
    p.gauge(
        "fdfs_storage_sync_behind_bytes",
        "Binlog bytes not yet pushed to each peer.",
        &behind,
    );
    let lag: Vec<(Vec<(&str, &str)>, f64)> = (progress.iter())
        .map(|(peer, pr)| {
            let late = if pr.pos >= end || pr.timestamp == 0 {
                0
            } else {
                now.saturating_sub(pr.timestamp as u64)
            };
            (vec![("peer", peer.as_str())], late as f64)
        })
        .collect();
    p.gauge(
        "fdfs_storage_sync_lag_seconds",
        "Age of the last change pushed to each peer while more wait (0 when caught up).",
        &lag,
    );
    if let Some(d) = &store.dedup {
        let s = d.stats();
        p.gauge(
            "fdfs_storage_dedup_contents",
            "Distinct contents kept.",
            &[(vec![], s.contents as f64)],
        );
        p.gauge(
            "fdfs_storage_dedup_files",
            "Files linked to a kept content.",
            &[(vec![], s.links as f64)],
        );
        p.gauge(
            "fdfs_storage_dedup_saved_bytes",
            "Bytes not stored because files share their content.",
            &[(vec![], s.saved_bytes as f64)],
        );
    }
    let r = store.repair.stat();
    let one = |v: u64| [(vec![], v as f64)];
    p.counter(
        "fdfs_storage_scrub_files_total",
        "Files the scrub has read and checked against their IDs.",
        &one(r.scrubbed_files),
    );
    p.counter(
        "fdfs_storage_scrub_bytes_total",
        "Bytes the scrub has read.",
        &one(r.scrubbed_bytes),
    );
    p.gauge(
        "fdfs_storage_scrub_progress_files",
        "The current or last scrub: files done, and files to check.",
        &[
            (vec![("of", "done")], r.scrub_done as f64),
            (vec![("of", "total")], r.scrub_total as f64),
        ],
    );
    p.counter(
        "fdfs_storage_repair_files_total",
        "Damaged or missing files found here, and what became of them.",
        &[
            (vec![("event", "corrupt")], r.corrupt as f64),
            (vec![("event", "missing")], r.missing as f64),
            (vec![("event", "repaired")], r.repaired as f64),
            (vec![("event", "unrepairable")], r.unrepairable as f64),
            (vec![("event", "delete_sent")], r.deletes_sent as f64),
        ],
    );
    p.counter(
        "fdfs_storage_repair_passes_total",
        "Repair passes finished (scrub and/or anti-entropy).",
        &one(r.passes),
    );
    p.gauge(
        "fdfs_storage_repair_running",
        "1 while a repair pass runs.",
        &one(r.running as u64),
    );
    p.gauge(
        "fdfs_storage_recovering_paths",
        "Store paths being refilled from the peers (replaced disks).",
        &one(r.recovering_paths as u64),
    );
    p.counter(
        "fdfs_storage_binlog_invalid_records_total",
        "Binlog records skipped by the push threads because they do not parse.",
        &one(r.bad_binlog_records),
    );
    p.gauge(
        "fdfs_storage_up_since_seconds",
        "Unix time the storage started.",
        &[(me.to_vec(), store.identity.started() as f64)],
    );
    p.finish()
}
