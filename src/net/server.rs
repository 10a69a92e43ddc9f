//! The event loop: one mio `Poll` per network thread, each with its own
//! SO_REUSEPORT listener, slab of connections, completion channel and waker.
//! Workers never touch sockets: they send a completion and wake the loop.

use super::conn::{Conn, Flushed, ReadOutcome, Rx, shrank};
use super::handoff::{Done, ON_LOOP, Wake, deliver, run_on, send_done};
use super::listen::Listeners;
use super::slab::Slab;
use super::spin::Spin;
use super::{Action, Begin, Plan, Reply, Service};
use crate::proto::{HEADER_LEN, Header};
use crossbeam_channel::{Receiver, Sender, unbounded};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);
/// How often idle connections are swept and deferred accepts retried.
const TICK: Duration = Duration::from_millis(500);

/// Knobs of the network layer.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Thread name prefix, e.g. "fdfs-tracker".
    pub name: String,
    /// Total connections over all threads; more wait in the listen backlog.
    pub max_connections: usize,
    /// Idle connections are closed after this long.
    pub idle_timeout: Duration,
    /// Largest chunk of a streamed body handed to a worker at once.
    pub chunk_size: usize,
    /// How long a loop keeps polling after events before it sleeps (zero:
    /// never; see `net::spin`).
    pub busy_poll: Duration,
}

/// Connection counters (FastDFS reports them in its stat records), and
/// what the server answered (`/metrics`).
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections accepted since start.
    pub alloc: AtomicUsize,
    /// Connections open now.
    pub current: AtomicUsize,
    /// Most connections open at once.
    pub max: AtomicUsize,
    /// Replies by command and status, latency, bytes.
    pub requests: super::RequestStats,
}

impl ConnStats {
    /// `[alloc, current, max]` now, each capped at `u32::MAX` as the stat records carry them.
    pub fn counts(&self) -> [u32; 3] {
        let n = |a: &AtomicUsize| a.load(Ordering::Relaxed).min(u32::MAX as usize) as u32;
        [n(&self.alloc), n(&self.current), n(&self.max)]
    }
}

/// Stops a running [`Server`] from any thread.
#[derive(Clone)]
pub struct StopHandle {
    stop: Arc<AtomicBool>,
    wakers: Arc<Vec<Arc<Wake>>>,
}

impl StopHandle {
    /// Ask every loop to stop; `Server::join` returns once they have.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.wakers.iter() {
            let _ = w.waker.wake();
        }
    }
}

