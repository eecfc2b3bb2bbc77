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
//! * **Request bodies.** tiny_http reads a large body when the request is dropped,
//!   allocating its whole declared length at once; see [`bodies`].

mod bodies;
mod connections;
mod listener;

use crate::encoding::{Format, encode};
use crate::registry::{Registry, default_registry};
use connections::{Claim, Connections, Next};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
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
            receiving: Mutex::new(()),
            body_threads: AtomicUsize::new(0),
            leaked: AtomicU64::new(0),
        });
        let running = Running {
            shared: Arc::clone(&shared),
            workers: Mutex::new(Vec::with_capacity(self.workers)),
            listener: control,
            local_addr,
        };
        for i in 0..self.workers {
            let shared = Arc::clone(&shared);
            // On an error, dropping `running` stops the workers already started.
            let worker = std::thread::Builder::new()
                .name(format!("promlite-http-{i}"))
                .spawn(move || shared.work())?;
            running
                .workers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(worker);
        }
        Ok(running)
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

    /// Requests that had to be leaked rather than dropped or answered: requests
    /// that declared a body over 16 MiB (tiny_http would allocate its whole length
    /// at once when the request is dropped), or that came while 256 other bodies
    /// were being read.
    pub fn leaked_requests(&self) -> u64 {
        self.shared.leaked.load(Relaxed)
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
    /// `Connection: close` (so that clients close their connections), and the
    /// workers end. Waits for them until `deadline`.
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
    /// Held from taking a request off tiny_http's queue until its connection is
    /// claimed, so that a connection's requests are claimed in the order they came.
    /// (Otherwise the owner could hold a later request while an earlier one waits
    /// in its queue, and tiny_http, which writes answers in order, would make the
    /// owner wait for ever for the earlier answer.)
    receiving: Mutex<()>,
    /// Threads reading request bodies; see [`bodies`].
    body_threads: AtomicUsize,
    leaked: AtomicU64,
}

/// At most this many threads read request bodies at once; past it, a request
/// with a body is leaked rather than read.
const MAX_BODY_THREADS: usize = 256;

/// A worker's buffers, reused for every request.
#[derive(Default)]
struct Buffers {
    body: Vec<u8>,
    response: Vec<u8>,
}

impl Shared {
    fn work(self: Arc<Self>) {
        let mut buffers = Buffers::default();
        loop {
            let claimed = {
                let _turn = self
                    .receiving
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match self.server.recv_timeout(Duration::from_millis(20)) {
                    Ok(Some(request)) => match request.remote_addr().copied() {
                        Some(peer) => Some((Some(peer), self.connections.claim(peer, request))),
                        None => Some((None, Claim::Serve(request))),
                    },
                    // Quiet for 20 ms while stopping: everything received is answered.
                    Ok(None) if self.stopping.load(Relaxed) => return,
                    Ok(None) => None,
                    Err(_) => {
                        // tiny_http's accept loop ended: on purpose, or on an error.
                        if !self.stopping.load(Relaxed) {
                            self.failed.store(true, Relaxed);
                        }
                        None
                    }
                }
            };
            match claimed {
                Some((peer, Claim::Serve(request))) => self.serve(peer, request, &mut buffers),
                Some((_, Claim::Refuse(requests))) => self.discard(requests),
                Some((_, Claim::Queued)) | None => {}
            }
        }
    }

    /// Answers `request` and, while this thread owns its connection, the
    /// requests of that connection that queued up meanwhile.
    fn serve(
        self: &Arc<Self>,
        peer: Option<SocketAddr>,
        mut request: Request,
        buffers: &mut Buffers,
    ) {
        loop {
            if let Some(declared) = bodies::unread_body(&request) {
                return self.hand_off(peer, request, declared, true);
            }
            let written = self.answer(request, buffers);
            let Some(peer) = peer else { return };
            request = match self.connections.next(peer, written) {
                Next::Serve(next) => next,
                Next::Refuse(requests) => return self.discard(requests),
                Next::Done => return,
            };
        }
    }

    /// Drops requests without answering: taking the writer keeps tiny_http from
    /// writing its default 500 response to a client that does not read. A request
    /// with an unread body goes to a body thread instead (dropping it here would
    /// read, and allocate, its body).
    fn discard(self: &Arc<Self>, requests: Vec<Request>) {
        for request in requests {
            match bodies::unread_body(&request) {
                Some(declared) => self.hand_off(None, request, declared, false),
                None => drop(request.into_writer()),
            }
        }
    }

