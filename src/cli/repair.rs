//! `fdfs repair GROUP [STORAGE]`: start a scrub and anti-entropy pass on a
//! group's fdfs storages now, show its progress, and report what it did.

use super::opts::ClientOpts;
use super::{CliError, CliResult};
use crate::client::{StorageClient, TrackerClient};
use crate::proto::repair::{REPAIR_START, REPAIR_VERIFY, RepairStat};
use crate::proto::stat::StorageStat;
use crate::proto::storage_status;
use clap::Args as ClapArgs;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Arguments of `fdfs repair`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Group whose storages repair themselves.
    pub group: String,
    /// Only this storage of the group (its id, IP or IP:PORT).
    pub storage: Option<String>,
    /// Skip the scrub (reading every file to check it against its ID): only
    /// compare with the peers and copy what is missing.
    #[arg(long)]
    pub quick: bool,
    /// Start the pass and return at once, without waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds (default: wait until done).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Print one JSON object per storage instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// One storage being repaired.
struct Job {
    addr: String,
    id: String,
    before: RepairStat,
    last: RepairStat,
    done: bool,
}

/// Run `fdfs repair`.
pub fn run(a: Args) -> CliResult {
    let tracker = a.client.tracker()?;
    let storages = storages_of(&tracker, &a.group)?;
    let chosen: Vec<&StorageStat> = storages
        .iter()
        .filter(|s| {
            a.storage.as_ref().is_none_or(|want| {
                *want == s.id || *want == s.ip || *want == format!("{}:{}", s.ip, s.storage_port)
            })
        })
        .collect();
    if chosen.is_empty() {
        return Err(CliError::NotFound(match &a.storage {
            Some(s) => format!("no storage {s} in group {}", a.group),
            None => format!("group {} has no storage", a.group),
        }));
    }
    let flags = REPAIR_START | if a.quick { 0 } else { REPAIR_VERIFY };
    let mut jobs = Vec::new();
    for s in chosen {
        let addr = format!("{}:{}", s.ip, s.storage_port);
        if s.status != storage_status::ACTIVE {
            eprintln!(
                "fdfs: storage {} ({addr}) is {}: skipped",
                s.id,
                storage_status::name(s.status)
            );
            continue;
        }
        let mut c = StorageClient::connect(&addr, tracker.timeouts)?;
        match c.repair(flags)? {
            Some(before) => {
                c.quit();
                jobs.push(Job {
                    addr,
                    id: s.id.clone(),
                    last: before,
                    before,
                    done: false,
                });
            }
            None => eprintln!(
                "fdfs: storage {} ({addr}) has no repair command (C FastDFS?): skipped",
                s.id
            ),
        }
    }
    if jobs.is_empty() {
        return Err(CliError::Other(format!(
            "no storage of group {} could start a repair pass",
            a.group
        )));
    }
    if a.no_wait {
        for j in &jobs {
            out(&format!("{} ({}): repair pass started", j.id, j.addr))?;
        }
        return Ok(());
    }
    let t = Instant::now();
    wait(&tracker, &mut jobs, a.timeout.map(Duration::from_secs))?;
    let secs = t.elapsed().as_secs_f64();
    let mut unrepairable = 0;
    for j in &jobs {
        let d = delta(&j.before, &j.last);
        unrepairable += d.unrepairable;
        let line = if a.json {
            json(j, &d, secs)
        } else {
            text(j, &d, secs)
        };
        out(&line)?;
    }
    if unrepairable > 0 {
        return Err(CliError::Other(format!(
            "{unrepairable} file(s) could not be repaired: no intact copy (see the storages' logs)"
        )));
    }
    Ok(())
}

/// One line on stdout (a closed pipe is no failure: see `main`).
fn out(line: &str) -> CliResult {
    writeln!(std::io::stdout().lock(), "{line}").map_err(|err| {
        CliError::from(crate::client::Error::Local {
            path: "stdout".into(),
            err,
        })
    })
}

