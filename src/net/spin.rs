//! Busy polling after work (`busy_poll_us`).
//!
//! A network thread that goes to sleep in `epoll_wait` has to be woken for
//! the next request, and on a virtual machine a wake-up of an idle virtual
//! CPU is slow: a single client downloading 4 KiB files on the test machine
//! did 15-19k requests/s with both threads asleep between requests, and 105k
//! with client and server on one CPU, where no CPU has to be woken. So after
//! handling events a loop keeps polling (`epoll_wait` with a zero timeout)
//! for a short window, in which a request that arrives needs no wake-up
//! (27-44k requests/s).
//!
//! Spinning takes the CPU from other threads, which matters when there are
//! more runnable threads than CPUs (8 clients on 2 cores: set-metadata lost
//! 15% with no guard). So at most one loop of a server spins at a time, and
//! a loop that finds it was preempted while spinning (the thread's
//! involuntary context switches went up, or an empty spin took far longer
//! than one poll) sleeps between events for [`BACK_OFF`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A spin iteration longer than this was preempted: another thread wanted
/// the CPU.
const PREEMPTED: Duration = Duration::from_micros(200);
/// How long a loop that was preempted while spinning stays asleep between events.
pub const BACK_OFF: Duration = Duration::from_millis(100);

/// One loop's spinning state.
pub struct Spin {
    window: Duration,
    /// Spin (poll without sleeping) until then.
    until: Option<Instant>,
    /// This loop holds its server's spin token.
    holding: bool,
    /// When the last spin poll returned, if it found nothing.
    last_empty: Option<Instant>,
    /// The thread's involuntary context switches when last looked at.
    preempted: i64,
    /// No spinning before then.
    off_until: Option<Instant>,
    /// Reads the thread's involuntary context switches (times preempted).
    switches: fn() -> i64,
}

impl Spin {
    /// `window`: how long to keep polling after events (zero: never).
    pub fn new(window: Duration) -> Spin {
        Spin {
            window,
            until: None,
            holding: false,
            last_empty: None,
            preempted: 0,
            off_until: None,
            switches: super::preempted_count,
        }
    }

    /// The timeout of the next poll at `now`: zero while spinning, else
    /// `idle`. `token` is the server's "a loop spins" flag.
    pub fn timeout(&mut self, now: Instant, idle: Duration, token: &AtomicBool) -> Duration {
        if let Some(until) = self.until
            && now < until
            && (self.holding || !token.swap(true, Ordering::Acquire))
        {
            if !self.holding {
                self.holding = true;
                self.preempted = (self.switches)();
            }
            return Duration::ZERO;
        }
        self.stop(token);
        idle
    }

    /// A poll with the timeout from [`Spin::timeout`] returned at `now`,
    /// with or without events.
    pub fn polled(&mut self, now: Instant, events: bool, token: &AtomicBool) {
        if self.holding {
            let switches = (self.switches)();
            let slow = self
                .last_empty
                .is_some_and(|last| now.duration_since(last) > PREEMPTED);
            if switches > self.preempted || slow && !events {
                // Another thread took this CPU while the loop spun (or an
                // empty spin took far longer than a poll): it is wanted
                // elsewhere.
                self.off_until = Some(now + BACK_OFF);
                self.stop(token);
                return;
            }
            self.last_empty = (!events).then_some(now);
        }
        if events {
            if self.window.is_zero() || self.off_until.is_some_and(|t| now < t) {
                self.stop(token);
            } else {
                self.until = Some(now + self.window);
            }
        }
    }

