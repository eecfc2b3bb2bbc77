//! promlite against the `prometheus` and `prometheus-client` crates, in one run.
//!
//!     cargo bench --manifest-path bench/Cargo.toml
//!
//! The machine is shared and noisy, so every case runs its contenders interleaved
//! (round 1: A, B, C; round 2: A, B, C; ...) and reports the median ns/op with the
//! min-max over rounds. The contended cases also read each thread's CPU time
//! (/proc/thread-self/schedstat), to show that both threads really ran at once.
//! A counting global allocator gives allocations per warm scrape and heap bytes per
//! series. `BENCH_ROUNDS` (default 15) sets the number of rounds; `BENCH_ONLY=word`
//! runs only the cases named with it (`kept`, `labeled`, `observe`, `native`,
//! `exemplar`, `contended`, `encode`, `memory`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Counting allocator: number of allocations and live bytes.

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes unchanged to the system allocator; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        LIVE_BYTES.fetch_add(layout.size(), Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        LIVE_BYTES.fetch_add(new_size, Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------
// Timing.

/// Nanoseconds per operation over rounds: median, min, max.
#[derive(Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(mut samples: Vec<f64>) -> Stats {
    samples.sort_by(f64::total_cmp);
    Stats {
        median: samples[samples.len() / 2],
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

/// `BENCH_ONLY=word` runs only the cases whose name contains `word`.
fn wanted(case: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| case.contains(&only))
}

fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
}

/// A contender: a name and a body that runs `n` operations.
type Body<'a> = Box<dyn FnMut(u64) + 'a>;

/// Runs the contenders interleaved, each round long enough to time (about 20 ms).
fn interleaved(contenders: &mut [(&str, Body<'_>)]) -> Vec<Stats> {
    // Calibrate the iteration count of each contender once: about 20 ms a round.
    let iters: Vec<u64> = contenders
        .iter_mut()
        .map(|(_, body)| {
            let mut n = 1u64;
            loop {
                let t = Instant::now();
                body(n);
                let took = t.elapsed();
                if took > Duration::from_millis(2) {
                    let per_op = took.as_nanos() as f64 / n as f64;
                    break ((20e6 / per_op) as u64).max(1);
                }
                n *= 4;
            }
        })
        .collect();
    let mut samples = vec![Vec::new(); contenders.len()];
    for _ in 0..rounds() {
        for (i, (_, body)) in contenders.iter_mut().enumerate() {
            let t = Instant::now();
            body(iters[i]);
            samples[i].push(t.elapsed().as_nanos() as f64 / iters[i] as f64);
        }
    }
    samples.into_iter().map(stats).collect()
}

/// This thread's CPU time so far (first field of /proc/thread-self/schedstat, in ns).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `op` `n` times on each of 2 threads at once. Returns the wall ns per op,
/// and how parallel the run was: the lower of the two threads' CPU time over
/// their own run time (1.0: never descheduled), times the overlap of the two
/// runs (their common time over their total span; 1.0: started and ended together).
fn two_threads(n: u64, op: &(dyn Fn(u64) + Sync)) -> (f64, f64) {
    let barrier = Barrier::new(3);
    let runs: Vec<(Instant, Instant, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let cpu = thread_cpu_ns();
                    let start = Instant::now();
                    op(n);
                    (start, Instant::now(), thread_cpu_ns() - cpu)
                })
            })
            .collect();
        barrier.wait();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first_start = runs[0].0.min(runs[1].0);
    let last_end = runs[0].1.max(runs[1].1);
    let span = (last_end - first_start).as_nanos() as f64;
    let common = runs[0]
        .1
        .min(runs[1].1)
        .saturating_duration_since(runs[0].0.max(runs[1].0));
    let busy = runs
        .iter()
        .map(|(start, end, cpu)| *cpu as f64 / (*end - *start).as_nanos() as f64)
        .fold(f64::INFINITY, f64::min);
    (
        span / n as f64,
        busy.min(1.0) * common.as_nanos() as f64 / span,
    )
}

/// Contended contenders, interleaved like the others; reports how parallel the runs
/// measured. Each round lasts about 100 ms, so that thread start-up is negligible and
/// the scheduler has run both threads at once for most of it.
fn interleaved_two_threads(contenders: &[(&str, &(dyn Fn(u64) + Sync))]) -> Vec<(Stats, f64)> {
    let iters: Vec<u64> = contenders
        .iter()
        .map(|(_, op)| {
            let (ns, _) = two_threads(100_000, *op);
            ((100e6 / ns) as u64).max(100_000)
        })
        .collect();
    let mut samples = vec![Vec::new(); contenders.len()];
    let mut parallel = vec![Vec::new(); contenders.len()];
    for _ in 0..rounds() {
        for (i, (_, op)) in contenders.iter().enumerate() {
            let (ns, par) = two_threads(iters[i], *op);
            samples[i].push(ns);
            parallel[i].push(par);
        }
    }
    let parallel = parallel.into_iter().map(|p| stats(p).median);
    samples.into_iter().map(stats).zip(parallel).collect()
}

