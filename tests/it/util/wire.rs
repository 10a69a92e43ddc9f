//! The FastDFS wire as the tests speak it: command codes and statuses they use, the 10-byte
//! header, and a raw TCP connection with timeouts for hostile tests and readiness probes.
//! Written from PROTOCOL.md, independent of the crate's own `proto` module on purpose, so a
//! shared misunderstanding cannot hide.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use nix::errno::Errno;

/// Read/write timeout of raw protocol sockets.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Response command byte (TRACKER_PROTO_CMD_RESP = STORAGE_PROTO_CMD_RESP).
pub const CMD_RESP: u8 = 100;
/// FDFS_PROTO_CMD_ACTIVE_TEST.
pub const CMD_ACTIVE_TEST: u8 = 111;
/// TRACKER_PROTO_CMD_SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE.
pub const CMD_QUERY_STORE_ONE: u8 = 101;
/// TRACKER_PROTO_CMD_SERVICE_QUERY_FETCH_ONE.
pub const CMD_QUERY_FETCH_ONE: u8 = 102;
/// TRACKER_PROTO_CMD_SERVICE_QUERY_UPDATE.
pub const CMD_QUERY_UPDATE: u8 = 103;
/// TRACKER_PROTO_CMD_SERVICE_QUERY_STORE_WITHOUT_GROUP_ALL.
pub const CMD_QUERY_STORE_ALL: u8 = 106;
/// STORAGE_PROTO_CMD_UPLOAD_FILE.
pub const CMD_UPLOAD_FILE: u8 = 11;
/// STORAGE_PROTO_CMD_DELETE_FILE.
pub const CMD_DELETE_FILE: u8 = 12;
/// STORAGE_PROTO_CMD_SET_METADATA.
pub const CMD_SET_METADATA: u8 = 13;
/// STORAGE_PROTO_CMD_DOWNLOAD_FILE.
pub const CMD_DOWNLOAD_FILE: u8 = 14;
/// STORAGE_PROTO_CMD_GET_METADATA.
pub const CMD_GET_METADATA: u8 = 15;
/// STORAGE_PROTO_CMD_QUERY_FILE_INFO.
pub const CMD_QUERY_FILE_INFO: u8 = 22;

/// STORAGE_PROTO_CMD_REPORT_SERVER_ID: first message on a sync connection.
pub const CMD_REPORT_SERVER_ID: u8 = 9;
/// STORAGE_PROTO_CMD_SYNC_CREATE_FILE.
pub const CMD_SYNC_CREATE_FILE: u8 = 16;
/// STORAGE_PROTO_CMD_SYNC_DELETE_FILE.
pub const CMD_SYNC_DELETE_FILE: u8 = 17;
/// STORAGE_PROTO_CMD_SYNC_UPDATE_FILE.
pub const CMD_SYNC_UPDATE_FILE: u8 = 18;
/// STORAGE_PROTO_CMD_SYNC_CREATE_LINK.
pub const CMD_SYNC_CREATE_LINK: u8 = 19;
/// STORAGE_PROTO_CMD_SYNC_APPEND_FILE.
pub const CMD_SYNC_APPEND_FILE: u8 = 25;
/// STORAGE_PROTO_CMD_SYNC_MODIFY_FILE.
pub const CMD_SYNC_MODIFY_FILE: u8 = 35;
/// STORAGE_PROTO_CMD_SYNC_TRUNCATE_FILE.
pub const CMD_SYNC_TRUNCATE_FILE: u8 = 37;
/// STORAGE_PROTO_CMD_SYNC_RENAME_FILE.
pub const CMD_SYNC_RENAME_FILE: u8 = 40;

/// STORAGE_PROTO_CMD_APPEND_FILE.
pub const CMD_APPEND_FILE: u8 = 24;
/// STORAGE_PROTO_CMD_MODIFY_FILE.
pub const CMD_MODIFY_FILE: u8 = 34;

/// Status byte for "no such file".
pub const ENOENT: u8 = Errno::ENOENT as u8;
/// Status byte for "malformed request".
pub const EINVAL: u8 = Errno::EINVAL as u8;
/// Status byte for "already exists".
pub const EEXIST: u8 = Errno::EEXIST as u8;

// Bodies of the storage-to-storage sync requests (PROTOCOL.md §11); `group` is NUL-padded
// to 16 bytes and `ts` is the source's record timestamp.

