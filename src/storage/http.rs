//! Downloads over HTTP (`http.server_port`), as nginx with fastdfs-nginx-module
//! serves them, without nginx: `GET`/`HEAD /<group>/M00/XX/YY/<name>` (or
//! without the group), single ranges, `Last-Modified`/`ETag` and their
//! conditional requests, `Content-Disposition` from `?filename=` or
//! `?attname=`, anti-steal tokens, a redirect to the file's source storage
//! while a new file has not reached this one yet, and `GET /metrics`.
//!
//! Runs on the HTTP server's workers ([`crate::http::server`]): opening a
//! file here may wait for the disk.

use super::Store;
use crate::http::mime::MimeTypes;
use crate::http::range::{self, Wanted};
use crate::http::server::{Body, Handler, Response};
use crate::http::{date, parse::Request, token};
use crate::layout::{RemoteName, Source};
use crate::net::FileBody;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

/// The storage's HTTP side.
pub struct StorageHttp {
    pub store: Arc<Store>,
    mime: MimeTypes,
    /// Responses by status code (index) and body bytes, for `/metrics`.
    responses: Box<[std::sync::atomic::AtomicU64]>,
    body_bytes: std::sync::atomic::AtomicU64,
}

/// Status codes counted one by one (others as 599).
const STATUS_SLOTS: usize = 600;

/// Query parameter that marks a redirected request (no second redirect).
const REDIRECTED: &str = "fdfs_redirected";

impl StorageHttp {
    pub fn new(store: Arc<Store>) -> std::io::Result<StorageHttp> {
        let h = &store.cfg.http;
        let mut mime = MimeTypes::built_in(&h.default_content_type);
        if let Some(f) = &h.mime_types_filename {
            mime.add_file(f).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("http.mime_types_filename {}: {e}", f.display()),
                )
            })?;
        }
        Ok(StorageHttp {
            store,
            mime,
            responses: (0..STATUS_SLOTS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
            body_bytes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The group and remote name a path names: `/<group>/M00/...` or `/M00/...`.
    fn file_of<'a>(&'a self, path: &'a str) -> Option<(&'a str, RemoteName)> {
        let rest = path.strip_prefix('/')?;
        let (group, remote) = match rest.split_once('/') {
            Some((g, r)) if !g.starts_with('M') || g.len() != 3 => (g, r),
            _ => (self.store.cfg.group_name.as_str(), rest),
        };
        let name = RemoteName::parse(remote).ok()?;
        Some((group, name))
    }

    fn download(&self, req: &Request) -> Response {
        let Some((group, name)) = self.file_of(&req.path) else {
            return Response::text(404, "no such file");
        };
        if group != self.store.cfg.group_name {
            return Response::text(404, "no such file in this group");
        }
        let remote = name.as_string();
        let h = &self.store.cfg.http;
        if h.check_token {
            let p = token::Policy {
                secret: h.secret_key.as_bytes(),
                ttl: h.token_ttl,
                allow_persistent: h.allow_persistent_token,
            };
            let now = super::now();
            if let Err(why) =
                token::check(&p, group, &remote, req.param("token"), req.param("ts"), now)
            {
                log::debug!("http: token for {group}/{remote}: {}", why.as_str());
                return self.token_refused(why);
            }
        }
        let Some(sp) = self.store.paths.get(name.store_index as usize) else {
            return Response::text(404, "no such store path");
        };
        let path = sp.file_path(&name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.not_here(req, &name),
            Err(e) => {
                log::warn!("http: opening {}: {e}", path.display());
                return Response::text(500, "cannot open the file");
            }
        };
        let meta = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Response::text(404, "no such file"),
            Err(e) => {
                log::warn!("http: {}: {e}", path.display());
                return Response::text(500, "cannot read the file");
            }
        };
        let size = meta.len();
        let mtime = meta.mtime().max(0) as u64;
        // A normal file's name carries its CRC32; an appender changes in place.
        let etag = match name.info() {
            Ok(i) if name.is_normal() => format!("\"{:08x}-{size:x}\"", i.crc32),
            _ => format!("\"{mtime:x}-{size:x}\""),
        };
        let last_modified = date::format(mtime);
        let not_modified = match (&req.if_none_match, &req.if_modified_since) {
            (Some(inm), _) => inm.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == etag
            }),
            (None, Some(ims)) => date::parse(ims).is_some_and(|t| mtime <= t),
            (None, None) => false,
        };
        let base = |status| {
            Response::new(status)
                .header("Accept-Ranges", "bytes")
                .header("ETag", etag.clone())
                .header("Last-Modified", last_modified.clone())
        };
        if not_modified {
            return base(304);
        }
        let mut r = match range::wanted(req.range.as_deref(), size) {
            Wanted::Whole => {
                let mut r = base(200);
                r.body = Body::File(FileBody::new(file, 0, size, 0));
                r
            }
            Wanted::Part { start, end } => {
                let mut r =
                    base(206).header("Content-Range", format!("bytes {start}-{end}/{size}"));
                r.body = Body::File(FileBody::new(file, start, end - start + 1, 0));
                r
            }
            Wanted::Unsatisfiable => {
                return base(416).header("Content-Range", format!("bytes */{size}"));
            }
        };
        let shown = req
            .param("filename")
            .or_else(|| req.param("attname"))
            .filter(|n| !n.is_empty());
        let ctype = self.mime.of(shown.unwrap_or(&name.name)).to_string();
        r.headers.push(("Content-Type", ctype));
        if let Some(n) = shown {
            r.headers
                .push(("Content-Disposition", content_disposition(n)));
        }
        r
    }

    /// A token was refused: the `token_check_fail` file, or 403.
    fn token_refused(&self, why: token::Refused) -> Response {
        if let Some(f) = &self.store.cfg.http.token_check_fail {
            match File::open(f).and_then(|file| Ok((file.metadata()?.len(), file))) {
                Ok((len, file)) => {
                    let mut r = Response::new(200)
                        .header(
                            "Content-Type",
                            self.mime.of(&f.to_string_lossy()).to_string(),
                        )
                        .header("Cache-Control", "no-store");
                    r.body = Body::File(FileBody::new(file, 0, len, 0));
                    return r;
                }
                Err(e) => log::warn!("http.anti_steal.token_check_fail {}: {e}", f.display()),
            }
        }
        Response::text(403, &format!("token {}", why.as_str()))
    }

    /// The file is not here: if another storage of the group made it (it may
    /// not have reached us yet), send the client there, as the nginx module's
    /// `response_mode = redirect` does; else 404.
    fn not_here(&self, req: &Request, name: &RemoteName) -> Response {
        if req.param(REDIRECTED).is_some() {
            return Response::text(404, "no such file");
        }
        let source_ip = match name.info().map(|i| i.source) {
            Ok(Source::Ip(ip)) => ip.to_string(),
            Ok(Source::Id(id)) => match self.store.id_to_ip(id) {
                Some(ip) => ip,
                None => return Response::text(404, "no such file"),
            },
            Err(_) => return Response::text(404, "no such file"),
        };
        if source_ip == self.store.identity.my_ip().to_string() || source_ip == "0.0.0.0" {
            return Response::text(404, "no such file");
        }
        let mut query: Vec<String> = req
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        query.push(format!("{REDIRECTED}=1"));
        let location = format!(
            "http://{source_ip}:{}{}?{}",
            self.store.cfg.http.server_port,
            encode_path(&req.path),
            query.join("&")
        );
        Response::text(302, "the file is on its source storage").header("Location", location)
    }
}

