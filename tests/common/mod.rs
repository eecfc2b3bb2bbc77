//! Registries shared by the integration tests: the seed's metrics, and hostile input.
#![allow(dead_code)]

use promlite::{DEFAULT_BUCKETS, Format, Registry};

/// A deterministic stream of 64-bit words (xorshift64) from `seed`, not 0.
pub fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// `s` percent-encoded for a URL query: all but RFC 3986's unreserved bytes.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Label pairs as the parsers give them back: owned.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The seed tutorial's two metrics after one request, as its example shows them
/// (with `_created` samples, as the seed's prometheus-client writes them).
pub fn seed_registry() -> Registry {
    let registry = Registry::new();
    registry.set_created_samples(true);
    let requests = registry
        .counter_family(
            "slpocapp_request_operations_total",
            "The total number of processed requests",
            &["namespace", "pod"],
        )
        .unwrap();
    let duration = registry
        .histogram_family(
            "slpocapp_request_duration_seconds",
            "Histogram for the duration in seconds.",
            &["namespace", "pod"],
            &[1.0, 2.0, 5.0, 6.0, 10.0],
        )
        .unwrap();
    requests
        .with_labels(&["default", "laptop-jaime"])
        .unwrap()
        .inc();
    duration
        .with_labels(&["default", "laptop-jaime"])
        .unwrap()
        .observe(0.0011820793151855469);
    registry
}

/// Label values that break careless encoders.
pub const HOSTILE_VALUES: &[&str] = &[
    "",
    "\"quoted\"",
    "back\\slash",
    "new\nline",
    "ends with backslash\\",
    "\\n is not a newline",
    "ñandú 🦀 日本",
    "}{,=\" # HELP",
    "tab\there\rcarriage",
];

/// Gauge values at the edges of f64, by case name.
pub const SPECIAL_VALUES: &[(&str, f64)] = &[
    ("pos_inf", f64::INFINITY),
    ("neg_inf", f64::NEG_INFINITY),
    ("nan", f64::NAN),
    ("huge", 1e300),
    ("tiny", 1e-300),
    ("negative_zero", -0.0),
    ("million", 1e6),
    ("third", 1.0 / 3.0),
    ("negative", -123.456),
];

/// HELP text with everything that needs escaping in one format or the other.
pub const HOSTILE_HELP: &str = "Help with a back\\slash, a \"quote\",\na newline and \\n.";

/// The seed's metrics plus hostile label values and HELP text, special values,
/// every metric type, a collector and a counter named without `_total`.
pub fn hostile_registry() -> Registry {
    let registry = seed_registry();
    let hostile = registry
        .counter_family("hostile_labels_total", HOSTILE_HELP, &["value", "other"])
        .unwrap();
    for (i, v) in HOSTILE_VALUES.iter().enumerate() {
        hostile
            .with_labels(&[v, "x"])
            .unwrap()
            .inc_by(i as f64)
            .unwrap();
    }
    let values = registry
        .gauge_family("special_values", "Values at the edges of f64.", &["case"])
        .unwrap();
    for &(case, v) in SPECIAL_VALUES {
        values.with_labels(&[case]).unwrap().set(v);
    }
    let latency = registry
        .histogram_family(
            "hostile_latency_seconds",
            HOSTILE_HELP,
            &["path"],
            &DEFAULT_BUCKETS,
        )
        .unwrap();
    for (i, v) in HOSTILE_VALUES.iter().enumerate() {
        let h = latency.with_labels(&[v]).unwrap();
        for k in 0..=i {
            h.observe(0.003 * (k * k) as f64);
        }
    }
    let temperature = registry
        .histogram(
            "temperature_celsius",
            "Negative bounds.",
            &[-10.0, 0.0, 10.0, 30.0],
        )
        .unwrap();
    temperature.observe(-5.0);
    temperature.observe(20.0);
    let offset = registry
        .histogram("offset_seconds", "A negative sum.", &[1.0])
        .unwrap();
    offset.observe(-2.0);
    let fractional = registry
        .counter("bytes_processed", "A counter named without _total.")
        .unwrap();
    fractional.inc_by(1.5).unwrap();
    fractional.inc_by(2.0).unwrap();
    registry.gauge("no_help", "").unwrap().set(7.0);
    registry
        .gauge_collector(
            "collected_queue_length",
            "From a collector.",
            &["queue"],
            |s| {
                s.push(&["fast"], 3.0).unwrap();
                s.push(&["sl\"ow\n"], 12.5).unwrap();
            },
        )
        .unwrap();
    registry
        .counter_collector("collected_events_total", "Counted elsewhere.", &[], |s| {
            s.push(&[], 42.0).unwrap();
        })
        .unwrap();
    registry
        .set_unit("hostile_latency_seconds", "seconds")
        .unwrap();
    registry
        .info(
            "hostile_build",
            HOSTILE_HELP,
            &[("version", HOSTILE_VALUES[1]), ("revision", "abc")],
        )
        .unwrap();
    registry
        .histogram_collector(
            "collected_wait_seconds",
            "Waits counted elsewhere.",
            &["queue"],
            |s| {
                // The observations 0.5, 1.5, 1.5 and 3.0.
                s.push_histogram(&["fast"], &[(1.0, 1), (2.0, 3)], 4, 6.5)
                    .unwrap();
                s.push_histogram(&[HOSTILE_VALUES[2]], &[(1.0, 0), (2.0, 0)], 0, 0.0)
                    .unwrap();
            },
        )
        .unwrap();
    let sub = registry
        .sub_registry("scoped", &[("zone", HOSTILE_VALUES[1])])
        .unwrap()
        .sub_registry("db", &[("shard", "7")])
        .unwrap();
    sub.counter_family("queries_total", "Queries, scoped.", &["kind"])
        .unwrap()
        .inc(&["read"])
        .unwrap();
    sub.gauge("pool_size", "A gauge with constant labels only.")
        .unwrap()
        .set(4.0);
    sub.histogram(
        "wait_seconds",
        "A histogram with constant labels only.",
        &[1.0],
    )
    .unwrap()
    .observe(0.5);
    registry
}

