//! The HTTP server: one mio loop thread reads request heads and writes
//! responses; a [`Handler`] answers each request on a worker of the server's
//! pool (it may open files), and a file body is sent with `sendfile` only
//! from the page cache: a window that is not there is read in by a worker
//! first, so a cold disk never holds up the loop. Keep-alive and pipelined
//! requests are served in order; a head must arrive within the head timeout,
//! a kept connection is closed after the idle timeout.

use super::parse::{self, Bad, Method, Request};
use crate::net::{FileBody, Flushed, Pool};
use crossbeam_channel::{Receiver, Sender, unbounded};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);

/// Answers requests; runs on the server's worker threads.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &Request, peer: SocketAddr) -> Response;
}

/// What a response sends after its head.
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// A file region, by sendfile from the page cache (see
    /// [`FileBody::send_to`]); its pool index is not used here.
    File(FileBody),
}

impl Body {
    /// Bytes it sends.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File(f) => f.len,
        }
    }
}

/// A response: status, headers (Date, Server, Content-Length and Connection
/// are added), body. A HEAD request gets the head only.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// Close the connection afterwards.
    pub close: bool,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
            close: false,
        }
    }

    /// A short text response (errors).
    pub fn text(status: u16, text: &str) -> Response {
        let mut r = Response::new(status);
        r.headers
            .push(("Content-Type", "text/plain; charset=utf-8".into()));
        r.body = Body::Bytes(format!("{text}\n").into_bytes());
        r
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Settings of a server.
pub struct Options {
    /// Thread names (`<name>` for the loop, `<name>-w<i>` for workers).
    pub name: String,
    pub workers: usize,
    pub max_connections: usize,
    /// Time a request head may take to arrive, from its first byte.
    pub head_timeout: Duration,
    /// Time a kept connection may stay without a request.
    pub idle_timeout: Duration,
}

/// A running server; stopped on drop.
pub struct HttpServer {
    addr: SocketAddr,
    quit: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serve `listener` with `handler`.
pub fn start(
    listener: std::net::TcpListener,
    handler: Arc<dyn Handler>,
    opts: Options,
) -> io::Result<HttpServer> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let mut listener = TcpListener::from_std(listener);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (tx, rx) = unbounded();
    let pool = Pool::new(&format!("{}-w", opts.name), opts.workers.max(1))?;
    let quit = Arc::new(AtomicBool::new(false));
    let mut lp = Loop {
        poll,
        listener,
        conns: Vec::new(),
        free: Vec::new(),
        handler,
        pool,
        tx,
        rx,
        waker: waker.clone(),
        quit: quit.clone(),
        opts,
        epoch: 0,
    };
    let thread = std::thread::Builder::new()
        .name(lp.opts.name.clone())
        .spawn(move || lp.run())?;
    Ok(HttpServer {
        addr,
        quit,
        waker,
        thread: Some(thread),
    })
}

/// A worker's answer for connection `token` of generation `epoch`.
enum Done {
    Response {
        token: usize,
        epoch: u64,
        resp: Response,
        head_only: bool,
        keep_alive: bool,
    },
    /// The body's next window is in the page cache now (or failed to be).
    Warmed {
        token: usize,
        epoch: u64,
        body: FileBody,
        result: io::Result<bool>,
    },
}

enum State {
    /// Reading a request head (since `since`, if a byte of it came).
    Head { since: Option<Instant> },
    /// A worker has the request, or the body's next window.
    Busy,
    /// Sending `tx[pos..]`, then `file`.
    Send,
}

struct Conn {
    sock: TcpStream,
    peer: SocketAddr,
    epoch: u64,
    rx: Vec<u8>,
    tx: Vec<u8>,
    pos: usize,
    file: Option<FileBody>,
    keep_alive: bool,
    /// The peer shut down its side: answer what came, then close.
    peer_closed: bool,
    state: State,
    last: Instant,
    writable: bool,
}

struct Loop {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    handler: Arc<dyn Handler>,
    pool: Pool,
    tx: Sender<Done>,
    rx: Receiver<Done>,
    waker: Arc<Waker>,
    quit: Arc<AtomicBool>,
    opts: Options,
    epoch: u64,
}

impl Loop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        let mut last_sweep = Instant::now();
        while !self.quit.load(Ordering::SeqCst) {
            if let Err(e) = self
                .poll
                .poll(&mut events, Some(Duration::from_millis(500)))
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::error!("{}: poll: {e}", self.opts.name);
                return;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.on_readable(t);
                        }
                        if ev.is_writable() {
                            self.on_writable(t);
                        }
                    }
                }
            }
            while let Ok(d) = self.rx.try_recv() {
                self.on_done(d);
            }
            if last_sweep.elapsed() >= Duration::from_millis(500) {
                last_sweep = Instant::now();
                self.sweep();
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut sock, peer)) => {
                    let live = self.conns.len() - self.free.len();
                    if live >= self.opts.max_connections {
                        log::warn!("{}: {peer}: too many connections, refused", self.opts.name);
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    let token = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut sock, Token(token), Interest::READABLE)
                    {
                        log::warn!("{}: register {peer}: {e}", self.opts.name);
                        self.free.push(token);
                        continue;
                    }
                    self.epoch += 1;
                    self.conns[token] = Some(Conn {
                        sock,
                        peer,
                        epoch: self.epoch,
                        rx: Vec::new(),
                        tx: Vec::new(),
                        pos: 0,
                        file: None,
                        keep_alive: true,
                        peer_closed: false,
                        state: State::Head { since: None },
                        last: Instant::now(),
                        writable: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("{}: accept: {e}", self.opts.name);
                    return;
                }
            }
        }
    }

    fn close(&mut self, token: usize) {
        if let Some(mut c) = self.conns.get_mut(token).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.sock);
            self.free.push(token);
        }
    }

    fn on_readable(&mut self, token: usize) {
        self.fill(token);
        self.next_request(token);
    }

    /// Read what the socket has, up to a bound (a head and a pipelined one).
    fn fill(&mut self, token: usize) {
        let Some(c) = self.conns.get_mut(token).and_then(Option::as_mut) else {
            return;
        };
        let mut buf = [0u8; 4096];
        while !c.peer_closed && c.rx.len() <= 2 * parse::MAX_HEAD {
            match c.sock.read(&mut buf) {
                Ok(0) => c.peer_closed = true,
                Ok(n) => {
                    c.rx.extend_from_slice(&buf[..n]);
                    c.last = Instant::now();
                    if let State::Head {
                        since: since @ None,
                    } = &mut c.state
                    {
                        *since = Some(Instant::now());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => c.peer_closed = true,
            }
        }
    }

    /// Parse and dispatch the next request of `token` if it waits for one.
    fn next_request(&mut self, token: usize) {
        let Some(c) = self.conns.get_mut(token).and_then(Option::as_mut) else {
            return;
        };
        if !matches!(c.state, State::Head { .. }) {
            return;
        }
        let eof = c.peer_closed;
        if c.rx.is_empty() {
            if eof {
                self.close(token);
            }
            return;
        }
        match parse::parse(&c.rx) {
            Ok(Some((req, n))) => {
                c.rx.drain(..n);
                c.state = State::Busy;
                let keep_alive = req.keep_alive && !eof;
                let head_only = req.method == Method::Head;
                let (tx, waker, handler) =
                    (self.tx.clone(), self.waker.clone(), self.handler.clone());
                let (peer, epoch) = (c.peer, c.epoch);
                self.pool.submit(Box::new(move || {
                    let resp = if req.method == Method::Other {
                        Response::text(405, "only GET and HEAD").header("Allow", "GET, HEAD")
                    } else {
                        handler.handle(&req, peer)
                    };
                    let _ = tx.send(Done::Response {
                        token,
                        epoch,
                        resp,
                        head_only,
                        keep_alive,
                    });
                    let _ = waker.wake();
                }));
            }
            Ok(None) if eof => self.close(token),
            Ok(None) => {}
            Err(bad) => {
                log::debug!("{}: {}: {bad}", self.opts.name, c.peer);
                let status = if bad == Bad::TooLarge { 431 } else { 400 };
                let mut r = Response::text(status, &bad.to_string());
                r.close = true;
                self.respond(token, r, false, false);
            }
        }
    }

    fn on_done(&mut self, d: Done) {
        match d {
            Done::Response {
                token,
                epoch,
                resp,
                head_only,
                keep_alive,
            } => {
                if self.live(token, epoch) {
                    self.respond(token, resp, head_only, keep_alive);
                }
            }
            Done::Warmed {
                token,
                epoch,
                body,
                result,
            } => {
                if !self.live(token, epoch) {
                    return;
                }
                let c = self.conns[token].as_mut().expect("live");
                match result {
                    Ok(true) => {}
                    Ok(false) => {
                        log::warn!(
                            "{}: {}: the file shrank while it was sent",
                            self.opts.name,
                            c.peer
                        );
                        self.close(token);
                        return;
                    }
                    Err(e) => {
                        log::warn!("{}: reading a body for {}: {e}", self.opts.name, c.peer);
                        self.close(token);
                        return;
                    }
                }
                c.file = Some(body);
                c.state = State::Send;
                self.flush(token);
            }
        }
    }

    fn live(&self, token: usize, epoch: u64) -> bool {
        self.conns
            .get(token)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.epoch == epoch)
    }

    fn respond(&mut self, token: usize, resp: Response, head_only: bool, keep_alive: bool) {
        let Some(c) = self.conns.get_mut(token).and_then(Option::as_mut) else {
            return;
        };
        let keep = keep_alive && !resp.close && !c.peer_closed;
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nServer: fdfs\r\nDate: {}\r\nContent-Length: {}\r\n",
            resp.status,
            reason(resp.status),
            super::date::format(unix_now()),
            resp.body.len()
        );
        for (k, v) in &resp.headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str(if keep {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        c.tx = head.into_bytes();
        c.pos = 0;
        c.file = None;
        if !head_only {
            match resp.body {
                Body::Empty => {}
                Body::Bytes(b) => c.tx.extend_from_slice(&b),
                Body::File(f) if f.len > 0 => c.file = Some(f),
                Body::File(_) => {}
            }
        }
        c.keep_alive = keep;
        c.state = State::Send;
        self.flush(token);
    }

    fn on_writable(&mut self, token: usize) {
        if self
            .conns
            .get(token)
            .and_then(Option::as_ref)
            .is_some_and(|c| matches!(c.state, State::Send))
        {
            self.flush(token);
        }
    }

    /// Write what is queued; then the next request, or close.
    fn flush(&mut self, token: usize) {
        let name = self.opts.name.clone();
        let Some(c) = self.conns.get_mut(token).and_then(Option::as_mut) else {
            return;
        };
        let outcome = (|| -> io::Result<Flushed> {
            while c.pos < c.tx.len() {
                match c.sock.write(&c.tx[c.pos..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => c.pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            c.last = Instant::now();
            match c.file.as_mut() {
                Some(f) => f.send_to(&c.sock),
                None => Ok(Flushed::All),
            }
        })();
        match outcome {
            Ok(Flushed::All) => {
                c.tx.clear();
                c.pos = 0;
                c.file = None;
                if c.writable {
                    c.writable = false;
                    let _ = self.poll.registry().reregister(
                        &mut c.sock,
                        Token(token),
                        Interest::READABLE,
                    );
                }
                if !c.keep_alive {
                    self.close(token);
                    return;
                }
                c.state = State::Head {
                    since: (!c.rx.is_empty()).then(Instant::now),
                };
                c.last = Instant::now();
                self.fill(token);
                self.next_request(token);
            }
            Ok(Flushed::Cold) => self.warm(token),
            Ok(Flushed::Blocked) => {
                if !c.writable {
                    c.writable = true;
                    let _ = self.poll.registry().reregister(
                        &mut c.sock,
                        Token(token),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                }
            }
            Err(e) => {
                log::debug!("{name}: sending to {}: {e}", c.peer);
                self.close(token);
            }
        }
    }

    /// Have a worker read the body's next window into the page cache.
    fn warm(&mut self, token: usize) {
        let Some(c) = self.conns.get_mut(token).and_then(Option::as_mut) else {
            return;
        };
        let Some(mut body) = c.file.take() else {
            return;
        };
        c.state = State::Busy;
        let (tx, waker, epoch) = (self.tx.clone(), self.waker.clone(), c.epoch);
        self.pool.submit(Box::new(move || {
            let result = body.warm();
            let _ = tx.send(Done::Warmed {
                token,
                epoch,
                body,
                result,
            });
            let _ = waker.wake();
        }));
    }

    /// Close connections whose head is late or that idled too long.
    fn sweep(&mut self) {
        let now = Instant::now();
        let late: Vec<usize> = (self.conns.iter().enumerate())
            .filter_map(|(t, c)| {
                let c = c.as_ref()?;
                let late = match c.state {
                    State::Head { since: Some(s) } => {
                        now.duration_since(s) > self.opts.head_timeout
                    }
                    State::Head { since: None } => {
                        now.duration_since(c.last) > self.opts.idle_timeout
                    }
                    State::Send => now.duration_since(c.last) > self.opts.idle_timeout,
                    State::Busy => false,
                };
                late.then_some(t)
            })
            .collect();
        for t in late {
            if let Some(c) = self.conns[t].as_mut()
                && matches!(c.state, State::Head { since: Some(_) })
            {
                // Tell a slow client why (best effort), then close.
                let _ = c
                    .sock
                    .write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
            self.close(t);
        }
    }
}
