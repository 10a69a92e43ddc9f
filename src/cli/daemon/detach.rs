//! `start`: run the daemon in the background (fork, setsid, fork), while
//! the command that started it waits until start-up is over, so that a
//! mistake found then (a port in use, a bad directory) is still printed on
//! the terminal and sets the exit status. Only then does the daemon let go
//! of the terminal (standard input, output and error to /dev/null).
//!
//! Must run before the process starts any thread: `fork` copies only the
//! calling one.

use super::super::CliError;
use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, fork, setsid};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

/// The daemon's end of the start-up report.
pub struct Ready {
    pipe: File,
}

impl Ready {
    /// Start-up went well: release the waiting command (exit 0) and leave
    /// the terminal.
    pub fn done(mut self) {
        let _ = std::io::stdout().flush();
        let _ = self.pipe.write_all(&[0]);
        drop(self.pipe);
        if let Err(e) = leave_terminal() {
            log::warn!("detaching from the terminal: {e}");
        }
    }

    /// Start-up failed (the error was printed): the waiting command exits `code`.
    pub fn failed(mut self, code: u8) {
        let _ = self.pipe.write_all(&[code.max(1)]);
    }
}

/// Fork into the background. Returns in the daemon; the calling process
/// waits for its report and exits with it.
pub fn detach() -> Result<Ready, CliError> {
    let fail = |what: &str, e: nix::errno::Errno| {
        CliError::Other(format!("starting in the background: {what}: {}", e.desc()))
    };
    let (rx, tx): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| fail("pipe", e))?;
    // SAFETY: no other thread runs yet (the module's contract); the child
    // goes on as this program, the parent only reads a pipe and exits.
    match unsafe { fork() }.map_err(|e| fail("fork", e))? {
        ForkResult::Parent { .. } => {
            drop(tx);
            std::process::exit(wait_report(File::from(rx)));
        }
        ForkResult::Child => {}
    }
    drop(rx);
    setsid().map_err(|e| fail("setsid", e))?;
    // A second fork: the daemon is no session leader, so it can never get a
    // controlling terminal back.
    // SAFETY: as above, one thread.
    match unsafe { fork() }.map_err(|e| fail("fork", e))? {
        ForkResult::Parent { .. } => {
            // SAFETY: _exit skips atexit handlers and buffers meant for the daemon.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Child => {}
    }
    Ok(Ready {
        pipe: File::from(tx),
    })
}

/// The exit status the daemon reports (a byte; none: it died).
fn wait_report(mut rx: File) -> i32 {
    let mut b = [0u8; 1];
    match rx.read(&mut b) {
        Ok(1) => i32::from(b[0]),
        _ => {
            eprintln!("fdfs: the daemon exited during start-up (see its log)");
            i32::from(super::super::exit::FAILURE)
        }
    }
}

/// Standard input, output and error to /dev/null; working directory `/`
/// (paths were made absolute before).
fn leave_terminal() -> std::io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    std::env::set_current_dir("/")
}
