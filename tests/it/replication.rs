//! Replication between the storages of one group (SYNC.md): every change a client makes on one
//! storage reaches every other one, a stopped storage catches up when it comes back, a new
//! storage is filled from its sync source while clients keep working, the tracker never sends a
//! download to a storage that lacks the file, and a sync push whose content does not match the
//! CRC32 in its name is refused.
//!
//! Convergence is checked on disk (names and sizes while polling, SHA-1 once they match) and
//! through `fdfs ... --storage IP:PORT`, which talks to one storage without asking the tracker.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;

use crate::util::*;

/// LIST_STORAGE status values (PROTOCOL.md §8).
const INIT: u8 = 0;
const WAIT_SYNC: u8 = 1;
const SYNCING: u8 = 2;
const OFFLINE: u8 = 5;
const ONLINE: u8 = 6;
const ACTIVE: u8 = 7;

/// Exit code of `fdfs` for a file that does not exist (fdfs(1)).
const EXIT_NOT_FOUND: i32 = 3;

/// Deadline for a set of files to reach every storage.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for a storage to change status (heartbeats are 1 s apart).
const STATUS_TIMEOUT: Duration = Duration::from_secs(20);
/// Parallel CLI runs when uploading or checking many files (2 cores, mostly I/O waits).
const WORKERS: usize = 4;

/// A file uploaded by a test: its ID and content.
struct Stored {
    id: String,
    data: Vec<u8>,
}

impl Stored {
    /// Remote name (`M00/HH/HH/name`), as listed by [`Cluster::storage_listing`].
    fn remote(&self) -> &str {
        remote_of(&self.id)
    }
}

/// Remote name of a file ID of group1.
fn remote_of(id: &str) -> &str {
    id.strip_prefix(&format!("{GROUP}/"))
        .unwrap_or_else(|| panic!("file ID {id:?} is not in {GROUP}"))
}

