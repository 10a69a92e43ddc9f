//! `fdfs bench`: a load generator speaking the protocol. A fixed number of
//! client threads, each with its own storage connection, run one kind of
//! operation for a duration or a count; prints throughput and latency.

use super::opts::ClientOpts;
use super::{CliError, CliResult};
use crate::client::{Error, StorageClient, TrackerClient};
use clap::{Args as ClapArgs, ValueEnum};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What each operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Op {
    Upload,
    Download,
    Delete,
    SetMeta,
    GetMeta,
    /// 60% download, 20% upload, 10% get-meta, 10% set-meta.
    Mixed,
}

/// Arguments of `fdfs bench`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Operation to measure.
    #[arg(long, value_enum, default_value = "upload")]
    pub op: Op,
    /// File size (bytes, or with a K/M/G suffix, e.g. 4K, 64K, 256M).
    #[arg(long, default_value = "4K", value_parser = parse_size)]
    pub size: u64,
    /// Client threads, each with its own connection.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Run this many seconds (default 10 unless --count is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Run this many operations in total instead.
    #[arg(long, conflicts_with = "duration")]
    pub count: Option<u64>,
    /// Also ask the tracker before every operation (as a client without
    /// connection reuse would); by default each client asks once.
    #[arg(long)]
    pub via_tracker: bool,
    /// Upload the same content every time (per client) instead of new
    /// content each time: what duplicate uploads cost with
    /// check_file_duplicate on.
    #[arg(long)]
    pub same_content: bool,
    /// Print one JSON object instead of text.
    #[arg(long, conflicts_with = "row")]
    pub json: bool,
    /// Print one markdown table row: op, size, clients, ops/s, MB/s, p50, p99, max, errors.
    #[arg(long)]
    pub row: bool,
    /// Measure instead the durable commits per second that the disk under
    /// DIR allows, without a server: each client adds a --size record to a
    /// durable_uploads journal made there and waits until it is on disk
    /// (--op and the tracker are not used).
    #[arg(long, value_name = "DIR", conflicts_with = "via_tracker")]
    pub disk_commit: Option<std::path::PathBuf>,
    /// With --disk-commit: each client reaches its committer over a
    /// loopback TCP connection, which adds a request's round trip.
    #[arg(long, requires = "disk_commit")]
    pub loopback: bool,
    /// With --disk-commit: each commit first creates its file (in a 16x16
    /// tree under DIR, removed afterwards) and appends a binlog line, the
    /// least a storage does for an upload.
    #[arg(long, requires = "disk_commit")]
    pub files: bool,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// "4K" -> 4096 (K/M/G, 1024-based, optional B / iB).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches(['b', 'B']).trim_end_matches('i');
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("{s}: not a size"))
}

/// One client thread's results.
#[derive(Default)]
pub(super) struct Tally {
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    pub bytes: u64,
    pub first_error: Option<String>,
}

impl Tally {
    /// Count a failed operation.
    pub fn fail(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }

    /// Count an operation of `bytes` started at `t0` that succeeded.
    pub fn done(&mut self, bytes: u64, t0: Instant) {
        self.bytes += bytes;
        let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
        self.latencies_us.push(us);
    }

    /// The results of client threads, all together.
    pub fn join(threads: Vec<std::thread::JoinHandle<Tally>>) -> Result<Tally, CliError> {
        let mut all = Tally::default();
        for h in threads {
            let t = h
                .join()
                .map_err(|_| CliError::Other("a bench thread panicked".into()))?;
            all.latencies_us.extend(t.latencies_us);
            all.errors += t.errors;
            all.bytes += t.bytes;
            if all.first_error.is_none() {
                all.first_error = t.first_error;
            }
        }
        Ok(all)
    }
}

