//! For programs that run their own `tiny_http` server (the `tiny_http` feature).

use crate::encoding::Format;
use crate::registry::{Registry, encode};
use std::io::{self, Write};
use tiny_http::Request;

/// Answers a `tiny_http` request for `/metrics` from `registry`: the format
/// follows the `Accept` header (Prometheus gets OpenMetrics, curl the text
/// format), `HEAD` gets the head only, and the response goes out in one write
/// (tiny_http's own response writer splits it, which with Nagle's algorithm and
/// delayed ACKs can hold the second part ~40 ms). `body` and `out` are buffers to
/// reuse from one request to the next.
///
/// ```no_run
/// let registry = promlite::Registry::new();
/// let server = tiny_http::Server::http("127.0.0.1:9100").unwrap();
/// let (mut body, mut out) = (Vec::new(), Vec::new());
/// for request in server.incoming_requests() {
///     if request.url() == "/metrics" {
///         let _ = promlite::respond_metrics(request, &registry, &mut body, &mut out);
///     }
/// }
/// ```
pub fn respond_metrics(
    request: Request,
    registry: &Registry,
    body: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let accept = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Accept"))
        .map(|h| h.value.as_str());
    let format = accept.map_or(Format::Text, Format::from_accept);
    body.clear();
    encode(registry, format, body);
    out.clear();
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        format.content_type(),
        body.len()
    );
    if *request.method() != tiny_http::Method::Head {
        out.extend_from_slice(body);
    }
    let mut writer = request.into_writer();
    writer.write_all(out)?;
    writer.flush()
}
