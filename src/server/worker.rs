//! A worker: waits for an event, serves that connection as far as it can go
//! without blocking, parks it again, and waits for the next event.
//!
//! Every worker does this, on the one poller; there is no thread that only reads
//! or only accepts and hands work on. A worker holds one connection at a time, so
//! a route that blocks holds up its own connection only, and the number of workers
//! is the number of routes that can run at once.

use super::compress::Compression;
use super::conn::{self, Conn};
use super::parse::{self, Reject};
use super::poller::Wait;
use super::request::Request;
use super::response;
use super::table::{Phase, Taken, Token};
use super::{Answer, LISTENER, Shared, TEXT};
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Requests answered from one connection before it gives way to the others (it
/// goes to the back of the queue with what it sent ahead).
const BATCH: usize = 16;

/// How much is read at once.
const READ_CHUNK: usize = 16 * 1024;

/// After an error answer: how long, and how much, the client's further bytes are
/// read and dropped before the connection is closed.
pub(crate) const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

pub(crate) struct Worker {
    shared: Arc<Shared>,
    /// Its place in the gate.
    index: usize,
    /// Lent to the connection being served, when it has no input buffer of its own.
    input: Vec<u8>,
    /// Lent likewise for its answers.
    output: Vec<u8>,
    /// The body of the answer being made.
    body: Vec<u8>,
    /// The parsed head, whose field list is reused.
    head: parse::Head,
    /// gzip for `/metrics`, with its tables.
    compression: Compression,
}

/// What becomes of a connection after its turn.
enum Next {
    Park(Phase, Instant),
    Close,
}

/// What the start of the input holds.
enum Step {
    /// A request was answered (into the output).
    Answered,
    /// A request is not complete yet.
    NeedMore,
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>, index: usize) -> Worker {
        Worker {
            shared,
            index,
            input: Vec::with_capacity(READ_CHUNK),
            output: Vec::new(),
            body: Vec::new(),
            head: parse::Head::new(),
            compression: Compression::default(),
        }
    }

    pub(crate) fn run(mut self) {
        while self.shared.gate.pass() {
            match self.shared.poller.wait(None) {
                Ok(Wait::Ready(LISTENER)) => self.accept(),
                Ok(Wait::Ready(token)) => self.event(Token(token)),
                Ok(Wait::Timeout) => {}
                Ok(Wait::Closed) => return,
                // Not expected of epoll or poll on a valid set; never spin on it.
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    fn accept(&mut self) {
        let shared = &*self.shared;
        let Some(listener) = shared.listener() else {
            return;
        };
        for _ in 0..64 {
            match super::listener::accept(&listener) {
                Ok(stream) => shared.admit(stream),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if super::listener::transient(&e) => continue,
                Err(_) => {
                    // Out of file descriptors or memory: accepting again at once
                    // would fail again. The timer re-arms the listener later.
                    shared.accept_failed();
                    return;
                }
            }
        }
        drop(listener);
        shared.arm_listener();
    }

    fn event(&mut self, token: Token) {
        let shared = Arc::clone(&self.shared);
        let Some(Taken { mut conn, phase }) = shared.table.take(token) else {
            return;
        };
        self.lend(&mut conn);
        let next = match phase {
            Phase::Lingering => self.linger(&mut conn),
            Phase::Writing => self.write_then_serve(&mut conn),
            Phase::Idle | Phase::Reading => self.serve(&mut conn, true),
            Phase::Resume => {
                let more = conn.more_to_read;
                self.serve(&mut conn, more)
            }
        };
        self.reclaim(&mut conn);
        match next {
            Next::Park(phase, deadline) => {
                let stopping =
                    |phase| shared.is_stopping() && matches!(phase, Phase::Idle | Phase::Reading);
                if let Err(conn) =
                    shared
                        .table
                        .park(token, conn, phase, deadline, &shared.poller, stopping)
                {
                    shared.table.release(token, conn, &shared.poller);
                }
            }
            Next::Close => shared.table.release(token, conn, &shared.poller),
        }
    }

    /// Lends the worker's buffers to a connection that has none of its own.
    fn lend(&mut self, conn: &mut Conn) {
        if conn.input.capacity() == 0 {
            std::mem::swap(&mut conn.input, &mut self.input);
        }
        if conn.output.capacity() == 0 {
            std::mem::swap(&mut conn.output, &mut self.output);
        }
    }

    /// Takes the lent buffers back. What the connection still needs (a partial
    /// request, an unfinished answer) stays with it, in a buffer of its size.
    fn reclaim(&mut self, conn: &mut Conn) {
        if self.input.capacity() == 0 {
            let lent = std::mem::take(&mut conn.input);
            if !lent.is_empty() {
                conn.input = lent.to_vec();
            }
            self.input = lent;
            self.input.clear();
        } else if conn.input.is_empty() {
            conn.input = Vec::new();
        }
        if self.output.capacity() == 0 {
            let lent = std::mem::take(&mut conn.output);
            if conn.sent < lent.len() {
                conn.output = lent[conn.sent..].to_vec();
                conn.sent = 0;
            }
            self.output = lent;
            self.output.clear();
        } else if conn.sent >= conn.output.len() {
            conn.output = Vec::new();
            conn.sent = 0;
        }
    }

    /// Answers what has come, reads more while it may, writes the answers.
    fn serve(&mut self, conn: &mut Conn, mut may_read: bool) -> Next {
        let mut answered = 0;
        loop {
            // Answer the requests already received, in order.
            loop {
                match self.next_request(conn) {
                    Ok(Step::Answered) => answered += 1,
                    Ok(Step::NeedMore) => break,
                    Err(reject) => {
                        self.refuse(conn, reject);
                        break;
                    }
                }
                if conn.close_after_output || answered >= BATCH {
                    break;
                }
            }
            // Write them before reading more: a client that sends ahead gets no
            // more reads until its answers are out.
            if conn.sent < conn.output.len() {
                match self.write(conn) {
                    Ok(true) => {}
                    Ok(false) => return Next::Park(Phase::Writing, self.write_deadline()),
                    Err(()) => return Next::Close,
                }
            }
            if conn.close_after_output {
                return self.after_last_answer(conn);
            }
            if answered >= BATCH && !conn.input.is_empty() {
                return Next::Park(Phase::Resume, self.write_deadline());
            }
            if !may_read {
                return self.wait_for_more(conn);
            }
            match self.read(conn) {
                Ok(0) => return Next::Close,
                Ok(_) => may_read = conn.more_to_read,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return self.wait_for_more(conn),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
    }

    /// Parks a connection that needs more bytes: idle, or in the middle of a request.
    fn wait_for_more(&self, conn: &Conn) -> Next {
        let limits = &self.shared.limits;
        match conn.first_byte {
            None => Next::Park(Phase::Idle, Instant::now() + limits.idle_timeout),
            Some(first) => Next::Park(Phase::Reading, first + limits.request_timeout),
        }
    }

    fn write_deadline(&self) -> Instant {
        Instant::now() + self.shared.limits.write_timeout
    }

    fn write_then_serve(&mut self, conn: &mut Conn) -> Next {
        match self.write(conn) {
            Ok(true) if conn.close_after_output => self.after_last_answer(conn),
            Ok(true) => {
                let more = conn.more_to_read;
                self.serve(conn, more)
            }
            Ok(false) => Next::Park(Phase::Writing, self.write_deadline()),
            Err(()) => Next::Close,
        }
    }

    /// Reads what the socket has, into the room the input buffer has or gets.
    fn read(&mut self, conn: &mut Conn) -> std::io::Result<usize> {
        let room = conn.input.capacity() - conn.input.len();
        if room < READ_CHUNK / 4 {
            conn.input.reserve(READ_CHUNK);
        }
        let offered = conn.input.capacity() - conn.input.len();
        let n = conn::recv(&conn.socket, &mut conn.input)?;
        conn.more_to_read = n == offered;
        if n > 0 && conn.first_byte.is_none() {
            conn.first_byte = Some(Instant::now());
        }
        Ok(n)
    }

    /// Writes pending answers; `Ok(true)` when all are out, `Ok(false)` when the
    /// socket is full, `Err` when the connection is broken.
    fn write(&mut self, conn: &mut Conn) -> Result<bool, ()> {
        while conn.sent < conn.output.len() {
            match conn::send(&conn.socket, &conn.output[conn.sent..]) {
                Ok(0) => return Err(()),
                Ok(n) => conn.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
        conn.output.clear();
        conn.sent = 0;
        Ok(true)
    }

    /// The last answer is out: close, or first linger after an error so that
    /// the client reads the answer before the connection goes.
    fn after_last_answer(&self, conn: &mut Conn) -> Next {
        conn.shutdown_write();
        if conn.refused {
            conn.input.clear();
            let until = Instant::now() + LINGER;
            conn.linger_until = Some(until);
            Next::Park(Phase::Lingering, until)
        } else {
            Next::Close
        }
    }

    /// Reads and drops what a refused client still sends, until it closes.
    fn linger(&mut self, conn: &mut Conn) -> Next {
        loop {
            conn.input.clear();
            if conn.input.capacity() == 0 {
                conn.input.reserve(READ_CHUNK);
            }
            match conn::recv(&conn.socket, &mut conn.input) {
                Ok(0) => return Next::Close,
                Ok(n) => {
                    conn.lingered += n;
                    if conn.lingered > LINGER_BYTES {
                        return Next::Close;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    conn.input.clear();
                    // However much the client sends, lingering ends on time.
                    let until = conn.linger_until.unwrap_or_else(Instant::now);
                    return Next::Park(Phase::Lingering, until);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
    }

    /// Answers the first request of the input if it is all there.
    fn next_request(&mut self, conn: &mut Conn) -> Result<Step, Reject> {
        let Some(len) = conn.scan.head_len(&conn.input)? else {
            return Ok(Step::NeedMore);
        };
        parse::parse(&conn.input, len, &mut self.head)?;
        let meaning = parse::check(&conn.input, &self.head)?;
        let limits = &self.shared.limits;
        if meaning.body_len > limits.body_limit as u64 {
            return Err(Reject::BodyTooLarge);
        }
        let total = len + meaning.body_len as usize;
        if conn.input.len() < total {
            // Room for the whole body, so that the reads that bring it need no more.
            conn.input.reserve(total - conn.input.len());
            return Ok(Step::NeedMore);
        }
        let request = Request::new(
            &conn.input[..len],
            self.head.minor,
            &self.head.fields,
            &meaning,
            &conn.input[len..total],
        );
        self.body.clear();
        let routed = self.shared.answer(self.index, &request, &mut self.body);
        let answer = routed.answer;
        let encoding = self.compression.apply(&request, &routed, &mut self.body);
        if encoding.content_encoding.is_some() {
            self.shared.gzipped.fetch_add(1, Relaxed);
        }
        let close = !meaning.keep_alive || self.shared.is_stopping();
        let head_only = request.method() == super::Method::Head;
        response::Head {
            status: answer.status,
            content_type: answer.content_type,
            content_length: self.body.len(),
            close,
            allow: answer.allow,
            retry_after_secs: None,
            content_encoding: encoding.content_encoding,
            vary: encoding.vary,
        }
        .write(&mut conn.output);
        if !head_only {
            conn.output.extend_from_slice(&self.body);
        }
        conn.close_after_output |= close;
        conn.consume(total);
        self.shared.answers.fetch_add(1, Relaxed);
        Ok(Step::Answered)
    }

    /// Answers a refused request with its status, then the connection closes.
    fn refuse(&mut self, conn: &mut Conn, reject: Reject) {
        self.body.clear();
        self.body.extend_from_slice(reject.explain().as_bytes());
        self.body.push(b'\n');
        response::Head {
            status: reject.status(),
            content_type: TEXT,
            content_length: self.body.len(),
            close: true,
            allow: None,
            retry_after_secs: None,
            content_encoding: None,
            vary: None,
        }
        .write(&mut conn.output);
        conn.output.extend_from_slice(&self.body);
        conn.close_after_output = true;
        conn.refused = true;
        self.shared.refused.fetch_add(1, Relaxed);
    }
}

/// An answer that needs no request: to a connection over the cap, or to a request
/// cut off by its timeout. Sent if the socket takes it at once, else dropped.
pub(crate) fn send_alone(socket: &std::net::TcpStream, status: u16, text: &str, retry: bool) {
    let mut out = Vec::with_capacity(256);
    response::Head {
        status,
        content_type: TEXT,
        content_length: text.len() + 1,
        close: true,
        allow: None,
        retry_after_secs: retry.then_some(1),
        content_encoding: None,
        vary: None,
    }
    .write(&mut out);
    out.extend_from_slice(text.as_bytes());
    out.push(b'\n');
    let _ = conn::send(socket, &out);
    let _ = socket.shutdown(std::net::Shutdown::Write);
}

impl Answer {
    /// What a route that panicked answers.
    pub(crate) fn internal_error(body: &mut Vec<u8>) -> Answer {
        body.clear();
        body.extend_from_slice(b"internal error\n");
        Answer {
            status: 500,
            content_type: TEXT,
            allow: None,
        }
    }
}