/// Runs `f(k)` for `k in 0..n` on [`WORKERS`] threads and returns the results in order.
fn parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, T)> = thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS.min(n.max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= n {
                            return mine;
                        }
                        mine.push((k, f(k)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    out.sort_by_key(|(k, _)| *k);
    out.into_iter().map(|(_, v)| v).collect()
}

/// Uploads one file per size through the tracker (content seeded by `seed` and the index).
fn upload_all(cluster: &Cluster, seed: &str, sizes: &[usize]) -> Vec<Stored> {
    parallel(sizes.len(), |k| {
        let data = random_bytes(&format!("{seed}-{k}"), sizes[k]);
        let id = cluster.upload(&data, &[]);
        Stored { id, data }
    })
}

/// `n` sizes below `max`, deterministic per seed; the first two are 0 and 1 byte.
fn sizes(seed: &str, n: usize, max: usize) -> Vec<usize> {
    let noise = random_bytes(seed, 8 * n);
    noise
        .chunks(8)
        .enumerate()
        .map(|(k, c)| match k {
            0 => 0,
            1 => 1,
            _ => (u64::from_le_bytes(c.try_into().expect("8-byte chunk")) % max as u64) as usize,
        })
        .collect()
}

/// What every storage must hold for `files` (plus extra remote name -> content entries).
fn expected_of<'a>(files: impl IntoIterator<Item = &'a Stored>) -> BTreeMap<String, (u64, String)> {
    files
        .into_iter()
        .map(|f| {
            (
                f.remote().to_string(),
                (f.data.len() as u64, sha1_hex(&f.data)),
            )
        })
        .collect()
}

/// Describes how `got` (name -> size) differs from `want`, a few names of each kind.
fn listing_diff(got: &BTreeMap<String, u64>, want: &BTreeMap<String, (u64, String)>) -> String {
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let wrong: Vec<String> = want
        .iter()
        .filter_map(|(k, (size, _))| {
            let g = got.get(k)?;
            (g != size).then(|| format!("{k} ({g} bytes, want {size})"))
        })
        .collect();
    format!(
        "{} missing {:?}, {} unexpected {:?}, {} of wrong size {:?}",
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
        wrong.len(),
        &wrong[..wrong.len().min(5)],
    )
}

/// Polls until each of `storages` holds exactly `want` (names and sizes), then checks the
/// SHA-1 of every file. Panics with the differences of each lagging storage after `timeout`.
#[track_caller]
fn wait_converged(
    cluster: &mut Cluster,
    storages: &[usize],
    want: &BTreeMap<String, (u64, String)>,
    timeout: Duration,
    what: &str,
) {
    let start = Instant::now();
    loop {
        let lagging: Vec<String> = storages
            .iter()
            .filter_map(|&i| {
                let got = cluster.storage_listing(i);
                let same = got.len() == want.len()
                    && want.iter().all(|(k, (size, _))| got.get(k) == Some(size));
                (!same).then(|| {
                    format!(
                        "storage {} ({}): {}",
                        i + 1,
                        cluster.storage_ip(i),
                        listing_diff(&got, want)
                    )
                })
            })
            .collect();
        if lagging.is_empty() {
            break;
        }
        cluster.assert_running();
        assert!(
            start.elapsed() < timeout,
            "{what}: storages did not converge within {timeout:?}:\n{}",
            lagging.join("\n")
        );
        thread::sleep(Duration::from_millis(200));
    }
    for &i in storages {
        let got = cluster.storage_files(i);
        for (name, (_, sha)) in want {
            assert_eq!(
                got.get(name),
                Some(sha),
                "{what}: content of {name} on storage {} ({})",
                i + 1,
                cluster.storage_ip(i)
            );
        }
    }
    eprintln!(
        "{what}: {} files on storages {:?} after {:?}",
        want.len(),
        storages.iter().map(|i| i + 1).collect::<Vec<_>>(),
        start.elapsed()
    );
}

/// Downloads every file directly from storage `i` (`fdfs download ID - --storage`) and
/// compares the bytes.
#[track_caller]
fn assert_downloadable_from(cluster: &Cluster, i: usize, files: &[&Stored]) {
    parallel(files.len(), |k| {
        let f = files[k];
        let got = cluster
            .fdfs_on(i, &["download", &f.id, "-"])
            .success()
            .stdout;
        assert_same_bytes(
            &format!("{} downloaded from storage {}", f.id, i + 1),
            &f.data,
            &got,
        );
    });
}

/// `fdfs info ID --storage` on storage `i` fails with exit code 3 (ENOENT) for every ID.
#[track_caller]
fn assert_absent_from(cluster: &Cluster, i: usize, ids: &[&str]) {
    parallel(ids.len(), |k| {
        let run = cluster.fdfs_on(i, &["info", ids[k]]);
        assert_eq!(
            run.status.and_then(|s| s.code()),
            Some(EXIT_NOT_FOUND),
            "{} must be gone from storage {}\n{}",
            ids[k],
            i + 1,
            run.describe()
        );
    });
}

/// Uploads through the tracker and immediately downloads through the tracker: the tracker must
/// route the download to a storage that already has the file.
#[track_caller]
fn upload_then_download(cluster: &Cluster, seed: &str, size: usize) -> Stored {
    let data = random_bytes(seed, size);
    let id = cluster.upload(&data, &[]);
    assert_same_bytes(
        &format!("{id} ({seed}) downloaded right after its upload"),
        &data,
        &cluster.download(&id),
    );
    Stored { id, data }
}

/// Content of a `-m` file for `pairs` (LAYOUT.md §2.3: `name 0x02 value` joined by 0x01;
/// the pairs must be given sorted by name).
fn meta_file(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}\u{2}{v}"))
        .collect::<Vec<_>>()
        .join("\u{1}")
        .into_bytes()
}

