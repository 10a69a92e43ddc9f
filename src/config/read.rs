//! Typed reading of global ini keys with bookkeeping: which keys were consumed (the rest
//! become "unknown key" warnings) and the warnings collected along the way. Shared by the
//! tracker, storage and client configs.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;
use super::ini::{Ini, parse_bool, parse_bytes, parse_secs};

/// Reads keys from the global section of an [`Ini`] and records what it saw.
pub(super) struct Reader<'a> {
    ini: &'a Ini,
    used: Vec<String>,
    warnings: Vec<String>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(ini: &'a Ini) -> Self {
        Reader {
            ini,
            used: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(super) fn ini(&self) -> &'a Ini {
        self.ini
    }

    /// Raw value (last occurrence), marking the key as known.
    pub(super) fn raw(&mut self, key: &str) -> Option<&'a str> {
        self.mark(key);
        self.ini.get(key)
    }

    /// Marks a key as known without reading it.
    pub(super) fn mark(&mut self, key: &str) {
        if !self.used.iter().any(|k| k == key) {
            self.used.push(key.to_string());
        }
    }

    /// Known keys that are accepted and ignored without a word (log rotation, trunk
    /// tuning, ...): they do not change what a client sees.
    pub(super) fn ignore(&mut self, keys: &[&str]) {
        for k in keys {
            self.mark(k);
        }
    }

    /// A known key we do not implement: warn when it is set to anything but one of the
    /// `harmless` values (compared case-insensitively; "" = empty or absent).
    pub(super) fn unsupported(&mut self, key: &str, harmless: &[&str], what: &str) {
        if let Some(v) = self.raw(key)
            && !harmless.iter().any(|h| h.eq_ignore_ascii_case(v))
        {
            let loc = self.ini.location(key).unwrap_or_default();
            self.warnings
                .push(format!("{loc}: {key} = {v} is not implemented: {what}"));
        }
    }

    pub(super) fn warn(&mut self, msg: String) {
        self.warnings.push(msg);
    }

    /// A `Value` error for `key`, naming the file and line where it was set.
    pub(super) fn error(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        let value = self.ini.get(key).unwrap_or("").to_string();
        let mut msg = msg.into();
        if let Some(loc) = self.ini.location(key) {
            msg = format!("{msg} (at {loc})");
        }
        ConfigError::Value {
            key: key.to_string(),
            value,
            msg,
        }
    }

    pub(super) fn string(&mut self, key: &str, default: &str) -> String {
        self.raw(key).unwrap_or(default).to_string()
    }

    pub(super) fn opt_string(&mut self, key: &str) -> Option<String> {
        self.raw(key).filter(|v| !v.is_empty()).map(str::to_string)
    }

    pub(super) fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.raw(key) {
            None | Some("") => default,
            Some(v) => parse_bool(v),
        }
    }

    pub(super) fn num<T: FromStr>(&mut self, key: &str, default: T) -> Result<T, ConfigError> {
        match self.raw(key) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| self.error(key, "expected an integer in range")),
        }
    }

    /// Integer in `range`.
    pub(super) fn num_in<T>(
        &mut self,
        key: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let v = self.num(key, default)?;
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(self.error(
                key,
                format!("must be in {}..={}", range.start(), range.end()),
            ))
        }
    }

    pub(super) fn secs(&mut self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.raw(key) {
            None | Some("") => Ok(default),
            Some(v) => parse_secs(v).map_err(|m| self.error(key, m)),
        }
    }

    /// Seconds where 0 means "use the default" (upstream treats <= 0 timeouts that way).
    pub(super) fn secs_nonzero(
        &mut self,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = self.secs(key, default)?;
        Ok(if d.is_zero() { default } else { d })
    }

    pub(super) fn millis(&mut self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        let ms: u64 = self.num(key, default.as_millis() as u64)?;
        Ok(Duration::from_millis(ms))
    }

    pub(super) fn bytes(&mut self, key: &str, default: u64) -> Result<u64, ConfigError> {
        match self.raw(key) {
            None | Some("") => Ok(default),
            Some(v) => parse_bytes(v).map_err(|m| self.error(key, m)),
        }
    }

    /// A path; relative values stay relative (to the working directory) like upstream.
    pub(super) fn path(&mut self, key: &str, default: &Path) -> Result<PathBuf, ConfigError> {
        match self.raw(key) {
            None => Ok(default.to_path_buf()),
            Some("") => Err(self.error(key, "must not be empty")),
            Some(v) => Ok(PathBuf::from(v)),
        }
    }

    /// All values of a repeatable key.
    pub(super) fn all(&mut self, key: &str) -> Vec<String> {
        self.mark(key);
        self.ini
            .get_all(key)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// The warnings, plus one per global key nobody asked for.
    pub(super) fn finish(mut self) -> Vec<String> {
        for key in self.ini.keys() {
            if self.used.iter().any(|k| k == key) {
                continue;
            }
            let loc = self.ini.location(key).unwrap_or_default();
            self.warnings
                .push(format!("{loc}: unknown key {key} ignored"));
        }
        self.warnings
    }
}

/// Checks that `dir`, set by `key` in the config file `conf`, is an existing
/// directory: a daemon's `base_path` and store paths are not created for it
/// (as in FastDFS), so that a typo is reported rather than used.
pub(super) fn existing_dir(conf: &Path, key: &str, dir: &Path) -> Result<(), ConfigError> {
    let why = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => "not a directory".to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "no such directory (create it first)".to_string()
        }
        Err(e) => e.to_string(),
    };
    Err(ConfigError::Dir {
        path: conf.to_path_buf(),
        key: key.to_string(),
        dir: dir.to_path_buf(),
        why,
    })
}

/// Group names: 1..=16 chars of `[A-Za-z0-9]` (FDFS_GROUP_NAME_MAX_LEN).
pub(super) fn is_valid_group_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 16 && name.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Checks a `tracker_server` value: `host:port`, `ip1,ip2:port` or `[v6]:port`, port 1..65535.
pub fn check_tracker_server(v: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or("expected [ipv6]:port")?;
        (h, p)
    } else {
        v.rsplit_once(':').ok_or("expected host:port")?
    };
    if host.is_empty() || host.split(',').any(|h| h.trim().is_empty()) {
        return Err("empty host".into());
    }
    if host.contains(char::is_whitespace) && !host.contains(',') {
        return Err("blank inside host".into());
    }
    match port.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("bad port {port:?}")),
    }
}

/// Reads, trims and validates all `tracker_server` lines.
pub(super) fn tracker_servers(r: &mut Reader<'_>) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for v in r.all("tracker_server") {
        let v = v.trim().to_string();
        if let Err(m) = check_tracker_server(&v) {
            return Err(ConfigError::Value {
                key: "tracker_server".into(),
                value: v,
                msg: m,
            });
        }
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_server_forms() {
        for ok in [
            "127.0.0.1:22122",
            "tracker.example:22122",
            "10.0.0.1,192.168.0.1:22122",
            "[::1]:22122",
        ] {
            assert!(check_tracker_server(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            ":22122",
            "h:0",
            "h:70000",
            "h:x",
            "[::1]22122",
            ",a:1",
            "a b:1",
        ] {
            assert!(check_tracker_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_names() {
        assert!(is_valid_group_name("group1"));
        assert!(!is_valid_group_name(""));
        assert!(!is_valid_group_name("group_1"));
        assert!(!is_valid_group_name(&"a".repeat(17)));
    }
}
