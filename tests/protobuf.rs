//! The protobuf exposition read back by an independent decoder: `protoc --decode`
//! (Debian package `protobuf-compiler`) with `proto/metrics.proto`, one call per
//! `MetricFamily` of the delimited stream (split here by its varint length
//! prefixes). The decoded families, labels and numbers must be exactly what the
//! registry holds, as computed here from the registry's definition.
//!
//! These tests need `protoc`, so they are `#[ignore]`d in a plain `cargo test`;
//! the project's test command runs them. The first tests here need nothing: the
//! encoder against byte strings worked out by hand from the wire format (each
//! expected byte annotated with what it is).

mod common;
mod decode;

use common::{HOSTILE_HELP, HOSTILE_VALUES, SPECIAL_VALUES, hostile_registry, labels};
use decode::{Family, Value, decode_stream};
use promlite::{DEFAULT_BUCKETS, Format};

fn registry_bytes(build: impl FnOnce(&promlite::Registry)) -> Vec<u8> {
    let registry = promlite::Registry::new();
    build(&registry);
    let mut buf = Vec::new();
    promlite::encode(&registry, Format::Protobuf, &mut buf);
    buf
}

/// A varint, written here again: 7 bits a byte, least significant first.
fn encoded(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

const ONE: [u8; 8] = [0, 0, 0, 0, 0, 0, 0xf0, 0x3f];
const TWO: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 0x40];
const THREE_AND_A_HALF: [u8; 8] = [0, 0, 0, 0, 0, 0, 0x0c, 0x40];

#[test]
fn a_gauge_family_byte_by_byte() {
    let bytes = registry_bytes(|r| r.gauge("up", "Up.").unwrap().set(1.0));
    let mut want = vec![
        24, // the family's length
        0x0a, 2, b'u', b'p', // 1: name, length-delimited
        0x12, 3, b'U', b'p', b'.', // 2: help
        0x18, 1, // 3: type, varint GAUGE
        0x22, 11, // 4: metric, 11 bytes
        0x12, 9,    // Metric 2: gauge, 9 bytes
        0x09, // Gauge 1: value, 64-bit
    ];
    want.extend(ONE);
    assert_eq!(bytes, want);
}

#[test]
fn a_counter_with_a_label_byte_by_byte() {
    let bytes = registry_bytes(|r| {
        let jobs = r.counter_family("jobs_total", "", &["kind"]).unwrap();
        jobs.with_labels(&["a"]).unwrap().inc_by(2.0).unwrap();
    });
    let mut want = vec![38, 0x0a, 10];
    want.extend(b"jobs_total");
    want.extend([
        0x18, 0, // type COUNTER (no help: the field is left out)
        0x22, 22, // metric
        0x0a, 9, // Metric 1: label, 9 bytes
        0x0a, 4, b'k', b'i', b'n', b'd', // LabelPair 1: name
        0x12, 1, b'a', // LabelPair 2: value
        0x1a, 9,    // Metric 3: counter
        0x09, // Counter 1: value
    ]);
    want.extend(TWO);
    assert_eq!(bytes, want);
}

#[test]
fn a_classic_histogram_byte_by_byte() {
    let bytes = registry_bytes(|r| {
        let h = r.histogram("h", "", &[1.0]).unwrap();
        h.observe(0.5);
        h.observe(3.0);
    });
    let mut want = vec![
        33, 0x0a, 1, b'h', 0x18, 4, // HISTOGRAM
        0x22, 26, // metric
        0x3a, 24, // Metric 7: histogram
        0x1a, 11, // Histogram 3: bucket
        0x08, 1,    // Bucket 1: cumulative count 1
        0x11, // Bucket 2: upper bound
    ];
    want.extend(ONE);
    want.extend([
        0x08, 2,    // Histogram 1: sample count 2 (after the buckets, whose total it is)
        0x11, // Histogram 2: sample sum
    ]);
    want.extend(THREE_AND_A_HALF);
    assert_eq!(bytes, want);
}

