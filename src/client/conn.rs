//! One blocking connection to a tracker or storage: send a request, read the
//! reply header, check its status, read a bounded body.

use super::Error;
use crate::proto::{Cmd, HEADER_LEN, Header, status};
use std::io::{BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Timeouts for outbound connections.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// For the TCP handshake.
    pub connect: Duration,
    /// For each read and write.
    pub network: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            network: Duration::from_secs(60),
        }
    }
}

/// Replies are read through a buffer of this size: a reply header and a small
/// body that arrive together take one `recv`, not two. Bigger reads bypass it.
const READ_BUFFER: usize = 16 * 1024;

/// A connected socket plus the address text used in error messages.
pub struct Connection {
    stream: BufReader<TcpStream>,
    /// Reused for each request's header and head.
    wbuf: Vec<u8>,
    /// "host:port" of the server.
    pub peer: String,
}

impl Connection {
    /// Connect to `addr` ("host:port"), optionally from a local address `bind`.
    pub fn connect(addr: &str, t: Timeouts, bind: Option<IpAddr>) -> Result<Connection, Error> {
        let io = |err: std::io::Error| Error::Io {
            addr: addr.to_string(),
            err,
        };
        let sa: SocketAddr =
            addr.to_socket_addrs()
                .map_err(io)?
                .next()
                .ok_or_else(|| Error::Protocol {
                    addr: addr.into(),
                    msg: "address resolves to nothing".into(),
                })?;
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(sa),
            socket2::Type::STREAM,
            None,
        )
        .map_err(io)?;
        if let Some(ip) = bind {
            // Storages bind outbound connections to their bind_addr so that the
            // tracker sees (and hands out) that address.
            sock.bind(&SocketAddr::new(ip, 0).into()).map_err(io)?;
        }
        sock.connect_timeout(&sa.into(), t.connect).map_err(io)?;
        sock.set_tcp_nodelay(true).map_err(io)?;
        sock.set_read_timeout(Some(t.network)).map_err(io)?;
        sock.set_write_timeout(Some(t.network)).map_err(io)?;
        Ok(Connection {
            stream: BufReader::with_capacity(READ_BUFFER, sock.into()),
            wbuf: Vec::new(),
            peer: addr.to_string(),
        })
    }

    fn io(&self, err: std::io::Error) -> Error {
        Error::Io {
            addr: self.peer.clone(),
            err,
        }
    }

    /// The local address of the socket (how the server sees us).
    pub fn local_ip(&self) -> Option<IpAddr> {
        self.stream.get_ref().local_addr().ok().map(|a| a.ip())
    }

    /// Send header + `body` in one write.
    pub fn send(&mut self, cmd: Cmd, body: &[u8]) -> Result<(), Error> {
        self.send_with_len(cmd, body, body.len() as u64)
    }

    /// Send a header announcing `pkg_len` bytes and the first part of the body;
    /// the caller streams the rest with [`Connection::write_all`].
    pub fn send_with_len(&mut self, cmd: Cmd, head: &[u8], pkg_len: u64) -> Result<(), Error> {
        self.send_parts(cmd, pkg_len, head, &[])
    }

    /// Send a header announcing `pkg_len` bytes, then `a` and `b`, in one write.
    pub fn send_parts(&mut self, cmd: Cmd, pkg_len: u64, a: &[u8], b: &[u8]) -> Result<(), Error> {
        self.wbuf.clear();
        self.wbuf
            .extend_from_slice(&Header::request(cmd, pkg_len).encode());
        self.wbuf.extend_from_slice(a);
        self.wbuf.extend_from_slice(b);
        let r = self.stream.get_mut().write_all(&self.wbuf);
        r.map_err(|e| self.io(e))
    }

    /// Write raw body bytes.
    pub fn write_all(&mut self, b: &[u8]) -> Result<(), Error> {
        self.stream.get_mut().write_all(b).map_err(|e| self.io(e))
    }

    /// Send `len` bytes of `file` from its current position (sendfile on Linux).
    pub fn send_file(&mut self, file: &mut std::fs::File, len: u64) -> Result<(), Error> {
        let sent =
            std::io::copy(&mut file.take(len), self.stream.get_mut()).map_err(|e| self.io(e))?;
        if sent != len {
            // The file shrank while we sent it: the peer now waits for bytes
            // that will not come, so this connection is unusable.
            return Err(self.io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while sending",
            )));
        }
        Ok(())
    }

    /// Read a reply header; a non-zero status becomes `Error::Status`.
    pub fn recv_header(&mut self, cmd: Cmd) -> Result<u64, Error> {
        let mut h = [0u8; HEADER_LEN];
        self.stream.read_exact(&mut h).map_err(|e| self.io(e))?;
        // ACK at once what arrived: a server that sends a reply's header and
        // its body in two writes with Nagle on (as upstream's storages may)
        // would otherwise wait for our delayed ACK (40 ms on Linux).
        let _ = socket2::SockRef::from(self.stream.get_ref()).set_tcp_quickack(true);
        let h = Header::decode(&h).map_err(|e| Error::Protocol {
            addr: self.peer.clone(),
            msg: e.to_string(),
        })?;
        if h.status != status::OK {
            return Err(Error::Status {
                addr: self.peer.clone(),
                cmd,
                status: h.status,
            });
        }
        Ok(h.pkg_len)
    }

    /// Read exactly `b.len()` body bytes.
    pub fn read_exact(&mut self, b: &mut [u8]) -> Result<(), Error> {
        self.stream.read_exact(b).map_err(|e| self.io(e))
    }

    /// Read up to `b.len()` body bytes.
    pub fn read_some(&mut self, b: &mut [u8]) -> Result<usize, Error> {
        match self.stream.read(b) {
            Ok(0) => Err(self.io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => Ok(n),
            Err(e) => Err(self.io(e)),
        }
    }

    /// A whole request/response exchange with a reply of at most `max_reply` bytes.
    pub fn call(&mut self, cmd: Cmd, body: &[u8], max_reply: usize) -> Result<Vec<u8>, Error> {
        self.call_flagged(cmd, 0, body, max_reply)
    }

    /// [`Connection::call`] with `flags` in the request header's status byte
    /// (QUERY_FILE_INFO's flags, SYNC_CREATE_FILE's "header only").
    pub fn call_flagged(
        &mut self,
        cmd: Cmd,
        flags: u8,
        body: &[u8],
        max_reply: usize,
    ) -> Result<Vec<u8>, Error> {
        self.wbuf.clear();
        let mut h = Header::request(cmd, body.len() as u64);
        h.status = flags;
        self.wbuf.extend_from_slice(&h.encode());
        self.wbuf.extend_from_slice(body);
        let r = self.stream.get_mut().write_all(&self.wbuf);
        r.map_err(|e| self.io(e))?;
        let len = self.recv_header(cmd)?;
        if len > max_reply as u64 {
            return Err(Error::Protocol {
                addr: self.peer.clone(),
                msg: format!("{} reply of {len} bytes exceeds {max_reply}", cmd.name()),
            });
        }
        let mut out = vec![0u8; len as usize];
        self.read_exact(&mut out)?;
        Ok(out)
    }

    /// Tell the server we are done (no reply is sent).
    pub fn quit(mut self) {
        let _ = self.send(Cmd::Quit, &[]);
    }
}
