//! Rate-limited warnings: a peer that keeps sending a request we refuse (a
//! misconfigured storage re-joining every few seconds, a sync record retried
//! forever) gets one log line per key and interval, with a count of the lines
//! held back, instead of flooding the log.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Keys kept at most; beyond it, keys whose interval has passed are forgotten
/// (a scan of many peers cannot grow the map without bound).
const MAX_KEYS: usize = 4096;

/// Remembers when each key last logged.
pub struct LogLimit<K> {
    every: Duration,
    seen: Mutex<HashMap<K, (Instant, u64)>>,
}

impl<K: Hash + Eq + Clone> LogLimit<K> {
    /// At most one line per key and `every`.
    pub fn new(every: Duration) -> Self {
        LogLimit {
            every,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line for `key` may be logged now: `Some(n)` with the number
    /// of lines held back since the last one, or `None` to stay quiet.
    pub fn allow(&self, key: &K) -> Option<u64> {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &K, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock();
        if let Some((last, held)) = seen.get_mut(key) {
            if now.duration_since(*last) < self.every {
                *held += 1;
                return None;
            }
            let n = *held;
            *last = now;
            *held = 0;
            return Some(n);
        }
        if seen.len() >= MAX_KEYS {
            let every = self.every;
            seen.retain(|_, (last, _)| now.duration_since(*last) < every);
            if seen.len() >= MAX_KEYS {
                return None;
            }
        }
        seen.insert(key.clone(), (now, 0));
        Some(0)
    }

    /// Log `msg` at warning level, under the caller's log `target` (its module
    /// path), unless `key` logged within the interval (then at debug).
    pub fn warn(&self, key: &K, target: &str, msg: std::fmt::Arguments) {
        match self.allow(key) {
            Some(0) => log::warn!(target: target, "{msg}"),
            Some(n) => log::warn!(target: target, "{msg} ({n} more like it since the last report)"),
            None => log::debug!(target: target, "{msg}"),
        }
    }

    /// Log the line `line()` makes at `level` unless `key` logged within the
    /// interval; the line is only made when it goes out.
    pub fn log(&self, level: log::Level, key: &K, target: &str, line: impl FnOnce() -> String) {
        if !log::log_enabled!(target: target, level) {
            return;
        }
        match self.allow(key) {
            Some(0) => log::log!(target: target, level, "{}", line()),
            Some(n) => log::log!(
                target: target,
                level,
                "{} ({n} more like it since the last report)",
                line()
            ),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let l = LogLimit::new(Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(l.allow_at(&"a", t), Some(0));
        assert_eq!(l.allow_at(&"a", t + Duration::from_secs(1)), None);
        assert_eq!(l.allow_at(&"a", t + Duration::from_secs(2)), None);
        assert_eq!(l.allow_at(&"b", t + Duration::from_secs(2)), Some(0));
        assert_eq!(l.allow_at(&"a", t + Duration::from_secs(61)), Some(2));
        assert_eq!(l.allow_at(&"a", t + Duration::from_secs(62)), None);
    }

    #[test]
    fn keys_are_bounded() {
        let l = LogLimit::new(Duration::from_secs(60));
        let t = Instant::now();
        for k in 0..MAX_KEYS {
            assert_eq!(l.allow_at(&k, t), Some(0));
        }
        // Full of recent keys: a new one stays quiet rather than growing the map.
        assert_eq!(l.allow_at(&MAX_KEYS, t), None);
        // Once they are old they make room.
        assert_eq!(l.allow_at(&MAX_KEYS, t + Duration::from_secs(61)), Some(0));
        assert_eq!(l.seen.lock().len(), 1);
    }
}