#[test]
fn families_without_series_are_left_out_and_units_come_last() {
    let bytes = registry_bytes(|r| {
        r.counter_family("empty_total", "Nothing yet.", &["a"])
            .unwrap();
        r.gauge("sent_bytes", "").unwrap().set(2.0);
        r.set_unit("sent_bytes", "bytes").unwrap();
    });
    let mut want = vec![34, 0x0a, 10];
    want.extend(b"sent_bytes");
    want.extend([0x18, 1, 0x22, 11, 0x12, 9, 0x09]);
    want.extend(TWO);
    want.extend([0x2a, 5]); // 5: unit
    want.extend(b"bytes");
    assert_eq!(bytes, want);
}

#[test]
fn long_messages_get_longer_lengths() {
    // A label value of 200 bytes makes the metric's length two bytes long, a
    // help of 3 MiB the family's four.
    let value = "v".repeat(200);
    let help = "h".repeat(3 << 20);
    let bytes = registry_bytes(|r| {
        let g = r.gauge_family("g", &help, &["l"]).unwrap();
        g.with_labels(&[&value]).unwrap().set(1.0);
    });
    let pair = 3 + (1 + 2 + 200); // name "l", then the value (its length in 2 bytes)
    let metric = (1 + 2 + pair) + 11; // the label (key, 2-byte length), then the gauge
    let family = 3 + (1 + 4 + help.len()) + 2 + (1 + 2 + metric);
    let mut want = encoded(family as u64);
    assert_eq!(want.len(), 4);
    want.extend([0x0a, 1, b'g', 0x12]);
    want.extend(encoded(help.len() as u64));
    want.extend(help.as_bytes());
    want.extend([0x18, 1, 0x22]);
    want.extend(encoded(metric as u64));
    want.extend([0x0a]);
    want.extend(encoded(pair as u64));
    want.extend([0x0a, 1, b'l', 0x12, 200, 1]);
    want.extend(value.as_bytes());
    want.extend([0x12, 9, 0x09]);
    want.extend(ONE);
    assert_eq!(bytes.len(), want.len());
    assert!(bytes == want);
}

#[test]
fn created_timestamps_when_the_registry_asks_for_them() {
    let registry = promlite::Registry::new();
    registry.set_created_samples(true);
    registry.counter("c_total", "").unwrap();
    let mut buf = Vec::new();
    promlite::encode(&registry, Format::Protobuf, &mut buf);
    // Counter: value 0, then field 3, a Timestamp of seconds (and nanos).
    let counter = buf.windows(10).position(|w| w[..2] == [0x09, 0]).unwrap();
    assert_eq!(buf[counter + 9], 0x1a);
}

/// A classic histogram computed the plain way from its observations.
fn classic(bounds: &[f64], observations: &[f64]) -> Value {
    Value::Histogram {
        count: observations.len() as u64,
        sum: observations.iter().fold(0.0, |s, o| s + o),
        buckets: bounds
            .iter()
            .map(|&b| (b, observations.iter().filter(|&&o| o <= b).count() as u64))
            .collect(),
        native: None,
    }
}

fn family(
    name: &str,
    kind: &str,
    help: &str,
    metrics: Vec<(Vec<(String, String)>, Value)>,
) -> Family {
    Family {
        name: name.into(),
        kind: kind.into(),
        help: help.into(),
        unit: String::new(),
        metrics,
    }
}