    /// Moves a request with an unread body, and with it the ownership of its
    /// connection, to a thread of its own, which reads the body and then answers
    /// (if `answer`) and serves the connection on.
    fn hand_off(
        self: &Arc<Self>,
        peer: Option<SocketAddr>,
        request: Request,
        declared: usize,
        answer: bool,
    ) {
        if declared > bodies::READ_UP_TO {
            return self.leak(peer, request);
        }
        if self.body_threads.fetch_add(1, Relaxed) < MAX_BODY_THREADS {
            // The request goes over a channel once the thread exists: had the spawn
            // failed, a request moved into the closure would be dropped right here.
            let (give, take) = std::sync::mpsc::channel::<Request>();
            let shared = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("promlite-body".into())
                .spawn(move || {
                    if let Ok(request) = take.recv() {
                        shared.serve_body(peer, request, declared, answer);
                    }
                    shared.body_threads.fetch_sub(1, Relaxed);
                });
            if spawned.is_ok() {
                if let Err(returned) = give.send(request) {
                    self.leak(peer, returned.0);
                }
                return;
            }
        }
        self.body_threads.fetch_sub(1, Relaxed);
        self.leak(peer, request);
    }

    fn serve_body(
        self: &Arc<Self>,
        peer: Option<SocketAddr>,
        mut request: Request,
        declared: usize,
        answer: bool,
    ) {
        let whole = bodies::drain(&mut request, declared);
        if !(whole && answer) {
            drop(request.into_writer());
            if !whole {
                self.give_up_connection(peer);
            }
            return;
        }
        let mut buffers = Buffers::default();
        let written = self.answer(request, &mut buffers);
        let Some(peer) = peer else { return };
        match self.connections.next(peer, written) {
            Next::Serve(next) => self.serve(Some(peer), next, &mut buffers),
            Next::Refuse(requests) => self.discard(requests),
            Next::Done => {}
        }
    }

    /// Leaks a request whose body cannot be read safely (see [`bodies`]), and gives
    /// up its connection.
    fn leak(self: &Arc<Self>, peer: Option<SocketAddr>, request: Request) {
        std::mem::forget(request);
        self.leaked.fetch_add(1, Relaxed);
        self.give_up_connection(peer);
    }

    /// Refuses the rest of a connection this thread owns: its stream is broken.
    fn give_up_connection(self: &Arc<Self>, peer: Option<SocketAddr>) {
        if let Some(peer) = peer {
            if let Next::Refuse(requests) = self.connections.next(peer, false) {
                self.discard(requests);
            }
        }
    }

    /// Routes one request and writes its response; false if the write failed.
    fn answer(&self, request: Request, buffers: &mut Buffers) -> bool {
        let body = &mut buffers.body;
        body.clear();
        // A panic in the application's routes or in a collector must not take the
        // worker (and the connection it owns) with it: it is a 500.
        let routed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.route(&request, body)));
        let answer = routed.unwrap_or_else(|_| {
            body.clear();
            plain(body, 500, "internal error")
        });
        let n = self.answers.fetch_add(1, Relaxed) + 1;
        let close = self.stopping.load(Relaxed) || n % self.keep_alive == 0;
        respond(request, &answer, close, body, &mut buffers.response).is_ok()
    }

    /// What to answer, with the body written into `body`.
    fn route(&self, request: &Request, body: &mut Vec<u8>) -> Answer {
        let path = request.url().split('?').next().unwrap_or("");
        let read_only = matches!(request.method(), Method::Get | Method::Head);
        match path {
            "/metrics" | "/healthz" | "/readyz" if !read_only => {
                body.extend_from_slice(b"method not allowed\n");
                Answer::method_not_allowed("GET, HEAD")
            }
            "/metrics" => metrics(request, self.registry.get(), body),
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
                .and_then(|routes| routes(request, body))
            {
                Some(answer) => answer,
                None => {
                    body.clear();
                    plain(body, 404, "not found")
                }
            },
        }
    }
}

/// The registry's exposition, in the format the `Accept` header asks for.
fn metrics(request: &Request, registry: &Registry, body: &mut Vec<u8>) -> Answer {
    let format = header(request, "Accept").map_or(Format::Text, Format::from_accept);
    encode(registry, format, body);
    Answer::ok(format.content_type())
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
    let has = |token: &str| {
        header(request, "Connection").is_some_and(|value| {
            value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    has("close") || (*request.http_version() < (1, 1) && !has("keep-alive"))
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
    body.clear();
    let answer = metrics(&request, registry, body);
    respond(request, &answer, false, body, out)
}
