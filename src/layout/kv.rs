//! FastDFS `key=value` state files without sections: `data/.data_init_flag`,
//! `data/storage_stat.dat`, `data/sync/*.mark`, `data/.tracker_status` (LAYOUT.md §1.5,
//! §2.1, §2.2, §2.5).
//!
//! Reading follows the ini rules these files are read with upstream: blank lines and `#`
//! comments skipped, whitespace around key and value trimmed. Writing is `key=value\n`
//! per item, replaced atomically.

use std::fs;
use std::io;
use std::path::Path;
use std::str::FromStr;

use super::store::atomic_write;

/// Parses `key=value` lines in order (duplicates kept; lines without '=' ignored).
pub fn parse_kv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (k, v) = line.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Reads and parses a `key=value` file; a missing file is an error of kind `NotFound`.
pub fn read_kv(path: &Path) -> io::Result<Vec<(String, String)>> {
    let bytes = fs::read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not UTF-8 text", path.display()),
        )
    })?;
    Ok(parse_kv(&text))
}

/// Formats items as `key=value\n` lines.
pub fn format_kv(items: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in items {
        out.push_str(k);
        out.push('=');
        out.push_str(v);
        out.push('\n');
    }
    out
}

/// Writes items as `key=value\n` lines, atomically (see [`atomic_write`]).
pub fn write_kv(path: &Path, items: &[(String, String)]) -> io::Result<()> {
    atomic_write(path, format_kv(items).as_bytes())
}

/// The value of the last occurrence of `key` (how FastDFS's ini reader resolves repeats).
pub fn kv_get<'a>(items: &'a [(String, String)], key: &str) -> Option<&'a str> {
    items
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Parses the value of `key` as a number; absent or empty -> `default`.
pub fn kv_num<T: FromStr>(items: &[(String, String)], key: &str, default: T) -> io::Result<T> {
    match kv_get(items, key) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad number for {key}: {v:?}"),
            )
        }),
    }
}

/// Booleans in state files are written as 0/1; `true`/`yes`/`on` are accepted too.
fn kv_bool(items: &[(String, String)], key: &str) -> bool {
    kv_get(items, key).is_some_and(|v| {
        v == "1"
            || ["true", "yes", "on"]
                .iter()
                .any(|t| v.eq_ignore_ascii_case(t))
    })
}

/// Contents of the storage's `data/.data_init_flag` (LAYOUT.md §2.1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataInitFlag {
    /// Time of the first start (join_time in JOIN).
    pub storage_join_time: u64,
    /// Sync-source negotiation with the tracker finished.
    pub sync_old_done: bool,
    /// Id (or IP) of the server pushing existing files to us; empty if none.
    pub sync_src_server: String,
    /// "Until" time received with the source assignment.
    pub sync_until_timestamp: u64,
    /// Our IP at the last start (IP change detection).
    pub last_ip_addr: String,
    /// Our port at the last start.
    pub last_server_port: u16,
    /// Trunk bookkeeping.
    pub current_trunk_file_id: u64,
    /// Trunk bookkeeping.
    pub trunk_last_compress_time: u64,
    /// Trunk bookkeeping.
    pub trunk_binlog_compress_stage: u32,
    /// `store_path_mark0..N`, copies of each store path's mark (check_store_path_mark).
    pub store_path_marks: Vec<String>,
}

