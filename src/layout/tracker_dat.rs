//! The tracker's data files under `<base_path>/data/` (LAYOUT.md §1.1, §1.2, §1.3, §1.5):
//! `storage_groups_new.dat`, `storage_servers_new.dat`, `storage_sync_timestamp.dat`,
//! `.tracker_status`. Written in FastDFS's exact text format (so an upstream tracker can
//! take over a base path and vice versa), always via `atomic_write`.
//!
//! Loading is tolerant like libfastcommon's ini reader: comments, blank lines and
//! indentation are ignored and missing keys take zero/empty values.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;
use std::str::FromStr;

use super::kv::{kv_get, kv_num, read_kv, write_kv};
use super::store::atomic_write;

/// File name of the groups file in `data/`.
pub const GROUPS_FILE: &str = "storage_groups_new.dat";
/// File name of the storage servers file in `data/`.
pub const STORAGES_FILE: &str = "storage_servers_new.dat";
/// File name of the sync timestamp matrix in `data/`.
pub const SYNC_TIMESTAMP_FILE: &str = "storage_sync_timestamp.dat";
/// File name of the changelog in `data/` (append-only; see LAYOUT.md §1.4).
pub const CHANGELOG_FILE: &str = "storage_changelog.dat";
/// File name of the tracker status file in `data/`.
pub const TRACKER_STATUS_FILE: &str = ".tracker_status";

/// Storage status IP_CHANGED (PROTOCOL.md §8); such records are not written.
const STATUS_IP_CHANGED: u8 = 3;
/// Storage status DELETED (PROTOCOL.md §8); such records are not written.
const STATUS_DELETED: u8 = 4;

/// Counter and timestamp keys of a `[StorageNNN]` section, in write order (LAYOUT.md §1.2).
pub const STORAGE_COUNTER_KEYS: [&str; 36] = [
    "total_upload_count",
    "success_upload_count",
    "total_append_count",
    "success_append_count",
    "total_set_meta_count",
    "success_set_meta_count",
    "total_delete_count",
    "success_delete_count",
    "total_download_count",
    "success_download_count",
    "total_get_meta_count",
    "success_get_meta_count",
    "total_create_link_count",
    "success_create_link_count",
    "total_delete_link_count",
    "success_delete_link_count",
    "total_upload_bytes",
    "success_upload_bytes",
    "total_append_bytes",
    "success_append_bytes",
    "total_download_bytes",
    "success_download_bytes",
    "total_sync_in_bytes",
    "success_sync_in_bytes",
    "total_sync_out_bytes",
    "success_sync_out_bytes",
    "total_file_open_count",
    "success_file_open_count",
    "total_file_read_count",
    "success_file_read_count",
    "total_file_write_count",
    "success_file_write_count",
    "last_source_update",
    "last_sync_update",
    "last_synced_timestamp",
    "last_heart_beat_time",
];

fn counter_keys() -> impl Iterator<Item = &'static str> {
    STORAGE_COUNTER_KEYS.iter().copied()
}

/// One `[GroupNNN]` section of `storage_groups_new.dat` (LAYOUT.md §1.1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupRecord {
    /// Group name.
    pub name: String,
    /// Port shared by the group's storages, -1 for mixed ports.
    pub storage_port: i64,
    /// Store paths per storage.
    pub store_path_count: u32,
    /// Subdirectories per level.
    pub subdir_count_per_path: u32,
    /// Trunk bookkeeping.
    pub current_trunk_file_id: i64,
    /// Id of the trunk server, empty if none.
    pub trunk_server: String,
    /// Id of the previous trunk server, empty if none.
    pub last_trunk_server: String,
}

