//! The server against real sockets on 127.0.0.1, with both poller backends.

use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;

/// An exporter with an echo route, and `/slow` (sleeps 300 ms), `/big` (1 MiB),
/// `/panic` (panics).
fn exporter() -> Exporter {
    let registry = Arc::new(Registry::new());
    registry.counter("test_total", "A counter.").unwrap().inc();
    Exporter::new(registry).routes(|request, body| match request.path() {
        "/echo" => {
            body.extend_from_slice(
                format!(
                    "{} {} {:?} {}",
                    request.method().as_str(),
                    request.version(),
                    request.query(),
                    request.body().len()
                )
                .as_bytes(),
            );
            Some(Answer::ok("text/plain"))
        }
        "/slow" => {
            std::thread::sleep(Duration::from_millis(300));
            body.extend_from_slice(b"slow");
            Some(Answer::ok("text/plain"))
        }
        "/big" => {
            body.resize(1 << 20, b'x');
            Some(Answer::ok("application/octet-stream"))
        }
        "/panic" => panic!("a route that panics"),
        _ => None,
    })
}

/// Runs `test` against a server made by `make`, once per backend.
fn each_backend(make: impl Fn() -> Exporter, test: impl Fn(&Running)) {
    for poll in [false, true] {
        let exporter = if poll { make().with_poll() } else { make() };
        let server = exporter.serve("127.0.0.1:0").unwrap();
        test(&server);
        server.shutdown(Duration::from_secs(1));
    }
}

