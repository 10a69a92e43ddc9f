//! Kept connections as upstream's pooled clients use them: each request written in two parts
//! (the header, then the body) with Nagle's algorithm on. The second part leaves only once the
//! first is acknowledged, so a server that delays its ACK (40 ms on Linux) stalls every request
//! that long; fdfs acknowledges a partly read request at once. The bound below is ten times what
//! the requests take without the stall and half of what the stall alone would add.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::util::*;

/// Requests per connection.
const REQUESTS: u32 = 60;
/// Linux's delayed-ACK time, what each request would wait.
const DELAYED_ACK: Duration = Duration::from_millis(40);

/// Sends `REQUESTS` requests of `cmd` on one connection, each as two writes, and returns how
/// long they took; every reply must have status 0.
fn two_part_requests(addr: SocketAddr, cmd: u8, body: &dyn Fn(u32) -> Vec<u8>) -> Duration {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(false).expect("Nagle on");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let start = Instant::now();
    for i in 0..REQUESTS {
        let b = body(i);
        s.write_all(&header(b.len() as u64, cmd, 0))
            .expect("send header");
        s.write_all(&b).expect("send body");
        let mut h = [0u8; 10];
        s.read_exact(&mut h).expect("reply header");
        assert_eq!(h[9], 0, "request {i} of cmd {cmd} refused");
        let len = u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) as usize;
        let mut rest = vec![0u8; len];
        s.read_exact(&mut rest).expect("reply body");
    }
    start.elapsed()
}

#[test]
fn two_part_requests_on_a_kept_connection_do_not_wait_for_delayed_acks() {
    let cluster = Cluster::start();
    let bound = DELAYED_ACK * REQUESTS / 2;
    // Tracker: QUERY_STORE_WITH_GROUP_ONE, a 16-byte body.
    let took = two_part_requests(cluster.tracker_addr(), 104, &|_| padded(GROUP, 16));
    assert!(
        took < bound,
        "{REQUESTS} tracker queries took {took:?} (bound {bound:?})"
    );
    // Storage: small uploads (store path 0, size, ext, content).
    let took = two_part_requests(cluster.storage_addr(0), CMD_UPLOAD_FILE, &|i| {
        upload_body(&random_bytes(&format!("pooled-{i}"), 100), "bin")
    });
    assert!(
        took < bound,
        "{REQUESTS} uploads took {took:?} (bound {bound:?})"
    );
}
