//! What the two histogram kinds share: [`Observe`], the timer that observes the
//! seconds from a start to a drop ([`HistogramTimer`]), and a family's
//! one-off `observe`.

use crate::Error;
use crate::metrics::family::{Family, Sealed, Series};
use crate::metrics::histogram::Histogram;
use crate::metrics::native::NativeHistogram;
use std::time::Instant;

/// A histogram a timer observes into: [`Histogram`] or [`NativeHistogram`].
///
/// ```
/// use promlite::{HistogramTimer, NativeConfig, Observe, Registry};
///
/// // Code that times a job, whichever kind of histogram it is given.
/// fn finish<H: Observe>(timer: HistogramTimer<'_, H>) -> f64 {
///     timer.observe()
/// }
/// let registry = Registry::new();
/// let classic = registry.histogram("a_seconds", "A.", &[1.0]).unwrap();
/// let native = registry
///     .native_histogram("b_seconds", "B.", &NativeConfig::default())
///     .unwrap();
/// finish(classic.start_timer());
/// finish(native.start_timer());
/// assert_eq!((classic.count(), native.count()), (1, 1));
/// ```
pub trait Observe: Sealed {
    #[doc(hidden)]
    fn observe_value(&self, v: f64);
}

impl Observe for Histogram {
    #[inline]
    fn observe_value(&self, v: f64) {
        self.observe(v);
    }
}

impl Observe for NativeHistogram {
    #[inline]
    fn observe_value(&self, v: f64) {
        self.observe(v);
    }
}

/// Observes the seconds since [`Histogram::start_timer`] (or
/// [`NativeHistogram::start_timer`]) when dropped.
///
/// ```
/// let registry = promlite::Registry::new();
/// let latency = registry
///     .histogram("job_duration_seconds", "Time per job.", &[0.1, 1.0])
///     .unwrap();
/// {
///     let _timer = latency.start_timer();
///     // ... the job ...
/// } // observed here
/// latency.start_timer().discard(); // a job that failed: nothing observed
/// assert_eq!(latency.count(), 1);
/// ```
#[derive(Debug)]
#[must_use = "the timer observes when it is dropped; dropping it at once measures nothing"]
pub struct HistogramTimer<'a, H: Observe = Histogram> {
    histogram: &'a H,
    start: Instant,
    armed: bool,
}

/// The timer of a [`NativeHistogram`].
pub type NativeHistogramTimer<'a> = HistogramTimer<'a, NativeHistogram>;

impl<'a, H: Observe> HistogramTimer<'a, H> {
    pub(crate) fn start(histogram: &'a H) -> Self {
        HistogramTimer {
            histogram,
            start: Instant::now(),
            armed: true,
        }
    }

    /// Observes now and returns the elapsed seconds.
    pub fn observe(mut self) -> f64 {
        self.armed = false;
        let seconds = self.start.elapsed().as_secs_f64();
        self.histogram.observe_value(seconds);
        seconds
    }

    /// Drops the timer without observing anything.
    pub fn discard(mut self) {
        self.armed = false;
    }
}

impl<H: Observe> Drop for HistogramTimer<'_, H> {
    fn drop(&mut self) {
        if self.armed {
            self.histogram
                .observe_value(self.start.elapsed().as_secs_f64());
        }
    }
}

impl<H: Series + Observe> Family<H> {
    /// Observes `v` in the series for these label values, creating it if needed.
    ///
    /// ```
    /// use promlite::{DEFAULT_BUCKETS, NativeConfig, Registry};
    ///
    /// let registry = Registry::new();
    /// let latency = registry
    ///     .histogram_family("latency_seconds", "Latency.", &["path"], &DEFAULT_BUCKETS)
    ///     .unwrap();
    /// latency.observe(&["/"], 0.02).unwrap();
    /// assert_eq!(latency.with_labels(&["/"]).unwrap().count(), 1);
    ///
    /// let native = registry
    ///     .native_histogram_family("native_seconds", "Latency.", &["path"], &NativeConfig::default())
    ///     .unwrap();
    /// native.observe(&["/"], 0.02).unwrap();
    /// assert_eq!(native.with_labels(&["/"]).unwrap().count(), 1);
    /// ```
    #[inline]
    pub fn observe(&self, values: &[&str], v: f64) -> Result<(), Error> {
        self.apply(values, |h| h.observe_value(v))
    }
}