/// One `[StorageNNN]` section of `storage_servers_new.dat` (LAYOUT.md §1.2).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorageRecord {
    /// Storage id; written only when set (`use_storage_id = true`).
    pub id: Option<String>,
    /// Group name.
    pub group_name: String,
    /// Current IP.
    pub ip_addr: String,
    /// Numeric status (PROTOCOL.md §8).
    pub status: u8,
    /// Version string, e.g. 6.16.1.
    pub version: String,
    /// Join time (unix seconds).
    pub join_time: u64,
    /// Service port.
    pub storage_port: u16,
    /// Id of its sync source, empty if none.
    pub sync_src_server: String,
    /// Until-timestamp of the sync source assignment.
    pub sync_until_timestamp: u64,
    /// Disk total in MB.
    pub total_mb: u64,
    /// Disk free in MB.
    pub free_mb: u64,
    /// How far this server has read storage_changelog.dat.
    pub changelog_offset: u64,
    /// Store paths.
    pub store_path_count: u32,
    /// Subdirectories per level.
    pub subdir_count_per_path: u32,
    /// Upload priority (lower = preferred).
    pub upload_priority: i64,
    /// The counter and timestamp keys of §1.2 ([`STORAGE_COUNTER_KEYS`]) in write order.
    /// Keys missing here are written as 0; keys not in the list are not written.
    pub counters: Vec<(String, u64)>,
}

impl StorageRecord {
    /// Value of a counter (0 if absent).
    pub fn counter(&self, key: &str) -> u64 {
        self.counters
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map_or(0, |(_, v)| *v)
    }

    /// Sets a counter, adding it if absent.
    #[cfg(test)]
    pub fn set_counter(&mut self, key: &str, value: u64) {
        match self.counters.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.counters.push((key.to_string(), value)),
        }
    }
}

/// ini-style sections: `(name, items)`; items before any header go to section "".
type Sections = Vec<(String, Vec<(String, String)>)>;

