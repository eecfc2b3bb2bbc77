//! A real Prometheus (2.42, `--enable-feature=native-histograms`) scrapes a
//! test exporter over the protobuf format and stores its native histograms:
//! `histogram_count` is the number of observations, `histogram_sum` their sum,
//! and `histogram_quantile(0.5, rate(...[1m]))` is within the schema's relative
//! error of the true median of a known sample. Classic histograms are still
//! stored as classic series, and so are the classic buckets of a histogram
//! that has both, from a job that scrapes the text format. slpocapp with
//! `--native-histogram` is scraped too, and the dashboard's native panel query
//! answers. With `exemplar-storage` on as well, the exemplars of a counter and
//! of a classic bucket come through the protobuf format.
//!
//! Needs `prometheus` (Debian package `prometheus`; `PROMETHEUS` names another
//! binary), so it is `#[ignore]`d in a plain `cargo test`; the project's test
//! command runs it. Everything listens on 127.0.0.1 and every wait is bounded.

mod common;

use common::Slpocapp;
use common::http::Client;
use promlite::{Answer, Exporter, Format, NativeConfig, Registry};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prometheus in a scratch directory, killed (and its directory removed) when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Prometheus {
    fn start(name: &str, config: &str) -> Prometheus {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        // A free port: bound, read, let go (Prometheus binds it a moment later).
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let binary = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(&binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--enable-feature=native-histograms,exemplar-storage")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {binary}: {e} (Debian package prometheus)"));
        let mut prometheus = Prometheus { child, addr, dir };
        prometheus.wait_for("Prometheus to be ready", Duration::from_secs(30), |p| {
            p.get("/-/ready").is_some_and(|r| r.status == 200)
        });
        prometheus
    }

    fn get(&self, path: &str) -> Option<common::http::Response> {
        Client::new(self.addr, Duration::from_secs(5))
            .get(path)
            .ok()
    }

    /// Polls `done` every 200 ms until it holds, for at most `limit`.
    fn wait_for(&mut self, what: &str, limit: Duration, mut done: impl FnMut(&Prometheus) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            let exited = self.child.try_wait().unwrap();
            assert!(
                Instant::now() < deadline && exited.is_none(),
                "waited {limit:?} for {what} ({exited:?}); Prometheus's log:\n{}",
                std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The value of an instant query that returns one sample (None if none).
    fn query(&self, promql: &str) -> Option<f64> {
        let response = self.get(&format!(
            "/api/v1/query?query={}",
            common::percent_encode(promql)
        ))?;
        let body = response.text();
        assert_eq!(response.status, 200, "{promql}: {body}");
        one_value(&body)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The value of the single sample of a query's JSON answer (`"value":[t,"v"]`).
fn one_value(body: &str) -> Option<f64> {
    let values: Vec<&str> = body
        .match_indices("\"value\":[")
        .map(|(i, _)| &body[i..])
        .collect();
    assert!(values.len() <= 1, "more than one sample: {body}");
    let rest = values.first()?;
    let v = rest.split('"').nth(3)?;
    Some(match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap(),
    })
}

/// `n` values spread evenly in log scale over `[lo, hi]` (a known distribution),
/// in a shuffled order.
fn log_uniform(n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut next = common::xorshift(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|_| {
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            lo * (hi / lo).powf(u)
        })
        .collect()
}

#[test]
#[ignore = "needs prometheus 2.42 (Debian package prometheus); the test command runs it"]
fn prometheus_stores_native_histograms_scraped_over_protobuf() {
    let registry = Arc::new(Registry::new());
    let native = registry
        .native_histogram_family(
            "test_latency_seconds",
            "Native only, schema 3.",
            &["path"],
            &NativeConfig::default(),
        )
        .unwrap()
        .with_labels(&["/"])
        .unwrap();
    let both = registry
        .native_histogram(
            "test_both_seconds",
            "Native and classic buckets.",
            &NativeConfig {
                classic_buckets: vec![0.01, 0.1, 1.0],
                ..NativeConfig::default()
            },
        )
        .unwrap();
    let classic = registry
        .histogram("test_classic_seconds", "Classic only.", &[0.01, 0.1, 1.0])
        .unwrap();
    let orders = registry.counter("test_orders_total", "Orders.").unwrap();
    let text = Arc::clone(&registry);
    let server = Exporter::new(Arc::clone(&registry))
        .routes(move |request, body| {
            // The text format whatever is asked for: a second job's view.
            (request.path() == "/text").then(|| {
                promlite::encode(&text, Format::Text, body);
                Answer::ok(Format::Text.content_type())
            })
        })
        .serve("127.0.0.1:0")
        .unwrap();
    let target = server.local_addr();
    let app = Slpocapp::start(&["--native-histogram"]);
    let config = [
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "scrape_configs:",
        "  - job_name: native",
        "    static_configs: [{targets: ['TARGET']}]",
        "  - job_name: text",
        "    metrics_path: /text",
        "    static_configs: [{targets: ['TARGET']}]",
        "  - job_name: slpocapp",
        "    static_configs: [{targets: ['APP']}]",
        "",
    ]
    .join("\n")
    .replace("TARGET", &target.to_string())
    .replace("APP", &app.addr.to_string());
    let mut prometheus = Prometheus::start("prometheus-native", &config);

    // A first scrape of the empty histograms, so that rate() sees them grow.
    let count = "histogram_count(test_latency_seconds{job=\"native\"})";
    prometheus.wait_for("a first scrape", Duration::from_secs(20), |p| {
        p.query(count) == Some(0.0)
    });
    let app_count = "histogram_count(slpocapp_request_duration_seconds{job=\"slpocapp\"})";
    prometheus.wait_for("a first scrape of slpocapp", Duration::from_secs(20), |p| {
        p.query(app_count) == Some(0.0)
    });
    let requests = 7;
    for _ in 0..requests {
        assert_eq!(app.client().get("/").unwrap().status, 200);
    }
    let observations = log_uniform(20_000, 1e-3, 1.0);
    for &v in &observations {
        native.observe(v);
        both.observe(v);
        classic.observe(v);
    }
    classic
        .observe_with_exemplar(0.05, &[("trace_id", "4bf92f3577b34da6")])
        .unwrap();
    orders
        .inc_by_with_exemplar(2.0, &[("trace_id", "a\"quoted\"id")])
        .unwrap();
    let n = observations.len() as f64;
    let sum = observations.iter().fold(0.0, |s, v| s + v);
    let mut sorted = observations.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];

    prometheus.wait_for("the observations", Duration::from_secs(20), |p| {
        p.query(count) == Some(n)
    });
    let stored_sum = prometheus
        .query("histogram_sum(test_latency_seconds{job=\"native\"})")
        .unwrap();
    assert!(
        (stored_sum - sum).abs() <= sum * 1e-12,
        "histogram_sum {stored_sum}, the sum {sum}"
    );
    let quantile = prometheus
        .query("histogram_quantile(0.5, rate(test_latency_seconds{job=\"native\"}[1m]))")
        .unwrap();
    // Schema 3: buckets 2^(1/8) apart; an estimate inside the true median's
    // bucket is off by at most that factor less one.
    let error = 2f64.powf(1.0 / 8.0) - 1.0;
    assert!(
        (quantile - median).abs() <= median * error,
        "histogram_quantile(0.5) {quantile}, the true median {median} (relative error {error})"
    );
    println!(
        "histogram_count {n}, histogram_sum {stored_sum} (sum {sum}), \
         histogram_quantile(0.5) {quantile} (true median {median}, off by {:.3}%, bound {:.3}%)",
        (quantile / median - 1.0) * 100.0,
        error * 100.0
    );
    let both_count = prometheus.query("histogram_count(test_both_seconds{job=\"native\"})");
    assert_eq!(
        both_count,
        Some(n),
        "the histogram with both kinds is native over protobuf"
    );
    // Classic series: the classic-only histogram over protobuf, and the classic
    // buckets of the one with both from the job that scrapes the text format.
    assert_eq!(
        prometheus.query("test_classic_seconds_bucket{job=\"native\",le=\"+Inf\"}"),
        Some(n + 1.0)
    );
    let below = observations.iter().filter(|&&v| v <= 0.1).count() as f64;
    assert_eq!(
        prometheus.query("test_classic_seconds_bucket{job=\"native\",le=\"0.1\"}"),
        Some(below + 1.0)
    );
    // The exemplars, as Prometheus's exemplar API returns them.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exemplars = |p: &Prometheus, q: &str| {
        let path = format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            common::percent_encode(q),
            now - 600,
            now + 600
        );
        p.get(&path).map(|r| r.text()).unwrap_or_default()
    };
    let mut bucket = String::new();
    let mut counter = String::new();
    prometheus.wait_for("the exemplars", Duration::from_secs(20), |p| {
        bucket = exemplars(p, "test_classic_seconds_bucket{job=\"native\"}");
        counter = exemplars(p, "test_orders_total{job=\"native\"}");
        bucket.contains("\"exemplars\":[") && counter.contains("\"exemplars\":[")
    });
    assert!(
        bucket.contains("\"labels\":{\"trace_id\":\"4bf92f3577b34da6\"},\"value\":\"0.05\""),
        "{bucket}"
    );
    assert!(bucket.contains("\"le\":\"0.1\""), "{bucket}");
    assert!(
        counter.contains("\"labels\":{\"trace_id\":\"a\\\"quoted\\\"id\"},\"value\":\"2\""),
        "{counter}"
    );
    prometheus.wait_for("the text job", Duration::from_secs(20), |p| {
        p.query("test_both_seconds_bucket{job=\"text\",le=\"0.1\"}") == Some(below)
    });
    assert_eq!(
        prometheus.query("test_both_seconds_count{job=\"text\"}"),
        Some(n)
    );

    // slpocapp: the requests counted in its native histogram, and the
    // dashboard's panel on it (manifests/grafana/slpocapp-dashboard.json).
    prometheus.wait_for("slpocapp's requests", Duration::from_secs(20), |p| {
        p.query(app_count) == Some(f64::from(requests))
    });
    let panel = "histogram_quantile(0.9, sum(rate(slpocapp_request_duration_seconds{namespace=\"test-ns\"}[5m])))";
    let p90 = prometheus.query(panel).unwrap();
    assert!(p90 > 0.0 && p90 < 1.0, "the dashboard's native p90: {p90}");
    println!("slpocapp: {requests} requests, the dashboard's native p90 {p90} s");
    assert_eq!(
        prometheus.query("slpocapp_request_operations_total{job=\"slpocapp\"}"),
        Some(f64::from(requests))
    );
    server.shutdown(Duration::from_secs(1));
}