impl DataInitFlag {
    /// Loads the file; `Ok(None)` if it does not exist (the base path is uninitialised).
    pub fn load(path: &Path) -> io::Result<Option<Self>> {
        let items = match read_kv(path) {
            Ok(items) => items,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let text = |key: &str| kv_get(&items, key).unwrap_or("").to_string();
        let mut marks = Vec::new();
        while let Some(m) = kv_get(&items, &format!("store_path_mark{}", marks.len())) {
            marks.push(m.to_string());
        }
        Ok(Some(DataInitFlag {
            storage_join_time: kv_num(&items, "storage_join_time", 0)?,
            sync_old_done: kv_bool(&items, "sync_old_done"),
            sync_src_server: text("sync_src_server"),
            sync_until_timestamp: kv_num(&items, "sync_until_timestamp", 0)?,
            last_ip_addr: text("last_ip_addr"),
            last_server_port: kv_num(&items, "last_server_port", 0)?,
            current_trunk_file_id: kv_num(&items, "current_trunk_file_id", 0)?,
            trunk_last_compress_time: kv_num(&items, "trunk_last_compress_time", 0)?,
            trunk_binlog_compress_stage: kv_num(&items, "trunk_binlog_compress_stage", 0)?,
            store_path_marks: marks,
        }))
    }

    /// The items in FastDFS's write order.
    pub fn to_items(&self) -> Vec<(String, String)> {
        let mut items: Vec<(String, String)> = [
            ("storage_join_time", self.storage_join_time.to_string()),
            ("sync_old_done", u8::from(self.sync_old_done).to_string()),
            ("sync_src_server", self.sync_src_server.clone()),
            (
                "sync_until_timestamp",
                self.sync_until_timestamp.to_string(),
            ),
            ("last_ip_addr", self.last_ip_addr.clone()),
            ("last_server_port", self.last_server_port.to_string()),
            (
                "current_trunk_file_id",
                self.current_trunk_file_id.to_string(),
            ),
            (
                "trunk_last_compress_time",
                self.trunk_last_compress_time.to_string(),
            ),
            (
                "trunk_binlog_compress_stage",
                self.trunk_binlog_compress_stage.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (i, m) in self.store_path_marks.iter().enumerate() {
            items.push((format!("store_path_mark{i}"), m.clone()));
        }
        items
    }

    /// Writes the file atomically.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        write_kv(path, &self.to_items())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rules() {
        let items = parse_kv("# c\n\n a = 1 \nb=\nnoeq\n=x\nc=d=e\na=2\r\n");
        let want: Vec<(String, String)> = [("a", "1"), ("b", ""), ("c", "d=e"), ("a", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(items, want);
        assert_eq!(kv_get(&items, "a"), Some("2"));
        assert_eq!(kv_num::<u32>(&items, "b", 7).unwrap(), 7);
        assert!(kv_num::<u32>(&items, "c", 0).is_err());
    }

    #[test]
    fn kv_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.mark");
        assert_eq!(read_kv(&p).unwrap_err().kind(), io::ErrorKind::NotFound);
        let items = vec![
            ("binlog_index".to_string(), "3".to_string()),
            ("binlog_offset".to_string(), "1024".to_string()),
            ("empty".to_string(), String::new()),
        ];
        write_kv(&p, &items).unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "binlog_index=3\nbinlog_offset=1024\nempty=\n"
        );
        assert_eq!(read_kv(&p).unwrap(), items);
    }

    #[test]
    fn data_init_flag_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(".data_init_flag");
        assert_eq!(DataInitFlag::load(&p).unwrap(), None);
        let f = DataInitFlag {
            storage_join_time: 1_700_000_000,
            sync_old_done: true,
            sync_src_server: "192.168.1.100".into(),
            sync_until_timestamp: 1_700_000_100,
            last_ip_addr: "192.168.1.101".into(),
            last_server_port: 23000,
            current_trunk_file_id: 0,
            trunk_last_compress_time: 0,
            trunk_binlog_compress_stage: 0,
            store_path_marks: vec!["abc".into(), "def".into()],
        };
        f.save(&p).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("storage_join_time=1700000000\nsync_old_done=1\n"));
        assert!(text.ends_with("store_path_mark0=abc\nstore_path_mark1=def\n"));
        assert_eq!(DataInitFlag::load(&p).unwrap(), Some(f));
        fs::write(&p, "storage_join_time=12\n").unwrap();
        let d = DataInitFlag::load(&p).unwrap().unwrap();
        assert_eq!(d.storage_join_time, 12);
        assert!(!d.sync_old_done && d.store_path_marks.is_empty());
        fs::write(&p, "storage_join_time=x\n").unwrap();
        assert_eq!(
            DataInitFlag::load(&p).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