/// Deterministic content of `size` bytes (cheap, not compressible by pattern),
/// a different one for every seed.
pub(super) fn content(size: u64, seed: u64) -> Vec<u8> {
    // Not `seed | 1`: seeds 2 and 3 made the same content, so with 8 clients
    // three pairs uploaded the same files, duplicates in the "new content" rows.
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Client {
    tracker: TrackerClient,
    storage: StorageClient,
    /// The storage's "ip:port", to connect again after a broken connection.
    addr: String,
    store_path: u8,
    data: Vec<u8>,
    /// Change the content before each upload (see `Args::same_content`).
    distinct: bool,
    uploads: u64,
    files: Vec<(String, String)>,
    next: usize,
}

impl Client {
    fn connect(
        tracker: &TrackerClient,
        size: u64,
        seed: u64,
        distinct: bool,
    ) -> Result<Client, Error> {
        let t = tracker.query_store(None)?;
        let addr = format!("{}:{}", t.ip, t.port);
        let storage = StorageClient::connect(&addr, tracker.timeouts)?;
        Ok(Client {
            tracker: tracker.clone(),
            storage,
            addr,
            store_path: t.store_path_index,
            data: content(size, seed),
            distinct,
            uploads: 0,
            files: Vec::new(),
            next: 0,
        })
    }

    fn upload(&mut self) -> Result<(String, String), Error> {
        if self.distinct {
            // A new content each time: the upload's number in its first bytes.
            self.uploads += 1;
            let stamp = self.uploads.to_le_bytes();
            let n = stamp.len().min(self.data.len());
            self.data[..n].copy_from_slice(&stamp[..n]);
        }
        let size = self.data.len() as u64;
        let mut src = &self.data[..];
        self.storage
            .upload(&mut src, size, "bin", self.store_path, false, &mut |_| {})
    }

    fn pick(&mut self) -> (String, String) {
        let f = self.files[self.next % self.files.len()].clone();
        self.next += 1;
        f
    }

    fn run(&mut self, op: Op, i: u64, via_tracker: bool) -> Result<u64, Error> {
        if via_tracker {
            let t = self.tracker.query_store(None)?;
            self.store_path = t.store_path_index;
        }
        let op = match op {
            Op::Mixed => match i % 10 {
                0..=5 => Op::Download,
                6 | 7 => Op::Upload,
                8 => Op::GetMeta,
                _ => Op::SetMeta,
            },
            o => o,
        };
        match op {
            Op::Upload => {
                let f = self.upload()?;
                if self.files.len() < 4096 {
                    self.files.push(f);
                }
                Ok(self.data.len() as u64)
            }
            Op::Download => {
                let (g, r) = self.pick();
                let mut sink = std::io::sink();
                self.storage
                    .download(&g, &r, 0, 0, &mut sink, &mut |_, _| {})
            }
            Op::Delete => {
                // A delete client stops once its files are gone (see run).
                let (g, r) = self.files.pop().expect("a delete client has files left");
                self.storage.delete(&g, &r).map(|()| 0)
            }
            Op::SetMeta => {
                let (g, r) = self.pick();
                let meta = [
                    ("width".to_string(), i.to_string()),
                    ("author".to_string(), "bench".to_string()),
                ];
                self.storage.set_metadata(&g, &r, &meta, false).map(|()| 0)
            }
            Op::GetMeta => {
                let (g, r) = self.pick();
                self.storage.get_metadata(&g, &r).map(|_| 0)
            }
            Op::Mixed => unreachable!("resolved above"),
        }
    }
}

/// How long a run lasts: `--duration`, or until `--count` operations
/// (returned too), or 10 seconds.
pub(super) fn limits(a: &Args) -> Result<(Duration, Option<u64>), CliError> {
    let duration = match (a.duration, a.count) {
        (Some(d), _) if d.is_finite() && d > 0.0 => Duration::from_secs_f64(d),
        (Some(d), _) => {
            return Err(CliError::Usage(format!(
                "--duration {d}: a positive number of seconds"
            )));
        }
        // With --count the count ends the run.
        (None, Some(_)) => Duration::MAX,
        (None, None) => Duration::from_secs(10),
    };
    Ok((duration, a.count))
}

/// Run `fdfs bench`.
pub fn run(a: Args) -> CliResult {
    if let Some(dir) = &a.disk_commit {
        return super::bench_disk::run(&a, dir);
    }
    let tracker = a.client.tracker()?;
    let clients = a.clients.max(1);
    let (duration, total) = limits(&a)?;
    // Files the timed part works on: uploaded first, not timed.
    let prepare = match a.op {
        Op::Upload => 0,
        Op::Delete => total.map_or(20_000, |t| t.div_ceil(clients as u64)),
        // Enough files to spread reads over, within about 1 GiB per client.
        _ => (1u64 << 30)
            .checked_div(a.size.max(1))
            .unwrap_or(1)
            .clamp(1, 64),
    };
    let mut workers = Vec::new();
    for c in 0..clients {
        let mut cl = Client::connect(&tracker, a.size, c as u64 + 1, !a.same_content)?;
        for _ in 0..prepare {
            let f = cl.upload()?;
            cl.files.push(f);
        }
        if a.op == Op::SetMeta || a.op == Op::GetMeta || a.op == Op::Mixed {
            for (g, r) in cl.files.clone() {
                cl.storage
                    .set_metadata(&g, &r, &[("k".into(), "v".into())], false)?;
            }
        }
        workers.push(cl);
    }
    let issued = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = workers
        .into_iter()
        .map(|mut cl| {
            let (issued, stop, op, via) = (issued.clone(), stop.clone(), a.op, a.via_tracker);
            std::thread::spawn(move || {
                let mut t = Tally {
                    latencies_us: Vec::with_capacity(1 << 16),
                    ..Tally::default()
                };
                loop {
                    let i = issued.fetch_add(1, Ordering::Relaxed);
                    let out_of_files = op == Op::Delete && cl.files.is_empty();
                    if out_of_files
                        || total.is_some_and(|n| i >= n)
                        || stop.load(Ordering::Relaxed)
                        || start.elapsed() >= duration
                    {
                        break;
                    }
                    let t0 = Instant::now();
                    match cl.run(op, i, via) {
                        Ok(b) => t.done(b, t0),
                        Err(e) => {
                            t.fail(e.to_string());
                            // A server may close the connection after an
                            // error (an upload it refused mid-body, say):
                            // go on with a new one rather than fail every
                            // request that follows at once.
                            if e.status().is_none()
                                && let Ok(s) = StorageClient::connect(&cl.addr, cl.tracker.timeouts)
                            {
                                cl.storage = s;
                            }
                            if t.errors > 100 && t.latencies_us.is_empty() {
                                break;
                            }
                        }
                    }
                }
                t
            })
        })
        .collect();
    let all = Tally::join(handles)?;
    stop.store(true, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    let op = format!("{:?}", a.op).to_lowercase();
    report(&a, &op, clients, secs, all)
}

/// Print the results of a run of operation `op` as `a` asks.
pub(super) fn report(a: &Args, op: &str, clients: usize, secs: f64, mut t: Tally) -> CliResult {
    t.latencies_us.sort_unstable();
    let ops = t.latencies_us.len() as u64;
    let pct = |p: f64| -> f64 {
        if t.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (t.latencies_us.len() - 1) as f64).round() as usize;
        t.latencies_us[i] as f64 / 1000.0
    };
    let ops_s = ops as f64 / secs;
    let mb_s = t.bytes as f64 / secs / 1e6;
    let text = if a.json {
        serde_json::json!({
            "op": op, "size": a.size, "clients": clients, "seconds": secs, "ops": ops,
            "ops_per_sec": ops_s, "mb_per_sec": mb_s, "errors": t.errors,
            "latency_ms": {"p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0), "max": pct(100.0)},
            "first_error": t.first_error,
        })
        .to_string()
    } else if a.row {
        format!(
            "| {op} | {} | {clients} | {ops_s:.0} | {mb_s:.1} | {:.3} | {:.3} | {:.3} | {} |",
            human_size(a.size),
            pct(50.0),
            pct(99.0),
            pct(100.0),
            t.errors
        )
    } else {
        let mut s = format!(
            "{op:<9} size {:>10}  clients {clients:>3}  {ops:>9} ops in {secs:>6.2}s  {ops_s:>10.0} ops/s  {mb_s:>9.1} MB/s  \
             p50 {:.3} p90 {:.3} p99 {:.3} max {:.3} ms  errors {}",
            a.size,
            pct(50.0),
            pct(90.0),
            pct(99.0),
            pct(100.0),
            t.errors
        );
        if let Some(e) = &t.first_error {
            s.push_str(&format!("\n  first error: {e}"));
        }
        s
    };
    writeln!(std::io::stdout().lock(), "{text}").map_err(|err| Error::Local {
        path: "stdout".into(),
        err,
    })?;
    if ops == 0 && t.errors > 0 {
        return Err(CliError::Other(format!(
            "every operation failed: {}",
            t.first_error.unwrap_or_default()
        )));
    }
    Ok(())
}

/// 4096 -> "4 KiB".
fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4K").unwrap(), 4096);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("x").is_err());
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(256 << 20), "256 MiB");
        assert_eq!(human_size(1000), "1000 B");
    }

    #[test]
    fn every_client_has_its_own_content() {
        let all: std::collections::HashSet<Vec<u8>> = (1..=64).map(|s| content(64, s)).collect();
        assert_eq!(all.len(), 64);
    }
}
