//! HTTP/1.1 for the storage's downloads and both roles' `/metrics`: request
//! heads ([`parse`]), byte ranges ([`range`]), dates ([`date`]), content types
//! ([`mime`]), FastDFS's anti-steal tokens ([`token`]) and the Prometheus text
//! format ([`metrics`]). Knows no FastDFS command; the roles decide what a
//! path means.

pub mod date;
pub mod metrics;
pub mod mime;
pub mod parse;
#[cfg(test)]
mod props;
pub mod range;
pub mod server;
pub mod token;
