//! The exporter: a small HTTP/1.1 server for `/metrics`, `/healthz`, `/readyz` and
//! the application's own routes, on std and the operating system's readiness
//! interface (epoll on Linux, `poll(2)` on other Unixes). Not built on Windows.
//!
//! # Design
//!
//! * **Idle connections cost no thread and no buffer.** A connection waiting for
//!   its next request is parked in its slot ([`table`]) and registered, one-shot,
//!   with the poller ([`poller`]).
//! * **Workers serve, no hand-offs.** A fixed pool of workers all wait on the one
//!   poller ([`worker`]); the event of a connection goes to one of them, which
//!   reads, parses ([`parse`]), routes, writes and parks the connection again.
//!   One request per connection at a time; requests sent ahead are answered in
//!   order, and the connection gets no more reads until its answers are written,
//!   so a client that never reads is held back by TCP's own flow control. After
//!   16 answers in a row a connection goes to the back of the queue.
//! * **As many workers take events as there are CPUs** ([`gate`]); the others
//!   are spares, which step in while a route blocks. Threads that all wait on
//!   the poller would each be woken for one event; a few that stay busy take
//!   the events as they come, with no wake-up and no time slice to wait for.
//! * **Everything is bounded**: the request line, the head, the number of fields,
//!   the body, the connections (the oldest idle one makes room for a new one), and
//!   time: a request must come whole within [`Exporter::request_timeout`] of its
//!   first byte, a connection may idle [`Exporter::idle_timeout`], and a write
//!   that makes no progress for [`Exporter::write_timeout`] ends the connection.
//!   One timer thread enforces the deadlines.
//! * **`/metrics` is gzipped** ([`compress`]) when the request's
//!   `Accept-Encoding` takes gzip (Prometheus sends `Accept-Encoding: gzip`) and
//!   the body is over 1 KiB; each worker keeps its compressor's tables.
//! * **It never stops serving**: an `accept()` error (out of file descriptors, of
//!   memory) pauses accepting for 100 ms, then it tries again; a panic in a route
//!   is a 500 and the worker goes on.

mod compress;
mod conn;
mod gate;
mod listener;
pub(crate) mod parse;
mod poller;
mod request;
mod response;
mod table;
mod worker;

pub use parse::Method;
pub use request::Request;

use crate::encoding::Format;
use crate::registry::{Registry, default_registry, encode};
use conn::Conn;
use poller::{Backend, Interest, Poller, Source};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use table::{Phase, Table};

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
    ///
    /// ```
    /// let answer = promlite::Answer::ok("application/json");
    /// assert_eq!((answer.status, answer.content_type), (200, "application/json"));
    /// ```
    pub fn ok(content_type: &'static str) -> Answer {
        Answer {
            status: 200,
            content_type,
            allow: None,
        }
    }

    /// `405 Method Not Allowed`, listing the allowed methods.
    ///
    /// ```
    /// let answer = promlite::Answer::method_not_allowed("GET, HEAD");
    /// assert_eq!((answer.status, answer.allow), (405, Some("GET, HEAD")));
    /// ```
    pub fn method_not_allowed(allow: &'static str) -> Answer {
        Answer {
            status: 405,
            content_type: TEXT,
            allow: Some(allow),
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

/// An answer, and whether its body may go out gzipped: only a successful
/// scrape's (application routes write their own bodies and headers).
pub(crate) struct Routed {
    pub(crate) answer: Answer,
    pub(crate) compressible: bool,
}

impl From<Answer> for Routed {
    fn from(answer: Answer) -> Routed {
        Routed {
            answer,
            compressible: false,
        }
    }
}

/// The token of the listener in the poller (connection tokens stay below it).
const LISTENER: u64 = u64::MAX - 1;

/// How long accepting pauses after an `accept()` error other than a refused
/// connection: long enough for file descriptors to be given back.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// File descriptors kept free below the open-files limit for everything else
/// the process opens (a scrape reads `/proc`, the application its own files).
const SPARE_FDS: usize = 64;

/// The signature of the application's routes: given the request and an empty
/// body buffer, answer (writing the body into the buffer), or `None` for 404.
type Routes = dyn Fn(&Request<'_>, &mut Vec<u8>) -> Option<Answer> + Send + Sync;

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
    registry: Metrics,
    limits: Limits,
    max_connections: Option<usize>,
    buffer_limit: usize,
    routes: Option<Arc<Routes>>,
    backend: Backend,
}

/// The limits a server enforces; see the `Exporter` methods of the same names.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) workers: usize,
    pub(crate) body_limit: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) write_timeout: Duration,
}

/// Where the metrics come from.
enum Metrics {
    Default,
    Shared(Arc<Registry>),
}

