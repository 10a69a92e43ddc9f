//! Running a program with a deadline and capturing everything it printed, for the CLI
//! tests, the Python client and failure reports.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Result of one program run: what was run, how it ended, and its output.
pub struct Run {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit status; `None` when the program was killed at its deadline.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl Run {
    /// Human-readable account of the run, for failure messages.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "killed after its deadline".to_string(),
        };
        format!(
            "command: {}\nstatus: {status}\n--- stdout ({} bytes) ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.stdout.len(),
            printable(&self.stdout, 4000),
            printable(&self.stderr, 4000),
        )
    }

    /// Panics (with the full account) unless the program exited 0.
    #[track_caller]
    pub fn success(self) -> Self {
        if !self.status.is_some_and(|s| s.success()) {
            panic!("expected success\n{}", self.describe());
        }
        self
    }

    /// Panics unless the program exited non-zero and named `errno` (e.g. "ENOENT") on stderr
    /// in the `fdfs: ...` form.
    #[track_caller]
    pub fn fails_with(self, errno: &str) -> Self {
        let failed = self.status.is_some_and(|s| !s.success());
        let stderr = self.stderr_str();
        if !failed || !stderr.contains("fdfs: ") || !stderr.contains(errno) {
            panic!(
                "expected a non-zero exit with `fdfs: ...{errno}...` on stderr\n{}",
                self.describe()
            );
        }
        self
    }

    /// Panics unless the program exited non-zero (any reason) with `fdfs: ` on stderr.
    #[track_caller]
    pub fn fails(self) -> Self {
        let failed = self.status.is_some_and(|s| !s.success());
        if !failed || !self.stderr_str().contains("fdfs: ") {
            panic!(
                "expected a non-zero exit with `fdfs: ...` on stderr\n{}",
                self.describe()
            );
        }
        self
    }

    /// Stdout as text, surrounding whitespace removed.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }

    /// Stderr as text.
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Panics unless `run` exited with `code` and its stderr holds every one of `words` and no
/// Rust-style "(os error N)" suffix.
#[track_caller]
pub fn assert_exit(run: &Run, code: i32, words: &[&str]) {
    let stderr = run.stderr_str();
    let ok = run.status.and_then(|s| s.code()) == Some(code)
        && words.iter().all(|w| stderr.contains(w))
        && !stderr.contains("(os error");
    assert!(
        ok,
        "expected exit {code} with {words:?} on stderr (and no \"(os error N)\")\n{}",
        run.describe()
    );
}

/// Runs `program args` in `cwd` with `stdin` fed to it, and kills it after `timeout`.
/// Stdout and stderr are drained on threads so a chatty program cannot block on a full pipe.
pub fn run_program<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    stdin: Option<&[u8]>,
    cwd: &Path,
    timeout: Duration,
) -> Run {
    let cmdline = std::iter::once(program.as_os_str())
        .chain(args.iter().map(AsRef::as_ref))
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmdline}: {e}"));

    let feeder = stdin.map(|data| {
        let data = data.to_vec();
        let mut pipe = child.stdin.take().expect("stdin was piped above");
        // A program may exit without reading all of stdin; that is its business, not an error.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let out = drain(child.stdout.take().expect("stdout was piped above"));
    let err = drain(child.stderr.take().expect("stderr was piped above"));

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => panic!("waiting for {cmdline}: {e}"),
        }
    };
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    Run {
        cmdline,
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn drain<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Text for a report: lossy UTF-8, at most `max` bytes from the end.
fn printable(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    let prefix = if start > 0 { "[...] " } else { "" };
    format!("{prefix}{}", String::from_utf8_lossy(&bytes[start..]))
}
