//! The subcommands: one file each, holding its clap arguments and `run`.
//! They parse, call `client` (or start a daemon) and print.

pub mod append;
pub mod bench;
mod bench_disk;
pub mod daemon;
pub mod delete;
pub mod download;
pub mod info;
mod input;
pub mod interrupt;
mod local_time;
pub mod meta;
pub mod monitor;
mod opts;
mod progress;
pub mod regenerate;
pub mod repair;
pub mod server;
pub mod token;
pub mod truncate;
pub mod upload;

use crate::client;
use std::fmt;

/// Exit codes (documented in fdfs(1)).
pub mod exit {
    /// Any other failure.
    pub const FAILURE: u8 = 1;
    /// Bad command line or configuration (clap uses 2 as well).
    pub const USAGE: u8 = 2;
    /// The file (or group, or metadata) does not exist.
    pub const NOT_FOUND: u8 = 3;
    /// No tracker or storage could be reached.
    pub const UNREACHABLE: u8 = 4;
}

/// An error of a subcommand, printed as `fdfs: <error>`.
#[derive(Debug)]
pub enum CliError {
    /// A client call failed.
    Client(client::Error),
    /// A client call failed for this file (named first in the message).
    About(String, client::Error),
    /// Bad arguments or config.
    Usage(String),
    /// What was asked about does not exist (a daemon that is not running).
    NotFound(String),
    /// Anything else (local files, daemons).
    Other(String),
}

impl CliError {
    /// Exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Client(e) | CliError::About(_, e) => match e {
                _ if e.status() == Some(crate::proto::status::ENOENT) => exit::NOT_FOUND,
                client::Error::NoGroup { .. } => exit::NOT_FOUND,
                client::Error::Io { .. }
                | client::Error::NoTracker(_)
                | client::Error::NoStorage { .. } => exit::UNREACHABLE,
                client::Error::BadFileId(_) => exit::USAGE,
                _ => exit::FAILURE,
            },
            CliError::Usage(_) => exit::USAGE,
            CliError::NotFound(_) => exit::NOT_FOUND,
            CliError::Other(_) => exit::FAILURE,
        }
    }

    /// Writing to a closed stdout pipe (`fdfs download x - | head`) is not a
    /// failure, whether or not the error names a file.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            CliError::Client(e) | CliError::About(_, e) => e.is_broken_pipe(),
            CliError::Usage(_) | CliError::NotFound(_) | CliError::Other(_) => false,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Client(e) => e.fmt(f),
            // A bad file ID already names itself.
            CliError::About(_, e @ client::Error::BadFileId(_)) => e.fmt(f),
            CliError::About(what, e) => write!(f, "{what}: {e}"),
            CliError::Usage(m) | CliError::NotFound(m) | CliError::Other(m) => f.write_str(m),
        }
    }
}

impl From<client::Error> for CliError {
    fn from(e: client::Error) -> Self {
        CliError::Client(e)
    }
}

/// Name `id` (a file ID) in a client error, so messages say which file.
pub fn about(id: &str) -> impl Fn(CliError) -> CliError + '_ {
    move |e| match e {
        CliError::Client(e) => CliError::About(id.to_string(), e),
        other => other,
    }
}

/// Result of a subcommand.
pub type CliResult = Result<(), CliError>;