// ---------------------------------------------------------------------------
// The contenders' setups.

const NAMESPACE: &str = "default";
const LOOKUP_KEYS: usize = 64;
const BUCKETS: [f64; 5] = [1.0, 2.0, 5.0, 6.0, 10.0];

fn pod(i: usize) -> String {
    format!("app-7d9f8c6b5-{i:05}")
}

/// Observations spread over every bucket.
fn observations() -> Vec<f64> {
    (0..64).map(|i| (i as f64 * 0.19) % 12.0).collect()
}

/// The labeled-lookup contenders: one counter family each, with the
/// `LOOKUP_KEYS` label sets already created.
struct Labeled {
    ours: promlite::Family<promlite::Counter>,
    theirs: prometheus::IntCounterVec,
    client: prometheus_client::metrics::family::Family<
        pc::Labels,
        prometheus_client::metrics::counter::Counter,
    >,
    pods: Vec<String>,
    keys: Vec<pc::Labels>,
}

impl Labeled {
    fn new(registry: &promlite::Registry) -> Labeled {
        let ours = registry
            .counter_family("requests_total", "r", &["namespace", "pod"])
            .unwrap();
        let theirs = prometheus::IntCounterVec::new(
            prometheus::Opts::new("requests_total", "r"),
            &["namespace", "pod"],
        )
        .unwrap();
        let client = Default::default();
        let pods: Vec<String> = (0..LOOKUP_KEYS).map(pod).collect();
        let keys: Vec<pc::Labels> = pods
            .iter()
            .map(|p| pc::Labels {
                namespace: NAMESPACE.into(),
                pod: p.clone(),
            })
            .collect();
        let labeled = Labeled {
            ours,
            theirs,
            client,
            pods,
            keys,
        };
        for (pod, key) in labeled.pods.iter().zip(&labeled.keys) {
            labeled.ours.with_labels(&[NAMESPACE, pod]).unwrap();
            labeled.theirs.with_label_values(&[NAMESPACE, pod]);
            let _ = labeled.client.get_or_create(key);
        }
        labeled
    }
}

mod pc {
    //! prometheus-client's label set: a plain struct, as its docs recommend.
    use prometheus_client::encoding::EncodeLabelSet;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct Labels {
        pub namespace: String,
        pub pod: String,
    }
}

struct Row {
    case: String,
    promlite: String,
    prometheus: String,
    client: String,
    ratio: String,
    target: String,
}

/// A two-thread case's figure: its stats and how far both threads ran at once.
fn fmt_parallel((s, parallel): (Stats, f64)) -> String {
    format!("{} [parallel {parallel:.2}]", fmt(s))
}

