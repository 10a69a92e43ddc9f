//! Same content stored once (`check_file_duplicate = 1`): every upload gets its own file ID,
//! the content is kept once on the source and on its peers, deletes remove one reference and
//! the last one frees the space, and a kill -9 in the middle of uploads and deletes leaves the
//! index, the links and the files in agreement.
//!
//! What is on disk is read directly: regular files (the contents) and symbolic links (the
//! files clients hold) under `data/HH/HH/`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::*;

const CONVERGE: Duration = Duration::from_secs(60);

/// What a store path holds.
#[derive(Debug, Default)]
pub struct Tree {
    /// Regular files (metadata `-m` files included): remote name -> size.
    pub files: BTreeMap<String, u64>,
    /// Symbolic links: remote name -> the remote name they point at.
    pub links: BTreeMap<String, String>,
    /// Disk space of the regular files (as `du` counts it).
    pub bytes: u64,
}

fn hex_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .filter(|(n, _)| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What store path `store` (with one store path: `M00`) holds.
pub fn tree(store: &Path) -> Tree {
    let data = store.join("data");
    let mut t = Tree::default();
    for (high, hd) in hex_dirs(&data) {
        for (low, ld) in hex_dirs(&hd) {
            let Ok(rd) = fs::read_dir(&ld) else { continue };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let remote = format!("M00/{high}/{low}/{name}");
                let Ok(m) = fs::symlink_metadata(e.path()) else {
                    continue;
                };
                if m.file_type().is_symlink() {
                    let target = fs::read_link(e.path()).unwrap_or_default();
                    let rel = target.strip_prefix(&data).unwrap_or(&target);
                    t.links
                        .insert(remote, format!("M00/{}", rel.to_string_lossy()));
                } else if m.is_file() {
                    t.files.insert(remote, m.len());
                    t.bytes += m.blocks() * 512;
                }
            }
        }
    }
    t
}

/// Remote name of a group1 file ID.
fn remote(id: &str) -> &str {
    id.strip_prefix("group1/").expect("a group1 file ID")
}

/// The storage's dedup figures, from `fdfs monitor --json`.
fn dedup_figures(c: &Cluster, i: usize) -> serde_json::Value {
    c.monitor_of(i)["dedup"].clone()
}

/// Every link points at a regular file, every content (but the `plain` files: appenders)
/// has a link, and the storage's own figures count exactly those.
fn assert_consistent(c: &Cluster, i: usize, what: &str) {
    assert_consistent_but(c, i, what, &[]);
}

fn assert_consistent_but(c: &Cluster, i: usize, what: &str, plain: &[&str]) {
    let t = tree(c.store_path(i, 0));
    for (l, target) in &t.links {
        assert!(
            t.files.contains_key(target),
            "{what}: link {l} points at {target}, which is not stored\n{t:?}"
        );
    }
    let sources: std::collections::BTreeSet<&String> = t.links.values().collect();
    let d = dedup_figures(c, i);
    assert_eq!(d["enabled"], true, "{what}: {d}");
    assert_eq!(
        d["files"],
        t.links.len(),
        "{what}: links on disk vs index\n{d}\n{t:?}"
    );
    assert_eq!(
        d["contents"],
        sources.len(),
        "{what}: contents on disk vs index\n{d}\n{t:?}"
    );
    // No content left behind without a file pointing at it.
    let content = |f: &&String| !f.ends_with("-m") && !plain.contains(&f.as_str());
    for f in t.files.keys().filter(content) {
        assert!(
            sources.contains(f),
            "{what}: {f} is stored but no file points at it\n{t:?}"
        );
    }
}

