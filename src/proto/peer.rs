//! Tracker <-> tracker messages (PROTOCOL.md §10): the GET_STATUS (64) reply that elections
//! compare, a follower's JOIN_LEADER (58) and PING_LEADER (65), and GET_ONE_SYS_FILE (63)
//! with which a fresh tracker copies the system files. The leader texts of 66/67 are plain
//! "ip:port" and need no codec. Only std.

use super::cluster_stat::Connections;
use super::tracker::port64;
use super::{DecodeError, Reader, VERSION_SIZE, put_fixed, put_u64};

/// Most file bytes one GET_ONE_SYS_FILE reply carries (§10.3).
pub const SYS_FILE_CHUNK: usize = 8173;

fn exact(b: &[u8], len: usize, what: &'static str) -> Result<(), DecodeError> {
    if b.len() != len {
        return Err(DecodeError::BadLength {
            what,
            len: b.len() as u64,
        });
    }
    Ok(())
}

/// Reply of GET_STATUS (64): `if_leader u8` + `running_time u64` + `restart_interval u64`
/// = 17 bytes (§10.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerStatus {
    /// The tracker leads.
    pub if_leader: bool,
    /// Seconds since it started.
    pub running_time: u64,
    /// How long it was down before that start, in seconds (0: unknown).
    pub restart_interval: u64,
}

/// Size of [`TrackerStatus`].
pub const TRACKER_STATUS_LEN: usize = 1 + 8 + 8;

impl TrackerStatus {
    /// 17 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TRACKER_STATUS_LEN);
        out.push(u8::from(self.if_leader));
        put_u64(&mut out, self.running_time);
        put_u64(&mut out, self.restart_interval);
        out
    }

    /// Exactly 17 bytes; any non-zero `if_leader` byte means leader.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        exact(b, TRACKER_STATUS_LEN, "tracker status")?;
        let mut r = Reader::new(b);
        Ok(TrackerStatus {
            if_leader: r.u8("if_leader")? != 0,
            running_time: r.u64("running_time")?,
            restart_interval: r.u64("restart_interval")?,
        })
    }
}

/// Request of JOIN_LEADER (58), TrackerJoinLeaderBody: `up_time u64` + `version str[8]` +
/// `server_port u64` = 24 bytes (§10.2, since 6.15.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinLeader {
    /// When the follower started (unix seconds).
    pub up_time: u64,
    /// Its version text, e.g. "6.16.1".
    pub version: String,
    /// The port it serves on.
    pub server_port: u16,
}

/// Size of [`JoinLeader`].
pub const JOIN_LEADER_LEN: usize = 8 + VERSION_SIZE + 8;

impl JoinLeader {
    /// 24 bytes (version truncated to 8).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(JOIN_LEADER_LEN);
        put_u64(&mut out, self.up_time);
        put_fixed(&mut out, &self.version, VERSION_SIZE);
        put_u64(&mut out, u64::from(self.server_port));
        out
    }

    /// Exactly 24 bytes; a port above 65535 is invalid.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        exact(b, JOIN_LEADER_LEN, "join leader")?;
        let mut r = Reader::new(b);
        Ok(JoinLeader {
            up_time: r.u64("up_time")?,
            version: r.fixed(VERSION_SIZE, "version")?,
            server_port: port64(&mut r, "server_port")?,
        })
    }
}

/// Request of PING_LEADER (65), TrackerPingLeaderBody: since 6.15.5 the follower's
/// connection counts `alloc u32` + `current u32` + `max u32` (12 bytes), before that
/// nothing (§10.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PingLeader {
    /// The counts; `None` for the empty body of older followers.
    pub connections: Option<Connections>,
}

impl PingLeader {
    /// 12 bytes, or none.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12);
        if let Some(c) = &self.connections {
            c.put(&mut out);
        }
        out
    }

    /// 0 or 12 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.is_empty() {
            return Ok(PingLeader { connections: None });
        }
        exact(b, 12, "ping leader")?;
        let mut r = Reader::new(b);
        Ok(PingLeader {
            connections: Some(Connections::read(&mut r)?),
        })
    }
}

/// Request of GET_ONE_SYS_FILE (63): `file_index u8` + `offset u64` = exactly 9 bytes
/// (§10.3). Index 0..=3 names a system file; which ones is the tracker's business.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysFileRequest {
    /// Which system file.
    pub index: u8,
    /// Where in it the chunk starts.
    pub offset: u64,
}

impl SysFileRequest {
    /// 9 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9);
        out.push(self.index);
        put_u64(&mut out, self.offset);
        out
    }

    /// Exactly 9 bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        exact(b, 9, "get one sys file")?;
        let mut r = Reader::new(b);
        Ok(SysFileRequest {
            index: r.u8("file_index")?,
            offset: r.u64("offset")?,
        })
    }
}

