//! One client connection as the loop sees it: socket, receive buffer, the state
//! of the request being read, and the reply being written.

use super::{FileBody, INLINE, Reply, pagecache};
use crate::proto::{HEADER_LEN, Header};
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::time::Instant;

/// Smallest read, and largest body copied out of the receive buffer.
const SMALL_READ: usize = 1024;

/// Where the connection is in its request/response cycle.
pub(super) enum Rx<St> {
    /// Waiting for a 10-byte header.
    Header,
    /// Reading a body of `need` bytes into memory.
    Body { h: Header, need: usize },
    /// Reading the first `need` bytes of a streamed body.
    Head { h: Header, need: usize },
    /// Streaming the body to a worker; `state` is `None` while a chunk is in flight.
    Streaming {
        remaining: u64,
        state: Option<St>,
        pool: usize,
        failed: Option<u8>,
    },
    /// A request is with a worker, or a reply is being written: read nothing.
    Busy,
}

/// Result of writing what is queued.
pub(super) enum Flushed {
    /// Everything has been sent.
    All,
    /// The socket is full: wait until it is writable.
    Blocked,
    /// The next window of the file body is not in the page cache: a worker
    /// must read it in before the loop sends it.
    Cold,
}

/// Result of reading from the socket.
pub(super) enum ReadOutcome {
    /// Got bytes (or none yet); the socket may have more later.
    Open,
    /// Peer closed or the socket failed.
    Closed,
}

pub(super) struct Conn<Se, St> {
    pub sock: TcpStream,
    pub peer: std::net::SocketAddr,
    pub epoch: u64,
    pub session: Option<Se>,
    pub rx: Vec<u8>,
    pub state: Rx<St>,
    /// The socket reported readable and we have not yet seen WouldBlock.
    pub readable: bool,
    /// The peer has shut down its sending side (EPOLLRDHUP): read until the
    /// end of stream even after a short read, which otherwise says the socket
    /// is empty.
    pub hup: bool,
    /// Read the end of the stream: nothing more will come.
    pub eof: bool,
    pub tx: Vec<u8>,
    pub tx_pos: usize,
    pub file: Option<FileBody>,
    pub close_after_write: bool,
    pub writing: bool,
    /// The file body is with a worker that reads its next window into the
    /// page cache (`file` is `None` meanwhile): write nothing, read nothing.
    pub warming: bool,
    /// The socket is registered for WRITABLE too (a reply did not fit).
    pub want_writable: bool,
    pub last_active: Instant,
    /// Bytes were read since the last reply or quick ACK.
    pub unacked: bool,
}

impl<Se, St> Conn<Se, St> {
    pub fn new(sock: TcpStream, peer: std::net::SocketAddr, epoch: u64, session: Se) -> Self {
        Conn {
            sock,
            peer,
            epoch,
            session: Some(session),
            rx: Vec::new(),
            state: Rx::Header,
            readable: true,
            hup: false,
            eof: false,
            tx: Vec::new(),
            tx_pos: 0,
            file: None,
            close_after_write: false,
            writing: false,
            warming: false,
            want_writable: false,
            last_active: Instant::now(),
            unacked: false,
        }
    }

    /// How many more bytes the current state can use: reading stops there so a
    /// slow worker bounds the memory a connection holds.
    pub fn wanted(&self, chunk: usize) -> usize {
        let have = self.rx.len();
        let need = match &self.state {
            Rx::Header => HEADER_LEN,
            Rx::Body { need, .. } | Rx::Head { need, .. } => *need,
            Rx::Streaming { remaining, .. } => (*remaining).min(chunk as u64) as usize,
            Rx::Busy => 0,
        };
        need.saturating_sub(have)
    }

