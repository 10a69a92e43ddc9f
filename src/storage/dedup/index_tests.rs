//! Unit tests of the dedup index (`index.rs`): counts across reopenings,
//! intents a crash cut short, rebuilds and recounts from the data tree.
use super::claim::MAX_HASHED;
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

/// The key and hash of a stored file.
fn sig_of(t: &T, remote: &str) -> (Key, Hash) {
    read_content(&Names { paths: &t.paths }.path_of(remote).unwrap()).unwrap()
}

fn upload(d: &Dedup, t: &T, content: &[u8], src: &str, l: &str) -> String {
    let tmp = t.dir.join("upload.tmp");
    fs::write(&tmp, content).unwrap();
    let (key, hash) = read_content(&tmp).unwrap();
    let mut g = d.lock();
    let src = match g.source(&key, &hash) {
        Some(s) => s.to_string(),
        None => {
            let to = d.path_of(src).unwrap();
            g.add_source(key, Some(hash), src, || fs::rename(&tmp, &to))
                .unwrap();
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
    let (key, hash) = sig_of(&t, &src);
    assert_eq!(d.lock().source(&key, &hash), Some(src.as_str()));
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
        let (key, hash) = sig_of(&t, &src);
        let _ = g.add_source(key, Some(hash), &name(9), || -> io::Result<()> {
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
    let (key, hash) = sig_of(&t, &name(5));
    let mut g = d.lock();
    g.add_source(key, Some(hash), &name(5), || Ok(())).unwrap();
    g.add_source(key, Some(hash), &name(3), || Ok(())).unwrap();
    assert_eq!(g.source(&key, &hash), Some(name(3).as_str()));
    g.add_source(key, Some(hash), &name(4), || Ok(())).unwrap();
    assert_eq!(
        g.source(&key, &hash),
        Some(name(3).as_str()),
        "in any order"
    );
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
    let (key, hash) = sig_of(&t, &src);
    assert_eq!(d.lock().source(&key, &hash), Some(src.as_str()));
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
    upload_counted(d, t, content, src, l).0
}

/// [`upload_unlocked`], also saying whether the upload's hash was computed.
fn upload_counted(d: &Dedup, t: &T, content: &[u8], src: &str, l: &str) -> (String, bool) {
    let (key, hash) = sig_of_bytes(content);
    let mut hashed = false;
    let claim = d
        .claim(
            key,
            || {
                hashed = true;
                Ok(hash)
            },
            l,
            None,
        )
        .unwrap();
    match claim {
        Claim::Link(pending) => {
            let src = pending.src().to_string();
            link(t, &src, l).unwrap();
            pending.made();
            (src, hashed)
        }
        Claim::New(mut placing) => {
            placing.begin(src, l).unwrap();
            put(t, src, content);
            link(t, src, l).unwrap();
            placing.linked();
            (src.to_string(), hashed)
        }
    }
}

/// Claim `l` for an upload of `content`.
fn claim<'d>(d: &'d Dedup, content: &[u8], l: &str) -> Claim<'d> {
    let (key, hash) = sig_of_bytes(content);
    d.claim(key, || Ok(hash), l, None).unwrap()
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
    // Two links reserved, a new content being placed; the log compacted
    // meanwhile; then one link is made, and the crash comes.
    let Claim::Link(made) = claim(&d, b"abc", &name(3)) else {
        panic!("the content is known")
    };
    let Claim::Link(lost) = claim(&d, b"abc", &name(4)) else {
        panic!("the content is known")
    };
    let Claim::New(mut placing) = claim(&d, b"new", &name(6)) else {
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
    // Placed without its hash (nothing else had its key), found by key.
    let (key, _) = sig_of_bytes(b"new");
    assert_eq!(d.lock().g.by_key[&key], vec![Name::from(name(5))]);
}

#[test]
fn a_snapshot_without_its_log_keeps_contents_under_way() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload_unlocked(&d, &t, b"abc", &name(1), &name(2));
    let Claim::Link(p) = claim(&d, b"abc", &name(3)) else {
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
    let Claim::Link(p) = claim(&d, b"abc", &name(3)) else {
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
    let Claim::Link(p) = claim(&d, b"abc", &name(4)) else {
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
    let Claim::New(mut placing) = claim(&d, b"abc", &name(2)) else {
        panic!("the content is new")
    };
    placing.begin(&name(1), &name(2)).unwrap();
    std::thread::scope(|s| {
        let other = s.spawn(|| match claim(&d, b"abc", &name(3)) {
            Claim::Link(p) => p.src().to_string(),
            Claim::New(_) => panic!("placed twice"),
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!other.is_finished(), "waits while the content is placed");
        put(&t, &name(1), b"abc");
        link(&t, &name(1), &name(2)).unwrap();
        placing.linked();
        assert_eq!(other.join().unwrap(), name(1));
    });
    // A placing that fails lets the next upload place it.
    let Claim::New(placing) = claim(&d, b"xyz", &name(5)) else {
        panic!("the content is new")
    };
    drop(placing);
    assert!(matches!(claim(&d, b"xyz", &name(6)), Claim::New(_)));
}

fn sig_of_bytes(content: &[u8]) -> (Key, Hash) {
    let key = Key {
        size: content.len() as u64,
        crc32: crc32fast::hash(content),
    };
    (key, blake3::hash(content).into())
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
    let (key, hash) = sig_of_bytes(b"abc");
    assert_eq!(d.lock().source(&key, &hash), Some(src.as_str()));
}

#[test]
fn an_index_with_a_hash_for_every_content_is_rebuilt() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let src = upload(&d, &t, b"abc", &name(1), &name(2));
    upload(&d, &t, b"abc", &name(3), &name(4));
    drop(d);
    // What the second version wrote: BLAKE3 hashes, no CRC32.
    let (_, hash) = sig_of_bytes(b"abc");
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    fs::write(
        t.dir.join(SNAPSHOT),
        format!("fdfs-dedup2 3\n{hex} 3 2 {src}\n"),
    )
    .unwrap();
    fs::write(t.dir.join(LOG), "fdfs-dedup2-log 3\n").unwrap();
    let (d, rec) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert!(rec.rebuilt.is_some());
    assert_eq!(d.lock().refs(&src), Some(2));
    let (key, hash) = sig_of_bytes(b"abc");
    assert_eq!(d.lock().source(&key, &hash), Some(src.as_str()));
}

/// `n` different 8-byte contents with one CRC32 (so one key). The CRC32 of
/// messages of one length is linear plus a constant: a difference between
/// two colliding messages XORed into any message keeps its CRC32.
fn same_key_contents(n: usize) -> Vec<Vec<u8>> {
    let mut seen: HashMap<u32, u64> = HashMap::new();
    let mut all: HashSet<u64> = HashSet::from([0]);
    // Spread over all 64 bits: messages that differ in 32 adjacent bits only
    // never collide (CRC32 catches every burst that short).
    for i in (1u64..).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) {
        let crc = crc32fast::hash(&i.to_le_bytes());
        let Some(j) = seen.insert(crc, i) else {
            continue;
        };
        let d = i ^ j;
        let more: Vec<u64> = all.iter().map(|m| m ^ d).collect();
        all.extend(more);
        if all.len() >= n {
            break;
        }
    }
    let mut v: Vec<u64> = all.into_iter().collect();
    v.sort();
    let v: Vec<Vec<u8>> = v[..n].iter().map(|m| m.to_le_bytes().to_vec()).collect();
    let key = sig_of_bytes(&v[0]).0;
    assert!(v.iter().all(|c| sig_of_bytes(c).0 == key));
    v
}

#[test]
fn new_content_is_not_hashed() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let (src, hashed) = upload_counted(&d, &t, b"abc", &name(1), &name(2));
    assert!(!hashed, "no source had its key");
    assert_eq!(d.lock().hash_of(&src), None);
    let (_, hashed) = upload_counted(&d, &t, b"abd", &name(3), &name(4));
    assert!(!hashed);
    assert_eq!(d.stats().contents, 2);
}

#[test]
fn a_key_match_of_another_content_keeps_both_unlinked() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let c = same_key_contents(2);
    let (a, hashed) = upload_counted(&d, &t, &c[0], &name(1), &name(2));
    assert!(!hashed);
    let (b, hashed) = upload_counted(&d, &t, &c[1], &name(3), &name(4));
    assert!(hashed, "a source had its key: compared");
    assert_eq!(
        (a.as_str(), b.as_str()),
        (name(1).as_str(), name(3).as_str())
    );
    assert_eq!(d.lock().refs(&a), Some(1));
    assert_eq!(d.lock().refs(&b), Some(1));
    let s = d.stats();
    assert_eq!((s.contents, s.links, s.shared_files), (2, 2, 0));
    assert_eq!(fs::read(d.path_of(&name(4)).unwrap()).unwrap(), c[1]);
    assert_eq!(fs::read(d.path_of(&name(2)).unwrap()).unwrap(), c[0]);
    // Both hashes known now: the new source's from the upload, the old
    // one's read from its file.
    assert_eq!(d.lock().hash_of(&a), Some(sig_of_bytes(&c[0]).1));
    assert_eq!(d.lock().hash_of(&b), Some(sig_of_bytes(&c[1]).1));
    // A third upload of either links to the right one.
    assert_eq!(upload_unlocked(&d, &t, &c[1], &name(5), &name(6)), b);
    assert_eq!(upload_unlocked(&d, &t, &c[0], &name(7), &name(8)), a);
}

#[test]
fn a_key_match_of_the_same_content_links() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let (src, _) = upload_counted(&d, &t, b"hello", &name(1), &name(2));
    assert_eq!(d.lock().hash_of(&src), None);
    let (again, hashed) = upload_counted(&d, &t, b"hello", &name(3), &name(4));
    assert!(hashed);
    assert_eq!(again, src);
    assert!(!d.path_of(&name(3)).unwrap().exists(), "no second source");
    assert_eq!(d.lock().refs(&src), Some(2));
    assert_eq!(d.lock().hash_of(&src), Some(sig_of_bytes(b"hello").1));
    assert_eq!(d.stats().shared_files, 1);
}

#[test]
fn a_hash_learned_lazily_is_logged_and_survives_a_restart() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let c = same_key_contents(2);
    let a = upload_unlocked(&d, &t, &c[0], &name(1), &name(2));
    upload_unlocked(&d, &t, &c[1], &name(3), &name(4));
    let want = Some(sig_of_bytes(&c[0]).1);
    assert_eq!(d.lock().hash_of(&a), want);
    assert!(
        fs::read_to_string(t.dir.join(LOG))
            .unwrap()
            .contains(&format!("H {a} "))
    );
    drop(d);
    // A crash: replayed from the log.
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert_eq!(d.lock().hash_of(&a), want);
    drop(d);
    // From the snapshot the open above wrote.
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert_eq!(d.lock().hash_of(&a), want);
    // Known: the source's file is not read again (it would not hash the same).
    fs::write(d.path_of(&a).unwrap(), b"changed!").unwrap();
    assert_eq!(upload_unlocked(&d, &t, &c[0], &name(5), &name(6)), a);
}

