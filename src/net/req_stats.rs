//! What a server answered, for `/metrics`: requests by command code and reply
//! status, and a latency histogram per command code, from the moment a
//! request's header is read to the moment its reply is queued. Counted with
//! relaxed atomics (no lock on the hot path); net knows codes, not names:
//! the role names them when it renders.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds.
pub const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// One command code's latency histogram.
struct Latency {
    /// Observations at or below each bound (not cumulative here).
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// The counters of one server.
pub struct RequestStats {
    /// `[cmd * 256 + status]`.
    replies: Box<[AtomicU64]>,
    latency: Box<[Latency]>,
    /// Request and reply bytes, headers included (file bodies too).
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats {
            replies: (0..256 * 256).map(|_| AtomicU64::new(0)).collect(),
            latency: (0..256)
                .map(|_| Latency {
                    buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                    count: AtomicU64::new(0),
                    sum_us: AtomicU64::new(0),
                })
                .collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for RequestStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStats").finish_non_exhaustive()
    }
}

/// A command's latency histogram, read out.
pub struct Histogram {
    /// Observations at or below each of [`BUCKETS_US`] (cumulative).
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_us: u64,
}

impl RequestStats {
    /// A reply with `status` to a request of `cmd` that took `took`.
    pub fn observe(&self, cmd: u8, status: u8, took: Duration) {
        self.replies[cmd as usize * 256 + status as usize].fetch_add(1, Ordering::Relaxed);
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let l = &self.latency[cmd as usize];
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            l.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        l.count.fetch_add(1, Ordering::Relaxed);
        l.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// `(cmd, status, count)` of every pair seen.
    pub fn replies(&self) -> Vec<(u8, u8, u64)> {
        (self.replies.iter().enumerate())
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some(((i / 256) as u8, (i % 256) as u8, n))
            })
            .collect()
    }

    /// The histogram of `cmd`, None if no request of it was seen.
    pub fn latency(&self, cmd: u8) -> Option<Histogram> {
        let l = &self.latency[cmd as usize];
        let count = l.count.load(Ordering::Relaxed);
        if count == 0 {
            return None;
        }
        let mut acc = 0;
        let cumulative = (l.buckets.iter())
            .map(|b| {
                acc += b.load(Ordering::Relaxed);
                acc
            })
            .collect();
        Some(Histogram {
            cumulative,
            count,
            sum_us: l.sum_us.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets() {
        let s = RequestStats::default();
        s.observe(11, 0, Duration::from_micros(40));
        s.observe(11, 0, Duration::from_micros(700));
        s.observe(11, 28, Duration::from_secs(20));
        s.observe(14, 2, Duration::from_micros(100));
        let mut r = s.replies();
        r.sort();
        assert_eq!(r, vec![(11, 0, 2), (11, 28, 1), (14, 2, 1)]);
        let h = s.latency(11).unwrap();
        assert_eq!(h.count, 3);
        assert_eq!(h.cumulative[0], 1, "40 us <= 50 us");
        assert_eq!(h.cumulative[4], 2, "700 us <= 1 ms");
        assert_eq!(*h.cumulative.last().unwrap(), 2, "20 s is only in +Inf");
        assert_eq!(h.sum_us, 40 + 700 + 20_000_000);
        assert!(s.latency(15).is_none());
    }
}
