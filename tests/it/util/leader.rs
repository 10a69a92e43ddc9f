//! Wire helpers for the tracker-cluster tests: asking a tracker who leads (GET_LEADER) and
//! reading the source server (IPv4 address or numeric storage id) out of a file ID's name.
//! Written from PROTOCOL.md §4.7 and §6.1, independent of the crate's own code.

use std::io;
use std::net::SocketAddr;

use super::Raw;

/// TRACKER_PROTO_CMD_SERVER_GET_LEADER (PROTOCOL.md §4.7): the leader as "ip:port".
pub const CMD_GET_LEADER: u8 = 95;

/// GET_LEADER (95) of one tracker: the leader's "ip:port", or the status byte.
pub fn get_leader(tracker: SocketAddr) -> io::Result<Result<String, u8>> {
    let mut raw = Raw::try_connect(tracker)?;
    raw.send(CMD_GET_LEADER, 0, &[])?;
    let reply = raw.recv()?;
    if reply.status != 0 {
        return Ok(Err(reply.status));
    }
    Ok(Ok(String::from_utf8_lossy(&reply.body)
        .trim_end_matches('\0')
        .trim()
        .to_string()))
}

/// The 4 source bytes of a file ID's name (PROTOCOL.md §6.1). None if the ID is malformed.
pub fn file_id_source(file_id: &str) -> Option<[u8; 4]> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let name = file_id.rsplit('/').next()?;
    // 8 chars = 48 bits = 6 bytes; the first 4 are the source.
    let chars = name.as_bytes().get(..8)?;
    let mut bits: u64 = 0;
    for &c in chars {
        let v = ALPHABET.iter().position(|&a| a == c)?;
        bits = bits << 6 | v as u64;
    }
    let bytes = bits.to_be_bytes();
    Some([bytes[2], bytes[3], bytes[4], bytes[5]])
}

/// The numeric storage id a file ID's name carries (source bytes read little-endian, in
/// 1..=16777215, PROTOCOL.md §6.1), or None when it carries an IPv4 address or is malformed.
pub fn file_id_server_id(file_id: &str) -> Option<u32> {
    let v = u32::from_le_bytes(file_id_source(file_id)?);
    (1..=16_777_215).contains(&v).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_field_of_a_file_id() {
        // PROTOCOL.md §6.6: source 192.168.1.100, then the same with storage id 100001.
        let ip = "group1/M00/00/01/wKgBZGVT8QCAEjRWAAAADg4Qul0421.txt";
        assert_eq!(file_id_source(ip), Some([192, 168, 1, 100]));
        assert_eq!(file_id_server_id(ip), None);
        let id = "group1/M00/00/01/oYYBAGVT8QCAEjRWAAAADg4Qul0421.txt";
        assert_eq!(file_id_server_id(id), Some(100_001));
        assert_eq!(file_id_source("group1/M00/00/01/short"), None);
    }
}
