//! The network layer: a hand-rolled mio event loop per network thread, framed
//! request/response connections, and worker pools.
//!
//! It knows the 10-byte FastDFS header (to frame requests) and nothing about
//! commands: a role (tracker, storage) plugs in through [`Service`], which says
//! how each request's body is read (buffered, streamed, refused) and produces
//! [`Reply`]s, inline or on a worker [`Pool`]. Depends on `proto` for the header only.

mod conn;
mod handoff;
mod listen;
mod log_limit;
mod pagecache;
mod pool;
mod req_stats;
mod server;
mod slab;
mod spin;
#[cfg(test)]
mod tests;

pub use conn::Flushed;
pub use listen::Listeners;
pub use log_limit::LogLimit;
#[cfg(test)]
pub(crate) use pagecache::evict;
pub use pagecache::pages_present;
pub use pool::Pool;
pub use req_stats::{BUCKETS_US, RequestStats};
pub use server::{ConnStats, Server, ServerOptions, StopHandle};

use crate::proto::Header;
use std::fs::File;
use std::net::SocketAddr;

/// How the loop reads the body of a request whose header just arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Read the whole body into memory, then call [`Service::request`]. The
    /// service has already checked `pkg_len` against the command's limit.
    Buffer,
    /// Read the first `head` bytes, then call [`Service::begin_stream`]; the
    /// rest of the body is handed to the worker in chunks.
    Stream { head: usize },
    /// Answer `status` without reading the body, then close: the unread body
    /// would otherwise be parsed as the next request.
    Reject(u8),
    /// Close at once without a reply (QUIT).
    Quit,
}

/// The pool index of work done on the loop thread itself, in
/// [`Action::Work`] and [`Begin::Stream`]: no hand-off to a worker and back,
/// but the connections of that loop wait while it runs.
pub const INLINE: usize = usize::MAX;

/// What the service wants done with a fully read request.
pub enum Action {
    /// Send this reply now (cheap requests answered on the loop thread).
    Reply(Reply),
    /// Run `job` on pool `pool` (its next free worker); its reply is sent
    /// when done.
    Work {
        pool: usize,
        job: Box<dyn FnOnce() -> Reply + Send>,
    },
}

/// What [`Service::begin_stream`] decided once the head of a streamed body was read.
pub enum Begin<St> {
    /// Stream the remaining body through `state` on pool `pool`.
    Stream { state: St, pool: usize },
    /// The head is longer than first thought (it holds a length): read this many
    /// head bytes in total, then call `begin_stream` again.
    MoreHead(usize),
    /// Refuse: answer with this status and close (the body is unread).
    Reject(u8),
}

/// A file region sent after the reply body with `sendfile`.
///
/// The loop sends it window by window, and only windows that are in the page
/// cache: a window that is not is first read in by a worker of `pool` (see
/// `net::pagecache`), so a cold disk never holds up the loop's other
/// connections.
pub struct FileBody {
    /// Open file to read from.
    pub file: File,
    /// Where to start.
    pub offset: u64,
    /// How many bytes to send.
    pub len: u64,
    /// The worker pool that may wait for this file's disk ([`INLINE`]: send
    /// without checking, for a service that accepts the wait).
    pub pool: usize,
    /// Bytes before this offset are known to be in the page cache.
    ready_to: u64,
    /// A read of ours (a warm-up or a `sendfile`) has touched the file and
    /// may have started readahead, which the cheap residency check would
    /// count as cached.
    touched: bool,
}

impl FileBody {
    /// `len` bytes of `file` from `offset`, whose disk pool `pool` may wait for.
    pub fn new(file: File, offset: u64, len: u64, pool: usize) -> FileBody {
        FileBody {
            file,
            offset,
            len,
            pool,
            ready_to: 0,
            touched: false,
        }
    }

    /// Read the first window of the body into the page cache now, waiting for
    /// the disk: for the worker that opened the file, so that the loop can
    /// send that window without handing it back to a worker first.
    pub fn warm_start(&mut self) -> std::io::Result<()> {
        self.warm().map(|_| ())
    }

    /// Send what is in the page cache to `sock` (non-blocking), window by
    /// window: `All` once the whole body is sent, `Blocked` when the socket is
    /// full, `Cold` when the next window must first be read in ([`Self::warm`]
    /// on a thread that may wait). Never reads the disk (but see
    /// `net::pagecache` for the remaining window of risk).
    pub fn send_to(&mut self, sock: &impl std::os::fd::AsFd) -> std::io::Result<Flushed> {
        while self.len > 0 {
            let ready = if self.pool == INLINE {
                self.len
            } else {
                if self.offset >= self.ready_to {
                    match pagecache::ready(&self.file, self.offset, self.len, !self.touched) {
                        0 => return Ok(Flushed::Cold),
                        n => self.ready_to = self.offset + n,
                    }
                }
                self.ready_to - self.offset
            };
            self.touched = true;
            let mut off = self.offset as i64;
            let count = ready.min(1 << 30) as usize;
            match nix::sys::sendfile::sendfile64(sock, &self.file, Some(&mut off), count) {
                // The file shrank under us: the header promised more bytes
                // than exist, so the stream is unusable.
                Ok(0) => return Err(conn::shrank()),
                Ok(n) => {
                    self.offset += n as u64;
                    self.len -= n as u64;
                }
                Err(nix::errno::Errno::EAGAIN) => return Ok(Flushed::Blocked),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(std::io::Error::from(e)),
            }
        }
        Ok(Flushed::All)
    }