#[test]
fn uploads_reach_every_storage() {
    let mut cluster = Cluster::builder().storages(3).start();
    let mut sizes = sizes("uploads_reach_every_storage", 200, 300_000);
    sizes[2] = 2_000_003;
    sizes[3] = 2 << 20;
    let files = upload_all(&cluster, "uploads_reach_every_storage", &sizes);
    wait_converged(
        &mut cluster,
        &[0, 1, 2],
        &expected_of(&files),
        CONVERGE_TIMEOUT,
        "200 uploads",
    );
    let all: Vec<&Stored> = files.iter().collect();
    for i in 0..3 {
        assert_downloadable_from(&cluster, i, &all);
    }

    // Delete 20 (among them the empty and the 2 MB files), set metadata on 10 others.
    let (deleted, kept) = files.split_at(20);
    parallel(deleted.len(), |k| {
        cluster.fdfs(&["delete", &deleted[k].id]).success();
    });
    let author = ("author", "replication test");
    let with_meta = &kept[..10];
    parallel(with_meta.len(), |k| {
        let pair_args = [format!("{}={}", author.0, author.1), format!("n={k}")];
        cluster
            .fdfs(&[
                "meta",
                "set",
                &with_meta[k].id,
                &pair_args[0],
                &pair_args[1],
            ])
            .success();
    });
    let mut want = expected_of(kept);
    for (k, f) in with_meta.iter().enumerate() {
        let n = k.to_string();
        let content = meta_file(&[author, ("n", &n)]);
        want.insert(
            format!("{}-m", f.remote()),
            (content.len() as u64, sha1_hex(&content)),
        );
    }
    wait_converged(
        &mut cluster,
        &[0, 1, 2],
        &want,
        CONVERGE_TIMEOUT,
        "20 deletes and 10 metadata sets",
    );
    let gone: Vec<&str> = deleted.iter().map(|f| f.id.as_str()).collect();
    for i in 0..3 {
        assert_absent_from(&cluster, i, &gone);
    }
    // Metadata through the tracker, wherever it routes.
    let got = parse_meta(
        &cluster
            .fdfs(&["meta", "get", &with_meta[3].id])
            .success()
            .stdout_str(),
    );
    assert_eq!(got, meta(&[author, ("n", "3")]));
}

#[test]
fn stopped_storage_catches_up() {
    let mut cluster = Cluster::builder().storages(3).start();
    let seed = "stopped_storage_catches_up";
    let old = upload_all(&cluster, seed, &sizes(seed, 50, 100_000));
    wait_converged(
        &mut cluster,
        &[0, 1, 2],
        &expected_of(&old),
        CONVERGE_TIMEOUT,
        "50 uploads",
    );

    assert!(
        cluster.stop_storage(2),
        "storage 3 must exit cleanly on SIGTERM"
    );
    cluster.wait_storage_status(2, OFFLINE, STATUS_TIMEOUT);
    let new = upload_all(
        &cluster,
        &format!("{seed}-new"),
        &sizes(&format!("{seed}-new"), 100, 100_000),
    );
    let (deleted, kept) = old.split_at(20);
    parallel(deleted.len(), |k| {
        cluster.fdfs(&["delete", &deleted[k].id]).success();
    });
    let mut want = expected_of(kept.iter().chain(&new));
    wait_converged(
        &mut cluster,
        &[0, 1],
        &want,
        CONVERGE_TIMEOUT,
        "changes while storage 3 is down",
    );

    let restarted = Instant::now();
    cluster.restart_storage(2);
    // While storage 3 catches up, the tracker must not send it downloads of files it lacks.
    parallel(new.len(), |k| {
        assert_same_bytes(
            &format!("{} downloaded while storage 3 catches up", new[k].id),
            &new[k].data,
            &cluster.download(&new[k].id),
        );
    });
    let during: Vec<Stored> = (0..10)
        .map(|k| upload_then_download(&cluster, &format!("{seed}-during-{k}"), 3_000 * k))
        .collect();
    cluster.wait_storage_status(2, ACTIVE, STATUS_TIMEOUT);
    eprintln!(
        "storage 3 ACTIVE {:?} after its restart",
        restarted.elapsed()
    );
    want.extend(expected_of(&during));
    wait_converged(
        &mut cluster,
        &[0, 1, 2],
        &want,
        CONVERGE_TIMEOUT,
        "storage 3 caught up",
    );
    assert_downloadable_from(&cluster, 2, &new.iter().collect::<Vec<_>>());
    let gone: Vec<&str> = deleted.iter().map(|f| f.id.as_str()).collect();
    assert_absent_from(&cluster, 2, &gone);
    cluster.assert_serves(seed);
}

