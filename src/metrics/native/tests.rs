use super::*;
use std::collections::BTreeMap;

fn histogram(config: NativeConfig) -> NativeHistogram {
    NativeHistogram::new(&NativeLayout::new(&config).unwrap(), SeriesKey::new(&[], 0))
}

fn config(schema: i32, max_buckets: usize) -> NativeConfig {
    NativeConfig {
        schema,
        max_buckets,
        ..NativeConfig::default()
    }
}

/// What a scrape sees, with the buckets as maps from index to count.
#[derive(Debug, PartialEq)]
struct Seen {
    count: u64,
    sum: f64,
    schema: i32,
    zero: u64,
    positive: BTreeMap<i32, u64>,
    negative: BTreeMap<i32, u64>,
    classic: Vec<u64>,
}

fn seen(h: &NativeHistogram) -> Seen {
    let mut scratch = Vec::new();
    let s = h.inner.snapshot(&mut scratch);
    Seen {
        count: s.count,
        sum: s.sum,
        schema: s.schema,
        zero: s.zero_count,
        positive: s.positive.buckets().collect(),
        negative: s.negative.buckets().collect(),
        classic: s.classic.to_vec(),
    }
}

/// The buckets computed the plain way: each observation's index at `schema`.
fn expected(observations: &[f64], schema: i32, threshold: f64) -> [BTreeMap<i32, u64>; 2] {
    let mut out = [BTreeMap::new(), BTreeMap::new()];
    for &v in observations {
        if v.is_nan() || v.abs() <= threshold {
            continue;
        }
        let k = if v.is_infinite() {
            infinite_index(schema, &OCTAVES)
        } else {
            index(v.abs(), schema, &OCTAVES)
        };
        *out[usize::from(v < 0.0)].entry(k).or_insert(0) += 1;
    }
    out
}

/// The widest span of buckets a sign needs at `schema` (infinities apart).
fn span(observations: &[f64], schema: i32, threshold: f64) -> usize {
    let finite: Vec<f64> = observations
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    expected(&finite, schema, threshold)
        .iter()
        .map(|m| match (m.keys().next(), m.keys().next_back()) {
            (Some(lo), Some(hi)) => (hi - lo + 1) as usize,
            _ => 0,
        })
        .max()
        .unwrap()
}

/// A deterministic spread of values.
fn values(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            lo * (hi / lo).powf(u)
        })
        .collect()
}

#[test]
fn observations_land_in_the_bucket_of_their_index() {
    let h = histogram(config(3, 160));
    let mut observations = values(2000, 7, 1e-4, 10.0);
    observations.extend([1.0, 2.0, 0.5, 1.0905077326652577, -0.3, -1.0]);
    for &v in &observations {
        h.observe(v);
    }
    let s = seen(&h);
    let [positive, negative] = expected(&observations, 3, DEFAULT_NATIVE_ZERO_THRESHOLD);
    assert_eq!(s.schema, 3, "no reduction needed");
    assert_eq!(s.positive, positive);
    assert_eq!(s.negative, negative);
    assert_eq!(s.count, observations.len() as u64);
    assert_eq!(s.sum, observations.iter().fold(0.0, |a, v| a + v));
    assert_eq!(s.zero, 0);
}

#[test]
fn the_zero_bucket_holds_what_is_at_most_the_threshold() {
    let threshold = 0.001;
    let h = histogram(NativeConfig {
        zero_threshold: threshold,
        ..NativeConfig::default()
    });
    let above = f64::from_bits(threshold.to_bits() + 1);
    for v in [0.0, -0.0, threshold, -threshold, threshold / 2.0, 5e-324] {
        h.observe(v);
    }
    h.observe(above);
    h.observe(-above);
    let s = seen(&h);
    assert_eq!(s.zero, 6);
    let k = index(above, 3, &OCTAVES);
    assert_eq!(s.positive, BTreeMap::from([(k, 1)]));
    assert_eq!(s.negative, BTreeMap::from([(k, 1)]));
    assert_eq!(s.count, 8);

    // With a threshold of 0 only zero itself is in the zero bucket, and the
    // smallest subnormal has a bucket of its own.
    let h = histogram(NativeConfig {
        zero_threshold: 0.0,
        max_buckets: 3000,
        ..NativeConfig::default()
    });
    h.observe(0.0);
    h.observe(5e-324);
    let s = seen(&h);
    assert_eq!(s.zero, 1);
    assert_eq!(s.positive, BTreeMap::from([(-1074 * 8, 1)]));
}

