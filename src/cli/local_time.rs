//! Unix times as a person reads them: a local date-time. Used by `info` and
//! `monitor`.

/// "YYYY-MM-DD HH:MM:SS" in the local time zone (the number, marked, if that fails).
pub fn local_time(t: u64) -> String {
    // time_t is 64 bits on every 64-bit Linux, glibc and musl alike (the libc
    // crate marks the alias deprecated on musl, so it is not named here).
    let secs = i64::try_from(t).unwrap_or(i64::MAX);
    // SAFETY: localtime_r only writes to the tm we pass; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the thread-safe variant.
    let ok = !unsafe { libc::localtime_r(&secs, &mut tm) }.is_null();
    if ok {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            i64::from(tm.tm_year) + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    } else {
        format!("{t} (unix time)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_time_shape() {
        let t = local_time(1_700_000_000);
        assert_eq!(t.len(), 19, "{t}");
        assert!(t.starts_with("2023-11-1"), "{t}");
        assert_eq!(local_time(0).len(), 19);
        assert!(local_time(u64::MAX).ends_with("(unix time)"));
    }
}
