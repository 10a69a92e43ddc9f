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
            Some(g) => self.call(Cmd::QueryStoreWithGroupOne, &proto::encode_group(g)),
            None => self.call(Cmd::QueryStoreWithoutGroupOne, &[]),
        };
        let r = r.map_err(|e| self.why_none(e, group))?;
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
        let r = self
            .call(cmd, &body)
            .map_err(|e| self.why_none(e, Some(group)))?;
        proto::FetchTarget::decode(&r).map_err(|e| self.peer_err(e))
    }

    /// A QUERY_* that a tracker answered with ENOENT: it says so both for a
    /// group it does not know and for a group none of whose storages is
    /// ACTIVE, which are "not found" and "unavailable" to the user. Ask that
    /// tracker which (LIST_ONE_GROUP, LIST_STORAGE); if it cannot tell, its
    /// first answer stands.
    fn why_none(&self, e: Error, group: Option<&str>) -> Error {
        let Error::Status {
            addr,
            status: proto::status::ENOENT,
            ..
        } = &e
        else {
            return e;
        };
        let tracker = addr.clone();
        let servers = match group {
            Some(g) => match self.call_at(&tracker, Cmd::ListOneGroup, &proto::encode_group(g)) {
                Err(ge) if ge.status() == Some(proto::status::ENOENT) => {
                    return Error::NoGroup {
                        tracker,
                        group: g.into(),
                    };
                }
                Err(_) => return e,
                Ok(_) => self.storages_text(&tracker, g, false),
            },
            None => match self.list_groups_at(&tracker) {
                Err(_) => return e,
                Ok(groups) => groups
                    .iter()
                    .flat_map(|g| self.storages_text(&tracker, &g.name, true))
                    .collect(),
            },
        };
        Error::NoStorage {
            tracker,
            group: group.map(String::from),
            servers,
        }
    }

    /// "127.0.0.2:23000 OFFLINE" for each storage of `group` that the tracker
    /// at `addr` lists (prefixed "group1: " with `named`); empty if it cannot.
    fn storages_text(&self, addr: &str, group: &str, named: bool) -> Vec<String> {
        let prefix = if named {
            format!("{group}: ")
        } else {
            String::new()
        };
        let list = self.list_storages_at(addr, group).unwrap_or_default();
        list.iter()
            .map(|s| {
                let id = if s.id.is_empty() || s.id == s.ip {
                    String::new()
                } else {
                    format!("{} ", s.id)
                };
                format!(
                    "{prefix}{id}{}:{} {}",
                    s.ip,
                    s.storage_port,
                    proto::storage_status::name(s.status)
                )
            })
            .collect()
    }
}

/// Per-tracker calls of the monitor (`fdfs monitor`): it must address every configured
/// tracker, not the first that answers, to show each one's state and to delete a server
/// from all of them (as FastDFS's client library does).
impl TrackerClient {
    /// One request to the tracker at `addr` only.
    pub fn call_at(&self, addr: &str, cmd: Cmd, body: &[u8]) -> Result<Vec<u8>, Error> {
        let mut c = Connection::connect(addr, self.timeouts, None)?;
        let r = c.call(cmd, body, MAX_REPLY)?;
        c.quit();
        Ok(r)
    }

    /// ACTIVE_TEST (111): Ok if the tracker at `addr` answers.
    pub fn active_test_at(&self, addr: &str) -> Result<(), Error> {
        self.call_at(addr, Cmd::ActiveTest, &[]).map(drop)
    }

