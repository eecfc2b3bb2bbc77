//! An exporter on `tiny_http`: `/metrics`, `/healthz`, `/readyz`, and your own routes.
//!
//! tiny_http 0.12 is small and synchronous, and it has flaws under load that this
//! module works around from the outside, without changing the crate:
//!
//! * **Pool starvation.** Its thread pool decides whether to start a thread from a
//!   stale count of idle threads, so in a burst of new keep-alive connections only
//!   a few get a thread and the rest wait until one of those closes. Here, every
//!   response is written by hand, which is the only way to send a `Connection`
//!   header through tiny_http, and a fraction of them ([`Exporter::keep_alive`])
//!   carry `Connection: close`. Connections then live a bounded number of requests,
//!   so a connection left waiting gets a thread soon, and a reconnecting client
//!   usually gets a fresh thread at once.
//! * **Nagle stall.** Its 1 KiB write buffer splits larger responses; with Nagle
//!   and delayed ACK the second part waited ~40 ms. The listener sets `TCP_NODELAY`
//!   and every response goes out in one write.
//! * **No timeouts.** The listener sets a send timeout (inherited by every
//!   connection) and `TCP_USER_TIMEOUT`; see [`listener`]. tiny_http still has no
//!   read timeout: an idle or endless request holds one of *its* threads (not a
//!   worker) until the client goes away. The README's security section says what
//!   that leaves open and how the deployment closes it.
//! * **Pipelining flood.** See [`connections`]: a connection occupies at most one
//!   worker, and one that floods is refused.

mod connections;
mod listener;

use crate::encoding::{Format, encode};
use crate::registry::{Registry, default_registry};
use connections::{Claim, Connections, Next};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tiny_http::{Method, Request};

/// What an application route answers: the status and the body's content type.
/// The body itself is written into the buffer the route is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The `Allow` header, for a 405 answer.
    pub allow: Option<&'static str>,
}

impl Answer {
    /// `200 OK` with this content type.
    pub fn ok(content_type: &'static str) -> Answer {
        Answer {
            status: 200,
            content_type,
            allow: None,
        }
    }

    /// `405 Method Not Allowed`, listing the allowed methods.
    pub fn method_not_allowed(allow: &'static str) -> Answer {
        Answer {
            status: 405,
            content_type: TEXT,
            allow: Some(allow),
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

/// The signature of the application's routes: given the request and an empty
/// body buffer, answer (writing the body into the buffer), or `None` for 404.
type Routes = dyn Fn(&Request, &mut Vec<u8>) -> Option<Answer> + Send + Sync;

/// Configures and starts an HTTP server that exposes a registry.
///
/// ```no_run
/// use std::sync::Arc;
///
/// let registry = Arc::new(promlite::Registry::new());
/// let jobs = registry.counter("jobs_total", "Jobs done.").unwrap();
/// let server = promlite::Exporter::new(Arc::clone(&registry))
///     .serve("127.0.0.1:9100")
///     .unwrap();
/// jobs.inc();
/// // ... curl 127.0.0.1:9100/metrics ...
/// server.shutdown(std::time::Duration::from_secs(1));
/// ```
pub struct Exporter {
    registry: Source,
    workers: usize,
    write_timeout: Duration,
    keep_alive: u32,
    routes: Option<Arc<Routes>>,
}

/// Where the metrics come from.
enum Source {
    Default,
    Shared(Arc<Registry>),
}

impl Source {
    fn get(&self) -> &Registry {
        match self {
            Source::Default => default_registry(),
            Source::Shared(registry) => registry,
        }
    }
}

impl Exporter {
    /// An exporter for this registry.
    pub fn new(registry: Arc<Registry>) -> Exporter {
        Exporter::with_source(Source::Shared(registry))
    }

    /// An exporter for the process-wide [`default_registry`](crate::default_registry).
    pub fn default_registry() -> Exporter {
        Exporter::with_source(Source::Default)
    }

    fn with_source(registry: Source) -> Exporter {
        Exporter {
            registry,
            workers: 8,
            write_timeout: Duration::from_secs(3),
            keep_alive: 64,
            routes: None,
        }
    }

    /// How many threads answer requests (default 8). Each answers one request at
    /// a time, so routes that block (or sleep) need more.
    pub fn workers(mut self, workers: usize) -> Exporter {
        self.workers = workers.max(1);
        self
    }

    /// How long writing a response may block before the client is given up
    /// (default 3 s). Slow clients that keep reading are not affected: the limit
    /// is on each write making no progress, not on the whole response.
    pub fn write_timeout(mut self, timeout: Duration) -> Exporter {
        self.write_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Ends about one keep-alive connection in `requests` answers (default 64;
    /// 1 closes every connection after one answer). Bounded connection lifetimes
    /// are what keep tiny_http's thread pool from starving new connections; see
    /// the module documentation.
    pub fn keep_alive(mut self, requests: u32) -> Exporter {
        self.keep_alive = requests.max(1);
        self
    }

    /// The application's own routes, tried for every path other than `/metrics`,
    /// `/healthz` and `/readyz`. Return `None` for a 404.
    ///
    /// ```no_run
    /// use promlite::{Answer, Exporter};
    ///
    /// let server = Exporter::default_registry()
    ///     .routes(|request, body| match request.url() {
    ///         "/hello" => {
    ///             body.extend_from_slice(b"hello\n");
    ///             Some(Answer::ok("text/plain"))
    ///         }
    ///         _ => None,
    ///     })
    ///     .serve("127.0.0.1:8000")
    ///     .unwrap();
    /// ```
    pub fn routes<F>(mut self, routes: F) -> Exporter
    where
        F: Fn(&Request, &mut Vec<u8>) -> Option<Answer> + Send + Sync + 'static,
    {
        self.routes = Some(Arc::new(routes));
        self
    }

    /// Binds `addr` and starts serving in background threads.
    pub fn serve(self, addr: impl ToSocketAddrs) -> io::Result<Running> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))?;
        let listener = listener::bind(addr, self.write_timeout)?;
        let local_addr = listener.local_addr()?;
        let control = listener.try_clone()?;
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let shared = Arc::new(Shared {
            server,
            registry: self.registry,
            routes: self.routes,
            keep_alive: u64::from(self.keep_alive),
            connections: Connections::default(),
            stopping: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            answers: AtomicU64::new(0),
        });
        let workers = (0..self.workers)
            .map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("promlite-http-{i}"))
                    .spawn(move || shared.work())
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Running {
            shared,
            workers: Mutex::new(workers),
            listener: control,
            local_addr,
        })
    }
}