fn fmt(s: Stats) -> String {
    if s.median >= 100_000.0 {
        format!(
            "{:.2} ms ({:.2}-{:.2})",
            s.median / 1e6,
            s.min / 1e6,
            s.max / 1e6
        )
    } else {
        format!("{:.1} ns ({:.1}-{:.1})", s.median, s.min, s.max)
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let rounds = rounds();
    eprintln!(
        "promlite benchmark: {rounds} interleaved rounds per case, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();

    // --- counter inc through a kept handle, and a bare fetch_add for scale.
    if wanted("kept") {
        let registry = promlite::Registry::new();
        let ours = registry.counter("c_total", "c").unwrap();
        let theirs = prometheus::IntCounter::new("c_total", "c").unwrap();
        let client: prometheus_client::metrics::counter::Counter = Default::default();
        let bare = AtomicU64::new(0);
        let s = interleaved(&mut [
            (
                "promlite",
                Box::new(|n| (0..n).for_each(|_| black_box(&ours).inc())),
            ),
            (
                "prometheus",
                Box::new(|n| (0..n).for_each(|_| black_box(&theirs).inc())),
            ),
            (
                "prometheus-client",
                Box::new(|n| {
                    (0..n).for_each(|_| {
                        black_box(&client).inc();
                    })
                }),
            ),
            (
                "fetch_add",
                Box::new(|n| {
                    (0..n).for_each(|_| {
                        black_box(&bare).fetch_add(1, Relaxed);
                    })
                }),
            ),
        ]);
        rows.push(Row {
            case: "counter inc, kept handle".into(),
            promlite: fmt(s[0]),
            prometheus: fmt(s[1]),
            client: fmt(s[2]),
            ratio: format!(
                "{:.2}x bare fetch_add ({:.1} ns)",
                s[0].median / s[3].median,
                s[3].median
            ),
            target: "<= 1.2x fetch_add".into(),
        });
    }

    // --- labeled inc with the lookup each time (64 label sets, 2 labels each).
    if wanted("labeled") {
        let registry = promlite::Registry::new();
        let Labeled {
            ours,
            theirs,
            client,
            pods,
            keys,
        } = Labeled::new(&registry);
        let s = interleaved(&mut [
            (
                "promlite family.inc(&labels)",
                Box::new(|n| {
                    for i in 0..n as usize {
                        ours.inc(&[NAMESPACE, &pods[i % LOOKUP_KEYS]]).unwrap();
                    }
                }),
            ),
            (
                "prometheus",
                Box::new(|n| {
                    for i in 0..n as usize {
                        theirs
                            .with_label_values(&[NAMESPACE, &pods[i % LOOKUP_KEYS]])
                            .inc();
                    }
                }),
            ),
            (
                "prometheus-client",
                Box::new(|n| {
                    for i in 0..n as usize {
                        client.get_or_create(&keys[i % LOOKUP_KEYS]).inc();
                    }
                }),
            ),
            (
                "promlite with_labels(..).inc()",
                Box::new(|n| {
                    for i in 0..n as usize {
                        let handle = ours.with_labels(&[NAMESPACE, &pods[i % LOOKUP_KEYS]]);
                        handle.unwrap().inc();
                    }
                }),
            ),
        ]);
        let faster = s[1].median.min(s[2].median);
        rows.push(Row {
            case: "labeled inc, lookup each time".into(),
            promlite: format!(
                "{} `family.inc(&labels)`; {} `with_labels(&labels)?.inc()`",
                fmt(s[0]),
                fmt(s[3])
            ),
            prometheus: fmt(s[1]),
            client: fmt(s[2]),
            ratio: format!(
                "{:.2}x / {:.2}x faster peer",
                s[0].median / faster,
                s[3].median / faster
            ),
            target: "<= 0.7x".into(),
        });
    }

    // --- histogram observe, buckets 1,2,5,6,10; one thread, then two at once.
    if wanted("observe") {
        let registry = promlite::Registry::new();
        let ours = registry.histogram("h_seconds", "h", &BUCKETS).unwrap();
        let theirs = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("h_seconds", "h").buckets(BUCKETS.to_vec()),
        )
        .unwrap();
        let client = prometheus_client::metrics::histogram::Histogram::new(BUCKETS);
        let values = observations();
        let s = interleaved(&mut [
            (
                "promlite",
                Box::new(|n| {
                    for i in 0..n as usize {
                        black_box(&ours).observe(values[i % 64]);
                    }
                }),
            ),
            (
                "prometheus",
                Box::new(|n| {
                    for i in 0..n as usize {
                        black_box(&theirs).observe(values[i % 64]);
                    }
                }),
            ),
            (
                "prometheus-client",
                Box::new(|n| {
                    for i in 0..n as usize {
                        black_box(&client).observe(values[i % 64]);
                    }
                }),
            ),
        ]);
        let faster = s[1].median.min(s[2].median);
        rows.push(Row {
            case: "histogram observe".into(),
            promlite: fmt(s[0]),
            prometheus: fmt(s[1]),
            client: fmt(s[2]),
            ratio: format!("{:.2}x faster peer", s[0].median / faster),
            target: "<= 0.8x".into(),
        });

        let ours_op = |n: u64| {
            for i in 0..n as usize {
                ours.observe(values[i % 64]);
            }
        };
        let theirs_op = |n: u64| {
            for i in 0..n as usize {
                theirs.observe(values[i % 64]);
            }
        };
        let client_op = |n: u64| {
            for i in 0..n as usize {
                client.observe(values[i % 64]);
            }
        };
        let c = interleaved_two_threads(&[
            ("promlite", &ours_op),
            ("prometheus", &theirs_op),
            ("prometheus-client", &client_op),
        ]);
        rows.push(Row {
            case: "histogram observe, 2 threads at once".into(),
            promlite: fmt_parallel(c[0]),
            prometheus: fmt_parallel(c[1]),
            client: fmt_parallel(c[2]),
            ratio: format!("{:.2}x prometheus-client", c[0].0.median / c[2].0.median),
            target: "< 1x prometheus-client".into(),
        });
    }

    // --- native histogram observe (schema 3, at most 160 buckets), against
    // promlite's classic observe and prometheus-client's native histogram
    // (the prometheus crate has none); one thread, then two at once.
    if wanted("native") {
        use prometheus_client::metrics::histogram::NativeHistogramConfig;
        let registry = promlite::Registry::new();
        let classic = registry.histogram("h_seconds", "h", &BUCKETS).unwrap();
        let native = registry
            .native_histogram("n_seconds", "n", &promlite::NativeConfig::default())
            .unwrap();
        let client = prometheus_client::metrics::histogram::Histogram::new_native(
            NativeHistogramConfig::with_schema(3).max_buckets(160),
        );
        let values = observations();
        let s = interleaved(&mut [
            (
                "promlite native",
                Box::new(|n| {
                    for i in 0..n as usize {
                        black_box(&native).observe(values[i % 64]);
                    }
                }),
            ),
            (
                "promlite classic",
                Box::new(|n| {
                    for i in 0..n as usize {
                        black_box(&classic).observe(values[i % 64]);
                    }
                }),
            ),
            (
                "prometheus-client native",
                Box::new(|n| {
                    for i in 0..n as usize {
                        black_box(&client).observe(values[i % 64]);
                    }
                }),
            ),
        ]);
        rows.push(Row {
            case: "native histogram observe (schema 3, 160 buckets)".into(),
            promlite: fmt(s[0]),
            prometheus: "(no native histograms)".into(),
            client: fmt(s[2]),
            ratio: format!(
                "{:.2}x promlite classic ({}); {:.2}x prometheus-client",
                s[0].median / s[1].median,
                fmt(s[1]),
                s[0].median / s[2].median
            ),
            target: "<= 1.5x classic, < 1x prometheus-client".into(),
        });

        let native_op = |n: u64| {
            for i in 0..n as usize {
                native.observe(values[i % 64]);
            }
        };
        let classic_op = |n: u64| {
            for i in 0..n as usize {
                classic.observe(values[i % 64]);
            }
        };
        let client_op = |n: u64| {
            for i in 0..n as usize {
                client.observe(values[i % 64]);
            }
        };
        let c = interleaved_two_threads(&[
            ("promlite native", &native_op),
            ("promlite classic", &classic_op),
            ("prometheus-client native", &client_op),
        ]);
        rows.push(Row {
            case: "native histogram observe, 2 threads at once".into(),
            promlite: fmt_parallel(c[0]),
            prometheus: "(no native histograms)".into(),
            client: fmt_parallel(c[2]),
            ratio: format!(
                "{:.2}x promlite classic ({}); {:.2}x prometheus-client",
                c[0].0.median / c[1].0.median,
                fmt_parallel(c[1]),
                c[0].0.median / c[2].0.median
            ),
            target: "<= 1.5x classic, < 1x prometheus-client".into(),
        });
        black_box((&native, &classic, &client));
    }

    // --- exemplars: a trace ID recorded with the update, against the update alone.
    if wanted("exemplar") {
        const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
        let registry = promlite::Registry::new();
        let ours = registry.histogram("h_seconds", "h", &BUCKETS).unwrap();
        let counter = registry.counter("c_total", "c").unwrap();
        type Exemplar = Vec<(String, String)>;
        let client = prometheus_client::metrics::exemplar::HistogramWithExemplars::<Exemplar>::new(
            BUCKETS.into_iter(),
        );
        let client_counter =
            prometheus_client::metrics::exemplar::CounterWithExemplar::<Exemplar>::default();
        let trace = || vec![("trace_id".to_owned(), TRACE.to_owned())];
        let values = observations();
        let s = interleaved(&mut [
            (
                "promlite observe",
                Box::new(|n| {
                    for i in 0..n as usize {
                        black_box(&ours).observe(values[i % 64]);
                    }
                }),
            ),
            (
                "promlite observe_with_exemplar",
                Box::new(|n| {
                    for i in 0..n as usize {
                        black_box(&ours)
                            .observe_with_exemplar(values[i % 64], &[("trace_id", TRACE)])
                            .unwrap();
                    }
                }),
            ),
            (
                "prometheus-client observe with exemplar",
                Box::new(|n| {
                    for i in 0..n as usize {
                        black_box(&client).observe(values[i % 64], Some(trace()), None);
                    }
                }),
            ),
            (
                "promlite inc_by_with_exemplar",
                Box::new(|n| {
                    for _ in 0..n {
                        black_box(&counter)
                            .inc_by_with_exemplar(1.0, &[("trace_id", TRACE)])
                            .unwrap();
                    }
                }),
            ),
            (
                "prometheus-client inc_by with exemplar",
                Box::new(|n| {
                    for _ in 0..n {
                        black_box(&client_counter).inc_by(1, Some(trace()), None);
                    }
                }),
            ),
        ]);
        rows.push(Row {
            case: "histogram observe with an exemplar".into(),
            promlite: format!("{} (observe alone: {})", fmt(s[1]), fmt(s[0])),
            prometheus: "(no exemplars)".into(),
            client: fmt(s[2]),
            ratio: format!("{:.2}x prometheus-client", s[1].median / s[2].median),
            target: "(reported)".into(),
        });
        rows.push(Row {
            case: "counter inc with an exemplar".into(),
            promlite: fmt(s[3]),
            prometheus: "(no exemplars)".into(),
            client: fmt(s[4]),
            ratio: format!("{:.2}x prometheus-client", s[3].median / s[4].median),
            target: "(reported)".into(),
        });
    }

    // --- the same counter from 2 threads at once.
    if wanted("contended") {
        let registry = promlite::Registry::new();
        let ours = registry.counter("c_total", "c").unwrap();
        let theirs = prometheus::IntCounter::new("c_total", "c").unwrap();
        let client: prometheus_client::metrics::counter::Counter = Default::default();
        let ours_op = |n: u64| (0..n).for_each(|_| ours.inc());
        let theirs_op = |n: u64| (0..n).for_each(|_| theirs.inc());
        let client_op = |n: u64| {
            (0..n).for_each(|_| {
                client.inc();
            })
        };
        let c = interleaved_two_threads(&[
            ("promlite", &ours_op),
            ("prometheus", &theirs_op),
            ("prometheus-client", &client_op),
        ]);
        let faster = c[1].0.median.min(c[2].0.median);
        rows.push(Row {
            case: "counter inc, 2 threads at once".into(),
            promlite: fmt_parallel(c[0]),
            prometheus: fmt_parallel(c[1]),
            client: fmt_parallel(c[2]),
            ratio: format!("{:.2}x faster peer", c[0].0.median / faster),
            target: "(reported)".into(),
        });

        // Labeled inc with the lookup each time, the 64 label sets in turn, on
        // both threads: where the peers' read locks share one line between them.
        let Labeled {
            ours,
            theirs,
            client,
            pods,
            keys,
        } = Labeled::new(&registry);
        let ours_op = |n: u64| {
            for i in 0..n as usize {
                ours.inc(&[NAMESPACE, &pods[i % LOOKUP_KEYS]]).unwrap();
            }
        };
        let theirs_op = |n: u64| {
            for i in 0..n as usize {
                theirs
                    .with_label_values(&[NAMESPACE, &pods[i % LOOKUP_KEYS]])
                    .inc();
            }
        };
        let client_op = |n: u64| {
            for i in 0..n as usize {
                client.get_or_create(&keys[i % LOOKUP_KEYS]).inc();
            }
        };
        let c = interleaved_two_threads(&[
            ("promlite", &ours_op),
            ("prometheus", &theirs_op),
            ("prometheus-client", &client_op),
        ]);
        let faster = c[1].0.median.min(c[2].0.median);
        rows.push(Row {
            case: "labeled inc, lookup each time, 2 threads at once".into(),
            promlite: fmt_parallel(c[0]),
            prometheus: fmt_parallel(c[1]),
            client: fmt_parallel(c[2]),
            ratio: format!("{:.2}x faster peer", c[0].0.median / faster),
            target: "(reported)".into(),
        });
    }

    // --- encoding 10,000 counter series + 1,000 histogram series; allocations.
    if wanted("encode") {
        const COUNTERS: usize = 10_000;
        const HISTOGRAMS: usize = 1_000;
        let values = observations();

        let ours = promlite::Registry::new();
        let c = ours
            .counter_family("requests_total", "Requests.", &["namespace", "pod"])
            .unwrap();
        let h = ours
            .histogram_family(
                "duration_seconds",
                "Duration.",
                &["namespace", "pod"],
                &BUCKETS,
            )
            .unwrap();

        let theirs = prometheus::Registry::new();
        let tc = prometheus::IntCounterVec::new(
            prometheus::Opts::new("requests_total", "Requests."),
            &["namespace", "pod"],
        )
        .unwrap();
        let th = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new("duration_seconds", "Duration.")
                .buckets(BUCKETS.to_vec()),
            &["namespace", "pod"],
        )
        .unwrap();
        theirs.register(Box::new(tc.clone())).unwrap();
        theirs.register(Box::new(th.clone())).unwrap();

        let mut client = prometheus_client::registry::Registry::default();
        let cc = prometheus_client::metrics::family::Family::<
            pc::Labels,
            prometheus_client::metrics::counter::Counter,
        >::default();
        let ch = prometheus_client::metrics::family::Family::<
            pc::Labels,
            prometheus_client::metrics::histogram::Histogram,
        >::new_with_constructor(|| {
            prometheus_client::metrics::histogram::Histogram::new(BUCKETS)
        });
        client.register("requests", "Requests.", cc.clone());
        client.register("duration_seconds", "Duration.", ch.clone());

        // Each library fills its own registry in a loop of its own, as a program
        // would: the series of one are not scattered among the other's.
        let pods: Vec<String> = (0..COUNTERS).map(pod).collect();
        let value = |i: usize| values[i % 64];
        for (i, p) in pods.iter().enumerate() {
            c.with_labels(&[NAMESPACE, p])
                .unwrap()
                .inc_by(i as f64)
                .unwrap();
            if i < HISTOGRAMS {
                h.with_labels(&[NAMESPACE, p]).unwrap().observe(value(i));
            }
        }
        for (i, p) in pods.iter().enumerate() {
            tc.with_label_values(&[NAMESPACE, p]).inc_by(i as u64);
            if i < HISTOGRAMS {
                th.with_label_values(&[NAMESPACE, p]).observe(value(i));
            }
        }
        for (i, p) in pods.iter().enumerate() {
            let labels = pc::Labels {
                namespace: NAMESPACE.into(),
                pod: p.clone(),
            };
            cc.get_or_create(&labels).inc_by(i as u64);
            if i < HISTOGRAMS {
                ch.get_or_create(&labels).observe(value(i));
            }
        }

        let mut ours_text = Vec::new();
        let mut ours_om = Vec::new();
        let mut ours_pb = Vec::new();
        let mut theirs_buf = String::new();
        let mut client_buf = String::new();
        let encoder = prometheus::TextEncoder::new();
        let mut ours_text_scrape = || {
            ours_text.clear();
            promlite::encode_text(&ours, &mut ours_text);
        };
        let mut ours_om_scrape = || {
            ours_om.clear();
            promlite::encode_openmetrics(&ours, &mut ours_om);
        };
        let mut ours_pb_scrape = || {
            ours_pb.clear();
            promlite::encode(&ours, promlite::Format::Protobuf, &mut ours_pb);
        };
        let mut theirs_scrape = || {
            theirs_buf.clear();
            encoder
                .encode_utf8(&theirs.gather(), &mut theirs_buf)
                .unwrap();
        };
        let mut client_scrape = || {
            client_buf.clear();
            prometheus_client::encoding::text::encode(&mut client_buf, &client).unwrap();
        };
        // Warm every buffer, then count allocations in one more scrape each.
        let allocations = |scrape: &mut dyn FnMut()| {
            scrape();
            let before = ALLOCATIONS.load(Relaxed);
            scrape();
            ALLOCATIONS.load(Relaxed) - before
        };
        let allocs = [
            allocations(&mut ours_text_scrape),
            allocations(&mut ours_om_scrape),
            allocations(&mut theirs_scrape),
            allocations(&mut client_scrape),
            allocations(&mut ours_pb_scrape),
        ];
        let s = interleaved(&mut [
            (
                "promlite text",
                Box::new(|n| (0..n).for_each(|_| ours_text_scrape())),
            ),
            (
                "prometheus",
                Box::new(|n| (0..n).for_each(|_| theirs_scrape())),
            ),
            (
                "prometheus-client",
                Box::new(|n| (0..n).for_each(|_| client_scrape())),
            ),
            (
                "promlite openmetrics",
                Box::new(|n| (0..n).for_each(|_| ours_om_scrape())),
            ),
            (
                "promlite protobuf",
                Box::new(|n| (0..n).for_each(|_| ours_pb_scrape())),
            ),
        ]);
        let faster = s[1].median.min(s[2].median);
        rows.push(Row {
            case: format!("encode {COUNTERS} counter + {HISTOGRAMS} histogram series"),
            promlite: format!("{} text; {} OpenMetrics", fmt(s[0]), fmt(s[3])),
            prometheus: format!("{} (text)", fmt(s[1])),
            client: format!("{} (OpenMetrics)", fmt(s[2])),
            ratio: format!(
                "{:.2}x / {:.2}x faster peer (text / OpenMetrics)",
                s[0].median / faster,
                s[3].median / faster
            ),
            target: "<= 0.5x".into(),
        });
        rows.push(Row {
            case: format!("encode {COUNTERS} counter + {HISTOGRAMS} histogram series, protobuf"),
            promlite: fmt(s[4]),
            prometheus: String::new(),
            client: String::new(),
            ratio: format!(
                "{:.2}x promlite text ({:.2}x OpenMetrics)",
                s[4].median / s[0].median,
                s[4].median / s[3].median
            ),
            target: "<= 1x text".into(),
        });
        rows.push(Row {
            case: "heap allocations per warm scrape".into(),
            promlite: format!(
                "{} text, {} OpenMetrics, {} protobuf",
                allocs[0], allocs[1], allocs[4]
            ),
            prometheus: allocs[2].to_string(),
            client: allocs[3].to_string(),
            ratio: String::new(),
            target: "0".into(),
        });
        black_box((&ours_text, &ours_om, &ours_pb, &theirs_buf, &client_buf));

        // --- the same scrapes gzipped, as a server sends them to Prometheus:
        // encode alone, encode + promlite's gzip, encode + flate2 at level 1.
        let mut plain = Vec::new();
        let mut zipped = Vec::new();
        let mut gz = promlite::Gzip::new();
        for (format, name) in [
            (promlite::Format::Text, "text"),
            (promlite::Format::OpenMetrics, "OpenMetrics"),
        ] {
            let mut alone = Vec::new();
            let mut ours_plain = Vec::new();
            let mut ours_zipped = Vec::new();
            let mut flate_plain = Vec::new();
            let mut flate_zipped = Vec::new();
            let s = interleaved(&mut [
                (
                    "encode alone",
                    Box::new(|n| {
                        for _ in 0..n {
                            alone.clear();
                            promlite::encode(&ours, format, &mut alone);
                        }
                    }),
                ),
                (
                    "encode + promlite gzip",
                    Box::new(|n| {
                        for _ in 0..n {
                            ours_plain.clear();
                            promlite::encode(&ours, format, &mut ours_plain);
                            ours_zipped.clear();
                            gz.compress(&ours_plain, &mut ours_zipped);
                        }
                    }),
                ),
                (
                    "encode + flate2 level 1",
                    Box::new(|n| {
                        use std::io::Write as _;
                        for _ in 0..n {
                            flate_plain.clear();
                            promlite::encode(&ours, format, &mut flate_plain);
                            flate_zipped.clear();
                            let mut e = flate2::write::GzEncoder::new(
                                &mut flate_zipped,
                                flate2::Compression::new(1),
                            );
                            e.write_all(&flate_plain).unwrap();
                            e.finish().unwrap();
                        }
                    }),
                ),
            ]);
            // Both decompress to the scrape.
            for z in [&ours_zipped, &flate_zipped] {
                let mut back = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&z[..]), &mut back)
                    .unwrap();
                assert!(back == alone, "gzip round trip");
            }
            let allocs = allocations(&mut || {
                plain.clear();
                promlite::encode(&ours, format, &mut plain);
                zipped.clear();
                gz.compress(&plain, &mut zipped);
            });
            let size = |z: &Vec<u8>| {
                format!(
                    "{} bytes, {:.1}x smaller",
                    z.len(),
                    alone.len() as f64 / z.len() as f64
                )
            };
            rows.push(Row {
                case: format!("{name} scrape ({} bytes), encode + gzip", alone.len()),
                promlite: format!(
                    "{} ({}); encode alone {}; {allocs} allocations warm",
                    fmt(s[1]),
                    size(&ours_zipped),
                    fmt(s[0])
                ),
                prometheus: String::new(),
                client: format!("flate2 level 1: {} ({})", fmt(s[2]), size(&flate_zipped)),
                ratio: format!(
                    "{:.2}x encode alone (flate2 level 1: {:.2}x)",
                    s[1].median / s[0].median,
                    s[2].median / s[0].median
                ),
                target: ">= 6x smaller, <= 3x encode alone".into(),
            });
        }
    }

    // --- heap bytes per counter series (2 labels: namespace and a 19-byte pod name).
    if wanted("memory") {
        const SERIES: usize = 10_000;
        let pods: Vec<String> = (0..SERIES).map(pod).collect();
        let measure = |fill: &dyn Fn()| {
            let before = LIVE_BYTES.load(Relaxed);
            fill();
            (LIVE_BYTES.load(Relaxed) - before) as f64 / SERIES as f64
        };
        let ours_registry = promlite::Registry::new();
        let ours = measure(&|| {
            let f = ours_registry
                .counter_family("requests_total", "r", &["namespace", "pod"])
                .unwrap();
            for p in &pods {
                f.with_labels(&[NAMESPACE, p]).unwrap().inc();
            }
        });
        let theirs_vec = std::cell::RefCell::new(None);
        let theirs = measure(&|| {
            let v = prometheus::IntCounterVec::new(
                prometheus::Opts::new("requests_total", "r"),
                &["namespace", "pod"],
            )
            .unwrap();
            for p in &pods {
                v.with_label_values(&[NAMESPACE, p]).inc();
            }
            *theirs_vec.borrow_mut() = Some(v);
        });
        let client_family = std::cell::RefCell::new(None);
        let client = measure(&|| {
            let f = prometheus_client::metrics::family::Family::<
                pc::Labels,
                prometheus_client::metrics::counter::Counter,
            >::default();
            for p in &pods {
                // The family keeps its own copy of the label set; the temporary goes.
                f.get_or_create(&pc::Labels {
                    namespace: NAMESPACE.into(),
                    pod: p.clone(),
                })
                .inc();
            }
            *client_family.borrow_mut() = Some(f);
        });
        rows.push(Row {
            case: format!("heap bytes per counter series ({SERIES} series)"),
            promlite: format!("{ours:.0}"),
            prometheus: format!("{theirs:.0}"),
            client: format!("{client:.0}"),
            ratio: String::new(),
            target: "<= 100".into(),
        });
        black_box((&ours_registry, &theirs_vec, &client_family));
    }

    // --- heap bytes per native histogram series holding 160 buckets.
    if wanted("native") || wanted("memory") {
        use prometheus_client::metrics::histogram::{Histogram, NativeHistogramConfig};
        const SERIES: usize = 1_000;
        let pods: Vec<String> = (0..SERIES).map(pod).collect();
        // The middles of 160 neighbouring buckets of schema 3 (20 powers of two).
        let values: Vec<f64> = (0..160)
            .map(|k| 1e-6 * 2f64.powf((k as f64 + 0.5) / 8.0))
            .collect();
        let measure = |fill: &dyn Fn()| {
            let before = LIVE_BYTES.load(Relaxed);
            fill();
            (LIVE_BYTES.load(Relaxed) - before) as f64 / SERIES as f64
        };
        let ours_registry = promlite::Registry::new();
        let ours = measure(&|| {
            let f = ours_registry
                .native_histogram_family(
                    "duration_seconds",
                    "d",
                    &["namespace", "pod"],
                    &promlite::NativeConfig::default(),
                )
                .unwrap();
            for p in &pods {
                let h = f.with_labels(&[NAMESPACE, p]).unwrap();
                values.iter().for_each(|&v| h.observe(v));
            }
        });
        let client_family = std::cell::RefCell::new(None);
        let client = measure(&|| {
            let f = prometheus_client::metrics::family::Family::<pc::Labels, Histogram>::new_with_constructor(
                || Histogram::new_native(NativeHistogramConfig::with_schema(3).max_buckets(160)),
            );
            for p in &pods {
                let labels = pc::Labels {
                    namespace: NAMESPACE.into(),
                    pod: p.clone(),
                };
                let h = f.get_or_create(&labels);
                values.iter().for_each(|&v| h.observe(v));
            }
            *client_family.borrow_mut() = Some(f);
        });
        rows.push(Row {
            case: format!(
                "heap bytes per native histogram series, 160 buckets ({SERIES} series, one observing thread)"
            ),
            promlite: format!("{ours:.0}"),
            prometheus: "(no native histograms)".into(),
            client: format!("{client:.0}"),
            ratio: format!("{:.2}x prometheus-client", ours / client),
            target: "(reported)".into(),
        });
        black_box((&ours_registry, &client_family));
    }

    println!(
        "| case | promlite | prometheus 0.14 | prometheus-client 0.26 | promlite ratio | target |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.case, r.promlite, r.prometheus, r.client, r.ratio, r.target
        );
    }
    println!(
        "\nns/op: median (min-max) over {rounds} interleaved rounds; [parallel x]: median over rounds of (the lower thread's CPU time / its run time) x (the two runs' overlap / their span); 1.00 = both threads ran at once, undisturbed, the whole time."
    );
}
