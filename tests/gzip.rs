//! gzip, end to end: the exporter's `/metrics` over a socket (decompressed by
//! `flate2`), the compressor's output decompressed by Python's `gzip`, and a
//! real Prometheus scraping a gzipping exporter.
//!
//! The Prometheus test needs the `prometheus` binary (2.42, as Debian ships it;
//! `PROMLITE_PROMETHEUS` names another), so it is `#[ignore]`d in a plain
//! `cargo test`; `scripts/test.sh` installs it and runs the ignored tests too.

mod common;

use promlite::{Exporter, Format, Registry};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A registry whose scrape is well over 1 KiB: `series` counters with values 0..series.
fn registry(series: usize) -> Arc<Registry> {
    let registry = Arc::new(Registry::new());
    let family = registry
        .counter_family(
            "gzip_test_requests_total",
            "Requests, to be scraped gzipped.",
            &["namespace", "pod"],
        )
        .unwrap();
    for i in 0..series {
        family
            .with_labels(&["default", &format!("app-7d9f8c6b5-{i:05}")])
            .unwrap()
            .inc_by(i as f64)
            .unwrap();
    }
    registry
}

fn encode(registry: &Registry, format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    promlite::encode(registry, format, &mut out);
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip stream flate2 reads");
    out
}

/// Sends one request (with `Connection: close`) and returns the head and the body.
fn exchange(addr: SocketAddr, method: &str, path: &str, fields: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\n{fields}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head")
        + 4;
    let head = String::from_utf8(answer[..split].to_vec()).unwrap();
    (head, answer[split..].to_vec())
}

fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn metrics_are_gzipped_when_the_scrape_takes_gzip() {
    let registry = registry(500);
    let text = encode(&registry, Format::Text);
    let openmetrics = encode(&registry, Format::OpenMetrics);
    assert!(text.len() > 20_000);
    let server = Exporter::new(Arc::clone(&registry))
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = server.local_addr();

    // What Prometheus sends, and its variants: a gzip body, exactly the scrape.
    for fields in [
        "Accept-Encoding: gzip\r\n",
        "accept-encoding: GZIP\r\n",
        "Accept-Encoding: deflate, gzip;q=0.8, br\r\n",
        "Accept-Encoding: br\r\nAccept-Encoding: gzip\r\n",
        "Accept-Encoding: *\r\n",
    ] {
        let (head, body) = exchange(addr, "GET", "/metrics", fields);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert_eq!(field(&head, "content-encoding"), Some("gzip"), "{fields:?}");
        assert_eq!(field(&head, "vary"), Some("Accept-Encoding"));
        assert_eq!(
            field(&head, "content-length"),
            Some(&*body.len().to_string())
        );
        assert!(body.len() < text.len() / 6, "{} bytes", body.len());
        assert!(gunzip(&body) == text, "{fields:?}: the scrape, exactly");
    }
    let gzipped = server.gzipped();
    assert_eq!(gzipped, 5);

    // HEAD: the same head as GET, with the compressed length, and no body.
    let (get_head, get_body) = exchange(addr, "GET", "/metrics", "Accept-Encoding: gzip\r\n");
    let (head, body) = exchange(addr, "HEAD", "/metrics", "Accept-Encoding: gzip\r\n");
    assert!(body.is_empty());
    for name in ["content-type", "content-length", "content-encoding", "vary"] {
        assert_eq!(field(&head, name), field(&get_head, name), "{name}");
    }
    assert_eq!(
        field(&head, "content-length"),
        Some(&*get_body.len().to_string())
    );
    assert_eq!(server.gzipped(), gzipped + 2);

    // OpenMetrics, negotiated as Prometheus does, gzipped too.
    let (head, body) = exchange(
        addr,
        "GET",
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nAccept-Encoding: gzip\r\n",
    );
    assert!(
        field(&head, "content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert_eq!(field(&head, "content-encoding"), Some("gzip"));
    let back = gunzip(&body);
    // Only the _created times may differ between two encodings.
    let strip = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| !l.contains("_created"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(strip(&back), strip(&openmetrics));
    assert!(back.ends_with(b"# EOF\n"));

    // Not asked for, refused, or only `identity`: plain, still with Vary.
    for fields in [
        "",
        "Accept-Encoding: gzip;q=0\r\n",
        "Accept-Encoding: identity\r\n",
        "Accept-Encoding: br, deflate\r\n",
        "Accept-Encoding: *;q=0\r\n",
        "Accept-Encoding: \r\n",
    ] {
        let (head, body) = exchange(addr, "GET", "/metrics", fields);
        assert_eq!(field(&head, "content-encoding"), None, "{fields:?}");
        assert_eq!(field(&head, "vary"), Some("Accept-Encoding"));
        assert!(body == text, "{fields:?}: plain");
    }

    // Other paths are never gzipped, nor do they vary.
    let (head, body) = exchange(addr, "GET", "/healthz", "Accept-Encoding: gzip\r\n");
    assert_eq!(
        (field(&head, "content-encoding"), field(&head, "vary")),
        (None, None)
    );
    assert_eq!(body, b"ok\n");
    let before = server.gzipped();
    server.shutdown(Duration::from_secs(1));
    assert_eq!(before, gzipped + 3);
}

#[test]
fn small_scrapes_go_out_plain() {
    let registry = registry(3);
    let text = encode(&registry, Format::Text);
    assert!(text.len() <= 1024, "{} bytes", text.len());
    let server = Exporter::new(Arc::clone(&registry))
        .serve("127.0.0.1:0")
        .unwrap();
    let (head, body) = exchange(
        server.local_addr(),
        "GET",
        "/metrics",
        "Accept-Encoding: gzip\r\n",
    );
    assert_eq!(field(&head, "content-encoding"), None);
    assert_eq!(field(&head, "vary"), Some("Accept-Encoding"));
    assert_eq!(body, text);
    assert_eq!(server.gzipped(), 0);
    server.shutdown(Duration::from_secs(1));
}

/// A directory of its own under the system's temporary directory, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("promlite-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn python_gzip_decompresses_what_promlite_compresses() {
    let dir = TempDir::new("gzip-python");
    let mut next = common::xorshift(0x9E37_79B9_7F4A_7C15);
    let mut random = |n: usize| -> Vec<u8> { (0..n).map(|_| next() as u8).collect() };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one", b"x".to_vec()),
        ("all_bytes", (0..=255).collect()),
        ("random", random(200_000)),
        ("run", vec![b'a'; 300_000]),
        ("text", encode(&registry(3000), Format::Text)),
        ("openmetrics", encode(&registry(3000), Format::OpenMetrics)),
    ];
    let mut gz = promlite::Gzip::new();
    let mut paths = Vec::new();
    for (name, input) in &cases {
        let mut zipped = Vec::new();
        gz.compress(input, &mut zipped);
        let path = dir.0.join(format!("{name}.gz"));
        std::fs::write(&path, &zipped).unwrap();
        paths.push(path);
    }
    // Each file's decompression, written beside it; any error fails the script.
    let script = "import gzip, sys\nfor p in sys.argv[1:]:\n    open(p[:-3] + '.out', 'wb').write(gzip.decompress(open(p, 'rb').read()))\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&paths)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for ((name, input), path) in cases.iter().zip(&paths) {
        let back = std::fs::read(path.with_extension("out")).unwrap();
        assert!(&back == input, "{name}: Python's gzip gives back the input");
    }
}