/// Starts a storage in a group that already holds `initial`, keeps uploading and downloading
/// `during` files through the tracker meanwhile, and returns how long the newcomer took to
/// become ACTIVE. Checks that it holds every initial file once ACTIVE, and every file in the end.
fn fill_new_storage(
    cluster: &mut Cluster,
    seed: &str,
    initial: &[Stored],
    during: usize,
) -> Duration {
    let start = Instant::now();
    let new = cluster.add_storage();
    let uploads_done = AtomicUsize::new(0);
    let (statuses, fill, done_by_then, at_active, more) = thread::scope(|s| {
        let c: &Cluster = cluster;
        let uploader = s.spawn(|| {
            (0..during)
                .map(|k| {
                    let f = upload_then_download(c, &format!("{seed}-during-{k}"), 1000 + 977 * k);
                    uploads_done.fetch_add(1, Ordering::Relaxed);
                    f
                })
                .collect::<Vec<_>>()
        });
        // Every status seen, in order (short-lived ones may be missed between two polls).
        let mut statuses: Vec<Option<u8>> = Vec::new();
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let now = c.storage_status(new);
            if statuses.last() != Some(&now) {
                statuses.push(now);
            }
            if now == Some(ACTIVE) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "new storage not ACTIVE within {CONVERGE_TIMEOUT:?}; statuses seen {statuses:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        let fill = start.elapsed();
        let done_by_then = uploads_done.load(Ordering::Relaxed);
        // Caught up means the source pushed everything it had (SYNC.md §4 step 6).
        let at_active = c.storage_listing(new);
        let more = uploader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (statuses, fill, done_by_then, at_active, more)
    });
    eprintln!(
        "new storage ACTIVE after {fill:?} ({} initial files, {} of {during} concurrent \
         uploads done by then); statuses seen: {statuses:?}",
        initial.len(),
        done_by_then,
    );
    let missing: Vec<&str> = initial
        .iter()
        .map(Stored::remote)
        .filter(|r| !at_active.contains_key(*r))
        .collect();
    assert!(
        missing.is_empty(),
        "new storage became ACTIVE without {} of the {} files its source had, e.g. {:?}",
        missing.len(),
        initial.len(),
        &missing[..missing.len().min(5)]
    );
    // A newcomer only moves forward: INIT -> WAIT_SYNC -> SYNCING -> OFFLINE -> (ONLINE) ->
    // ACTIVE (PROTOCOL.md §8); in particular it is not ACTIVE before its source is done.
    let order = [INIT, WAIT_SYNC, SYNCING, OFFLINE, ONLINE, ACTIVE];
    let ranks: Vec<Option<usize>> = statuses
        .iter()
        .flatten()
        .map(|s| order.iter().position(|o| o == s))
        .collect();
    assert!(
        ranks.iter().all(Option::is_some) && ranks.windows(2).all(|w| w[0] < w[1]),
        "status sequence of the new storage {statuses:?} must follow {order:?}"
    );
    let all = initial.iter().chain(&more);
    let everyone: Vec<usize> = (0..cluster.storage_count()).collect();
    wait_converged(
        cluster,
        &everyone,
        &expected_of(all),
        CONVERGE_TIMEOUT,
        "new storage filled",
    );
    fill
}

#[test]
fn new_storage_is_filled_while_uploads_continue() {
    let mut cluster = Cluster::builder().storages(2).start();
    let seed = "new_storage_is_filled";
    let initial = upload_all(&cluster, seed, &sizes(seed, 150, 200_000));
    wait_converged(
        &mut cluster,
        &[0, 1],
        &expected_of(&initial),
        CONVERGE_TIMEOUT,
        "150 uploads",
    );
    let fill = fill_new_storage(&mut cluster, seed, &initial, 50);
    eprintln!("new_storage_is_filled_while_uploads_continue: fill took {fill:?}");
    assert_downloadable_from(&cluster, 2, &initial.iter().take(20).collect::<Vec<_>>());
    cluster.assert_serves(seed);
}