    /// Stop spinning, giving the token back if this loop held it.
    fn stop(&mut self, token: &AtomicBool) {
        self.until = None;
        self.last_empty = None;
        if self.holding {
            self.holding = false;
            token.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_millis(100);
    const W: Duration = Duration::from_micros(50);

    thread_local! {
        /// The fake count of involuntary switches the tests' `Spin`s read.
        static SWITCHES: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
    }

    /// A `Spin` that reads [`SWITCHES`], not the test thread's real count
    /// (which other tests running at once can raise).
    fn spin(window: Duration) -> Spin {
        Spin {
            switches: || SWITCHES.get(),
            ..Spin::new(window)
        }
    }

    /// A spin of `window` started at the returned instant.
    fn spinning(window: Duration) -> (AtomicBool, Spin, Instant) {
        let token = AtomicBool::new(false);
        let mut s = spin(window);
        let t0 = Instant::now();
        s.polled(t0, true, &token);
        assert_eq!(s.timeout(t0, IDLE, &token), Duration::ZERO);
        (token, s, t0)
    }

    #[test]
    fn spins_for_the_window_after_events_then_sleeps() {
        let token = AtomicBool::new(false);
        let mut s = spin(W);
        let t0 = Instant::now();
        assert_eq!(s.timeout(t0, IDLE, &token), IDLE, "nothing handled yet");
        s.polled(t0, true, &token);
        assert_eq!(s.timeout(t0, IDLE, &token), Duration::ZERO);
        assert!(token.load(Ordering::Relaxed), "the spinner holds the token");
        let t1 = t0 + Duration::from_micros(2);
        s.polled(t1, false, &token);
        assert_eq!(s.timeout(t1, IDLE, &token), Duration::ZERO);
        let late = t0 + W + Duration::from_micros(1);
        assert_eq!(s.timeout(late, IDLE, &token), IDLE, "the window is over");
        assert!(!token.load(Ordering::Relaxed), "and the token given back");
    }

    #[test]
    fn only_one_loop_spins_at_a_time() {
        let token = AtomicBool::new(false);
        let (mut a, mut b) = (spin(W), spin(W));
        let t0 = Instant::now();
        a.polled(t0, true, &token);
        b.polled(t0, true, &token);
        assert_eq!(a.timeout(t0, IDLE, &token), Duration::ZERO);
        assert_eq!(b.timeout(t0, IDLE, &token), IDLE, "a spins already");
    }

    #[test]
    fn a_preempted_spinner_backs_off() {
        let (token, mut s, t0) = spinning(Duration::from_millis(1));
        s.polled(t0 + Duration::from_micros(1), false, &token);
        // Gaps between empty spin polls that a virtual CPU has anyway (the
        // host's interrupts) do not count...
        let t1 = t0 + Duration::from_micros(100);
        s.polled(t1, false, &token);
        assert_eq!(s.timeout(t1, IDLE, &token), Duration::ZERO);
        // ...a longer one is a preemption.
        let t1 = t1 + PREEMPTED + Duration::from_micros(1);
        s.polled(t1, false, &token);
        assert_eq!(s.timeout(t1, IDLE, &token), IDLE);
        assert!(!token.load(Ordering::Relaxed), "the token is given back");
        // Events during the back-off do not start a spin...
        let t2 = t1 + Duration::from_millis(1);
        s.polled(t2, true, &token);
        assert_eq!(s.timeout(t2, IDLE, &token), IDLE);
        // ...after it they do.
        let t3 = t1 + BACK_OFF + Duration::from_millis(1);
        s.polled(t3, true, &token);
        assert_eq!(s.timeout(t3, IDLE, &token), Duration::ZERO);
    }

    #[test]
    fn a_spinner_preempted_by_another_thread_backs_off() {
        let (token, mut s, t0) = spinning(Duration::from_millis(1));
        let t1 = t0 + Duration::from_micros(2);
        s.polled(t1, false, &token);
        assert_eq!(s.timeout(t1, IDLE, &token), Duration::ZERO, "not yet");
        // The kernel switched this thread out for another one, however briefly.
        SWITCHES.set(SWITCHES.get() + 1);
        let t2 = t1 + Duration::from_micros(2);
        s.polled(t2, true, &token);
        assert_eq!(s.timeout(t2, IDLE, &token), IDLE);
        assert!(!token.load(Ordering::Relaxed));
    }

    #[test]
    fn a_zero_window_never_spins() {
        let token = AtomicBool::new(false);
        let mut s = spin(Duration::ZERO);
        let t0 = Instant::now();
        s.polled(t0, true, &token);
        assert_eq!(s.timeout(t0, IDLE, &token), IDLE);
    }
}
