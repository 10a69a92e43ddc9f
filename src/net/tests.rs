//! Tests of the event loop through a toy [`Service`] over loopback: framing of
//! split and pipelined requests, worker completions and their generation
//! check, refusals, failed streams, the idle sweep, end of stream with data,
//! the drain at stop, the connection limit, and file bodies whose bytes are
//! not in the page cache (read in by a worker, never by the loop). Each test
//! starts its own
//! [`Server`] (one loop thread, so a freed slot is the next one used) on
//! 127.0.0.1 port 0 and talks to it with std `TcpStream`. Ordering comes from
//! the events the toy reports and from a gate that holds workers back, never
//! from sleeps; every wait is bounded by [`WAIT`].

use super::*;
use crate::proto::{HEADER_LEN, Header, RESP_CMD, status};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Bound on every wait: a test that would hang fails instead.
const WAIT: Duration = Duration::from_secs(10);
/// Largest streamed chunk: small, so that short bodies take several chunks.
const CHUNK: usize = 16;

/// Buffered; answered on the loop thread with the body echoed.
const ECHO: u8 = 1;
/// Buffered; answered by a worker with the body echoed. A body that starts
/// with [`GATED`] holds the worker at the gate first.
const WORK: u8 = 2;
/// Streamed on the worker pool, with a one-byte head (a tag); answered with
/// the tag and the body length (u64 BE). Tag [`GATED`]: the first chunk waits
/// at the gate; tag [`FAIL`]: the first chunk fails with EIO.
const STREAM: u8 = 3;
/// Refused with EACCES before the body is read.
const REJECT: u8 = 4;
/// Buffered; the body is a path. Answered on the loop thread with the whole
/// file as a file body of pool 0 (ENOENT if it cannot be opened).
const FILE: u8 = 5;

const GATED: u8 = b'G';
const FAIL: u8 = b'F';

/// What the toy saw, in the order it saw it. Connections are numbered from 1
/// in the order they are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Open(u32),
    Close(u32),
    /// A whole buffered request, or the head of a streamed one: (conn, cmd).
    Request(u32, u8),
    /// A job was handed to the pool (sent on the loop thread just before).
    Queued,
    /// A worker of this connection's request waits at the gate.
    Waiting(u32),
    /// `stream_chunk` got this many bytes of this connection's body.
    Chunk(u32, usize),
    /// A stream state was dropped without `stream_end` (its work undone).
    Dropped(u32),
}

/// The toy service: four commands (above), one worker pool, and an event
/// channel the test reads.
struct Toy {
    pool: Pool,
    events: Sender<Event>,
    /// Gated work takes one message from here (or goes on once the test
    /// drops the sender).
    gate: Receiver<()>,
    next_id: AtomicU32,
}

struct Session {
    id: u32,
}

/// A streamed body in progress.
struct Upload {
    conn: u32,
    tag: u8,
    len: u64,
    ended: bool,
    events: Sender<Event>,
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.events.send(Event::Dropped(self.conn));
        }
    }
}

/// Report that `conn`'s job waits, then wait for the test to let it go.
fn pass_gate(events: &Sender<Event>, gate: &Receiver<()>, conn: u32) {
    let _ = events.send(Event::Waiting(conn));
    let _ = gate.recv_timeout(WAIT);
}

impl Service for Toy {
    type Session = Session;
    type Stream = Upload;