fn parse_sections(text: &str) -> Sections {
    let mut out: Sections = vec![(String::new(), Vec::new())];
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((name.trim().to_string(), Vec::new()));
        } else if let Some((k, v)) = line.split_once('=') {
            let k = k.trim();
            if let (false, Some(last)) = (k.is_empty(), out.last_mut()) {
                last.1.push((k.to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

/// Reads a file; a missing file gives `None`.
fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match fs::read(path) {
        Ok(b) => String::from_utf8(b).map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not UTF-8 text", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn text(items: &[(String, String)], key: &str) -> String {
    kv_get(items, key).unwrap_or("").to_string()
}

fn num<T: FromStr + Default>(items: &[(String, String)], key: &str) -> io::Result<T> {
    kv_num(items, key, T::default())
}

/// Loads `storage_groups_new.dat`; a missing file gives an empty list.
pub fn load_groups(path: &Path) -> io::Result<Vec<GroupRecord>> {
    let Some(body) = read_optional(path)? else {
        return Ok(Vec::new());
    };
    let mut groups = Vec::new();
    for (name, items) in parse_sections(&body) {
        if !name.starts_with("Group") {
            continue;
        }
        groups.push(GroupRecord {
            name: text(&items, "group_name"),
            storage_port: num(&items, "storage_port")?,
            store_path_count: num(&items, "store_path_count")?,
            subdir_count_per_path: num(&items, "subdir_count_per_path")?,
            current_trunk_file_id: num(&items, "current_trunk_file_id")?,
            trunk_server: text(&items, "trunk_server"),
            last_trunk_server: text(&items, "last_trunk_server"),
        });
    }
    Ok(groups)
}

/// The text of `storage_groups_new.dat`: groups in name order, numbered from 1.
pub fn format_groups(groups: &[GroupRecord]) -> String {
    let mut sorted: Vec<&GroupRecord> = groups.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = format!("[Global]\n\tgroup_count={}\n\n", groups.len());
    for (i, g) in sorted.iter().enumerate() {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "# group: {name}\n[Group{n:03}]\n\tgroup_name={name}\n\tstorage_port={}\n\
             \tstore_path_count={}\n\tsubdir_count_per_path={}\n\tcurrent_trunk_file_id={}\n\
             \ttrunk_server={}\n\tlast_trunk_server={}\n\n",
            g.storage_port,
            g.store_path_count,
            g.subdir_count_per_path,
            g.current_trunk_file_id,
            g.trunk_server,
            g.last_trunk_server,
            name = g.name,
            n = i + 1,
        );
    }
    out
}

/// Writes `storage_groups_new.dat` atomically (see [`format_groups`]).
pub fn save_groups(path: &Path, groups: &[GroupRecord]) -> io::Result<()> {
    atomic_write(path, format_groups(groups).as_bytes())
}

/// Loads `storage_servers_new.dat`; a missing file gives an empty list. `counters` come
/// back with every key of [`STORAGE_COUNTER_KEYS`] in order.
pub fn load_storages(path: &Path) -> io::Result<Vec<StorageRecord>> {
    let Some(body) = read_optional(path)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (name, items) in parse_sections(&body) {
        if !name.starts_with("Storage") {
            continue;
        }
        let mut counters = Vec::new();
        for key in counter_keys() {
            counters.push((key.to_string(), num(&items, key)?));
        }
        out.push(StorageRecord {
            id: kv_get(&items, "id").map(str::to_string),
            group_name: text(&items, "group_name"),
            ip_addr: text(&items, "ip_addr"),
            status: num(&items, "status")?,
            version: text(&items, "version"),
            join_time: num(&items, "join_time")?,
            storage_port: num(&items, "storage_port")?,
            sync_src_server: text(&items, "sync_src_server"),
            sync_until_timestamp: num(&items, "sync_until_timestamp")?,
            total_mb: num(&items, "total_mb")?,
            free_mb: num(&items, "free_mb")?,
            changelog_offset: num(&items, "changelog_offset")?,
            store_path_count: num(&items, "store_path_count")?,
            subdir_count_per_path: num(&items, "subdir_count_per_path")?,
            upload_priority: num(&items, "upload_priority")?,
            counters,
        });
    }
    Ok(out)
}

/// The text of `storage_servers_new.dat`. DELETED (4) and IP_CHANGED (3) records are
/// skipped, as upstream does; the others keep the given order.
pub fn format_storages(storages: &[StorageRecord]) -> String {
    let mut out = String::new();
    let mut count = 0;
    for s in storages {
        if s.status == STATUS_DELETED || s.status == STATUS_IP_CHANGED {
            continue;
        }
        count += 1;
        let _ = writeln!(out, "# storage: {}:{}", s.ip_addr, s.storage_port);
        let _ = writeln!(out, "[Storage{count:03}]");
        if let Some(id) = &s.id {
            let _ = writeln!(out, "\tid={id}");
        }
        let fields: [(&str, String); 14] = [
            ("group_name", s.group_name.clone()),
            ("ip_addr", s.ip_addr.clone()),
            ("status", s.status.to_string()),
            ("version", s.version.clone()),
            ("join_time", s.join_time.to_string()),
            ("storage_port", s.storage_port.to_string()),
            ("sync_src_server", s.sync_src_server.clone()),
            ("sync_until_timestamp", s.sync_until_timestamp.to_string()),
            ("total_mb", s.total_mb.to_string()),
            ("free_mb", s.free_mb.to_string()),
            ("changelog_offset", s.changelog_offset.to_string()),
            ("store_path_count", s.store_path_count.to_string()),
            ("subdir_count_per_path", s.subdir_count_per_path.to_string()),
            ("upload_priority", s.upload_priority.to_string()),
        ];
        for (k, v) in &fields {
            let _ = writeln!(out, "\t{k}={v}");
        }
        for key in counter_keys() {
            let _ = writeln!(out, "\t{key}={}", s.counter(key));
        }
        out.push('\n');
    }
    let _ = write!(out, "[Global]\n\tstorage_count={count}\n");
    out
}

/// Writes `storage_servers_new.dat` atomically (see [`format_storages`]).
pub fn save_storages(path: &Path, storages: &[StorageRecord]) -> io::Result<()> {
    atomic_write(path, format_storages(storages).as_bytes())
}

/// Loads `storage_sync_timestamp.dat`: rows `(group, source storage id, timestamps)`.
/// A missing file gives an empty list.
pub fn load_sync_timestamps(path: &Path) -> io::Result<Vec<(String, String, Vec<u32>)>> {
    let Some(body) = read_optional(path)? else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for line in body.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split(',').map(str::trim);
        let (Some(group), Some(id)) = (fields.next(), fields.next()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: bad line {line:?}", path.display()),
            ));
        };
        let ts = fields
            .map(|f| {
                f.parse::<u32>().map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: bad timestamp {f:?}", path.display()),
                    )
                })
            })
            .collect::<io::Result<Vec<u32>>>()?;
        rows.push((group.to_string(), id.to_string(), ts));
    }
    Ok(rows)
}

