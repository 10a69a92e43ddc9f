//! Our own CLI (`fdfs upload|download|delete|meta|info`) against a real tracker and storage:
//! contents are random per test and compared by SHA-1, never against constants.

use std::fs;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::{Cluster, GROUP, assert_same_bytes, meta, parse_meta, random_bytes, sha1_hex};

/// Parts of a normal file ID `group/Mxx/HH/HH/name`.
struct IdParts {
    store_path: usize,
    /// `HH/HH/name`, relative to `<store path>/data/`.
    rel: String,
}

#[track_caller]
fn id_parts(id: &str) -> IdParts {
    let rest = id
        .strip_prefix(&format!("{GROUP}/M"))
        .unwrap_or_else(|| panic!("file ID {id:?} does not start with {GROUP}/M"));
    let (index, rel) = rest.split_at(2);
    IdParts {
        store_path: usize::from_str_radix(index, 16)
            .unwrap_or_else(|e| panic!("store path of {id:?}: {e}")),
        rel: rel.trim_start_matches('/').to_string(),
    }
}

#[test]
fn upload_download_roundtrip() {
    let cluster = Cluster::start();
    let data = random_bytes("upload_download_roundtrip", 300_007);
    let id = cluster.upload(&data, &["--ext", "bin"]);
    assert!(
        id.ends_with(".bin"),
        "--ext bin must give a .bin file ID, got {id}"
    );

    assert_same_bytes("download to stdout", &data, &cluster.download(&id));

    let dest = cluster.work_dir().join("downloaded.bin");
    cluster
        .fdfs(&["download", &id, dest.to_str().expect("UTF-8 path")])
        .success();
    let got = fs::read(&dest).unwrap_or_else(|e| panic!("read {}: {e}", dest.display()));
    assert_same_bytes("download to a file", &data, &got);

    // The bytes really are on the storage's disk, where the ID says.
    let parts = id_parts(&id);
    let on_disk = cluster
        .store_path(0, parts.store_path)
        .join("data")
        .join(&parts.rel);
    let stored = fs::read(&on_disk).unwrap_or_else(|e| panic!("read {}: {e}", on_disk.display()));
    assert_same_bytes("file on the storage's disk", &data, &stored);
}

#[test]
fn ranged_download() {
    let cluster = Cluster::start();
    let size = 100_003usize;
    let data = random_bytes("ranged_download", size);
    let id = cluster.upload(&data, &[]);
    let cases: [(usize, Option<usize>); 6] = [
        (0, Some(1)),
        (1_234, Some(5_000)),
        (size - 1_000, Some(1_000)),
        (size - 1, Some(1)),
        (50_000, None),
        (0, None),
    ];
    for (offset, length) in cases {
        let offset_s = offset.to_string();
        let mut args = vec!["download", id.as_str(), "-", "--offset", offset_s.as_str()];
        let length_s = length.map(|l| l.to_string());
        if let Some(l) = &length_s {
            args.extend(["--length", l.as_str()]);
        }
        let got = cluster.fdfs(&args).success().stdout;
        let end = length.map_or(size, |l| offset + l);
        assert_same_bytes(
            &format!("range offset {offset} length {length:?}"),
            &data[offset..end],
            &got,
        );
    }
}

/// Downloads to a FIFO, through a symlink and into a directory: the FIFO and
/// the symlink stay what they are (a rename over them would replace them with
/// a plain file, as it once did to /dev/null).
#[test]
fn download_to_fifo_symlink_and_directory() {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let cluster = Cluster::start();
    let data = random_bytes("download_to_fifo_symlink_and_directory", 70_001);
    let id = cluster.upload(&data, &[]);
    let dir = cluster.work_dir();

    let fifo = dir.join("pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(&fifo).expect("read the FIFO"))
    };
    cluster
        .fdfs(&["download", &id, fifo.to_str().expect("UTF-8 path")])
        .success();
    let kind = fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced: {kind:?}");
    // A reader still waiting (nothing was written) gets end-of-file from
    // this writer instead of waiting forever.
    let _ = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
    assert_same_bytes("download into a FIFO", &data, &reader.join().unwrap());

    let real = dir.join("real-target");
    fs::write(&real, b"old").unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    cluster
        .fdfs(&["download", &id, link.to_str().expect("UTF-8 path")])
        .success();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the symlink was replaced"
    );
    assert_same_bytes(
        "download through a symlink",
        &data,
        &fs::read(&real).unwrap(),
    );

    let into = dir.join("into");
    fs::create_dir(&into).unwrap();
    cluster
        .fdfs(&["download", &id, into.to_str().expect("UTF-8 path")])
        .success();
    let name = id.rsplit('/').next().unwrap();
    assert_same_bytes(
        "download into a directory",
        &data,
        &fs::read(into.join(name)).unwrap(),
    );
}

