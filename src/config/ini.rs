//! FastDFS ini syntax (libfastcommon ini_file_reader.c, LAYOUT.md §3.1) and value parsers.
//!
//! `key = value` lines (both trimmed, value is the rest of the line), `#` comments,
//! `[section]` headers, `#include <file>` relative to the including file. The `#@`
//! directives (`#@function`, `#@set`, `#@if`, ...) are rejected with a clear error; http
//! includes too. Lookups of a repeated key return the last occurrence.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;

/// Deepest `#include` nesting accepted (also stops include cycles).
pub const MAX_INCLUDE_DEPTH: usize = 8;

#[derive(Clone, Debug)]
struct Item {
    key: String,
    value: String,
    /// Index into `Ini::files`.
    file: usize,
    line: usize,
}

/// A parsed ini file: global items and `[section]` items, each in file order.
#[derive(Clone, Debug)]
pub struct Ini {
    origin: PathBuf,
    files: Vec<PathBuf>,
    global: Vec<Item>,
    sections: Vec<(String, Vec<Item>)>,
}

impl Ini {
    /// Reads and parses `path`, following `#include` lines.
    pub fn load(path: &Path) -> Result<Ini, ConfigError> {
        let text = read_text(path)?;
        Ini::parse(&text, path)
    }

    /// Parses `text` as if read from `origin` (used to resolve includes and in messages).
    pub fn parse(text: &str, origin: &Path) -> Result<Ini, ConfigError> {
        let mut ini = Ini {
            origin: origin.to_path_buf(),
            files: Vec::new(),
            global: Vec::new(),
            sections: Vec::new(),
        };
        let mut section = None;
        ini.parse_file(text, origin, 0, &mut section)?;
        Ok(ini)
    }

    fn parse_file(
        &mut self,
        text: &str,
        path: &Path,
        depth: usize,
        section: &mut Option<usize>,
    ) -> Result<(), ConfigError> {
        let file = self.files.len();
        self.files.push(path.to_path_buf());
        let syntax = |line: usize, msg: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            msg,
        };
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = include_arg(line) {
                let target = rest.trim();
                if target.is_empty() {
                    return Err(syntax(line_no, "#include without a file name".into()));
                }
                let lower = target.to_ascii_lowercase();
                if lower.starts_with("http://") || lower.starts_with("https://") {
                    return Err(syntax(
                        line_no,
                        format!("#include of a URL ({target}) is not supported; use a local file"),
                    ));
                }
                if depth + 1 > MAX_INCLUDE_DEPTH {
                    return Err(syntax(
                        line_no,
                        format!("#include nested deeper than {MAX_INCLUDE_DEPTH} (include loop?)"),
                    ));
                }
                let inc = resolve(path, Path::new(target));
                let inc_text = read_text(&inc).map_err(|e| {
                    syntax(line_no, format!("cannot include {}: {e}", inc.display()))
                })?;
                // The included file continues in the current section; a header inside it
                // does not leak back into the including file.
                let mut inner = *section;
                self.parse_file(&inc_text, &inc, depth + 1, &mut inner)?;
                continue;
            }
            if line.starts_with("#@") {
                let word = line.split_whitespace().next().unwrap_or(line);
                return Err(syntax(
                    line_no,
                    format!("directive {word} is not supported (no #@ directives)"),
                ));
            }
            if line.starts_with('#') {
                continue;
            }
            if let Some(inner) = line.strip_prefix('[') {
                let Some(name) = inner.strip_suffix(']') else {
                    return Err(syntax(
                        line_no,
                        format!("unterminated section header {line:?}"),
                    ));
                };
                let name = name.trim();
                if name.is_empty() {
                    return Err(syntax(line_no, "empty section name".into()));
                }
                *section = Some(match self.sections.iter().position(|(n, _)| n == name) {
                    Some(i) => i,
                    None => {
                        self.sections.push((name.to_string(), Vec::new()));
                        self.sections.len() - 1
                    }
                });
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(syntax(
                    line_no,
                    format!("expected `key = value`, found {line:?}"),
                ));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(syntax(line_no, "missing key before '='".into()));
            }
            let item = Item {
                key: key.to_string(),
                value: value.trim().to_string(),
                file,
                line: line_no,
            };
            match section {
                Some(i) => self.sections[*i].1.push(item),
                None => self.global.push(item),
            }
        }
        Ok(())
    }

    /// The top-level file.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Directory of the top-level file (relative paths in values resolve against it).
    pub fn base_dir(&self) -> &Path {
        match self.origin.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    fn last(&self, key: &str) -> Option<&Item> {
        self.global.iter().rev().find(|i| i.key == key)
    }

    /// Global value of `key`, last occurrence.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.last(key).map(|i| i.value.as_str())
    }

    /// All global values of `key`, in file order.
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.global
            .iter()
            .filter(|i| i.key == key)
            .map(|i| i.value.as_str())
            .collect()
    }

    /// Value of `key` in `[section]`, last occurrence.
    pub fn section_get(&self, section: &str, key: &str) -> Option<&str> {
        let (_, items) = self.sections.iter().find(|(n, _)| n == section)?;
        items
            .iter()
            .rev()
            .find(|i| i.key == key)
            .map(|i| i.value.as_str())
    }

    /// Distinct global keys in order of first appearance (for unknown-key warnings).
    pub fn keys(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for i in &self.global {
            if !out.contains(&i.key.as_str()) {
                out.push(&i.key);
            }
        }
        out
    }

    /// The directory of the file the config was read from (relative file
    /// names in it are taken from there).
    pub fn dir(&self) -> PathBuf {
        self.origin
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// `file:line` where the effective (last) global `key` was set.
    pub fn location(&self, key: &str) -> Option<String> {
        self.last(key)
            .map(|i| format!("{}:{}", self.files[i.file].display(), i.line))
    }
}