impl Metrics {
    fn get(&self) -> &Registry {
        match self {
            Metrics::Default => default_registry(),
            Metrics::Shared(registry) => registry,
        }
    }
}

impl Exporter {
    /// An exporter for this registry.
    pub fn new(registry: Arc<Registry>) -> Exporter {
        Exporter::with_metrics(Metrics::Shared(registry))
    }

    /// An exporter for the process-wide [`default_registry`].
    pub fn default_registry() -> Exporter {
        Exporter::with_metrics(Metrics::Default)
    }

    fn with_metrics(registry: Metrics) -> Exporter {
        Exporter {
            registry,
            limits: Limits {
                workers: 8,
                body_limit: 64 * 1024,
                request_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(75),
                write_timeout: Duration::from_secs(10),
            },
            max_connections: None,
            buffer_limit: 32 << 20,
            routes: None,
            backend: Backend::native(),
        }
    }

    /// How many threads serve requests (default 8). Each serves one request at a
    /// time, so this is how many routes can run at once: routes that block (or
    /// sleep) need more. Idle connections need none.
    pub fn workers(mut self, workers: usize) -> Exporter {
        self.limits.workers = workers.max(1);
        self
    }

    /// The most connections open at once (default 4096, or fewer if the
    /// open-files limit is lower: 64 file descriptors are left for the rest of
    /// the process). Past it, the connection idle the longest is closed to make
    /// room; if none is idle, the new one gets a short 503 with `Retry-After`.
    pub fn max_connections(mut self, connections: usize) -> Exporter {
        self.max_connections = Some(connections.max(1));
        self
    }

    /// The largest request body read and handed to a route (default 64 KiB).
    /// A request that declares more gets 413 and its connection is closed.
    pub fn body_limit(mut self, bytes: usize) -> Exporter {
        self.limits.body_limit = bytes;
        self
    }

    /// The most memory, in bytes, that waiting connections may hold in buffers
    /// together (default 32 MiB): parts of requests still coming, answers a slow
    /// client has not read yet. A connection that would go over it is closed.
    /// Idle connections hold none.
    pub fn buffer_limit(mut self, bytes: usize) -> Exporter {
        self.buffer_limit = bytes;
        self
    }

    /// How long a request may take to come whole, head and body, from its first
    /// byte (default 10 s). A client that is slower is cut off (with 408).
    pub fn request_timeout(mut self, timeout: Duration) -> Exporter {
        self.limits.request_timeout = timeout;
        self
    }

    /// How long a connection may wait for its next request (default 75 s: longer
    /// than Prometheus's usual 60 s scrape interval, so that a scraper's
    /// connection is reused).
    pub fn idle_timeout(mut self, timeout: Duration) -> Exporter {
        self.limits.idle_timeout = timeout;
        self
    }

    /// How long writing an answer may make no progress before the connection is
    /// closed (default 10 s). A client that reads slowly but steadily is not
    /// affected: the time restarts whenever the socket takes more.
    pub fn write_timeout(mut self, timeout: Duration) -> Exporter {
        self.limits.write_timeout = timeout;
        self
    }

    /// The application's own routes, tried for every path other than `/metrics`,
    /// `/healthz` and `/readyz`. Return `None` for a 404. A route that panics is
    /// answered with 500.
    ///
    /// ```no_run
    /// use promlite::{Answer, Exporter};
    ///
    /// let server = Exporter::default_registry()
    ///     .routes(|request, body| match request.path() {
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
        F: Fn(&Request<'_>, &mut Vec<u8>) -> Option<Answer> + Send + Sync + 'static,
    {
        self.routes = Some(Arc::new(routes));
        self
    }

    /// Binds `addr` (IPv4 or IPv6) and starts serving in background threads.
    pub fn serve(self, addr: impl ToSocketAddrs) -> io::Result<Running> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))?;
        let listener = Arc::new(listener::bind(addr)?);
        let local_addr = listener.local_addr()?;
        let capacity = self.max_connections.unwrap_or_else(default_max_connections);
        let listening = Listening {
            source: Arc::clone(&listener) as Source,
            listener,
        };
        let workers = self.limits.workers;
        let poller = Poller::new(self.backend)?;
        poller.add(&listening.source, LISTENER, Interest::Read)?;
        let shared = Arc::new(Shared {
            limits: self.limits,
            poller,
            table: Table::new(capacity, self.buffer_limit),
            listener: Mutex::new(Some(listening)),
            paused_until: Mutex::new(None),
            timer: (Mutex::new(false), Condvar::new()),
            gate: gate::Gate::new(workers),
            stopping: AtomicBool::new(false),
            registry: self.registry,
            routes: self.routes,
            answers: AtomicU64::new(0),
            gzipped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            turned_away: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
        });
        let mut running = Running {
            shared: Arc::clone(&shared),
            threads: Mutex::new(Vec::new()),
            local_addr,
        };
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name).spawn(f)
        };
        let timer = Arc::clone(&shared);
        let handle = spawn("promlite-timer".into(), Box::new(move || timer.run_timer()))?;
        running
            .threads
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle);
        for i in 0..shared.limits.workers {
            let worker = worker::Worker::new(Arc::clone(&shared), i);
            // On an error, dropping `running` stops the threads already started.
            let handle = spawn(format!("promlite-http-{i}"), Box::new(move || worker.run()))?;
            running
                .threads
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .push(handle);
        }
        Ok(running)
    }

    /// Serves with the `poll(2)` backend, as on Unixes without epoll, so that
    /// the tests run it on Linux too.
    #[cfg(test)]
    fn with_poll(mut self) -> Exporter {
        self.backend = Backend::Poll;
        self
    }
}

