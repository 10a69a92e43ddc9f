//! Unit tests of the dedup index (`index.rs`): counts across reopenings,
//! intents a crash cut short, rebuilds and recounts from the data tree.
use super::*;

struct T {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    paths: Vec<StorePath>,
}

fn setup() -> T {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let sp = StorePath::new(0, dir.join("store"));
    sp.init(2).unwrap();
    T {
        paths: vec![sp],
        dir,
        _tmp: tmp,
    }
}

fn name(i: u32) -> String {
    format!("M00/00/01/f{i:08}")
}

fn put(t: &T, remote: &str, content: &[u8]) {
    fs::write(Names { paths: &t.paths }.path_of(remote).unwrap(), content).unwrap();
}

fn link(t: &T, src: &str, l: &str) -> io::Result<()> {
    let n = Names { paths: &t.paths };
    std::os::unix::fs::symlink(n.path_of(src).unwrap(), n.path_of(l).unwrap())
}

fn sig_of(t: &T, remote: &str) -> Sig {
    content_sig(&Names { paths: &t.paths }.path_of(remote).unwrap()).unwrap()
}

fn upload(d: &Dedup, t: &T, content: &[u8], src: &str, l: &str) -> String {
    let tmp = t.dir.join("upload.tmp");
    fs::write(&tmp, content).unwrap();
    let sig = content_sig(&tmp).unwrap();
    let mut g = d.lock();
    let src = match g.source(&sig) {
        Some(s) => s.to_string(),
        None => {
            let to = d.path_of(src).unwrap();
            g.add_source(sig, src, || fs::rename(&tmp, &to)).unwrap();
            src.to_string()
        }
    };
    g.add_link(&src, l, || link(t, &src, l)).unwrap();
    src
}

fn delete(d: &Dedup, l: &str) {
    let p = d.path_of(l).unwrap();
    let src = d.source_of_link(&p).unwrap();
    let mut g = d.lock();
    let left = g
        .remove_link(&src, l, || fs::remove_file(&p).map(|_| true))
        .unwrap();
    if left == Some(0) {
        let sp = d.path_of(&src).unwrap();
        assert!(
            g.drop_source(&src, || fs::remove_file(&sp))
                .unwrap()
                .is_some()
        );
    }
}

#[test]
fn same_content_is_kept_once_and_goes_with_its_last_link() {
    let t = setup();
    let (d, rec) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert!(rec.rebuilt.is_none());
    let src = upload(&d, &t, b"hello", &name(1), &name(2));
    assert_eq!(upload(&d, &t, b"hello", &name(3), &name(4)), src);
    upload(&d, &t, b"other", &name(5), &name(6));
    let s = d.stats();
    assert_eq!(
        (s.contents, s.links, s.shared_files, s.saved_bytes),
        (2, 3, 1, 5)
    );
    assert_eq!(fs::read(d.path_of(&name(4)).unwrap()).unwrap(), b"hello");
    delete(&d, &name(2));
    assert!(d.path_of(&src).unwrap().exists());
    assert_eq!(d.lock().refs(&src), Some(1));
    delete(&d, &name(4));
    assert!(!d.path_of(&src).unwrap().exists());
    assert_eq!(d.lock().refs(&src), None);
    assert_eq!(d.stats().contents, 1);
}

#[test]
fn a_reopened_index_has_the_same_counts() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload(&d, &t, b"abc", &name(1), &name(2));
    upload(&d, &t, b"abc", &name(3), &name(4));
    let before = d.stats();
    drop(d);
    // Nothing compacted at drop: this is the crash case, replayed from the log.
    let (d, rec) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert!(rec.rebuilt.is_none() && rec.removed_sources.is_empty());
    assert_eq!(d.stats(), before);
    assert_eq!(d.lock().refs(&src), Some(2));
    assert_eq!(d.lock().source(&sig_of(&t, &src)), Some(src.as_str()));
}

#[test]
fn intents_not_carried_out_are_not_counted() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload(&d, &t, b"abc", &name(1), &name(2));
    {
        let mut g = d.lock();
        // A link logged, then the crash before it was made.
        let _ = g.add_link(&src, &name(3), || -> io::Result<()> {
            Err(io::Error::other("crash"))
        });
        // A removal logged, not done.
        let _ = g.remove_link(&src, &name(2), || -> io::Result<bool> {
            Err(io::Error::other("crash"))
        });
        // A source logged, its file never renamed into place.
        let _ = g.add_source(sig_of(&t, &src), &name(9), || -> io::Result<()> {
            Err(io::Error::other("crash"))
        });
    }
    // A link made behind the log's back after its intent (the crash came
    // between the symlink and the count).
    d.lock()
        .add_link(&src, &name(4), || link(&t, &src, &name(4)))
        .unwrap();
    drop(d);
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert_eq!(d.lock().refs(&src), Some(2));
    assert_eq!(d.lock().refs(&name(9)), None);
}

