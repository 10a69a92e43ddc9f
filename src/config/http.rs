//! The `http.*` keys of storage.conf and tracker.conf (and of FastDFS's
//! http.conf, which they may `#include`; LAYOUT.md §3.6): the storage's HTTP
//! downloads and both roles' `/metrics`.

use super::ConfigError;
use super::read::Reader;
use std::path::PathBuf;

/// HTTP settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// `http.server_port`: 0 (the default) serves no HTTP.
    pub server_port: u16,
    /// `http.default_content_type` (default application/octet-stream).
    pub default_content_type: String,
    /// `http.mime_types_filename`: an Apache-style mime.types over the
    /// built-in table; relative to the config file's directory.
    pub mime_types_filename: Option<PathBuf>,
    /// `http.anti_steal.check_token` (default false).
    pub check_token: bool,
    /// `http.anti_steal.token_ttl` in seconds (default 600, as upstream's code).
    pub token_ttl: u64,
    /// `http.anti_steal.secret_key`.
    pub secret_key: String,
    /// `http.anti_steal.token_check_fail`: a file sent (200) instead of 403
    /// when a token is refused.
    pub token_check_fail: Option<PathBuf>,
    /// Our key `http.anti_steal.allow_persistent_token` (default false):
    /// accept tokens made with `ts = 0`, which never expire.
    pub allow_persistent_token: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            server_port: 0,
            default_content_type: "application/octet-stream".into(),
            mime_types_filename: None,
            check_token: false,
            token_ttl: 600,
            secret_key: String::new(),
            token_check_fail: None,
            allow_persistent_token: false,
        }
    }
}

/// Read the `http.*` keys; `conf_dir` anchors relative file names.
pub(super) fn read(
    r: &mut Reader<'_>,
    conf_dir: &std::path::Path,
) -> Result<HttpConfig, ConfigError> {
    let d = HttpConfig::default();
    let file = |r: &mut Reader<'_>, key: &str| -> Option<PathBuf> {
        r.opt_string(key)
            .filter(|v| !v.is_empty())
            .map(|v| conf_dir.join(v))
    };
    let c = HttpConfig {
        server_port: r.num("http.server_port", d.server_port)?,
        default_content_type: r.string("http.default_content_type", &d.default_content_type),
        mime_types_filename: file(r, "http.mime_types_filename"),
        check_token: r.bool("http.anti_steal.check_token", d.check_token),
        token_ttl: r.num("http.anti_steal.token_ttl", d.token_ttl)?,
        secret_key: r.string("http.anti_steal.secret_key", &d.secret_key),
        token_check_fail: file(r, "http.anti_steal.token_check_fail"),
        allow_persistent_token: r.bool(
            "http.anti_steal.allow_persistent_token",
            d.allow_persistent_token,
        ),
    };
    // Accepted: fdfs serves single ranges and answers others with the whole
    // file, and finds files with or without the group in the URL.
    r.ignore(&[
        "http.multi_range.enabled",
        "http.domain_name",
        "http.need_find_content_type",
        "http.url_have_group_name",
        // The C client builds its test URLs with it; fdfs token takes --port.
        "http.tracker_server_port",
    ]);
    if c.check_token && c.secret_key.is_empty() {
        return Err(r.error(
            "http.anti_steal.secret_key",
            "must be set when http.anti_steal.check_token is on",
        ));
    }
    Ok(c)
}