#[test]
fn download_right_after_upload_always_succeeds() {
    let mut cluster = Cluster::builder()
        .storages(3)
        .tracker_conf("check_active_interval", "2")
        .start();
    let seed = "download_right_after_upload";
    // A stopped storage keeps its tracker connection but stops beating: until the tracker
    // marks it OFFLINE, uploads may still be sent to it (and would hang).
    cluster.signal(2, Signal::SIGSTOP);
    cluster.wait_storage_status(1, OFFLINE, STATUS_TIMEOUT);
    let mut files: Vec<Stored> = (0..100)
        .map(|k| upload_then_download(&cluster, &format!("{seed}-{k}"), 10_000 + 1_013 * k))
        .collect();
    // Right after SIGCONT storage 2 comes back with none of those files.
    cluster.signal(2, Signal::SIGCONT);
    files.extend(
        (100..120).map(|k| upload_then_download(&cluster, &format!("{seed}-{k}"), 5_000 + 131 * k)),
    );
    cluster.wait_storage_status(1, ACTIVE, STATUS_TIMEOUT);
    wait_converged(
        &mut cluster,
        &[0, 1, 2],
        &expected_of(&files),
        CONVERGE_TIMEOUT,
        "120 uploads",
    );
}

/// Body of SYNC_CREATE_FILE (PROTOCOL.md §11.2).
fn sync_create_body(name: &str, ts: u32, content: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u64).to_be_bytes());
    body.extend_from_slice(&(content.len() as u64).to_be_bytes());
    body.extend_from_slice(&ts.to_be_bytes());
    body.extend_from_slice(&padded(GROUP, 16));
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(content);
    body
}

/// Connects to storage 0 as peer 127.0.0.9 and pushes one SYNC_CREATE_FILE; returns the status.
fn push_create(cluster: &Cluster, name: &str, ts: u32, content: &[u8]) -> u8 {
    let mut raw = Raw::connect(cluster.storage_addr(0));
    let r = raw.request(CMD_REPORT_SERVER_ID, &padded("127.0.0.9", 16));
    assert_eq!(r.status, 0, "REPORT_SERVER_ID 127.0.0.9 refused: {r:?}");
    raw.request(CMD_SYNC_CREATE_FILE, &sync_create_body(name, ts, content))
        .status
}

#[test]
fn sync_with_bad_crc_is_refused() {
    let cluster = Cluster::start();
    let good = random_bytes("sync_with_bad_crc/A", 5_000);
    let mut bad = good.clone();
    bad[2_500] ^= 0x5a;
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as u32;
    let name = normal_remote_name([127, 0, 0, 9], ts, 0x4242, &good, (0, 0), "123.txt");
    let data_dir = cluster.store_path(0, 0).join("data");
    let path = data_dir.join(name.strip_prefix("M00/").expect("store path 0"));

    let status = push_create(&cluster, &name, ts, &bad);
    assert_ne!(
        status, 0,
        "content whose CRC32 differs from the name's must be refused"
    );
    assert!(!path.exists(), "refused push left {}", path.display());
    let temps: Vec<String> = fs::read_dir(&data_dir)
        .expect("read data dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "refused push left temp files {temps:?}");

    assert_eq!(
        push_create(&cluster, &name, ts, &good),
        0,
        "matching content accepted"
    );
    let stored = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_same_bytes("pushed file on disk", &good, &stored);
    let mtime = fs::metadata(&path).expect("stat pushed file").mtime();
    assert_eq!(
        mtime,
        i64::from(ts),
        "mtime of a pushed file is the pushed timestamp"
    );
    cluster.wait_binlog_line(0, &format!("{ts} c {name}"));
    let info = cluster
        .fdfs_on(0, &["info", &format!("{GROUP}/{name}")])
        .success();
    assert!(
        info.stdout_str().contains("127.0.0.9"),
        "source IP in the info:\n{}",
        info.describe()
    );
}

/// Fill time of a new storage with 1000 files of 10 KB (run by hand:
/// `cargo test --test it fill_time_1000_files -- --ignored --nocapture`).
#[test]
#[ignore = "timing figure, slow"]
fn fill_time_1000_files() {
    let mut cluster = Cluster::builder().storages(2).start();
    let seed = "fill_time_1000_files";
    let initial = upload_all(&cluster, seed, &vec![10_240; 1000]);
    wait_converged(
        &mut cluster,
        &[0, 1],
        &expected_of(&initial),
        Duration::from_secs(120),
        "1000 uploads",
    );
    let fill = fill_new_storage(&mut cluster, seed, &initial, 0);
    eprintln!("fill_time_1000_files: new storage ACTIVE with all 1000 files after {fill:?}");
}
