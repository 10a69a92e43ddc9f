//! `fdfs monitor`'s text output: aligned `key = value` blocks, sizes in MB
//! and GiB, times as local date-times with their age.

use super::*;

pub(super) fn repair_text(r: &Option<RepairStat>, now: u64) -> String {
    let Some(r) = r else {
        return "(not known)".into();
    };
    let mut s = format!(
        "{} files scrubbed ({}), {} corrupt, {} missing, {} repaired, {} unrepairable",
        r.scrubbed_files,
        bytes_text(r.scrubbed_bytes),
        r.corrupt,
        r.missing,
        r.repaired,
        r.unrepairable
    );
    if r.running && r.scrub_total > 0 && r.scrub_done < r.scrub_total {
        let _ = write!(s, "; scrubbing {}/{}", r.scrub_done, r.scrub_total);
    } else if r.running {
        s.push_str("; a pass is running");
    }
    if r.recovering_paths > 0 {
        let _ = write!(s, "; {} store path(s) being refilled", r.recovering_paths);
    }
    if r.last_pass_end > 0 {
        let _ = write!(s, "; last pass {}", time_text(r.last_pass_end, now));
    }
    s
}

pub(super) fn dedup_text(d: &Option<DedupStat>) -> String {
    match d {
        None => "(not known)".into(),
        Some(d) if !d.enabled => "off".into(),
        Some(d) => format!(
            "{} files on {} contents, {} shared, {} saved",
            d.links,
            d.contents,
            d.shared_files,
            bytes_text(d.saved_bytes)
        ),
    }
}

/// Width of the key column in the text output, so the `=` signs line up.
pub(super) const KEY_WIDTH: usize = 24;

/// `key = value` lines at one indentation.
pub(super) struct Block<'a> {
    out: &'a mut String,
    indent: usize,
}

impl Block<'_> {
    fn kv(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(
            self.out,
            "{:indent$}{key:<KEY_WIDTH$} = {value}",
            "",
            indent = self.indent
        );
    }
}

pub(super) fn to_text(snap: &Snapshot) -> String {
    let mut out = String::new();
    for (i, v) in snap.trackers.iter().enumerate() {
        let state = match &v.down {
            None => "reachable".to_string(),
            Some(why) => format!("UNREACHABLE ({why})"),
        };
        let role = match (v.is_leader, &v.says_leader) {
            _ if v.down.is_some() => String::new(),
            (Some(true), _) => "  leader".to_string(),
            (Some(false), Ok(Some(l))) if !same_addr(&v.addr, l) => {
                format!("  follower of {l}")
            }
            (Some(false), _) => "  not leader".to_string(),
            (None, _) => "  leader unknown".to_string(),
        };
        let _ = writeln!(out, "Tracker {}: {}  {state}{role}", i + 1, v.addr);
    }
    let Some(source) = &snap.source else {
        return out;
    };
    let n = snap.groups.len();
    let _ = writeln!(
        out,
        "\nCluster data from {source}: {n} group{}",
        if n == 1 { "" } else { "s" }
    );
    for (gi, g) in snap.groups.iter().enumerate() {
        group_text(&mut out, gi + 1, g, snap.now);
    }
    out
}

pub(super) fn group_text(out: &mut String, number: usize, g: &GroupView, now: u64) {
    let s = &g.stat;
    let _ = writeln!(out, "\nGroup {number}: {}", s.name);
    let mut b = Block { out, indent: 2 };
    b.kv("total space", mb_text(s.total_mb));
    b.kv("free space", mb_text(s.free_mb));
    b.kv("reserved space", mb_text(s.reserved_mb));
    b.kv("trunk free space", mb_text(s.trunk_free_mb));
    b.kv(
        "storage servers",
        format!(
            "{} (active {}, readable {}, writable {})",
            s.storage_count,
            active_count(g),
            s.readable_count,
            s.writable_count
        ),
    );
    b.kv(
        "storage port",
        if s.storage_port < 0 {
            "(differs between servers)".to_string()
        } else {
            s.storage_port.to_string()
        },
    );
    b.kv("current write server", s.current_write_server);
    b.kv("store path count", s.store_path_count);
    b.kv("subdir count per path", s.subdir_count_per_path);
    b.kv("current trunk file id", s.current_trunk_file_id);
    for (si, (s, (d, r))) in g
        .storages
        .iter()
        .zip(g.dedup.iter().zip(&g.repair))
        .enumerate()
    {
        storage_text(out, si + 1, (s, d, r), &g.storages, now);
    }
}

