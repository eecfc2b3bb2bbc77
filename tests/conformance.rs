//! Conformance against real peers: `promtool check metrics` (the Prometheus
//! server's own linter, text format) and the Python `prometheus-client` parsers
//! (the text parser, and the strict OpenMetrics parser), which must read back
//! exactly the names, label values and numbers the registry holds.
//!
//! These tests need the peers installed, so they are `#[ignore]`d in a plain
//! `cargo test`; the project's test command (`scripts/test.sh`) installs the peers
//! and runs them. `PROMLITE_PYTHON` names the Python with `prometheus-client`
//! (default: `.venv/bin/python`).

mod common;

use common::{
    HOSTILE_HELP, HOSTILE_VALUES, SPECIAL_VALUES, Slpocapp, encode, hostile_registry, labels, now,
};
use promlite::Format;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One expected sample: name, label pairs, value (`None`: a `_created` time).
type Sample = (String, Vec<(String, String)>, Option<f64>);

/// The `le` values as each format writes them (written out here by hand, not by the encoder).
const SEED_LE_TEXT: [&str; 6] = ["1", "2", "5", "6", "10", "+Inf"];
const SEED_LE_OM: [&str; 6] = ["1.0", "2.0", "5.0", "6.0", "10.0", "+Inf"];
const DEFAULT_LE_TEXT: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];
const DEFAULT_LE_OM: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf",
];

/// A histogram's samples, computed the plain way from its observations.
fn histogram_samples(
    out: &mut Vec<Sample>,
    name: &str,
    base: &[(&str, &str)],
    bounds: &[f64],
    le: &[&str],
    observations: &[f64],
    openmetrics: bool,
) {
    for (bound, le) in bounds.iter().chain([&f64::INFINITY]).zip(le) {
        let mut l = labels(base);
        l.push(("le".into(), le.to_string()));
        let below = observations.iter().filter(|&&o| o <= *bound).count();
        out.push((format!("{name}_bucket"), l, Some(below as f64)));
    }
    let sum = observations.iter().fold(0.0, |s, o| s + o);
    // OpenMetrics: no `_sum` (nor `_count`) with negative bounds or a negative sum.
    if !openmetrics || (bounds.iter().all(|&b| b >= 0.0) && sum >= 0.0) {
        let count = observations.len() as f64;
        out.push((format!("{name}_count"), labels(base), Some(count)));
        out.push((format!("{name}_sum"), labels(base), Some(sum)));
    }
    if openmetrics {
        out.push((format!("{name}_created"), labels(base), None));
    }
}

