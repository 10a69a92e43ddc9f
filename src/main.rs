//! `fdfs`: FastDFS in one binary. This file is the clap root: it picks the
//! subcommand and maps errors to exit codes. Nothing imports it.

#[cfg(test)]
mod alloc_probe;
mod cli;
mod client;
mod config;
mod http;
mod layout;
mod net;
mod proto;
mod storage;
mod tracker;

use clap::{Parser, Subcommand};

// The static build links musl, whose allocator is slow under many threads
// (measured in README, "Installing"); glibc's is kept elsewhere.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// FastDFS-compatible distributed file system: tracker and storage daemons and
/// the client tools, in one binary.
#[derive(Parser)]
#[command(name = "fdfs", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a tracker server in the foreground, or start|stop|restart|status one in the background.
    Tracker(cli::daemon::TrackerArgs),
    /// Run a storage server in the foreground, or start|stop|restart|status one in the background.
    Storage(cli::daemon::StorageArgs),
    /// Run a tracker and one storage in one process, for trying fdfs out.
    Server(cli::server::Args),
    /// Upload a file and print its file ID.
    Upload(cli::upload::Args),
    /// Download a file to a path or to stdout.
    Download(cli::download::Args),
    /// Add data at the end of an appender file.
    Append(cli::append::Args),
    /// Overwrite part of an appender file.
    Modify(cli::append::ModifyArgs),
    /// Set an appender file's size.
    Truncate(cli::truncate::Args),
    /// Turn an appender file into a normal file; prints the new file ID.
    Regenerate(cli::regenerate::Args),
    /// Measure throughput and latency of an operation under load.
    Bench(cli::bench::Args),
    /// Delete files.
    Delete(cli::delete::Args),
    /// Get or set a file's metadata.
    Meta(cli::meta::Args),
    /// Show a file's size, CRC32, creation time and source server.
    Info(cli::info::Args),
    /// Show every tracker, group and storage server (or delete a server or group).
    Monitor(cli::monitor::Args),
    /// Print a download URL signed with the anti-steal token.
    Token(cli::token::Args),
    /// Make a group's storages check their files and repair them from each other now.
    Repair(cli::repair::Args),
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let r = match args.cmd {
        Command::Tracker(a) => cli::daemon::run_tracker(a),
        Command::Storage(a) => cli::daemon::run_storage(a),
        Command::Server(a) => cli::server::run(a),
        Command::Upload(a) => cli::upload::run(a),
        // Before any thread starts: signals then go to the one that removes
        // the partly downloaded file.
        Command::Download(a) => cli::download::run(a, cli::interrupt::watch()),
        Command::Append(a) => cli::append::run(a),
        Command::Modify(a) => cli::append::run_modify(a),
        Command::Truncate(a) => cli::truncate::run(a),
        Command::Regenerate(a) => cli::regenerate::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Delete(a) => cli::delete::run(a),
        Command::Meta(a) => cli::meta::run(a),
        Command::Info(a) => cli::info::run(a),
        Command::Monitor(a) => cli::monitor::run(a),
        Command::Token(a) => cli::token::run(a),
        Command::Repair(a) => cli::repair::run(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fdfs: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