#[test]
fn a_drop_cut_short_is_finished_at_open() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload(&d, &t, b"abc", &name(1), &name(2));
    {
        let p = d.path_of(&name(2)).unwrap();
        let mut g = d.lock();
        g.remove_link(&src, &name(2), || fs::remove_file(&p).map(|_| true))
            .unwrap();
        let _ = g.drop_source(&src, || -> io::Result<()> {
            Err(io::Error::other("crash"))
        });
    }
    drop(d);
    let (d, rec) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert_eq!(rec.removed_sources, vec![src.clone()]);
    assert!(!d.path_of(&src).unwrap().exists());
    assert_eq!(d.stats().contents, 0);
}

#[test]
fn two_sources_of_one_content_agree_on_the_smaller_name() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    put(&t, &name(5), b"same");
    put(&t, &name(3), b"same");
    let sig = sig_of(&t, &name(5));
    let mut g = d.lock();
    g.add_source(sig, &name(5), || Ok(())).unwrap();
    g.add_source(sig, &name(3), || Ok(())).unwrap();
    assert_eq!(g.source(&sig), Some(name(3).as_str()));
    g.add_source(sig, &name(4), || Ok(())).unwrap();
    assert_eq!(g.source(&sig), Some(name(3).as_str()), "in any order");
}

#[test]
fn a_source_with_links_is_not_dropped() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload(&d, &t, b"abc", &name(1), &name(2));
    let r: Option<()> = d.lock().drop_source(&src, || unreachable!()).unwrap();
    assert!(r.is_none());
}

#[test]
fn a_bad_snapshot_is_rebuilt_from_the_tree() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload(&d, &t, b"abc", &name(1), &name(2));
    upload(&d, &t, b"abc", &name(3), &name(4));
    put(&t, &name(7), b"a plain file");
    drop(d);
    fs::write(t.dir.join(SNAPSHOT), b"garbage").unwrap();
    let (d, rec) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert!(rec.rebuilt.is_some());
    assert_eq!(d.lock().refs(&src), Some(2));
    assert_eq!(d.lock().refs(&name(7)), None);
    assert_eq!(d.lock().source(&sig_of(&t, &src)), Some(src.as_str()));
}

#[test]
fn a_crash_recount_finds_links_the_log_lost() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), true).unwrap();
    let src = upload(&d, &t, b"abc", &name(1), &name(2));
    upload(&d, &t, b"abc", &name(3), &name(4));
    drop(d);
    // A power loss took the log's last line: name(4)'s link is not in it.
    let log = fs::read_to_string(t.dir.join(LOG)).unwrap();
    let cut: Vec<&str> = log.lines().filter(|l| !l.contains(&name(4))).collect();
    fs::write(t.dir.join(LOG), cut.join("\n") + "\n").unwrap();
    let (d, rec) = Dedup::open(&t.dir, t.paths.clone(), true).unwrap();
    assert!(rec.recounted);
    assert_eq!(d.lock().refs(&src), Some(2));
    // Without the recount the log alone is trusted.
    drop(d);
    let (d, rec) = Dedup::open(&t.dir, t.paths.clone(), true).unwrap();
    assert!(
        !rec.recounted,
        "a clean start after compaction counts nothing"
    );
    assert_eq!(d.lock().refs(&src), Some(2));
}

#[test]
fn a_stale_log_is_ignored_after_compaction() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload(&d, &t, b"abc", &name(1), &name(2));
    let old_log = fs::read(t.dir.join(LOG)).unwrap();
    d.lock().compact().unwrap();
    drop(d);
    // The crash between the new snapshot and the new log: the old log stays.
    fs::write(t.dir.join(LOG), old_log).unwrap();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert_eq!(d.lock().refs(&src), Some(1));
}

/// An upload the way `Upload::finish_dedup` makes it: claim, place the
/// content if it is new (`src`), make the link `l` outside the lock.
fn upload_unlocked(d: &Dedup, t: &T, content: &[u8], src: &str, l: &str) -> String {
    let sig = sig_of_bytes(content);
    let pending = match d.claim(sig, l, None).unwrap() {
        Claim::Link(p) => p,
        Claim::New(mut placing) => {
            placing.begin(src, l).unwrap();
            put(t, src, content);
            placing.placed()
        }
    };
    let src = pending.src().to_string();
    link(t, &src, l).unwrap();
    pending.made();
    src
}

#[test]
fn uploads_outside_the_lock_count_as_under_it() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload_unlocked(&d, &t, b"hello", &name(1), &name(2));
    assert_eq!(upload_unlocked(&d, &t, b"hello", &name(3), &name(4)), src);
    assert_eq!(d.lock().refs(&src), Some(2));
    assert_eq!(d.stats().shared_files, 1);
    assert_eq!(sig_of(&t, &src), sig_of(&t, &name(4)));
    drop(d);
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert_eq!(d.lock().refs(&src), Some(2));
}