#[test]
fn delete_then_download_is_enoent() {
    let cluster = Cluster::start();
    let a = random_bytes("delete_then_download_is_enoent/a", 10_000);
    let b = random_bytes("delete_then_download_is_enoent/b", 20_000);
    let id_a = cluster.upload(&a, &[]);
    let id_b = cluster.upload(&b, &["--meta", "k=v"]);
    cluster.fdfs(&["delete", &id_a, &id_b]).success();

    for id in [&id_a, &id_b] {
        cluster.fdfs(&["download", id, "-"]).fails_with("ENOENT");
        cluster.fdfs(&["info", id]).fails_with("ENOENT");
        cluster.fdfs(&["delete", id]).fails_with("ENOENT");
    }
    cluster.fdfs(&["meta", "get", &id_b]).fails_with("ENOENT");

    // Nothing is left on disk: neither the data files nor the metadata file.
    for id in [&id_a, &id_b] {
        let parts = id_parts(id);
        let path = cluster
            .store_path(0, parts.store_path)
            .join("data")
            .join(&parts.rel);
        assert!(
            !path.exists(),
            "{} still exists after delete",
            path.display()
        );
        let meta_path = path.with_file_name(format!(
            "{}-m",
            path.file_name()
                .and_then(|n| n.to_str())
                .expect("UTF-8 file name")
        ));
        assert!(
            !meta_path.exists(),
            "{} still exists after delete",
            meta_path.display()
        );
    }
}

#[test]
fn metadata_set_get_merge() {
    let cluster = Cluster::start();
    let data = random_bytes("metadata_set_get_merge", 4_096);
    let id = cluster.upload(&data, &["--meta", "width=160", "--meta", "author=fdfs"]);
    let get = || parse_meta(&cluster.fdfs(&["meta", "get", &id]).success().stdout_str());
    assert_eq!(
        get(),
        meta(&[("width", "160"), ("author", "fdfs")]),
        "metadata given at upload"
    );

    // Overwrite replaces the whole set; a value may itself contain '='.
    cluster
        .fdfs(&["meta", "set", &id, "color=red", "url=/a?b=c"])
        .success();
    assert_eq!(
        get(),
        meta(&[("color", "red"), ("url", "/a?b=c")]),
        "after overwrite"
    );

    // Merge replaces same-named values and adds new names.
    cluster
        .fdfs(&["meta", "set", &id, "color=blue", "height=90", "--merge"])
        .success();
    assert_eq!(
        get(),
        meta(&[("color", "blue"), ("height", "90"), ("url", "/a?b=c")]),
        "after merge"
    );

    // Metadata never changes the content.
    assert_same_bytes(
        "content after metadata changes",
        &data,
        &cluster.download(&id),
    );
}

#[test]
fn info_matches_local_file() {
    let cluster = Cluster::start();
    let data = random_bytes("info_matches_local_file", 123_457);
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let id = cluster.upload(&data, &[]);

    let run = cluster.fdfs(&["info", &id, "--json"]).success();
    let json: serde_json::Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("info --json is not JSON: {e}\n{}", run.describe()));
    let field = |name: &str| {
        json.get(name)
            .unwrap_or_else(|| panic!("no `{name}` in {json}"))
    };
    assert_eq!(
        field("size").as_u64(),
        Some(data.len() as u64),
        "size in {json}"
    );
    assert_eq!(
        field("crc32").as_u64(),
        Some(u64::from(crc32fast::hash(&data))),
        "crc32 in {json}"
    );
    assert_eq!(
        field("source_ip").as_str(),
        Some(cluster.storage_ip(0)),
        "source_ip in {json}"
    );
    let created = field("create_time")
        .as_u64()
        .unwrap_or_else(|| panic!("create_time is not a number: {json}"));
    assert!(
        created + 5 >= before && created <= before + 120,
        "create_time {created} is not close to the upload time {before}"
    );

    // The human form works too and shows the size.
    let text = cluster.fdfs(&["info", &id]).success().stdout_str();
    assert!(
        text.contains(&data.len().to_string()),
        "plain `info` output lacks the size:\n{text}"
    );
}

