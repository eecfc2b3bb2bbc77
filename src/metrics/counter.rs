//! [`Counter`]: a value that only goes up.

use crate::Error;
use crate::metrics::exemplar::Exemplars;
use crate::metrics::family::{Family, Sealed, Series};
use crate::metrics::key::SeriesKey;
use crate::metrics::recent::Recent;
use crate::number::MAX_EXACT;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread::LocalKey;

/// A monotonic counter. Cloning it is cheap and every clone updates the same series.
///
/// Whole increments ([`inc`](Counter::inc), and [`inc_by`](Counter::inc_by) with a
/// whole number) are one atomic add on an integer, so they never lose precision and
/// never loop; fractional increments go to a second, floating-point cell.
///
/// ```
/// let registry = promlite::Registry::new();
/// let jobs = registry.counter("jobs_done_total", "Jobs finished.").unwrap();
/// jobs.inc();
/// jobs.inc_by(2.5).unwrap();
/// assert_eq!(jobs.get(), 3.5);
/// assert!(jobs.inc_by(-1.0).is_err()); // a counter never goes down
/// ```
#[derive(Clone, Debug)]
pub struct Counter {
    pub(crate) inner: Arc<CounterSeries>,
}

#[derive(Debug)]
pub(crate) struct CounterSeries {
    /// Whole increments, added with one `fetch_add`.
    whole: AtomicU64,
    /// Fractional increments, as `f64` bits, added with a compare-and-swap loop.
    fraction: AtomicU64,
    /// The label values and the creation time; see `key.rs`.
    pub(crate) key: SeriesKey,
    exemplar: Exemplars,
}

impl Counter {
    pub(crate) fn new(key: SeriesKey) -> Counter {
        Counter {
            inner: Arc::new(CounterSeries {
                whole: AtomicU64::new(0),
                fraction: AtomicU64::new(0f64.to_bits()),
                key,
                exemplar: Exemplars::default(),
            }),
        }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.inner.whole.fetch_add(1, Relaxed);
    }

    /// Adds `v`, which must be finite and not negative; anything else is refused
    /// with [`Error::InvalidIncrement`] and the counter is left unchanged.
    pub fn inc_by(&self, v: f64) -> Result<(), Error> {
        check_increment(v)?;
        self.add(v);
        Ok(())
    }

    /// Adds `v`, already checked.
    fn add(&self, v: f64) {
        // Whole numbers go to the integer cell, exact, as long as it stays below
        // 2^53 (beyond, an f64 could not tell its next values apart anyway).
        if v.fract() == 0.0 && v < MAX_EXACT {
            let added = self.inner.whole.fetch_update(Relaxed, Relaxed, |whole| {
                whole
                    .checked_add(v as u64)
                    .filter(|&sum| (sum as f64) < MAX_EXACT)
            });
            if added.is_ok() {
                return;
            }
        }
        let _ = self.inner.fraction.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + v).to_bits())
        });
    }

    /// Adds `v` (as [`inc_by`](Counter::inc_by) does) and records it as the
    /// counter's exemplar with `labels` (a trace ID, say), which OpenMetrics
    /// scrapes show after the value. The labels may have at most 128 characters
    /// of names and values together; invalid ones are refused with
    /// [`Error::InvalidExemplar`] and nothing is added.
    ///
    /// ```
    /// let registry = promlite::Registry::new();
    /// let orders = registry.counter("orders_total", "Orders.").unwrap();
    /// orders.inc_by_with_exemplar(1.0, &[("trace_id", "4bf92f3577b34da6")]).unwrap();
    /// let mut buf = Vec::new();
    /// promlite::encode(&registry, promlite::Format::OpenMetrics, &mut buf);
    /// let text = String::from_utf8(buf).unwrap();
    /// assert!(text.contains("orders_total 1 # {trace_id=\"4bf92f3577b34da6\"} 1 "));
    /// ```
    pub fn inc_by_with_exemplar(&self, v: f64, labels: &[(&str, &str)]) -> Result<(), Error> {
        check_increment(v)?;
        self.inner.exemplar.record(1, 0, labels, v)?;
        self.add(v);
        Ok(())
    }

    /// The exemplar, as a scrape reads it.
    #[inline]
    pub(crate) fn exemplar(&self) -> &Exemplars {
        &self.inner.exemplar
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        let (whole, fraction) = self.parts();
        whole as f64 + fraction
    }

    /// The whole and fractional parts, as a scrape writes them.
    #[inline]
    pub(crate) fn parts(&self) -> (u64, f64) {
        self.inner.parts()
    }
}

