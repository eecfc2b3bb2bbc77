//! A real Prometheus server (Debian's 2.42) scrapes a promlite exporter on
//! 127.0.0.1 and its HTTP API shows what it stored. `#[ignore]`d in a plain
//! `cargo test` (it needs `prometheus` on the PATH); `scripts/test.sh` runs it.

mod common;

use promlite::{Exporter, Registry};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Prometheus process scraping one target every second, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    fn start(name: &str, target: &str, flags: &[&str]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("promlite-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        // A free port: bound, read, let go.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (Debian package prometheus)");
        Prometheus { child, port, dir }
    }

    /// GET `path` from the HTTP API; the body, if the answer came.
    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    }

    /// Polls `path` until `done` accepts its body, for at most 30 s.
    fn wait_for(&self, path: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(body) = self.get(path) {
                if done(&body) {
                    return body;
                }
                last = Some(body);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("{path}: not there within 30 s; last answer {last:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
#[ignore = "needs prometheus (Debian package prometheus); scripts/test.sh runs it"]
fn prometheus_stores_the_exemplars_exactly() {
    let registry = Arc::new(Registry::new());
    let orders = registry.counter("orders_total", "Orders.").unwrap();
    orders
        .inc_by_with_exemplar(2.0, &[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")])
        .unwrap();
    let wait = registry
        .histogram("wait_seconds", "Waits.", &[0.1, 1.0])
        .unwrap();
    wait.observe(0.05);
    wait.observe_with_exemplar(
        0.25,
        &[("trace_id", "abc"), ("span_id", "00f067aa0ba902b7")],
    )
    .unwrap();
    let server = Exporter::new(Arc::clone(&registry))
        .serve("127.0.0.1:0")
        .unwrap();
    let prometheus = Prometheus::start(
        "exemplars",
        &server.local_addr().to_string(),
        &["--enable-feature=exemplar-storage"],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let query = |q: &str| {
        format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            common::percent_encode(q),
            now - 600,
            now + 600
        )
    };
    let counter = prometheus.wait_for(&query("orders_total"), |b| b.contains("\"exemplars\""));
    assert!(
        counter.contains(
            "\"exemplars\":[{\"labels\":{\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"},\"value\":\"2\""
        ),
        "{counter}"
    );
    let bucket = prometheus.wait_for(&query("wait_seconds_bucket"), |b| {
        b.contains("\"exemplars\"")
    });
    assert!(
        bucket.contains("\"le\":\"1.0\""),
        "the exemplar sits on the le=1.0 bucket: {bucket}"
    );
    assert!(
        bucket.contains(
            "\"exemplars\":[{\"labels\":{\"span_id\":\"00f067aa0ba902b7\",\"trace_id\":\"abc\"},\"value\":\"0.25\""
        ),
        "{bucket}"
    );
    server.shutdown(Duration::from_secs(1));
}