/// `#include` followed by blanks; returns the rest of the line.
fn include_arg(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("#include")?;
    if rest.is_empty() || rest.starts_with([' ', '\t']) {
        Some(rest)
    } else {
        None
    }
}

fn resolve(including: &Path, target: &Path) -> PathBuf {
    if target.is_absolute() {
        return target.to_path_buf();
    }
    match including.parent() {
        Some(dir) => dir.join(target),
        None => target.to_path_buf(),
    }
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    fs::read_to_string(path).map_err(|err| ConfigError::Io {
        path: path.to_path_buf(),
        err,
    })
}

/// libfastcommon boolean: `true`/`yes`/`on` (any case) or `1`; anything else is false.
pub fn parse_bool(v: &str) -> bool {
    let v = v.trim();
    v == "1"
        || ["true", "yes", "on"]
            .iter()
            .any(|t| v.eq_ignore_ascii_case(t))
}

/// Size with optional unit: integer, optional blanks, optional K/M/G/T (1024-based, any
/// case) optionally followed by B: `"256KB"`, `"64MB"`, `"20G"`, `"1024"`, `" 8 KB"`.
pub fn parse_bytes(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    if digits_end == 0 {
        return Err("expected a size such as 1024, 256KB, 64MB or 20G".into());
    }
    let n: u64 = v[..digits_end]
        .parse()
        .map_err(|_| "size too large".to_string())?;
    let unit = v[digits_end..].trim_start().to_ascii_uppercase();
    let mult: u64 = match unit.as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        "T" | "TB" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown size unit {:?} (use K, M, G or T)",
                &v[digits_end..]
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| "size too large".to_string())
}

/// Seconds as a plain integer (FastDFS style); `s`, `ms`, `m`, `h` suffixes also accepted.
pub fn parse_secs(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    if digits_end == 0 {
        return Err("expected a number of seconds".into());
    }
    let n: u64 = v[..digits_end]
        .parse()
        .map_err(|_| "number too large".to_string())?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| "number too large".to_string())
    };
    match v[digits_end..].trim_start() {
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "ms" => Ok(Duration::from_millis(n)),
        other => Err(format!(
            "unknown time unit {other:?} (use a number of seconds)"
        )),
    }
}

