//! The listening socket, and accepting from it without blocking.

use rustix::net::{AddressFamily, SocketType, sockopt};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};

/// The kernel's queue of connections not yet accepted: a burst of new connections
/// waits there rather than being refused.
const BACKLOG: i32 = 1024;

/// Binds a non-blocking listener on `addr` (IPv4 or IPv6).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    // Accepted connections inherit it on Linux; elsewhere `prepare` sets it again.
    sockopt::set_tcp_nodelay(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, BACKLOG)?;
    let listener = TcpListener::from(fd);
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Accepts one connection, non-blocking and ready to serve.
pub(crate) fn accept(listener: &TcpListener) -> io::Result<TcpStream> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::net::SocketFlags;
        // One call: non-blocking and close-on-exec from the start; TCP_NODELAY
        // comes from the listener.
        let fd = rustix::net::accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
        Ok(TcpStream::from(fd))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let (stream, _) = listener.accept()?;
        prepare(&stream)?;
        Ok(stream)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn prepare(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    sockopt::set_socket_nosigpipe(stream, true)?;
    Ok(())
}

/// Whether an `accept()` error concerns only the connection being accepted (the
/// next accept may well succeed), as opposed to a lack of resources that calls for
/// a pause.
pub(crate) fn transient(e: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::CONNABORTED | Errno::INTR | Errno::PROTO | Errno::PERM | Errno::TIMEDOUT)
    )
}
