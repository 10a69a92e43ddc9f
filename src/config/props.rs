//! Property tests of the config readers: a config file, a storage_ids.conf or
//! a single value of any content gives a value or an error naming the file,
//! never a panic; and sizes written as FastDFS writes them read back.

use super::ini::{Ini, parse_bool, parse_bytes, parse_reserved, parse_secs};
use super::storage_ids;
use proptest::prelude::*;
use std::path::Path;

/// Config-like text: lines of `key = value`, sections, comments, includes and noise.
fn conf_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        "[a-z_]{1,20} *= *[ -~]{0,40}",
        "\\[[a-z-]{0,12}\\]",
        "#[ -~]{0,40}",
        "#include [ -~]{0,40}",
        "[ -~]{0,60}",
    ];
    prop::collection::vec(line, 0..40).prop_map(|l| l.join("\n"))
}

proptest! {
    #[test]
    fn config_files_never_panic(t in conf_text()) {
        let _ = Ini::parse(&t, Path::new("/nonexistent/test.conf"));
        let _ = storage_ids::parse(&t, Path::new("/nonexistent/storage_ids.conf"));
    }

    #[test]
    fn values_never_panic(v in "[ -~]{0,40}") {
        let _ = parse_bool(&v);
        let _ = parse_bytes(&v);
        let _ = parse_secs(&v);
        let _ = parse_reserved(&v);
    }

    #[test]
    fn sizes_read_back(n in 0u64..(1 << 40), unit in prop::sample::select(vec!["", "K", "KB", "M", "MB", "G", "GB"])) {
        let mult: u64 = match unit {
            "K" | "KB" => 1 << 10,
            "M" | "MB" => 1 << 20,
            "G" | "GB" => 1 << 30,
            _ => 1,
        };
        if let Some(want) = n.checked_mul(mult) {
            prop_assert_eq!(parse_bytes(&format!("{n}{unit}")), Ok(want));
        }
    }
}
