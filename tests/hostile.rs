//! slpocapp under clients that starve, flood, hold or never read: every
//! connection answered, memory and threads bounded, measured from `/proc`.

mod common;

use common::Slpocapp;
use common::http::Client;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// A field of `/proc/<pid>/status`, in its unit (kB for memory).
fn status(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

fn rss_kib(app: &Slpocapp) -> u64 {
    status(app.child.id(), "VmRSS")
}

fn threads(app: &Slpocapp) -> u64 {
    status(app.child.id(), "Threads")
}

/// slpocapp pinned to CPU 0, as a pod limited to one CPU runs it.
fn start_on_one_cpu(args: &[&str]) -> Slpocapp {
    let app = Slpocapp::start(args);
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &app.child.id().to_string()])
        .output()
        .expect("taskset (util-linux) runs");
    assert!(pinned.status.success(), "{pinned:?}");
    app
}

/// `n` keep-alive connections opened at once, each sends `requests` requests
/// and then stays open, idle: the pattern of scrapers, ingress pools and
/// browsers that starved tiny_http's pool. Returns the answers per connection.
fn burst_then_idle(app: &Slpocapp, n: usize, requests: usize) -> Vec<usize> {
    let start = std::sync::Barrier::new(n);
    let done = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (start, done) = (&start, &done);
                s.spawn(move || {
                    let mut client = Client::new(app.addr, Duration::from_secs(5));
                    client.connect().unwrap();
                    start.wait();
                    let answered = (0..requests)
                        .take_while(|_| client.get("/").is_ok_and(|r| r.status == 200))
                        .count();
                    // Stay open, idle, until every connection is done.
                    done.wait();
                    answered
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn bursts_of_keep_alive_connections_that_go_idle_are_all_answered_on_one_cpu() {
    // Six fresh processes, as the measurement that found tiny_http starving
    // (21 and 45 of 64 connections unanswered in 2 of 6 runs).
    for run in 0..6 {
        let app = start_on_one_cpu(&[]);
        for burst in 0..3 {
            let answers = burst_then_idle(&app, 64, 10);
            let short: Vec<(usize, usize)> = answers
                .iter()
                .copied()
                .enumerate()
                .filter(|&(_, a)| a != 10)
                .collect();
            assert!(
                short.is_empty(),
                "run {run}, burst {burst}: connections short of 10 answers: {short:?}"
            );
        }
    }
}

#[test]
fn a_head_without_end_costs_16_kib_and_is_refused() {
    let app = Slpocapp::start(&[]);
    let before = rss_kib(&app);
    let threads_before = threads(&app);
    let mut endless = TcpStream::connect(app.addr).unwrap();
    endless
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    endless
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        .unwrap();
    // Send a mebibyte of it, as fast as the server takes it.
    let chunk = [b'a'; 16 * 1024];
    let mut sent = 0;
    while sent < 1 << 20 && endless.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    endless
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = endless.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let grew = rss_kib(&app).saturating_sub(before);
    assert!(grew < 1024, "RSS grew by {grew} KiB");
    assert_eq!(threads(&app), threads_before);
}

#[test]
fn a_pipeliner_that_never_reads_is_bounded_by_tcp_and_holds_no_worker() {
    let app = Slpocapp::start(&["--workers", "2"]);
    let before = rss_kib(&app);
    let threads_before = threads(&app);
    let mut flood = TcpStream::connect(app.addr).unwrap();
    flood
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let requests = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
    // Write until the socket buffers on both sides are full; never read.
    let until = Instant::now() + Duration::from_secs(2);
    let mut written = 0usize;
    while Instant::now() < until && flood.write_all(&requests).is_ok() {
        written += requests.len();
    }
    assert!(
        Instant::now() < until + Duration::from_millis(500),
        "writes stopped: TCP holds the client back"
    );
    // Both workers are free: other clients are answered at once.
    for _ in 0..20 {
        let started = Instant::now();
        let mut client = app.client();
        assert_eq!(client.get("/healthz").unwrap().status, 200);
        assert!(started.elapsed() < Duration::from_millis(200));
    }
    let grew = rss_kib(&app).saturating_sub(before);
    assert!(
        grew < 1024,
        "RSS grew by {grew} KiB after {written} bytes of requests"
    );
    assert_eq!(threads(&app), threads_before);
}

/// Raises this process's open-files limit to the hard limit (the client side of
/// the 10,000 connections needs as many descriptors as the server).
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[test]
fn ten_thousand_idle_connections_cost_no_thread_and_little_memory() {
    const IDLE: usize = 10_000;
    let limit = raise_fd_limit();
    assert!(
        limit >= IDLE as u64 + 200,
        "the open-files limit ({limit}) is too low for this test"
    );
    let app = Slpocapp::start(&["--workers", "8", "--max-connections", "11000"]);
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| TcpStream::connect(app.addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    // Wait until the server has accepted them all.
    let until = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let text = app.metrics();
        let fds = common::sample_value(&text, "process_open_fds ").unwrap_or(0.0);
        if fds as usize >= IDLE || Instant::now() > until {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let fds = common::sample_value(&metrics, "process_open_fds ").unwrap();
    assert!(fds as usize >= IDLE, "only {fds} descriptors open");
    // Main thread, timer thread, and the workers: idle connections add none.
    assert_eq!(threads(&app), 8 + 2);
    let rss = rss_kib(&app);
    assert!(
        rss <= 16 * 1024,
        "RSS {rss} KiB with {IDLE} idle connections"
    );
    // And they do not slow anyone down.
    let started = Instant::now();
    assert_eq!(app.client().get("/").unwrap().status, 200);
    assert!(started.elapsed() < Duration::from_millis(200));
    eprintln!(
        "{IDLE} idle connections: {} threads, RSS {rss} KiB",
        threads(&app)
    );
    drop(idle);
}

#[test]
fn out_of_file_descriptors_the_server_pauses_and_serves_again() {
    // A hard limit of 48 descriptors, a cap far above it: accept() fails with
    // EMFILE once the descriptors are gone.
    let mut app = Slpocapp::start_shell(
        "ulimit -n 48 && exec \"$0\" \"$@\"",
        &["--max-connections", "1000"],
    );
    let idle: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(app.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // This one waits in the kernel's queue while nothing can be accepted.
    let mut waiting = TcpStream::connect(app.addr).unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(idle);
    let started = Instant::now();
    let mut answer = [0u8; 15];
    waiting.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200 OK");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    let (code, _) = app.terminate();
    assert_eq!(code, Some(0));
    let log: Vec<String> = app.log.lock().unwrap().try_iter().collect();
    let last = log.last().cloned().unwrap_or_default();
    assert!(
        last.contains(" accept() errors"),
        "accept() never failed: {log:?}"
    );
}