impl CounterSeries {
    /// The whole and fractional parts, read for a scrape.
    pub(crate) fn parts(&self) -> (u64, f64) {
        (
            self.whole.load(Relaxed),
            f64::from_bits(self.fraction.load(Relaxed)),
        )
    }
}

/// What a counter may be given: a finite, non-negative amount.
fn check_increment(v: f64) -> Result<(), Error> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidIncrement(v))
    }
}

impl Sealed for Counter {}

impl Series for Counter {
    type Config = ();
    fn create(_: &(), key: SeriesKey) -> Self {
        Counter::new(key)
    }
    #[inline]
    fn key(&self) -> &SeriesKey {
        &self.inner.key
    }
    fn recent() -> &'static LocalKey<RefCell<Recent<Self>>> {
        thread_local! {
            static RECENT: RefCell<Recent<Counter>> = const { RefCell::new(Recent::new()) };
        }
        &RECENT
    }
}

impl Family<Counter> {
    /// Adds one to the series for these label values, creating it if needed,
    /// without cloning its handle: the cheapest one-off update.
    ///
    /// ```
    /// let registry = promlite::Registry::new();
    /// let hits = registry.counter_family("hits_total", "Hits.", &["path"]).unwrap();
    /// hits.inc(&["/"]).unwrap();
    /// hits.inc(&["/"]).unwrap();
    /// assert_eq!(hits.with_labels(&["/"]).unwrap().get(), 2.0);
    /// ```
    #[inline]
    pub fn inc(&self, values: &[&str]) -> Result<(), Error> {
        self.apply(values, Counter::inc)
    }

    /// Adds `v` to the series for these label values; see [`Counter::inc_by`].
    pub fn inc_by(&self, values: &[&str], v: f64) -> Result<(), Error> {
        self.apply(values, |c| c.inc_by(v))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_fractional_increments_add_up() {
        let c = Counter::new(SeriesKey::new(&[], 0));
        c.inc();
        c.inc_by(2.0).unwrap();
        c.inc_by(0.25).unwrap();
        c.inc_by(0.0).unwrap();
        assert_eq!(c.get(), 3.25);
        assert_eq!(c.inner.parts(), (3, 0.25));
    }

    #[test]
    fn bad_increments_are_refused_and_change_nothing() {
        let c = Counter::new(SeriesKey::new(&[], 0));
        c.inc();
        for bad in [-1.0, -0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = c.inc_by(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidIncrement(_)), "{bad}");
        }
        assert_eq!(c.get(), 1.0);
    }

    #[test]
    fn huge_whole_increments_keep_going_up() {
        let c = Counter::new(SeriesKey::new(&[], 0));
        c.inc_by(1e18).unwrap(); // beyond 2^53: the float cell
        c.inc_by(1e15).unwrap(); // integer cell
        assert_eq!(c.get(), 1.001e18);
        // Many large whole increments never wrap the integer cell around.
        let d = Counter::new(SeriesKey::new(&[], 0));
        let mut last = 0.0;
        for _ in 0..40 {
            d.inc_by(9.9e17 / 2.0f64.powi(7)).unwrap();
            d.inc_by(9.9e17).unwrap();
            assert!(d.get() > last, "the counter went down");
            last = d.get();
        }
    }

    #[test]
    fn concurrent_increments_are_all_counted() {
        const THREADS: u64 = 8;
        const PER_THREAD: u64 = 100_000;
        let c = Counter::new(SeriesKey::new(&[], 0));
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..PER_THREAD {
                        c.inc();
                    }
                });
            }
        });
        assert_eq!(c.inner.parts().0, THREADS * PER_THREAD);
    }
}