/// `reserved_storage_space`: an absolute size or a share of the disk.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reserved {
    /// Keep this many bytes free.
    Bytes(u64),
    /// Keep this fraction (0.0..=1.0) of the disk free.
    Ratio(f64),
}

/// `"10%"` -> `Ratio(0.10)`; `"10G"`, `"1024M"`, a byte count -> `Bytes`.
pub fn parse_reserved(v: &str) -> Result<Reserved, String> {
    let v = v.trim();
    if let Some(pct) = v.strip_suffix('%') {
        let p: f64 = pct
            .trim()
            .parse()
            .map_err(|_| format!("bad percentage {v:?}"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("percentage {v} not in 0..100"));
        }
        return Ok(Reserved::Ratio(p / 100.0));
    }
    parse_bytes(v).map(Reserved::Bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Ini {
        Ini::parse(text, Path::new("/etc/fdfs/t.conf")).unwrap()
    }

    fn syntax_err(text: &str) -> (PathBuf, usize, String) {
        match Ini::parse(text, Path::new("/etc/fdfs/t.conf")) {
            Err(ConfigError::Syntax { path, line, msg }) => (path, line, msg),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn basic_syntax() {
        let ini = parse(
            "# comment\n  port = 22122  \nname=a b = c\nempty =\nk=1\nk=2\r\n[access-log]\nenabled = true\n\n[Other]\nk=3\n",
        );
        assert_eq!(ini.get("port"), Some("22122"));
        assert_eq!(ini.get("name"), Some("a b = c"));
        assert_eq!(ini.get("empty"), Some(""));
        assert_eq!(ini.get("k"), Some("2"));
        assert_eq!(ini.get_all("k"), vec!["1", "2"]);
        assert_eq!(ini.get("enabled"), None);
        assert_eq!(ini.section_get("access-log", "enabled"), Some("true"));
        assert_eq!(ini.section_get("Other", "k"), Some("3"));
        assert_eq!(ini.keys(), vec!["port", "name", "empty", "k"]);
        assert_eq!(ini.sections.len(), 2);
        assert_eq!(ini.location("k").unwrap(), "/etc/fdfs/t.conf:6");
        assert_eq!(ini.base_dir(), Path::new("/etc/fdfs"));
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let (path, line, msg) = syntax_err("a=1\n\nthis is wrong\n");
        assert_eq!((path.as_path(), line), (Path::new("/etc/fdfs/t.conf"), 3));
        assert!(msg.contains("key = value"));
        let (_, line, msg) = syntax_err("a=1\n#@function SHELL_FUNCTION\n");
        assert_eq!(line, 2);
        assert!(msg.contains("#@function"));
        let (_, line, msg) = syntax_err("#include http://example.com/x.conf\n");
        assert_eq!(line, 1);
        assert!(msg.contains("URL"));
        assert_eq!(syntax_err("[abc\n").1, 1);
        assert_eq!(syntax_err("x\n=1\n").1, 1);
        assert_eq!(syntax_err("ok=1\n = 1\n").1, 2);
        let err = Ini::parse("a\n", Path::new("t.conf"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.conf:1: "), "{err}");
        // Comments that merely start with the word are comments.
        assert_eq!(
            parse("#included below\n#includes=1\na=1\n").get("a"),
            Some("1")
        );
    }

    #[test]
    fn includes() {
        let tmp = std::env::temp_dir().join(format!("fdfs-ini-{}", std::process::id()));
        let sub = tmp.join("sub");
        fs::create_dir_all(&sub).unwrap();
        fs::write(
            sub.join("inc.conf"),
            "b = 2\n#include deeper.conf\n[sec]\ns = 1\n",
        )
        .unwrap();
        fs::write(sub.join("deeper.conf"), "c = 3\na = override\n").unwrap();
        fs::write(
            tmp.join("main.conf"),
            "a = 1\n#include sub/inc.conf\nd = 4\n",
        )
        .unwrap();
        let ini = Ini::load(&tmp.join("main.conf")).unwrap();
        assert_eq!(ini.get("a"), Some("override"));
        assert_eq!(ini.get("b"), Some("2"));
        assert_eq!(ini.get("c"), Some("3"));
        assert_eq!(
            ini.get("d"),
            Some("4"),
            "section from include does not leak"
        );
        assert_eq!(ini.section_get("sec", "s"), Some("1"));
        assert!(ini.location("c").unwrap().ends_with("deeper.conf:1"));

        // Errors inside an include name the included file.
        fs::write(sub.join("bad.conf"), "ok = 1\nbroken\n").unwrap();
        fs::write(tmp.join("m2.conf"), "#include sub/bad.conf\n").unwrap();
        match Ini::load(&tmp.join("m2.conf")) {
            Err(ConfigError::Syntax { path, line, .. }) => {
                assert!(path.ends_with("sub/bad.conf"));
                assert_eq!(line, 2);
            }
            other => panic!("{other:?}"),
        }
        // Missing include: error at the include line of the including file.
        fs::write(tmp.join("m3.conf"), "a=1\n#include nope.conf\n").unwrap();
        match Ini::load(&tmp.join("m3.conf")) {
            Err(ConfigError::Syntax { path, line, msg }) => {
                assert!(path.ends_with("m3.conf") && line == 2 && msg.contains("nope.conf"));
            }
            other => panic!("{other:?}"),
        }
        // Include loop stops at the depth limit.
        fs::write(tmp.join("loop.conf"), "#include loop.conf\n").unwrap();
        let err = Ini::load(&tmp.join("loop.conf")).unwrap_err().to_string();
        assert!(err.contains("nested deeper"), "{err}");
        // Missing top-level file.
        assert!(matches!(
            Ini::load(&tmp.join("absent.conf")),
            Err(ConfigError::Io { .. })
        ));
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn booleans() {
        for t in ["true", "TRUE", "Yes", "on", "ON", "1", " true "] {
            assert!(parse_bool(t), "{t}");
        }
        for f in ["false", "no", "off", "0", "", "2", "yess"] {
            assert!(!parse_bool(f), "{f}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("256KB"), Ok(256 * 1024));
        assert_eq!(parse_bytes("64MB"), Ok(64 << 20));
        assert_eq!(parse_bytes("20G"), Ok(20 << 30));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes(" 8 KB"), Ok(8192));
        assert_eq!(parse_bytes("1t"), Ok(1 << 40));
        assert_eq!(parse_bytes("5mb"), Ok(5 << 20));
        assert_eq!(parse_bytes("7B"), Ok(7));
        for bad in [
            "",
            "KB",
            "-1",
            "1.5M",
            "10X",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_secs(" 0 "), Ok(Duration::ZERO));
        assert_eq!(parse_secs("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_secs("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("abc").is_err());
        assert!(parse_secs("3 days").is_err());
    }

    #[test]
    fn reserved() {
        assert_eq!(parse_reserved("10%"), Ok(Reserved::Ratio(0.10)));
        assert_eq!(parse_reserved("20 %"), Ok(Reserved::Ratio(0.20)));
        assert_eq!(parse_reserved("2.5%"), Ok(Reserved::Ratio(0.025)));
        assert_eq!(parse_reserved("10G"), Ok(Reserved::Bytes(10 << 30)));
        assert_eq!(parse_reserved("1024M"), Ok(Reserved::Bytes(1 << 30)));
        assert_eq!(parse_reserved("4096"), Ok(Reserved::Bytes(4096)));
        assert!(parse_reserved("101%").is_err());
        assert!(parse_reserved("x%").is_err());
        assert!(parse_reserved("ten").is_err());
    }
}
