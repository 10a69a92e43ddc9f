//! A one-line progress display on stderr for long transfers, shown only when
//! stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Transfers smaller than this finish too fast to need a progress line.
const MIN_SIZE: u64 = 8 << 20;

/// Rate-limited progress printer.
pub struct Progress {
    label: String,
    enabled: bool,
    start: Instant,
    last: Instant,
}

impl Progress {
    /// Progress for a transfer of `total` bytes (0 = unknown yet).
    pub fn new(label: &str, total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            label: label.to_string(),
            enabled: std::io::stderr().is_terminal() && (total == 0 || total >= MIN_SIZE),
            start: now,
            last: now,
        }
    }

    /// `done` of `total` bytes transferred.
    pub fn update(&mut self, done: u64, total: u64) {
        if !self.enabled
            || (total > 0 && total < MIN_SIZE)
            || self.last.elapsed() < Duration::from_millis(200)
        {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let pct = if total > 0 {
            done as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        eprint!(
            "\r{}: {:.1}/{:.1} MiB ({pct:.0}%), {:.1} MiB/s   ",
            self.label,
            done as f64 / 1048576.0,
            total as f64 / 1048576.0,
            done as f64 / 1048576.0 / secs
        );
        let _ = std::io::stderr().flush();
    }

    /// Clear the line.
    pub fn finish(&self) {
        if self.enabled && self.last != self.start {
            eprint!("\r\x1b[K");
        }
    }
}
