//! [`Histogram`]: observations counted in buckets, with their sum.
//!
//! # Why the layout is what it is
//!
//! A scrape must never see `_count` differ from the `+Inf` bucket, nor cumulative
//! buckets that go down, even while other threads observe. Here `_count` is not
//! stored at all: the encoder sums the buckets as it writes them, so `+Inf` and
//! `_count` are the same number by construction, and each bucket only grows.
//!
//! Threads that observe at once must not fight over one cache line (three atomics on
//! a shared line cost more than a mutex). So every series has a few *stripes*, each
//! on its own cache lines: a thread that holds one of the process-wide stripe slots
//! writes its stripe alone, with plain atomic loads and stores (no read-modify-write,
//! no lock prefix); threads beyond the slots share one last stripe and use atomic
//! read-modify-writes there. A scrape adds the stripes up. Nothing ever blocks.

use crate::Error;
use crate::metrics::exemplar::Exemplars;
use crate::metrics::family::{Sealed, Series};
use crate::metrics::key::SeriesKey;
use crate::metrics::recent::Recent;
use crate::metrics::stripe;
use crate::metrics::timer::HistogramTimer;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::thread::LocalKey;
use std::time::Duration;

/// The Prometheus default buckets, for request latencies in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram. Cloning it is cheap and every clone updates the same series.
///
/// The buckets are upper bounds, finite and strictly increasing; the `+Inf`
/// bucket is always there and need not be given. Negative bounds and negative
/// observations are allowed, but OpenMetrics treats `_sum` as a counter: in that
/// format a histogram with a negative bound, or whose sum is negative, is written
/// without `_sum` and `_count` (the text format always has them).
///
/// ```
/// let registry = promlite::Registry::new();
/// let latency = registry
///     .histogram("job_seconds", "Time spent on a job.", &[1.0, 2.0, 5.0, 6.0, 10.0])
///     .unwrap();
/// latency.observe(0.3);
/// latency.observe(7.0);
/// {
///     let _timer = latency.start_timer(); // observes the elapsed seconds when dropped
/// }
/// assert_eq!(latency.count(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct Histogram {
    pub(crate) inner: Arc<HistogramSeries>,
}

#[derive(Debug)]
pub(crate) struct HistogramSeries {
    /// Upper bounds, shared by every series of a family: the `finite` bounds,
    /// then, when there are at most 16, `+Inf` up to a multiple of 4 so that the
    /// bucket search is whole SIMD compares (an `+Inf` bound never counts).
    pub(crate) bounds: Arc<[f64]>,
    /// How many finite bounds there are; the buckets are these and `+Inf`.
    pub(crate) finite: usize,
    /// The stripes, each `lines_per_stripe` blocks of 128 bytes: one count per bucket
    /// (the last is `+Inf`), then the sum as `f64` bits.
    lines: Box<[CacheLine]>,
    lines_per_stripe: usize,
    /// The label values and the creation time; see `key.rs`.
    pub(crate) key: SeriesKey,
    /// One per bucket, made on the first exemplar.
    exemplars: Exemplars,
}

/// 128 bytes: two cache lines, because CPUs fetch lines in adjacent pairs, and two
/// threads writing neighbouring 64-byte lines still slowed each other by 60%.
#[repr(align(128))]
#[derive(Debug, Default)]
struct CacheLine([AtomicU64; WORDS_PER_LINE]);

const WORDS_PER_LINE: usize = 16;

impl Histogram {
    /// `buckets` must already be checked by [`Buckets::new`].
    pub(crate) fn new(buckets: &Buckets, key: SeriesKey) -> Histogram {
        let (bounds, finite) = (Arc::clone(&buckets.bounds), buckets.finite);
        let words = finite + 2;
        let lines_per_stripe = words.div_ceil(WORDS_PER_LINE);
        let stripes = *SLOTS + 1;
        let lines = (0..stripes * lines_per_stripe)
            .map(|_| CacheLine::default())
            .collect();
        Histogram {
            inner: Arc::new(HistogramSeries {
                bounds,
                finite,
                lines,
                lines_per_stripe,
                key,
                exemplars: Exemplars::default(),
            }),
        }
    }