#[test]
fn same_content_is_stored_once_on_every_replica() {
    // Every upload to the first storage (store_server = 1: the first by IP): the source;
    // the other is the peer.
    let mut c = Cluster::builder()
        .storages(2)
        .tracker_conf("store_server", "1")
        .storage_conf("check_file_duplicate", "1")
        .start();
    let before: Vec<u64> = (0..2).map(|i| tree(c.store_path(i, 0)).bytes).collect();
    let data = random_bytes("dedup-10MiB", 10 << 20);
    let exts = ["jpg", "png", "txt", "bin", "mp4"];
    let mut ids = Vec::new();
    for k in 0..100 {
        let path = c.write_file(&format!("same-{k}.{}", exts[k % exts.len()]), &data);
        let id = c
            .fdfs(&["upload", path.to_str().unwrap()])
            .success()
            .stdout_str();
        ids.push(id);
    }
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 100, "every upload gets its own file ID");

    // Both storages: 100 links to one content of 10 MiB.
    for (i, &before) in before.iter().enumerate() {
        let t = poll_until(
            &format!("storage {i} to hold the 100 links"),
            CONVERGE,
            || {
                let t = tree(c.store_path(i, 0));
                let linked = ids
                    .iter()
                    .filter(|id| t.links.contains_key(remote(id)))
                    .count();
                if linked == 100 {
                    Ok(t)
                } else {
                    Err(format!("{linked} of 100 links"))
                }
            },
        );
        let sources: std::collections::BTreeSet<&String> = t.links.values().collect();
        assert_eq!(sources.len(), 1, "storage {i}: one content\n{t:?}");
        let grew = t.bytes.saturating_sub(before);
        assert!(
            grew < 12 << 20,
            "storage {i} grew by {grew} bytes for 100 uploads of 10 MiB\n{t:?}"
        );
        assert_consistent(&c, i, &format!("storage {i} after the uploads"));
    }
    for (k, id) in ids.iter().enumerate() {
        let got = if k % 10 == 0 {
            // From the peer too.
            let peer = c.storage_addr(1).to_string();
            c.fdfs(&["download", id, "-", "--storage", &peer])
                .success()
                .stdout
        } else {
            c.download(id)
        };
        assert_same_bytes(&format!("download of {id}"), &data, &got);
    }
    let info = c.fdfs(&["info", &ids[0]]).success().stdout_str();
    assert!(
        info.contains("content: shared with 99 other files"),
        "{info}"
    );

    for id in &ids[..99] {
        c.fdfs(&["delete", id]).success();
    }
    let last = &ids[99];
    for i in 0..2 {
        poll_until(&format!("storage {i} to drop 99 links"), CONVERGE, || {
            let t = tree(c.store_path(i, 0));
            match t.links.len() {
                1 => Ok(()),
                n => Err(format!("{n} links")),
            }
        });
        assert_consistent(&c, i, &format!("storage {i} after 99 deletes"));
    }
    assert_same_bytes("the last file", &data, &c.download(last));
    let info = c.fdfs(&["info", last]).success().stdout_str();
    assert!(
        info.contains("content: deduplicated, not shared yet"),
        "{info}"
    );

    c.fdfs(&["delete", last]).success();
    for (i, &before) in before.iter().enumerate() {
        poll_until(
            &format!("storage {i} to free the content"),
            CONVERGE,
            || {
                let t = tree(c.store_path(i, 0));
                if t.links.is_empty() && t.files.is_empty() && t.bytes <= before + (64 << 10) {
                    Ok(())
                } else {
                    Err(format!("{t:?}"))
                }
            },
        );
    }
    c.assert_running();
}