/// SYNC_CREATE_FILE / SYNC_UPDATE_FILE: name length, file size, ts, group, name, content.
/// A header-only push (header status EEXIST) announces `size` but carries no content.
pub fn sync_copy_body(group: &str, name: &str, ts: u32, size: u64, content: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u64).to_be_bytes());
    body.extend_from_slice(&size.to_be_bytes());
    body.extend_from_slice(&ts.to_be_bytes());
    body.extend_from_slice(&padded(group, 16));
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(content);
    body
}

/// SYNC_DELETE_FILE: ts, group, name.
pub fn sync_delete_body(group: &str, name: &str, ts: u32) -> Vec<u8> {
    let mut body = ts.to_be_bytes().to_vec();
    body.extend_from_slice(&padded(group, 16));
    body.extend_from_slice(name.as_bytes());
    body
}

/// SYNC_APPEND_FILE / SYNC_MODIFY_FILE: name length, offset, data length, ts, group, name,
/// data.
pub fn sync_write_body(group: &str, name: &str, ts: u32, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u64).to_be_bytes());
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&(data.len() as u64).to_be_bytes());
    body.extend_from_slice(&ts.to_be_bytes());
    body.extend_from_slice(&padded(group, 16));
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    body
}

/// SYNC_TRUNCATE_FILE: name length, old size, new size, ts, group, name.
pub fn sync_truncate_body(group: &str, name: &str, ts: u32, old: u64, new: u64) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u64).to_be_bytes());
    body.extend_from_slice(&old.to_be_bytes());
    body.extend_from_slice(&new.to_be_bytes());
    body.extend_from_slice(&ts.to_be_bytes());
    body.extend_from_slice(&padded(group, 16));
    body.extend_from_slice(name.as_bytes());
    body
}

/// SYNC_CREATE_LINK (link `dest` to `src`) / SYNC_RENAME_FILE (`src` becomes `dest`): dest
/// length, src length, ts, group, dest, src.
pub fn sync_pair_body(group: &str, dest: &str, src: &str, ts: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(dest.len() as u64).to_be_bytes());
    body.extend_from_slice(&(src.len() as u64).to_be_bytes());
    body.extend_from_slice(&ts.to_be_bytes());
    body.extend_from_slice(&padded(group, 16));
    body.extend_from_slice(dest.as_bytes());
    body.extend_from_slice(src.as_bytes());
    body
}

/// FastDFS's base64 (PROTOCOL.md §6.2): alphabet `A-Z a-z 0-9 - _`, no padding.
pub fn fdfs_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        // 1 byte -> 2 chars, 2 -> 3, 3 -> 4.
        for k in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * k) & 63) as usize]));
        }
    }
    out
}

/// Remote name `M00/HH/HH/<27 chars><ext7>` of a normal file (PROTOCOL.md §6.1): source
/// IPv4 octets, `ts` u32 BE, size field `(0x80000000 | rand) << 32 | len`, CRC32 of `content`.
/// `ext7` must be the 7-char ext part (e.g. `123.txt`).
pub fn normal_remote_name(
    source_ip: [u8; 4],
    ts: u32,
    rand: u32,
    content: &[u8],
    dirs: (u8, u8),
    ext7: &str,
) -> String {
    assert_eq!(ext7.len(), 7, "ext part is 7 chars");
    let mut raw = Vec::with_capacity(20);
    raw.extend_from_slice(&source_ip);
    raw.extend_from_slice(&ts.to_be_bytes());
    let size_field = (u64::from(0x8000_0000 | (rand & 0x7F_FFFF)) << 32) | content.len() as u64;
    raw.extend_from_slice(&size_field.to_be_bytes());
    raw.extend_from_slice(&crc32fast::hash(content).to_be_bytes());
    format!(
        "M00/{:02X}/{:02X}/{}{ext7}",
        dirs.0,
        dirs.1,
        fdfs_base64(&raw)
    )
}

/// The 20 bytes encoded in a remote file name (PROTOCOL.md §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameFields {
    /// Source IPv4 octets (or a numeric storage id, little-endian).
    pub source: [u8; 4],
    /// Creation timestamp.
    pub timestamp: u32,
    /// The raw size field (flags and random bits included).
    pub size_field: u64,
    /// CRC32 of the content when the name was made.
    pub crc32: u32,
}

impl NameFields {
    /// The file size the name carries (low 32 bits when bit 63 is set).
    pub fn size(&self) -> u64 {
        if self.size_field >> 63 == 1 {
            self.size_field & 0xFFFF_FFFF
        } else {
            self.size_field
        }
    }

