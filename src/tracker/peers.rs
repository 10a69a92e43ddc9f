//! Handlers for what other trackers send: the election (GET_STATUS, the
//! leader handover, RESELECT), followers joining and pinging the leader,
//! GET_LEADER, and a new tracker copying the state files (GET_SYS_FILES_*).
//! The cluster thread that sends these is `cluster.rs`.

use super::handler::{Error, Res, Session, Tracker, now};
use crate::proto::peer::SYS_FILE_CHUNK;
use crate::proto::{self, Cmd};

impl Tracker {
    /// TRACKER_GET_STATUS (64): whether we lead, and for how long we run.
    pub(super) fn get_status(&self) -> Vec<u8> {
        let (if_leader, running_time, restart_interval) = self.local_status();
        proto::peer::TrackerStatus {
            if_leader,
            running_time,
            restart_interval,
        }
        .encode()
    }

    /// NOTIFY_NEXT_LEADER / COMMIT_NEXT_LEADER (66, 67) from an electing tracker.
    pub(super) fn leader_change(&self, s: &Session, cmd: Cmd, body: &[u8]) -> Res {
        let addr = std::str::from_utf8(body)
            .ok()
            .and_then(super::cluster::normalise)
            .ok_or_else(|| Error::Invalid("not a tracker address".into()))?;
        let mut c = self.cluster.lock();
        if cmd == Cmd::TrackerNotifyNextLeader {
            if c.is_leader() && c.me.as_deref() != Some(addr.as_str()) {
                // Upstream's rule: a leader told of another candidate resigns.
                log::warn!(
                    "{} proposes {addr} as leader while we lead: stepping down",
                    s.peer
                );
                c.set_leader(None);
                return Err(Error::Invalid(format!("{addr} proposed while we lead")));
            }
            c.trackers.insert(addr.clone());
            c.candidate = Some(addr);
            Ok(Vec::new())
        } else if c.candidate.as_deref() == Some(addr.as_str()) {
            c.candidate = None;
            c.set_leader(Some(addr));
            Ok(Vec::new())
        } else {
            Err(Error::Invalid(format!("{addr} is not the candidate")))
        }
    }

    /// NOTIFY_RESELECT_LEADER (68): the leader resigns, for a new election.
    pub(super) fn reselect_leader(&self, s: &Session) -> Vec<u8> {
        let mut c = self.cluster.lock();
        if c.is_leader() {
            log::warn!("{} asks the leader to resign: new election", s.peer);
            c.set_leader(None);
        }
        Vec::new()
    }

    /// Only the leader takes followers (EOPNOTSUPP elsewhere).
    fn must_lead(&self) -> Result<(), Error> {
        if self.cluster.lock().is_leader() {
            Ok(())
        } else {
            Err(Error::NotHere("not the leader"))
        }
    }

    /// JOIN_LEADER (58): the connection is a follower's from now on.
    pub(super) fn join_leader(&self, s: &mut Session, body: &[u8]) -> Res {
        self.must_lead()?;
        if s.follower {
            return Err(Error::Already("joined already on this connection"));
        }
        s.follower = true;
        // A body we cannot read still makes a follower, one the cluster
        // stats cannot name.
        if let Ok(j) = proto::peer::JoinLeader::decode(body) {
            let addr = format!("{}:{}", s.peer.ip(), j.server_port);
            let mut c = self.cluster.lock();
            if let Some(addr) = super::cluster::normalise(&addr) {
                c.learn(std::slice::from_ref(&addr));
                let f = c.followers.entry(addr.clone()).or_default();
                f.up_time = j.up_time;
                f.version = j.version;
                s.follower_addr = Some(addr);
            }
        }
        Ok(Vec::new())
    }

    /// PING_LEADER (65): a follower's heartbeat, with its connection counts.
    pub(super) fn ping_leader(&self, s: &Session, body: &[u8]) -> Res {
        self.must_lead()?;
        if !s.follower {
            return Err(Error::Invalid("no JOIN_LEADER on this connection".into()));
        }
        if let Some(addr) = &s.follower_addr {
            let mut c = self.cluster.lock();
            let f = c.followers.entry(addr.clone()).or_default();
            // Older followers send no counts; a body we cannot read still
            // counts as a ping.
            if let Ok(proto::peer::PingLeader {
                connections: Some(n),
            }) = proto::peer::PingLeader::decode(body)
            {
                f.connections = n;
            }
            f.last_heartbeat_time = now();
        }
        Ok(Vec::new())
    }

    /// SERVER_GET_LEADER (95): the leader's "ip:port".
    pub(super) fn get_leader(&self) -> Res {
        self.cluster
            .lock()
            .leader
            .clone()
            .map(String::into_bytes)
            .ok_or_else(|| Error::NotFound("leader".into()))
    }

    /// GET_SYS_FILES_START (61): a snapshot of the state files, which the
    /// connection then reads with GET_ONE_SYS_FILE.
    pub(super) fn sys_files_start(&self, s: &mut Session) -> Res {
        let st = self.state.lock();
        if st.groups.is_empty() {
            return Err(Error::NotFound("group yet".into()));
        }
        s.sys_files = Some(super::persist::snapshot(
            &st,
            self.changelog.all(),
            self.cfg.use_storage_id,
        ));
        Ok(Vec::new())
    }

    /// GET_ONE_SYS_FILE (63): a chunk of a file of the snapshot.
    pub(super) fn one_sys_file(&self, s: &Session, body: &[u8]) -> Res {
        let q = proto::peer::SysFileRequest::decode(body)?;
        let files = s
            .sys_files
            .as_ref()
            .ok_or_else(|| Error::Invalid("no GET_SYS_FILES_START on this connection".into()))?;
        let file = files
            .get(q.index as usize)
            .ok_or_else(|| Error::Invalid(format!("no system file {}", q.index)))?;
        let offset = q.offset.min(file.len() as u64) as usize;
        let end = (offset + SYS_FILE_CHUNK).min(file.len());
        Ok(proto::peer::SysFileChunk {
            file_size: file.len() as u64,
            chunk: &file[offset..end],
        }
        .encode())
    }

    /// GET_SYS_FILES_END (62): the snapshot is dropped.
    pub(super) fn sys_files_end(&self, s: &mut Session) -> Vec<u8> {
        s.sys_files = None;
        Vec::new()
    }
}
