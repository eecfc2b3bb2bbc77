//! The server against real sockets on 127.0.0.1, with both poller backends.