/// Everything `hostile_registry` holds, as the protobuf format carries it.
fn expected() -> Vec<Family> {
    let seed = [("namespace", "default"), ("pod", "laptop-jaime")];
    let mut latency = family(
        "hostile_latency_seconds",
        "HISTOGRAM",
        HOSTILE_HELP,
        HOSTILE_VALUES
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let observations: Vec<f64> = (0..=i).map(|k| 0.003 * (k * k) as f64).collect();
                (
                    labels(&[("path", v)]),
                    classic(&DEFAULT_BUCKETS, &observations),
                )
            })
            .collect(),
    );
    latency.unit = "seconds".into();
    let scoped = [("zone", HOSTILE_VALUES[1]), ("shard", "7")];
    vec![
        family(
            "slpocapp_request_operations_total",
            "COUNTER",
            "The total number of processed requests",
            vec![(labels(&seed), Value::Counter(1.0))],
        ),
        family(
            "slpocapp_request_duration_seconds",
            "HISTOGRAM",
            "Histogram for the duration in seconds.",
            vec![(
                labels(&seed),
                classic(&[1.0, 2.0, 5.0, 6.0, 10.0], &[0.0011820793151855469]),
            )],
        ),
        family(
            "hostile_labels_total",
            "COUNTER",
            HOSTILE_HELP,
            HOSTILE_VALUES
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    (
                        labels(&[("value", v), ("other", "x")]),
                        Value::Counter(i as f64),
                    )
                })
                .collect(),
        ),
        family(
            "special_values",
            "GAUGE",
            "Values at the edges of f64.",
            SPECIAL_VALUES
                .iter()
                .map(|&(case, v)| (labels(&[("case", case)]), Value::Gauge(v)))
                .collect(),
        ),
        latency,
        family(
            "temperature_celsius",
            "HISTOGRAM",
            "Negative bounds.",
            vec![(vec![], classic(&[-10.0, 0.0, 10.0, 30.0], &[-5.0, 20.0]))],
        ),
        family(
            "offset_seconds",
            "HISTOGRAM",
            "A negative sum.",
            vec![(vec![], classic(&[1.0], &[-2.0]))],
        ),
        family(
            "bytes_processed_total",
            "COUNTER",
            "A counter named without _total.",
            vec![(vec![], Value::Counter(3.5))],
        ),
        family("no_help", "GAUGE", "", vec![(vec![], Value::Gauge(7.0))]),
        family(
            "collected_queue_length",
            "GAUGE",
            "From a collector.",
            vec![
                (labels(&[("queue", "fast")]), Value::Gauge(3.0)),
                (labels(&[("queue", "sl\"ow\n")]), Value::Gauge(12.5)),
            ],
        ),
        family(
            "collected_events_total",
            "COUNTER",
            "Counted elsewhere.",
            vec![(vec![], Value::Counter(42.0))],
        ),
        family(
            "hostile_build_info",
            "GAUGE",
            HOSTILE_HELP,
            vec![(
                labels(&[("version", HOSTILE_VALUES[1]), ("revision", "abc")]),
                Value::Gauge(1.0),
            )],
        ),
        family(
            "collected_wait_seconds",
            "HISTOGRAM",
            "Waits counted elsewhere.",
            vec![
                (
                    labels(&[("queue", "fast")]),
                    classic(&[1.0, 2.0], &[0.5, 1.5, 1.5, 3.0]),
                ),
                (
                    labels(&[("queue", HOSTILE_VALUES[2])]),
                    classic(&[1.0, 2.0], &[]),
                ),
            ],
        ),
        family(
            "scoped_db_queries_total",
            "COUNTER",
            "Queries, scoped.",
            vec![(
                labels(&[scoped[0], scoped[1], ("kind", "read")]),
                Value::Counter(1.0),
            )],
        ),
        family(
            "scoped_db_pool_size",
            "GAUGE",
            "A gauge with constant labels only.",
            vec![(labels(&scoped), Value::Gauge(4.0))],
        ),
        family(
            "scoped_db_wait_seconds",
            "HISTOGRAM",
            "A histogram with constant labels only.",
            vec![(labels(&scoped), classic(&[1.0], &[0.5]))],
        ),
    ]
}

#[test]
#[ignore = "needs protoc (Debian package protobuf-compiler); the test command runs it"]
fn protoc_reads_back_every_family_label_and_number() {
    let registry = hostile_registry();
    let mut stream = Vec::new();
    promlite::encode(&registry, Format::Protobuf, &mut stream);
    let decoded = decode_stream(&stream, "protobuf-hostile");
    let expected = expected();
    assert_eq!(decoded.len(), expected.len(), "{decoded:#?}");
    for (got, want) in decoded.iter().zip(&expected) {
        assert_eq!(got, want);
    }
}

