//! The benchmark's peer for slpocapp: the same two routes on axum 0.8 (tokio,
//! hyper) with the metrics in prometheus-client, as a Rust service owner would
//! write it without promlite.
//!
//!   cargo run --release --manifest-path bench/Cargo.toml --example axum_app -- PORT
//!
//! `GET /` answers the seed's JSON and is counted in
//! `slpocapp_request_operations_total{namespace,pod}` and timed in
//! `slpocapp_request_duration_seconds` (buckets 1, 2, 5, 6, 10); `GET /metrics`
//! encodes the registry. With `PROCESS_METRICS=1` the scrape also carries the
//! six process metrics slpocapp exposes (CPU seconds, resident and virtual
//! memory, open and maximum descriptors, start time), read from `/proc` at each
//! scrape as slpocapp does, so that the two `/metrics` rows compare like with like.
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodLabels {
    namespace: String,
    pod: String,
}

struct App {
    pod: String,
    registry: Registry,
    requests: Counter,
    duration: Histogram,
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000);
    let pod = std::env::var("POD_NAME").unwrap_or_else(|_| "axum".to_owned());
    let labels = PodLabels {
        namespace: "default".to_owned(),
        pod: pod.clone(),
    };
    let mut registry = Registry::default();
    let requests = Family::<PodLabels, Counter>::default();
    let durations = Family::<PodLabels, Histogram>::new_with_constructor(|| {
        Histogram::new([1.0, 2.0, 5.0, 6.0, 10.0])
    });
    registry.register(
        "slpocapp_request_operations",
        "The total number of processed requests",
        requests.clone(),
    );
    registry.register(
        "slpocapp_request_duration_seconds",
        "Histogram for the duration in seconds",
        durations.clone(),
    );
    if std::env::var("PROCESS_METRICS").is_ok_and(|v| v == "1") {
        registry.register_collector(Box::new(ProcessMetrics::new()));
    }
    // One label set per process: look it up once, as slpocapp does.
    let app = Arc::new(App {
        pod,
        requests: requests.get_or_create(&labels).clone(),
        duration: durations.get_or_create(&labels).clone(),
        registry,
    });
    let router = Router::new()
        .route("/", get(root))
        .route("/metrics", get(metrics))
        .with_state(app);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("cannot listen");
        eprintln!("axum_app listening on {}", listener.local_addr().unwrap());
        axum::serve(listener, router).await.expect("serve");
    });
}

async fn root(State(app): State<Arc<App>>) -> impl IntoResponse {
    let started = Instant::now();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let body = format!(
        "{{\"Respuesta de:\": \"{} processing time: {}.{:06}\"}}",
        app.pod,
        now.as_secs(),
        now.subsec_micros()
    );
    app.requests.inc();
    app.duration.observe(started.elapsed().as_secs_f64());
    ([(CONTENT_TYPE, "application/json")], body)
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let mut body = String::with_capacity(4096);
    prometheus_client::encoding::text::encode(&mut body, &app.registry).expect("encode");
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

/// The process metrics slpocapp's registry carries, read from `/proc/self` at
/// each scrape.
#[derive(Debug)]
struct ProcessMetrics {
    ticks_per_second: f64,
    page_size: f64,
    start_time: f64,
}

impl ProcessMetrics {
    fn new() -> ProcessMetrics {
        // Linux's USER_HZ and page size on x86_64; this peer runs only there.
        let ticks_per_second = 100.0;
        let page_size = 4096.0;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        let start_ticks = stat_fields()
            .and_then(|f| f.get(19)?.parse::<f64>().ok())
            .unwrap_or(0.0);
        ProcessMetrics {
            ticks_per_second,
            page_size,
            start_time: boot + start_ticks / ticks_per_second,
        }
    }
}

/// The fields of `/proc/self/stat` after the command name.
fn stat_fields() -> Option<Vec<String>> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

impl Collector for ProcessMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let fields = stat_fields().unwrap_or_default();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        let cpu = (field(11).unwrap_or(0.0) + field(12).unwrap_or(0.0)) / self.ticks_per_second;
        let virtual_bytes = field(20).unwrap_or(0.0);
        let resident_bytes = field(21).unwrap_or(0.0) * self.page_size;
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as f64)
            .unwrap_or(0.0);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Max open files"))?
                    .split_whitespace()
                    .nth(3)?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);

        let counter = ConstCounter::new(cpu);
        counter.encode(encoder.encode_descriptor(
            "process_cpu",
            "CPU time used by the process, user and system together, in seconds.",
            Some(&Unit::Seconds),
            counter.metric_type(),
        )?)?;
        for (name, help, unit, value) in [
            (
                "process_resident_memory",
                "Bytes of memory the process has resident (RSS).",
                Some(Unit::Bytes),
                resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Bytes of virtual address space the process uses.",
                Some(Unit::Bytes),
                virtual_bytes,
            ),
            (
                "process_open_fds",
                "File descriptors the process has open.",
                None,
                open_fds,
            ),
            (
                "process_max_fds",
                "The most file descriptors the process may open (its soft limit).",
                None,
                max_fds,
            ),
            (
                "process_start_time",
                "When the process started, in seconds since the Unix epoch.",
                Some(Unit::Seconds),
                self.start_time,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
