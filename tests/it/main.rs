//! The single integration-test binary (`cargo test --test it`; a directory so Cargo does not
//! build each module as a test of its own): every test spawns the real `fdfs` binary on loopback
//! addresses in its own temp dir (see `util`) and drives it with our CLI, with third-party
//! FastDFS clients, or with raw hostile bytes.

mod appender;
mod cli;
mod cli_format;
mod cli_input;
mod cli_output;
mod cli_unavailable;
mod cli_usage;
mod cluster;
mod cold_reads;
mod daemons;
mod dedup;
mod hostile;
mod http;
mod interop;
mod join_forms;
mod lifecycle;
mod man_pages;
mod monitor;
mod pooled;
mod repair;
mod replication;
mod stat_tools;
mod sync_status;
mod third_party_py;
mod third_party_rs;
mod util;