/// `attachment; filename="..."` with a UTF-8 `filename*` for other characters.
fn content_disposition(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if plain == name {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!(
            "attachment; filename=\"{plain}\"; filename*=UTF-8''{}",
            encode(name)
        )
    }
}

/// Percent-encode everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn encode_path(p: &str) -> String {
    p.split('/').map(encode).collect::<Vec<_>>().join("/")
}

impl StorageHttp {
    /// The HTTP responses counted so far, in the Prometheus format.
    fn http_metrics(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let codes: Vec<(String, u64)> = (self.responses.iter().enumerate())
            .filter_map(|(code, n)| {
                let n = n.load(Relaxed);
                (n > 0).then(|| (code.to_string(), n))
            })
            .collect();
        let samples: Vec<(Vec<(&str, &str)>, f64)> = (codes.iter())
            .map(|(c, n)| (vec![("code", c.as_str())], *n as f64))
            .collect();
        let mut p = crate::http::metrics::Page::default();
        p.counter(
            "fdfs_storage_http_responses_total",
            "HTTP responses by status code.",
            &samples,
        );
        p.counter(
            "fdfs_storage_http_body_bytes_total",
            "Bytes of HTTP response bodies (files and ranges).",
            &[(vec![], self.body_bytes.load(Relaxed) as f64)],
        );
        p.finish()
    }
}

impl Handler for StorageHttp {
    fn handle(&self, req: &Request, _peer: SocketAddr) -> Response {
        use std::sync::atomic::Ordering::Relaxed;
        let r = if req.path == "/metrics" {
            let mut r =
                Response::new(200).header("Content-Type", crate::http::metrics::CONTENT_TYPE);
            let page = super::metrics::page(&self.store) + &self.http_metrics();
            r.body = Body::Bytes(page.into_bytes());
            r
        } else {
            self.download(req)
        };
        let slot = (r.status as usize).min(STATUS_SLOTS - 1);
        self.responses[slot].fetch_add(1, Relaxed);
        if req.method != crate::http::parse::Method::Head {
            self.body_bytes.fetch_add(r.body.len(), Relaxed);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_and_encoding() {
        assert_eq!(
            content_disposition("a b.jpg"),
            "attachment; filename=\"a b.jpg\""
        );
        assert_eq!(
            content_disposition("报告.pdf"),
            "attachment; filename=\"__.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf"
        );
        assert_eq!(
            content_disposition("a\"b"),
            "attachment; filename=\"a_b\"; filename*=UTF-8''a%22b"
        );
        assert_eq!(
            encode_path("/group1/M00/00/00/a b"),
            "/group1/M00/00/00/a%20b"
        );
    }
}