    fn open(&self, _: SocketAddr) -> Option<Session> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = self.events.send(Event::Open(id));
        Some(Session { id })
    }

    fn plan(&self, _: &mut Session, h: &Header) -> Plan {
        match h.cmd {
            ECHO | WORK | FILE => Plan::Buffer,
            STREAM => Plan::Stream { head: 1 },
            REJECT => Plan::Reject(status::EACCES),
            _ => Plan::Quit,
        }
    }

    fn request(&self, s: &mut Session, h: Header, body: Vec<u8>) -> Action {
        let _ = self.events.send(Event::Request(s.id, h.cmd));
        if h.cmd == ECHO {
            return Action::Reply(Reply::ok(body));
        }
        if h.cmd == FILE {
            let path = String::from_utf8_lossy(&body).into_owned();
            let Ok(file) = std::fs::File::open(path) else {
                return Action::Reply(Reply::error(status::ENOENT));
            };
            let len = file.metadata().map_or(0, |m| m.len());
            let mut r = Reply::ok(Vec::new());
            r.file = Some(FileBody::new(file, 0, len, 0));
            return Action::Reply(r);
        }
        let (events, gate, id) = (self.events.clone(), self.gate.clone(), s.id);
        Action::Work {
            pool: 0,
            job: Box::new(move || {
                if body.first() == Some(&GATED) {
                    pass_gate(&events, &gate, id);
                }
                Reply::ok(body)
            }),
        }
    }

    fn begin_stream(&self, s: &mut Session, h: &Header, head: &[u8]) -> Begin<Upload> {
        let _ = self.events.send(Event::Request(s.id, h.cmd));
        let state = Upload {
            conn: s.id,
            tag: head[0],
            len: 0,
            ended: false,
            events: self.events.clone(),
        };
        Begin::Stream { state, pool: 0 }
    }

    fn stream_chunk(&self, st: &mut Upload, data: &[u8]) -> Result<(), u8> {
        if st.tag == GATED && st.len == 0 {
            pass_gate(&self.events, &self.gate, st.conn);
        }
        let _ = self.events.send(Event::Chunk(st.conn, data.len()));
        if st.tag == FAIL {
            return Err(status::EIO);
        }
        st.len += data.len() as u64;
        Ok(())
    }

    fn stream_end(&self, mut st: Upload) -> Reply {
        st.ended = true;
        Reply::ok(stream_answer(st.tag, st.len))
    }

    fn pool(&self, idx: usize) -> Option<&Pool> {
        let _ = self.events.send(Event::Queued);
        (idx == 0).then_some(&self.pool)
    }

    fn close(&self, s: Session) {
        let _ = self.events.send(Event::Close(s.id));
    }
}

/// A running toy server and the test's ends of its channels. Dropping it opens
/// the gate for good, stops the server and waits for it.
struct Net {
    server: Option<Server>,
    addr: SocketAddr,
    toy: Arc<Toy>,
    events: Receiver<Event>,
    gate: Option<Sender<()>>,
}

fn options() -> ServerOptions {
    ServerOptions {
        name: "t-net".into(),
        max_connections: 64,
        // Also the drain's bound when a test ends with a request under way.
        idle_timeout: WAIT,
        chunk_size: CHUNK,
        busy_poll: Duration::ZERO,
    }
}

impl Net {
    /// Start a toy server with `opts` and `workers` pool threads.
    fn start(opts: ServerOptions, workers: usize) -> Net {
        let (events_tx, events) = unbounded();
        let (gate, gate_rx) = unbounded();
        let toy = Arc::new(Toy {
            pool: Pool::new(&format!("{}-w", opts.name), workers).expect("worker pool"),
            events: events_tx,
            gate: gate_rx,
            next_id: AtomicU32::new(0),
        });
        let listeners = Listeners::bind(Some("127.0.0.1"), 0, 1).expect("bind loopback");
        let server = Server::start(listeners, toy.clone(), opts).expect("start server");
        Net {
            addr: server.local_addr(),
            server: Some(server),
            toy,
            events,
            gate: Some(gate),
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(WAIT)).expect("read timeout");
        s.set_write_timeout(Some(WAIT)).expect("write timeout");
        s
    }

    /// Connect and wait until the server has accepted: (stream, its id).
    fn open(&self) -> (TcpStream, u32) {
        let s = self.connect();
        let id = loop {
            if let Event::Open(id) = self.next_event() {
                break id;
            }
        };
        (s, id)
    }

    fn next_event(&self) -> Event {
        self.events
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no event from the toy service within {WAIT:?}: {e}"))
    }

    /// Wait for `want`, returning the events seen before it. Those are gone
    /// afterwards: wait only for events that follow the last one waited for.
    fn until(&self, want: Event) -> Vec<Event> {
        let mut before = Vec::new();
        loop {
            let e = self.next_event();
            if e == want {
                return before;
            }
            before.push(e);
        }
    }

    fn wait(&self, want: Event) {
        self.until(want);
    }

