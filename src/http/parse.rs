//! An HTTP/1.x request head, parsed by `httparse` and checked strictly: bounded
//! sizes, origin-form targets only, and a path that cannot leave the tree it
//! names (no `..`, `//`, NUL or control characters, before or after
//! percent-decoding).

/// Largest request head (request line + headers + blank line) read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header lines in a request head.
pub const MAX_HEADERS: usize = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Anything else: answered 405.
    Other,
}

/// What the servers need of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Percent-decoded path, starting with '/'.
    pub path: String,
    /// Percent-decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// `Range`, `If-Modified-Since`, `If-None-Match`, `Host` as sent.
    pub range: Option<String>,
    pub if_modified_since: Option<String>,
    pub if_none_match: Option<String>,
    pub host: Option<String>,
    /// The connection stays open after the response.
    pub keep_alive: bool,
}

impl Request {
    /// The first query parameter named `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a head was refused (400, or 431 / 414 for sizes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bad {
    /// Over [`MAX_HEAD`] or [`MAX_HEADERS`].
    TooLarge,
    /// Malformed; the text says what.
    Malformed(&'static str),
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::TooLarge => write!(f, "request head too large"),
            Bad::Malformed(w) => write!(f, "malformed request: {w}"),
        }
    }
}

/// Parse the head at the start of `buf`: `Ok(None)` while it is incomplete,
/// else the request and the head's length (a body is not read: GET and HEAD
/// have none, and one announced is refused).
pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, Bad> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(Bad::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Bad::TooLarge),
        Err(_) => return Err(Bad::Malformed("not an HTTP/1.x request head")),
    };
    if len > MAX_HEAD {
        return Err(Bad::TooLarge);
    }
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    let version = req.version.unwrap_or(1);
    let target = req.path.ok_or(Bad::Malformed("no target"))?;
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let path = decode_path(raw_path)?;
    let query = decode_query(raw_query)?;
    let mut r = Request {
        method,
        path,
        query,
        range: None,
        if_modified_since: None,
        if_none_match: None,
        host: None,
        keep_alive: version >= 1,
    };
    for h in req.headers.iter() {
        let value = || {
            std::str::from_utf8(h.value)
                .map(|v| v.trim().to_string())
                .map_err(|_| Bad::Malformed("header value not UTF-8"))
        };
        let name = h.name;
        if name.eq_ignore_ascii_case("range") {
            r.range = Some(value()?);
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            r.if_modified_since = Some(value()?);
        } else if name.eq_ignore_ascii_case("if-none-match") {
            r.if_none_match = Some(value()?);
        } else if name.eq_ignore_ascii_case("host") {
            r.host = Some(value()?);
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value()?.to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                r.keep_alive = false;
            } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                r.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if value()? != "0" {
                return Err(Bad::Malformed("a request body"));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Bad::Malformed("a request body"));
        }
    }
    Ok(Some((r, len)))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode `s` (and `+` as a blank when `plus`).
fn percent_decode(s: &str, plus: bool) -> Result<String, Bad> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let (h, l) = match (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err(Bad::Malformed("bad percent escape")),
                };
                out.push(h << 4 | l);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Bad::Malformed("not UTF-8 after decoding"))
}

/// The path, decoded and checked: absolute, no empty, `.` or `..` segment,
/// no NUL, backslash or control character.
fn decode_path(raw: &str) -> Result<String, Bad> {
    if !raw.starts_with('/') {
        return Err(Bad::Malformed("target is not an absolute path"));
    }
    let path = percent_decode(raw, false)?;
    if path.bytes().any(|c| c < 0x20 || c == 0x7f || c == b'\\') {
        return Err(Bad::Malformed("control character or backslash in path"));
    }
    if path != "/"
        && path[1..]
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(Bad::Malformed("empty, . or .. segment in path"));
    }
    Ok(path)
}

fn decode_query(raw: &str) -> Result<Vec<(String, String)>, Bad> {
    let mut out = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let v = percent_decode(v, true)?;
        if v.bytes().any(|c| c == 0) {
            return Err(Bad::Malformed("NUL in a query parameter"));
        }
        out.push((percent_decode(k, true)?, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(head: &str) -> Request {
        parse(head.as_bytes()).unwrap().unwrap().0
    }

    fn bad(head: &str) -> Bad {
        parse(head.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_plain_get() {
        let head = "GET /group1/M00/00/0A/abc.jpg?token=ab&ts=12&filename=a%20b.jpg HTTP/1.1\r\n\
                    Host: x\r\nRange: bytes=0-9\r\nIf-None-Match: \"e\"\r\n\r\n";
        let (r, n) = parse(head.as_bytes()).unwrap().unwrap();
        assert_eq!(n, head.len());
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/group1/M00/00/0A/abc.jpg");
        assert_eq!(r.param("ts"), Some("12"));
        assert_eq!(r.param("filename"), Some("a b.jpg"));
        assert_eq!(r.range.as_deref(), Some("bytes=0-9"));
        assert_eq!(r.if_none_match.as_deref(), Some("\"e\""));
        assert!(r.keep_alive);
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert_eq!(ok("HEAD / HTTP/1.1\r\n\r\n").method, Method::Head);
        assert_eq!(ok("POST / HTTP/1.1\r\n\r\n").method, Method::Other);
    }

    #[test]
    fn incomplete_heads_wait_and_big_ones_are_refused() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(bad(&big), Bad::TooLarge);
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X{i}: y\r\n"))
            .collect();
        assert_eq!(bad(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Bad::TooLarge);
    }

    #[test]
    fn paths_that_escape_are_refused() {
        for p in [
            "/../etc/passwd",
            "/a/%2e%2e/b",
            "/a/%2E%2E/b",
            "//etc/passwd",
            "/a//b",
            "/a/./b",
            "/a%00b",
            "/a%5cb",
            "/a\\b",
            "http://host/a",
            "*",
            "/a%zz",
            "/%ff",
        ] {
            let head = format!("GET {p} HTTP/1.1\r\n\r\n");
            assert!(parse(head.as_bytes()).is_err(), "{p} accepted");
        }
        assert!(parse(b"GET /a?x=%00 HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn bodies_and_garbage_are_refused() {
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Bad::Malformed(_)
        ));
        assert!(matches!(
            bad("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Bad::Malformed(_)
        ));
        assert!(matches!(bad("\x16\x03\x01\x02\x00"), Bad::Malformed(_)));
        assert!(matches!(bad("GET / HTTP/2.0\r\n\r\n"), Bad::Malformed(_)));
    }
}
