//! `allow_hosts` matching (tracker.conf / storage.conf): `*`, single IPs, CIDR
//! blocks (`10.0.0.0/8`), FastDFS ranges (`10.0.0.[1-15]`, `10.0.[0-3].[1-254]`)
//! and host names (resolved when checked).

use std::net::{IpAddr, ToSocketAddrs};

/// Whether `ip` may connect. An empty list or a `*` entry allows everyone.
pub fn host_allowed(rules: &[String], ip: IpAddr) -> bool {
    rules.is_empty() || rules.iter().any(|r| rule_matches(r.trim(), ip))
}

fn rule_matches(rule: &str, ip: IpAddr) -> bool {
    if rule == "*" {
        return true;
    }
    if let Ok(exact) = rule.parse::<IpAddr>() {
        return exact == ip;
    }
    if let Some((net, bits)) = rule.split_once('/') {
        return cidr_matches(net, bits, ip);
    }
    if rule.contains('[') {
        return range_matches(rule, ip);
    }
    // A host name: resolve it (rare, and only at accept time).
    (rule, 0)
        .to_socket_addrs()
        .map(|mut a| a.any(|sa| sa.ip() == ip))
        .unwrap_or(false)
}

fn cidr_matches(net: &str, bits: &str, ip: IpAddr) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// `a.b.c.[x-y]` style: each dotted part is a number or a `[lo-hi]` range.
fn range_matches(rule: &str, ip: IpAddr) -> bool {
    let IpAddr::V4(v4) = ip else { return false };
    let parts: Vec<&str> = rule.split('.').collect();
    if parts.len() != 4 {
        return false;
    }
    parts.iter().zip(v4.octets()).all(|(p, o)| {
        if let Some(inner) = p.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            match inner.split_once('-') {
                Some((lo, hi)) => match (lo.trim().parse::<u8>(), hi.trim().parse::<u8>()) {
                    (Ok(lo), Ok(hi)) => (lo..=hi).contains(&o),
                    _ => false,
                },
                None => inner.trim().parse::<u8>() == Ok(o),
            }
        } else {
            p.parse::<u8>() == Ok(o)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(rules: &[&str], ip: &str) -> bool {
        let rules: Vec<String> = rules.iter().map(|s| s.to_string()).collect();
        host_allowed(&rules, ip.parse().unwrap())
    }

    #[test]
    fn rules() {
        assert!(ok(&[], "1.2.3.4"));
        assert!(ok(&["*"], "1.2.3.4"));
        assert!(ok(&["1.2.3.4"], "1.2.3.4"));
        assert!(!ok(&["1.2.3.5"], "1.2.3.4"));
        assert!(ok(&["10.0.0.0/8"], "10.200.1.1"));
        assert!(!ok(&["10.0.0.0/8"], "11.0.0.1"));
        assert!(ok(&["10.0.0.[1-15]"], "10.0.0.15"));
        assert!(!ok(&["10.0.0.[1-15]"], "10.0.0.16"));
        assert!(ok(&["10.0.[0-3].[1-254]", "127.0.0.1"], "127.0.0.1"));
        assert!(ok(&["::1"], "::1"));
    }
}
