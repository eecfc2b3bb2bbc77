//! Request bodies: the exporter never reads them, but tiny_http makes dropping
//! one dangerous.
//!
//! For a request whose `Content-Length` is over 1 KiB (or that sends
//! `Expect: 100-continue`), tiny_http reads the rest of the body when the request
//! is dropped, or when a read of the body meets the end of the stream early, and
//! every way to answer a request drops it. That read waits for as long as the
//! client takes to send the body (there is no read timeout), and it begins by
//! allocating a buffer of the whole length still missing: a single request with
//! `Content-Length: 1000000000000000` aborted the process (allocation failure)
//! before this module existed.
//!
//! So such a request never reaches a worker's answer path:
//! * a declared body of up to 16 MiB is read, in 64 KiB pieces, by a thread of its
//!   own (so that no worker waits on a slow body), which then answers; if the
//!   stream ends early, tiny_http allocates what is missing, at most 16 MiB, which
//!   is never touched and freed at once;
//! * a request that declares more is leaked: forgotten without being dropped or
//!   answered, so its connection's tiny_http thread and socket stay until the
//!   process ends. Each leak is counted ([`crate::Running::leaked_requests`]).

use std::io::ErrorKind;
use tiny_http::Request;

/// The largest declared body read (and so the most tiny_http may allocate for it).
pub(crate) const READ_UP_TO: usize = 16 << 20;

/// The declared length of a body tiny_http has not read yet, if the request has one.
pub(crate) fn unread_body(request: &Request) -> Option<usize> {
    let length = request.body_length()?;
    let expects_continue = request.headers().iter().any(|h| h.field.equiv("Expect"));
    // Up to 1 KiB without `Expect`, tiny_http reads the body before it hands the
    // request over (see `new_request` in its request.rs).
    (length > 1024 || (length > 0 && expects_continue)).then_some(length)
}

/// Reads and discards the body (declared at most [`READ_UP_TO`]), in pieces of
/// 64 KiB; returns whether all of it came. Either way the request is then safe
/// to drop.
pub(crate) fn drain(request: &mut Request, declared: usize) -> bool {
    debug_assert!(declared <= READ_UP_TO);
    let reader = request.as_reader();
    let mut piece = vec![0u8; 64 * 1024];
    let mut read = 0;
    while read < declared {
        match reader.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    read >= declared
}