    /// Let one gated job go on.
    fn release(&self) {
        self.gate
            .as_ref()
            .expect("gate open")
            .send(())
            .expect("toy holds the gate");
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.gate = None;
        if let Some(server) = self.server.take() {
            server.stop_handle().stop();
            server.join();
        }
        // A worker may still hold the toy for a moment after its completion
        // was delivered; dropping the last reference there would have the
        // pool join its own thread.
        let deadline = Instant::now() + WAIT;
        while Arc::strong_count(&self.toy) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A request: header and body.
fn frame(cmd: u8, body: &[u8]) -> Vec<u8> {
    let h = Header {
        pkg_len: body.len() as u64,
        cmd,
        status: 0,
    };
    let mut b = h.encode().to_vec();
    b.extend_from_slice(body);
    b
}

/// A STREAM request with head `tag` and `body`.
fn stream(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut all = vec![tag];
    all.extend_from_slice(body);
    frame(STREAM, &all)
}

/// The toy's answer to a whole STREAM body.
fn stream_answer(tag: u8, len: u64) -> Vec<u8> {
    let mut b = vec![tag];
    b.extend_from_slice(&len.to_be_bytes());
    b
}

/// Read one reply: (status, body).
fn read_reply(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).expect("reply header");
    let h = Header::decode(&h).expect("reply header decodes");
    assert_eq!(h.cmd, RESP_CMD, "reply header cmd");
    let mut body = vec![0u8; h.pkg_len as usize];
    s.read_exact(&mut body).expect("reply body");
    (h.status, body)
}

/// The server closed `s` and sent nothing more: end of stream, or a reset
/// when the server closed with bytes of ours unread.
fn assert_closed(s: &mut TcpStream) {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close the connection, got {other:?}"),
    }
}

/// Write `bytes` in pieces of `n`, one system call each (no Nagle).
fn write_in_pieces(s: &mut TcpStream, bytes: &[u8], n: usize) {
    for piece in bytes.chunks(n) {
        s.write_all(piece).expect("write piece");
    }
}

#[test]
fn a_header_split_byte_by_byte_is_framed() {
    let net = Net::start(options(), 2);
    let mut c = net.connect();
    write_in_pieces(&mut c, &frame(ECHO, b"hello"), 1);
    assert_eq!(read_reply(&mut c), (0, b"hello".to_vec()));
    // The header and the first body byte in one write, the rest bytewise:
    // the framing is back at a request boundary after the first.
    let req = frame(WORK, b"world");
    c.write_all(&req[..HEADER_LEN + 1]).expect("write");
    write_in_pieces(&mut c, &req[HEADER_LEN + 1..], 1);
    assert_eq!(read_reply(&mut c), (0, b"world".to_vec()));
}

#[test]
fn a_request_in_many_tiny_writes_is_served() {
    let net = Net::start(options(), 2);
    let mut c = net.connect();
    let body: Vec<u8> = (0..200u8).collect();
    write_in_pieces(&mut c, &frame(WORK, &body), 3);
    assert_eq!(read_reply(&mut c), (0, body.clone()));
    // A streamed body of several chunks, none arriving whole.
    write_in_pieces(&mut c, &stream(b's', &body[..100]), 3);
    assert_eq!(read_reply(&mut c), (0, stream_answer(b's', 100)));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let net = Net::start(options(), 4);
    let mut c = net.connect();
    let long: Vec<u8> = (0..40).collect();
    let mut all = frame(ECHO, b"one");
    all.extend(frame(WORK, b"two"));
    all.extend(stream(b'3', &long));
    all.extend(frame(ECHO, b"four"));
    all.extend(frame(WORK, b"five"));
    all.extend(frame(WORK, b""));
    c.write_all(&all).expect("write");
    assert_eq!(read_reply(&mut c), (0, b"one".to_vec()));
    assert_eq!(read_reply(&mut c), (0, b"two".to_vec()));
    assert_eq!(read_reply(&mut c), (0, stream_answer(b'3', 40)));
    assert_eq!(read_reply(&mut c), (0, b"four".to_vec()));
    assert_eq!(read_reply(&mut c), (0, b"five".to_vec()));
    assert_eq!(read_reply(&mut c), (0, Vec::new()));
}