/// 4096, or fewer when the open-files limit would not allow it.
fn default_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let allowed = limit.map_or(usize::MAX, |l| (l as usize).saturating_sub(SPARE_FDS));
    4096.min(allowed).max(1)
}

/// A running server; see [`Exporter::serve`].
pub struct Running {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
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

    /// Requests answered so far (refused requests not included).
    pub fn answers(&self) -> u64 {
        self.shared.answers.load(Relaxed)
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.shared.table.open()
    }

    /// The most connections open at once; see [`Exporter::max_connections`].
    pub fn max_connections(&self) -> usize {
        self.shared.table.capacity()
    }

    /// Bytes that waiting connections hold in buffers now; see
    /// [`Exporter::buffer_limit`].
    pub fn buffered(&self) -> usize {
        self.shared.table.held()
    }

    /// Answers sent gzipped so far (`/metrics` bodies over 1 KiB, to requests
    /// whose `Accept-Encoding` takes gzip; answers to `HEAD` included).
    pub fn gzipped(&self) -> u64 {
        self.shared.gzipped.load(Relaxed)
    }

    /// Requests refused so far for breaking a rule (malformed, too large, ...).
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Relaxed)
    }

    /// Connections turned away with 503 because the cap was reached and none was idle.
    pub fn turned_away(&self) -> u64 {
        self.shared.turned_away.load(Relaxed)
    }

    /// Connections closed by a timeout (request, idle or write).
    pub fn timed_out(&self) -> u64 {
        self.shared.timed_out.load(Relaxed)
    }

    /// `accept()` errors so far (each paused accepting for a moment).
    pub fn accept_errors(&self) -> u64 {
        self.shared.accept_errors.load(Relaxed)
    }

    /// Stops gracefully: `/readyz` turns 503, the listener closes (new
    /// connections are refused), idle connections are closed at once, requests
    /// already received are answered with `Connection: close`, and the threads
    /// end. Waits for them until `deadline`.
    pub fn shutdown(&self, deadline: Duration) -> Stopped {
        let until = Instant::now() + deadline;
        let shared = &*self.shared;
        shared.stop_accepting();
        shared.table.sweep(
            &shared.poller,
            |phase, _, _| matches!(phase, Phase::Idle | Phase::Reading | Phase::Lingering),
            |_, _| {},
        );
        while shared.table.active() > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        shared.stop_threads();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        let mut abandoned = 0;
        for thread in threads {
            while !thread.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            if thread.is_finished() {
                let _ = thread.join();
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
        self.shared.stop_accepting();
        self.shared.stop_threads();
    }
}

struct Listening {
    listener: Arc<TcpListener>,
    source: Source,
}

/// What the threads of a server share.
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    pub(crate) poller: Poller,
    pub(crate) table: Table,
    /// `None` once the server stops.
    listener: Mutex<Option<Listening>>,
    /// Set after an `accept()` error: when the timer re-arms the listener.
    paused_until: Mutex<Option<Instant>>,
    /// Whether the timer should end, and its wake-up.
    timer: (Mutex<bool>, Condvar),
    /// How many workers take events at once.
    pub(crate) gate: gate::Gate,
    stopping: AtomicBool,
    registry: Metrics,
    routes: Option<Arc<Routes>>,
    pub(crate) answers: AtomicU64,
    pub(crate) gzipped: AtomicU64,
    pub(crate) refused: AtomicU64,
    accept_errors: AtomicU64,
    turned_away: AtomicU64,
    timed_out: AtomicU64,
}

impl Shared {
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    /// The listener, while the server accepts.
    fn listener(&self) -> Option<Arc<TcpListener>> {
        let listening = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
        listening.as_ref().map(|l| Arc::clone(&l.listener))
    }

    fn arm_listener(&self) {
        let listening = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = listening.as_ref() {
            let _ = self.poller.rearm(&l.source, LISTENER, Interest::Read);
        }
    }

