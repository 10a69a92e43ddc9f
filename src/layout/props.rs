//! Property tests of the on-disk formats' readers: file names, binlog lines,
//! `key=value` files (marks, `.data_init_flag`, `storage_stat.dat`), the
//! durable journal's header and records, and the tracker's `.dat` files take
//! arbitrary input without panicking or an
//! allocation beyond a bound of their input, a remote name never names a path
//! outside its store path, and writers and readers round-trip.

use super::binlog::Record;
use super::file_id::{NameInfo, RemoteName, base64_decode, base64_encode};
use super::journal;
use super::kv::{format_kv, parse_kv};
use super::tracker_dat;
use crate::alloc_probe::largest_alloc;
use proptest::prelude::*;
use std::path::{Component, Path};

/// The largest single allocation one parse of `len` bytes may make.
fn bound(len: usize) -> usize {
    4096 + 16 * len
}

/// Arbitrary text, mostly printable, with the separators the formats use.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~\n\t=#/.]{0,512}",
        prop::collection::vec(any::<u8>(), 0..512)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn check(len: usize, f: impl FnOnce()) -> Result<(), TestCaseError> {
    let ((), big) = largest_alloc(f);
    prop_assert!(
        big <= bound(len),
        "parsing {len} bytes allocated {big} at once"
    );
    Ok(())
}

proptest! {
    #[test]
    fn readers_take_arbitrary_text(t in text()) {
        check(t.len(), || {
            let _ = RemoteName::parse(&t);
            let _ = NameInfo::decode(&t);
            let _ = base64_decode(&t);
            let _ = Record::parse(&t);
            let _ = parse_kv(&t);
        })?;
    }

    /// Whatever a client sends as a remote name, what parses stays inside the
    /// store path: a relative path of plain components, no `..`, no root.
    #[test]
    fn remote_names_stay_inside_the_store(t in "M[0-9A-Fa-f]{2}/[0-9A-F]{2}/[0-9A-F]{2}/[ -~]{0,110}") {
        if let Ok(r) = RemoteName::parse(&t) {
            let rel = format!("data/{:02X}/{:02X}/{}", r.high, r.low, r.name);
            prop_assert!(Path::new(&rel).components().all(|c| matches!(c, Component::Normal(_))), "{rel}");
            prop_assert_eq!(r.to_string(), t);
        }
    }

    #[test]
    fn name_info_round_trips(raw in any::<[u8; 20]>()) {
        let info = NameInfo::from_bytes(&raw);
        prop_assert_eq!(info.to_bytes(), raw);
        prop_assert_eq!(NameInfo::decode(&info.encode()).ok().map(NameInfo::to_bytes), Some(raw));
    }

    #[test]
    fn base64_round_trips(raw in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(base64_decode(&base64_encode(&raw)), Some(raw));
    }

    #[test]
    fn binlog_lines_round_trip(
        ts in any::<u32>(),
        op in prop::sample::select(b"CDUAMTLRcduamtlr".to_vec()),
        name in "M00/[0-9A-F]{2}/[0-9A-F]{2}/[A-Za-z0-9_-]{1,40}",
        extra in "([ -~]{0,40})",
    ) {
        let r = Record { timestamp: ts, op, name, extra: extra.trim_end().to_string() };
        prop_assert_eq!(Record::parse(&r.to_line()), Some(r));
    }

    #[test]
    fn kv_round_trips(items in prop::collection::vec(("[a-z_][a-z0-9_]{0,20}", "[!-~]([ -~]{0,30}[!-~])?"), 0..20)) {
        prop_assert_eq!(parse_kv(&format_kv(&items)), items);
    }

    /// The tracker's system files, read back from arbitrary contents.
    #[test]
    fn tracker_files_take_arbitrary_text(t in text()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("f.dat");
        std::fs::write(&p, &t).expect("write");
        check(t.len(), || {
            let _ = tracker_dat::load_groups(&p);
            let _ = tracker_dat::load_storages(&p);
            let _ = tracker_dat::load_sync_timestamps(&p);
            let _ = tracker_dat::load_tracker_status(&p);
        })?;
    }

    /// The journal's header and records, read at start-up from whatever a crash left.
    #[test]
    fn journal_takes_arbitrary_bytes(
        b in prop::collection::vec(any::<u8>(), 0..8192),
        tag in any::<u64>(),
        start in any::<u64>(),
        len in any::<u64>(),
    ) {
        check(b.len(), || {
            let h = journal::Header::decode(&b);
            let _ = journal::decode_record(&b, tag);
            let _ = journal::records(&b, tag, (start % (b.len() as u64 + 1), len));
            if let Some(h) = h {
                let _ = journal::replay_records(&b, &h);
            }
        })?;
    }

    #[test]
    fn journal_records_round_trip(
        tag in any::<u64>(),
        kind in prop::sample::select(vec![journal::kind::FILE, journal::kind::LINE]),
        name in prop::collection::vec(any::<u8>(), 0..200),
        data in prop::collection::vec(any::<u8>(), 0..2000),
        flip in any::<(usize, u8)>(),
    ) {
        let mut b = Vec::new();
        journal::encode_record(&mut b, tag, kind, &name, &data);
        let (r, n) = journal::decode_record(&b, tag).expect("a record just written");
        prop_assert_eq!((r.kind, r.name, r.data, n), (kind, name.as_slice(), data.as_slice(), b.len()));
        // Another generation's tag, or any flipped byte, is never taken for a record.
        prop_assert!(journal::decode_record(&b, tag ^ 1).is_none());
        if flip.1 != 0 {
            let i = flip.0 % b.len();
            b[i] ^= flip.1;
            prop_assert!(journal::decode_record(&b, tag).is_none_or(|(r, _)| r.data == data.as_slice() && r.name == name.as_slice()));
        }
    }

    #[test]
    fn journal_header_round_trips(generation in any::<u64>(), file in any::<u32>(), offset in any::<u64>(), region in 0u8..2, salt in any::<u64>()) {
        let h = journal::Header { generation, binlog: (file, offset), region, salt };
        prop_assert_eq!(journal::Header::decode(&h.encode()), Some(h));
    }
}