    /// Bring the window at `offset` into the page cache (waits for the
    /// disk), and start reading the body's next few windows; `Ok(false)`:
    /// the file ends before the window does.
    pub fn warm(&mut self) -> std::io::Result<bool> {
        let want = self.len.min(pagecache::WINDOW);
        let ahead = self.len.min(pagecache::AHEAD);
        let got = pagecache::warm(&self.file, self.offset, want, ahead)?;
        self.touched = true;
        self.ready_to = self.offset + got;
        Ok(got == want)
    }
}

/// Sends a reply that was held back ([`Reply::hold`]), from any thread:
/// `None` sends it as it is, `Some(status)` sends that error instead.
pub type Release = Box<dyn FnOnce(Option<u8>) + Send>;

/// Holds a reply back: called with the [`Release`] to call once the reply may
/// go (a durable upload's, once its journal round is on disk), so the worker
/// that made the reply does not wait for that.
pub type Hold = Box<dyn FnOnce(Release) + Send>;

/// One response: header status, body bytes and optionally a file region.
pub struct Reply {
    /// 0 or an errno.
    pub status: u8,
    /// Body bytes written right after the header (in the same write).
    pub body: Vec<u8>,
    /// Optional file content sent after `body`.
    pub file: Option<FileBody>,
    /// Close the connection once the reply is sent.
    pub close: bool,
    /// Send the reply only once this releases it.
    pub hold: Option<Hold>,
}

impl Reply {
    /// A success reply with `body`.
    pub fn ok(body: Vec<u8>) -> Reply {
        Reply {
            status: 0,
            body,
            file: None,
            close: false,
            hold: None,
        }
    }

    /// An error reply: empty body, as FastDFS clients require. Whether it also
    /// ends the connection is the role's call ([`Service::close_after_error`]).
    pub fn error(status: u8) -> Reply {
        Reply {
            status,
            body: Vec::new(),
            file: None,
            close: false,
            hold: None,
        }
    }

    /// An empty reply with `status`: a success when 0, else an error reply.
    pub fn status(status: u8) -> Reply {
        if status == 0 {
            Reply::ok(Vec::new())
        } else {
            Reply::error(status)
        }
    }

    /// Bytes that follow the header.
    pub fn pkg_len(&self) -> u64 {
        self.body.len() as u64 + self.file.as_ref().map_or(0, |f| f.len)
    }
}

/// A role served by the loop. Methods without a note run on the loop thread and
/// must not block; `stream_chunk` / `stream_end` run on worker pools.
pub trait Service: Send + Sync + 'static {
    /// Per-connection state kept by the loop.
    type Session: Send + 'static;
    /// State of one streamed request body (an upload in progress). Dropping it
    /// without `stream_end` must undo its partial work.
    type Stream: Send + 'static;

    /// A connection was accepted; `None` refuses it (closed without a reply).
    fn open(&self, peer: SocketAddr) -> Option<Self::Session>;
    /// Decide how to read the body announced by `h`.
    fn plan(&self, s: &mut Self::Session, h: &Header) -> Plan;
    /// Handle a request whose whole body is in `body`.
    fn request(&self, s: &mut Self::Session, h: Header, body: Vec<u8>) -> Action;
    /// The first `head.len()` bytes of a streamed body have arrived.
    fn begin_stream(&self, s: &mut Self::Session, h: &Header, head: &[u8]) -> Begin<Self::Stream>;
    /// Consume the next chunk of a streamed body (worker thread).
    fn stream_chunk(&self, st: &mut Self::Stream, data: &[u8]) -> Result<(), u8>;
    /// The whole body has been consumed; finish and reply (worker thread).
    fn stream_end(&self, st: Self::Stream) -> Reply;
    /// The worker pool number `idx` named in [`Action::Work`] / [`Begin::Stream`];
    /// `None` (always for [`INLINE`]) runs the work inline on the loop thread.
    fn pool(&self, idx: usize) -> Option<&Pool>;
    /// Whether an error reply with `status` ends its connection once written.
    /// Asked for every error reply, the role's own and those the loop makes
    /// from a status the role gave it (a failed chunk, a failed hold).
    fn close_after_error(&self, status: u8) -> bool {
        let _ = status;
        false
    }
    /// The connection closed (by either side).
    fn close(&self, s: Self::Session);
}

/// The calling thread's involuntary context switches so far (times it was
/// preempted); zero if the kernel cannot tell.
fn preempted_count() -> i64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_THREAD).map_or(0, |r| r.involuntary_context_switches())
}