    /// Whether the name marks an appender file (bit 58).
    pub fn is_appender(&self) -> bool {
        self.size_field & (1 << 58) != 0
    }
}

/// Decodes the 27 base64 chars of a file ID or remote name (`.../HH/HH/<27 chars>...`);
/// None when they are missing or not FastDFS base64.
pub fn name_fields(id: &str) -> Option<NameFields> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let chars = id.rsplit('/').next()?.as_bytes().get(..27)?;
    let mut raw = Vec::with_capacity(21);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in chars {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            raw.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    let u32_at = |i: usize| u32::from_be_bytes(raw[i..i + 4].try_into().expect("4 bytes"));
    Some(NameFields {
        source: raw[..4].try_into().ok()?,
        timestamp: u32_at(4),
        size_field: u64::from_be_bytes(raw[8..16].try_into().ok()?),
        crc32: u32_at(16),
    })
}

/// A NUL-padded fixed-width string field.
pub fn fixed_str(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// `s` NUL-padded to `width` bytes (like group names on the wire).
pub fn padded(s: &str, width: usize) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(width, 0);
    v
}

/// A 10-byte header: body length (u64 BE), command, status.
pub fn header(pkg_len: u64, cmd: u8, status: u8) -> [u8; 10] {
    let mut h = [0u8; 10];
    h[..8].copy_from_slice(&pkg_len.to_be_bytes());
    h[8] = cmd;
    h[9] = status;
    h
}

/// Body of an UPLOAD_FILE (11) or UPLOAD_APPENDER_FILE (23) of `data` into store path 0 with
/// extension `ext` (PROTOCOL.md §5.1): index u8, size u64, ext str[6], content.
pub fn upload_body(data: &[u8], ext: &str) -> Vec<u8> {
    let mut b = vec![0u8];
    b.extend_from_slice(&(data.len() as u64).to_be_bytes());
    b.extend_from_slice(&padded(ext, 6));
    b.extend_from_slice(data);
    b
}

/// Header and fixed fields of an APPEND_FILE (24) of `remote` (no group) announcing `len`
/// content bytes (PROTOCOL.md §5.4): the content must follow.
pub fn append_head(remote: &str, len: u64) -> Vec<u8> {
    let name = remote.as_bytes();
    let mut msg = header(16 + name.len() as u64 + len, CMD_APPEND_FILE, 0).to_vec();
    msg.extend_from_slice(&(name.len() as u64).to_be_bytes());
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(name);
    msg
}

/// Header and fixed fields of a MODIFY_FILE (34) of `remote` at `offset` announcing `len`
/// content bytes (PROTOCOL.md §5.4): the content must follow.
pub fn modify_head(remote: &str, offset: u64, len: u64) -> Vec<u8> {
    let name = remote.as_bytes();
    let mut msg = header(24 + name.len() as u64 + len, CMD_MODIFY_FILE, 0).to_vec();
    msg.extend_from_slice(&(name.len() as u64).to_be_bytes());
    msg.extend_from_slice(&offset.to_be_bytes());
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(name);
    msg
}

/// LIST_STORAGE (tracker).
pub const CMD_LIST_STORAGE: u8 = 92;
/// Length of a 6.16 storage-stat record with 16-byte IP fields.
const STORAGE_STAT_LEN: usize = 487;

/// LIST_STORAGE of `group`: (id, status) of each storage the tracker knows, or the status.
pub fn list_storage(tracker: SocketAddr, group: &str) -> io::Result<Result<Vec<(String, u8)>, u8>> {
    let mut raw = Raw::try_connect(tracker)?;
    raw.send(CMD_LIST_STORAGE, 0, &padded(group, 16))?;
    let reply = raw.recv()?;
    if reply.status != 0 {
        return Ok(Err(reply.status));
    }
    if reply.body.len() % STORAGE_STAT_LEN != 0 {
        return Err(io::Error::other(format!(
            "LIST_STORAGE reply of {} bytes",
            reply.body.len()
        )));
    }
    // Record: status(1) rw_mode(1) id(16) ...
    Ok(Ok(reply
        .body
        .chunks(STORAGE_STAT_LEN)
        .map(|r| (fixed_str(&r[2..18]), r[0]))
        .collect()))
}

/// One reply read off the wire.
#[derive(Debug)]
pub struct Reply {
    /// Command byte (must be 100).
    pub cmd: u8,
    /// 0 or an errno.
    pub status: u8,
    /// The body.
    pub body: Vec<u8>,
}

