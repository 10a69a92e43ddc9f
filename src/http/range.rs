//! A single `Range: bytes=` request (RFC 9110 §14). Several ranges, or a unit
//! other than bytes, are ignored: the whole file is sent (200), which the RFC
//! allows.

/// What the request asks for, against a file of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// No (usable) Range: the whole file.
    Whole,
    /// Bytes `start..=end` (206).
    Part { start: u64, end: u64 },
    /// A range that starts past the end (416).
    Unsatisfiable,
}

/// Resolve `header` (the Range value, if any) against `size` bytes.
pub fn wanted(header: Option<&str>, size: u64) -> Wanted {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (a.trim().is_empty(), b.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if size == 0 => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            None => Wanted::Whole,
        },
        // bytes=A-: from A to the end.
        (false, true) => match num(a) {
            Some(s) if s >= size => Wanted::Unsatisfiable,
            Some(s) => Wanted::Part {
                start: s,
                end: size - 1,
            },
            None => Wanted::Whole,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s <= e => {
                if s >= size {
                    Wanted::Unsatisfiable
                } else {
                    Wanted::Part {
                        start: s,
                        end: e.min(size - 1),
                    }
                }
            }
            // last < first: invalid, so ignored.
            _ => Wanted::Whole,
        },
        (true, true) => Wanted::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Wanted::*;

    #[test]
    fn ranges() {
        let w = |h: &str| wanted(Some(h), 100);
        assert_eq!(wanted(None, 100), Whole);
        assert_eq!(w("bytes=0-9"), Part { start: 0, end: 9 });
        assert_eq!(w("bytes=50-"), Part { start: 50, end: 99 });
        assert_eq!(w("bytes=-10"), Part { start: 90, end: 99 });
        assert_eq!(w("bytes=-1000"), Part { start: 0, end: 99 });
        assert_eq!(w("bytes=90-1000"), Part { start: 90, end: 99 });
        assert_eq!(w("bytes=99-99"), Part { start: 99, end: 99 });
        assert_eq!(w("bytes=100-"), Unsatisfiable);
        assert_eq!(w("bytes=100-200"), Unsatisfiable);
        assert_eq!(w("bytes=-0"), Unsatisfiable);
        assert_eq!(w("bytes=9-0"), Whole);
        assert_eq!(w("bytes=0-1,5-6"), Whole);
        assert_eq!(w("items=0-1"), Whole);
        assert_eq!(w("bytes=a-b"), Whole);
        assert_eq!(w("bytes=+1-2"), Whole);
        assert_eq!(w("bytes=-"), Whole);
        assert_eq!(wanted(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-5"), 0), Unsatisfiable);
        assert_eq!(w("bytes=99999999999999999999999-"), Whole);
    }
}