/// A chunk completion that comes back after its connection closed must not
/// reach the connection that took over the slot: the loop drops it (by the
/// slot's generation), which drops and so undoes the stream state. Without
/// the check, the new connection's stream would go on with the old state
/// and answer with its tag.
#[test]
fn a_stale_chunk_completion_does_not_reach_the_next_connection_in_its_slot() {
    // One worker: the new connection's chunk queues behind the old one's, so
    // the stale completion arrives first.
    let net = Net::start(options(), 1);
    let (mut a, id_a) = net.open();
    let mut partial = stream(GATED, &[0; 3 * CHUNK]);
    partial.truncate(HEADER_LEN + 1 + CHUNK);
    a.write_all(&partial).expect("write");
    net.wait(Event::Waiting(id_a));
    // The server reads the end of stream while it still wants body bytes.
    drop(a);
    net.wait(Event::Close(id_a));

    let (mut b, id_b) = net.open();
    b.write_all(&stream(b'b', &[1; 2 * CHUNK])).expect("write");
    net.wait(Event::Request(id_b, STREAM));
    // Its first chunk is queued (behind the held one): a chunk is in flight.
    net.wait(Event::Queued);
    net.release();
    assert_eq!(
        read_reply(&mut b),
        (0, stream_answer(b'b', 2 * CHUNK as u64)),
        "the second connection's stream kept its own state"
    );
    let before = net.until(Event::Dropped(id_a));
    assert!(
        before.contains(&Event::Chunk(id_a, CHUNK)),
        "the held chunk was written, then its state dropped: {before:?}"
    );
}

/// A client that goes away while its request is with a worker: the loop
/// reads nothing then (the next request waits for the reply), and a
/// shutdown of the client's sending side looks the same as a close, so the
/// connection keeps its slot until the reply is tried. The reply then goes
/// to the dead socket only, and another client is served meanwhile and after.
#[test]
fn a_reply_for_a_departed_client_reaches_no_other_client() {
    let net = Net::start(options(), 1);
    let (mut a, id_a) = net.open();
    a.write_all(&frame(WORK, b"G for a")).expect("write");
    net.wait(Event::Waiting(id_a));
    drop(a);

    let (mut b, _) = net.open();
    b.write_all(&frame(ECHO, b"b1")).expect("write");
    assert_eq!(read_reply(&mut b), (0, b"b1".to_vec()));
    assert_eq!(
        net.server().conn_stats().counts()[1],
        2,
        "the departed client's connection is held while its job runs"
    );
    net.release();
    net.wait(Event::Close(id_a));
    b.write_all(&frame(ECHO, b"b2")).expect("write");
    assert_eq!(read_reply(&mut b), (0, b"b2".to_vec()));
}

/// `Plan::Reject`: the reply carries the status, then the connection is
/// closed; the unread body, which here holds a whole request, is never
/// taken for one.
#[test]
fn a_rejected_request_is_answered_then_closed_and_its_body_never_parsed() {
    let net = Net::start(options(), 1);
    // A short body, and one far longer than the server reads at once.
    for pad in [0, 4096] {
        let (mut c, id) = net.open();
        let mut smuggled = frame(ECHO, b"smuggled");
        smuggled.resize(smuggled.len() + pad, 0);
        let mut req = frame(REJECT, &smuggled);
        req.extend(frame(ECHO, b"after"));
        c.write_all(&req).expect("write");
        assert_eq!(read_reply(&mut c), (status::EACCES, Vec::new()));
        assert_closed(&mut c);
        let before = net.until(Event::Close(id));
        assert!(
            !before.iter().any(|e| matches!(e, Event::Request(..))),
            "nothing after the refused header was handled: {before:?}"
        );
    }
}