fn connect(server: &Running) -> TcpStream {
    let s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends `bytes` and reads until the server closes (or 5 s pass, which fails).
fn exchange(server: &Running, bytes: &[u8]) -> String {
    let mut s = connect(server);
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the connection did not close: {e} after {:?}",
            String::from_utf8_lossy(&out)
        ),
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response (head and `Content-Length` body) from a keep-alive connection.
fn response(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "closed in a head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    s.read_exact(&mut body).unwrap();
    (status, head, body)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

#[test]
fn malformed_requests_get_their_status_and_the_connection_closes() {
    each_backend(exporter, |server| {
        for (bytes, status) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], 400),
            (b"GET / HTTP/1.1\nHost: a\n\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 400),
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
            (b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
            (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n", 413),
            (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: tea\r\n\r\n", 417),
        ] {
            let answer = exchange(server, bytes);
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{:?} -> {answer:?}",
                String::from_utf8_lossy(bytes)
            );
            assert!(answer.contains("\r\nConnection: close\r\n"), "{answer:?}");
        }
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(9000));
        assert!(exchange(server, long.as_bytes()).starts_with("HTTP/1.1 414 "));
        let fields: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
        assert!(exchange(server, many.as_bytes()).starts_with("HTTP/1.1 431 "));
        // The request that smuggling would hide is never answered.
        let smuggled = exchange(
            server,
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        assert_eq!(smuggled.matches("HTTP/1.1 ").count(), 1, "{smuggled:?}");
        assert_eq!(server.answers(), 0);
        assert!(server.refused() >= 14);
    });
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    each_backend(exporter, |server| {
        let mut s = connect(server);
        let paths = ["/healthz", "/nope", "/echo?x", "/readyz", "/metrics"];
        let mut all = Vec::new();
        for i in 0..100 {
            all.extend(get(paths[i % paths.len()]));
        }
        s.write_all(&all).unwrap();
        for i in 0..100 {
            let (status, _, body) = response(&mut s);
            let expected = match paths[i % paths.len()] {
                "/nope" => 404,
                _ => 200,
            };
            assert_eq!(status, expected, "answer {i}");
            if paths[i % paths.len()] == "/echo?x" {
                assert_eq!(body, b"GET HTTP/1.1 Some(\"x\") 0");
            }
        }
        // Still open, keep-alive.
        s.write_all(&get("/healthz")).unwrap();
        assert_eq!(response(&mut s).0, 200);
        assert_eq!(server.answers(), 101);
    });
}

#[test]
fn methods_bodies_and_versions() {
    each_backend(exporter, |server| {
        let mut s = connect(server);
        s.write_all(b"HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut head = vec![0u8; 4096];
        let n = s.read(&mut head).unwrap();
        let head = String::from_utf8_lossy(&head[..n]).into_owned();
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
            "{head:?}"
        );
        assert!(head.contains("Content-Length: ") && !head.contains("Content-Length: 0\r\n"));
        assert!(head.contains("\r\nDate: ") && head.contains(" GMT\r\n"));
        s.write_all(b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        let (status, head, _) = response(&mut s);
        assert_eq!(status, 405);
        assert!(head.contains("\r\nAllow: GET, HEAD\r\n"));
        // A body is read whole, also when it comes in pieces, and given to the route.
        s.write_all(b"PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 60000\r\n\r\n")
            .unwrap();
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(5));
            s.write_all(&[b'z'; 10_000]).unwrap();
        }
        let (status, _, body) = response(&mut s);
        assert_eq!((status, body), (200, b"PUT HTTP/1.1 None 60000".to_vec()));
        // `Expect: 100-continue`: no interim answer, the final one once the body came.
        s.write_all(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b"abc").unwrap();
        let (status, _, body) = response(&mut s);
        assert_eq!((status, body), (200, b"POST HTTP/1.1 None 3".to_vec()));
        // HTTP/1.0 closes unless asked otherwise.
        let answer = exchange(server, b"GET /echo HTTP/1.0\r\n\r\n");
        assert!(
            answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("GET HTTP/1.0 None 0"),
            "{answer}"
        );
        // The format follows Accept.
        let om = exchange(server, b"GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text\r\nConnection: close\r\n\r\n");
        assert!(
            om.contains("application/openmetrics-text") && om.ends_with("# EOF\n"),
            "{om}"
        );
        let panicked = exchange(
            server,
            b"GET /panic HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert!(panicked.starts_with("HTTP/1.1 500 "), "{panicked}");
        // The worker that caught the panic goes on serving.
        for _ in 0..20 {
            assert!(exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200"));
        }
    });
}

#[test]
fn a_slow_head_is_cut_off_on_time_and_idle_connections_after_their_timeout() {
    let make = || {
        exporter()
            .request_timeout(Duration::from_millis(400))
            .idle_timeout(Duration::from_millis(1200))
    };
    each_backend(make, |server| {
        // One byte every 50 ms: the head would take far longer than 400 ms.
        let mut slow = connect(server);
        let mut idle = connect(server);
        let started = Instant::now();
        let request = get("/healthz");
        let mut cut = None;
        for byte in request.iter().cycle().take(200) {
            if slow.write_all(&[*byte]).is_err() {
                cut = Some(started.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            if started.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        let mut answer = String::new();
        let _ = slow.read_to_string(&mut answer);
        let cut = cut.unwrap_or(started.elapsed());
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
        assert!(
            cut >= Duration::from_millis(400) && cut < Duration::from_millis(1500),
            "cut after {cut:?}"
        );
        // The idle connection (no byte sent) outlived the request timeout, and
        // is closed after its own.
        let mut end = [0u8; 1];
        assert_eq!(idle.read(&mut end).unwrap(), 0);
        let idle_for = started.elapsed();
        assert!(
            idle_for >= Duration::from_millis(1200) && idle_for < Duration::from_millis(2500),
            "{idle_for:?}"
        );
        assert!(server.timed_out() >= 2);
    });
}

#[test]
fn a_client_that_never_reads_is_dropped_after_the_write_timeout_and_holds_no_worker() {
    let make = || {
        exporter()
            .workers(1)
            .write_timeout(Duration::from_millis(300))
    };
    each_backend(make, |server| {
        let mut hog = connect(server);
        // Many answers of 1 MiB, never read: the socket fills, the answer waits.
        for _ in 0..8 {
            hog.write_all(&get("/big")).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        // The one worker is free for others meanwhile.
        let started = Instant::now();
        let answer = exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(
            server.connections(),
            0,
            "the hog was dropped, the probe closed"
        );
        assert!(server.timed_out() >= 1);
    });
}

#[test]
fn past_the_cap_the_oldest_idle_connection_makes_room_else_503() {
    let make = || exporter().max_connections(3);
    each_backend(make, |server| {
        let mut oldest = connect(server);
        std::thread::sleep(Duration::from_millis(20));
        let mut second = connect(server);
        let mut third = connect(server);
        std::thread::sleep(Duration::from_millis(50));
        // A fourth: the oldest idle one is closed for it, and it is served.
        let mut fourth = connect(server);
        fourth.write_all(&get("/healthz")).unwrap();
        assert_eq!(response(&mut fourth).0, 200);
        let mut end = [0u8; 1];
        assert_eq!(
            oldest.read(&mut end).unwrap(),
            0,
            "the oldest idle connection was closed"
        );
        // None idle: every connection is in the middle of a request.
        for s in [&mut second, &mut third, &mut fourth] {
            s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        let answer = exchange(server, &get("/healthz"));
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("\r\nRetry-After: 1\r\n"), "{answer}");
        assert_eq!(server.turned_away(), 1);
        // The waiting requests are still served when they complete.
        second.write_all(b"Host: a\r\n\r\n").unwrap();
        assert_eq!(response(&mut second).0, 404);
    });
}

#[test]
fn shutdown_closes_idle_connections_at_once_and_answers_what_was_received() {
    each_backend(exporter, |server| {
        let mut idle = connect(server);
        idle.write_all(&get("/healthz")).unwrap();
        assert_eq!(response(&mut idle).0, 200);
        let mut busy = connect(server);
        busy.write_all(&get("/slow")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        let stopped = server.shutdown(Duration::from_secs(1));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(stopped.abandoned_workers, 0);
        let (status, head, body) = response(&mut busy);
        assert_eq!((status, body), (200, b"slow".to_vec()));
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        let mut end = [0u8; 1];
        assert_eq!(
            idle.read(&mut end).unwrap(),
            0,
            "idle connections are closed"
        );
        assert!(
            TcpStream::connect(server.local_addr()).is_err(),
            "the listener is closed"
        );
    });
}

#[test]
fn ipv6_works_too() {
    let Ok(server) = exporter().serve("[::1]:0") else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    assert!(server.local_addr().is_ipv6());
    let answer = exchange(
        &server,
        b"GET /healthz HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

#[test]
fn partial_bodies_together_hold_no_more_than_the_buffer_limit() {
    let make = || exporter().buffer_limit(256 * 1024);
    each_backend(make, |server| {
        // Twenty clients each send a head and 40 KB of a 60 KB body, and wait.
        let clients: Vec<TcpStream> = (0..20)
            .map(|_| {
                let mut s = connect(server);
                s.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 60000\r\n\r\n")
                    .unwrap();
                s.write_all(&[b'b'; 40_000]).unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            server.buffered() <= 256 * 1024,
            "{} bytes held",
            server.buffered()
        );
        // Those that fit are still served when their body is complete.
        let mut served = 0;
        for mut s in clients {
            if s.write_all(&[b'b'; 20_000]).is_ok() {
                let mut answer = [0u8; 15];
                if s.read_exact(&mut answer).is_ok() {
                    assert_eq!(&answer, b"HTTP/1.1 200 OK");
                    served += 1;
                }
            }
        }
        assert!((2..20).contains(&served), "{served} of 20 served");
        assert_eq!(server.buffered(), 0);
    });
}

#[test]
fn routes_that_block_every_taking_worker_do_not_hold_up_the_others() {
    // As many /slow requests as there are workers taking events, and more: each
    // blocks 300 ms; a spare takes events in their place, so a fast request
    // sent after them is answered long before they are.
    each_backend(
        || exporter().workers(16),
        |server| {
            let slow: Vec<_> = (0..6)
                .map(|_| {
                    let mut s = connect(server);
                    s.write_all(get("/slow").as_slice()).unwrap();
                    s
                })
                .collect();
            std::thread::sleep(Duration::from_millis(50));
            let started = Instant::now();
            let mut fast = connect(server);
            fast.write_all(&get("/echo")).unwrap();
            assert_eq!(response(&mut fast).0, 200);
            let took = started.elapsed();
            assert!(took < Duration::from_millis(150), "took {took:?}");
            // And the six ran at once, not one after the other.
            for mut s in slow {
                assert_eq!(response(&mut s).0, 200);
            }
            assert!(started.elapsed() < Duration::from_millis(600));
        },
    );
}