#[test]
fn the_sources_hashed_for_one_upload_are_bounded() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let n = MAX_HASHED + 2;
    let c = same_key_contents(n);
    let key = sig_of_bytes(&c[0]).0;
    let srcs: Vec<String> = (0..n).map(|i| name(10 + i as u32)).collect();
    for (src, content) in srcs.iter().zip(&c) {
        d.lock()
            .add_source(key, None, src, || {
                put(&t, src, content);
                Ok(())
            })
            .unwrap();
    }
    // The content of the last source, in name order: the first
    // MAX_HASHED are read, none matches, and the upload is a new content.
    let last = &c[n - 1];
    let Claim::New(placing) = claim(&d, last, &name(2)) else {
        panic!("stored as new beyond the bound")
    };
    drop(placing);
    let known =
        |d: &Dedup| -> Vec<bool> { srcs.iter().map(|s| d.lock().hash_of(s).is_some()).collect() };
    let mut want = vec![true; MAX_HASHED];
    want.extend([false, false]);
    assert_eq!(known(&d), want);
    // The next upload reads only the others, and finds it.
    let Claim::Link(p) = claim(&d, last, &name(3)) else {
        panic!("the last source holds it")
    };
    assert_eq!(p.src(), srcs[n - 1]);
    assert_eq!(known(&d), vec![true; n]);
}