    /// Records one observation.
    ///
    /// `NaN` is counted (in the `+Inf` bucket, as in the other Prometheus clients)
    /// but not added to the sum, which it would otherwise turn into `NaN` for good.
    #[inline]
    pub fn observe(&self, v: f64) {
        self.observe_in(self.inner.bucket_index(v), v);
    }

    /// Observes `v`, whose bucket is `bucket`.
    #[inline(always)]
    fn observe_in(&self, bucket: usize, v: f64) {
        let series = &*self.inner;
        let Some(slot) = stripe_slot() else {
            return series.observe_shared(bucket, v);
        };
        // This thread is the only writer of its stripe: load and store suffice.
        let stripe = series.stripe(slot);
        let count = &stripe[bucket / WORDS_PER_LINE].0[bucket % WORDS_PER_LINE];
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if !v.is_nan() {
            let sum = series.finite + 1;
            let total = &stripe[sum / WORDS_PER_LINE].0[sum % WORDS_PER_LINE];
            let new = f64::from_bits(total.load(Ordering::Relaxed)) + v;
            total.store(new.to_bits(), Ordering::Relaxed);
        }
    }

    /// Records one observation, and keeps it as the exemplar of its bucket with
    /// `labels` (a trace ID, say), which OpenMetrics scrapes show on that
    /// bucket's line. Labels over 128 characters, or with invalid names, are
    /// refused with [`Error::InvalidExemplar`] and nothing is observed.
    ///
    /// ```
    /// let registry = promlite::Registry::new();
    /// let latency = registry.histogram("wait_seconds", "Waits.", &[0.1, 1.0]).unwrap();
    /// latency.observe_with_exemplar(0.25, &[("trace_id", "abc")]).unwrap();
    /// let mut buf = Vec::new();
    /// promlite::encode(&registry, promlite::Format::OpenMetrics, &mut buf);
    /// let text = String::from_utf8(buf).unwrap();
    /// assert!(text.contains("wait_seconds_bucket{le=\"1.0\"} 1 # {trace_id=\"abc\"} 0.25 "));
    /// ```
    pub fn observe_with_exemplar(&self, v: f64, labels: &[(&str, &str)]) -> Result<(), Error> {
        let series = &*self.inner;
        let bucket = series.bucket_index(v);
        series
            .exemplars
            .record(series.finite + 1, bucket, labels, v)?;
        self.observe_in(bucket, v);
        Ok(())
    }

    /// The exemplars of the buckets, as a scrape reads them.
    #[inline]
    pub(crate) fn exemplars(&self) -> &Exemplars {
        &self.inner.exemplars
    }

    /// Records a duration, in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Starts a timer that observes the elapsed seconds when it is dropped
    /// (or when [`HistogramTimer::observe`] is called).
    pub fn start_timer(&self) -> HistogramTimer<'_> {
        HistogramTimer::start(self)
    }

    /// How many observations were made.
    pub fn count(&self) -> u64 {
        (0..=self.inner.finite)
            .map(|i| self.inner.bucket_count(i))
            .sum()
    }

    /// The sum of all observations (`NaN` left out).
    pub fn sum(&self) -> f64 {
        self.inner.sum()
    }

    /// The (non-cumulative) count of bucket `i`, `i == finite` being `+Inf`.
    #[inline]
    pub(crate) fn bucket_count(&self, i: usize) -> u64 {
        self.inner.bucket_count(i)
    }
}

impl HistogramSeries {
    #[inline]
    fn bucket_index(&self, v: f64) -> usize {
        bucket_index(&self.bounds, self.finite, v)
    }

    /// The blocks of stripe `slot`.
    #[inline]
    fn stripe(&self, slot: usize) -> &[CacheLine] {
        let start = slot * self.lines_per_stripe;
        &self.lines[start..start + self.lines_per_stripe]
    }

    #[inline]
    fn word(&self, stripe: usize, i: usize) -> &AtomicU64 {
        &self.stripe(stripe)[i / WORDS_PER_LINE].0[i % WORDS_PER_LINE]
    }

