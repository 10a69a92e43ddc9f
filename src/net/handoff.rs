//! How work leaves a loop and its result comes back: a job runs on a worker
//! pool (or inline on the loop thread), and its reply or chunk result
//! returns as a [`Done`] over the loop's channel, with one wake-up per batch.
//! Workers never touch sockets.

use super::{FileBody, Reply, Service};
use crossbeam_channel::Sender;
use mio::Waker;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A worker's answer, routed back to the connection by token and generation.
pub(super) enum Done<St> {
    Reply {
        token: usize,
        epoch: u64,
        reply: Reply,
    },
    Chunk {
        token: usize,
        epoch: u64,
        state: St,
        result: Result<(), u8>,
    },
    /// The next window of a reply's file body was read into the page cache
    /// (`Ok(false)`: the file ends before it).
    Warm {
        token: usize,
        epoch: u64,
        body: FileBody,
        result: std::io::Result<bool>,
    },
}

/// Queue `job` on the service's pool `pool`, or run it right here when it
/// has no pool for it (its completion then waits in the channel until the
/// loop drains it, at the end of this round of events).
pub(super) fn run_on<S: Service>(svc: &S, pool: usize, job: Box<dyn FnOnce() + Send>) {
    match svc.pool(pool) {
        Some(p) => p.submit(job),
        None => job(),
    }
}

thread_local! {
    /// Set on loop threads: a completion sent from one (work done inline) is
    /// drained at the end of the round of events, without a wake-up.
    pub(super) static ON_LOOP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Send `reply` to connection `token` of generation `epoch` through the
/// completion channel: now, or when its hold releases it.
pub(super) fn deliver<St: Send + 'static>(
    mut reply: Reply,
    token: usize,
    epoch: u64,
    tx: &Sender<Done<St>>,
    waker: &Arc<Wake>,
) {
    let done = move |reply| Done::Reply {
        token,
        epoch,
        reply,
    };
    let Some(hold) = reply.hold.take() else {
        send_done(tx, waker, done(reply));
        return;
    };
    let (tx, waker) = (tx.clone(), waker.clone());
    hold(Box::new(move |failed| {
        let reply = failed.map_or(reply, Reply::error);
        send_done(&tx, &waker, done(reply));
    }));
}

/// A loop's waker, woken once per batch of completions: workers that finish
/// while the loop has not yet drained the channel add to it without a syscall.
pub(super) struct Wake {
    pub(super) waker: Waker,
    /// A wake is on its way and the loop has not started draining since.
    pub(super) pending: AtomicBool,
}

pub(super) fn send_done<St>(tx: &Sender<Done<St>>, wake: &Wake, d: Done<St>) {
    // The flag is set after the send: a loop that clears it (before it
    // drains) either sees this completion or is woken again.
    if tx.send(d).is_ok() && !ON_LOOP.get() && !wake.pending.swap(true, Ordering::AcqRel) {
        let _ = wake.waker.wake();
    }
}