#[test]
fn a_compaction_while_links_are_made_keeps_them_checked() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload_unlocked(&d, &t, b"abc", &name(1), &name(2));
    let sig = sig_of(&t, &src);
    // Two links reserved, a new content being placed; the log compacted
    // meanwhile; then one link is made, and the crash comes.
    let Claim::Link(made) = d.claim(sig, &name(3), None).unwrap() else {
        panic!("the content is known")
    };
    let Claim::Link(lost) = d.claim(sig, &name(4), None).unwrap() else {
        panic!("the content is known")
    };
    let Claim::New(mut placing) = d.claim(sig_of_bytes(b"new"), &name(6), None).unwrap() else {
        panic!("the content is new")
    };
    placing.begin(&name(5), &name(6)).unwrap();
    d.lock().compact().unwrap();
    put(&t, &name(5), b"new");
    link(&t, &name(5), &name(6)).unwrap();
    link(&t, &src, &name(3)).unwrap();
    std::mem::forget((made, lost, placing));
    drop(d);
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert_eq!(d.lock().refs(&src), Some(2), "name(3) counts, name(4) not");
    assert_eq!(
        d.lock().refs(&name(5)),
        Some(1),
        "the new source and its link"
    );
    assert_eq!(
        d.lock().source(&sig_of_bytes(b"new")),
        Some(name(5).as_str())
    );
}

#[test]
fn a_snapshot_without_its_log_keeps_contents_under_way() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload_unlocked(&d, &t, b"abc", &name(1), &name(2));
    let Claim::Link(p) = d.claim(sig_of(&t, &src), &name(3), None).unwrap() else {
        panic!("the content is known")
    };
    let old_log = fs::read(t.dir.join(LOG)).unwrap();
    d.lock().compact().unwrap();
    link(&t, &src, &name(3)).unwrap();
    std::mem::forget(p);
    drop(d);
    // The crash between the new snapshot and the new log: the link being
    // made counts (too many is a leak, too few a lost content).
    fs::write(t.dir.join(LOG), old_log).unwrap();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert_eq!(d.lock().refs(&src), Some(2));
}

#[test]
fn a_source_losing_its_last_link_waits_for_links_being_made() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload_unlocked(&d, &t, b"abc", &name(1), &name(2));
    let sig = sig_of(&t, &src);
    let Claim::Link(p) = d.claim(sig, &name(3), None).unwrap() else {
        panic!("the content is known")
    };
    // A client deletes the only made link: the source stays for the link
    // being made.
    let path = d.path_of(&name(2)).unwrap();
    let mut g = d.lock();
    let left = g.remove_link(&src, &name(2), || fs::remove_file(&path).map(|_| true));
    assert_eq!(left.unwrap(), Some(0));
    assert!(
        g.drop_source(&src, || -> io::Result<()> { unreachable!() })
            .unwrap()
            .is_none()
    );
    drop(g);
    assert!(p.failed(), "it failed: now the source goes");
    // Given back with a link made, it stays.
    let Claim::Link(p) = d.claim(sig, &name(4), None).unwrap() else {
        panic!("the content is still known")
    };
    link(&t, &src, &name(4)).unwrap();
    p.made();
    assert_eq!(d.lock().refs(&src), Some(1));
}

#[test]
fn uploads_of_a_content_being_placed_wait_and_link_to_it() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let sig = sig_of_bytes(b"abc");
    let Claim::New(mut placing) = d.claim(sig, &name(2), None).unwrap() else {
        panic!("the content is new")
    };
    placing.begin(&name(1), &name(2)).unwrap();
    std::thread::scope(|s| {
        let other = s.spawn(|| match d.claim(sig, &name(3), None).unwrap() {
            Claim::Link(p) => p.src().to_string(),
            Claim::New(_) => panic!("placed twice"),
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!other.is_finished(), "waits while the content is placed");
        put(&t, &name(1), b"abc");
        let p = placing.placed();
        assert_eq!(other.join().unwrap(), name(1));
        p.failed();
    });
    // A placing that fails lets the next upload place it.
    let sig = sig_of_bytes(b"xyz");
    let Claim::New(placing) = d.claim(sig, &name(5), None).unwrap() else {
        panic!("the content is new")
    };
    drop(placing);
    assert!(matches!(
        d.claim(sig, &name(6), None).unwrap(),
        Claim::New(_)
    ));
}

fn sig_of_bytes(content: &[u8]) -> Sig {
    Sig {
        hash: blake3::hash(content).into(),
        size: content.len() as u64,
    }
}

#[test]
fn an_index_with_sha1_signatures_is_rebuilt() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload(&d, &t, b"abc", &name(1), &name(2));
    upload(&d, &t, b"abc", &name(3), &name(4));
    drop(d);
    // What the first version wrote: SHA-1 signatures.
    let v1 = format!("fdfs-dedup 3\n{} 3 2 {src}\n", "a9".repeat(20));
    fs::write(t.dir.join(SNAPSHOT), v1).unwrap();
    fs::write(t.dir.join(LOG), "fdfs-dedup-log 3\n").unwrap();
    let (d, rec) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert!(rec.rebuilt.is_some());
    assert_eq!(d.lock().refs(&src), Some(2));
    assert_eq!(d.lock().source(&sig_of_bytes(b"abc")), Some(src.as_str()));
}