/// A normal FastDFS name for `content` (its size and CRC32 in it).
fn fastdfs_name(content: &[u8], rand: u32) -> String {
    use crate::layout::file_id::{ext_part, normal_size_field};
    let info = crate::layout::NameInfo {
        source: crate::layout::Source::Id(1),
        timestamp: 1_700_000_000,
        size_field: normal_size_field(content.len() as u64, rand),
        crc32: crc32fast::hash(content),
    };
    let name = format!("{}{}", info.encode(), ext_part("jpg", rand));
    RemoteName::new(0, 0, 1, name).as_string()
}

#[test]
fn a_rebuilt_source_takes_its_key_from_its_name_unread() {
    let t = setup();
    let content = b"a content under a FastDFS name";
    let src = fastdfs_name(content, 7);
    put(&t, &src, content);
    link(&t, &src, &name(2)).unwrap();
    fs::write(t.dir.join(SNAPSHOT), b"garbage").unwrap();
    let (d, rec) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert!(rec.rebuilt.is_some());
    assert_eq!(d.lock().refs(&src), Some(1));
    assert_eq!(d.lock().hash_of(&src), None, "not read");
    // An upload of the same content finds it by its key, then compares.
    assert_eq!(upload_unlocked(&d, &t, content, &name(3), &name(4)), src);
    assert_eq!(d.lock().refs(&src), Some(2));
    // A name whose CRC32 is not its content's only hides it: never a wrong link.
    let other = b"a content under a lying name.....";
    let liar = fastdfs_name(b"something else of the same size!!", 9);
    d.lock()
        .add_source(
            sig_of_bytes(b"something else of the same size!!").0,
            None,
            &liar,
            || {
                put(&t, &liar, other);
                Ok(())
            },
        )
        .unwrap();
    let (l, _) = upload_counted(
        &d,
        &t,
        b"something else of the same size!!",
        &name(5),
        &name(6),
    );
    assert_eq!(l, name(5), "compared, not the same: stored anew");
}