    fn accept_failed(&self) {
        self.accept_errors.fetch_add(1, Relaxed);
        *self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + ACCEPT_PAUSE);
    }

    /// Serves a new connection, making room for it if the table is full.
    fn admit(&self, stream: TcpStream) {
        let table = &self.table;
        if table.open() >= table.capacity() && !table.evict_oldest_idle(&self.poller) {
            self.turned_away.fetch_add(1, Relaxed);
            return worker::send_alone(&stream, 503, "too many connections", true);
        }
        let deadline = Instant::now() + self.limits.idle_timeout;
        if let Err(conn) = table.admit(Conn::new(stream), &self.poller, deadline) {
            self.turned_away.fetch_add(1, Relaxed);
            worker::send_alone(&conn.socket, 503, "too many connections", true);
        }
    }

    /// Routes a request: the built-in paths, then the application's routes. A
    /// panic in a route or a collector is a 500, and the worker lives on.
    fn answer(&self, worker: usize, request: &Request<'_>, body: &mut Vec<u8>) -> Routed {
        if self.gate.enter_route(worker) {
            // Held so that the wake-up cannot fall between the timer's look at
            // the gate and its wait.
            let _timer = self.timer.0.lock().unwrap_or_else(PoisonError::into_inner);
            self.timer.1.notify_all();
        }
        let routed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.route(request, body)));
        self.gate.leave_route(worker);
        routed.unwrap_or_else(|_| Answer::internal_error(body).into())
    }

    fn route(&self, request: &Request<'_>, body: &mut Vec<u8>) -> Routed {
        let read_only = matches!(request.method(), Method::Get | Method::Head);
        let answer = match request.path() {
            "/metrics" | "/healthz" | "/readyz" if !read_only => {
                body.extend_from_slice(b"method not allowed\n");
                Answer::method_not_allowed("GET, HEAD")
            }
            "/metrics" => {
                let format = request
                    .header("accept")
                    .map_or(Format::Text, Format::from_accept);
                encode(self.registry.get(), format, body);
                return Routed {
                    answer: Answer::ok(format.content_type()),
                    compressible: true,
                };
            }
            "/healthz" => plain(body, 200, "ok"),
            "/readyz" if self.is_stopping() => plain(body, 503, "shutting down"),
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
        };
        answer.into()
    }

    /// Closes the listener: new connections are refused by the kernel.
    fn stop_accepting(&self) {
        self.stopping.store(true, Relaxed);
        let listening = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(l) = listening {
            self.poller.remove(&l.source, LISTENER);
        }
    }

    /// Ends the workers' waits and the timer.
    fn stop_threads(&self) {
        self.poller.close();
        self.gate.close();
        *self.timer.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.timer.1.notify_all();
    }

    /// The timer thread: closes connections past their deadline, and resumes
    /// accepting after a pause.
    fn run_timer(&self) {
        let limits = &self.limits;
        let shortest = limits
            .request_timeout
            .min(limits.idle_timeout)
            .min(limits.write_timeout)
            .min(worker::LINGER);
        // Deadlines are kept to a quarter of the shortest timeout, at most 250 ms.
        let sweep_every =
            (shortest / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
        let mut next_sweep = Instant::now();
        let mut stop = self.timer.0.lock().unwrap_or_else(PoisonError::into_inner);
        while !*stop {
            drop(stop);
            self.gate.tick();
            let now = Instant::now();
            if now >= next_sweep {
                next_sweep = now + sweep_every;
                self.sweep(now);
            }
            stop = self.timer.0.lock().unwrap_or_else(PoisonError::into_inner);
            if !*stop {
                // While routes run, tick fast enough that a blocked one is
                // replaced soon; else only as often as the deadlines need. The
                // flag is what the tick found, or a route that started since.
                let wait = if self.gate.ticks_fast() {
                    ROUTE_TICK
                } else {
                    next_sweep.saturating_duration_since(Instant::now())
                };
                stop = self
                    .timer
                    .1
                    .wait_timeout(stop, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }

    /// Closes connections past their deadline, and resumes accepting after a pause.
    fn sweep(&self, now: Instant) {
        self.table.sweep(
            &self.poller,
            |_, deadline, _| deadline <= now,
            |conn, phase| {
                if phase == Phase::Reading {
                    worker::send_alone(&conn.socket, 408, "request timeout", false);
                }
                self.timed_out.fetch_add(1, Relaxed);
            },
        );
        let resume = {
            let mut paused = self
                .paused_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match *paused {
                Some(at) if at <= now => paused.take().is_some(),
                _ => false,
            }
        };
        if resume {
            self.arm_listener();
        }
    }
}

/// How often the timer ticks while routes run: how long a route may block
/// before a spare worker takes events in its place.
const ROUTE_TICK: Duration = Duration::from_millis(1);

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

#[cfg(test)]
mod tests;