/// A running server; see [`Exporter::serve`].
pub struct Running {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    listener: TcpListener,
    local_addr: SocketAddr,
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Answers written since the server started.
    pub answers: u64,
    /// Workers still busy at the deadline (left behind; the process may exit).
    pub abandoned_workers: usize,
}

impl Running {
    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Answers written so far.
    pub fn answers(&self) -> u64 {
        self.shared.answers.load(Relaxed)
    }

    /// Whether tiny_http stopped accepting connections on its own (its accept loop
    /// ends at the first `accept()` error, for example when file descriptors run
    /// out). The server cannot recover; `/healthz` answers 503 from then on, so
    /// that a liveness probe restarts the process, and a program can exit.
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Relaxed)
    }

    /// Stops gracefully: `/readyz` turns 503, the listener closes (new connections
    /// are refused), requests already received are answered with
    /// `Connection: close`, and the workers end. Waits for them until `deadline`.
    pub fn shutdown(&self, deadline: Duration) -> Stopped {
        let until = Instant::now() + deadline;
        self.shared.stopping.store(true, Relaxed);
        listener::stop(&self.listener);
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        let mut abandoned = 0;
        for worker in workers {
            while !worker.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
            if worker.is_finished() {
                let _ = worker.join();
            } else {
                abandoned += 1;
            }
        }
        Stopped {
            answers: self.answers(),
            abandoned_workers: abandoned,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Relaxed);
        listener::stop(&self.listener);
    }
}

/// What the workers share.
struct Shared {
    server: tiny_http::Server,
    registry: Source,
    routes: Option<Arc<Routes>>,
    keep_alive: u64,
    connections: Connections,
    stopping: AtomicBool,
    failed: AtomicBool,
    answers: AtomicU64,
}

/// A worker's buffers, reused for every request.
#[derive(Default)]
struct Buffers {
    body: Vec<u8>,
    response: Vec<u8>,
}

impl Shared {
    fn work(&self) {
        let mut buffers = Buffers::default();
        loop {
            match self.server.recv_timeout(Duration::from_millis(20)) {
                Ok(Some(request)) => self.serve(request, &mut buffers),
                // Quiet for 20 ms while stopping: everything received is answered.
                Ok(None) if self.stopping.load(Relaxed) => return,
                Ok(None) => {}
                Err(_) => {
                    // tiny_http's accept loop ended: on purpose, or on an error.
                    if !self.stopping.load(Relaxed) {
                        self.failed.store(true, Relaxed);
                    }
                }
            }
        }
    }