    /// Read while the state wants bytes and the socket has them. `Closed` once
    /// the peer is gone and the state wants bytes that will not come; a
    /// request read whole before the end of stream is still served (a client
    /// may shut down its side and wait for the reply).
    pub fn fill(&mut self, chunk: usize) -> ReadOutcome {
        let mut got = false;
        while self.readable {
            let want = self.wanted(chunk);
            if want == 0 {
                break;
            }
            let start = self.rx.len();
            // Read at least a small block so that a header and a short body
            // usually arrive in one call; not much more, because the space is
            // zero-filled first (it was a quarter of a download's user-space
            // instructions at 4 KiB).
            let take = want.max(SMALL_READ).min(chunk.max(HEADER_LEN));
            self.rx.resize(start + take, 0);
            match self.sock.read(&mut self.rx[start..]) {
                Ok(0) => {
                    self.rx.truncate(start);
                    self.eof = true;
                    self.readable = false;
                }
                Ok(n) => {
                    self.rx.truncate(start + n);
                    self.last_active = Instant::now();
                    got = true;
                    // A short read emptied the socket: bytes that arrive
                    // later raise a new (edge-triggered) event, so asking
                    // again now would only return EAGAIN (as nginx does).
                    // But no event follows the end of stream, which may have
                    // come with these bytes.
                    if n < take && !self.hup {
                        self.readable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.rx.truncate(start);
                    self.readable = false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.rx.truncate(start),
                Err(e) => {
                    self.rx.truncate(start);
                    log::debug!("read from {}: {e}", self.peer);
                    return ReadOutcome::Closed;
                }
            }
        }
        self.unacked |= got;
        if self.eof && self.wanted(chunk) > 0 {
            return ReadOutcome::Closed;
        }
        ReadOutcome::Open
    }

    /// Called when the loop can make no more progress on this connection. If
    /// bytes were read and the request is still incomplete, acknowledge them
    /// at once instead of after the delayed-ACK timer (40 ms on Linux): a
    /// client that writes one request in two parts with Nagle on (upstream's
    /// pooled connections send a header, then the body) cannot send the second
    /// part before that ACK, so each request would stall for the timer. The
    /// kernel leaves quick-ack mode by itself, so it is set again each time,
    /// as libserverframe does after every read. A request read whole needs
    /// none: its reply carries the ACK.
    pub fn ack_if_waiting(&mut self) {
        if std::mem::take(&mut self.unacked)
            && self.mid_request()
            && let Err(e) = socket2::SockRef::from(&self.sock).set_tcp_quickack(true)
        {
            log::debug!("TCP_QUICKACK on {}: {e}", self.peer);
        }
    }

    /// A request is under way: partly read, with a worker (or its reply held),
    /// or its reply being written. A stopping server answers it before closing.
    pub fn in_flight(&self) -> bool {
        self.writing || !self.rx.is_empty() || !matches!(self.state, Rx::Header)
    }

    /// Part of a request has arrived and the rest is awaited from the peer.
    fn mid_request(&self) -> bool {
        match self.state {
            Rx::Header => !self.rx.is_empty(),
            Rx::Busy => false,
            Rx::Body { .. } | Rx::Head { .. } | Rx::Streaming { .. } => true,
        }
    }

    /// Drop the first `n` bytes of the receive buffer (a parsed header or head).
    pub fn take_rx_front(&mut self, n: usize) {
        self.rx.drain(..n);
    }

    /// Take the first `n` bytes of the receive buffer. A small body is copied
    /// out so that the buffer (and its allocation) serves the next request.
    pub fn take_rx(&mut self, n: usize) -> Vec<u8> {
        if n <= SMALL_READ {
            let body = self.rx[..n].to_vec();
            self.rx.drain(..n);
            return body;
        }
        take_bytes(&mut self.rx, n)
    }

    /// Queue a reply: header and body in one buffer so they leave in one write
    /// (py3fdfsv2 and the Java client read the header with a single recv).
    pub fn queue(&mut self, r: Reply) {
        let h = Header::response(r.status, r.pkg_len());
        self.tx.clear();
        self.tx.extend_from_slice(&h.encode());
        self.tx.extend_from_slice(&r.body);
        self.tx_pos = 0;
        self.file = r.file;
        self.close_after_write = r.close;
        self.writing = true;
    }

    /// Write what is queued: the header and body, then the file body, but
    /// of that only windows that are in the page cache.
    pub fn flush(&mut self) -> io::Result<Flushed> {
        while self.tx_pos < self.tx.len() {
            match self.sock.write(&self.tx[self.tx_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.tx_pos += n;
                    self.last_active = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(f) = &mut self.file {
            while f.len > 0 {
                let ready = if f.pool == INLINE {
                    f.len
                } else {
                    if f.offset >= f.ready_to {
                        match pagecache::ready(&f.file, f.offset, f.len, !f.touched) {
                            0 => return Ok(Flushed::Cold),
                            n => f.ready_to = f.offset + n,
                        }
                    }
                    f.ready_to - f.offset
                };
                f.touched = true;
                let mut off = f.offset as i64;
                let count = ready.min(1 << 30) as usize;
                match nix::sys::sendfile::sendfile64(&self.sock, &f.file, Some(&mut off), count) {
                    Ok(0) => {
                        // The file shrank under us: the header promised more bytes
                        // than exist, so the stream is unusable.
                        return Err(shrank());
                    }
                    Ok(n) => {
                        f.offset += n as u64;
                        f.len -= n as u64;
                        self.last_active = Instant::now();
                    }
                    Err(nix::errno::Errno::EAGAIN) => return Ok(Flushed::Blocked),
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(io::Error::from(e)),
                }
            }
            self.file = None;
        }
        self.tx.clear();
        self.tx_pos = 0;
        self.writing = false;
        Ok(Flushed::All)
    }

    pub fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }
}

/// The error of a file body that ends before the length its header announced.
pub(super) fn shrank() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank during download")
}

/// Split the first `n` bytes off `buf`, moving the buffer itself when it holds
/// exactly `n` (the usual case for streamed chunks: no copy).
pub(super) fn take_bytes(buf: &mut Vec<u8>, n: usize) -> Vec<u8> {
    if n == buf.len() {
        std::mem::take(buf)
    } else {
        let rest = buf.split_off(n);
        std::mem::replace(buf, rest)
    }
}