/// The group's storages, from the first tracker that answers.
fn storages_of(t: &TrackerClient, group: &str) -> Result<Vec<StorageStat>, CliError> {
    let mut last = None;
    for addr in &t.addrs {
        match t.list_storages_at(addr, group) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || CliError::Usage("no tracker configured".into()),
        CliError::from,
    ))
}

/// Poll every storage until its pass is done, with a progress line on a terminal.
fn wait(t: &TrackerClient, jobs: &mut [Job], limit: Option<Duration>) -> CliResult {
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    loop {
        for j in jobs.iter_mut().filter(|j| !j.done) {
            let mut c = StorageClient::connect(&j.addr, t.timeouts)?;
            if let Some(now) = c.repair(0)? {
                j.last = now;
                j.done = now.passes >= j.before.done_at;
            }
            c.quit();
        }
        if tty {
            let line: Vec<String> = jobs
                .iter()
                .map(|j| {
                    let s = &j.last;
                    if j.done {
                        format!("{}: done", j.id)
                    } else if s.scrub_total > 0 && s.scrub_done < s.scrub_total {
                        format!("{}: scrub {}/{}", j.id, s.scrub_done, s.scrub_total)
                    } else {
                        format!(
                            "{}: comparing, {} repaired",
                            j.id,
                            s.repaired - j.before.repaired
                        )
                    }
                })
                .collect();
            eprint!("\r\x1b[K{}", line.join(" | "));
            let _ = std::io::stderr().flush();
        }
        if jobs.iter().all(|j| j.done) {
            if tty {
                eprint!("\r\x1b[K");
            }
            return Ok(());
        }
        if limit.is_some_and(|l| start.elapsed() > l) {
            if tty {
                eprintln!();
            }
            return Err(CliError::Other(
                "gave up waiting (--timeout); the passes go on".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What changed between two reports.
fn delta(a: &RepairStat, b: &RepairStat) -> RepairStat {
    RepairStat {
        scrubbed_files: b.scrubbed_files - a.scrubbed_files,
        scrubbed_bytes: b.scrubbed_bytes - a.scrubbed_bytes,
        corrupt: b.corrupt - a.corrupt,
        missing: b.missing - a.missing,
        repaired: b.repaired - a.repaired,
        deletes_sent: b.deletes_sent - a.deletes_sent,
        unrepairable: b.unrepairable - a.unrepairable,
        dirs_compared: b.dirs_compared - a.dirs_compared,
        dirs_differing: b.dirs_differing - a.dirs_differing,
        peers_skipped: b.peers_skipped - a.peers_skipped,
        bad_binlog_records: b.bad_binlog_records - a.bad_binlog_records,
        digest_bytes: b.digest_bytes - a.digest_bytes,
        ..*b
    }
}

fn text(j: &Job, d: &RepairStat, secs: f64) -> String {
    format!(
        "{} ({}): {} files scrubbed, {} corrupt, {} missing, {} repaired, {} deletes sent to \
         peers, {} unrepairable; {} directories compared, {} differed, {} bytes of digests; \
         {secs:.1}s{}",
        j.id,
        j.addr,
        d.scrubbed_files,
        d.corrupt,
        d.missing,
        d.repaired,
        d.deletes_sent,
        d.unrepairable,
        d.dirs_compared,
        d.dirs_differing,
        d.digest_bytes,
        if d.peers_skipped > 0 {
            format!("; {} C peer(s) left alone", d.peers_skipped)
        } else {
            String::new()
        }
    )
}

fn json(j: &Job, d: &RepairStat, secs: f64) -> String {
    serde_json::json!({
        "storage": j.id,
        "addr": j.addr,
        "scrubbed_files": d.scrubbed_files,
        "scrubbed_bytes": d.scrubbed_bytes,
        "corrupt": d.corrupt,
        "missing": d.missing,
        "repaired": d.repaired,
        "deletes_sent": d.deletes_sent,
        "unrepairable": d.unrepairable,
        "dirs_compared": d.dirs_compared,
        "dirs_differing": d.dirs_differing,
        "peers_skipped": d.peers_skipped,
        "digest_bytes": d.digest_bytes,
        "seconds": secs,
    })
    .to_string()
}