/// A streamed body whose chunk fails: the rest of the body is read and
/// dropped (stream_chunk is not called again), the state is dropped, and
/// the reply carries the error once the whole body is in. The connection
/// stays usable (EIO does not close it): the body was not parsed as requests.
#[test]
fn a_failed_stream_drains_its_body_then_answers_the_error() {
    let net = Net::start(options(), 2);
    let (mut c, id) = net.open();
    // After the failing first chunk, the body holds a whole ECHO request.
    let mut body = vec![b'x'; CHUNK];
    body.extend(frame(ECHO, b"smuggled"));
    body.resize(4 * CHUNK + 5, b'y');
    let req = stream(FAIL, &body);
    // Half now: the failure is known before the rest arrives.
    let half = HEADER_LEN + 1 + 2 * CHUNK;
    c.write_all(&req[..half]).expect("write");
    net.wait(Event::Chunk(id, CHUNK));
    c.write_all(&req[half..]).expect("write");
    assert_eq!(read_reply(&mut c), (status::EIO, Vec::new()));
    c.write_all(&frame(ECHO, b"next")).expect("write");
    assert_eq!(read_reply(&mut c), (0, b"next".to_vec()));
    let before = net.until(Event::Request(id, ECHO));
    assert_eq!(
        before,
        [Event::Dropped(id)],
        "no chunk after the failed one went to the worker, the state was dropped, \
         and nothing was parsed from the body"
    );
}

/// A stream that fails on its last chunk (here a body of one chunk or less,
/// the usual small upload) is answered with the error at once.
#[test]
fn a_stream_failing_on_its_last_chunk_answers_the_error() {
    let net = Net::start(options(), 2);
    let (mut c, id) = net.open();
    for len in [5, CHUNK, 2 * CHUNK] {
        c.write_all(&stream(FAIL, &vec![b'z'; len])).expect("write");
        assert_eq!(
            read_reply(&mut c),
            (status::EIO, Vec::new()),
            "{len}-byte body"
        );
        net.wait(Event::Dropped(id));
    }
    c.write_all(&frame(ECHO, b"still in sync")).expect("write");
    assert_eq!(read_reply(&mut c), (0, b"still in sync".to_vec()));
}

/// The idle sweep closes a connection idle longer than `idle_timeout`, but
/// not one whose request is with a worker (checked by the same sweep: the
/// busy connection has been idle longer than the one closed).
#[test]
fn the_idle_sweep_closes_idle_connections_but_not_busy_ones() {
    let idle = Duration::from_millis(300);
    let net = Net::start(
        ServerOptions {
            idle_timeout: idle,
            ..options()
        },
        1,
    );
    let (mut busy, id_busy) = net.open();
    busy.write_all(&frame(WORK, b"G busy")).expect("write");
    net.wait(Event::Waiting(id_busy));

    let t0 = Instant::now();
    let (mut quiet, id_quiet) = net.open();
    quiet.write_all(&frame(ECHO, b"once")).expect("write");
    assert_eq!(read_reply(&mut quiet), (0, b"once".to_vec()));
    assert_closed(&mut quiet);
    assert!(t0.elapsed() >= idle, "closed after {:?}", t0.elapsed());
    net.wait(Event::Close(id_quiet));

    net.release();
    assert_eq!(read_reply(&mut busy), (0, b"G busy".to_vec()));
    // Once answered it is idle too.
    assert_closed(&mut busy);
}

/// Whole requests followed at once by the end of the client's stream
/// (shutdown of its sending side): every one is answered, then the server
/// closes. A request cut short by the end of stream gets no reply.
#[test]
fn requests_with_the_end_of_stream_are_answered_then_closed() {
    let net = Net::start(options(), 2);
    let (mut c, _) = net.open();
    let mut all = frame(ECHO, b"a");
    all.extend(frame(WORK, b"b"));
    all.extend(stream(b'c', &[7; 3 * CHUNK]));
    c.write_all(&all).expect("write");
    c.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(read_reply(&mut c), (0, b"a".to_vec()));
    assert_eq!(read_reply(&mut c), (0, b"b".to_vec()));
    assert_eq!(
        read_reply(&mut c),
        (0, stream_answer(b'c', 3 * CHUNK as u64))
    );
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("end of stream");
    assert!(rest.is_empty(), "nothing after the replies: {rest:?}");

    let (mut cut, id) = net.open();
    let req = frame(ECHO, b"cut short");
    cut.write_all(&req[..req.len() - 1]).expect("write");
    cut.shutdown(Shutdown::Write).expect("shutdown");
    assert_closed(&mut cut);
    let before = net.until(Event::Close(id));
    assert!(
        !before.contains(&Event::Request(id, ECHO)),
        "the cut request was not handled: {before:?}"
    );
}

