//! Worker pools: named threads taking jobs from one shared queue, so a job
//! waits only while every worker is busy. A connection has at most one job in
//! flight (its next request, or the next chunk of a streamed body, is read
//! only once the job is done), so its jobs still run in order.

use crossbeam_channel::{Sender, unbounded};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of named worker threads sharing one queue.
pub struct Pool {
    queue: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Start `threads` (at least 1) workers named `<name>-<i>`.
    pub fn new(name: &str, threads: usize) -> std::io::Result<Pool> {
        let (tx, rx) = unbounded::<Job>();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let h = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                })?;
            handles.push(h);
        }
        Ok(Pool {
            queue: Some(tx),
            threads: handles,
        })
    }

    /// Queue `job` for the next free worker.
    pub fn submit(&self, job: Box<dyn FnOnce() + Send>) {
        if self.queue.as_ref().is_none_or(|q| q.send(job).is_err()) {
            // Only after shutdown started: the job (and the reply it would
            // produce) is dropped with its connection.
            log::debug!("worker queue gone, job dropped");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends the threads once they finish queued work.
        self.queue = None;
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier, Mutex};

    #[test]
    fn every_job_runs_before_the_pool_is_gone() {
        let pool = Pool::new("t", 3).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..100 {
            let seen = seen.clone();
            pool.submit(Box::new(move || seen.lock().unwrap().push(i)));
        }
        drop(pool);
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
    }

    /// A job queued while one worker is held up runs on another: no worker
    /// is tied to a connection or key.
    #[test]
    fn a_busy_worker_does_not_hold_up_the_queue() {
        let pool = Pool::new("t", 2).unwrap();
        let held = Arc::new(Barrier::new(2));
        let h = held.clone();
        pool.submit(Box::new(move || {
            h.wait();
        }));
        let (tx, rx) = crossbeam_channel::bounded(1);
        pool.submit(Box::new(move || tx.send(()).unwrap()));
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second job ran while the first was blocked");
        held.wait();
    }
}
