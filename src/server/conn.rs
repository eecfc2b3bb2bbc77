//! One client connection: its socket and what is in flight on it.

use super::parse::Scan;
use super::poller::Source;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct Conn {
    pub(crate) socket: Arc<TcpStream>,
    /// The same socket, as the poller takes it.
    pub(crate) source: Source,
    /// Bytes received and not yet answered: a partial request, or requests sent
    /// ahead (pipelined). Empty and unallocated while the connection is idle; a
    /// worker lends its own buffer while it serves.
    pub(crate) input: Vec<u8>,
    /// Where the head of the first request in `input` ends, followed across reads.
    pub(crate) scan: Scan,
    /// When the first byte of the request being received came.
    pub(crate) first_byte: Option<Instant>,
    /// Whether the last read filled all the room it was given (more may wait in
    /// the socket).
    pub(crate) more_to_read: bool,
    /// Answers not yet written, from `sent` on. Empty and unallocated unless a
    /// write could not finish.
    pub(crate) output: Vec<u8>,
    pub(crate) sent: usize,
    /// Close once `output` is written: the client asked, the request was refused,
    /// or the server is stopping.
    pub(crate) close_after_output: bool,
    /// Set when the answer was an error: after it, linger instead of closing.
    pub(crate) refused: bool,
    /// Bytes dropped while lingering, and until when it lingers.
    pub(crate) lingered: usize,
    pub(crate) linger_until: Option<Instant>,
    /// The buffer bytes counted against the server's budget while it is parked.
    pub(crate) held: usize,
}

impl Conn {
    pub(crate) fn new(socket: TcpStream) -> Box<Conn> {
        let socket = Arc::new(socket);
        Box::new(Conn {
            source: Arc::clone(&socket) as Source,
            socket,
            input: Vec::new(),
            scan: Scan::default(),
            first_byte: None,
            more_to_read: false,
            output: Vec::new(),
            sent: 0,
            close_after_output: false,
            refused: false,
            lingered: 0,
            linger_until: None,
            held: 0,
        })
    }

    /// Ends the request that was just answered: `used` bytes of input go, and the
    /// scan starts over on what follows.
    pub(crate) fn consume(&mut self, used: usize) {
        self.input.drain(..used);
        self.scan = Scan::default();
        self.first_byte = (!self.input.is_empty()).then(Instant::now);
    }

    /// Shuts the sending side: the client reads the end of the answers, then EOF.
    pub(crate) fn shutdown_write(&self) {
        let _ = self.socket.shutdown(Shutdown::Write);
    }
}

/// Receives into the spare room of `buf`, without blocking; the bytes added
/// (0: the client closed its side).
pub(crate) fn recv(socket: &TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let (n, _) = rustix::net::recv(
        socket,
        rustix::buffer::spare_capacity(buf),
        rustix::net::RecvFlags::empty(),
    )?;
    Ok(n)
}

/// Sends without blocking; how much went.
pub(crate) fn send(socket: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    // NOSIGNAL: a client that has gone makes this an error (EPIPE), not a
    // SIGPIPE for the whole process, whatever the program did with that signal.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return Ok(rustix::net::send(
        socket,
        bytes,
        rustix::net::SendFlags::NOSIGNAL,
    )?);
    // Elsewhere the socket was made with SO_NOSIGPIPE where the system has it
    // (see `listener::prepare`), and Rust programs ignore SIGPIPE anyway.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return std::io::Write::write(&mut &*socket, bytes);
}