#[test]
fn intents_written_after_a_compaction_are_in_the_new_log_once() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let (key, _) = sig_of_bytes(b"late");
    let (_, intent) = (d.lock())
        .begin(vec![
            Change::Source {
                key,
                hash: None,
                src: name(1),
            },
            Change::Link {
                src: name(1),
                link: name(2),
            },
        ])
        .unwrap();
    // The compaction comes between the ticket and the write: it logs the
    // intents itself, and the write goes to the old log's file.
    d.lock().compact().unwrap();
    intent.write().unwrap();
    put(&t, &name(1), b"late");
    link(&t, &name(1), &name(2)).unwrap();
    let log = fs::read_to_string(t.dir.join(LOG)).unwrap();
    assert_eq!(log.matches(name(2).as_str()).count(), 1, "{log}");
    // A crash: no clean stop.
    std::mem::forget(d);
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert_eq!(d.lock().refs(&name(1)), Some(1));
}

/// How far a background snapshot got before the server stopped.
#[derive(Clone, Copy, Debug)]
enum SnapshotStop {
    /// The copy taken and `dedup.log.next` started, nothing written.
    Started,
    /// The snapshot written, `dedup.log.next` not renamed yet.
    Written,
    /// All done.
    Done,
}

#[test]
fn a_stop_at_any_point_of_a_background_snapshot_keeps_the_index() {
    for stop in [
        SnapshotStop::Started,
        SnapshotStop::Written,
        SnapshotStop::Done,
    ] {
        let t = setup();
        let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
        // Before the snapshot: a content with two links, one removed.
        let a = upload_unlocked(&d, &t, b"before", &name(1), &name(2));
        upload_unlocked(&d, &t, b"before", &name(3), &name(4));
        let mut job = d.lock().start_snapshot().unwrap();
        // While it is written: another link to it, and a new content.
        upload_unlocked(&d, &t, b"before", &name(5), &name(6));
        let b = upload_unlocked(&d, &t, b"during", &name(7), &name(8));
        fs::remove_file(Names { paths: &t.paths }.path_of(&name(2)).unwrap()).unwrap();
        (d.lock()).remove_link(&a, &name(2), || Ok(true)).unwrap();
        match stop {
            SnapshotStop::Started => {}
            SnapshotStop::Written => job.write_snapshot().unwrap(),
            SnapshotStop::Done => job.run().unwrap(),
        }
        // A crash: no clean stop.
        std::mem::forget(d);
        let (d, rec) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
        assert!(rec.rebuilt.is_none(), "{stop:?}: {:?}", rec.rebuilt);
        assert_eq!(d.lock().refs(&a), Some(2), "{stop:?}: links 4 and 6");
        assert_eq!(d.lock().refs(&b), Some(1), "{stop:?}: link 8");
        assert!(
            !t.dir.join(LOG_NEXT).exists(),
            "{stop:?}: the open compacts it away"
        );
        // And once more, after that open's own compaction.
        drop(d);
        let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
        assert_eq!(d.lock().refs(&a), Some(2), "{stop:?}");
        assert_eq!(d.lock().refs(&b), Some(1), "{stop:?}");
    }
}

#[test]
fn a_grown_log_is_compacted_in_the_background() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let a = upload_unlocked(&d, &t, b"abc", &name(1), &name(2));
    d.lock().g.logged = COMPACT_AFTER;
    // The next change starts the compaction; its line goes to the new log.
    upload_unlocked(&d, &t, b"abc", &name(3), &name(4));
    assert!(d.snapshot_written());
    assert!(!t.dir.join(LOG_NEXT).exists());
    let log = fs::read_to_string(t.dir.join(LOG)).unwrap();
    assert!(log.contains(&name(4)), "{log}");
    std::mem::forget(d);
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert_eq!(d.lock().refs(&a), Some(2));
}

#[test]
fn a_change_that_starts_a_compaction_is_in_the_log_after_it() {
    let t = setup();
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    let a = upload_unlocked(&d, &t, b"abc", &name(1), &name(2));
    d.lock().g.logged = COMPACT_AFTER;
    // A peer's link: the compaction it starts copies the index without it,
    // so its line must go to the log that follows that copy.
    link(&t, &a, &name(9)).unwrap();
    d.lock().add_link(&a, &name(9), || Ok(())).unwrap();
    assert!(d.snapshot_written());
    std::mem::forget(d);
    let (d, _) = Dedup::open(&t.dir, t.paths.clone(), false).unwrap();
    assert_eq!(d.lock().refs(&a), Some(2), "links 2 and 9");
}
