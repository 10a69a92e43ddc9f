//! The tracker's `GET /metrics` on its `http.server_port` (Prometheus text
//! format): groups and storage servers by status, each server's space,
//! whether this tracker leads, and the requests it answered by command and
//! status with their latency.

use super::handler::Tracker;
use crate::http::metrics::Page;
use crate::http::parse::Request;
use crate::http::server::{Body, Handler, Response};
use crate::proto::{Cmd, status, storage_status};
use std::net::SocketAddr;
use std::sync::Arc;

/// The tracker's HTTP side: `/metrics` only.
pub struct TrackerHttp(pub Arc<Tracker>);

impl Handler for TrackerHttp {
    fn handle(&self, req: &Request, _peer: SocketAddr) -> Response {
        if req.path != "/metrics" {
            return Response::text(404, "only /metrics here");
        }
        let mut r = Response::new(200).header("Content-Type", crate::http::metrics::CONTENT_TYPE);
        r.body = Body::Bytes(page(&self.0).into_bytes());
        r
    }
}

/// The page.
pub fn page(t: &Tracker) -> String {
    let mut p = Page::default();
    {
        let st = t.state.lock();
        p.gauge(
            "fdfs_tracker_groups",
            "Groups this tracker knows.",
            &[(vec![], st.groups.len() as f64)],
        );
        let mut by_status: std::collections::BTreeMap<(String, &'static str), u64> =
            Default::default();
        let mut space = Vec::new();
        for (name, g) in &st.groups {
            for s in &g.storages {
                *by_status
                    .entry((name.clone(), storage_status::name(s.status)))
                    .or_default() += 1;
                space.push((name.clone(), s.id.clone(), s.total_mb, s.free_mb));
            }
        }
        let samples: Vec<(Vec<(&str, &str)>, f64)> = (by_status.iter())
            .map(|((g, s), n)| (vec![("group", g.as_str()), ("status", *s)], *n as f64))
            .collect();
        p.gauge(
            "fdfs_tracker_storages",
            "Storage servers by group and status.",
            &samples,
        );
        let mb = 1024.0 * 1024.0;
        let total: Vec<(Vec<(&str, &str)>, f64)> = (space.iter())
            .map(|(g, id, t, _)| {
                (
                    vec![("group", g.as_str()), ("storage", id.as_str())],
                    *t as f64 * mb,
                )
            })
            .collect();
        let free: Vec<(Vec<(&str, &str)>, f64)> = (space.iter())
            .map(|(g, id, _, f)| {
                (
                    vec![("group", g.as_str()), ("storage", id.as_str())],
                    *f as f64 * mb,
                )
            })
            .collect();
        p.gauge(
            "fdfs_tracker_storage_total_bytes",
            "Disk space of each storage server.",
            &total,
        );
        p.gauge(
            "fdfs_tracker_storage_free_bytes",
            "Free space of each storage server.",
            &free,
        );
    }
    let leader = t.cluster.lock().is_leader();
    p.gauge(
        "fdfs_tracker_leader",
        "1 if this tracker is the leader.",
        &[(vec![], leader as u8 as f64)],
    );
    if let Some(server) = t.conns.get() {
        p.requests("fdfs_tracker", &server.requests, Cmd::label, |s| {
            status::name(s).to_string()
        });
        let [_, current, _] = server.counts();
        p.gauge(
            "fdfs_tracker_connections",
            "Connections open now.",
            &[(vec![], current as f64)],
        );
    }
    p.finish()
}
