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
mod pool;
mod server;
mod slab;
mod spin;
#[cfg(test)]
mod tests;

pub use listen::Listeners;
pub use log_limit::LogLimit;
pub use pool::Pool;
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
pub struct FileBody {
    /// Open file to read from.
    pub file: File,
    /// Where to start.
    pub offset: u64,
    /// How many bytes to send.
    pub len: u64,
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
