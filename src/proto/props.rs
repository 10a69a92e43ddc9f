//! Property tests of every wire decoder: for arbitrary bytes, and for valid
//! messages with bytes flipped, cut or added, a decoder returns (a value or an
//! error) without panicking and without any single allocation beyond
//! [`bound`] of its input; and the main messages round-trip through
//! encode/decode. `make test` runs proptest's default number of cases;
//! `make fuzz` runs many more (`PROPTEST_CASES`).

use super::*;
use crate::alloc_probe::largest_alloc;
use proptest::prelude::*;

/// The largest single allocation one decode of `len` bytes may make: a
/// decoded value holds at most a few times its input (strings, vectors of
/// records), never a buffer sized by a length field alone.
fn bound(len: usize) -> usize {
    4096 + 16 * len
}

/// Arbitrary bodies, up to 4 KiB.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..4096)
}

/// One edit of a valid body.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
}

/// A valid body with up to 4 edits.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        any::<usize>().prop_map(Edit::Cut),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
    ];
    prop::collection::vec(edit, 0..4).prop_map(move |edits| {
        let mut b = valid.clone();
        for e in edits {
            match e {
                Edit::Flip(i, x) if !b.is_empty() => {
                    let n = b.len();
                    b[i % n] ^= x;
                }
                Edit::Cut(i) => b.truncate(i % (b.len() + 1)),
                Edit::Insert(i, more) => {
                    let at = i % (b.len() + 1);
                    b.splice(at..at, more);
                }
                _ => {}
            }
        }
        b
    })
}

/// Runs `decode` on `b` and checks the allocation bound.
fn check(b: &[u8], decode: impl FnOnce(&[u8])) -> Result<(), TestCaseError> {
    let ((), big) = largest_alloc(|| decode(b));
    prop_assert!(
        big <= bound(b.len()),
        "decoding {} bytes allocated {big} at once",
        b.len()
    );
    Ok(())
}

/// Every decoder of the module, on one input (the same bytes are also given
/// to the decoders that take a body prefix with an announced length).
fn decode_all(b: &[u8], pkg_len: u64) {
    let _ = Header::decode(b);
    let _ = decode_meta(b);
    let _ = decode_remote_name(b, "remote");
    let _ = Join::decode_with_layout(b);
    let _ = JoinReply::decode(b);
    let _ = MyIpQuery::decode(b);
    let _ = report::Brief::decode(b);
    let _ = report::Brief::decode_list(b);
    let _ = BeatReply::decode(b);
    let _ = decode_beat(b);
    let _ = decode_disk_usage(b, (pkg_len % 300) as usize);
    let _ = decode_sync_report(b);
    let _ = report::SyncSrc::decode(b);
    let _ = GroupStorage::decode(b);
    let _ = ReportStatus::decode(b);
    let _ = report::ReportIpChanged::decode(b);
    let _ = report::GetServerId::decode(b);
    let _ = peer::TrackerStatus::decode(b);
    let _ = peer::JoinLeader::decode(b);
    let _ = peer::PingLeader::decode(b);
    let _ = peer::SysFileRequest::decode(b);
    let _ = peer::SysFileChunk::decode(b);
    let _ = stat::GroupStat::decode_list(b, false);
    let _ = stat::GroupStat::decode_list(b, true);
    let _ = stat::StatCounters::decode(b);
    for layout in [
        StatLayout::V616 { ip_size: 16 },
        StatLayout::V616 { ip_size: 46 },
        StatLayout::Legacy612,
    ] {
        let _ = stat::StorageStat::decode_list(b, layout);
    }
    let _ = cluster_stat::TrackerStatFilter::decode(b);
    let _ = cluster_stat::TrackerClusterStat::decode(b);
    let _ = cluster_stat::StorageStatFilter::decode(b);
    let _ = cluster_stat::StorageClusterStat::decode(b);
    let _ = cluster_stat::VolumnStatFilter::decode(b);
    let _ = cluster_stat::VolumnStat::decode(b);
    let _ = UploadHead::decode(b, pkg_len);
    let _ = UploadReply::decode(b);
    let _ = FileRef::decode(b);
    let _ = Download::decode(b);
    let _ = SetMetadata::decode(b);
    let _ = FileInfo::decode(b);
    let _ = SlaveHead::decode(b, pkg_len);
    let _ = AppendHead::decode(b, pkg_len);
    let _ = ModifyHead::decode(b, pkg_len);
    let _ = Truncate::decode(b);
    let _ = sync::decode_report_server_id(b);
    let _ = sync::SyncCreateHead::decode(b, pkg_len, true);
    let _ = sync::SyncCreateHead::decode(b, pkg_len, false);
    let _ = sync::SyncDelete::decode(b);
    let _ = sync::SyncWriteHead::decode(b, pkg_len);
    let _ = sync::SyncCreateHead::head_len(b);
    let _ = sync::SyncWriteHead::head_len(b);
    let _ = SlaveHead::head_len(b);
    let _ = AppendHead::head_len(b);
    let _ = ModifyHead::head_len(b);
    let _ = sync::SyncTruncate::decode(b);
    let _ = sync::SyncLink::decode(b);
    let _ = decode_group(b);
    let _ = StoreTarget::decode(b);
    let _ = FetchQuery::decode(b);
    let _ = FetchTarget::decode(b);
    for ip_size in [16, 46] {
        let _ = StoreTargets::decode(b, ip_size);
        let _ = FetchAll::decode_legacy(b, ip_size);
        let _ = FetchAll::decode_v616(b, ip_size);
    }
    let _ = ListStorage::decode(b);
    let _ = DeleteStorage::decode(b);
    let _ = FetchStorageIds::decode(b);
    let _ = StorageIdsReply::decode(b);
    let _ = ParameterReply::decode(b);
    let _ = repair::DigestQuery::decode(b);
    let _ = repair::DirDigest::decode_list(b);
    let _ = repair::Entry::decode_list(b);
    let _ = repair::RepairStat::decode(b);
}

