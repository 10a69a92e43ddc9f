//! Listening sockets: one per network thread on one port (SO_REUSEPORT), bound
//! before a server starts, and refused on a port that something listens on.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// The listening sockets of a server, bound before it starts (a daemon binds
/// as root, then drops privileges, then serves): one per network thread, all
/// on one port with SO_REUSEPORT, so the kernel spreads connections.
pub struct Listeners {
    pub(super) addr: SocketAddr,
    pub(super) socks: Vec<std::net::TcpListener>,
    /// Another port the role serves (the storage's HTTP port), bound with
    /// this one so that both are taken before privileges are dropped.
    side: Option<Box<Listeners>>,
}

impl Listeners {
    /// Bind `bind_addr` ("" or `None`: all addresses) and `port` (0 picks one)
    /// for `threads` loops. A port that any socket listens on already is
    /// refused (`AddrInUse`, naming the address), even one of another fdfs on
    /// it: SO_REUSEPORT would let the two share it, each getting part of the
    /// clients.
    pub fn bind(bind_addr: Option<&str>, port: u16, threads: usize) -> io::Result<Listeners> {
        let addr = listen_addr(bind_addr, port)?;
        if port != 0 {
            probe(addr).map_err(|e| named(addr, e))?;
        }
        let first = bind(addr).map_err(|e| named(addr, e))?;
        let addr = first.local_addr()?;
        let mut socks = vec![first];
        for _ in 1..threads.max(1) {
            socks.push(bind(addr).map_err(|e| named(addr, e))?);
        }
        Ok(Listeners {
            addr,
            socks,
            side: None,
        })
    }

    /// Carry `side` along (see the field).
    pub fn with_side(mut self, side: Listeners) -> Listeners {
        self.side = Some(Box::new(side));
        self
    }

    /// Take the side listeners out.
    pub fn take_side(&mut self) -> Option<Listeners> {
        self.side.take().map(|b| *b)
    }

    /// The first socket, for a server that runs one loop.
    pub fn into_first(self) -> std::net::TcpListener {
        self.socks
            .into_iter()
            .next()
            .expect("bind makes at least one socket")
    }
}

/// Resolve a `bind_addr` + port pair ("" = all addresses).
fn listen_addr(bind: Option<&str>, port: u16) -> io::Result<SocketAddr> {
    let host = bind.filter(|b| !b.is_empty()).unwrap_or("0.0.0.0");
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot resolve bind_addr {host}"),
        )
    })
}

/// An error of binding `addr` that says which address.
fn named(addr: SocketAddr, e: io::Error) -> io::Error {
    let msg = match e.kind() {
        io::ErrorKind::AddrInUse => format!("{addr} is in use: another server listens there"),
        _ => format!("cannot listen on {addr}: {e}"),
    };
    io::Error::new(e.kind(), msg)
}

/// Fails with `AddrInUse` while any socket listens on `addr`. Our listeners
/// use SO_REUSEPORT, so binding them would succeed beside another fdfs (of
/// the same user) on the port; a socket without it cannot. SO_REUSEADDR
/// still lets a restarted daemon bind over connections in TIME_WAIT.
fn probe(addr: SocketAddr) -> io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())
}

fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    // Several loops listen on one port; the kernel spreads connections.
    sock.set_reuse_port(true)?;
    // Accepted connections inherit TCP_NODELAY from the listener on Linux
    // (checked by a test): one setsockopt here instead of one per connection.
    sock.set_tcp_nodelay(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(sock.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_is_refused_by_name() {
        let first = Listeners::bind(Some("127.0.0.1"), 0, 2).expect("bind");
        let port = first.addr.port();
        // Our own SO_REUSEPORT listeners would share it; the probe refuses.
        let e = Listeners::bind(Some("127.0.0.1"), port, 2)
            .err()
            .expect("a second server on the port must fail");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(
            e.to_string(),
            format!("127.0.0.1:{port} is in use: another server listens there")
        );
        drop(first);
        Listeners::bind(Some("127.0.0.1"), port, 2).expect("free again once closed");
    }

    /// `bind` sets TCP_NODELAY on the listener only, relying on Linux to pass it to every
    /// accepted connection (replies with a header and a `sendfile` body are two writes).
    #[test]
    fn accepted_connections_inherit_nodelay() {
        let l = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = l.local_addr().expect("local addr");
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        l.set_nonblocking(false).expect("blocking accept");
        let (accepted, _) = l.accept().expect("accept");
        assert!(accepted.nodelay().expect("getsockopt"));
    }
}
