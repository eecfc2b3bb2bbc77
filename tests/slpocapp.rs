//! The slpocapp binary, started for real on 127.0.0.1.

mod common;

use common::http::Client;
use common::{Slpocapp, sample_value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const REQUESTS: &str = "slpocapp_request_operations_total{namespace=\"test-ns\",pod=\"test-pod\"}";
const COUNT: &str =
    "slpocapp_request_duration_seconds_count{namespace=\"test-ns\",pod=\"test-pod\"}";

#[test]
fn a_request_to_root_is_counted_with_its_labels() {
    let app = Slpocapp::start(&[]);
    let before = sample_value(&app.metrics(), REQUESTS);
    assert_eq!(
        before,
        Some(0.0),
        "the series exists from the start, at zero"
    );
    let response = app.client().get("/").unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.text();
    assert!(
        body.starts_with("{\"Respuesta de:\": \"test-pod processing time: 1"),
        "{body}"
    );
    assert!(body.ends_with("\"}"), "{body}");
    let time: f64 = body["{\"Respuesta de:\": \"test-pod processing time: ".len()..body.len() - 2]
        .parse()
        .unwrap();
    assert!((time - common::now()).abs() < 60.0);
    let metrics = app.metrics();
    assert_eq!(sample_value(&metrics, REQUESTS), Some(1.0));
    assert_eq!(sample_value(&metrics, COUNT), Some(1.0));
    let inf = "slpocapp_request_duration_seconds_bucket{namespace=\"test-ns\",pod=\"test-pod\",le=\"+Inf\"}";
    assert_eq!(sample_value(&metrics, inf), Some(1.0));
    assert!(metrics.contains("\nprocess_resident_memory_bytes "));
    assert!(metrics.contains("\nprocess_open_fds "));
}

#[test]
fn a_thousand_requests_over_16_connections_count_exactly_a_thousand() {
    let app = Slpocapp::start(&[]);
    std::thread::scope(|s| {
        for i in 0..16 {
            let app = &app;
            s.spawn(move || {
                let mut client = app.client();
                // 1000 = 8 x 62 + 8 x 63
                for _ in 0..(62 + usize::from(i % 2 == 1)) {
                    assert_eq!(client.get("/").unwrap().status, 200);
                }
            });
        }
    });
    let metrics = app.metrics();
    assert_eq!(sample_value(&metrics, REQUESTS), Some(1000.0));
    assert_eq!(sample_value(&metrics, COUNT), Some(1000.0));
}

#[test]
fn methods_paths_and_formats() {
    let app = Slpocapp::start(&[]);
    let mut c = app.client();

    let head = c.request("HEAD", "/metrics", &[]).unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let length: usize = head.header("content-length").unwrap().parse().unwrap();
    assert!(length > 1000, "HEAD gives the length GET would send");

    let missing = c.get("/nope").unwrap();
    assert_eq!(missing.status, 404);

    for (method, path) in [("POST", "/metrics"), ("DELETE", "/"), ("PUT", "/healthz")] {
        let r = c.request(method, path, &[("Content-Length", "0")]).unwrap();
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }

    let text = c.get("/metrics").unwrap();
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!text.text().contains("# EOF"));
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let om = c
        .request("GET", "/metrics", &[("Accept", prometheus_accept)])
        .unwrap();
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(om.text().ends_with("# EOF\n"));
    assert!(
        om.text()
            .contains("# TYPE slpocapp_request_operations counter\n")
    );
    let query = c.get("/metrics?name[]=x").unwrap();
    assert_eq!(
        query.status, 200,
        "a query string does not change the route"
    );
}

#[test]
fn probes_and_scrapes_do_not_count_as_requests() {
    let app = Slpocapp::start(&[]);
    let mut c = app.client();
    for _ in 0..20 {
        assert_eq!(c.get("/healthz").unwrap().status, 200);
        assert_eq!(c.get("/readyz").unwrap().status, 200);
        assert_eq!(c.get("/metrics").unwrap().status, 200);
        assert_eq!(c.request("HEAD", "/healthz", &[]).unwrap().status, 200);
    }
    let metrics = app.metrics();
    assert_eq!(sample_value(&metrics, REQUESTS), Some(0.0));
    assert_eq!(sample_value(&metrics, COUNT), Some(0.0));
}

/// `/metrics` answers, and within `limit`.
fn answers_quickly(app: &Slpocapp, limit: Duration) {
    let started = Instant::now();
    let response = app
        .client()
        .get("/metrics")
        .expect("/metrics still answers");
    assert_eq!(response.status, 200);
    assert!(
        started.elapsed() < limit,
        "/metrics took {:?}",
        started.elapsed()
    );
}

