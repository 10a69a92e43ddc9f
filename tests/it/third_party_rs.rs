//! The `fastdfs` crate (0.1.1 from crates.io, a tokio client written against upstream FastDFS)
//! drives our tracker and storage: upload, download (whole, ranged, streamed, to a file),
//! delete, metadata (overwrite and merge) and file info.
//!
//! Quirks of that client that matter here (read from its source):
//! * it pools connections and never checks them before reuse, so a server that closes a
//!   connection after a successful reply breaks the next call;
//! * it ends every metadata record with 0x01, including the last one;
//! * on upload it sends SET_METADATA separately and ignores its failure, so metadata is
//!   checked with `get_metadata` afterwards;
//! * its reads have no timeout, so every call here is wrapped in one.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use fastdfs::types::{Metadata, MetadataFlag};
use fastdfs::{ClientOptions, FastDFSError, FdfsClient, FileId};

use crate::util::{Cluster, GROUP, assert_same_bytes, parse_meta, random_bytes};

/// Longest any single client call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

fn client(cluster: &Cluster) -> FdfsClient {
    ClientOptions::new(vec![cluster.tracker_addr().to_string()])
        .connect_timeout(Duration::from_secs(5))
        .network_timeout(Duration::from_secs(10))
        .build()
        .expect("valid client options")
}

/// Awaits a client call with a deadline; returns its result.
pub async fn call<T>(
    what: &str,
    fut: impl Future<Output = fastdfs::Result<T>>,
) -> fastdfs::Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(result) => result,
        Err(_) => panic!("fastdfs client: {what}: no answer within {CALL_TIMEOUT:?}"),
    }
}

/// Awaits a client call that must succeed.
pub async fn ok<T>(what: &str, fut: impl Future<Output = fastdfs::Result<T>>) -> T {
    call(what, fut)
        .await
        .unwrap_or_else(|e| panic!("fastdfs client: {what}: {e} ({e:?})"))
}

fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<HashMap<_, _>>()
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(what: &str, result: fastdfs::Result<T>) {
    match result {
        Err(FastDFSError::FileNotFound(_)) => {}
        other => panic!("fastdfs client: {what}: expected FileNotFound (ENOENT), got {other:?}"),
    }
}

#[tokio::test]
async fn fastdfs_rs_upload_download_delete() {
    upload_download_delete(Cluster::start()).await;
}

#[tokio::test]
async fn fastdfs_rs_metadata_and_file_info() {
    metadata_and_file_info(Cluster::start()).await;
}

/// The same calls with every change made on the disk threads (by default
/// small ones are made on the network threads).
#[tokio::test]
async fn fastdfs_rs_with_changes_on_disk_threads() {
    let on_disk_threads = || {
        Cluster::builder()
            .storage_conf("disk_inline_writes", "false")
            .start()
    };
    upload_download_delete(on_disk_threads()).await;
    metadata_and_file_info(on_disk_threads()).await;
}

async fn upload_download_delete(cluster: Cluster) {
    let client = client(&cluster);
    let data = random_bytes("fastdfs_rs_upload_download_delete", 400_009);

    let id = ok(
        "upload_file_buf",
        client.upload_file_buf(&data, "bin", None, false),
    )
    .await;
    assert_eq!(id.group_name, GROUP, "group of {id}");
    assert!(
        id.remote_filename.starts_with('M') && id.remote_filename.ends_with(".bin"),
        "remote name of {id}"
    );

    let whole = ok(
        "download_file_buf whole",
        client.download_file_buf(&id, 0, 0),
    )
    .await;
    assert_same_bytes("download_file_buf whole", &data, &whole);
    let range = ok(
        "download_file_buf range",
        client.download_file_buf(&id, 1_000, 5_000),
    )
    .await;
    assert_same_bytes("download_file_buf 1000+5000", &data[1_000..6_000], &range);
    let tail = ok(
        "download_file_buf tail",
        client.download_file_buf(&id, 399_000, 0),
    )
    .await;
    assert_same_bytes(
        "download_file_buf from 399000 to the end",
        &data[399_000..],
        &tail,
    );
    let mut sink: Vec<u8> = Vec::new();
    let n = ok(
        "download_file to a writer",
        client.download_file(&id, &mut sink, 10, 100),
    )
    .await;
    assert_eq!(n, 100, "download_file byte count");
    assert_same_bytes("download_file 10+100", &data[10..110], &sink);

    // Our own CLI reads what the foreign client wrote.
    assert_same_bytes(
        "our CLI downloading the crate's upload",
        &data,
        &cluster.download(&id.to_string()),
    );

    // Upload from and download to local files; the ext comes from the local name.
    let local = random_bytes("fastdfs_rs_upload_download_delete/local", 65_536);
    let src = cluster.write_file("local-upload.txt", &local);
    let id2 = ok(
        "upload_file_local",
        client.upload_file_local(src.to_str().expect("UTF-8"), None, false),
    )
    .await;
    assert!(id2.remote_filename.ends_with(".txt"), "ext of {id2}");
    let dest = cluster.work_dir().join("local-download.txt");
    let n = ok(
        "download_file_local",
        client.download_file_local(&id2, dest.to_str().expect("UTF-8")),
    )
    .await;
    assert_eq!(n, local.len() as u64, "download_file_local byte count");
    assert_same_bytes(
        "download_file_local",
        &local,
        &std::fs::read(&dest).expect("read download"),
    );

    // A 0-byte file round-trips.
    let empty = ok(
        "upload 0 bytes",
        client.upload_file_buf(&[], "", None, false),
    )
    .await;
    assert_same_bytes(
        "0-byte file",
        &[],
        &ok("download 0 bytes", client.download_file_buf(&empty, 0, 0)).await,
    );

    // Delete: gone for the crate and for our CLI.
    assert!(ok("file_exists before delete", client.file_exists(&id)).await);
    ok("delete_file", client.delete_file(&id)).await;
    assert!(
        !ok("file_exists after delete", client.file_exists(&id)).await,
        "{id} exists after delete"
    );
    assert_not_found(
        "download after delete",
        call("download", client.download_file_buf(&id, 0, 0)).await,
    );
    assert_not_found(
        "delete twice",
        call("delete", client.delete_file(&id)).await,
    );
    cluster
        .fdfs(&["download", &id.to_string(), "-"])
        .fails_with("ENOENT");

    // The other files are untouched.
    let again = ok("download other file", client.download_file_buf(&id2, 0, 0)).await;
    assert_same_bytes("file uploaded from disk, after the delete", &local, &again);
    client.close().await;
}

