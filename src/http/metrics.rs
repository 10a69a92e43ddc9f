//! The Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`,
//! then `name{label="value",...} number` lines, one family after the other.

use crate::net::{BUCKETS_US, RequestStats};
use std::fmt::Write as _;

/// Content-Type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A page of metrics being written.
#[derive(Default)]
pub struct Page {
    out: String,
}

fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn labels(l: &[(&str, &str)]) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", help.replace('\n', " "));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, l: &[(&str, &str)], v: f64) {
        let _ = writeln!(self.out, "{name}{} {v}", labels(l));
    }

    /// A counter family: one sample per label set.
    pub fn counter(&mut self, name: &str, help: &str, samples: &[(Vec<(&str, &str)>, f64)]) {
        self.family(name, "counter", help);
        for (l, v) in samples {
            self.sample(name, l, *v);
        }
    }

    /// A gauge family.
    pub fn gauge(&mut self, name: &str, help: &str, samples: &[(Vec<(&str, &str)>, f64)]) {
        self.family(name, "gauge", help);
        for (l, v) in samples {
            self.sample(name, l, *v);
        }
    }

    /// A histogram with `labels`: `bounds` (upper bounds, increasing), the
    /// count of observations at or below each (cumulative), their sum and
    /// count. Several calls with one name and different labels make one
    /// family (its HELP and TYPE are written once).
    #[allow(clippy::too_many_arguments)]
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        cumulative: &[u64],
        sum: f64,
        count: u64,
    ) {
        if !self.out.contains(&format!("# TYPE {name} histogram\n")) {
            self.family(name, "histogram", help);
        }
        let bucket = format!("{name}_bucket");
        for (b, c) in bounds.iter().zip(cumulative) {
            let le = b.to_string();
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, *c as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, count as f64);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    /// `<prefix>_requests_total` by command and status, a
    /// `<prefix>_request_seconds` histogram per command, and the bytes in and
    /// out, from a server's [`RequestStats`]; `cmd` and `status` name the
    /// codes (the role knows them).
    pub fn requests(
        &mut self,
        prefix: &str,
        r: &RequestStats,
        cmd: impl Fn(u8) -> String,
        status: impl Fn(u8) -> String,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let replies = r.replies();
        let names: Vec<(String, String)> = (replies.iter())
            .map(|&(c, s, _)| (cmd(c), status(s)))
            .collect();
        let samples: Vec<(Vec<(&str, &str)>, f64)> = (replies.iter().zip(&names))
            .map(|(&(_, _, n), (c, s))| {
                (vec![("cmd", c.as_str()), ("status", s.as_str())], n as f64)
            })
            .collect();
        self.counter(
            &format!("{prefix}_requests_total"),
            "Requests answered, by command and reply status (OK or the errno's name).",
            &samples,
        );
        let bounds: Vec<f64> = BUCKETS_US.iter().map(|&b| b as f64 / 1e6).collect();
        let mut codes: Vec<u8> = replies.iter().map(|r| r.0).collect();
        codes.dedup();
        for c in codes {
            if let Some(h) = r.latency(c) {
                self.histogram(
                    &format!("{prefix}_request_seconds"),
                    "Time from a request's header to its reply, by command.",
                    &[("cmd", &cmd(c))],
                    &bounds,
                    &h.cumulative,
                    h.sum_us as f64 / 1e6,
                    h.count,
                );
            }
        }
        self.counter(
            &format!("{prefix}_received_bytes_total"),
            "Bytes of requests read.",
            &[(vec![], r.bytes_in.load(Relaxed) as f64)],
        );
        self.counter(
            &format!("{prefix}_sent_bytes_total"),
            "Bytes of replies written.",
            &[(vec![], r.bytes_out.load(Relaxed) as f64)],
        );
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format() {
        let mut p = Page::default();
        p.counter(
            "fdfs_requests_total",
            "Requests.",
            &[(vec![("cmd", "UPLOAD_FILE"), ("status", "0")], 3.0)],
        );
        p.gauge(
            "fdfs_x",
            "A \"gauge\"\nhere.",
            &[(vec![("path", "a\"b\\c")], 1.5)],
        );
        p.histogram(
            "fdfs_latency_seconds",
            "Latency.",
            &[],
            &[0.001, 0.01],
            &[1, 3],
            0.02,
            4,
        );
        p.histogram("fdfs_l2", "L.", &[("cmd", "A")], &[1.0], &[1], 1.0, 1);
        p.histogram("fdfs_l2", "L.", &[("cmd", "B")], &[1.0], &[0], 2.0, 1);
        let t = p.finish();
        assert_eq!(t.matches("# TYPE fdfs_l2 histogram").count(), 1);
        assert!(t.contains("fdfs_l2_bucket{cmd=\"B\",le=\"+Inf\"} 1\n"));
        assert!(t.contains("# TYPE fdfs_requests_total counter\n"));
        assert!(t.contains("fdfs_requests_total{cmd=\"UPLOAD_FILE\",status=\"0\"} 3\n"));
        assert!(t.contains("fdfs_x{path=\"a\\\"b\\\\c\"} 1.5\n"));
        assert!(t.contains("# HELP fdfs_x A \"gauge\" here.\n"));
        assert!(t.contains("fdfs_latency_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(t.contains("fdfs_latency_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(t.contains("fdfs_latency_seconds_count 4\n"));
        assert_eq!(t.matches("# TYPE fdfs_l2 histogram").count(), 1);
        assert!(t.contains("fdfs_l2_bucket{cmd=\"B\",le=\"+Inf\"} 1\n"));
    }
}