    /// An observation by a thread without a stripe of its own: atomic
    /// read-modify-writes on the shared stripe.
    #[cold]
    fn observe_shared(&self, bucket: usize, v: f64) {
        let shared = *SLOTS;
        self.word(shared, bucket).fetch_add(1, Ordering::Relaxed);
        if !v.is_nan() {
            let _ = self.word(shared, self.finite + 1).fetch_update(
                Ordering::Relaxed,
                Ordering::Relaxed,
                |bits| Some((f64::from_bits(bits) + v).to_bits()),
            );
        }
    }

    fn stripes(&self) -> usize {
        self.lines.len() / self.lines_per_stripe
    }

    /// The (non-cumulative) count of bucket `i`, `i == finite` being `+Inf`.
    pub(crate) fn bucket_count(&self, i: usize) -> u64 {
        (0..self.stripes())
            .map(|s| self.word(s, i).load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn sum(&self) -> f64 {
        let i = self.finite + 1;
        (0..self.stripes())
            .map(|s| f64::from_bits(self.word(s, i).load(Ordering::Relaxed)))
            .sum()
    }
}

/// The validated bounds of a histogram family, with their `le` label values
/// rendered once for each format (so a scrape formats no bound).
#[derive(Debug)]
pub struct Buckets {
    /// The bounds as a series searches them; see [`HistogramSeries::bounds`].
    pub(crate) bounds: Arc<[f64]>,
    pub(crate) finite: usize,
    /// Whether a bound is negative: OpenMetrics then forbids `_sum` (and `_count`).
    pub(crate) negative: bool,
    /// The `le` values in the text format, `+Inf` last.
    pub(crate) le_text: Box<[Box<str>]>,
    /// The `le` values in OpenMetrics canonical form (`1.0`, not `1`), `+Inf` last.
    pub(crate) le_openmetrics: Box<[Box<str>]>,
}

impl Buckets {
    pub(crate) fn new(bounds: &[f64]) -> Result<Buckets, Error> {
        let bounds = check_buckets(bounds)?;
        let render = |canonical: bool| {
            bounds
                .iter()
                .chain([&f64::INFINITY])
                .map(|&b| crate::number::float_string(b, canonical).into())
                .collect()
        };
        let finite = bounds.len();
        let negative = bounds.first().is_some_and(|&b| b < 0.0);
        let mut search = bounds.to_vec();
        if finite <= 16 {
            search.resize(finite.next_multiple_of(4), f64::INFINITY);
        }
        Ok(Buckets {
            le_text: render(false),
            le_openmetrics: render(true),
            bounds: search.into(),
            finite,
            negative,
        })
    }
}

/// The index of the first bucket whose upper bound is `>= v` among `bounds`
/// (as [`Buckets::bounds`] lays them out, `finite` of them real); `NaN` goes to
/// `+Inf`.
#[inline]
pub(crate) fn bucket_index(bounds: &[f64], finite: usize, v: f64) -> usize {
    if v.is_nan() {
        finite
    } else if bounds.len() <= 16 {
        // Count the bounds below `v`, without a branch per bound: observed
        // values vary, and a mispredicted branch costs more than the compares.
        bounds.iter().map(|&b| usize::from(b < v)).sum()
    } else {
        bounds.partition_point(|&b| b < v)
    }
}

/// Checks explicit buckets: finite and strictly increasing. A trailing `+Inf` is
/// accepted and dropped, since that bucket is always written anyway.
pub(crate) fn check_buckets(bounds: &[f64]) -> Result<Arc<[f64]>, Error> {
    let bounds = match bounds.split_last() {
        Some((&last, rest)) if last == f64::INFINITY => rest,
        _ => bounds,
    };
    if let Some(bad) = bounds.iter().find(|b| !b.is_finite()) {
        return Err(Error::InvalidBuckets(format!(
            "{bad} is not a finite bound"
        )));
    }
    if let Some(pair) = bounds.windows(2).find(|w| w[0] >= w[1]) {
        return Err(Error::InvalidBuckets(format!(
            "{} then {}: bounds must be strictly increasing",
            pair[0], pair[1]
        )));
    }
    Ok(bounds.into())
}

/// `count` buckets: `start`, `start + width`, `start + 2 * width`, ...
///
/// ```
/// assert_eq!(promlite::linear_buckets(1.0, 2.0, 3).unwrap(), [1.0, 3.0, 5.0]);
/// assert!(promlite::linear_buckets(1.0, 0.0, 3).is_err());
/// ```
pub fn linear_buckets(start: f64, width: f64, count: usize) -> Result<Vec<f64>, Error> {
    if width.is_nan() || width <= 0.0 || count == 0 {
        return Err(Error::InvalidBuckets(format!(
            "linear buckets need a positive width and at least one bucket (width {width}, count {count})"
        )));
    }
    finite_buckets((0..count).map(|i| start + width * i as f64).collect())
}

/// `count` buckets: `start`, `start * factor`, `start * factor^2`, ...
///
/// ```
/// assert_eq!(promlite::exponential_buckets(0.5, 2.0, 4).unwrap(), [0.5, 1.0, 2.0, 4.0]);
/// assert!(promlite::exponential_buckets(0.0, 2.0, 4).is_err());
/// ```
pub fn exponential_buckets(start: f64, factor: f64, count: usize) -> Result<Vec<f64>, Error> {
    if start.is_nan() || start <= 0.0 || factor.is_nan() || factor <= 1.0 || count == 0 {
        return Err(Error::InvalidBuckets(format!(
            "exponential buckets need start > 0, factor > 1 and at least one bucket (start {start}, factor {factor}, count {count})"
        )));
    }
    finite_buckets((0..count).map(|i| start * factor.powi(i as i32)).collect())
}

/// The helpers' results must be usable as they are: every bound finite.
fn finite_buckets(bounds: Vec<f64>) -> Result<Vec<f64>, Error> {
    match bounds.iter().find(|b| !b.is_finite()) {
        Some(bad) => Err(Error::InvalidBuckets(format!(
            "{bad} is not a finite bound"
        ))),
        None => check_buckets(&bounds).map(|_| bounds),
    }
}

/// How many threads can hold a stripe of their own at once: twice the CPUs the
/// process may use (so the threads that run at once rarely end up sharing), at
/// least 2 and at most 16 (each stripe costs 128 bytes or more per series).
static SLOTS: LazyLock<usize> = LazyLock::new(|| {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 2)
        .clamp(2, 16)
});

static POOL: stripe::Pool = stripe::Pool::new();

thread_local! {
    static SLOT: stripe::ThreadSlot = const { stripe::ThreadSlot::new(&POOL) };
}

/// This thread's own stripe, if it has (or can claim) one.
#[inline]
fn stripe_slot() -> Option<usize> {
    stripe::slot(&SLOT, || *SLOTS)
}

impl Sealed for Histogram {}

impl Series for Histogram {
    type Config = Buckets;
    fn create(config: &Self::Config, key: SeriesKey) -> Self {
        Histogram::new(config, key)
    }
    #[inline]
    fn key(&self) -> &SeriesKey {
        &self.inner.key
    }
    fn recent() -> &'static LocalKey<RefCell<Recent<Self>>> {
        thread_local! {
            static RECENT: RefCell<Recent<Histogram>> = const { RefCell::new(Recent::new()) };
        }
        &RECENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(bounds: &[f64]) -> Histogram {
        Histogram::new(&Buckets::new(bounds).unwrap(), SeriesKey::new(&[], 0))
    }