async fn metadata_and_file_info(cluster: Cluster) {
    let client = client(&cluster);
    let data = random_bytes("fastdfs_rs_metadata_and_file_info", 33_333);
    let started = SystemTime::now();

    let first = metadata(&[("author", "fdfs"), ("width", "160")]);
    let id = ok(
        "upload with metadata",
        client.upload_file_buf(&data, "jpg", Some(&first), false),
    )
    .await;
    assert_eq!(
        ok("get_metadata after upload", client.get_metadata(&id)).await,
        first,
        "metadata sent with upload"
    );

    let overwrite = metadata(&[("color", "red")]);
    ok(
        "set_metadata overwrite",
        client.set_metadata(&id, &overwrite, MetadataFlag::Overwrite),
    )
    .await;
    assert_eq!(
        ok("get_metadata", client.get_metadata(&id)).await,
        overwrite,
        "after overwrite"
    );

    let merge = metadata(&[("color", "blue"), ("height", "90")]);
    ok(
        "set_metadata merge",
        client.set_metadata(&id, &merge, MetadataFlag::Merge),
    )
    .await;
    let expected = metadata(&[("color", "blue"), ("height", "90")]);
    assert_eq!(
        ok("get_metadata", client.get_metadata(&id)).await,
        expected,
        "after merge"
    );

    // Our CLI sees the same metadata (despite the crate's trailing record separator).
    let ours = parse_meta(
        &cluster
            .fdfs(&["meta", "get", &id.to_string()])
            .success()
            .stdout_str(),
    );
    let ours: Metadata = ours.into_iter().collect();
    assert_eq!(
        ours, expected,
        "`fdfs meta get` of metadata set by the crate"
    );

    let info = ok("get_file_info", client.get_file_info(&id)).await;
    assert_eq!(info.file_size, data.len() as u64, "file_size");
    assert_eq!(info.crc32, crc32fast::hash(&data), "crc32");
    assert_eq!(info.source_ip_addr, cluster.storage_ip(0), "source_ip_addr");
    let skew = match info.create_time.duration_since(started) {
        Ok(after) => after,
        Err(before) => before.duration(),
    };
    assert!(
        skew < Duration::from_secs(120),
        "create_time {:?} is far from now",
        info.create_time
    );
    // Flags in the request status byte (6.15.1+): don't calc CRC, keep silent.
    let flagged = ok(
        "get_file_info_with_flag 3",
        client.get_file_info_with_flag(&id, 3),
    )
    .await;
    assert_eq!(flagged.file_size, data.len() as u64, "file_size with flags");

    // Unknown file: FileNotFound, and file_exists says false.
    // Change one base64 char of the CRC32 part: a well-formed name of a file that does not exist.
    let name = &id.remote_filename;
    let swapped = if &name[35..36] == "A" { "B" } else { "A" };
    let missing = FileId::new(GROUP, format!("{}{swapped}{}", &name[..35], &name[36..]));
    assert!(
        !ok(
            "file_exists of a missing file",
            client.file_exists(&missing)
        )
        .await
    );
    assert_not_found(
        "metadata of a missing file",
        call("get_metadata", client.get_metadata(&missing)).await,
    );
    client.close().await;
}