/// Reply of GET_ONE_SYS_FILE (63): `file_size u64` + up to [`SYS_FILE_CHUNK`] bytes of the
/// file from the requested offset (§10.3). Borrows the chunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysFileChunk<'a> {
    /// The whole file's size.
    pub file_size: u64,
    /// Its bytes from the requested offset.
    pub chunk: &'a [u8],
}

impl<'a> SysFileChunk<'a> {
    /// 8 + chunk bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.chunk.len());
        put_u64(&mut out, self.file_size);
        out.extend_from_slice(self.chunk);
        out
    }

    /// 8 to 8 + [`SYS_FILE_CHUNK`] bytes.
    pub fn decode(b: &'a [u8]) -> Result<Self, DecodeError> {
        if b.len() > 8 + SYS_FILE_CHUNK {
            return Err(DecodeError::BadLength {
                what: "sys file chunk",
                len: b.len() as u64,
            });
        }
        let mut r = Reader::new(b);
        Ok(SysFileChunk {
            file_size: r.len64("file_size")?,
            chunk: r.rest(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_status() {
        let s = TrackerStatus {
            if_leader: true,
            running_time: 600,
            restart_interval: 300,
        };
        let b = s.encode();
        assert_eq!(b.len(), 17);
        assert_eq!(b[0], 1);
        assert_eq!(&b[1..9], &600u64.to_be_bytes());
        assert_eq!(TrackerStatus::decode(&b), Ok(s));
        let mut two = b.clone();
        two[0] = 2;
        assert!(TrackerStatus::decode(&two).unwrap().if_leader);
        assert!(TrackerStatus::decode(&b[..16]).is_err());
        let mut long = b.clone();
        long.push(0);
        assert!(TrackerStatus::decode(&long).is_err());
        assert!(TrackerStatus::decode(&[]).is_err());
    }

    #[test]
    fn join_leader() {
        let j = JoinLeader {
            up_time: 1_700_000_000,
            version: "6.16.1".into(),
            server_port: 22122,
        };
        let b = j.encode();
        assert_eq!(b.len(), JOIN_LEADER_LEN);
        assert_eq!(&b[8..16], b"6.16.1\0\0");
        assert_eq!(&b[16..], &22122u64.to_be_bytes());
        assert_eq!(JoinLeader::decode(&b), Ok(j));
        assert!(JoinLeader::decode(&b[..23]).is_err());
        assert!(JoinLeader::decode(&[b.as_slice(), &[0]].concat()).is_err());
        assert!(JoinLeader::decode(&[]).is_err());
        let mut port = b.clone();
        port[16..].copy_from_slice(&70_000u64.to_be_bytes());
        assert_eq!(
            JoinLeader::decode(&port),
            Err(DecodeError::Invalid("server_port"))
        );
    }

    #[test]
    fn ping_leader() {
        let p = PingLeader {
            connections: Some(Connections {
                alloc: 7,
                current: 2,
                max: 5,
            }),
        };
        let b = p.encode();
        assert_eq!(b, [0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 5]);
        assert_eq!(PingLeader::decode(&b), Ok(p));
        let old = PingLeader { connections: None };
        assert!(old.encode().is_empty());
        assert_eq!(PingLeader::decode(&[]), Ok(old));
        assert!(PingLeader::decode(&b[..11]).is_err());
        assert!(PingLeader::decode(&[0; 13]).is_err());
    }

    #[test]
    fn sys_file_request() {
        let q = SysFileRequest {
            index: 3,
            offset: 8173,
        };
        let b = q.encode();
        assert_eq!(b, [3, 0, 0, 0, 0, 0, 0, 0x1f, 0xed]);
        assert_eq!(SysFileRequest::decode(&b), Ok(q));
        assert!(SysFileRequest::decode(&b[..8]).is_err());
        assert!(SysFileRequest::decode(&[0; 10]).is_err());
    }

    #[test]
    fn sys_file_chunk() {
        let data = b"[Group001]\ngroup_name=group1\n";
        let c = SysFileChunk {
            file_size: 100,
            chunk: data,
        };
        let b = c.encode();
        assert_eq!(&b[..8], &100u64.to_be_bytes());
        assert_eq!(SysFileChunk::decode(&b), Ok(c));
        let empty = SysFileChunk {
            file_size: 0,
            chunk: &[],
        };
        assert_eq!(SysFileChunk::decode(&empty.encode()), Ok(empty));
        assert!(SysFileChunk::decode(&b[..7]).is_err());
        let full = vec![0u8; 8 + SYS_FILE_CHUNK];
        assert!(SysFileChunk::decode(&full).is_ok());
        assert!(SysFileChunk::decode(&[full.as_slice(), &[0]].concat()).is_err());
        let mut negative = b.clone();
        negative[0] = 0x80;
        assert!(SysFileChunk::decode(&negative).is_err());
    }
}
