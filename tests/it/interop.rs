//! fdfs beside upstream C FastDFS 6.16.1 (`util::cref`): upstream's client tools against
//! fdfs servers, storages of one kind on the other kind's tracker, mixed groups replicating
//! every kind of change both ways (a truncate while replication lags among them), a new empty
//! server of either kind filled by the other, daemons of one kind started in place on the
//! other's config and directories and back again, and upstream's load generator pooled and
//! unpooled. Every test skips, saying so on stderr, when the reference build is missing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::util::*;

/// Replication between two storages pushes within a couple of heartbeats; C's sync thread
/// retries a failed record every few seconds, so leave room for one retry.
const SYNC_TIMEOUT: Duration = Duration::from_secs(40);

/// Content of `len` bytes that differs per `seed`.
fn data(seed: &str, len: usize) -> Vec<u8> {
    random_bytes(seed, len)
}

/// Uploads `data` straight to storage `i` (UPLOAD_FILE 11 or UPLOAD_APPENDER_FILE 23), so
/// the test decides which storage is the source. Returns "group/remote".
fn upload_at(m: &Mixed, i: usize, data: &[u8], ext: &str, appender: bool) -> String {
    let addr: SocketAddr = m.storage_addr(i).parse().expect("ip:port");
    let body = upload_body(data, ext);
    let cmd = if appender { 23 } else { CMD_UPLOAD_FILE };
    let reply = Raw::connect(addr).request(cmd, &body);
    assert_eq!(
        reply.status,
        0,
        "upload of {} bytes to {:?} storage {i} ({addr}) failed",
        data.len(),
        m.storage_kind(i)
    );
    format!(
        "{}/{}",
        fixed_str(&reply.body[..16]),
        String::from_utf8_lossy(&reply.body[16..])
    )
}

/// Downloads `id` from storage `i` with `fdfs download --storage`: `Ok(bytes)`, or the
/// account of the failed run.
fn download_from(m: &Mixed, i: usize, id: &str) -> Result<Vec<u8>, String> {
    let run = m.fdfs_on(i, &["download", id, "-"]);
    if run.status.is_some_and(|s| s.success()) {
        Ok(run.stdout)
    } else {
        Err(run.describe())
    }
}

/// Metadata of `id` as storage `i` holds it (GET_METADATA 15), or the status.
fn meta_on(m: &Mixed, i: usize, id: &str) -> Result<BTreeMap<String, String>, u8> {
    let addr: SocketAddr = m.storage_addr(i).parse().expect("ip:port");
    let (group, remote) = id.split_once('/').expect("group/remote");
    let mut body = padded(group, 16);
    body.extend_from_slice(remote.as_bytes());
    let reply = Raw::connect(addr).request(CMD_GET_METADATA, &body);
    if reply.status != 0 {
        return Err(reply.status);
    }
    Ok(reply
        .body
        .split(|&b| b == 1)
        .filter(|r| !r.is_empty())
        .map(|r| {
            let mut kv = r.splitn(2, |&b| b == 2);
            let k = String::from_utf8_lossy(kv.next().unwrap_or_default()).into_owned();
            let v = String::from_utf8_lossy(kv.next().unwrap_or_default()).into_owned();
            (k, v)
        })
        .collect())
}

/// Waits until every running storage serves `id` as exactly `expected`.
#[track_caller]
fn wait_content(m: &Mixed, id: &str, expected: &[u8], what: &str) {
    for i in 0..m.storage_count() {
        poll_until(
            &format!(
                "{what}: {id} on {:?} storage {i} ({} bytes)",
                m.storage_kind(i),
                expected.len()
            ),
            SYNC_TIMEOUT,
            || match download_from(m, i, id) {
                Ok(got) if got == expected => Ok(()),
                Ok(got) => Err(format!("has {} bytes, sha1 {}", got.len(), sha1_hex(&got))),
                Err(why) => Err(why),
            },
        );
    }
}

/// Waits until no storage serves `id` any more.
#[track_caller]
fn wait_gone(m: &Mixed, id: &str, what: &str) {
    for i in 0..m.storage_count() {
        poll_until(
            &format!("{what}: {id} gone from {:?} storage {i}", m.storage_kind(i)),
            SYNC_TIMEOUT,
            || match download_from(m, i, id) {
                Ok(got) => Err(format!("still serves {} bytes", got.len())),
                Err(_) => Ok(()),
            },
        );
    }
}