/// The text of `storage_sync_timestamp.dat`: `<group>,<id>,<t1>,...,<tn>\n` per row.
pub fn format_sync_timestamps(rows: &[(String, String, Vec<u32>)]) -> String {
    let mut out = String::new();
    for (group, id, ts) in rows {
        out.push_str(group);
        out.push(',');
        out.push_str(id);
        for t in ts {
            let _ = write!(out, ",{t}");
        }
        out.push('\n');
    }
    out
}

/// Writes `storage_sync_timestamp.dat` atomically.
pub fn save_sync_timestamps(path: &Path, rows: &[(String, String, Vec<u32>)]) -> io::Result<()> {
    atomic_write(path, format_sync_timestamps(rows).as_bytes())
}

/// Loads `.tracker_status`: `(up_time, last_check_time)`, `None` if the file is absent.
pub fn load_tracker_status(path: &Path) -> io::Result<Option<(u64, u64)>> {
    match read_kv(path) {
        Ok(items) => Ok(Some((
            num(&items, "up_time")?,
            num(&items, "last_check_time")?,
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `.tracker_status` atomically.
pub fn save_tracker_status(path: &Path, up_time: u64, last_check_time: u64) -> io::Result<()> {
    write_kv(
        path,
        &[
            ("up_time".to_string(), up_time.to_string()),
            ("last_check_time".to_string(), last_check_time.to_string()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of LAYOUT.md §1.1, plus the blank line that ends every section.
    const GROUPS_EXAMPLE: &str = "[Global]
\tgroup_count=1

# group: group1
[Group001]
\tgroup_name=group1
\tstorage_port=23000
\tstore_path_count=1
\tsubdir_count_per_path=256
\tcurrent_trunk_file_id=0
\ttrunk_server=
\tlast_trunk_server=
";

    fn group1() -> GroupRecord {
        GroupRecord {
            name: "group1".into(),
            storage_port: 23000,
            store_path_count: 1,
            subdir_count_per_path: 256,
            ..Default::default()
        }
    }

    #[test]
    fn groups_match_layout_example() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(GROUPS_FILE);
        assert!(load_groups(&p).unwrap().is_empty());
        save_groups(&p, &[group1()]).unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            format!("{GROUPS_EXAMPLE}\n")
        );
        assert_eq!(load_groups(&p).unwrap(), vec![group1()]);
        // The example as printed (without the final blank line) loads too.
        fs::write(&p, GROUPS_EXAMPLE).unwrap();
        assert_eq!(load_groups(&p).unwrap(), vec![group1()]);
    }

    #[test]
    fn groups_sorted_and_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(GROUPS_FILE);
        let b = GroupRecord {
            name: "b2".into(),
            storage_port: -1,
            store_path_count: 2,
            subdir_count_per_path: 16,
            current_trunk_file_id: 7,
            trunk_server: "100002".into(),
            last_trunk_server: "100001".into(),
        };
        let a = GroupRecord {
            name: "a1".into(),
            ..group1()
        };
        save_groups(&p, &[b.clone(), a.clone()]).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("# group: a1\n[Group001]\n")
                && text.contains("[Group002]\n\tgroup_name=b2")
        );
        assert_eq!(load_groups(&p).unwrap(), vec![a, b]);
    }

    fn storage(ip: &str, status: u8) -> StorageRecord {
        let mut s = StorageRecord {
            id: Some("100001".into()),
            group_name: "group1".into(),
            ip_addr: ip.into(),
            status,
            version: "6.16.1".into(),
            join_time: 1_700_000_000,
            storage_port: 23000,
            sync_src_server: String::new(),
            sync_until_timestamp: 0,
            total_mb: 1000,
            free_mb: 500,
            changelog_offset: 42,
            store_path_count: 1,
            subdir_count_per_path: 256,
            upload_priority: 10,
            counters: counter_keys().map(|k| (k.to_string(), 0)).collect(),
        };
        s.set_counter("total_upload_count", 5);
        s.set_counter("last_heart_beat_time", 1_700_000_300);
        s
    }

    #[test]
    fn storages_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(STORAGES_FILE);
        assert!(load_storages(&p).unwrap().is_empty());
        let a = storage("192.168.1.100", 7);
        let mut b = storage("192.168.1.101", 1);
        b.id = None;
        b.sync_src_server = "192.168.1.100".into();
        let deleted = storage("192.168.1.102", STATUS_DELETED);
        let changed = storage("192.168.1.103", STATUS_IP_CHANGED);
        save_storages(&p, &[a.clone(), deleted, b.clone(), changed]).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        let head = "# storage: 192.168.1.100:23000\n[Storage001]\n\tid=100001\n\tgroup_name=group1\n\
                    \tip_addr=192.168.1.100\n\tstatus=7\n\tversion=6.16.1\n\tjoin_time=1700000000\n\
                    \tstorage_port=23000\n\tsync_src_server=\n\tsync_until_timestamp=0\n\ttotal_mb=1000\n\
                    \tfree_mb=500\n\tchangelog_offset=42\n\tstore_path_count=1\n\
                    \tsubdir_count_per_path=256\n\tupload_priority=10\n\ttotal_upload_count=5\n";
        assert!(text.starts_with(head), "{text}");
        assert!(text.contains("\tlast_heart_beat_time=1700000300\n\n# storage: 192.168.1.101:23000\n[Storage002]\n\tgroup_name"));
        assert!(text.ends_with("\n\n[Global]\n\tstorage_count=2\n"));
        assert!(!text.contains("192.168.1.102") && !text.contains("192.168.1.103"));
        // a: id + 14 fields + 36 counters; b: no id.
        assert_eq!(text.matches('\t').count(), (1 + 14 + 36) + (14 + 36) + 1);
        assert_eq!(load_storages(&p).unwrap(), vec![a, b]);
    }

    #[test]
    fn sync_timestamps_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(SYNC_TIMESTAMP_FILE);
        assert!(load_sync_timestamps(&p).unwrap().is_empty());
        let rows = vec![
            (
                "group1".to_string(),
                "192.168.1.100".to_string(),
                vec![0, 1_700_000_000],
            ),
            (
                "group1".to_string(),
                "192.168.1.101".to_string(),
                vec![1_700_000_005, 0],
            ),
            ("group2".to_string(), "100003".to_string(), vec![0]),
        ];
        save_sync_timestamps(&p, &rows).unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "group1,192.168.1.100,0,1700000000\ngroup1,192.168.1.101,1700000005,0\ngroup2,100003,0\n"
        );
        assert_eq!(load_sync_timestamps(&p).unwrap(), rows);
        fs::write(&p, "group1\n").unwrap();
        assert!(load_sync_timestamps(&p).is_err());
        fs::write(&p, "group1,a,x\n").unwrap();
        assert!(load_sync_timestamps(&p).is_err());
    }

    #[test]
    fn tracker_status_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(TRACKER_STATUS_FILE);
        assert_eq!(load_tracker_status(&p).unwrap(), None);
        save_tracker_status(&p, 1_700_000_000, 1_700_000_300).unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "up_time=1700000000\nlast_check_time=1700000300\n"
        );
        assert_eq!(
            load_tracker_status(&p).unwrap(),
            Some((1_700_000_000, 1_700_000_300))
        );
    }
}