/// Valid bodies to mutate: one of each kind that has many fields.
fn seeds() -> Vec<Vec<u8>> {
    let join = Join {
        group: "group1".into(),
        storage_port: 23000,
        store_path_count: 2,
        subdir_count_per_path: 256,
        upload_priority: 10,
        join_time: 1,
        up_time: 2,
        version: "6.16.1".into(),
        init_flag: true,
        status: -1,
        storage_id: "100001".into(),
        current_tracker_ip: "10.0.0.1".into(),
        trackers: vec!["10.0.0.1:22122".into(), "10.0.0.2:22122".into()],
    };
    let mut groups = Vec::new();
    let mut storages = Vec::new();
    for _ in 0..3 {
        stat::GroupStat::default().encode(false, &mut groups);
        stat::StorageStat::default().encode(StatLayout::V616 { ip_size: 16 }, &mut storages);
    }
    let brief = report::Brief {
        status: 7,
        port: 23000,
        id: "100001".into(),
        ip: "10.0.0.5".into(),
    };
    vec![
        join.encode(),
        join.encode_slots(),
        encode_meta(&[("width".into(), "1024".into()), ("k".into(), "v".into())]),
        encode_sync_report(&[("100001".into(), 7), ("100002".into(), 9)]),
        encode_disk_usage(&[(100, 50), (200, 10)]),
        report::Brief::encode_list(&[brief.clone(), brief]),
        groups,
        storages,
        StorageIdsReply {
            total: 2,
            lines: vec![
                "100001 group1 10.0.0.5".into(),
                "100002 group1 10.0.0.6".into(),
            ],
        }
        .encode(),
        ParameterReply(vec![("use_storage_id".into(), "false".into())]).encode(),
        repair::Entry::encode_list(&[repair::Entry {
            kind: repair::Kind::Meta,
            name: "wKgAAmWk3JKAAAAAAAAAAAAAAAA123.jpg-m".into(),
            size: 7,
            crc: 8,
            mtime: 9,
        }]),
    ]
}

proptest! {
    #[test]
    fn decoders_take_arbitrary_bytes(b in bytes(), pkg_len in any::<u64>()) {
        check(&b, |b| decode_all(b, pkg_len))?;
    }

    #[test]
    fn decoders_take_damaged_messages(
        b in prop::sample::select(seeds()).prop_flat_map(mutated),
        pkg_len in any::<u64>(),
    ) {
        check(&b, |b| decode_all(b, pkg_len))?;
    }

    #[test]
    fn repair_listing_round_trips(
        files in prop::collection::vec(
            (0u8..4, "[A-Za-z0-9_][A-Za-z0-9._-]{0,99}", any::<u64>(), any::<u32>(), any::<u32>()),
            0..20,
        ),
    ) {
        let list: Vec<repair::Entry> = files
            .into_iter()
            .map(|(k, name, size, crc, mtime)| repair::Entry {
                kind: [repair::Kind::Normal, repair::Kind::Appender, repair::Kind::Slave, repair::Kind::Meta][k as usize],
                name,
                size,
                crc,
                mtime,
            })
            .collect();
        prop_assert_eq!(repair::Entry::decode_list(&repair::Entry::encode_list(&list)), Ok(list));
    }

    #[test]
    fn header_round_trips(pkg_len in 0..=i64::MAX as u64, cmd in any::<u8>(), status in any::<u8>()) {
        let h = Header { pkg_len, cmd, status };
        prop_assert_eq!(Header::decode(&h.encode()), Ok(h));
        // A length with the sign bit set (negative for a C peer) is refused.
        let mut b = h.encode();
        b[0] |= 0x80;
        prop_assert!(Header::decode(&b).is_err());
    }

    #[test]
    fn join_round_trips(
        group in "[A-Za-z0-9]{1,16}",
        port in 1u16..,
        paths in 1u32..=256,
        subdirs in 1u32..=256,
        priority in any::<i64>(),
        times in any::<(u64, u64)>(),
        init_flag in any::<bool>(),
        status in any::<i8>(),
        id in "[0-9]{0,15}",
        trackers in prop::collection::vec("[a-z0-9.]{1,40}:[0-9]{1,5}", 1..=16),
        slots in any::<bool>(),
    ) {
        let j = Join {
            group,
            storage_port: port,
            store_path_count: paths,
            subdir_count_per_path: subdirs,
            upload_priority: priority,
            join_time: times.0,
            up_time: times.1,
            version: "6.16.1".into(),
            init_flag,
            status,
            storage_id: id,
            current_tracker_ip: "10.0.0.1".into(),
            trackers,
        };
        let b = if slots { j.encode_slots() } else { j.encode() };
        prop_assert_eq!(Join::decode(&b), Ok(j));
    }

    #[test]
    fn metadata_round_trips(
        pairs in prop::collection::vec(("[a-z]{1,20}", "[ -~]{0,40}"), 0..20),
    ) {
        prop_assert_eq!(decode_meta(&encode_meta(&pairs)), pairs);
    }

    #[test]
    fn sync_report_round_trips(rows in prop::collection::vec(("[0-9]{1,15}", any::<u32>()), 0..40)) {
        prop_assert_eq!(decode_sync_report(&encode_sync_report(&rows)), Ok(rows));
    }

    #[test]
    fn disk_usage_round_trips(paths in prop::collection::vec(any::<(u64, u64)>(), 1..40)) {
        let b = encode_disk_usage(&paths);
        prop_assert_eq!(decode_disk_usage(&b, paths.len()), Ok(paths));
    }
}
