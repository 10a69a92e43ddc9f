//! Content types by file extension: a built-in table of the common web types,
//! overridden by an Apache-style `mime.types` file (`http.mime_types_filename`:
//! lines of `type ext ext ...`, `#` comments).

use std::collections::HashMap;
use std::io;
use std::path::Path;

const BUILT_IN: &[(&str, &str)] = &[
    ("html", "text/html"),
    ("htm", "text/html"),
    ("css", "text/css"),
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    ("json", "application/json"),
    ("txt", "text/plain"),
    ("log", "text/plain"),
    ("csv", "text/csv"),
    ("xml", "application/xml"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("jpe", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("bmp", "image/bmp"),
    ("ico", "image/vnd.microsoft.icon"),
    ("svg", "image/svg+xml"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("mp4", "video/mp4"),
    ("m4v", "video/mp4"),
    ("webm", "video/webm"),
    ("mov", "video/quicktime"),
    ("avi", "video/x-msvideo"),
    ("flv", "video/x-flv"),
    ("mkv", "video/x-matroska"),
    ("ts", "video/mp2t"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("aac", "audio/aac"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
    ("flac", "audio/flac"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tgz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("7z", "application/x-7z-compressed"),
    ("rar", "application/vnd.rar"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("apk", "application/vnd.android.package-archive"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("wasm", "application/wasm"),
];

/// Extension (lower case) -> content type.
#[derive(Clone, Debug)]
pub struct MimeTypes {
    by_ext: HashMap<String, String>,
    default: String,
}

impl MimeTypes {
    /// The built-in table, `default` for anything else.
    pub fn built_in(default: &str) -> MimeTypes {
        MimeTypes {
            by_ext: BUILT_IN
                .iter()
                .map(|&(e, t)| (e.to_string(), t.to_string()))
                .collect(),
            default: default.to_string(),
        }
    }

    /// Add (over the built-in ones) the types of a `mime.types` text.
    pub fn add_text(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut f = line.split_whitespace();
            let Some(t) = f.next() else { continue };
            if !t.contains('/') || t.bytes().any(|c| c.is_ascii_control()) {
                continue;
            }
            for ext in f {
                let ext = ext.trim_end_matches(';').to_ascii_lowercase();
                if !ext.is_empty() {
                    self.by_ext.insert(ext, t.to_string());
                }
            }
        }
    }

    /// Add the types of the file `path`.
    pub fn add_file(&mut self, path: &Path) -> io::Result<()> {
        let text = std::fs::read_to_string(path)?;
        self.add_text(&text);
        Ok(())
    }

    /// The type of a file named `name` (by its last extension).
    pub fn of(&self, name: &str) -> &str {
        let base = name.rsplit('/').next().unwrap_or(name);
        match base.rsplit_once('.') {
            Some((_, ext)) if !ext.is_empty() => self
                .by_ext
                .get(&ext.to_ascii_lowercase())
                .map_or(&self.default, |t| t),
            _ => &self.default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_and_file_types() {
        let mut m = MimeTypes::built_in("application/octet-stream");
        assert_eq!(m.of("M00/00/00/abc.JPG"), "image/jpeg");
        assert_eq!(m.of("abc"), "application/octet-stream");
        assert_eq!(m.of("abc.unknown"), "application/octet-stream");
        m.add_text("# comment\nimage/x-fancy\tfancy fnc\napplication/x-weird   jpg\nbroken\n");
        assert_eq!(m.of("a.fnc"), "image/x-fancy");
        assert_eq!(m.of("a.jpg"), "application/x-weird");
        // nginx's mime.types syntax too.
        m.add_text("types {\n    text/x-nginx  ngx;\n}\n");
        assert_eq!(m.of("a.ngx"), "text/x-nginx");
    }
}
