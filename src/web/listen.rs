//! The listening socket of both services, with a listen backlog sized for
//! bursts.
//!
//! `TcpListener::bind` (std's, and tokio's through it) asks the kernel for a
//! backlog of 128: once 128 connections wait to be accepted, the kernel
//! drops further SYNs and each of those clients retries a second later (the
//! initial retransmission timeout), then after 3 s, 7 s… At the connection
//! cap ([`super::serve`]) the accept loop stops taking connections, so a
//! burst past the cap met exactly that: a one-second tail, and clients whose
//! connect timeout was shorter failed. With [`LISTEN_BACKLOG`] the kernel
//! completes their handshakes and holds them until a slot frees.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, ToSocketAddrs, lookup_host};

/// The listen backlog asked for; Linux caps it at `net.core.somaxconn`
/// (4096 by default since 5.4).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listens on the first address `address` resolves to that can be bound,
/// with [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (as std's `bind` sets on Unix,
/// so that a restart does not wait for the previous run's closed
/// connections).
pub async fn listen(address: impl ToSocketAddrs) -> io::Result<TcpListener> {
    let mut failure = None;
    for addr in lookup_host(address).await? {
        match listen_on(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => failure = Some(e),
        }
    }
    Err(failure.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolves to no socket address",
        )
    }))
}

fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listens_on_a_resolved_name_and_on_literal_addresses() {
        for address in ["localhost:0", "127.0.0.1:0"] {
            let listener = listen(address).await.unwrap();
            let port = listener.local_addr().unwrap().port();
            assert_ne!(port, 0, "{address}");
            let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
            let (accepted, connected) = tokio::join!(listener.accept(), client);
            accepted.unwrap();
            connected.unwrap();
        }
    }

    #[tokio::test]
    async fn a_taken_port_is_an_address_in_use_error() {
        let first = listen("127.0.0.1:0").await.unwrap();
        let taken = first.local_addr().unwrap();
        let err = listen(taken).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn an_unresolvable_name_is_an_error() {
        assert!(listen("no-such-host.invalid:0").await.is_err());
    }
}