    fn buckets(h: &Histogram) -> Vec<u64> {
        (0..=h.inner.finite)
            .map(|i| h.inner.bucket_count(i))
            .collect()
    }

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = histogram(&[1.0, 2.0, 5.0, 6.0, 10.0]);
        for v in [0.5, 1.0, 1.5, 5.0, 5.5, 10.0, 11.0, f64::INFINITY, -3.0] {
            h.observe(v);
        }
        assert_eq!(buckets(&h), [3, 1, 1, 1, 1, 2]);
        assert_eq!(h.count(), 9);
        assert_eq!(h.sum(), f64::INFINITY);
    }

    #[test]
    fn nan_is_counted_in_inf_but_kept_out_of_the_sum() {
        let h = histogram(&[1.0]);
        h.observe(0.5);
        h.observe(f64::NAN);
        assert_eq!(buckets(&h), [1, 1]);
        assert_eq!(h.sum(), 0.5);
    }

    #[test]
    fn many_buckets_use_binary_search_with_the_same_rule() {
        let bounds: Vec<f64> = (1..=40).map(f64::from).collect();
        let h = histogram(&bounds);
        for v in [0.0, 1.0, 1.01, 17.0, 40.0, 40.5, f64::NAN] {
            h.observe(v);
        }
        let b = buckets(&h);
        assert_eq!(b[0], 2); // 0.0 and 1.0
        assert_eq!(b[1], 1); // 1.01
        assert_eq!(b[16], 1); // 17.0
        assert_eq!(b[39], 1); // 40.0
        assert_eq!(b[40], 2); // 40.5 and NaN
    }

