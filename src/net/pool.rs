//! Worker pools with sticky lanes: each thread has its own queue, and a job's
//! key picks the lane, so the jobs of one connection run in order on one thread
//! (FastDFS's disk-I/O threads per store path work the same way).

use crossbeam_channel::{Sender, unbounded};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of named worker threads, one queue each.
pub struct Pool {
    lanes: Vec<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Start `threads` (at least 1) workers named `<name>-<i>`.
    pub fn new(name: &str, threads: usize) -> std::io::Result<Pool> {
        let mut lanes = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, rx) = unbounded::<Job>();
            let h = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                })?;
            lanes.push(tx);
            handles.push(h);
        }
        Ok(Pool {
            lanes,
            threads: handles,
        })
    }

    /// Queue `job` on lane `key % lanes`.
    pub fn submit(&self, key: usize, job: Box<dyn FnOnce() + Send>) {
        let lane = &self.lanes[key % self.lanes.len()];
        if lane.send(job).is_err() {
            // Only after shutdown started: the job (and the reply it would
            // produce) is dropped with its connection.
            log::debug!("worker lane gone, job dropped");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queues ends the threads once they finish queued work.
        self.lanes.clear();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn same_key_runs_in_order_on_one_lane() {
        let pool = Pool::new("t", 3).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..100 {
            let seen = seen.clone();
            pool.submit(
                7,
                Box::new(move || {
                    seen.lock()
                        .unwrap()
                        .push((i, std::thread::current().name().map(String::from)))
                }),
            );
        }
        drop(pool);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 100);
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 == w[1].1));
    }
}
