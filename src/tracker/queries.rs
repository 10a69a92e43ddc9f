//! Handlers for what clients ask: where to upload (QUERY_STORE_*), where to
//! download or update a file (QUERY_FETCH_*, QUERY_UPDATE), the group and
//! storage lists (LIST_*), and the admin's deletes of a storage or a group.

use super::handler::{Error, Res, Session, Tracker, now};
use super::state::{FetchKind, FileFacts};
use crate::layout::{RemoteName, Source};
use crate::proto::{self, Cmd};

impl Tracker {
    /// QUERY_STORE_WITH(OUT)_GROUP_ONE / _ALL (101, 104, 106, 107): the
    /// storage (or all of a group's) to upload to, and the store path.
    pub(super) fn query_store(&self, cmd: Cmd, body: &[u8]) -> Res {
        let group = match cmd {
            Cmd::QueryStoreWithGroupOne | Cmd::QueryStoreWithGroupAll => {
                Some(proto::decode_group(body)?)
            }
            _ if body.is_empty() => None,
            _ => return Err(Error::Invalid(format!("a body of {} bytes", body.len()))),
        };
        let mut st = self.state.lock();
        let (name, order, path) = st.pick_store(group.as_deref(), &self.cfg).map_err(|r| {
            let about = format!("group {}", group.as_deref().unwrap_or("(any)"));
            Error::refused(r, about)
        })?;
        let ip_size = self.ip_size(&st);
        let g = &st.groups[&name];
        if matches!(
            cmd,
            Cmd::QueryStoreWithoutGroupOne | Cmd::QueryStoreWithGroupOne
        ) {
            let s = &g.storages[order[0]];
            let t = proto::StoreTarget {
                group: name.clone(),
                ip: s.ip.clone(),
                port: s.port,
                store_path_index: path,
            };
            Ok(t.encode(ip_size))
        } else {
            let servers = order
                .iter()
                .map(|&i| (g.storages[i].ip.clone(), g.storages[i].port))
                .collect();
            Ok(proto::StoreTargets {
                group: name.clone(),
                servers,
                store_path_index: path,
            }
            .encode(ip_size))
        }
    }

    /// QUERY_FETCH_ONE / QUERY_UPDATE / QUERY_FETCH_ALL (102, 103, 105): the
    /// storages that have a file, from what its name says.
    pub(super) fn query_fetch(&self, cmd: Cmd, body: &[u8]) -> Res {
        let q = proto::FetchQuery::decode(body)?;
        let bad_name =
            |e: &dyn std::fmt::Display| Error::Invalid(format!("file {}: {e}", q.remote));
        let name = RemoteName::parse(&q.remote).map_err(|e| bad_name(&e))?;
        let info = name.info().map_err(|e| bad_name(&e))?;
        let facts = FileFacts {
            source: match info.source {
                Source::Ip(ip) => ip.to_string(),
                Source::Id(id) => id.to_string(),
            },
            timestamp: info.timestamp as u64,
            normal: name.is_normal(),
        };
        let kind = match cmd {
            Cmd::QueryFetchOne => FetchKind::One,
            Cmd::QueryUpdate => FetchKind::Update,
            _ => FetchKind::All,
        };
        let mut st = self.state.lock();
        let found = st
            .pick_fetch(&q.group, &facts, kind, now(), &self.cfg)
            .map_err(|r| Error::refused(r, format!("file {}/{}", q.group, q.remote)))?;
        let ip_size = self.ip_size(&st);
        Ok(if kind == FetchKind::All {
            let all = proto::FetchAll {
                group: q.group,
                servers: found,
            };
            if self.cfg.fetch_all_layout_v616 {
                all.encode_v616(ip_size)
            } else {
                all.encode_legacy(ip_size)
            }
        } else {
            let Some((ip, port)) = found.into_iter().next() else {
                return Err(Error::NotFound(format!(
                    "storage for {}/{}",
                    q.group, q.remote
                )));
            };
            proto::FetchTarget {
                group: q.group,
                ip,
                port,
            }
            .encode(ip_size)
        })
    }

    /// LIST_ONE_GROUP / LIST_ALL_GROUPS (90, 91): group stats.
    pub(super) fn list_groups(&self, cmd: Cmd, body: &[u8]) -> Res {
        let only = if cmd == Cmd::ListOneGroup {
            Some(proto::decode_group(body)?)
        } else if body.is_empty() {
            None
        } else {
            return Err(Error::Invalid(format!("a body of {} bytes", body.len())));
        };
        let st = self.state.lock();
        let mut out = Vec::new();
        let mut found = false;
        for g in st
            .groups
            .values()
            .filter(|g| only.as_ref().is_none_or(|n| *n == g.name))
        {
            found = true;
            super::stats::group_stat(g, &self.cfg).encode(self.cfg.legacy_stat_layout, &mut out);
        }
        if let Some(name) = only
            && !found
        {
            return Err(Error::NotFound(format!("group {name}")));
        }
        Ok(out)
    }

    /// LIST_STORAGE (92): the stats of a group's storages, or of one.
    pub(super) fn list_storage(&self, body: &[u8]) -> Res {
        let q = proto::ListStorage::decode(body)?;
        let st = self.state.lock();
        let ip_size = self.ip_size(&st);
        let g = st
            .groups
            .get(&q.group)
            .ok_or_else(|| Error::NotFound(format!("group {}", q.group)))?;
        let layout = if self.cfg.legacy_stat_layout {
            proto::StatLayout::Legacy612
        } else {
            proto::StatLayout::V616 { ip_size }
        };
        let mut out = Vec::new();
        let mut found = false;
        for s in g
            .storages
            .iter()
            .filter(|s| q.id.as_ref().is_none_or(|id| *id == s.id || *id == s.ip))
        {
            found = true;
            super::stats::storage_stat(s, g, &self.cfg).encode(layout, &mut out);
        }
        if let Some(id) = q.id
            && !found
        {
            return Err(Error::NotFound(format!("storage {}/{id}", q.group)));
        }
        Ok(out)
    }

    /// DELETE_STORAGE (93): forget a storage that is not running.
    pub(super) fn delete_storage(&self, s: &Session, body: &[u8]) -> Res {
        let d = proto::DeleteStorage::decode(body)?;
        self.state
            .lock()
            .delete_storage(&d.group, &d.id)
            .map_err(|r| Error::refused(r, format!("storage {}/{}", d.group, d.id)))?;
        // Storages learn it from the changelog and drop their sync state.
        self.changelog
            .append(now(), &d.group, &d.id, proto::storage_status::DELETED, "");
        log::info!("storage {}/{} deleted by {}", d.group, d.id, s.peer);
        Ok(Vec::new())
    }

    /// DELETE_GROUP (108): forget a group none of whose storages runs.
    pub(super) fn delete_group(&self, s: &Session, body: &[u8]) -> Res {
        let g = proto::decode_group(body)?;
        self.state
            .lock()
            .delete_group(&g)
            .map_err(|r| Error::refused(r, format!("group {g}")))?;
        log::info!("group {g} deleted by {}", s.peer);
        Ok(Vec::new())
    }
}
