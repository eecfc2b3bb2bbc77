//! The cases whose figures depend on the process (hash seeds, where the heap
//! puts a series, how the code lands in the caches), run in fresh processes and
//! reported as each contender's per-process medians, min / median / max over the
//! processes:
//!
//! - a labeled update with the lookup each time, one label set over and over, in
//!   a registry of 17 families: what a handler that calls `family.inc(&[ns, pod])`
//!   on every request does;
//! - a histogram observe on one thread (the seed's buckets), of one value over and
//!   over and of 64 values spread over every bucket.
//!
//!     cargo bench --manifest-path bench/Cargo.toml --bench processes
//!
//! `BENCH_PROCESSES` (default 8) fresh processes; in each, `BENCH_ROUNDS`
//! (default 9) interleaved rounds of 1,000,000 operations per contender.

use prometheus_client::encoding::EncodeLabelSet;
use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    namespace: String,
    pod: String,
}

const FAMILIES: usize = 17;
const BUCKETS: [f64; 5] = [1.0, 2.0, 5.0, 6.0, 10.0];

/// A case: its contenders (promlite's first), how many of them are promlite's,
/// and the ratio to the faster peer it must stay under.
struct Case {
    title: &'static str,
    contenders: &'static [&'static str],
    ours: usize,
    target: f64,
}

const CASES: [Case; 3] = [
    Case {
        title: "labeled inc, one label set each time, 17 families",
        contenders: &[
            "promlite family.inc(&labels)",
            "promlite with_labels(&labels)?.inc()",
            "prometheus with_label_values(&labels).inc()",
            "prometheus-client get_or_create(&labels).inc()",
        ],
        ours: 2,
        target: 0.7,
    },
    Case {
        title: "histogram observe, one thread, one value (0.5) each time",
        contenders: &["promlite", "prometheus", "prometheus-client"],
        ours: 1,
        target: 0.8,
    },
    Case {
        title: "histogram observe, one thread, 64 values over every bucket",
        contenders: &["promlite", "prometheus", "prometheus-client"],
        ours: 1,
        target: 0.8,
    },
];

fn env(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One process: the medians over rounds, ns per operation, one per contender of
/// every case in turn.
fn child() -> Vec<f64> {
    let ns = String::from("default");
    let pod = String::from("slpocapp-7d9f8b6c5d-x2x4z");
    let registry = promlite::Registry::new();
    let ours: Vec<_> = (0..FAMILIES)
        .map(|i| {
            registry
                .counter_family(&format!("f{i}_total"), "h", &["namespace", "pod"])
                .unwrap()
        })
        .collect();
    let theirs: Vec<_> = (0..FAMILIES)
        .map(|i| {
            prometheus::IntCounterVec::new(
                prometheus::Opts::new(format!("f{i}_total"), "h"),
                &["namespace", "pod"],
            )
            .unwrap()
        })
        .collect();
    let clients: Vec<_> = (0..FAMILIES)
        .map(|_| {
            prometheus_client::metrics::family::Family::<
                Labels,
                prometheus_client::metrics::counter::Counter,
            >::default()
        })
        .collect();
    let key = Labels {
        namespace: ns.clone(),
        pod: pod.clone(),
    };
    let values = [ns.as_str(), pod.as_str()];
    let (ours, theirs, client) = (
        &ours[FAMILIES / 2],
        &theirs[FAMILIES / 2],
        &clients[FAMILIES / 2],
    );
    ours.inc(&values).unwrap();
    theirs.with_label_values(&values).inc();
    client.get_or_create(&key).inc();

    let our_histogram = registry.histogram("h_seconds", "h", &BUCKETS).unwrap();
    let their_histogram = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("h_seconds", "h").buckets(BUCKETS.to_vec()),
    )
    .unwrap();
    let client_histogram = prometheus_client::metrics::histogram::Histogram::new(BUCKETS);
    let spread: Vec<f64> = (0..64).map(|i| (i as f64 * 0.19) % 12.0).collect();

    let n = 1_000_000u64;
    let total: usize = CASES.iter().map(|c| c.contenders.len()).sum();
    let mut samples = vec![Vec::new(); total];
    for _ in 0..env("BENCH_ROUNDS", 9) {
        for (c, out) in samples.iter_mut().enumerate() {
            let started = Instant::now();
            match c {
                0..=3 => {
                    for _ in 0..n {
                        let values = black_box(&values);
                        match c {
                            0 => black_box(ours).inc(values).unwrap(),
                            1 => black_box(ours).with_labels(values).unwrap().inc(),
                            2 => black_box(theirs).with_label_values(values).inc(),
                            _ => {
                                black_box(client).get_or_create(black_box(&key)).inc();
                            }
                        }
                    }
                }
                4..=6 => {
                    for _ in 0..n {
                        let v = black_box(0.5);
                        match c {
                            4 => black_box(&our_histogram).observe(v),
                            5 => black_box(&their_histogram).observe(v),
                            _ => black_box(&client_histogram).observe(v),
                        }
                    }
                }
                _ => {
                    for i in 0..n as usize {
                        let v = spread[i % 64];
                        match c {
                            7 => black_box(&our_histogram).observe(v),
                            8 => black_box(&their_histogram).observe(v),
                            _ => black_box(&client_histogram).observe(v),
                        }
                    }
                }
            }
            out.push(started.elapsed().as_nanos() as f64 / n as f64);
        }
    }
    samples.into_iter().map(median).collect()
}

fn main() {
    if std::env::args().any(|a| a == "--child") {
        let medians = child();
        println!(
            "{}",
            medians
                .iter()
                .map(|m| format!("{m:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        return;
    }
    let processes = env("BENCH_PROCESSES", 8);
    let me = std::env::current_exe().unwrap();
    let mut per_process: Vec<Vec<f64>> = Vec::new();
    for p in 0..processes {
        let out = Command::new(&me).arg("--child").output().unwrap();
        assert!(out.status.success(), "process {p} failed");
        let line = String::from_utf8(out.stdout).unwrap();
        let medians: Vec<f64> = line
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        eprintln!("process {p}: {line}", line = line.trim());
        per_process.push(medians);
    }
    let mut first = 0;
    for case in &CASES {
        println!(
            "\n{}: ns/op, min / median / max over {processes} fresh processes (each the median of its rounds)\n",
            case.title
        );
        println!("| contender | min | median | max |");
        println!("|---|---|---|---|");
        for (c, name) in case.contenders.iter().enumerate() {
            let v: Vec<f64> = per_process.iter().map(|m| m[first + c]).collect();
            let (min, max) = v
                .iter()
                .fold((f64::MAX, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
            println!(
                "| {name} | {min:.1} | {:.1} | {max:.1} |",
                median(v.clone())
            );
        }
        // The ratio asked for: in every process, promlite against that
        // process's faster peer.
        let worst: Vec<String> = (0..case.ours)
            .map(|c| {
                let worst = per_process
                    .iter()
                    .map(|m| {
                        let peers = &m[first + case.ours..first + case.contenders.len()];
                        m[first + c] / peers.iter().copied().fold(f64::MAX, f64::min)
                    })
                    .fold(0f64, f64::max);
                format!("{} {worst:.2}x", case.contenders[c])
            })
            .collect();
        println!(
            "\nworst process: {} the faster peer of the same process (target <= {}x)",
            worst.join(", "),
            case.target
        );
        first += case.contenders.len();
    }
}
