//! Property tests of the HTTP request side, as the wire decoders have
//! (`proto/props.rs`): for arbitrary bytes, and for valid request heads with
//! bytes flipped, cut or added, the parser returns without panicking and
//! without a single allocation beyond a bound of its input; a path it
//! accepts never has an empty, `.` or `..` segment, a NUL, a backslash or a
//! control character; ranges, dates and tokens never panic. `make fuzz` runs
//! them with many more cases (`PROPTEST_CASES`).

use super::{date, parse, range, token};
use crate::alloc_probe::largest_alloc;
use proptest::prelude::*;

fn bound(len: usize) -> usize {
    4096 + 16 * len
}

/// A valid request head built from generated parts.
fn head() -> impl Strategy<Value = Vec<u8>> {
    let seg = "[A-Za-z0-9._%-]{1,12}";
    (
        prop::sample::select(vec!["GET", "HEAD", "POST"]),
        prop::collection::vec(seg, 1..6),
        "[a-z=&0-9%+]{0,30}",
        prop::collection::vec(("[A-Za-z-]{1,16}", "[ -~]{0,40}"), 0..8),
    )
        .prop_map(|(m, segs, q, hs)| {
            let mut s = format!("{m} /{}", segs.join("/"));
            if !q.is_empty() {
                s.push('?');
                s.push_str(&q);
            }
            s.push_str(" HTTP/1.1\r\n");
            for (k, v) in hs {
                s.push_str(&format!("{k}: {v}\r\n"));
            }
            s.push_str("\r\n");
            s.into_bytes()
        })
}

/// A valid head with up to 4 edits (flip, cut, insert).
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        head(),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4),
    )
        .prop_map(|(mut b, edits)| {
            for (i, x, kind) in edits {
                let n = b.len();
                match kind {
                    0 if n > 0 => b[i % n] ^= x,
                    1 => b.truncate(i % (n + 1)),
                    _ => b.insert(i % (n + 1), x),
                }
            }
            b
        })
}

fn check_parse(b: &[u8]) -> Result<(), TestCaseError> {
    let (r, big) = largest_alloc(|| parse::parse(b));
    prop_assert!(big <= bound(b.len()), "{} bytes allocated {big}", b.len());
    if let Ok(Some((req, n))) = r {
        prop_assert!(n <= b.len() && n <= parse::MAX_HEAD);
        let p = &req.path;
        prop_assert!(p.starts_with('/'));
        prop_assert!(
            !p.bytes().any(|c| c < 0x20 || c == 0x7f || c == b'\\'),
            "{p:?}"
        );
        prop_assert!(
            p == "/"
                || !p[1..]
                    .split('/')
                    .any(|s| s.is_empty() || s == "." || s == ".."),
            "{p:?}"
        );
        for (_, v) in &req.query {
            prop_assert!(!v.contains('\0'));
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..10_000)) {
        check_parse(&b)?;
    }

    #[test]
    fn edited_heads_never_panic(b in mutated()) {
        check_parse(&b)?;
    }

    #[test]
    fn valid_heads_parse(b in head()) {
        let r = parse::parse(&b);
        prop_assert!(matches!(r, Ok(Some(_)) | Err(_)), "{r:?}");
        if let Ok(Some((_, n))) = r {
            prop_assert_eq!(n, b.len());
        }
    }

    #[test]
    fn ranges_dates_and_tokens_never_panic(s in "[ -~]{0,64}", size in any::<u64>(), t in any::<u64>()) {
        if let range::Wanted::Part { start, end } = range::wanted(Some(&s), size) {
            prop_assert!(start <= end && end < size);
        }
        let _ = date::parse(&s);
        let t = t % 253_402_300_800;
        prop_assert_eq!(date::parse(&date::format(t)), Some(t));
        let p = token::Policy { secret: b"k", ttl: 600, allow_persistent: false };
        let _ = token::check(&p, "group1", &s, Some(&s), Some(&s), t);
    }
}