/// Waits until every storage holds `expected` as the metadata of `id`.
#[track_caller]
fn wait_meta(m: &Mixed, id: &str, expected: &BTreeMap<String, String>, what: &str) {
    for i in 0..m.storage_count() {
        poll_until(
            &format!(
                "{what}: metadata of {id} on {:?} storage {i}",
                m.storage_kind(i)
            ),
            SYNC_TIMEOUT,
            || match meta_on(m, i, id) {
                Ok(got) if &got == expected => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }
}

/// Waits until the tracker lists `n` storages of group1, all ACTIVE (what upstream's
/// `fdfs_monitor` prints).
#[track_caller]
fn wait_active(m: &Mixed, n: usize) {
    poll_until(
        &format!("{n} ACTIVE storages in fdfs_monitor"),
        SYNC_TIMEOUT,
        || {
            let run = m.c_tool("fdfs_monitor", &["list"]);
            let out = run.stdout_str();
            let active = out.matches("ACTIVE").count();
            if active == n {
                Ok(())
            } else {
                Err(format!("{active} ACTIVE:\n{out}"))
            }
        },
    );
}

/// Every kind of change made on storage `src` reaches every other storage: uploads from
/// 0 B to MiBs, a slave, metadata, appends, modifies, truncates, a regenerated appender
/// and deletes.
fn changes_replicate_from(m: &Mixed, src: usize) {
    let tag = format!("{:?}{src}", m.storage_kind(src));
    let mut kept = Vec::new();
    for len in [0usize, 1, 4096, 300_000, 3 << 20] {
        let d = data(&format!("{tag}-{len}"), len);
        let id = upload_at(m, src, &d, "bin", false);
        wait_content(m, &id, &d, &format!("upload of {len} B from {tag}"));
        kept.push((id, d));
    }

    // Metadata set through the tracker lands on the source, then everywhere.
    let (id, _) = &kept[2];
    m.fdfs(&["meta", "set", id, "colour=blue", "size=4k"])
        .success();
    wait_meta(
        m,
        id,
        &meta(&[("colour", "blue"), ("size", "4k")]),
        &format!("meta from {tag}"),
    );
    m.fdfs(&["meta", "set", "--merge", id, "size=4096"])
        .success();
    wait_meta(
        m,
        id,
        &meta(&[("colour", "blue"), ("size", "4096")]),
        &format!("merged meta from {tag}"),
    );

    // Appender life: append, modify, truncate (shorter and longer), regenerate.
    let mut content = data(&format!("{tag}-app"), 10_000);
    let app = upload_at(m, src, &content, "log", true);
    wait_content(m, &app, &content, &format!("appender from {tag}"));
    let more = data(&format!("{tag}-more"), 70_000);
    let f = m.write_file(&format!("more-{tag}"), &more);
    m.fdfs(&["append", &app, f.to_str().expect("utf-8")])
        .success();
    content.extend_from_slice(&more);
    wait_content(m, &app, &content, &format!("append from {tag}"));
    let patch = data(&format!("{tag}-patch"), 5_000);
    let f = m.write_file(&format!("patch-{tag}"), &patch);
    m.fdfs(&["modify", &app, "1000", f.to_str().expect("utf-8")])
        .success();
    content[1000..6000].copy_from_slice(&patch);
    wait_content(m, &app, &content, &format!("modify from {tag}"));
    m.fdfs(&["truncate", &app, "7777"]).success();
    content.truncate(7777);
    wait_content(m, &app, &content, &format!("truncate from {tag}"));
    m.fdfs(&["truncate", &app, "0"]).success();
    content.clear();
    wait_content(m, &app, &content, &format!("truncate to 0 from {tag}"));
    let tail = data(&format!("{tag}-tail"), 3_000);
    let f = m.write_file(&format!("tail-{tag}"), &tail);
    m.fdfs(&["append", &app, f.to_str().expect("utf-8")])
        .success();
    content = tail;
    wait_content(
        m,
        &app,
        &content,
        &format!("append after truncate from {tag}"),
    );
    let run = m.fdfs(&["regenerate", &app]).success();
    let regenerated = run.stdout_str();
    assert_ne!(regenerated, app, "regenerate must print a new file ID");
    wait_content(
        m,
        &regenerated,
        &content,
        &format!("regenerated appender from {tag}"),
    );
    wait_gone(
        m,
        &app,
        &format!("old name of a regenerated appender from {tag}"),
    );

    // Deletes.
    for (id, _) in kept.drain(..2) {
        m.fdfs(&["delete", &id]).success();
        wait_gone(m, &id, &format!("delete from {tag}"));
    }
    // What is left still reads everywhere.
    for (id, d) in &kept {
        wait_content(m, id, d, &format!("kept file from {tag}"));
    }
}

/// A truncate made while the peer lags: the peer is stopped while the source appends,
/// truncates and appends again, so when it comes back the records it replays no longer
/// match the file the source now holds. The group must converge and keep replicating.
fn truncate_while_lagging(m: &mut Mixed, src: usize, peer: usize) {
    let tag = format!("lag-{:?}{src}", m.storage_kind(src));
    let mut content = data(&format!("{tag}-a"), 50_000);
    let app = upload_at(m, src, &content, "dat", true);
    wait_content(m, &app, &content, &format!("{tag}: appender"));
    let peer_kind = m.storage_kind(peer);
    assert!(
        m.stop_storage(peer),
        "{peer_kind:?} storage {peer} must stop cleanly"
    );

    let more = data(&format!("{tag}-b"), 40_000);
    let f = m.write_file(&format!("{tag}-b"), &more);
    m.fdfs(&["append", &app, f.to_str().expect("utf-8")])
        .success();
    content.extend_from_slice(&more);
    m.fdfs(&["truncate", &app, "20000"]).success();
    content.truncate(20_000);
    let tail = data(&format!("{tag}-c"), 1_234);
    let f = m.write_file(&format!("{tag}-c"), &tail);
    m.fdfs(&["append", &app, f.to_str().expect("utf-8")])
        .success();
    content.extend_from_slice(&tail);

    m.start_storage(peer, peer_kind);
    wait_content(m, &app, &content, &format!("{tag}: appender after the lag"));
    // Replication did not get stuck on the truncate: a later upload arrives too.
    let after = data(&format!("{tag}-after"), 9_999);
    let id = upload_at(m, src, &after, "txt", false);
    wait_content(
        m,
        &id,
        &after,
        &format!("{tag}: upload after the lagging truncate"),
    );
}

/// A group of `first` (with files) joined by an empty `second`, on a `tracker` tracker.
fn mixed_group(test: &str, tracker: Kind, first: Kind, second: Kind) {
    let Some(refdir) = ref_dir_or_skip(test) else {
        return;
    };
    let mut m = Mixed::new(&refdir, tracker);
    m.add_storage(first);
    wait_active(&m, 1);
    // Files the second storage must copy in full when it joins (full sync of a new server).
    let mut old = Vec::new();
    for len in [0usize, 777, 1 << 20] {
        let d = data(&format!("{test}-old-{len}"), len);
        old.push((upload_at(&m, 0, &d, "jpg", false), d));
    }
    let app = data(&format!("{test}-old-app"), 4321);
    old.push((upload_at(&m, 0, &app, "", true), app));
    m.fdfs(&["meta", "set", &old[1].0, "owner=first"]).success();

    m.add_storage(second);
    wait_active(&m, 2);
    for (id, d) in &old {
        wait_content(&m, id, d, "full sync of the new storage");
    }
    wait_meta(
        &m,
        &old[1].0,
        &meta(&[("owner", "first")]),
        "full sync of metadata",
    );

    changes_replicate_from(&m, 0);
    changes_replicate_from(&m, 1);
    truncate_while_lagging(&mut m, 0, 1);
    truncate_while_lagging(&mut m, 1, 0);
    m.assert_running();
}

#[test]
fn mixed_group_on_a_c_tracker_c_storage_first() {
    mixed_group(
        "mixed_group_on_a_c_tracker_c_storage_first",
        Kind::C,
        Kind::C,
        Kind::Fdfs,
    );
}

#[test]
fn mixed_group_on_an_fdfs_tracker_fdfs_storage_first() {
    mixed_group(
        "mixed_group_on_an_fdfs_tracker_fdfs_storage_first",
        Kind::Fdfs,
        Kind::Fdfs,
        Kind::C,
    );
}

/// Upstream's own client tools against an fdfs tracker and storage.
#[test]
fn upstream_tools_against_fdfs() {
    let Some(refdir) = ref_dir_or_skip("upstream_tools_against_fdfs") else {
        return;
    };
    let m = {
        let mut m = Mixed::new(&refdir, Kind::Fdfs);
        m.add_storage(Kind::Fdfs);
        m
    };
    wait_active(&m, 1);
    let no_error = |run: &Run| {
        let all = format!("{}{}", run.stdout_str(), run.stderr_str());
        assert!(
            !all.contains("fail") && !all.contains("error no") && !all.contains("ERROR"),
            "upstream tool reported an error\n{}",
            run.describe()
        );
    };

    let mon = m.c_tool("fdfs_monitor", &["list"]);
    no_error(&mon);
    let out = mon.stdout_str();
    assert!(
        out.contains("group name = group1") && out.contains(m.storage_ip(0)),
        "{out}"
    );

    for len in [0usize, 5_000, 2 << 20] {
        let d = data(&format!("tools-{len}"), len);
        let f = m.write_file(&format!("in-{len}.bin"), &d);
        let up = m.c_tool("fdfs_upload_file", &[f.to_str().expect("utf-8")]);
        no_error(&up);
        let id = up.stdout_str();
        assert!(id.starts_with("group1/M00/"), "{}", up.describe());
        let out = m.work_dir().join(format!("out-{len}.bin"));
        no_error(&m.c_tool("fdfs_download_file", &[&id, out.to_str().expect("utf-8")]));
        assert_same_bytes(
            "fdfs_download_file",
            &d,
            &std::fs::read(&out).expect("read download"),
        );

        // fdfs_file_info's CRC32 is the one fdfs_crc32 computes over the content.
        let info = m.c_tool("fdfs_file_info", &[&id]);
        no_error(&info);
        let text = info.stdout_str();
        assert!(text.contains(&format!("file size: {len}")), "{text}");
        let crc = m
            .run(&m.c_bin("fdfs_crc32"), &[f.to_str().expect("utf-8")])
            .stdout_str();
        let crc = u32::from_str_radix(&crc, 16)
            .unwrap_or_else(|e| panic!("fdfs_crc32 said {crc:?}: {e}"));
        assert!(
            text.contains(&format!("(0x{crc:08x})")),
            "fdfs_crc32 says {crc:08x}\n{text}"
        );

        no_error(&m.c_tool("fdfs_delete_file", &[&id]));
        assert!(
            download_from(&m, 0, &id).is_err(),
            "{id} still served after fdfs_delete_file"
        );
    }

    // fdfs_test: upload (with a slave), then the other operations on what it printed.
    let d = data("fdfs_test", 12_345);
    let f = m.write_file("t.jpg", &d);
    let run = m.c_tool("fdfs_test", &["upload", f.to_str().expect("utf-8")]);
    no_error(&run);
    let out = run.stdout_str();
    let remote = out
        .lines()
        .find_map(|l| l.strip_prefix("group_name=group1, remote_filename="))
        .unwrap_or_else(|| panic!("fdfs_test printed no file name\n{out}"))
        .trim()
        .to_string();
    assert!(out.contains("file size=12345"), "{out}");
    let run = m.c_tool(
        "fdfs_test",
        &["setmeta", "group1", &remote, "O", "k1=v1,k2=v2"],
    );
    no_error(&run);
    let run = m.c_tool("fdfs_test", &["getmeta", "group1", &remote]);
    no_error(&run);
    let out = run.stdout_str();
    assert!(
        out.contains("k1=v1") && out.contains("k2=v2"),
        "{}",
        run.describe()
    );
    let run = m.c_tool("fdfs_test", &["query_servers", "group1", &remote]);
    no_error(&run);
    assert!(
        run.stdout_str().contains(m.storage_ip(0)),
        "{}",
        run.describe()
    );
    let run = m.c_tool("fdfs_test", &["download", "group1", &remote]);
    no_error(&run);
    let run = m.c_tool("fdfs_test", &["delete", "group1", &remote]);
    no_error(&run);
    assert!(download_from(&m, 0, &format!("group1/{remote}")).is_err());

    // Appender tools: upload, append, then the appender test programs (which append,
    // modify and truncate by file, buffer and callback) and regenerate.
    let a = data("appender", 3_000);
    let b = data("appender-b", 2_000);
    let fa = m.write_file("a.log", &a);
    let fb = m.write_file("b.log", &b);
    let up = m.c_tool("fdfs_upload_appender", &[fa.to_str().expect("utf-8")]);
    no_error(&up);
    let app = up.stdout_str();
    no_error(&m.c_tool("fdfs_append_file", &[&app, fb.to_str().expect("utf-8")]));
    let mut ab = a.clone();
    ab.extend_from_slice(&b);
    assert_same_bytes(
        "appended file",
        &ab,
        &download_from(&m, 0, &app).expect("download"),
    );
    let regen = m.c_tool("fdfs_regenerate_filename", &[&app]);
    no_error(&regen);
    let new_id = regen.stdout_str();
    assert!(
        new_id.starts_with("group1/M00/") && new_id != app,
        "{}",
        regen.describe()
    );
    assert_same_bytes(
        "regenerated file",
        &ab,
        &download_from(&m, 0, &new_id).expect("download"),
    );
    for (tool, mode) in [
        ("fdfs_appender_test", "FILE"),
        ("fdfs_appender_test", "BUFF"),
        ("fdfs_appender_test1", "CALLBACK"),
    ] {
        let run = m.c_tool(tool, &[fa.to_str().expect("utf-8"), mode]);
        no_error(&run);
        let out = run.stdout_str();
        for step in ["append file successfully", "modify file successfully"] {
            assert!(
                out.contains(step),
                "{tool} {mode}: no {step:?}\n{}",
                run.describe()
            );
        }
    }
}

/// An fdfs tracker and storage started in place on a C tracker's and storage's config and
/// directories serve everything C stored; C started again on them serves everything,
/// including what fdfs stored meanwhile.
#[test]
fn fdfs_in_place_of_c_and_back() {
    let Some(refdir) = ref_dir_or_skip("fdfs_in_place_of_c_and_back") else {
        return;
    };
    let mut m = Mixed::new(&refdir, Kind::C);
    m.add_storage(Kind::C);
    wait_active(&m, 1);
    let mut files = Vec::new();
    for len in [0usize, 10_000, 1 << 20] {
        let d = data(&format!("inplace-c-{len}"), len);
        files.push((upload_at(&m, 0, &d, "png", false), d));
    }
    let mut app = data("inplace-app", 5_000);
    let app_id = upload_at(&m, 0, &app, "", true);
    m.fdfs(&["meta", "set", &files[1].0, "by=c"]).success();

    // Swap both daemons for fdfs, on the same configs and directories.
    assert!(m.stop_storage(0), "C storage must stop cleanly");
    assert!(m.stop_tracker(), "C tracker must stop cleanly");
    m.start_tracker(Kind::Fdfs);
    m.start_storage(0, Kind::Fdfs);
    wait_active(&m, 1);
    for (id, d) in &files {
        wait_content(&m, id, d, "C's file read by fdfs in place");
    }
    assert_eq!(meta_on(&m, 0, &files[1].0), Ok(meta(&[("by", "c")])));
    let more = data("inplace-more", 2_222);
    let f = m.write_file("more", &more);
    m.fdfs(&["append", &app_id, f.to_str().expect("utf-8")])
        .success();
    app.extend_from_slice(&more);
    let d = data("inplace-fdfs", 123_456);
    files.push((upload_at(&m, 0, &d, "txt", false), d));

    // And back to C.
    assert!(m.stop_storage(0), "fdfs storage must stop cleanly");
    assert!(m.stop_tracker(), "fdfs tracker must stop cleanly");
    m.start_tracker(Kind::C);
    m.start_storage(0, Kind::C);
    wait_active(&m, 1);
    for (id, d) in &files {
        wait_content(&m, id, d, "file read by C after fdfs ran in place");
    }
    wait_content(&m, &app_id, &app, "appender grown by fdfs, read by C");
    // C keeps working on the tree fdfs wrote.
    let d = data("inplace-c-again", 4_444);
    let id = upload_at(&m, 0, &d, "bin", false);
    wait_content(&m, &id, &d, "C upload after the round trip");
}

/// Upstream's load generator, with and without its connection pool, against fdfs: every
/// operation succeeds.
#[test]
fn fdfs_bench_pooled_and_unpooled() {
    let Some(refdir) = ref_dir_or_skip("fdfs_bench_pooled_and_unpooled") else {
        return;
    };
    let m = {
        let mut m = Mixed::new(&refdir, Kind::Fdfs);
        m.add_storage(Kind::Fdfs);
        m
    };
    wait_active(&m, 1);
    for pool in ["false", "true"] {
        let conf = m.work_dir().join(format!("client-pool-{pool}.conf"));
        let text = std::fs::read_to_string(m.client_conf())
            .expect("read client.conf")
            .replace(
                "use_connection_pool = false",
                &format!("use_connection_pool = {pool}"),
            );
        std::fs::write(&conf, text).expect("write client.conf");
        let conf = conf.to_str().expect("utf-8").to_string();
        let ids = m.work_dir().join(format!("ids-{pool}"));
        let ids = ids.to_str().expect("utf-8").to_string();
        let bench = m.c_bin("fdfs_bench");
        let mut ops = 0;
        for (op, extra) in [
            ("upload", vec!["-w", ids.as_str()]),
            ("download", vec!["-i", ids.as_str()]),
            ("set-meta", vec!["-i", ids.as_str()]),
            ("get-meta", vec!["-i", ids.as_str()]),
            ("delete", vec!["-i", ids.as_str()]),
        ] {
            let mut args = vec![
                "-c",
                conf.as_str(),
                "-o",
                op,
                "-t",
                "4",
                "-d",
                "0",
                "-n",
                "400",
                "-s",
                "4096",
                "-q",
            ];
            args.extend(extra);
            let run = m.run(&bench, &args);
            let out = run.stdout_str();
            let field = |k: &str| {
                out.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("no {k}= in fdfs_bench output\n{}", run.describe()))
            };
            assert_eq!(field("fail"), 0, "pool={pool} {op}\n{}", run.describe());
            assert_eq!(field("ops"), 400, "pool={pool} {op}\n{}", run.describe());
            ops += 1;
        }
        assert_eq!(ops, 5);
    }
}

/// A C tracker and an fdfs tracker in one cluster (as while trackers are replaced one at a
/// time), with a storage of each kind listing both: they agree on one leader, both answer
/// clients, and files uploaded through either replicate to both storages. Then the C tracker
/// is swapped for fdfs in place and everything keeps working.
#[test]
fn trackers_of_both_kinds_in_one_cluster() {
    let Some(refdir) = ref_dir_or_skip("trackers_of_both_kinds_in_one_cluster") else {
        return;
    };
    let mut m = Mixed::with_trackers(&refdir, &[Kind::C, Kind::Fdfs]);
    m.add_storage(Kind::C);
    wait_active(&m, 1);
    m.add_storage(Kind::Fdfs);
    wait_active(&m, 2);
    let one_leader = |m: &Mixed| {
        poll_until("both trackers reachable, one leader", SYNC_TIMEOUT, || {
            let (a, b) = (m.tracker_addr_n(0), m.tracker_addr_n(1));
            let run = m.run(
                std::path::Path::new(FDFS),
                &["monitor", "--json", "--tracker", &a, "--tracker", &b],
            );
            let v: serde_json::Value = serde_json::from_slice(&run.stdout)
                .map_err(|e| format!("{e}\n{}", run.describe()))?;
            let t = v["trackers"].as_array().cloned().unwrap_or_default();
            let reachable = t.iter().filter(|t| t["reachable"] == true).count();
            let leaders = t.iter().filter(|t| t["leader"] == true).count();
            if reachable == 2 && leaders == 1 {
                Ok(())
            } else {
                Err(format!("{v}"))
            }
        })
    };
    one_leader(&m);
    for t in 0..2 {
        let d = data(&format!("two-trackers-{t}"), 33_333);
        let f = m.write_file(&format!("via-{t}"), &d);
        let addr = m.tracker_addr_n(t);
        let id = m
            .run(
                std::path::Path::new(FDFS),
                &["upload", f.to_str().expect("utf-8"), "--tracker", &addr],
            )
            .success()
            .stdout_str();
        wait_content(&m, &id, &d, &format!("upload through tracker {t}"));
    }
    // The C tracker replaced by fdfs in place, on its config and data.
    assert!(m.stop_tracker(), "C tracker must stop cleanly");
    m.start_tracker(Kind::Fdfs);
    one_leader(&m);
    wait_active(&m, 2);
    let d = data("two-trackers-after", 4_444);
    let id = upload_at(&m, 0, &d, "bin", false);
    wait_content(&m, &id, &d, "upload after the tracker swap");
}

/// Dedup on an fdfs storage with a C peer: the C storage is sent `C source` and then one
/// SYNC_CREATE_LINK per file, makes the same links to its copy, and so stores the content
/// once too; the last delete frees it there as well.
#[test]
fn dedup_reaches_a_c_peer_as_links() {
    let Some(refdir) = ref_dir_or_skip("dedup_reaches_a_c_peer_as_links") else {
        return;
    };
    let mut m = Mixed::new(&refdir, Kind::C);
    m.add_storage_with(Kind::Fdfs, &[("check_file_duplicate", "1")]);
    wait_active(&m, 1);
    m.add_storage(Kind::C);
    wait_active(&m, 2);
    let d = data("dedup-to-c", 2 << 20);
    let ids: Vec<String> = (0..5).map(|_| upload_at(&m, 0, &d, "jpg", false)).collect();
    for id in &ids {
        wait_content(&m, id, &d, "a deduplicated upload on the C peer");
    }
    let t = crate::dedup::tree(m.storage_base(1));
    assert_eq!(t.links.len(), 5, "the C peer holds links: {t:?}");
    assert_eq!(t.files.len(), 1, "and the content once: {t:?}");
    for id in &ids[..4] {
        m.fdfs(&["delete", id]).success();
    }
    for id in &ids[..4] {
        wait_gone(&m, id, "a deleted duplicate");
    }
    wait_content(
        &m,
        &ids[4],
        &d,
        "the last duplicate after the others' deletes",
    );
    m.fdfs(&["delete", &ids[4]]).success();
    poll_until("the C peer to free the content", SYNC_TIMEOUT, || {
        let t = crate::dedup::tree(m.storage_base(1));
        if t.links.is_empty() && t.files.is_empty() {
            Ok(())
        } else {
            Err(format!("{t:?}"))
        }
    });
    m.assert_running();
}

/// Repair compares fdfs storages only: a C peer is asked once, answers that it does not know
/// FDFS_TREE_DIGEST, and is left alone (counted, logged), while `fdfs repair` says it skipped
/// it; nothing is copied to or from it, and it keeps serving.
#[test]
fn repair_leaves_a_c_peer_alone() {
    let Some(refdir) = ref_dir_or_skip("repair_leaves_a_c_peer_alone") else {
        return;
    };
    let mut m = Mixed::new(&refdir, Kind::C);
    m.add_storage_with(Kind::Fdfs, &[("repair_min_age", "0")]);
    wait_active(&m, 1);
    m.add_storage(Kind::C);
    wait_active(&m, 2);
    let d = data("repair-c-peer", 70_000);
    let ids: Vec<String> = (0..3).map(|_| upload_at(&m, 0, &d, "bin", false)).collect();
    for id in &ids {
        wait_content(&m, id, &d, "an upload on the C peer");
    }
    let run = m.fdfs(&["repair", "group1", "--timeout", "60"]).success();
    assert!(
        run.stderr_str().contains("no repair command"),
        "the C storage is skipped by the tool\n{}",
        run.describe()
    );
    let v: serde_json::Value =
        serde_json::from_slice(&m.fdfs(&["monitor", "--json"]).success().stdout).unwrap();
    let ours = v["groups"][0]["storages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ip"] == m.storage_ip(0))
        .unwrap()["repair"]
        .clone();
    assert!(ours["peers_skipped"].as_u64() >= Some(1), "{ours}");
    assert_eq!(ours["unrepairable"], 0, "{ours}");
    for id in &ids {
        wait_content(&m, id, &d, "the files after the pass");
    }
    m.assert_running();
}