/// How a connection ended after hostile input.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The server closed the connection (EOF or reset), after sending these bytes.
    Closed(Vec<u8>),
    /// Nothing happened within `IO_TIMEOUT`; these bytes had arrived.
    StillOpen(Vec<u8>),
}

/// A raw TCP connection speaking the FastDFS framing, with `IO_TIMEOUT` on every read/write.
pub struct Raw {
    stream: TcpStream,
    peer: SocketAddr,
}

impl Raw {
    /// Connects or panics.
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw::try_connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    /// Connects, returning the error instead of panicking (for polling).
    pub fn try_connect(addr: SocketAddr) -> io::Result<Raw> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Raw { stream, peer: addr })
    }

    /// Sends a header announcing `body.len()` bytes, then the body.
    pub fn send(&mut self, cmd: u8, status: u8, body: &[u8]) -> io::Result<()> {
        let mut msg = header(body.len() as u64, cmd, status).to_vec();
        msg.extend_from_slice(body);
        self.stream.write_all(&msg)
    }

    /// Sends bytes exactly as given.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one reply; refuses bodies over 64 MiB (a hostile test never expects one).
    pub fn recv(&mut self) -> io::Result<Reply> {
        let mut h = [0u8; 10];
        self.stream.read_exact(&mut h)?;
        let len = u64::from_be_bytes(h[..8].try_into().expect("8-byte slice"));
        if len > 64 << 20 {
            return Err(io::Error::other(format!(
                "reply announces {len} body bytes"
            )));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Reply {
            cmd: h[8],
            status: h[9],
            body,
        })
    }

    /// Sends a request and reads its reply, panicking on I/O errors.
    #[track_caller]
    pub fn request(&mut self, cmd: u8, body: &[u8]) -> Reply {
        let peer = self.peer;
        self.send(cmd, 0, body)
            .unwrap_or_else(|e| panic!("send cmd {cmd} to {peer}: {e}"));
        let reply = self
            .recv()
            .unwrap_or_else(|e| panic!("reply to cmd {cmd} from {peer}: {e}"));
        assert_eq!(
            reply.cmd, CMD_RESP,
            "reply to cmd {cmd} from {peer} must carry cmd 100: {reply:?}"
        );
        reply
    }

    /// Changes the read timeout (default `IO_TIMEOUT`).
    pub fn set_read_timeout(&mut self, t: Duration) {
        self.stream
            .set_read_timeout(Some(t))
            .expect("set read timeout");
    }

    /// Half-closes our side: the server sees EOF after what was sent.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads until the server closes the connection or `IO_TIMEOUT` passes.
    pub fn ending(&mut self) -> Ending {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ending::Closed(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ending::StillOpen(got);
                }
                Err(_) => return Ending::Closed(got),
            }
        }
    }
}

/// Splits bytes received from a server into whole replies (for reports and checks).
pub fn parse_replies(mut bytes: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    while bytes.len() >= 10 {
        let len = u64::from_be_bytes(bytes[..8].try_into().expect("8-byte slice"));
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(10))
            .filter(|&e| e <= bytes.len())
        else {
            break;
        };
        out.push(Reply {
            cmd: bytes[8],
            status: bytes[9],
            body: bytes[10..end].to_vec(),
        });
        bytes = &bytes[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_name_matches_the_golden_vector() {
        // PROTOCOL.md §6.6, first row.
        let name = normal_remote_name(
            [192, 168, 1, 100],
            1_700_000_000,
            0x0012_3456,
            b"hello fastdfs\n",
            (0, 1),
            "421.txt",
        );
        assert_eq!(name, "M00/00/01/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt");
    }

    #[test]
    fn name_fields_decode_the_golden_vectors() {
        // PROTOCOL.md §6.6: a normal file, then the same as an appender.
        let normal = name_fields("group1/M00/00/01/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt")
            .expect("well-formed name");
        assert_eq!(
            normal,
            NameFields {
                source: [192, 168, 1, 100],
                timestamp: 1_700_000_000,
                size_field: 0x8012_3456_0000_000e,
                crc32: 0x0e10_ba5d,
            }
        );
        assert_eq!((normal.size(), normal.is_appender()), (14, false));
        let appender = name_fields("M00/00/01/wKgBZGVT8QCEEjRWAAAAAA4Qul0").expect("appender");
        assert_eq!((appender.size(), appender.is_appender()), (0, true));
        assert_eq!(name_fields("M00/00/01/short"), None);
    }
}