    #[test]
    fn buckets_are_validated() {
        assert!(check_buckets(&[1.0, 2.0]).is_ok());
        assert_eq!(&*check_buckets(&[1.0, f64::INFINITY]).unwrap(), &[1.0]);
        assert!(check_buckets(&[]).is_ok());
        for bad in [
            &[2.0, 1.0][..],
            &[1.0, 1.0],
            &[f64::NAN],
            &[f64::NEG_INFINITY, 1.0],
            &[1.0, f64::INFINITY, f64::INFINITY],
        ] {
            assert!(
                matches!(check_buckets(bad), Err(Error::InvalidBuckets(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bucket_helpers() {
        assert_eq!(linear_buckets(0.0, 0.5, 3).unwrap(), [0.0, 0.5, 1.0]);
        assert!(linear_buckets(0.0, 1.0, 0).is_err());
        assert!(linear_buckets(0.0, f64::NAN, 2).is_err());
        assert_eq!(
            exponential_buckets(1.0, 10.0, 3).unwrap(),
            [1.0, 10.0, 100.0]
        );
        assert!(exponential_buckets(1.0, 1.0, 3).is_err());
        assert!(exponential_buckets(1.0, 1e300, 3).is_err()); // overflows to +Inf
    }

    #[test]
    fn timer_observes_on_drop_unless_discarded() {
        let h = histogram(&[0.001, 10.0]);
        {
            let _t = h.start_timer();
            std::thread::sleep(Duration::from_millis(2));
        }
        h.start_timer().discard();
        let secs = h.start_timer().observe();
        assert_eq!(h.count(), 2);
        assert_eq!(buckets(&h), [1, 1, 0]);
        assert!(h.sum() >= 0.002 + secs);
    }

    #[test]
    fn threads_beyond_the_slots_share_a_stripe_without_losing_counts() {
        // Far more threads than stripe slots: most of them use the shared stripe.
        let h = histogram(&[1.0]);
        let threads = *SLOTS * 4;
        std::thread::scope(|s| {
            for t in 0..threads {
                let h = &h;
                s.spawn(move || {
                    for i in 0..10_000 {
                        h.observe(if (i + t) % 2 == 0 { 0.5 } else { 2.0 });
                    }
                });
            }
        });
        assert_eq!(h.count(), threads as u64 * 10_000);
        assert_eq!(
            buckets(&h),
            [threads as u64 * 5_000, threads as u64 * 5_000]
        );
        assert_eq!(h.sum(), threads as f64 * 5_000.0 * 2.5);
    }

    #[test]
    fn slots_are_given_back_when_threads_end() {
        // Only SLOTS distinct slots exist: if ending threads did not give theirs back,
        // no more than SLOTS of these short threads, run one after the other, could
        // get one. (Other tests may hold a few slots for a moment, hence the margin.)
        let served = (0..200)
            .filter(|_| std::thread::spawn(stripe_slot).join().unwrap().is_some())
            .count();
        assert!(
            served > *SLOTS * 4,
            "{served} of 200 threads got a stripe slot"
        );
    }
}