// ---------------------------------------------------------------------------
// A real Prometheus.

/// A child process killed (and waited for) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of a GET to Prometheus's HTTP API.
fn api(port: u16, path_and_query: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no head")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(head.lines().next().unwrap_or("").to_owned());
    }
    Ok(body.to_owned())
}

/// The value of an instant query that returns one sample, as Prometheus writes it.
fn query(port: u16, promql: &str) -> Result<String, String> {
    let encoded = common::percent_encode(promql);
    let body = api(port, &format!("/api/v1/query?query={encoded}"))?;
    // {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},"value":[1700000000.123,"42"]}]}}
    let after = body
        .split_once("\"value\":[")
        .ok_or_else(|| format!("no sample yet: {body}"))?
        .1;
    let value = after
        .split_once(",\"")
        .and_then(|(_, v)| v.split_once('"'))
        .ok_or_else(|| format!("unexpected answer: {body}"))?
        .0;
    Ok(value.to_owned())
}

fn prometheus_binary() -> String {
    std::env::var("PROMLITE_PROMETHEUS").unwrap_or_else(|_| "prometheus".into())
}

fn start_prometheus(dir: &Path, target: SocketAddr, port: u16) -> Killed {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: gzip\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(prometheus_binary())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", prometheus_binary()));
    Killed(child)
}

#[test]
#[ignore = "needs Prometheus (scripts/test.sh installs it and runs this)"]
fn prometheus_scrapes_gzip_and_stores_every_series() {
    const SERIES: usize = 400;
    let registry = registry(SERIES);
    let server = Exporter::new(Arc::clone(&registry))
        .serve("127.0.0.1:0")
        .unwrap();
    let dir = TempDir::new("gzip-prometheus");
    let port = free_port();
    let _prometheus = start_prometheus(&dir.0, server.local_addr(), port);

    // Bounded: Prometheus starts, scrapes every second, and must have stored
    // every series, each with its value, within 60 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    let checks = [
        ("up{job=\"gzip\"}".to_string(), "1".to_string()),
        (
            "count(gzip_test_requests_total{job=\"gzip\"})".to_string(),
            SERIES.to_string(),
        ),
        (
            "gzip_test_requests_total{pod=\"app-7d9f8c6b5-00123\"}".to_string(),
            "123".to_string(),
        ),
        (
            "sum(gzip_test_requests_total{namespace=\"default\"})".to_string(),
            (SERIES * (SERIES - 1) / 2).to_string(),
        ),
    ];
    let mut passed = 0;
    while passed < checks.len() {
        let (promql, want) = &checks[passed];
        let last = match query(port, promql) {
            Ok(value) if value == *want => {
                passed += 1;
                continue;
            }
            Ok(value) => format!("{promql} = {value}, want {want}"),
            Err(e) => format!("{promql}: {e}"),
        };
        assert!(
            Instant::now() < deadline,
            "timed out; last: {last}; log: {}",
            std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // A few more scrapes (the workers' compressors warm), each one up.
    while server.answers() < 4 {
        assert!(Instant::now() < deadline, "Prometheus stopped scraping");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        query(port, "min_over_time(up{job=\"gzip\"}[1m])").as_deref(),
        Ok("1")
    );
    // Prometheus sent `Accept-Encoding: gzip`, and every answer it got was gzip
    // (it is the only client of this exporter).
    let (answers, gzipped) = (server.answers(), server.gzipped());
    assert!(gzipped >= 1, "no gzip answer");
    assert_eq!(gzipped, answers, "every scrape gzipped");
    eprintln!("Prometheus stored all {SERIES} series from {gzipped} gzipped scrapes");
    server.shutdown(Duration::from_secs(1));
}
