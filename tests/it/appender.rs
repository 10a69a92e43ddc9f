//! Appender and slave files (PROTOCOL.md §5.2–5.5, §5.10–5.11) on a group of two storages:
//! random APPEND / MODIFY / TRUNCATE sequences checked against a local model on every storage,
//! REGENERATE, slave names, a client vanishing mid-body, concurrent appends, and a resumable
//! 50 MiB upload. Driven with our CLI, the `fastdfs` crate and raw bytes (py3fdfsv2:
//! `third_party_py.rs`).
//!
//! Changes go to the file's source storage (QUERY_UPDATE); checks right after a change ask the
//! source with `--storage` (the tracker may send a read to a peer that has not caught up yet),
//! and replicas are polled until they equal the model.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use fastdfs::{ClientOptions, FastDFSError, FdfsClient, StorageClient};

use crate::third_party_rs::{call, ok};
use crate::util::*;

/// Deadline for a change to reach every storage.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes appended by one "large" append in the random sequences.
const BIG_APPEND: usize = 200 * 1024;

/// Deterministic pseudo-random numbers for op sequences (xorshift64*), seeded by name.
struct Rng(u64);

impl Rng {
    fn new(seed: &str) -> Rng {
        let bytes = random_bytes(seed, 8);
        Rng(u64::from_le_bytes(bytes.try_into().expect("8 bytes")) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..=max`.
    fn upto(&mut self, max: usize) -> usize {
        (self.next() % (max as u64 + 1)) as usize
    }
}

/// One change to an appender file.
#[derive(Debug)]
enum Op {
    Append(Vec<u8>),
    Modify(usize, Vec<u8>),
    Truncate(usize),
    /// Not a change: compare `info` on the source with the model.
    Info,
}

impl Op {
    /// The `k`-th op of a sequence for a file of `len` bytes: the first few cover every kind
    /// (empty and 200 KB appends, modify at the end and at 0, truncate longer and shorter),
    /// the rest are random.
    fn pick(rng: &mut Rng, seed: &str, k: usize, len: usize) -> Op {
        let data = |n: usize| random_bytes(&format!("{seed}/op{k}"), n);
        // Later ops: mostly appends and modifies, the kinds a client uses most.
        const LATER: [usize; 10] = [0, 1, 2, 2, 3, 4, 5, 5, 5, 6];
        let kind = match k {
            0..=6 => k,
            _ => LATER[rng.upto(LATER.len() - 1)],
        };
        match kind {
            0 => Op::Append(Vec::new()),
            1 => Op::Append(data(BIG_APPEND)),
            2 if k == 2 => Op::Modify(len, data(5_000)),
            2 => Op::Append(data(1 + rng.upto(70_000))),
            3 => Op::Truncate(len + 1 + rng.upto(50_000)),
            4 => Op::Truncate(rng.upto(len)),
            5 if k == 5 => Op::Modify(0, data(3_333)),
            5 => Op::Modify(rng.upto(len), data(1 + rng.upto(40_000))),
            _ => Op::Info,
        }
    }

    /// What the op does to the local model.
    fn apply(&self, model: &mut Vec<u8>) {
        match self {
            Op::Append(data) => model.extend_from_slice(data),
            Op::Modify(offset, data) => {
                let end = offset + data.len();
                if model.len() < end {
                    model.resize(end, 0);
                }
                model[*offset..end].copy_from_slice(data);
            }
            Op::Truncate(size) => model.resize(*size, 0),
            Op::Info => {}
        }
    }

    /// Short description for messages (no data).
    fn describe(&self) -> String {
        match self {
            Op::Append(d) => format!("append {} bytes", d.len()),
            Op::Modify(o, d) => format!("modify {} bytes at {o}", d.len()),
            Op::Truncate(n) => format!("truncate to {n}"),
            Op::Info => "info".to_string(),
        }
    }
}

/// Runs `op` on `id` with the CLI (through the tracker); `Info` asks storage `src` directly.
#[track_caller]
fn run_op(cluster: &Cluster, id: &str, src: usize, op: &Op, model: &[u8]) {
    match op {
        Op::Append(data) => {
            cluster
                .fdfs_stdin(&["append", id, "-"], Some(data))
                .success();
        }
        Op::Modify(offset, data) => {
            cluster
                .fdfs_stdin(&["modify", id, &offset.to_string(), "-"], Some(data))
                .success();
        }
        Op::Truncate(size) => {
            cluster.fdfs(&["truncate", id, &size.to_string()]).success();
        }
        Op::Info => assert_info(cluster, src, id, model, "info op"),
    }
}

/// `fdfs info --storage` on storage `i`: size and CRC32 (computed over the content for
/// appender and slave files) match `model`.
#[track_caller]
pub fn assert_info(cluster: &Cluster, i: usize, id: &str, model: &[u8], what: &str) {
    let info = cluster.info(Some(i), id);
    assert_eq!(
        (info.size, info.crc32),
        (model.len() as u64, crc32fast::hash(model)),
        "{what}: (size, crc32) of {id} on storage {} ({})",
        i + 1,
        cluster.storage_ip(i)
    );
}

/// Remote name (no group) of a group1 file ID.
fn remote_of(id: &str) -> &str {
    id.strip_prefix(&format!("{GROUP}/"))
        .unwrap_or_else(|| panic!("file ID {id:?} is not in {GROUP}"))
}

/// Uploads `data` as an appender file (ext `bin`) and checks its name says so.
#[track_caller]
fn upload_appender(cluster: &Cluster, data: &[u8]) -> String {
    let id = cluster.upload(data, &["--appender", "--ext", "bin"]);
    let fields = name_fields(&id).unwrap_or_else(|| panic!("undecodable name {id}"));
    assert!(
        fields.is_appender(),
        "{id} is not marked appender: {fields:?}"
    );
    id
}

/// Every `.stage-*` file under the `data/` trees of storage `i`.
fn stage_files(cluster: &Cluster, i: usize) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&path, out);
            } else if e.file_name().to_string_lossy().starts_with(".stage-") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&cluster.base_path(i).join("data"), &mut out);
    out
}

/// Polls until no storage holds a `.stage-*` file.
#[track_caller]
fn wait_no_stage_files(cluster: &Cluster, what: &str) {
    poll_until(what, CONVERGE_TIMEOUT, || {
        let left: Vec<PathBuf> = (0..cluster.storage_count())
            .flat_map(|i| stage_files(cluster, i))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("staging files left: {left:?}"))
        }
    });
}

#[test]
fn appender_ops_match_a_local_model_on_every_storage() {
    let seed = "appender_ops_match_a_local_model_on_every_storage";
    let cluster = Cluster::builder().storages(2).start();
    let mut model = random_bytes(seed, 10_000);
    let id = upload_appender(&cluster, &model);
    let src = cluster.source_storage(&id);

    let mut rng = Rng::new(seed);
    let mut done = Vec::new();
    for k in 0..30 {
        let op = Op::pick(&mut rng, seed, k, model.len());
        done.push(op.describe());
        run_op(&cluster, &id, src, &op, &model);
        op.apply(&mut model);
        if k == 15 {
            cluster.wait_content_everywhere(&id, &model, CONVERGE_TIMEOUT, "after 16 ops");
        }
    }
    eprintln!("ops: {}", done.join(", "));
    cluster.wait_content_everywhere(&id, &model, CONVERGE_TIMEOUT, "after 30 ops");
    for i in 0..cluster.storage_count() {
        assert_info(&cluster, i, &id, &model, "after 30 ops");
    }

    // Metadata set on the appender moves along with the regenerated name.
    cluster
        .fdfs(&[
            "meta",
            "set",
            &id,
            "kind=appender",
            "step=before-regenerate",
        ])
        .success();
    let new = cluster.fdfs(&["regenerate", &id]).success().stdout_str();
    assert_ne!(new, id, "regenerate must give a new name");
    // Same group, store path and directories, same 7-char ext part (PROTOCOL.md §5.11).
    assert_eq!(&new[..17], &id[..17], "directories of {new} vs {id}");
    assert_eq!(
        &new[new.len() - 7..],
        &id[id.len() - 7..],
        "ext part of {new} vs {id}"
    );
    let fields = name_fields(&new).unwrap_or_else(|| panic!("undecodable name {new}"));
    assert!(!fields.is_appender(), "{new} is still appender: {fields:?}");
    assert_eq!(
        (fields.size(), fields.crc32),
        (model.len() as u64, crc32fast::hash(&model)),
        "size and crc32 in the regenerated name {new}"
    );

    cluster.wait_content_everywhere(&new, &model, CONVERGE_TIMEOUT, "regenerated file");
    cluster.wait_gone_everywhere(&id, CONVERGE_TIMEOUT, "old appender name after regenerate");
    for i in 0..cluster.storage_count() {
        assert_info(&cluster, i, &new, &model, "regenerated file");
    }
    let got = parse_meta(&cluster.fdfs(&["meta", "get", &new]).success().stdout_str());
    assert_eq!(
        got,
        meta(&[("kind", "appender"), ("step", "before-regenerate")]),
        "metadata of the regenerated file {new}"
    );
    // A regenerated file is a normal file: no more appends, and the old name is dead.
    cluster
        .fdfs_stdin(&["append", &new, "-"], Some(b"more"))
        .fails_with("EINVAL");
    let run = cluster.fdfs_stdin(&["append", &id, "-"], Some(b"more"));
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(EXIT_NOT_FOUND),
        "append to the old name\n{}",
        run.describe()
    );
}

#[test]
fn slave_files() {
    let seed = "slave_files";
    let cluster = Cluster::builder().storages(2).start();
    let master_data = random_bytes(seed, 50_000);
    let master = cluster.upload(&master_data, &["--ext", "jpg"]);
    let base = master
        .strip_suffix(".jpg")
        .unwrap_or_else(|| panic!("master {master} must end with .jpg"));

    // The local file's own ext (png) is overridden by --ext.
    let thumb = random_bytes(&format!("{seed}/thumb"), 7_000);
    let thumb_path = cluster.write_file("thumb.png", &thumb);
    let thumb_path = thumb_path.to_str().expect("UTF-8 temp path");
    let slave_args = [
        "upload", "--master", &master, "--prefix", "_150x150", "--ext", "jpg", thumb_path,
    ];
    let thumb_id = cluster.fdfs(&slave_args).success().stdout_str();
    assert_eq!(
        thumb_id,
        format!("{base}_150x150.jpg"),
        "slave with --ext jpg"
    );

    // From stdin there is no local ext: the slave has none.
    let small = random_bytes(&format!("{seed}/small"), 3_000);
    let small_id = cluster
        .fdfs_stdin(
            &["upload", "--master", &master, "--prefix", "_s", "-"],
            Some(&small),
        )
        .success()
        .stdout_str();
    assert_eq!(small_id, format!("{base}_s"), "slave without ext");

    let files = [
        (&master, &master_data),
        (&thumb_id, &thumb),
        (&small_id, &small),
    ];
    for (id, data) in files {
        cluster.wait_content_everywhere(id, data, CONVERGE_TIMEOUT, "slave upload");
    }

    // The same slave name again: EEXIST, and the first slave is untouched.
    cluster.fdfs(&slave_args).fails_with("EEXIST");
    assert_same_bytes(
        "slave after a refused duplicate",
        &thumb,
        &cluster
            .fdfs_on(0, &["download", &thumb_id, "-"])
            .success()
            .stdout,
    );

    // A well-formed master name that does not exist (one char of its CRC32 changed).
    let remote = remote_of(&master);
    let swapped = if &remote[35..36] == "A" { "B" } else { "A" };
    let missing = format!("{GROUP}/{}{swapped}{}", &remote[..35], &remote[36..]);
    let run = cluster.fdfs_stdin(
        &["upload", "--master", &missing, "--prefix", "_x", "-"],
        Some(b"orphan"),
    );
    assert_eq!(
        run.status.and_then(|s| s.code()),
        Some(EXIT_NOT_FOUND),
        "slave of a missing master\n{}",
        run.describe()
    );

    // Last, as the slave without ext has a 42-char name, shorter than a normal name: by
    // upstream's IS_SLAVE_FILE rule (longer than 44) it does not look like a slave, yet its
    // CRC32 must still be that of its content, not the master's carried in the name.
    for (id, data) in files {
        for i in 0..cluster.storage_count() {
            assert_info(&cluster, i, id, data, "slave upload");
        }
    }
}

/// The crate's own StorageClient, connected to storage `i` directly.
async fn crate_storage(cluster: &Cluster, i: usize) -> StorageClient {
    ok(
        "StorageClient::connect",
        StorageClient::connect(cluster.storage_addr(i)),
    )
    .await
}

#[tokio::test]
async fn fastdfs_crate_appender() {
    let seed = "fastdfs_crate_appender";
    let cluster = Cluster::builder().storages(2).start();
    let client: FdfsClient = ClientOptions::new(vec![cluster.tracker_addr().to_string()])
        .connect_timeout(Duration::from_secs(5))
        .network_timeout(Duration::from_secs(10))
        .build()
        .expect("valid client options");

    let mut model = random_bytes(seed, 20_000);
    let file = ok(
        "upload_file_buf appender",
        client.upload_file_buf(&model, "log", None, true),
    )
    .await;
    let id = file.to_string();
    let fields = name_fields(&id).unwrap_or_else(|| panic!("undecodable name {id}"));
    assert!(fields.is_appender(), "{id} is not marked appender");
    let src = cluster.source_storage(&id);
    // Reads right after a change ask the source: the tracker may pick a lagging peer.
    let mut at_src = crate_storage(&cluster, src).await;

    let mut rng = Rng::new(seed);
    for k in 0..20 {
        let op = Op::pick(&mut rng, seed, k, model.len());
        let what = op.describe();
        match &op {
            Op::Append(data) => ok(&what, client.append_file_buf(&file, data)).await,
            Op::Modify(offset, data) => {
                ok(&what, client.modify_file_buf(&file, *offset as u64, data)).await
            }
            Op::Truncate(0) => ok(&what, client.truncate_file0(&file)).await,
            Op::Truncate(size) => ok(&what, client.truncate_file(&file, *size as u64)).await,
            Op::Info => {}
        }
        op.apply(&mut model);
        let info = ok("get_file_info on the source", at_src.get_file_info(&file)).await;
        assert_eq!(
            (info.file_size, info.crc32),
            (model.len() as u64, crc32fast::hash(&model)),
            "crate get_file_info after op {k} ({what})"
        );
    }
    let got = ok(
        "download_file_buf from the source",
        at_src.download_file_buf(&file, 0, 0),
    )
    .await;
    assert_same_bytes("crate download from the source", &model, &got);
    // Appending to a file that is not an appender: EINVAL.
    let normal = ok(
        "upload_file_buf normal",
        client.upload_file_buf(b"plain", "txt", None, false),
    )
    .await;
    match call(
        "append to a normal file",
        client.append_file_buf(&normal, b"x"),
    )
    .await
    {
        Err(FastDFSError::InvalidArgument(_)) => {}
        other => panic!("append to a normal file: expected InvalidArgument, got {other:?}"),
    }

    // Every storage converges (checked with our CLI), and the crate reads the same from each.
    cluster.wait_content_everywhere(&id, &model, CONVERGE_TIMEOUT, "crate appender");
    for i in 0..cluster.storage_count() {
        let mut s = crate_storage(&cluster, i).await;
        let got = ok("download_file_buf", s.download_file_buf(&file, 0, 0)).await;
        assert_same_bytes(
            &format!("crate download from storage {}", i + 1),
            &model,
            &got,
        );
    }

    let new = ok(
        "regenerate_appender_filename",
        client.regenerate_appender_filename(&file),
    )
    .await;
    assert_eq!(new.group_name, GROUP, "group of the regenerated {new}");
    assert_ne!(
        new.remote_filename, file.remote_filename,
        "regenerated name"
    );
    let new_id = new.to_string();
    cluster.wait_content_everywhere(&new_id, &model, CONVERGE_TIMEOUT, "crate regenerate");
    cluster.wait_gone_everywhere(&id, CONVERGE_TIMEOUT, "old name after crate regenerate");
    let info = ok("get_file_info regenerated", at_src.get_file_info(&new)).await;
    assert_eq!(
        (info.file_size, info.crc32),
        (model.len() as u64, crc32fast::hash(&model)),
        "crate get_file_info of the regenerated file"
    );
    match call("info of the old name", at_src.get_file_info(&file)).await {
        Err(FastDFSError::FileNotFound(_)) => {}
        other => panic!("info of the old appender name: expected FileNotFound, got {other:?}"),
    }
    client.close().await;
}

#[test]
fn disconnect_mid_append_leaves_file_unchanged() {
    let seed = "disconnect_mid_append_leaves_file_unchanged";
    let cluster = Cluster::builder().storages(2).start();
    let old = random_bytes(seed, 100_000);
    let id = upload_appender(&cluster, &old);
    let remote = remote_of(&id);
    let src = cluster.source_storage(&id);
    let junk = random_bytes(&format!("{seed}/junk"), 300 * 1024);

    // APPEND announcing 1 MiB, 300 KB sent, then the client is gone.
    let mut raw = Raw::connect(cluster.storage_addr(src));
    raw.send_bytes(&append_head(remote, 1 << 20))
        .expect("send APPEND head");
    raw.send_bytes(&junk).expect("send part of the APPEND body");
    drop(raw);
    // Same for MODIFY at offset 0.
    let mut raw = Raw::connect(cluster.storage_addr(src));
    raw.send_bytes(&modify_head(remote, 0, 1 << 20))
        .expect("send MODIFY head");
    raw.send_bytes(&junk).expect("send part of the MODIFY body");
    drop(raw);

    // Once the server has noticed (its staging files are gone), nothing changed anywhere.
    wait_no_stage_files(&cluster, "staging files of the abandoned requests to go");
    cluster.wait_content_everywhere(&id, &old, CONVERGE_TIMEOUT, "after abandoned requests");

    let extra = random_bytes(&format!("{seed}/extra"), 50_000);
    cluster
        .fdfs_stdin(&["append", &id, "-"], Some(&extra))
        .success();
    let want = [old, extra].concat();
    cluster.wait_content_everywhere(&id, &want, CONVERGE_TIMEOUT, "after the normal append");
    for i in 0..cluster.storage_count() {
        assert_info(&cluster, i, &id, &want, "after the normal append");
    }
    wait_no_stage_files(&cluster, "no staging files at the end");
}

#[test]
fn concurrent_appends_do_not_interleave() {
    const THREADS: usize = 4;
    const CHUNKS: usize = 20;
    const CHUNK: usize = 64 * 1024;
    let cluster = Cluster::builder().storages(2).start();
    let id = upload_appender(&cluster, &[]);
    let remote = remote_of(&id);
    let addr = cluster.storage_addr(cluster.source_storage(&id));

    // One connection per thread, all to the source storage, started together.
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        for t in 0..THREADS {
            let barrier = &barrier;
            s.spawn(move || {
                let value = b'A' + t as u8;
                let mut msg = append_head(remote, CHUNK as u64);
                msg.resize(msg.len() + CHUNK, value);
                let mut raw = Raw::connect(addr);
                barrier.wait();
                for c in 0..CHUNKS {
                    raw.send_bytes(&msg)
                        .unwrap_or_else(|e| panic!("thread {t} chunk {c}: send: {e}"));
                    let reply = raw
                        .recv()
                        .unwrap_or_else(|e| panic!("thread {t} chunk {c}: reply: {e}"));
                    assert_eq!(
                        (reply.cmd, reply.status, reply.body.len()),
                        (CMD_RESP, 0, 0),
                        "thread {t} chunk {c}: APPEND reply"
                    );
                }
            });
        }
    });

    let total = THREADS * CHUNKS * CHUNK;
    let content = cluster
        .fdfs_on(cluster.source_storage(&id), &["download", &id, "-"])
        .success()
        .stdout;
    assert_eq!(
        content.len(),
        total,
        "size after {THREADS}x{CHUNKS} appends of {CHUNK}"
    );
    // Each append landed whole: every 64 KB block is one byte value, each value 20 times.
    let mut counts = [0usize; THREADS];
    for (b, block) in content.chunks(CHUNK).enumerate() {
        let value = block[0];
        let mixed = block.iter().position(|&x| x != value);
        assert!(
            mixed.is_none() && (b'A'..b'A' + THREADS as u8).contains(&value),
            "block {b} (offset {}) is not one whole append: starts with {value:#x}, \
             differs at {mixed:?}",
            b * CHUNK
        );
        counts[usize::from(value - b'A')] += 1;
    }
    assert_eq!(counts, [CHUNKS; THREADS], "appends per thread");
    cluster.wait_content_everywhere(&id, &content, CONVERGE_TIMEOUT, "concurrent appends");
    wait_no_stage_files(&cluster, "no staging files after concurrent appends");
}

#[test]
fn resumable_upload_50mib() {
    const MIB: usize = 1 << 20;
    let seed = "resumable_upload_50mib";
    let cluster = Cluster::builder().storages(2).start();
    let data = random_bytes(seed, 50 * MIB);
    let id = upload_appender(&cluster, &data[..MIB]);
    let remote = remote_of(&id);
    let src = cluster.source_storage(&id);
    let append = |chunk: &[u8]| {
        cluster
            .fdfs_stdin(&["append", &id, "-"], Some(chunk))
            .success();
    };
    for k in 1..21 {
        append(&data[k * MIB..(k + 1) * MIB]);
    }

    // The 22nd MiB is interrupted halfway: announced whole, half sent, connection gone.
    let at = 21 * MIB;
    let mut raw = Raw::connect(cluster.storage_addr(src));
    raw.send_bytes(&append_head(remote, MIB as u64))
        .expect("send APPEND head");
    raw.send_bytes(&data[at..at + MIB / 2])
        .expect("send half the APPEND body");
    drop(raw);
    wait_no_stage_files(&cluster, "staging file of the interrupted append to go");

    // Resume from what the source says it has.
    let size = usize::try_from(cluster.info(Some(src), &id).size).expect("size fits usize");
    assert_eq!(size, at, "size after the interrupted append");
    for chunk in data[size..].chunks(MIB) {
        append(chunk);
    }
    cluster.wait_content_everywhere(&id, &data, CONVERGE_TIMEOUT, "resumed 50 MiB upload");
    assert_eq!(
        cluster.info(Some(src), &id).crc32,
        crc32fast::hash(&data),
        "crc32 of the 50 MiB appender file"
    );
}

/// A peer that was down while an appender file was changed and then regenerated gets the
/// changes replayed from the file under its old name, which the source no longer has: they
/// cannot be sent. At the pushed rename the peer finds its copy is not the size the new,
/// normal name carries, and copies it whole from the source (this once left the peer with a
/// stale file under a name that promises other content, forever).
#[test]
fn changes_made_before_a_regenerate_reach_a_peer_that_was_down() {
    let mut c = Cluster::builder()
        .storages(2)
        .tracker_conf("store_server", "1")
        .start();
    let mut model = random_bytes("regen-base", 20_000);
    let id = upload_appender(&c, &model);
    c.wait_content_everywhere(&id, &model, Duration::from_secs(30), "the upload");
    assert!(c.stop_storage(1), "the peer stops cleanly");
    let more = random_bytes("regen-more", 7_777);
    let path = c.write_file("regen-more", &more);
    c.fdfs(&["append", &id, path.to_str().unwrap()]).success();
    model.extend_from_slice(&more);
    c.fdfs(&["truncate", &id, "15000"]).success();
    model.truncate(15_000);
    c.fdfs(&["append", &id, path.to_str().unwrap()]).success();
    model.extend_from_slice(&more);
    let new = c.fdfs(&["regenerate", &id]).success().stdout_str();
    c.respawn_storage(1);
    c.wait_content_everywhere(
        &new,
        &model,
        Duration::from_secs(60),
        "the regenerated file",
    );
}
