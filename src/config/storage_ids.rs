//! storage_ids.conf (LAYOUT.md §3.5): `<id> <group> <host>[,<host2>][:<port>]
//! [rw=both|read|write|none]` per line, naming each storage by a number that
//! survives IP changes.

use super::ConfigError;
use std::path::Path;

/// One storage of storage_ids.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageId {
    /// Decimal id, 1..=16777215 when ids go into file names.
    pub id: String,
    pub group: String,
    /// One or two addresses (inner, outer).
    pub hosts: Vec<String>,
    /// The port written on the line, if any.
    pub port: Option<u16>,
    /// rw_mode bits: 4 read, 2 write.
    pub rw_mode: u8,
}

impl StorageId {
    /// Whether this entry describes (group, ip, port).
    pub fn matches(&self, group: &str, ip: &str, port: u16) -> bool {
        self.group == group
            && self.hosts.iter().any(|h| h == ip)
            && self.port.is_none_or(|p| p == port)
    }

    /// The `FETCH_STORAGE_IDS` line: `<id> <group> <hosts>[:<port>][ rw=...]`.
    pub fn to_line(&self) -> String {
        let mut l = format!("{} {} {}", self.id, self.group, self.hosts.join(","));
        if let Some(p) = self.port {
            l.push_str(&format!(":{p}"));
        }
        match self.rw_mode {
            6 => {}
            4 => l.push_str(" rw=read"),
            2 => l.push_str(" rw=write"),
            _ => l.push_str(" rw=none"),
        }
        l
    }
}

/// Parse the text of a storage_ids.conf (`origin` names it in errors).
pub fn parse(text: &str, origin: &Path) -> Result<Vec<StorageId>, ConfigError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |msg: &str| ConfigError::Syntax {
            path: origin.to_path_buf(),
            line: n + 1,
            msg: msg.to_string(),
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            return Err(err("expected `<id> <group> <host>[:<port>] [rw=...]`"));
        }
        let id = f[0];
        if id.len() > 16 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err("a storage id is 1 to 16 letters or digits"));
        }
        let (hosts, port) = split_hosts(f[2]).ok_or_else(|| err("bad host[:port]"))?;
        let rw_mode = match f.get(3).map(|r| r.trim_start_matches("rw=")) {
            None | Some("both") => 6,
            Some("read") => 4,
            Some("write") => 2,
            Some("none") => 0,
            Some(_) => return Err(err("rw= takes both, read, write or none")),
        };
        if out.iter().any(|e: &StorageId| e.id == id) {
            return Err(err("duplicate storage id"));
        }
        out.push(StorageId {
            id: id.to_string(),
            group: f[1].to_string(),
            hosts,
            port,
            rw_mode,
        });
    }
    Ok(out)
}

/// Read and parse a storage_ids.conf.
pub fn load(path: &Path) -> Result<Vec<StorageId>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    parse(&text, path)
}

/// `ip1,ip2:port`, `[v6]:port`, `host` -> (hosts, port).
fn split_hosts(s: &str) -> Option<(Vec<String>, Option<u16>)> {
    let (hosts, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (
            h.to_string(),
            after
                .strip_prefix(':')
                .map(|p| p.parse().ok())
                .unwrap_or(None),
        )
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p.parse().ok()?)),
            _ => (s.to_string(), None),
        }
    };
    let hosts: Vec<String> = hosts
        .split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    (!hosts.is_empty() && hosts.len() <= 2).then_some((hosts, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let text = "# ids\n100001 group1 192.168.0.196\n100002 group1 10.0.0.2,1.2.3.4:23001 rw=read\n\n100003 group2 [::1]:23000\n";
        let ids = parse(text, Path::new("storage_ids.conf")).unwrap();
        assert_eq!(ids.len(), 3);
        assert!(ids[0].matches("group1", "192.168.0.196", 23000));
        assert!(
            ids[1].matches("group1", "1.2.3.4", 23001)
                && !ids[1].matches("group1", "1.2.3.4", 23000)
        );
        assert_eq!(ids[1].rw_mode, 4);
        assert_eq!(
            ids[1].to_line(),
            "100002 group1 10.0.0.2,1.2.3.4:23001 rw=read"
        );
        assert_eq!(ids[2].hosts, vec!["::1".to_string()]);
        let e = parse("100001 group1\n", Path::new("x.conf"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.conf") && e.contains('1'), "{e}");
        assert!(
            parse("1 g a\n1 g b\n", Path::new("x")).is_err(),
            "duplicate id"
        );
    }
}