    /// Answers `request` and, while this worker owns its connection, the
    /// requests of that connection that queued up meanwhile.
    fn serve(&self, request: Request, buffers: &mut Buffers) {
        let Some(peer) = request.remote_addr().copied() else {
            self.answer(request, buffers);
            return;
        };
        let mut request = match self.connections.claim(peer, request) {
            Claim::Serve(request) => request,
            Claim::Queued => return,
            Claim::Refuse(requests) => return refuse(requests),
        };
        loop {
            let written = self.answer(request, buffers);
            request = match self.connections.next(peer, written) {
                Next::Serve(next) => next,
                Next::Refuse(requests) => return refuse(requests),
                Next::Done => return,
            };
        }
    }

    /// Routes one request and writes its response; false if the write failed.
    fn answer(&self, request: Request, buffers: &mut Buffers) -> bool {
        let body = &mut buffers.body;
        body.clear();
        let path = request.url().split('?').next().unwrap_or("");
        let read_only = matches!(request.method(), Method::Get | Method::Head);
        let answer = match path {
            "/metrics" | "/healthz" | "/readyz" if !read_only => {
                body.extend_from_slice(b"method not allowed\n");
                Answer::method_not_allowed("GET, HEAD")
            }
            "/metrics" => {
                let format = header(&request, "Accept").map_or(Format::Text, Format::from_accept);
                encode(self.registry.get(), format, body);
                Answer::ok(format.content_type())
            }
            "/healthz" if self.failed.load(Relaxed) => {
                plain(body, 503, "not accepting connections")
            }
            "/healthz" => plain(body, 200, "ok"),
            "/readyz" if self.stopping.load(Relaxed) || self.failed.load(Relaxed) => {
                plain(body, 503, "shutting down")
            }
            "/readyz" => plain(body, 200, "ready"),
            _ => match self
                .routes
                .as_ref()
                .and_then(|routes| routes(&request, body))
            {
                Some(answer) => answer,
                None => {
                    body.clear();
                    plain(body, 404, "not found")
                }
            },
        };
        let n = self.answers.fetch_add(1, Relaxed) + 1;
        let close = self.stopping.load(Relaxed) || n % self.keep_alive == 0;
        respond(request, &answer, close, body, &mut buffers.response).is_ok()
    }
}

/// A short plain-text answer: `text` and a newline.
fn plain(body: &mut Vec<u8>, status: u16, text: &str) -> Answer {
    body.extend_from_slice(text.as_bytes());
    body.push(b'\n');
    Answer {
        status,
        content_type: TEXT,
        allow: None,
    }
}

/// Drops requests without answering: taking the writer keeps tiny_http from
/// writing its default 500 response to a client that does not read.
fn refuse(requests: Vec<Request>) {
    for request in requests {
        drop(request.into_writer());
    }
}

/// The value of the first header named `name`.
fn header<'r>(request: &'r Request, name: &'static str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// Whether the client asked to close the connection after this request.
fn client_closes(request: &Request) -> bool {
    let connection = header(request, "Connection").map(str::to_ascii_lowercase);
    match connection.as_deref() {
        Some(value) if value.contains("close") => true,
        Some(value) if value.contains("keep-alive") => false,
        _ => *request.http_version() < (1, 1),
    }
}

/// Writes the whole response (status line, headers, body) by hand, in one write,
/// then flushes: tiny_http's own `Response` drops a `Connection` header, and
/// writing in pieces would split the response across TCP segments.
fn respond(
    request: Request,
    answer: &Answer,
    close: bool,
    body: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let close = close || client_closes(&request);
    let head_only = *request.method() == Method::Head;
    out.clear();
    let reason = tiny_http::StatusCode(answer.status).default_reason_phrase();
    let _ = write!(
        out,
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        answer.status,
        answer.content_type,
        body.len(),
        if close { "close" } else { "keep-alive" },
    );
    if let Some(allow) = answer.allow {
        let _ = write!(out, "Allow: {allow}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
    let mut writer = request.into_writer();
    writer.write_all(out)?;
    writer.flush()
}

/// Answers a `tiny_http` request for `/metrics` from `registry`, for programs that
/// run their own tiny_http server: the format follows the `Accept` header, the
/// response goes out in one write, and `body` and `out` are buffers to reuse.
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
    let format = header(&request, "Accept").map_or(Format::Text, Format::from_accept);
    body.clear();
    encode(registry, format, body);
    respond(
        request,
        &Answer::ok(format.content_type()),
        false,
        body,
        out,
    )
}