    /// GET_LEADER (95): the leader's "ip:port" as `addr` knows it, None if it knows no
    /// leader (ENOENT). Trackers older than 6.15.5 answer with another error.
    pub fn leader_at(&self, addr: &str) -> Result<Option<String>, Error> {
        match self.call_at(addr, Cmd::GetLeader, &[]) {
            Ok(b) => {
                // The text carries no NUL, but tolerate one as other fields do.
                let text = proto::fixed_str(&b);
                Ok((!text.is_empty()).then_some(text))
            }
            Err(e) if e.status() == Some(proto::status::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// LIST_ALL_GROUPS (91) at `addr`, in the 113-byte (6.13.1+) or 105-byte (legacy)
    /// record layout, told apart by the body length.
    pub fn list_groups_at(&self, addr: &str) -> Result<Vec<proto::stat::GroupStat>, Error> {
        let b = self.call_at(addr, Cmd::ListAllGroups, &[])?;
        decode_groups(&b).map_err(|msg| Error::Protocol {
            addr: addr.into(),
            msg,
        })
    }

    /// LIST_STORAGE (92) of `group` at `addr`, in the 487/517-byte (6.15+) or 612-byte
    /// (<= 6.10) record layout, told apart by the body length.
    pub fn list_storages_at(
        &self,
        addr: &str,
        group: &str,
    ) -> Result<Vec<proto::stat::StorageStat>, Error> {
        let b = self.call_at(addr, Cmd::ListStorage, &proto::encode_group(group))?;
        decode_storages(&b).map_err(|msg| Error::Protocol {
            addr: addr.into(),
            msg,
        })
    }

    /// DELETE_STORAGE (93) of `group`/`id` at `addr`.
    pub fn delete_storage_at(&self, addr: &str, group: &str, id: &str) -> Result<(), Error> {
        let body = proto::DeleteStorage {
            group: group.into(),
            id: id.into(),
        }
        .encode();
        self.call_at(addr, Cmd::DeleteStorage, &body).map(drop)
    }

    /// DELETE_GROUP (108) of `group` at `addr`.
    pub fn delete_group_at(&self, addr: &str, group: &str) -> Result<(), Error> {
        self.call_at(addr, Cmd::DeleteGroup, &proto::encode_group(group))
            .map(drop)
    }
}

/// A group name as FastDFS allows it; used to pick a layout when the length fits both.
fn plausible_group(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Group-stat records in whichever layout the length says; when it fits both (105 x 113
/// bytes), the one whose names look like group names, HEAD (what our tracker sends) first.
fn decode_groups(b: &[u8]) -> Result<Vec<proto::stat::GroupStat>, String> {
    use proto::stat::GroupStat;
    let decoded: Vec<Vec<GroupStat>> = [false, true]
        .into_iter()
        .filter_map(|legacy| GroupStat::decode_list(b, legacy).ok())
        .collect();
    match decoded.len() {
        0 => Err(format!(
            "group list of {} bytes fits no record layout",
            b.len()
        )),
        1 => Ok(decoded.into_iter().next().unwrap_or_default()),
        _ => {
            let pick = decoded
                .iter()
                .position(|v| v.iter().all(|g| plausible_group(&g.name)))
                .unwrap_or(0);
            Ok(decoded.into_iter().nth(pick).unwrap_or_default())
        }
    }
}

/// Storage-stat records in whichever layout the length says (no two sizes share a multiple
/// below the 32-servers-per-group limit).
fn decode_storages(b: &[u8]) -> Result<Vec<proto::stat::StorageStat>, String> {
    use proto::stat::{StatLayout, StorageStat};
    let layouts = [
        StatLayout::V616 { ip_size: 16 },
        StatLayout::V616 { ip_size: 46 },
        StatLayout::Legacy612,
    ];
    let fitting: Vec<StatLayout> = layouts
        .into_iter()
        .filter(|l| b.len().is_multiple_of(l.record_len()))
        .collect();
    match fitting.as_slice() {
        [] => Err(format!(
            "storage list of {} bytes fits no record layout",
            b.len()
        )),
        // An empty body fits all; any layout decodes it to nothing.
        [l, ..] if b.is_empty() => StorageStat::decode_list(b, *l).map_err(|e| e.to_string()),
        [l] => StorageStat::decode_list(b, *l).map_err(|e| e.to_string()),
        _ => Err(format!(
            "storage list of {} bytes fits several record layouts",
            b.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::stat::{GroupStat, StatLayout, StorageStat};

    fn group(name: &str) -> GroupStat {
        GroupStat {
            name: name.into(),
            storage_count: 1,
            ..Default::default()
        }
    }

    #[test]
    fn groups_by_length() {
        for legacy in [false, true] {
            let mut b = Vec::new();
            group("group1").encode(legacy, &mut b);
            group("group2").encode(legacy, &mut b);
            let d = decode_groups(&b).unwrap();
            assert_eq!(d.len(), 2);
            assert_eq!(d[1].name, "group2");
            assert_eq!(d[0].storage_count, 1);
        }
        assert!(decode_groups(&[]).unwrap().is_empty());
        assert!(decode_groups(&[0; 50]).is_err());
    }

    #[test]
    fn groups_ambiguous_length_uses_names() {
        // 105 HEAD records = 113 legacy records = 11865 bytes.
        let mut b = Vec::new();
        for i in 0..113 {
            group(&format!("g{i}")).encode(true, &mut b);
        }
        assert_eq!(b.len(), 105 * 113);
        let d = decode_groups(&b).unwrap();
        assert_eq!(d.len(), 113);
        assert_eq!(d[112].name, "g112");
    }

    #[test]
    fn storages_by_length() {
        let s = StorageStat {
            status: 7,
            id: "127.0.0.2".into(),
            ip: "127.0.0.2".into(),
            storage_port: 23000,
            ..Default::default()
        };
        for layout in [
            StatLayout::V616 { ip_size: 16 },
            StatLayout::V616 { ip_size: 46 },
            StatLayout::Legacy612,
        ] {
            let mut b = Vec::new();
            s.encode(layout, &mut b);
            s.encode(layout, &mut b);
            let d = decode_storages(&b).unwrap();
            assert_eq!(d.len(), 2);
            assert_eq!((d[0].status, d[0].storage_port), (7, 23000));
            assert_eq!(d[1].ip, "127.0.0.2");
        }
        assert!(decode_storages(&[]).unwrap().is_empty());
        assert!(decode_storages(&[0; 100]).is_err());
    }
}