/// Everything `hostile_registry` holds, as (families, samples) the parsers should return.
fn expected(openmetrics: bool) -> (Vec<(String, String, String)>, Vec<Sample>) {
    let om = openmetrics;
    let seed = [("namespace", "default"), ("pod", "laptop-jaime")];
    let mut families = Vec::new();
    let mut samples = Vec::new();
    let mut family = |name: &str, kind: &str, help: &str| {
        families.push((name.to_string(), kind.to_string(), help.to_string()))
    };
    family(
        "slpocapp_request_operations",
        "counter",
        "The total number of processed requests",
    );
    family(
        "slpocapp_request_duration_seconds",
        "histogram",
        "Histogram for the duration in seconds.",
    );
    family("hostile_labels", "counter", HOSTILE_HELP);
    family("special_values", "gauge", "Values at the edges of f64.");
    family("hostile_latency_seconds", "histogram", HOSTILE_HELP);
    family("temperature_celsius", "histogram", "Negative bounds.");
    family("offset_seconds", "histogram", "A negative sum.");
    family(
        "bytes_processed",
        "counter",
        "A counter named without _total.",
    );
    family("no_help", "gauge", "");
    family("collected_queue_length", "gauge", "From a collector.");
    family("collected_events", "counter", "Counted elsewhere.");
    if om {
        family("hostile_build", "info", HOSTILE_HELP);
    } else {
        family("hostile_build_info", "gauge", HOSTILE_HELP);
    }
    family(
        "collected_wait_seconds",
        "histogram",
        "Waits counted elsewhere.",
    );
    family("scoped_db_queries", "counter", "Queries, scoped.");
    family(
        "scoped_db_pool_size",
        "gauge",
        "A gauge with constant labels only.",
    );
    family(
        "scoped_db_wait_seconds",
        "histogram",
        "A histogram with constant labels only.",
    );

    samples.push((
        "slpocapp_request_operations_total".into(),
        labels(&seed),
        Some(1.0),
    ));
    if om {
        samples.push((
            "slpocapp_request_operations_created".into(),
            labels(&seed),
            None,
        ));
    }
    histogram_samples(
        &mut samples,
        "slpocapp_request_duration_seconds",
        &seed,
        &[1.0, 2.0, 5.0, 6.0, 10.0],
        if om { &SEED_LE_OM } else { &SEED_LE_TEXT },
        &[0.0011820793151855469],
        om,
    );
    for (i, v) in HOSTILE_VALUES.iter().enumerate() {
        let l = labels(&[("value", v), ("other", "x")]);
        samples.push(("hostile_labels_total".into(), l.clone(), Some(i as f64)));
        if om {
            samples.push(("hostile_labels_created".into(), l, None));
        }
    }
    for &(case, v) in SPECIAL_VALUES {
        samples.push(("special_values".into(), labels(&[("case", case)]), Some(v)));
    }
    for (i, v) in HOSTILE_VALUES.iter().enumerate() {
        let observations: Vec<f64> = (0..=i).map(|k| 0.003 * (k * k) as f64).collect();
        histogram_samples(
            &mut samples,
            "hostile_latency_seconds",
            &[("path", v)],
            &promlite::DEFAULT_BUCKETS,
            if om { &DEFAULT_LE_OM } else { &DEFAULT_LE_TEXT },
            &observations,
            om,
        );
    }
    let temperature_le: [&str; 5] = if om {
        ["-10.0", "0.0", "10.0", "30.0", "+Inf"]
    } else {
        ["-10", "0", "10", "30", "+Inf"]
    };
    histogram_samples(
        &mut samples,
        "temperature_celsius",
        &[],
        &[-10.0, 0.0, 10.0, 30.0],
        &temperature_le,
        &[-5.0, 20.0],
        om,
    );
    histogram_samples(
        &mut samples,
        "offset_seconds",
        &[],
        &[1.0],
        if om { &["1.0", "+Inf"] } else { &["1", "+Inf"] },
        &[-2.0],
        om,
    );
    samples.push(("bytes_processed_total".into(), vec![], Some(3.5)));
    if om {
        samples.push(("bytes_processed_created".into(), vec![], None));
    }
    samples.push(("no_help".into(), vec![], Some(7.0)));
    samples.push((
        "collected_queue_length".into(),
        labels(&[("queue", "fast")]),
        Some(3.0),
    ));
    samples.push((
        "collected_queue_length".into(),
        labels(&[("queue", "sl\"ow\n")]),
        Some(12.5),
    ));
    samples.push(("collected_events_total".into(), vec![], Some(42.0)));
    samples.push((
        "hostile_build_info".into(),
        labels(&[("version", HOSTILE_VALUES[1]), ("revision", "abc")]),
        Some(1.0),
    ));
    let wait_le: [&str; 3] = if om {
        ["1.0", "2.0", "+Inf"]
    } else {
        ["1", "2", "+Inf"]
    };
    for (queue, observations) in [
        ("fast", &[0.5, 1.5, 1.5, 3.0][..]),
        (HOSTILE_VALUES[2], &[]),
    ] {
        histogram_samples(
            &mut samples,
            "collected_wait_seconds",
            &[("queue", queue)],
            &[1.0, 2.0],
            &wait_le,
            observations,
            om,
        );
    }
    // A collector's histograms have no creation time.
    samples.retain(|(name, _, _)| name != "collected_wait_seconds_created");
    let scoped = [("zone", HOSTILE_VALUES[1]), ("shard", "7")];
    let mut queries = scoped.to_vec();
    queries.push(("kind", "read"));
    samples.push((
        "scoped_db_queries_total".into(),
        labels(&queries),
        Some(1.0),
    ));
    if om {
        samples.push(("scoped_db_queries_created".into(), labels(&queries), None));
    }
    samples.push(("scoped_db_pool_size".into(), labels(&scoped), Some(4.0)));
    histogram_samples(
        &mut samples,
        "scoped_db_wait_seconds",
        &scoped,
        &[1.0],
        if om { &["1.0", "+Inf"] } else { &["1", "+Inf"] },
        &[0.5],
        om,
    );
    (families, samples)
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_number(out: &mut String, v: f64) {
    match v {
        v if v.is_nan() => out.push_str("NaN"),
        f64::INFINITY => out.push_str("Infinity"),
        f64::NEG_INFINITY => out.push_str("-Infinity"),
        v => write!(out, "{v:?}").unwrap(),
    }
}

fn expected_json(openmetrics: bool, window: (f64, f64)) -> String {
    let (families, samples) = expected(openmetrics);
    let mut out = String::from("{\"families\": [");
    for (i, (name, kind, help)) in families.iter().enumerate() {
        out.push_str(if i == 0 { "[" } else { ", [" });
        json_string(&mut out, name);
        out.push_str(", ");
        json_string(&mut out, kind);
        out.push_str(", ");
        json_string(&mut out, help);
        out.push(']');
    }
    out.push_str("], \"samples\": [");
    for (i, (name, labels, value)) in samples.iter().enumerate() {
        out.push_str(if i == 0 { "[" } else { ",\n[" });
        json_string(&mut out, name);
        out.push_str(", {");
        for (j, (k, v)) in labels.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            json_string(&mut out, k);
            out.push_str(": ");
            json_string(&mut out, v);
        }
        out.push_str("}, ");
        match value {
            Some(v) => json_number(&mut out, *v),
            None => out.push_str("null"),
        }
        out.push(']');
    }
    out.push_str("], \"created_window\": [");
    // `_created` is kept to the millisecond: the window starts at the millisecond.
    json_number(&mut out, (window.0 * 1000.0).floor() / 1000.0);
    out.push_str(", ");
    json_number(&mut out, window.1);
    out.push_str("]}");
    out
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn python() -> PathBuf {
    std::env::var_os("PROMLITE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (scripts/test.sh installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

fn parse_back(format: Format, flag: &str) {
    let before = now();
    let registry = hostile_registry();
    let after = now();
    let dir = scratch_dir(&format!("conformance-{flag}"));
    let exposition = dir.join("exposition");
    let expected = dir.join("expected.json");
    std::fs::write(&exposition, encode(&registry, format)).unwrap();
    std::fs::write(
        &expected,
        expected_json(format == Format::OpenMetrics, (before, after)),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/parse_back.py");
    let said = run(Command::new(python())
        .arg(script)
        .arg(flag)
        .arg(&exposition)
        .arg(&expected));
    println!("{said}");
}

#[test]
#[ignore = "needs prometheus-client in a Python venv; scripts/test.sh runs it"]
fn python_text_parser_reads_back_exactly() {
    parse_back(Format::Text, "text");
}

#[test]
#[ignore = "needs prometheus-client in a Python venv; scripts/test.sh runs it"]
fn python_strict_openmetrics_parser_reads_back_exactly() {
    parse_back(Format::OpenMetrics, "openmetrics");
}

#[test]
#[ignore = "needs promtool (Debian package prometheus); scripts/test.sh runs it"]
fn promtool_check_metrics_finds_no_problem() {
    let registry = hostile_registry();
    registry.register_process_metrics().unwrap();
    // A family without HELP is legal, but promtool's linter rightly flags it.
    assert!(registry.unregister("no_help"));
    promtool_finds_no_problem("conformance-promtool", encode(&registry, Format::Text));
}

/// Runs `promtool check metrics` on `exposition`; it must exit 0 and say nothing
/// (it exits 1 on a parse error and 3 on a lint problem).
fn promtool_finds_no_problem(scratch: &str, exposition: impl AsRef<[u8]>) {
    let path = scratch_dir(scratch).join("exposition.txt");
    std::fs::write(&path, exposition).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .expect("promtool is installed (Debian package prometheus)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool ({}): {said}",
        out.status
    );
}

#[test]
#[ignore = "needs promtool (Debian package prometheus); scripts/test.sh runs it"]
fn promtool_rejects_a_broken_exposition() {
    // The check above can fail: promtool does complain about a bad line.
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"# TYPE x counter\nx{a=\"unterminated} 1\n")?;
            child.wait_with_output()
        })
        .expect("promtool is installed");
    assert!(!out.status.success());
}

/// Runs `parse_back.py` on a live scrape of slpocapp after `requests` requests to `/`.
fn slpocapp_parses_back(openmetrics: bool) {
    let app = Slpocapp::start(&[]);
    let requests = 7;
    for _ in 0..requests {
        assert_eq!(app.client().get("/").unwrap().status, 200);
    }
    let accept = if openmetrics {
        "application/openmetrics-text; version=1.0.0"
    } else {
        "text/plain"
    };
    let scrape = app
        .client()
        .request("GET", "/metrics", &[("Accept", accept)])
        .unwrap();
    let flag = if openmetrics { "openmetrics" } else { "text" };
    let dir = scratch_dir(&format!("conformance-slpocapp-{flag}"));
    std::fs::write(dir.join("exposition"), &scrape.body).unwrap();
    let labels = "{\"namespace\": \"test-ns\", \"pod\": \"test-pod\"}";
    let expected = format!(
        "{{\"partial\": true, \"families\": [], \"created_window\": [0, 1e12], \"samples\": [\
         [\"slpocapp_request_operations_total\", {labels}, {requests}],\
         [\"slpocapp_request_duration_seconds_count\", {labels}, {requests}]]}}"
    );
    std::fs::write(dir.join("expected.json"), expected).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/parse_back.py");
    let said = run(Command::new(python())
        .arg(script)
        .arg(flag)
        .arg(dir.join("exposition"))
        .arg(dir.join("expected.json")));
    println!("{said}");
}

#[test]
#[ignore = "needs prometheus-client in a Python venv; scripts/test.sh runs it"]
fn slpocapp_scrapes_parse_back_with_both_python_parsers() {
    slpocapp_parses_back(false);
    slpocapp_parses_back(true);
}

#[test]
#[ignore = "needs promtool (Debian package prometheus); scripts/test.sh runs it"]
fn slpocapp_scrape_passes_promtool() {
    let app = Slpocapp::start(&[]);
    assert_eq!(app.client().get("/").unwrap().status, 200);
    promtool_finds_no_problem("conformance-slpocapp-promtool", app.metrics());
}