#[test]
fn bad_input_leaves_the_server_up() {
    let app = Slpocapp::start(&[]);
    let send = |bytes: &[u8]| -> Vec<u8> {
        let mut s = TcpStream::connect(app.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    };
    // Random bytes.
    let mut next = common::xorshift(0x9E37_79B9_7F4A_7C15);
    let noise: Vec<u8> = (0..4096).map(|_| next() as u8).collect();
    send(&noise);
    answers_quickly(&app, Duration::from_millis(500));
    // An invalid request line gets a 400.
    let answer = send(b"GARBAGE\r\n\r\n");
    assert!(
        answer.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    // A 64 KiB header: over the 16 KiB a head may have.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = send(big.as_bytes());
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(100)])
    );
    // A 15 KiB header is served.
    let large = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Large: {}\r\n\r\n",
        "a".repeat(15 * 1024)
    );
    let answer = send(large.as_bytes());
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(100)])
    );
    // A request that never ends (kept open for the rest of the test).
    let mut endless = TcpStream::connect(app.addr).unwrap();
    endless
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    // A request with a path that is not UTF-8 and a header without a colon.
    send(b"GET /\xff\xfe HTTP/1.1\r\n\r\n");
    send(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n");
    send(b"GET / HTTP/9.9\r\n\r\n");
    answers_quickly(&app, Duration::from_millis(500));
    // 500 idle connections held open.
    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(app.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..10 {
        answers_quickly(&app, Duration::from_millis(500));
    }
    endless.write_all(b"still going").unwrap();
    answers_quickly(&app, Duration::from_millis(500));
    drop(idle);
    // The counter is only what was answered at `/` (the 15 KiB one): bad input counts nothing.
    assert_eq!(sample_value(&app.metrics(), REQUESTS), Some(1.0));
}

/// Opens `n` keep-alive connections at once; a third send one request and then idle
/// (holding their connection), the others send requests in a loop for `run`.
/// Returns the answers each connection got.
fn starvation(app: &Slpocapp, n: usize, run: Duration) -> Vec<u64> {
    let start = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (app, start) = (app, &start);
                s.spawn(move || {
                    let mut client = Client::new(app.addr, Duration::from_secs(10));
                    client.connect().unwrap();
                    start.wait();
                    let until = Instant::now() + run;
                    let mut answers = 0u64;
                    if i % 3 == 0 {
                        if client.get("/").is_ok_and(|r| r.status == 200) {
                            answers += 1;
                        }
                        std::thread::sleep(until.saturating_duration_since(Instant::now()));
                        return answers;
                    }
                    while Instant::now() < until {
                        match client.get("/") {
                            Ok(r) if r.status == 200 => answers += 1,
                            other => panic!("connection {i}: {other:?}"),
                        }
                    }
                    answers
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Runs [`starvation`] and checks that every connection got answers: at least one
/// each, and at least `looping_min` for each looping connection.
fn assert_every_connection_answered(n: usize, run: Duration, looping_min: u64) {
    let app = Slpocapp::start(&[]);
    let answers = starvation(&app, n, run);
    let starved: Vec<usize> = (0..n).filter(|&i| answers[i] == 0).collect();
    assert!(
        starved.is_empty(),
        "connections with no answer: {starved:?} (answers {answers:?})"
    );
    let fewest = (0..n)
        .filter(|i| i % 3 != 0)
        .map(|i| answers[i])
        .min()
        .unwrap();
    assert!(
        fewest >= looping_min,
        "a looping connection got only {fewest} answers: {answers:?}"
    );
    let total: u64 = answers.iter().sum();
    assert_eq!(
        sample_value(&app.metrics(), REQUESTS),
        Some(total as f64),
        "every answer counted once"
    );
}

#[test]
fn every_one_of_32_connections_opened_at_once_is_answered() {
    assert_every_connection_answered(32, Duration::from_secs(2), 20);
}

#[test]
fn every_one_of_256_connections_opened_at_once_is_answered() {
    assert_every_connection_answered(256, Duration::from_secs(3), 5);
}

#[test]
fn sigterm_exits_cleanly_within_a_second() {
    let mut app = Slpocapp::start(&[]);
    assert_eq!(app.client().get("/").unwrap().status, 200);
    let (code, took) = app.terminate();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let last = app
        .log
        .lock()
        .unwrap()
        .recv_timeout(Duration::from_secs(1))
        .unwrap();
    assert!(last.contains("SIGTERM received"), "{last}");
}

#[test]
fn sigint_exits_cleanly_too() {
    let mut app = Slpocapp::start(&[]);
    let started = Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &app.child.id().to_string()])
        .status()
        .unwrap();
    let status = app.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn sigterm_while_requests_are_in_flight_answers_them_and_exits_within_a_second() {
    let mut app = Slpocapp::start(&["--work-ms", "300"]);
    let in_flight: Vec<_> = (0..8)
        .map(|_| {
            let addr = app.addr;
            std::thread::spawn(move || Client::new(addr, Duration::from_secs(5)).get("/"))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100)); // all eight are being worked on
    let (code, took) = app.terminate();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    for request in in_flight {
        let response = request
            .join()
            .unwrap()
            .expect("an in-flight request is answered");
        assert_eq!(response.status, 200);
        assert!(
            response.closes(),
            "answers during shutdown close their connection"
        );
    }
    // After the exit, nothing listens any more.
    assert!(TcpStream::connect(app.addr).is_err());
}

#[test]
fn bad_flags_are_a_one_line_error_and_exit_code_2() {
    for args in [
        &["--port", "99999"][..],
        &["--work-ms", "lots"],
        &["--nope"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_slpocapp"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(err.starts_with("slpocapp: "), "{err:?}");
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_slpocapp"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(
        String::from_utf8(help.stdout)
            .unwrap()
            .contains("--work-ms")
    );
    let version = std::process::Command::new(env!("CARGO_BIN_EXE_slpocapp"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap(),
        format!("slpocapp {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_pod_falls_back_to_the_host_name_and_the_namespace_to_default() {
    let app = Slpocapp::start_with(&[], &[]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let body = app.client().get("/").unwrap().text();
    assert!(
        body.contains(&format!("\"{} processing time", host.trim())),
        "{body}"
    );
    let metrics = app.metrics();
    let expected = format!(
        "slpocapp_request_operations_total{{namespace=\"default\",pod=\"{}\"}} 1\n",
        host.trim()
    );
    assert!(metrics.contains(&expected), "{metrics}");
}

#[test]
fn declared_bodies_never_crash_or_block_the_workers() {
    let app = Slpocapp::start(&["--workers", "2"]);
    // A body of a petabyte, declared and never sent: refused at once (413).
    let mut huge = TcpStream::connect(app.addr).unwrap();
    huge.write_all(
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n",
    )
    .unwrap();
    // Bodies declared and not sent, on more connections than there are workers.
    let waiting: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(app.addr).unwrap();
            s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        answers_quickly(&app, Duration::from_millis(500));
    }
    // The petabyte client leaves: the process is still there and answering.
    drop(huge);
    drop(waiting);
    std::thread::sleep(Duration::from_millis(200));
    answers_quickly(&app, Duration::from_millis(500));
    // A body within the 64 KiB limit that is sent whole is read, and the request
    // answered (405 here).
    let mut c = app.client();
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n")
        .unwrap();
    s.write_all(&vec![b'x'; 60_000]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = std::io::BufReader::new(s);
    let response = common::http::read_response(&mut reader, false).unwrap();
    assert_eq!(response.status, 405);
    assert_eq!(c.get("/healthz").unwrap().status, 200);
    assert_eq!(sample_value(&app.metrics(), REQUESTS), Some(0.0));
}

#[test]
fn pipelined_requests_are_all_answered_in_order() {
    let app = Slpocapp::start(&["--workers", "8"]);
    // Requests of one connection taken by two workers at once must still be
    // answered in order, and none may be lost (a worker waiting for an earlier
    // answer that sits in its own queue would hang for ever).
    for round in 0..300 {
        let mut s = TcpStream::connect(app.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
        let mut reader = std::io::BufReader::new(s);
        let statuses: Vec<u16> = (0..3)
            .map(|_| {
                common::http::read_response(&mut reader, false)
                    .unwrap_or_else(|e| panic!("round {round}: {e}"))
                    .status
            })
            .collect();
        assert_eq!(statuses, [200, 404, 200], "round {round}");
    }
}

/// The sample names and labels of a text scrape's duration family, values left out.
fn duration_series(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.contains("slpocapp_request_duration_seconds"))
        .map(|l| {
            l.rsplit_once(' ')
                .map_or(l, |(series, _)| series)
                .to_owned()
        })
        .collect()
}

#[test]
fn the_native_histogram_flag_keeps_the_text_series_and_adds_native_buckets_over_protobuf() {
    let seed = Slpocapp::start(&[]);
    let native = Slpocapp::start(&["--native-histogram"]);
    for app in [&seed, &native] {
        for _ in 0..3 {
            assert_eq!(app.client().get("/").unwrap().status, 200);
        }
    }
    let text = native.metrics();
    assert_eq!(duration_series(&text), duration_series(&seed.metrics()));
    assert_eq!(sample_value(&text, COUNT), Some(3.0));
    let protobuf = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;q=0.3";
    // A native histogram's zero threshold, 2^-128: field 6 (a double), then its bytes.
    let threshold = [0x31, 0, 0, 0, 0, 0, 0, 0xf0, 0x37];
    for (app, native_buckets) in [(&seed, false), (&native, true)] {
        let scrape = app
            .client()
            .request("GET", "/metrics", &[("Accept", protobuf)])
            .unwrap();
        assert_eq!(
            scrape.header("content-type"),
            Some(
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            )
        );
        let has = scrape.body.windows(threshold.len()).any(|w| w == threshold);
        assert_eq!(has, native_buckets);
    }
}
