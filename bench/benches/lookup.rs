//! A labeled update with the lookup each time, one label set over and over, in a
//! registry of 17 families: what a handler that calls `family.inc(&[ns, pod])`
//! on every request does. Where a series lands (hash seeds, heap layout) is
//! chosen per process, so this case runs in fresh processes and reports each
//! contender's per-process medians as min / median / max over the processes.
//!
//!     cargo bench --manifest-path bench/Cargo.toml --bench lookup
//!
//! `BENCH_PROCESSES` (default 8) fresh processes; in each, `BENCH_ROUNDS`
//! (default 9) interleaved rounds of 1,000,000 updates per contender.

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
const CONTENDERS: [&str; 4] = [
    "promlite family.inc(&labels)",
    "promlite with_labels(&labels)?.inc()",
    "prometheus with_label_values(&labels).inc()",
    "prometheus-client get_or_create(&labels).inc()",
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

/// One process: the medians over rounds, ns per update, one per contender.
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
    let n = 1_000_000u64;
    let mut samples = vec![Vec::new(); CONTENDERS.len()];
    for _ in 0..env("BENCH_ROUNDS", 9) {
        for (c, out) in samples.iter_mut().enumerate() {
            let started = Instant::now();
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
    println!(
        "\nlabeled inc, one label set each time, 17 families: ns/op, min / median / max over {processes} fresh processes (each the median of its rounds)\n"
    );
    println!("| contender | min | median | max |");
    println!("|---|---|---|---|");
    for (c, name) in CONTENDERS.iter().enumerate() {
        let v: Vec<f64> = per_process.iter().map(|m| m[c]).collect();
        let (min, max) = v
            .iter()
            .fold((f64::MAX, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
        println!(
            "| {name} | {min:.1} | {:.1} | {max:.1} |",
            median(v.clone())
        );
    }
    // The ratio asked for: in every process, promlite against that process's faster peer.
    let ratios: Vec<(f64, f64)> = per_process
        .iter()
        .map(|m| {
            let faster = m[2].min(m[3]);
            (m[0] / faster, m[1] / faster)
        })
        .collect();
    let worst_inc = ratios.iter().map(|r| r.0).fold(0f64, f64::max);
    let worst_handle = ratios.iter().map(|r| r.1).fold(0f64, f64::max);
    println!(
        "\nworst process: promlite `family.inc` {worst_inc:.2}x, `with_labels(..)?.inc()` {worst_handle:.2}x the faster peer of the same process (target <= 0.7x)"
    );
}
