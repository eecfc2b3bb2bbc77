//! Updates from many threads, checked through the exposition a scrape would see.

mod common;

use common::encode;
use promlite::{Format, Registry};
use std::sync::atomic::{AtomicBool, Ordering};

/// The value of the first sample line that starts with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

#[test]
fn n_threads_times_m_increments_are_exactly_n_times_m() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 50_000;
    let registry = Registry::new();
    let family = registry.counter_family("hits_total", "", &["who"]).unwrap();
    let shared = registry.counter("shared_total", "").unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let family = &family;
            let shared = &shared;
            s.spawn(move || {
                let mine = family.with_labels(&[&format!("t{}", t % 2)]).unwrap();
                for i in 0..PER_THREAD {
                    shared.inc();
                    if i % 2 == 0 {
                        mine.inc();
                    } else {
                        // The lookup path, every time.
                        family.with_labels(&[&format!("t{}", t % 2)]).unwrap().inc();
                    }
                }
            });
        }
    });
    let text = encode(&registry, Format::Text);
    assert_eq!(
        sample(&text, "shared_total "),
        (THREADS * PER_THREAD) as f64
    );
    let half = (THREADS / 2 * PER_THREAD) as f64;
    assert_eq!(sample(&text, "hits_total{who=\"t0\"}"), half);
    assert_eq!(sample(&text, "hits_total{who=\"t1\"}"), half);
}

/// Cumulative bucket counts, `_count` and `_sum` of the one series in `text`.
fn histogram(text: &str) -> (Vec<u64>, u64, f64) {
    let mut buckets = Vec::new();
    let mut count = None;
    let mut sum = None;
    for line in text.lines() {
        let (name, value) = line.rsplit_once(' ').unwrap();
        if name.starts_with("latency_seconds_bucket") {
            buckets.push(value.parse().unwrap());
        } else if name.starts_with("latency_seconds_count") {
            count = Some(value.parse().unwrap());
        } else if name.starts_with("latency_seconds_sum") {
            sum = Some(value.parse().unwrap());
        }
    }
    (buckets, count.unwrap(), sum.unwrap())
}

#[test]
fn histogram_scrapes_stay_consistent_while_two_threads_observe() {
    const SCRAPES: u64 = 3_000;
    let registry = Registry::new();
    let latency = registry
        .histogram("latency_seconds", "", &[1.0, 2.0, 5.0, 6.0, 10.0])
        .unwrap();
    let done = AtomicBool::new(false);
    let mut last: Vec<u64> = vec![0; 6];
    let observed: Vec<u64> = std::thread::scope(|s| {
        // Two observers run until every scrape is done, so each scrape races them.
        let observers: Vec<_> = (0..2u64)
            .map(|t| {
                let (latency, done) = (&latency, &done);
                s.spawn(move || {
                    let mut i = 0;
                    while !done.load(Ordering::Relaxed) {
                        latency.observe(((i + t) % 12) as f64);
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        let mut buf = Vec::new();
        for _ in 0..SCRAPES {
            buf.clear();
            promlite::encode_text(&registry, &mut buf);
            let (buckets, count, _) = histogram(std::str::from_utf8(&buf).unwrap());
            assert_eq!(buckets.len(), 6);
            assert_eq!(count, buckets[5], "_count differs from the +Inf bucket");
            for w in buckets.windows(2) {
                assert!(w[0] <= w[1], "cumulative buckets go down: {buckets:?}");
            }
            for (now, before) in buckets.iter().zip(&last) {
                assert!(
                    now >= before,
                    "a bucket went down between scrapes: {last:?} -> {buckets:?}"
                );
            }
            last = buckets;
        }
        done.store(true, Ordering::Relaxed);
        observers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(last[5] > 0, "the observers ran during the scrapes");

    // After the fact, every observation is there, in the right bucket.
    let (buckets, count, sum) = histogram(&encode(&registry, Format::Text));
    assert_eq!(count, observed[0] + observed[1], "no observation lost");
    let bounds = [1.0, 2.0, 5.0, 6.0, 10.0, f64::INFINITY];
    let mut expected = [0u64; 6];
    let mut expected_sum = 0.0;
    for (t, &n) in observed.iter().enumerate() {
        for i in 0..n {
            let v = ((i + t as u64) % 12) as f64;
            expected_sum += v;
            for (e, b) in expected.iter_mut().zip(bounds) {
                *e += u64::from(v <= b);
            }
        }
    }
    assert_eq!(buckets, expected);
    assert_eq!(sum, expected_sum); // whole numbers: exact in any order
    println!("{SCRAPES} consistent scrapes during {count} observations");
}

#[test]
fn labeled_histograms_from_many_threads_count_everything() {
    let registry = Registry::new();
    let family = registry
        .histogram_family("job_seconds", "", &["kind"], &[0.5])
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..16 {
            let family = &family;
            s.spawn(move || {
                let h = family
                    .with_labels(&[if t % 2 == 0 { "even" } else { "odd" }])
                    .unwrap();
                for _ in 0..10_000 {
                    h.observe(0.25);
                }
            });
        }
    });
    let text = encode(&registry, Format::Text);
    assert_eq!(sample(&text, "job_seconds_count{kind=\"even\"}"), 80_000.0);
    assert_eq!(sample(&text, "job_seconds_count{kind=\"odd\"}"), 80_000.0);
    assert_eq!(sample(&text, "job_seconds_sum{kind=\"odd\"}"), 20_000.0);
}