#[test]
#[ignore = "needs protoc (Debian package protobuf-compiler); the test command runs it"]
fn the_comparison_does_see_a_difference() {
    // The check above can fail: one number off and the families differ.
    let registry = hostile_registry();
    let mut stream = Vec::new();
    promlite::encode(&registry, Format::Protobuf, &mut stream);
    let decoded = decode_stream(&stream, "protobuf-difference");
    let mut wrong = expected();
    wrong[7].metrics[0].1 = Value::Counter(4.5);
    assert_ne!(decoded, wrong);
    let mut wrong = expected();
    wrong[1].metrics[0].0[1].1.push('x');
    assert_ne!(decoded, wrong);
}

/// The middle of native bucket `k` at `schema` (in log scale), far from
/// either boundary: its index is beyond doubt without exact arithmetic.
fn middle(k: i32, schema: i32) -> f64 {
    2f64.powf((f64::from(k) - 0.5) / 2f64.powi(schema))
}

#[test]
#[ignore = "needs protoc (Debian package protobuf-compiler); the test command runs it"]
fn protoc_reads_back_native_histograms() {
    use decode::Native;
    use promlite::{NativeConfig, Registry};
    let registry = Registry::new();
    let latency = registry
        .native_histogram_family(
            "latency_seconds",
            "Native only.",
            &["path"],
            &NativeConfig::default(),
        )
        .unwrap();
    // Buckets 5 and 6 next to each other, 9 after a gap of two (inside the
    // same span), 30 after a long gap (a span of its own), and +Inf.
    let counts = [
        (-20, 1u64),
        (-3, 2),
        (0, 1),
        (5, 3),
        (6, 1),
        (9, 4),
        (30, 2),
    ];
    let a = latency.with_labels(&["/a"]).unwrap();
    for &(k, n) in &counts {
        for _ in 0..n {
            a.observe(middle(k, 3));
        }
    }
    a.observe(0.0);
    a.observe(f64::INFINITY);
    a.observe(-middle(4, 3));
    latency.with_labels(&["/empty"]).unwrap();
    let both = registry
        .native_histogram(
            "both_seconds",
            "Both kinds of buckets.",
            &NativeConfig {
                schema: 0,
                classic_buckets: vec![0.1, 1.0],
                ..NativeConfig::default()
            },
        )
        .unwrap();
    for v in [0.05, 0.3, 0.7, 3.0] {
        both.observe(v);
    }
    let mut stream = Vec::new();
    promlite::encode(&registry, Format::Protobuf, &mut stream);
    let decoded = decode_stream(&stream, "protobuf-native");
    let threshold = promlite::DEFAULT_NATIVE_ZERO_THRESHOLD;
    let mut positive: Vec<(i32, u64)> = counts.to_vec();
    positive.push((1024 * 8 + 1, 1)); // +Inf: the bucket after the largest f64's
    let native = |schema, zero_count, positive: Vec<(i32, u64)>, negative| Native {
        schema,
        zero_threshold: threshold,
        zero_count,
        positive,
        negative,
    };
    let want = vec![
        Family {
            name: "latency_seconds".into(),
            kind: "HISTOGRAM".into(),
            help: "Native only.".into(),
            unit: String::new(),
            metrics: vec![
                (
                    labels(&[("path", "/a")]),
                    Value::Histogram {
                        count: 17,
                        sum: f64::INFINITY,
                        buckets: vec![],
                        native: Some(native(3, 1, positive, vec![(4, 1)])),
                    },
                ),
                (
                    labels(&[("path", "/empty")]),
                    Value::Histogram {
                        count: 0,
                        sum: 0.0,
                        buckets: vec![],
                        native: Some(native(3, 0, vec![], vec![])),
                    },
                ),
            ],
        },
        Family {
            name: "both_seconds".into(),
            kind: "HISTOGRAM".into(),
            help: "Both kinds of buckets.".into(),
            unit: String::new(),
            metrics: vec![(
                vec![],
                Value::Histogram {
                    count: 4,
                    sum: 0.05 + 0.3 + 0.7 + 3.0,
                    buckets: vec![(0.1, 1), (1.0, 3)],
                    // (2^-5, 2^-4], (2^-2, 2^-1], (2^-1, 1], (2, 4]
                    native: Some(native(0, 0, vec![(-4, 1), (-1, 1), (0, 1), (2, 1)], vec![])),
                },
            )],
        },
    ];
    assert_eq!(decoded, want);
    // The spans as written: 5..=9 in one (two empty buckets inside), 30 apart.
    let text = decode::protoc_text(decode::split_delimited(&stream)[0]);
    assert!(
        text.contains("positive_span {\n      offset: -20\n      length: 1\n    }"),
        "{text}"
    );
    assert!(
        text.contains("positive_span {\n      offset: 4\n      length: 5\n    }"),
        "{text}"
    );
    // The empty series: one span of length 0 marks it as native.
    assert!(
        text.contains("positive_span {\n      offset: 0\n      length: 0\n    }"),
        "{text}"
    );
}