#[test]
fn appenders_are_never_deduplicated_and_slaves_are() {
    let c = Cluster::builder()
        .storage_conf("check_file_duplicate", "1")
        .start();
    let data = random_bytes("dedup-appender", 5000);
    let path = c.write_file("a.log", &data);
    let p = path.to_str().unwrap();
    let a1 = c.fdfs(&["upload", p, "--appender"]).success().stdout_str();
    let a2 = c.fdfs(&["upload", p, "--appender"]).success().stdout_str();
    let t = tree(c.store_path(0, 0));
    assert!(t.files.contains_key(remote(&a1)) && t.files.contains_key(remote(&a2)));
    assert!(t.links.is_empty(), "appenders stay plain files: {t:?}");
    c.fdfs(&["append", &a1, p]).success();
    assert_eq!(c.download(&a2), data, "the other appender did not change");

    let master = c.upload(&data, &[]);
    let slave = c
        .fdfs(&["upload", p, "--master", &master, "--prefix", "_s"])
        .success()
        .stdout_str();
    let t = tree(c.store_path(0, 0));
    assert_eq!(
        t.links.get(remote(&slave)),
        t.links.get(remote(&master)),
        "the slave shares its master's content: {t:?}"
    );
    assert_eq!(c.download(&slave), data);
    c.fdfs(&["delete", &master]).success();
    assert_eq!(
        c.download(&slave),
        data,
        "the slave outlives its master's delete"
    );
    assert_consistent_but(
        &c,
        0,
        "after the master's delete",
        &[remote(&a1), remote(&a2)],
    );
}

#[test]
fn kill_minus_9_leaves_index_links_and_files_in_agreement() {
    let mut c = Cluster::builder()
        .storage_conf("check_file_duplicate", "1")
        .start();
    // A few contents, small and over the one-chunk limit, uploaded again and again.
    let contents: Vec<Vec<u8>> = [1000, 70_000, 300_000, 1_100_000]
        .iter()
        .enumerate()
        .map(|(k, &n)| random_bytes(&format!("crash-{k}"), n))
        .collect();
    let paths: Vec<String> = contents
        .iter()
        .enumerate()
        .map(|(k, d)| {
            c.write_file(&format!("crash-{k}.dat"), d)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // Acknowledged files not (acknowledged as) deleted: file ID -> content index.
    let live: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    for round in 0..3 {
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let load = s.spawn(|| {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) && n < 400 {
                    n += 1;
                    let k = (n * 7 + round) % contents.len();
                    let delete = n.is_multiple_of(3);
                    if delete {
                        let victim = live.lock().unwrap().keys().next().cloned();
                        if let Some(id) = victim {
                            // Gone from the books first: a delete cut by the crash may
                            // or may not have happened.
                            live.lock().unwrap().remove(&id);
                            let _ = c.fdfs(&["delete", &id]);
                        }
                    } else {
                        let run = c.fdfs(&["upload", &paths[k]]);
                        if run.status.is_some_and(|s| s.success()) {
                            live.lock().unwrap().insert(run.stdout_str(), k);
                        }
                    }
                }
            });
            // Let the stream run a little, a different time each round.
            let t0 = Instant::now();
            let wait = Duration::from_millis(300 + 400 * round as u64);
            while t0.elapsed() < wait && !load.is_finished() {
                thread::sleep(Duration::from_millis(20));
            }
            c.signal(1, nix::sys::signal::Signal::SIGKILL);
            stop.store(true, Ordering::Relaxed);
            load.join().unwrap();
        });
        c.crash_and_restart_storage(0);
        c.wait_ready();
        let what = format!("after crash {round}");
        assert_consistent(&c, 0, &what);
        for (id, &k) in live.lock().unwrap().iter() {
            assert_same_bytes(&format!("{what}: {id}"), &contents[k], &c.download(id));
        }
    }
    // Everything still goes away: the acknowledged files, and those whose upload was
    // cut by a crash after the link was made or whose delete was cut before it was.
    let ids: Vec<String> = live.lock().unwrap().keys().cloned().collect();
    for id in &ids {
        c.fdfs(&["delete", id]).success();
    }
    for l in tree(c.store_path(0, 0)).links.keys() {
        c.fdfs(&["delete", &format!("group1/{l}")]).success();
    }
    let t = tree(c.store_path(0, 0));
    assert!(t.links.is_empty() && t.files.is_empty(), "{t:?}");
    assert_consistent(&c, 0, "after deleting everything");
}
