//! Native histograms in the text formats, which know no native buckets: a
//! histogram with classic buckets as well is written exactly as the classic
//! histogram of the same observations; one without, as its count and sum.

mod common;

use common::encode;
use promlite::{DEFAULT_BUCKETS, Format, NativeConfig, Registry};

const OBSERVATIONS: [f64; 6] = [0.003, 0.02, 0.02, 0.7, 4.0, 12.0];

#[test]
fn with_classic_buckets_the_text_formats_are_those_of_a_classic_histogram() {
    let classic = Registry::new();
    let native = Registry::new();
    let c = classic
        .histogram_family("rpc_seconds", "RPC latency.", &["method"], &DEFAULT_BUCKETS)
        .unwrap()
        .with_labels(&["get"])
        .unwrap();
    let config = NativeConfig {
        classic_buckets: DEFAULT_BUCKETS.to_vec(),
        ..NativeConfig::default()
    };
    let n = native
        .native_histogram_family("rpc_seconds", "RPC latency.", &["method"], &config)
        .unwrap()
        .with_labels(&["get"])
        .unwrap();
    for v in OBSERVATIONS {
        c.observe(v);
        n.observe(v);
    }
    for format in [Format::Text, Format::OpenMetrics] {
        assert_eq!(
            encode(&native, format),
            encode(&classic, format),
            "{format:?}"
        );
    }
    // The protobuf format has the native buckets besides.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    promlite::encode(&native, Format::Protobuf, &mut a);
    promlite::encode(&classic, Format::Protobuf, &mut b);
    assert!(a.len() > b.len());
}

#[test]
fn without_classic_buckets_the_text_formats_have_the_count_and_the_sum() {
    let registry = Registry::new();
    let h = registry
        .native_histogram("rpc_seconds", "RPC latency.", &NativeConfig::default())
        .unwrap();
    for v in OBSERVATIONS {
        h.observe(v);
    }
    let sum = OBSERVATIONS.iter().fold(0.0, |s, v| s + v);
    assert_eq!(
        encode(&registry, Format::Text),
        format!(
            "# HELP rpc_seconds RPC latency.\n# TYPE rpc_seconds histogram\n\
             rpc_seconds_count 6\nrpc_seconds_sum {sum}\n"
        )
    );
    // OpenMetrics requires a +Inf bucket in every histogram: it is the count.
    registry.set_unit("rpc_seconds", "seconds").unwrap();
    assert_eq!(
        encode(&registry, Format::OpenMetrics),
        format!(
            "# TYPE rpc_seconds histogram\n# HELP rpc_seconds RPC latency.\n# UNIT rpc_seconds seconds\n\
             rpc_seconds_bucket{{le=\"+Inf\"}} 6\nrpc_seconds_count 6\nrpc_seconds_sum {sum}\n# EOF\n"
        )
    );
}

#[test]
fn native_families_are_registered_like_histograms() {
    let registry = Registry::new();
    let config = NativeConfig::default();
    registry.native_histogram("a_seconds", "", &config).unwrap();
    assert!(registry.histogram("a_seconds", "", &[1.0]).is_err());
    assert!(registry.gauge("a_seconds_count", "").is_err());
    assert!(
        registry
            .native_histogram_family("b", "", &["le"], &config)
            .is_err()
    );
    let sub = registry.sub_registry("db", &[("shard", "1")]).unwrap();
    let h = sub.native_histogram("wait_seconds", "", &config).unwrap();
    h.observe(1.0);
    let text = encode(&registry, Format::Text);
    assert!(
        text.contains("db_wait_seconds_count{shard=\"1\"} 1\n"),
        "{text}"
    );
    assert!(registry.unregister("db_wait_seconds"));
}
