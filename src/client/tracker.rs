//! Tracker queries, trying each configured tracker in turn until one answers.

use super::{Connection, Error, Timeouts};
use crate::proto::{self, Cmd};

/// Largest tracker reply we accept (list replies of big clusters included).
const MAX_REPLY: usize = 4 << 20;

/// The configured trackers.
#[derive(Clone, Debug)]
pub struct TrackerClient {
    /// "host:port" of each tracker, tried in order.
    pub addrs: Vec<String>,
    /// Timeouts for each connection.
    pub timeouts: Timeouts,
}

impl TrackerClient {
    /// A client for `addrs` (at least one).
    pub fn new(addrs: Vec<String>, timeouts: Timeouts) -> TrackerClient {
        TrackerClient { addrs, timeouts }
    }

    /// One request to the first tracker that can be reached. A status error is
    /// final (that tracker answered); connection errors move on to the next.
    pub fn call(&self, cmd: Cmd, body: &[u8]) -> Result<Vec<u8>, Error> {
        let mut last = None;
        for addr in &self.addrs {
            let attempt = Connection::connect(addr, self.timeouts, None).and_then(|mut c| {
                let r = c.call(cmd, body, MAX_REPLY);
                if r.is_ok() {
                    c.quit();
                }
                r
            });
            match attempt {
                Err(e) if e.is_io() => {
                    log::debug!("tracker {addr}: {e}");
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(match last {
            Some(e) => Error::NoTracker(e.to_string()),
            None => Error::NoTracker("no tracker configured".into()),
        })
    }

    fn peer_err(&self, e: proto::DecodeError) -> Error {
        Error::Protocol {
            addr: self.addrs.join(","),
            msg: e.to_string(),
        }
    }

    /// Where to upload (QUERY_STORE_WITH[OUT]_GROUP_ONE).
    pub fn query_store(&self, group: Option<&str>) -> Result<proto::StoreTarget, Error> {
        let r = match group {
            Some(g) => self.call(Cmd::QueryStoreWithGroupOne, &proto::encode_group(g))?,
            None => self.call(Cmd::QueryStoreWithoutGroupOne, &[])?,
        };
        proto::StoreTarget::decode(&r).map_err(|e| self.peer_err(e))
    }

    /// Where to download from (QUERY_FETCH_ONE) or to change a file (QUERY_UPDATE).
    pub fn query_fetch(
        &self,
        group: &str,
        remote: &str,
        update: bool,
    ) -> Result<proto::FetchTarget, Error> {
        let cmd = if update {
            Cmd::QueryUpdate
        } else {
            Cmd::QueryFetchOne
        };
        let body = proto::FetchQuery {
            group: group.into(),
            remote: remote.into(),
        }
        .encode();
        let r = self.call(cmd, &body)?;
        proto::FetchTarget::decode(&r).map_err(|e| self.peer_err(e))
    }
}