#[test]
fn nan_is_counted_in_no_bucket_and_infinities_after_the_largest_value() {
    let h = histogram(NativeConfig {
        classic_buckets: vec![1.0],
        ..NativeConfig::default()
    });
    h.observe(0.5);
    h.observe(f64::INFINITY);
    h.observe(f64::NEG_INFINITY);
    h.observe(f64::INFINITY);
    let s = seen(&h);
    assert_eq!(s.count, 4);
    assert!(s.sum.is_nan(), "+Inf and -Inf add up to NaN");
    let inf = infinite_index(3, &OCTAVES);
    assert_eq!(
        s.positive,
        BTreeMap::from([(index(0.5, 3, &OCTAVES), 1), (inf, 2)])
    );
    assert_eq!(s.negative, BTreeMap::from([(inf, 1)]));
    // -Inf is below every classic bound, +Inf in the +Inf bucket.
    assert_eq!(s.classic, [2, 2]);

    let h = histogram(NativeConfig {
        classic_buckets: vec![1.0],
        ..NativeConfig::default()
    });
    h.observe(2.0);
    h.observe(f64::NAN);
    let s = seen(&h);
    assert_eq!(s.count, 2, "NaN is counted");
    assert!(
        s.sum.is_nan(),
        "and makes the sum NaN, as Prometheus defines it"
    );
    assert_eq!(s.positive, BTreeMap::from([(8, 1)]), "in no native bucket");
    assert_eq!(s.classic, [0, 2], "in the classic +Inf bucket");
    let h = histogram(NativeConfig::default());
    h.observe(f64::INFINITY);
    assert_eq!(seen(&h).sum, f64::INFINITY);
}

#[test]
fn too_many_buckets_halve_the_resolution_until_they_fit() {
    for (max_buckets, lo, hi) in [
        (8, 1.0, 1000.0),
        (20, 1e-6, 1e6),
        (160, 1e-9, 1e9),
        (2, 3.0, 3e9),
    ] {
        let h = histogram(config(8, max_buckets));
        let observations = values(5000, max_buckets as u64, lo, hi);
        for &v in &observations {
            h.observe(v);
        }
        let s = seen(&h);
        // The finest schema at which the buckets fit: the one reduced to.
        let want = (MIN_SCHEMA..=8)
            .rev()
            .find(|&schema| span(&observations, schema, 0.0) <= max_buckets)
            .unwrap_or(MIN_SCHEMA);
        assert_eq!(s.schema, want, "{max_buckets} buckets, {lo}..{hi}");
        let [positive, _] = expected(&observations, want, DEFAULT_NATIVE_ZERO_THRESHOLD);
        assert_eq!(s.positive, positive, "merged buckets are exact");
        assert_eq!(s.count, 5000);
        assert!(s.positive.len() <= max_buckets);
    }
}

#[test]
fn both_signs_share_the_schema_and_the_window_slides_before_it_halves() {
    let h = histogram(config(3, 16));
    // A slow climb: each new bucket is just above the last, so the window
    // slides along; only the span of what was seen decides the resolution.
    let mut observations = Vec::new();
    for i in 0..40 {
        let v = 1.05f64.powi(i);
        observations.push(v);
        observations.push(-v / 3.0);
    }
    for &v in &observations {
        h.observe(v);
    }
    let s = seen(&h);
    let want = (MIN_SCHEMA..=3)
        .rev()
        .find(|&schema| span(&observations, schema, 0.0) <= 16)
        .unwrap();
    assert_eq!(s.schema, want);
    let [positive, negative] = expected(&observations, want, DEFAULT_NATIVE_ZERO_THRESHOLD);
    assert_eq!((s.positive, s.negative), (positive, negative));
}

#[test]
fn at_the_lowest_resolution_an_outlier_counts_in_the_nearest_bucket() {
    let h = histogram(config(-4, 2));
    h.observe(1.0); // bucket 0
    h.observe(1e9); // 2^29.9: bucket 2 at schema -4; the window holds 0..=1
    let s = seen(&h);
    assert_eq!(s.schema, -4);
    assert_eq!(s.positive, BTreeMap::from([(0, 1), (1, 1)]));
    assert_eq!(s.count, 2);
}

#[test]
fn stripes_at_other_schemas_merge_at_the_lowest() {
    let h = histogram(config(3, 10));
    let narrow = values(500, 1, 1.0, 1.5);
    let wide = values(500, 2, 1.0, 1e6);
    std::thread::scope(|s| {
        s.spawn(|| narrow.iter().for_each(|&v| h.observe(v)));
        s.spawn(|| wide.iter().for_each(|&v| h.observe(v)));
    });
    let all: Vec<f64> = narrow.iter().chain(&wide).copied().collect();
    let s = seen(&h);
    let want = (MIN_SCHEMA..=3)
        .rev()
        .find(|&schema| span(&all, schema, 0.0) <= 10)
        .unwrap();
    assert_eq!(s.schema, want);
    assert_eq!(
        s.positive,
        expected(&all, want, DEFAULT_NATIVE_ZERO_THRESHOLD)[0]
    );

    // Two stripes that each fit but not together: the scrape reduces further.
    let h = histogram(config(3, 10));
    let low = values(300, 3, 1e-3, 1.2e-3);
    let high = values(300, 4, 1e3, 1.2e3);
    std::thread::scope(|s| {
        s.spawn(|| low.iter().for_each(|&v| h.observe(v)));
        s.spawn(|| high.iter().for_each(|&v| h.observe(v)));
    });
    let all: Vec<f64> = low.iter().chain(&high).copied().collect();
    let s = seen(&h);
    let want = (MIN_SCHEMA..=3)
        .rev()
        .find(|&schema| span(&all, schema, 0.0) <= 10)
        .unwrap();
    assert!(want < 3);
    assert_eq!(s.schema, want);
    assert_eq!(
        s.positive,
        expected(&all, want, DEFAULT_NATIVE_ZERO_THRESHOLD)[0]
    );
}