/// A bound, running server: its address and its loop threads.
pub struct Server {
    addr: SocketAddr,
    handle: StopHandle,
    conns: Arc<ConnStats>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Start the loops serving `svc`, one per listener of `listeners`.
    pub fn start<S: Service>(
        listeners: Listeners,
        svc: Arc<S>,
        opts: ServerOptions,
    ) -> io::Result<Server> {
        let Listeners {
            addr: local, socks, ..
        } = listeners;
        let stop = Arc::new(AtomicBool::new(false));
        let spinning = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(ConnStats::default());
        let mut loops = Vec::new();
        let mut wakers = Vec::new();
        for (i, std_listener) in socks.into_iter().enumerate() {
            let poll = Poll::new()?;
            let waker = Arc::new(Wake {
                waker: Waker::new(poll.registry(), WAKER)?,
                pending: AtomicBool::new(false),
            });
            let (done_tx, done_rx) = unbounded();
            let mut listener = TcpListener::from_std(std_listener);
            poll.registry()
                .register(&mut listener, LISTENER, Interest::READABLE)?;
            wakers.push(waker.clone());
            loops.push(Loop {
                poll,
                listener: Some(listener),
                svc: svc.clone(),
                opts: opts.clone(),
                conns: Slab::default(),
                total: conns.clone(),
                done_tx,
                done_rx,
                waker,
                stop: stop.clone(),
                accept_pending: false,
                draining: false,
                id: i,
                spin: Spin::new(opts.busy_poll),
                spinning: spinning.clone(),
            });
        }
        let handle = StopHandle {
            stop,
            wakers: Arc::new(wakers),
        };
        let mut threads = Vec::new();
        for mut lp in loops {
            let name = format!("{}-loop{}", opts.name, lp.id);
            threads.push(std::thread::Builder::new().name(name).spawn(move || {
                if let Err(e) = lp.run() {
                    log::error!("event loop {} failed: {e}", lp.id);
                }
            })?);
        }
        Ok(Server {
            conns,
            addr: local,
            handle,
            threads,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server.
    pub fn conn_stats(&self) -> Arc<ConnStats> {
        self.conns.clone()
    }

    /// A handle that stops the server.
    pub fn stop_handle(&self) -> StopHandle {
        self.handle.clone()
    }

    /// Wait until every loop has stopped.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

struct Loop<S: Service> {
    poll: Poll,
    /// Closed (None) once the server stops: the kernel then refuses new connections.
    listener: Option<TcpListener>,
    svc: Arc<S>,
    opts: ServerOptions,
    conns: Slab<Conn<S::Session, S::Stream>>,
    total: Arc<ConnStats>,
    done_tx: Sender<Done<S::Stream>>,
    done_rx: Receiver<Done<S::Stream>>,
    waker: Arc<Wake>,
    stop: Arc<AtomicBool>,
    accept_pending: bool,
    /// Stopping: no new requests; a connection closes once its reply is written.
    draining: bool,
    id: usize,
    spin: Spin,
    /// Set while one of the server's loops spins.
    spinning: Arc<AtomicBool>,
}

impl<S: Service> Loop<S> {
    fn run(&mut self) -> io::Result<()> {
        ON_LOOP.set(true);
        let mut events = Events::with_capacity(256);
        let mut next_tick = Instant::now() + TICK;
        while !self.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let idle = next_tick.saturating_duration_since(now);
            let timeout = self.spin.timeout(now, idle, &self.spinning);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.spin
                .polled(Instant::now(), !events.is_empty(), &self.spinning);
            self.handle(&events);
            self.completions();
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + TICK;
                self.sweep();
                if self.accept_pending {
                    self.accept();
                }
            }
        }
        self.drain(&mut events)
    }

    /// Act on one poll's events.
    fn handle(&mut self, events: &Events) {
        for ev in events.iter() {
            match ev.token() {
                LISTENER => self.accept(),
                WAKER => {}
                Token(t) => {
                    if (ev.is_readable() || ev.is_read_closed() || ev.is_error())
                        && let Some(c) = self.conns.get_mut(t)
                    {
                        c.readable = true;
                        c.hup |= ev.is_read_closed() || ev.is_error();
                    }
                    if ev.is_writable() || ev.is_readable() || ev.is_read_closed() || ev.is_error()
                    {
                        self.drive(t);
                    }
                }
            }
        }
    }

    /// Drain, don't drop: once stopped, accept nothing more and close the
    /// connections that wait for a request, but keep serving each one with a
    /// request under way (being read, with a worker, held until the journal
    /// has it, or its reply being written) until its reply is written, then
    /// close it. A client whose request was taken gets its answer, and a
    /// durable upload's reply still waits for its journal round. Bounded by
    /// `idle_timeout`: what is not done by then is closed.
    fn drain(&mut self, events: &mut Events) -> io::Result<()> {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.accept_pending = false;
        self.draining = true;
        for t in self.conns.indices() {
            if self.conns.get_mut(t).is_some_and(|c| !c.in_flight()) {
                self.close(t, "server stopping");
            }
        }
        let busy = self.conns.indices().len();
        if busy > 0 {
            log::info!(
                "{}: stopping: answering {busy} request(s) under way",
                self.name()
            );
        }
        let deadline = Instant::now() + self.opts.idle_timeout;
        let mut next_tick = Instant::now() + TICK;
        while !self.conns.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let timeout = deadline.min(next_tick).saturating_duration_since(now);
            if let Err(e) = self.poll.poll(events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.handle(events);
            self.completions();
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + TICK;
                self.sweep();
            }
        }
        let late = self.conns.indices();
        if !late.is_empty() {
            log::warn!(
                "{}: stopping: {} request(s) still under way after {:?}, closing their connections",
                self.name(),
                late.len(),
                self.opts.idle_timeout
            );
        }
        for t in late {
            self.close(t, "server stopping: no reply within the drain deadline");
        }
        Ok(())
    }

    /// The loop's thread name, for log lines.
    fn name(&self) -> String {
        format!("{}-loop{}", self.opts.name, self.id)
    }

    fn accept(&mut self) {
        loop {
            if self.total.current.load(Ordering::Relaxed) >= self.opts.max_connections {
                // Leave the rest in the backlog; retried when a connection closes.
                self.accept_pending = true;
                return;
            }
            let Some(listener) = &self.listener else {
                return;
            };
            let (sock, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    return;
                }
                Err(e) => {
                    log::warn!("accept: {e}");
                    self.accept_pending = true;
                    return;
                }
            };
            let Some(session) = self.svc.open(peer) else {
                log::warn!("connection from {peer} refused (allow_hosts)");
                continue;
            };
            let now = self.total.current.fetch_add(1, Ordering::Relaxed) + 1;
            self.total.alloc.fetch_add(1, Ordering::Relaxed);
            self.total.max.fetch_max(now, Ordering::Relaxed);
            let t = self
                .conns
                .insert_with(|epoch| Conn::new(sock, peer, epoch, session));
            let c = self.conns.get_mut(t).expect("slot just filled");
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut c.sock, Token(t), Interest::READABLE)
            {
                log::warn!("register {peer}: {e}");
                self.close(t, "register failed");
                continue;
            }
            self.drive(t);
        }
    }

    /// Make all the progress connection `t` can make without blocking.
    fn drive(&mut self, t: usize) {
        let chunk = self.opts.chunk_size;
        loop {
            let Some(c) = self.conns.get_mut(t) else {
                return;
            };
            if c.writing {
                if c.warming {
                    return;
                }
                match c.flush() {
                    Ok(Flushed::All) => {
                        if c.close_after_write || self.draining {
                            self.close(t, "closed after reply");
                            return;
                        }
                        c.state = Rx::Header;
                        // Drop WRITABLE interest only if a partial write added it.
                        if c.want_writable {
                            c.want_writable = false;
                            let _ = self.poll.registry().reregister(
                                &mut c.sock,
                                Token(t),
                                Interest::READABLE,
                            );
                        }
                    }
                    Ok(Flushed::Cold) => {
                        self.warm(t);
                        return;
                    }
                    Ok(Flushed::Blocked) => {
                        if !c.want_writable {
                            c.want_writable = true;
                            let _ = self.poll.registry().reregister(
                                &mut c.sock,
                                Token(t),
                                Interest::READABLE | Interest::WRITABLE,
                            );
                        }
                        return;
                    }
                    Err(e) => {
                        self.close(t, &format!("write: {e}"));
                        return;
                    }
                }
            }
            if let ReadOutcome::Closed = c.fill(chunk) {
                // Bytes already read are still processed below only if a whole
                // request is there; a half-read request dies with the peer.
                self.close(t, "peer closed");
                return;
            }
            match self.step(t) {
                Step::Progress => continue,
                Step::Idle => {
                    if let Some(c) = self.conns.get_mut(t) {
                        c.ack_if_waiting();
                    }
                    return;
                }
                Step::Close(why) => {
                    self.close(t, &why);
                    return;
                }
            }
        }
    }

    /// Hand connection `t`'s file body to a worker of its pool, which reads
    /// the next window into the page cache; the loop sends it once the
    /// completion is back. Nothing else happens on the connection meanwhile.
    fn warm(&mut self, t: usize) {
        let Some(c) = self.conns.get_mut(t) else {
            return;
        };
        let Some(mut body) = c.file.take() else {
            return;
        };
        c.warming = true;
        let (epoch, pool) = (c.epoch, body.pool);
        let (tx, waker) = (self.done_tx.clone(), self.waker.clone());
        let job = Box::new(move || {
            let result = body.warm();
            let done = Done::Warm {
                token: t,
                epoch,
                body,
                result,
            };
            send_done(&tx, &waker, done);
        });
        run_on(&*self.svc, pool, job);
    }

    /// Advance the request state machine with the bytes in `rx`.
    fn step(&mut self, t: usize) -> Step {
        let c = self.conns.get_mut(t).expect("step on a live connection");
        let mut session = c
            .session
            .take()
            .expect("session lives as long as the connection");
        let step = self.step_with(t, &mut session);
        if let Some(c) = self.conns.get_mut(t) {
            c.session = Some(session);
        }
        step
    }

    /// Advance connection `t`'s request by one receive state: each state
    /// waits for its bytes, then moves the connection to the next.
    fn step_with(&mut self, t: usize, session: &mut S::Session) -> Step {
        let c = self.conns.get_mut(t).expect("step on a live connection");
        match c.state {
            Rx::Busy => Step::Idle,
            Rx::Header => self.rx_header(t, session),
            Rx::Body { h, need } => self.rx_body(t, session, h, need),
            Rx::Head { h, need } => self.rx_head(t, session, h, need),
            Rx::Streaming { .. } => self.rx_chunk(t),
        }
    }

    /// `Rx::Header`: decode the header, then the role says how to read the
    /// body (in memory, streamed after a head, or not at all).
    fn rx_header(&mut self, t: usize, session: &mut S::Session) -> Step {
        let stats = &self.total.requests;
        let c = self.conns.get_mut(t).expect("step on a live connection");
        if c.rx.len() < HEADER_LEN {
            return Step::Idle;
        }
        let h = match Header::decode(&c.rx[..HEADER_LEN]) {
            Ok(h) => h,
            Err(e) => return Step::Close(format!("bad header: {e}")),
        };
        c.take_rx_front(HEADER_LEN);
        c.started = Some((h.cmd, Instant::now()));
        stats
            .bytes_in
            .fetch_add(HEADER_LEN as u64 + h.pkg_len, Ordering::Relaxed);
        c.state = match self.svc.plan(session, &h) {
            Plan::Quit => return Step::Close("quit".into()),
            // The role logged why; the unread body forces the close.
            Plan::Reject(status) => return reject(c, status, stats),
            Plan::Buffer => Rx::Body {
                h,
                need: h.pkg_len as usize,
            },
            Plan::Stream { head } => Rx::Head { h, need: head },
        };
        Step::Progress
    }

    /// `Rx::Body`: once the whole body is in, the role answers it, here or
    /// on a worker.
    fn rx_body(&mut self, t: usize, session: &mut S::Session, h: Header, need: usize) -> Step {
        let c = self.conns.get_mut(t).expect("step on a live connection");
        if c.rx.len() < need {
            return Step::Idle;
        }
        let body = c.take_rx(need);
        c.state = Rx::Busy;
        match self.svc.request(session, h, body) {
            Action::Reply(r) if r.hold.is_some() => {
                deliver(r, t, c.epoch, &self.done_tx, &self.waker);
                Step::Idle
            }
            Action::Reply(r) => {
                queue(&*self.svc, c, r, &self.total.requests);
                Step::Progress
            }
            Action::Work { pool, job } => {
                let (epoch, tx, waker) = (c.epoch, self.done_tx.clone(), self.waker.clone());
                let work = Box::new(move || deliver(job(), t, epoch, &tx, &waker));
                run_on(&*self.svc, pool, work);
                Step::Idle
            }
        }
    }

    /// `Rx::Head`: once the head of a streamed body is in, the role begins
    /// the stream, or asks for a longer head.
    fn rx_head(&mut self, t: usize, session: &mut S::Session, h: Header, need: usize) -> Step {
        let stats = &self.total.requests;
        let c = self.conns.get_mut(t).expect("step on a live connection");
        if c.rx.len() < need {
            return Step::Idle;
        }
        c.state = match self.svc.begin_stream(session, &h, &c.rx[..need]) {
            Begin::MoreHead(n) if n > need && (n as u64) <= h.pkg_len => Rx::Head { h, need: n },
            Begin::MoreHead(_) => return Step::Close("inconsistent request head".into()),
            Begin::Reject(status) => return reject(c, status, stats),
            Begin::Stream { state, pool } => {
                c.take_rx_front(need);
                Rx::Streaming {
                    remaining: h.pkg_len - need as u64,
                    state: Some(state),
                    pool,
                    failed: None,
                }
            }
        };
        Step::Progress
    }

    /// `Rx::Streaming`: hand the next chunk to the role, one chunk at a
    /// time. After a failed chunk the rest of the body is read and dropped,
    /// to stay in sync, and the error answered at its end.
    fn rx_chunk(&mut self, t: usize) -> Step {
        let chunk = self.opts.chunk_size as u64;
        let c = self.conns.get_mut(t).expect("step on a live connection");
        let Rx::Streaming {
            remaining,
            state,
            pool,
            failed,
        } = &mut c.state
        else {
            unreachable!("rx_chunk on a connection that is not streaming");
        };
        let n = (*remaining).min(chunk) as usize;
        // (No state: a chunk is in flight.)
        if state.is_none() || c.rx.len() < n {
            return Step::Idle;
        }
        let data = super::conn::take_bytes(&mut c.rx, n);
        *remaining -= n as u64;
        let last = *remaining == 0;
        if let Some(status) = *failed {
            if last {
                // Dropping the stream state undoes its work.
                c.state = Rx::Busy;
                queue(&*self.svc, c, Reply::error(status), &self.total.requests);
            }
            return Step::Progress;
        }
        let (st, pool, epoch) = (state.take().expect("checked above"), *pool, c.epoch);
        if last {
            c.state = Rx::Busy;
        }
        self.run_chunk((t, epoch), pool, st, data, last);
        Step::Idle
    }

    /// Run `data`, the next chunk of stream `st` of connection `t` (of
    /// generation `epoch`), on `pool`. The last chunk also ends the stream
    /// and delivers the reply; any other comes back as a [`Done::Chunk`]
    /// with the state.
    fn run_chunk(
        &self,
        (t, epoch): (usize, u64),
        pool: usize,
        mut st: S::Stream,
        data: Vec<u8>,
        last: bool,
    ) {
        let (svc, tx, waker) = (self.svc.clone(), self.done_tx.clone(), self.waker.clone());
        let job = Box::new(move || {
            let result = if data.is_empty() {
                Ok(())
            } else {
                svc.stream_chunk(&mut st, &data)
            };
            match (result, last) {
                (Ok(()), true) => deliver(svc.stream_end(st), t, epoch, &tx, &waker),
                // The connection already waits for its reply (`Busy`), so a
                // chunk completion would find no stream: answer the error
                // here, after dropping the state undoes its work.
                (Err(status), true) => {
                    drop(st);
                    deliver(Reply::error(status), t, epoch, &tx, &waker)
                }
                (result, false) => {
                    let done = Done::Chunk {
                        token: t,
                        epoch,
                        state: st,
                        result,
                    };
                    send_done(&tx, &waker, done)
                }
            }
        });
        run_on(&*self.svc, pool, job);
    }

    fn completions(&mut self) {
        // (A swap, to acquire the sends of the workers that found it set.)
        self.waker.pending.swap(false, Ordering::AcqRel);
        while let Ok(done) = self.done_rx.try_recv() {
            let t = match done {
                Done::Reply {
                    token,
                    epoch,
                    reply,
                } => {
                    let Some(c) = self.conns.get_mut(token).filter(|c| c.epoch == epoch) else {
                        continue;
                    };
                    queue(&*self.svc, c, reply, &self.total.requests);
                    token
                }
                Done::Chunk {
                    token,
                    epoch,
                    state,
                    result,
                } => {
                    // A stale chunk's state is dropped here, which undoes its work.
                    let Some(c) = self.conns.get_mut(token).filter(|c| c.epoch == epoch) else {
                        continue;
                    };
                    match &mut c.state {
                        // Not the last chunk (that one answers by itself):
                        // on failure the rest of the body is read and
                        // dropped, and the error answered at its end.
                        Rx::Streaming {
                            state: slot,
                            failed,
                            ..
                        } => {
                            if let Err(status) = result {
                                *failed = Some(status);
                            }
                            *slot = Some(state);
                        }
                        _ => {
                            log::error!("chunk completion for a connection that is not streaming");
                            continue;
                        }
                    }
                    token
                }
                Done::Warm {
                    token,
                    epoch,
                    body,
                    result,
                } => {
                    // A stale warm-up's file is closed here.
                    let Some(c) = self.conns.get_mut(token).filter(|c| c.epoch == epoch) else {
                        continue;
                    };
                    c.warming = false;
                    match result {
                        Ok(true) => {
                            c.file = Some(body);
                            c.last_active = Instant::now();
                        }
                        // Said as a failed sendfile says it.
                        Ok(false) => {
                            self.close(token, &format!("write: {}", shrank()));
                            continue;
                        }
                        Err(e) => {
                            log::warn!("reading a file to send to {}: {e}", c.peer);
                            self.close(token, "file read failed");
                            continue;
                        }
                    }
                    token
                }
            };
            self.drive(t);
        }
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        for t in self.conns.indices() {
            let Some(c) = self.conns.get_mut(t) else {
                continue;
            };
            // A connection whose request or file body is with a worker is
            // not idle.
            let busy = (matches!(c.state, Rx::Busy) && !c.writing) || c.warming;
            if !busy && now.duration_since(c.last_active) > self.opts.idle_timeout {
                self.close(t, "idle timeout");
            }
        }
    }

    fn close(&mut self, t: usize, why: &str) {
        let Some(mut c) = self.conns.remove(t) else {
            return;
        };
        log::debug!("close {} (fd {}): {why}", c.peer, c.fd());
        // No deregister: closing the socket (its only descriptor) takes it out
        // of the epoll set, and saves an epoll_ctl per connection.
        if let Some(s) = c.session.take() {
            self.svc.close(s);
        }
        self.total.current.fetch_sub(1, Ordering::Relaxed);
        if self.accept_pending {
            self.accept();
        }
    }
}

enum Step {
    Progress,
    Idle,
    Close(String),
}

/// Refuse the request on `c` with `status`: the error reply closes the
/// connection, since the rest of its body is never read.
fn reject<Se, St>(c: &mut Conn<Se, St>, status: u8, stats: &super::RequestStats) -> Step {
    c.state = Rx::Busy;
    let mut r = Reply::error(status);
    r.close = true;
    c.queue(r, stats);
    Step::Progress
}

/// Queue `r` on `c`, closing after it when it is an error the role says
/// ends a connection.
fn queue<S: Service>(
    svc: &S,
    c: &mut Conn<S::Session, S::Stream>,
    mut r: Reply,
    stats: &super::RequestStats,
) {
    r.close |= r.status != 0 && svc.close_after_error(r.status);
    c.queue(r, stats);
}