/// Drain, don't drop: after stop, a request with a worker and one being read
/// are answered, an idle connection is closed, new connections are refused,
/// and the server stops once the last reply is written.
#[test]
fn stop_answers_requests_under_way_and_closes_the_rest() {
    // Two workers: one held by the gate, one for the body being read.
    let mut net = Net::start(options(), 2);
    let (mut working, id_working) = net.open();
    working
        .write_all(&frame(WORK, b"G working"))
        .expect("write");
    net.wait(Event::Waiting(id_working));
    let (mut reading, id_reading) = net.open();
    let req = stream(b'r', &[1; 2 * CHUNK]);
    let half = HEADER_LEN + 1 + CHUNK / 2;
    reading.write_all(&req[..half]).expect("write");
    net.wait(Event::Request(id_reading, STREAM));
    let (mut idle, _) = net.open();

    let server = net.server.take().expect("server running");
    let addr = server.local_addr();
    server.stop_handle().stop();
    let (joined_tx, joined) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        server.join();
        let _ = joined_tx.send(());
    });

    // The drain closes the listener first, then the idle connections.
    assert_closed(&mut idle);
    match TcpStream::connect(addr) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
        other => panic!("a connection after stop was not refused: {other:?}"),
    }
    reading.write_all(&req[half..]).expect("write");
    assert_eq!(
        read_reply(&mut reading),
        (0, stream_answer(b'r', 2 * CHUNK as u64))
    );
    assert_closed(&mut reading);
    assert_eq!(
        joined.try_recv(),
        Err(crossbeam_channel::TryRecvError::Empty),
        "still draining: a request is with a worker"
    );
    net.release();
    assert_eq!(read_reply(&mut working), (0, b"G working".to_vec()));
    assert_closed(&mut working);
    joined
        .recv_timeout(WAIT)
        .expect("the server stopped once its last reply was written");
}

/// The drain is bounded by `idle_timeout`: a request whose worker does not
/// finish by then loses its connection, unanswered, and the server stops.
#[test]
fn stop_gives_up_on_a_request_after_its_bound() {
    let bound = Duration::from_millis(300);
    let mut net = Net::start(
        ServerOptions {
            idle_timeout: bound,
            ..options()
        },
        1,
    );
    let (mut c, id) = net.open();
    c.write_all(&frame(WORK, b"G never")).expect("write");
    net.wait(Event::Waiting(id));
    let server = net.server.take().expect("server running");
    let t0 = Instant::now();
    server.stop_handle().stop();
    let (joined_tx, joined) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        server.join();
        let _ = joined_tx.send(());
    });
    match joined.recv_timeout(WAIT) {
        Ok(()) => {}
        Err(RecvTimeoutError::Timeout) => panic!("the stop took longer than {WAIT:?}"),
        Err(e) => panic!("join thread: {e}"),
    }
    assert!(t0.elapsed() >= bound, "gave up after {:?}", t0.elapsed());
    assert_closed(&mut c);
    net.wait(Event::Close(id));
    // The worker finishes late; its completion has nowhere to go.
    net.release();
}

/// Beyond `max_connections` a client waits in the listen backlog, unserved,
/// and is accepted and served as soon as a connection closes.
#[test]
fn connections_beyond_the_limit_wait_until_one_closes() {
    let net = Net::start(
        ServerOptions {
            max_connections: 1,
            ..options()
        },
        1,
    );
    let (mut first, id_first) = net.open();
    let mut second = net.connect();
    second.write_all(&frame(ECHO, b"second")).expect("write");
    // A round trip on the first: the loop has been through its events since.
    first.write_all(&frame(ECHO, b"first")).expect("write");
    assert_eq!(read_reply(&mut first), (0, b"first".to_vec()));
    assert_eq!(net.server().conn_stats().counts()[..2], [1, 1]);
    second.set_nonblocking(true).expect("nonblocking");
    let mut b = [0u8; 1];
    assert_eq!(
        second.read(&mut b).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock),
        "the second connection is not served while the first is open"
    );
    second.set_nonblocking(false).expect("blocking");

    drop(first);
    let before = net.until(Event::Open(2));
    assert!(before.contains(&Event::Close(id_first)), "{before:?}");
    assert_eq!(read_reply(&mut second), (0, b"second".to_vec()));
}

mod cold;
