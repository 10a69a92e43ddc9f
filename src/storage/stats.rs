//! The storage's counters: what it served and replicated (storage_stat.dat,
//! the trackers' beat reports), and the newest record received from each
//! peer (SYNC_REPORT).

use crate::net::ConnStats;
use crate::proto::StatCounters;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The counters (see the module notes).
#[derive(Default)]
pub struct Stats {
    counters: Mutex<StatCounters>,
    /// Newest record timestamp received from each source peer.
    received_from: Mutex<HashMap<String, u32>>,
    /// The event loop's connection counters (set once bound).
    conns: OnceLock<Arc<ConnStats>>,
}

impl Stats {
    /// Change the counters with `f` (under their lock: keep it short).
    pub fn count(&self, f: impl FnOnce(&mut StatCounters)) {
        f(&mut self.counters.lock());
    }

    /// The counters as counted (storage_stat.dat keeps these).
    pub fn counted(&self) -> StatCounters {
        *self.counters.lock()
    }

    /// The counters with the current connection figures filled in.
    pub fn now(&self) -> StatCounters {
        let mut s = *self.counters.lock();
        if let Some(c) = self.conns.get() {
            [s.connection_alloc, s.connection_current, s.connection_max] = c.counts();
        }
        s
    }

    /// The event loop's connection and request counters (once bound).
    pub fn server(&self) -> Option<&Arc<ConnStats>> {
        self.conns.get()
    }

    /// Count connections with the event loop's `conns` from now on.
    pub fn set_conns(&self, conns: Arc<ConnStats>) {
        let _ = self.conns.set(conns);
    }

    /// A change from `source` with this timestamp, carrying `bytes` of
    /// content, was applied here.
    pub fn received(&self, source: Option<&str>, timestamp: u32, bytes: u64) {
        if let Some(src) = source {
            let mut m = self.received_from.lock();
            let e = m.entry(src.to_string()).or_insert(0);
            *e = (*e).max(timestamp);
        }
        self.count(|s| {
            s.last_sync_update = super::now();
            s.total_sync_in_bytes += bytes;
            s.success_sync_in_bytes += bytes;
        });
    }

    /// The newest record timestamp received from the peer `id` (0: none).
    pub fn received_from(&self, id: &str) -> u32 {
        self.received_from.lock().get(id).copied().unwrap_or(0)
    }

    /// `bytes` of file content were pushed to a peer.
    pub fn sent(&self, bytes: u64) {
        self.count(|s| {
            s.total_sync_out_bytes += bytes;
            s.success_sync_out_bytes += bytes;
        });
    }
}
