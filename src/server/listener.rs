//! The listening socket, made with the options tiny_http has no settings for.

use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// How long the kernel lets data we sent stay unacknowledged (a client that stops
/// reading, even one that keeps its receive window shut) before it drops the
/// connection.
pub(crate) const UNACKED_DATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds a listener with the options every accepted connection inherits on Linux:
///
/// * `TCP_NODELAY`: tiny_http's 1 KiB write buffer would otherwise split a response,
///   and Nagle plus delayed ACK would hold the second part for ~40 ms.
/// * `SO_SNDTIMEO`: a worker that writes to a client that does not read gives up
///   after `write_timeout` instead of blocking for ever. (Not `SO_RCVTIMEO`: it would
///   also time out tiny_http's own `accept()`, whose loop then ends for good.)
/// * `TCP_USER_TIMEOUT`: the kernel drops a connection whose client stopped reading.
/// * a backlog of 1024, so that a burst of new connections waits in the kernel
///   rather than being refused or retried a second later.
pub(crate) fn bind(addr: SocketAddr, write_timeout: Duration) -> io::Result<TcpListener> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_tcp_nodelay(&fd, true)?;
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(write_timeout))?;
    sockopt::set_tcp_user_timeout(&fd, UNACKED_DATA_TIMEOUT.as_millis() as u32)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 1024)?;
    Ok(TcpListener::from(fd))
}

/// Stops the listener: a blocked `accept()` returns an error, which ends
/// tiny_http's accept loop, and the kernel refuses new connections.
pub(crate) fn stop(listener: &TcpListener) {
    let _ = rustix::net::shutdown(listener, rustix::net::Shutdown::Both);
}
