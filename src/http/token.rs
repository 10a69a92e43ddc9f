//! FastDFS's anti-steal token (PROTOCOL.md §13, common/fdfs_http_shared.c):
//! `token = hex(md5(file_id + secret_key + decimal(ts)))`, valid while
//! `now - ts <= ttl`; `ts = 0` never expires (only when configured here).

use md5::{Digest, Md5};

/// The token of `file_id` at Unix time `ts`.
pub fn make(secret: &[u8], file_id: &str, ts: u64) -> String {
    let mut h = Md5::new();
    h.update(file_id.as_bytes());
    h.update(secret);
    h.update(ts.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No token or no ts (upstream 5.05 let an empty one through, #405).
    Missing,
    /// Not 32 hex digits, or a ts that is not a number.
    Malformed,
    /// Older than the TTL (or `ts = 0` where that is not allowed).
    Expired,
    /// Does not match.
    Wrong,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Missing => "missing",
            Refused::Malformed => "malformed",
            Refused::Expired => "expired",
            Refused::Wrong => "wrong",
        }
    }
}

/// What a check needs.
pub struct Policy<'a> {
    pub secret: &'a [u8],
    pub ttl: u64,
    /// Accept `ts = 0` tokens, which never expire.
    pub allow_persistent: bool,
}

/// Check `token` and `ts` (the query parameters) for a file whose ID is
/// `group/remote`: the token may be computed over the whole ID or over the
/// remote name alone (the nginx module's form).
pub fn check(
    p: &Policy,
    group: &str,
    remote: &str,
    token: Option<&str>,
    ts: Option<&str>,
    now: u64,
) -> Result<(), Refused> {
    let (token, ts) = match (token, ts) {
        (Some(t), Some(s)) if !t.is_empty() && !s.is_empty() => (t, s),
        _ => return Err(Refused::Missing),
    };
    if token.len() != 32 || !token.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(Refused::Malformed);
    }
    if ts.len() > 20 || !ts.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Refused::Malformed);
    }
    let t: u64 = ts.parse().map_err(|_| Refused::Malformed)?;
    if t == 0 && !p.allow_persistent || t != 0 && now.saturating_sub(t) > p.ttl {
        return Err(Refused::Expired);
    }
    let token = token.to_ascii_lowercase();
    let full = format!("{group}/{remote}");
    let ok = [full.as_str(), remote]
        .iter()
        .any(|id| constant_time_eq(make(p.secret, id, t).as_bytes(), token.as_bytes()));
    if ok { Ok(()) } else { Err(Refused::Wrong) }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        secret: b"FastDFS1234567890",
        ttl: 900,
        allow_persistent: false,
    };
    const REMOTE: &str = "M00/00/00/wKgBZGJ3xyAAUS1cAAAAAJb8Nh4123.jpg";

    #[test]
    fn the_upstream_formula() {
        // md5("group1/M00/...jpg" "FastDFS1234567890" "1700000000"), by `md5sum`.
        let t = make(P.secret, &format!("group1/{REMOTE}"), 1_700_000_000);
        assert_eq!(t.len(), 32);
        let mut h = Md5::new();
        h.update(format!("group1/{REMOTE}FastDFS12345678901700000000"));
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(t, want);
    }

    #[test]
    fn checks() {
        let now = 1_700_000_100;
        let ts = "1700000000";
        let with_group = make(P.secret, &format!("group1/{REMOTE}"), 1_700_000_000);
        let without = make(P.secret, REMOTE, 1_700_000_000);
        let c =
            |tok: Option<&str>, ts: Option<&str>, now| check(&P, "group1", REMOTE, tok, ts, now);
        assert_eq!(c(Some(&with_group), Some(ts), now), Ok(()));
        assert_eq!(c(Some(&without), Some(ts), now), Ok(()));
        assert_eq!(c(Some(&with_group.to_uppercase()), Some(ts), now), Ok(()));
        assert_eq!(
            c(Some(&with_group), Some(ts), now + 900),
            Err(Refused::Expired)
        );
        assert_eq!(
            c(Some(&with_group), Some("1700000001"), now),
            Err(Refused::Wrong)
        );
        assert_eq!(c(Some(""), Some(ts), now), Err(Refused::Missing));
        assert_eq!(c(Some(&with_group), Some(""), now), Err(Refused::Missing));
        assert_eq!(c(None, Some(ts), now), Err(Refused::Missing));
        assert_eq!(c(Some("abc"), Some(ts), now), Err(Refused::Malformed));
        assert_eq!(
            c(Some(&with_group), Some("-5"), now),
            Err(Refused::Malformed)
        );
        let zero = make(P.secret, REMOTE, 0);
        assert_eq!(c(Some(&zero), Some("0"), now), Err(Refused::Expired));
        let p = Policy {
            allow_persistent: true,
            ..P
        };
        assert_eq!(
            check(&p, "group1", REMOTE, Some(&zero), Some("0"), now),
            Ok(())
        );
    }
}