#[test]
#[ignore = "needs protoc (Debian package protobuf-compiler); the test command runs it"]
fn protoc_reads_back_exemplars() {
    use decode::{Field, all, float, one, parse};
    let registry = promlite::Registry::new();
    let hostile = "a\"b\\c\nd ñ";
    let c = registry.counter("orders_total", "Orders.").unwrap();
    c.inc_by_with_exemplar(2.0, &[("trace_id", "abc"), ("user", hostile)])
        .unwrap();
    let h = registry
        .histogram("latency_seconds", "Latency.", &[0.1, 1.0])
        .unwrap();
    h.observe(0.05);
    h.observe_with_exemplar(0.5, &[("trace_id", "def")])
        .unwrap();
    let before = common::now();
    let mut stream = Vec::new();
    promlite::encode(&registry, Format::Protobuf, &mut stream);
    let families = decode::split_delimited(&stream);
    assert_eq!(families.len(), 2);
    let message = |f: &Field| match f {
        Field::Message(m) => m.clone(),
        other => panic!("{other:?}"),
    };
    let text = |f: &Field| match f {
        Field::Str(s) => String::from_utf8(s.clone()).unwrap(),
        other => panic!("{other:?}"),
    };
    let exemplar_of = |e: &decode::Message| {
        let labels: Vec<(String, String)> = all(e, "label")
            .map(|l| {
                let l = message(l);
                (
                    text(one(&l, "name").unwrap()),
                    text(one(&l, "value").unwrap()),
                )
            })
            .collect();
        let ts = message(one(e, "timestamp").unwrap());
        let seconds: f64 = decode::int::<u64>(one(&ts, "seconds").unwrap()) as f64;
        assert!((seconds - before).abs() < 60.0, "the exemplar's time");
        (labels, float(one(e, "value").unwrap()))
    };
    let counter = parse(&decode::protoc_text(families[0]));
    let metric = message(one(&counter, "metric").unwrap());
    let c = message(one(&metric, "counter").unwrap());
    assert_eq!(
        exemplar_of(&message(one(&c, "exemplar").unwrap())),
        (labels(&[("trace_id", "abc"), ("user", hostile)]), 2.0)
    );
    let histogram = parse(&decode::protoc_text(families[1]));
    let metric = message(one(&histogram, "metric").unwrap());
    let h = message(one(&metric, "histogram").unwrap());
    let buckets: Vec<decode::Message> = all(&h, "bucket").map(message).collect();
    assert_eq!(buckets.len(), 2);
    assert!(one(&buckets[0], "exemplar").is_none());
    assert_eq!(
        exemplar_of(&message(one(&buckets[1], "exemplar").unwrap())),
        (labels(&[("trace_id", "def")]), 0.5)
    );
}