pub fn encode(registry: &Registry, format: Format) -> String {
    let mut buf = Vec::new();
    promlite::encode(registry, format, &mut buf);
    String::from_utf8(buf).expect("the exposition is UTF-8")
}

/// Replaces every `_created` value with `fixed`, after checking it lies in `window`
/// (whose start is taken down to the millisecond, the precision of `_created`),
/// so that golden files can hold a stable timestamp.
pub fn pin_created(text: &str, window: (f64, f64), fixed: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let is_created = line
            .split(['{', ' '])
            .next()
            .is_some_and(|name| name.ends_with("_created"));
        if is_created {
            let (sample, value) = line.rsplit_once(' ').unwrap();
            let v: f64 = value.parse().unwrap();
            let start = (window.0 * 1000.0).floor() / 1000.0;
            assert!(
                start <= v && v <= window.1,
                "{line}: created outside {window:?}"
            );
            out.push_str(sample);
            out.push(' ');
            out.push_str(fixed);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[path = "../../examples/load/http.rs"]
pub mod http;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The slpocapp binary, started on 127.0.0.1 with a free port; killed when dropped.
pub struct Slpocapp {
    pub child: Child,
    pub addr: SocketAddr,
    /// The stderr lines after the start line, read by a thread.
    pub log: std::sync::Mutex<std::sync::mpsc::Receiver<String>>,
}

impl Slpocapp {
    pub fn start(args: &[&str]) -> Slpocapp {
        Slpocapp::start_with(
            args,
            &[("POD_NAME", "test-pod"), ("POD_NAMESPACE", "test-ns")],
        )
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Slpocapp {
        Slpocapp::spawn(Command::new(env!("CARGO_BIN_EXE_slpocapp")), args, env)
    }

    /// Started through `sh -c script`, with the binary as `$0` and the
    /// arguments as `"$@"` (for limits set with `ulimit`).
    pub fn start_shell(script: &str, args: &[&str]) -> Slpocapp {
        let mut sh = Command::new("sh");
        sh.args(["-c", script, env!("CARGO_BIN_EXE_slpocapp")]);
        Slpocapp::spawn(
            sh,
            args,
            &[("POD_NAME", "test-pod"), ("POD_NAMESPACE", "test-ns")],
        )
    }

    fn spawn(mut command: Command, args: &[&str], env: &[(&str, &str)]) -> Slpocapp {
        let mut child = command
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(args)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("slpocapp starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in the start line {line:?}"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Slpocapp {
            child,
            addr,
            log: std::sync::Mutex::new(rx),
        }
    }

    pub fn client(&self) -> http::Client {
        http::Client::new(self.addr, Duration::from_secs(5))
    }

    /// `GET /metrics` in the text format.
    pub fn metrics(&self) -> String {
        let response = self.client().get("/metrics").expect("/metrics answers");
        assert_eq!(response.status, 200);
        response.text()
    }

    /// Sends SIGTERM and waits for the exit; returns (exit code, how long it took).
    pub fn terminate(&mut self) -> (Option<i32>, Duration) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = started + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "slpocapp did not exit within 5 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Slpocapp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the sample whose line starts with `prefix` (None if absent).
pub fn sample_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}