#[test]
fn a_scrape_under_observers_sees_whole_observations() {
    // Two threads observe 1 and 4 (and the classic buckets see them too), as
    // fast as they can; every snapshot must be of whole observations: the
    // count, the buckets and the sum of the same ones.
    let h = histogram(NativeConfig {
        classic_buckets: vec![2.0],
        ..NativeConfig::default()
    });
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (one, four) = (index(1.0, 3, &OCTAVES), index(4.0, 3, &OCTAVES));
    let mut scrapes = 0;
    std::thread::scope(|s| {
        for t in 0..2 {
            let (h, stop) = (&h, &stop);
            s.spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    h.observe(if i % 2 == 0 { 1.0 } else { 4.0 });
                    i += 1;
                }
            });
        }
        let deadline = Instant::now() + Duration::from_millis(400);
        let mut last = 0;
        while Instant::now() < deadline {
            let s = seen(&h);
            let ones = s.positive.get(&one).copied().unwrap_or(0);
            let fours = s.positive.get(&four).copied().unwrap_or(0);
            assert_eq!(s.count, ones + fours, "{s:?}");
            assert_eq!(s.sum, ones as f64 + 4.0 * fours as f64, "{s:?}");
            assert_eq!(s.classic, [ones, fours], "{s:?}");
            assert!(s.count >= last, "the count went down");
            last = s.count;
            scrapes += 1;
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(scrapes > 10, "{scrapes} scrapes");
}

#[test]
fn a_writer_asked_for_a_copy_makes_one_at_its_next_observation() {
    let h = histogram(config(3, 16));
    h.observe(1.0);
    let series = &*h.inner;
    let stripe = series.stripes().next().unwrap();
    let words = series.stripe_words();
    assert!(stripe.published.get().is_none(), "no copy until asked");
    let ticket = stripe.request.fetch_add(1, Ordering::Relaxed) + 1;
    let mut out = vec![0; words];
    assert!(!stripe.try_read_published(&mut out, ticket));
    h.observe(-2.0);
    assert!(stripe.try_read_published(&mut out, ticket));
    let mut live = vec![0; words];
    assert!(stripe.try_read(&mut live, series.width));
    assert_eq!(out, live, "the copy is the stripe after the observation");
    assert_eq!(stripe.served.load(Ordering::Relaxed), ticket);
}

#[test]
fn threads_without_a_stripe_of_their_own_share_one_without_losing_counts() {
    let h = histogram(NativeConfig {
        max_buckets: 4,
        ..NativeConfig::default()
    });
    let series = &*h.inner;
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..5000 {
                    // Wide enough to move and halve the shared window meanwhile.
                    series.observe_shared(1.5f64.powi((i + t) % 40));
                }
            });
        }
    });
    let s = seen(&h);
    assert_eq!(s.count, 20_000);
    assert_eq!(s.positive.values().sum::<u64>(), 20_000);
    assert!(s.positive.len() <= 4);
}

#[test]
fn configurations_are_checked() {
    for bad in [
        config(9, 160),
        config(-5, 160),
        config(3, 0),
        config(3, MAX_BUCKETS_LIMIT + 1),
        NativeConfig {
            zero_threshold: -1.0,
            ..NativeConfig::default()
        },
        NativeConfig {
            zero_threshold: f64::NAN,
            ..NativeConfig::default()
        },
        NativeConfig {
            classic_buckets: vec![2.0, 1.0],
            ..NativeConfig::default()
        },
    ] {
        assert!(
            matches!(NativeLayout::new(&bad), Err(Error::InvalidBuckets(_))),
            "{bad:?}"
        );
    }
    assert!(NativeConfig::from_growth_factor(f64::NAN).is_err());
    assert!(NativeConfig::from_growth_factor(0.5).is_err());
    assert_eq!(NativeConfig::from_growth_factor(1.1).unwrap().schema, 3);
}

#[test]
fn memory_is_fixed_when_the_series_is_made() {
    let h = histogram(config(8, 20));
    for v in values(20_000, 9, 1e-30, 1e30) {
        h.observe(v);
        h.observe(-v);
    }
    let series = &*h.inner;
    for stripe in series.stripes() {
        assert_eq!(stripe.positive.len(), 20);
        assert_eq!(stripe.negative.get().unwrap().len(), 20);
    }
    let s = seen(&h);
    assert!(s.positive.len() <= 20 && s.negative.len() <= 20);
    assert_eq!(s.count, 40_000);
}

#[test]
fn timers_observe_seconds() {
    let h = histogram(NativeConfig::default());
    {
        let _t = h.start_timer();
        std::thread::sleep(Duration::from_millis(2));
    }
    h.start_timer().discard();
    let secs = h.start_timer().observe();
    assert_eq!(h.count(), 2);
    assert!(h.sum() >= 0.002 + secs);
}
