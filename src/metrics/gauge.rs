//! [`Gauge`]: a value that goes up and down.

use crate::Error;
use crate::metrics::family::{Family, Sealed, Series};
use crate::metrics::key::SeriesKey;
use crate::metrics::recent::Recent;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread::LocalKey;

/// A floating-point gauge. Cloning it is cheap and every clone updates the same series.
///
/// ```
/// let registry = promlite::Registry::new();
/// let in_flight = registry.gauge("requests_in_flight", "Requests being served.").unwrap();
/// in_flight.inc();
/// in_flight.add(2.0);
/// in_flight.dec();
/// assert_eq!(in_flight.get(), 2.0);
/// in_flight.set(-0.5);
/// assert_eq!(in_flight.get(), -0.5);
/// ```
#[derive(Clone, Debug)]
pub struct Gauge {
    pub(crate) inner: Arc<GaugeSeries>,
}

#[derive(Debug)]
pub(crate) struct GaugeSeries {
    /// The value, as `f64` bits.
    bits: AtomicU64,
    /// The label values; see `family.rs`.
    pub(crate) key: SeriesKey,
}

impl Gauge {
    pub(crate) fn new(key: SeriesKey) -> Gauge {
        Gauge {
            inner: Arc::new(GaugeSeries {
                bits: AtomicU64::new(0f64.to_bits()),
                key,
            }),
        }
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        self.inner.bits.store(v.to_bits(), Relaxed);
    }

    /// Adds `v` (which may be negative).
    #[inline]
    pub fn add(&self, v: f64) {
        let _ = self.inner.bits.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + v).to_bits())
        });
    }

    /// Subtracts `v`.
    #[inline]
    pub fn sub(&self, v: f64) {
        self.add(-v);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// Sets the value to the current Unix time in seconds (with fraction).
    pub fn set_to_current_time(&self) {
        self.set(super::unix_now());
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.inner.bits.load(Relaxed))
    }
}

impl Sealed for Gauge {}

impl Series for Gauge {
    type Config = ();
    fn create(_: &(), key: SeriesKey) -> Self {
        Gauge::new(key)
    }
    #[inline]
    fn key(&self) -> &SeriesKey {
        &self.inner.key
    }
    fn recent() -> &'static LocalKey<RefCell<Recent<Self>>> {
        thread_local! {
            static RECENT: RefCell<Recent<Gauge>> = const { RefCell::new(Recent::new()) };
        }
        &RECENT
    }
}

impl Family<Gauge> {
    /// Sets the series for these label values, creating it if needed.
    ///
    /// ```
    /// let registry = promlite::Registry::new();
    /// let temperature = registry.gauge_family("temperature_celsius", "Temperature.", &["room"]).unwrap();
    /// temperature.set(&["kitchen"], 21.5).unwrap();
    /// assert_eq!(temperature.with_labels(&["kitchen"]).unwrap().get(), 21.5);
    /// ```
    pub fn set(&self, values: &[&str], v: f64) -> Result<(), Error> {
        self.apply(values, |g| g.set(v))
    }

    /// Adds `v` (which may be negative) to the series for these label values.
    pub fn add(&self, values: &[&str], v: f64) -> Result<(), Error> {
        self.apply(values, |g| g.add(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_add_sub_inc_dec() {
        let g = Gauge::new(SeriesKey::new(&[], 0));
        g.set(10.0);
        g.add(2.5);
        g.sub(0.5);
        g.inc();
        g.dec();
        g.dec();
        assert_eq!(g.get(), 11.0);
        g.set(f64::NEG_INFINITY);
        assert_eq!(g.get(), f64::NEG_INFINITY);
    }

    #[test]
    fn current_time_is_now() {
        let g = Gauge::new(SeriesKey::new(&[], 0));
        let before = super::super::unix_now();
        g.set_to_current_time();
        let after = super::super::unix_now();
        assert!(before <= g.get() && g.get() <= after);
        assert!(g.get() > 1.6e9);
    }

    #[test]
    fn concurrent_adds_are_all_applied() {
        let g = Gauge::new(SeriesKey::new(&[], 0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..50_000 {
                        g.inc();
                        g.add(2.0);
                        g.dec();
                    }
                });
            }
        });
        assert_eq!(g.get(), 4.0 * 50_000.0 * 2.0);
    }
}
