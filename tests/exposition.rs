//! The exposition, byte for byte, against golden files in `testdata/`.
//! `UPDATE_GOLDEN=1 cargo test --test exposition` rewrites them (then read the diff).

mod common;

use common::{encode, hostile_registry, now, pin_created, seed_registry};
use promlite::{Format, Registry};
use std::path::Path;

/// The seed's own `_created` timestamp (to the millisecond, as promlite keeps it),
/// so the golden file reads like its example.
const SEED_CREATED: &str = "1603020844.332";

fn golden(file: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(actual, expected, "differs from {}", path.display());
}

fn check_golden(registry: impl Fn() -> Registry, name: &str) {
    let before = now();
    let registry = registry();
    let after = now();
    for (format, ext) in [(Format::Text, "txt"), (Format::OpenMetrics, "om.txt")] {
        let text = pin_created(&encode(&registry, format), (before, after), SEED_CREATED);
        golden(&format!("{name}.{ext}"), &text);
    }
}

#[test]
fn seed_metrics_after_one_request() {
    check_golden(seed_registry, "seed");
}

#[test]
fn hostile_labels_help_and_special_values() {
    check_golden(hostile_registry, "hostile");
}

#[test]
fn encoding_twice_gives_the_same_bytes() {
    let registry = hostile_registry();
    for format in [Format::Text, Format::OpenMetrics] {
        assert_eq!(encode(&registry, format), encode(&registry, format));
    }
}

#[test]
fn series_come_in_creation_order_and_families_in_registration_order() {
    let registry = Registry::new();
    let b = registry.gauge_family("b", "", &["k"]).unwrap();
    let a = registry.gauge("a", "").unwrap();
    for k in ["zeta", "alpha", "mu"] {
        b.with_labels(&[k]).unwrap().set(1.0);
    }
    a.set(2.0);
    assert_eq!(
        encode(&registry, Format::Text),
        "# TYPE b gauge\nb{k=\"zeta\"} 1\nb{k=\"alpha\"} 1\nb{k=\"mu\"} 1\n# TYPE a gauge\na 2\n"
    );
}

#[test]
fn counter_names_never_double_total() {
    let registry = Registry::new();
    registry.counter("with_total", "").unwrap().inc();
    registry.counter("without", "").unwrap().inc();
    let text = encode(&registry, Format::Text);
    assert!(!text.contains("_total_total"));
    assert!(text.contains("\nwith_total 1\n") && text.contains("\nwithout_total 1\n"));
    let om = encode(&registry, Format::OpenMetrics);
    assert!(!om.contains("_total_total"));
    assert!(om.contains("# TYPE with counter\n") && om.contains("\nwith_total 1\n"));
    assert!(om.contains("# TYPE without counter\n") && om.contains("\nwithout_total 1\n"));
}

#[test]
fn help_is_verbatim_and_escaped_per_format() {
    let registry = Registry::new();
    registry
        .gauge("g", "No period added\\ \"here\"\nnext line")
        .unwrap();
    let text = encode(&registry, Format::Text);
    assert!(
        text.starts_with("# HELP g No period added\\\\ \"here\"\\nnext line\n"),
        "{text}"
    );
    let om = encode(&registry, Format::OpenMetrics);
    assert!(
        om.contains("\n# HELP g No period added\\\\ \\\"here\\\"\\nnext line\n"),
        "{om}"
    );
    // No raw newline inside any line: every line is a comment or a sample.
    for line in text.lines().chain(om.lines()) {
        assert!(line.starts_with('#') || line.starts_with("g "), "{line:?}");
    }
}

#[test]
fn openmetrics_ends_with_eof_and_text_does_not() {
    let registry = seed_registry();
    assert!(encode(&registry, Format::OpenMetrics).ends_with("\n# EOF\n"));
    assert!(!encode(&registry, Format::Text).contains("# EOF"));
    assert_eq!(encode(&Registry::new(), Format::OpenMetrics), "# EOF\n");
    assert_eq!(encode(&Registry::new(), Format::Text), "");
}

#[test]
fn write_to_writes_what_encode_appends() {
    let registry = hostile_registry();
    let mut out = Vec::new();
    promlite::write_to(&registry, Format::OpenMetrics, &mut out).unwrap();
    let mut buf = b"prefix".to_vec();
    promlite::encode_openmetrics(&registry, &mut buf);
    assert_eq!(&buf[..6], b"prefix", "encode appends, never clears");
    // `_created` is the same series' value in both: the bytes agree.
    assert_eq!(out, buf[6..]);
}

#[test]
fn removed_series_and_unregistered_families_disappear() {
    let registry = seed_registry();
    let requests = registry.counter_family("other_total", "", &["k"]).unwrap();
    requests.with_labels(&["gone"]).unwrap().inc();
    requests.with_labels(&["kept"]).unwrap().inc();
    assert!(requests.remove(&["gone"]));
    let text = encode(&registry, Format::Text);
    assert!(!text.contains("gone") && text.contains("other_total{k=\"kept\"} 1\n"));
    assert!(registry.unregister("slpocapp_request_duration_seconds"));
    assert!(!encode(&registry, Format::Text).contains("duration"));
}

#[test]
fn by_default_openmetrics_has_no_created_samples_and_is_otherwise_the_same() {
    let with = hostile_registry();
    let without = hostile_registry();
    without.set_created_samples(false);
    let full = encode(&with, Format::OpenMetrics);
    let plain = encode(&without, Format::OpenMetrics);
    let created = full.lines().filter(|l| l.contains("_created")).count();
    assert!(created > 10, "the opt-in writes them ({created} lines)");
    assert!(!plain.contains("_created"), "{plain}");
    let kept: Vec<&str> = full
        .lines()
        .filter(|l| !l.contains("_created ") && !l.contains("_created{"))
        .collect();
    assert_eq!(plain.lines().collect::<Vec<_>>(), kept);
    // And a new registry starts without them.
    let fresh = Registry::new();
    fresh.counter("jobs_total", "Jobs.").unwrap().inc();
    fresh
        .histogram("wait_seconds", "Waits.", &[1.0])
        .unwrap()
        .observe(0.5);
    assert!(!encode(&fresh, Format::OpenMetrics).contains("_created"));
    // The text format never has them.
    assert!(!encode(&with, Format::Text).contains("_created"));
}