pub(super) fn storage_text(
    out: &mut String,
    number: usize,
    (s, dedup, repair): (&StorageStat, &Option<DedupStat>, &Option<RepairStat>),
    group: &[StorageStat],
    now: u64,
) {
    let _ = writeln!(out, "\n  Storage {number}: {}", s.id);
    let mut b = Block { out, indent: 4 };
    b.kv("ip:port", format!("{}:{}", s.ip, s.storage_port));
    b.kv("status", storage_status::name(s.status));
    b.kv("rw mode", rw_text(s.rw_mode));
    b.kv("version", &s.version);
    b.kv("join time", time_text(s.join_time, now));
    b.kv("up since", time_text(s.up_time, now));
    b.kv("total space", mb_text(s.total_mb));
    let pct = if s.total_mb > 0 {
        format!(", {:.1}%", s.free_mb as f64 * 100.0 / s.total_mb as f64)
    } else {
        String::new()
    };
    b.kv("free space", format!("{}{pct}", mb_text(s.free_mb)));
    b.kv("reserved space", mb_text(s.reserved_mb));
    b.kv("upload priority", s.upload_priority);
    b.kv("store path count", s.store_path_count);
    b.kv("subdir count per path", s.subdir_count_per_path);
    b.kv("current write path", s.current_write_path);
    b.kv(
        "source id",
        if s.src_id.is_empty() {
            "(none)"
        } else {
            &s.src_id
        },
    );
    b.kv("trunk server", if s.if_trunk_server { "yes" } else { "no" });
    b.kv("dedup", dedup_text(dedup));
    b.kv("repair", repair_text(repair, now));
    let c = &s.stat;
    b.kv(
        "connections",
        format!(
            "{} current, {} max, {} allocated",
            c.connection_current, c.connection_max, c.connection_alloc
        ),
    );
    // Counters come in total/success pairs, then the four timestamps.
    let fields = c.fields();
    for pair in fields.chunks_exact(2) {
        let [(name, total), (_, ok)] = pair else {
            continue;
        };
        let Some(what) = name.strip_prefix("total_") else {
            continue;
        };
        let bytes = if what.ends_with("_bytes") && *total >= 1024 {
            format!(" ({})", bytes_text(*total))
        } else {
            String::new()
        };
        b.kv(
            &what.replace('_', " "),
            format!("{total} total, {ok} ok{bytes}"),
        );
    }
    b.kv("last heart beat", time_text(c.last_heart_beat_time, now));
    b.kv("last source update", time_text(c.last_source_update, now));
    b.kv("last sync update", time_text(c.last_sync_update, now));
    b.kv(
        "last synced timestamp",
        time_text(c.last_synced_timestamp, now),
    );
    for (peer, lag) in sync_lags(s, group) {
        let v = if lag > 0 && c.last_synced_timestamp == 0 {
            "never synced".to_string()
        } else {
            duration_text(lag)
        };
        b.kv(&format!("sync lag from {peer}"), v);
    }
}

pub(super) fn rw_text(m: u8) -> String {
    let name = match m {
        6 => "read-write",
        4 => "read-only",
        2 => "write-only",
        0 => "none",
        _ => "unknown",
    };
    format!("{name} ({m})")
}

/// "102400 MB (100.00 GiB)".
pub(super) fn mb_text(mb: u64) -> String {
    const GIB: u64 = 1024;
    const TIB: u64 = 1024 * 1024;
    if mb >= TIB {
        format!("{mb} MB ({:.2} TiB)", mb as f64 / TIB as f64)
    } else if mb >= GIB {
        format!("{mb} MB ({:.2} GiB)", mb as f64 / GIB as f64)
    } else {
        format!("{mb} MB")
    }
}

/// "1.50 MiB" for byte counters.
pub(super) fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// "3d 4h", "2h 5m", "5m 3s", "42s".
pub(super) fn duration_text(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// Local date-time and how long ago, or "never" for 0.
pub(super) fn time_text(t: u64, now: u64) -> String {
    if t == 0 {
        return "never".into();
    }
    let when = local_time(t);
    if t <= now {
        format!("{when} ({} ago)", duration_text(now - t))
    } else {
        format!("{when} (in the future)")
    }
}