#[test]
fn upload_from_stdin() {
    let cluster = Cluster::start();
    let data = random_bytes("upload_from_stdin", 77_777);
    let run = cluster
        .fdfs_stdin(&["upload", "-", "--ext", "txt"], Some(&data))
        .success();
    let id = run.stdout_str();
    assert!(
        id.starts_with(&format!("{GROUP}/M")) && id.ends_with(".txt"),
        "bad file ID {id:?}\n{}",
        run.describe()
    );
    assert_same_bytes("upload from stdin", &data, &cluster.download(&id));
}

#[test]
fn zero_byte_file() {
    let cluster = Cluster::start();
    let id = cluster.upload(&[], &[]);
    assert_same_bytes("0-byte download", &[], &cluster.download(&id));
    let run = cluster.fdfs(&["info", &id, "--json"]).success();
    let json: serde_json::Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON: {e}\n{}", run.describe()));
    assert_eq!(
        json.get("size").and_then(|v| v.as_u64()),
        Some(0),
        "size of a 0-byte file: {json}"
    );
    assert_eq!(
        json.get("crc32").and_then(|v| v.as_u64()),
        Some(0),
        "crc32 of a 0-byte file: {json}"
    );
}

#[test]
fn five_mib_file() {
    let cluster = Cluster::start();
    let data = random_bytes("five_mib_file", 5 << 20);
    let id = cluster.upload(&data, &[]);
    assert_same_bytes("5 MiB download", &data, &cluster.download(&id));
    let tail = cluster
        .fdfs(&[
            "download", &id, "-", "--offset", "5000000", "--length", "242880",
        ])
        .success();
    assert_same_bytes("5 MiB ranged tail", &data[5_000_000..], &tail.stdout);
}

#[test]
fn two_store_paths_both_used() {
    let cluster = Cluster::builder().store_paths(2).start();
    // Which path gets a file is the storage's and tracker's choice (round robin, possibly
    // refreshed only by heartbeats), so keep uploading until both were used, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut used = [false, false];
    let mut n = 0;
    while !(used[0] && used[1]) {
        assert!(
            Instant::now() < deadline,
            "{n} uploads within 10 s never used both store paths: {used:?}"
        );
        let data = random_bytes(&format!("two_store_paths_both_used/{n}"), 1_000 + n);
        let id = cluster.upload(&data, &[]);
        let parts = id_parts(&id);
        assert!(
            parts.store_path < 2,
            "{id} names a store path that does not exist"
        );
        used[parts.store_path] = true;
        let on_disk = cluster
            .store_path(0, parts.store_path)
            .join("data")
            .join(&parts.rel);
        let stored =
            fs::read(&on_disk).unwrap_or_else(|e| panic!("{id}: read {}: {e}", on_disk.display()));
        assert_eq!(
            sha1_hex(&stored),
            sha1_hex(&data),
            "{id}: file on disk differs from upload"
        );
        assert_same_bytes(&format!("download {id}"), &data, &cluster.download(&id));
        n += 1;
        if !(used[0] && used[1]) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn combined_server_roundtrip() {
    let mut cluster = Cluster::start_combined();
    let data = random_bytes("combined_server_roundtrip", 54_321);
    let id = cluster.upload(&data, &["--meta", "a=1"]);
    assert_same_bytes("combined server download", &data, &cluster.download(&id));
    assert_eq!(
        parse_meta(&cluster.fdfs(&["meta", "get", &id]).success().stdout_str()),
        meta(&[("a", "1")])
    );
    cluster.fdfs(&["delete", &id]).success();
    cluster.fdfs(&["download", &id, "-"]).fails_with("ENOENT");
    cluster.assert_serves("combined_server_roundtrip/after");
}
