//! [`NativeHistogram`]: observations counted in exponential buckets that need
//! no choosing in advance (Prometheus "native" histograms), optionally with
//! classic buckets as well.
//!
//! # Buckets
//!
//! With schema `s` (-4 to 8) the bucket of index `k` holds the observations `v`
//! with `2^((k-1)/2^s) < |v| <= 2^(k/2^s)`, positive and negative ones apart:
//! every power of two is cut into `2^s` buckets, so that neighbouring
//! boundaries differ by the factor `2^(2^-s)` (1.09 at the default schema 3).
//! Observations with `|v|` at most the zero threshold count in the zero bucket.
//! `NaN` is counted in the count and makes the sum `NaN`, in no bucket (as
//! Prometheus defines it; in the classic buckets, `+Inf`). `+Inf` and `-Inf`
//! count in the bucket after the one of the largest finite value, and make the
//! sum infinite. The exact placing is in [`bounds`].
//!
//! # Bounded memory
//!
//! Each sign keeps at most `max_buckets` buckets, from the lowest to the
//! highest it has seen (an infinite observation is counted apart and takes
//! none). An observation that would need more halves the resolution: the
//! schema goes down by one and every two neighbouring buckets merge (bucket
//! `k` becomes bucket `ceil(k/2)`), until the buckets fit, down to schema -4
//! (beyond which, with a very small `max_buckets`, an outlier is counted in the
//! nearest bucket kept). Memory per series is fixed when it is created.
//!
//! # Observing without waiting, scraping consistently
//!
//! As for the classic histograms, each thread that observes gets a *stripe*
//! of its own (64 at most, process-wide; more threads share one more stripe),
//! allocated the first time that thread observes that series. Only its thread
//! writes a stripe, with plain loads and stores, no read-modify-write and no
//! lock, under a sequence number that is odd while an observation is being
//! written (a seqlock). A scrape copies a stripe and keeps the copy if the
//! sequence number was even and unchanged around it: the copy is then the
//! stripe after some number of whole observations, so its count, buckets and
//! sum agree. A thread that observes without pause would keep a scrape's copy
//! from ever succeeding, so after a few tries the scrape asks for a copy: the
//! writer, at the end of its next observation, copies its stripe to a second
//! buffer, which it writes only when asked. The scrape then adds the stripes
//! up, at the lowest schema among them. Observers never wait for a scrape; a
//! scrape waits at most for an observation in progress (and gives up waiting
//! after a second, for a thread stopped in the middle of one).
//!
//! Threads beyond the 64 stripes share the last stripe, which each takes in
//! turn with a compare-and-swap on its sequence number: they may wait for one
//! another (never for a scrape).

mod bounds;

use crate::Error;
use crate::metrics::family::{Sealed, Series};
use crate::metrics::histogram::{self, Buckets};
use crate::metrics::key::SeriesKey;
use crate::metrics::recent::Recent;
use crate::metrics::stripe;
use crate::metrics::timer::{HistogramTimer, NativeHistogramTimer};
use bounds::{MAX_SCHEMA, MIN_SCHEMA, OCTAVES, Octave, index, infinite_index, reduce};
use std::cell::RefCell;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering, fence};
use std::sync::{Arc, OnceLock};
use std::thread::LocalKey;
use std::time::{Duration, Instant};

/// 2^-128, the zero threshold unless told otherwise (as in the other clients):
/// the zero bucket then holds only zero and the tiniest values.
pub const DEFAULT_NATIVE_ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// The most buckets a sign keeps unless told otherwise.
pub const DEFAULT_NATIVE_MAX_BUCKETS: usize = 160;

/// The most buckets a sign may be given: each costs 16 bytes per stripe.
const MAX_BUCKETS_LIMIT: usize = 1 << 14;

/// How a native histogram counts: its resolution, zero bucket, memory bound,
/// and classic buckets if it is to have them too.
///
/// ```
/// use promlite::NativeConfig;
///
/// // Schema 3 (8 buckets per power of two), as client libraries default to.
/// let default = NativeConfig::default();
/// assert_eq!((default.schema, default.max_buckets), (3, 160));
///
/// // Buckets at most 10% apart: the finest schema within that is 3 (9.05%).
/// assert_eq!(NativeConfig::from_growth_factor(1.1).unwrap().schema, 3);
///
/// // Finer, fewer buckets, and the seed's classic buckets as well.
/// let both = NativeConfig {
///     schema: 5,
///     max_buckets: 100,
///     classic_buckets: vec![1.0, 2.0, 5.0, 6.0, 10.0],
///     ..NativeConfig::default()
/// };
/// # let _ = both;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NativeConfig {
    /// The resolution, -4 to 8: every power of two is cut into `2^schema`
    /// buckets (for negative schemas a bucket spans `2^-schema` powers of two).
    /// Default 3. The relative error of a quantile read from it is at most
    /// `(2^(2^-schema) - 1) / (2^(2^-schema) + 1)`, 4.3% at schema 3.
    pub schema: i32,
    /// Observations `v` with `|v| <= zero_threshold` count in the zero bucket.
    /// Finite and not negative; default [`DEFAULT_NATIVE_ZERO_THRESHOLD`].
    pub zero_threshold: f64,
    /// The most buckets each sign keeps (1 to 16384, default 160); the
    /// resolution is halved when observations need more.
    pub max_buckets: usize,
    /// Classic buckets to keep as well (empty, the default: native only), as
    /// for a classic [`Histogram`](crate::Histogram). The text formats
    /// write only these; the protobuf format writes both.
    pub classic_buckets: Vec<f64>,
}

impl Default for NativeConfig {
    fn default() -> Self {
        NativeConfig {
            schema: 3,
            zero_threshold: DEFAULT_NATIVE_ZERO_THRESHOLD,
            max_buckets: DEFAULT_NATIVE_MAX_BUCKETS,
            classic_buckets: Vec::new(),
        }
    }
}

impl NativeConfig {
    /// The default configuration with the coarsest schema whose neighbouring
    /// bucket boundaries are at most `factor` apart (which must be above 1),
    /// as the other clients pick it: schema 8 for factors below `2^(1/256)`,
    /// -4 for `2^16` and above.
    ///
    /// ```
    /// use promlite::NativeConfig;
    ///
    /// assert_eq!(NativeConfig::from_growth_factor(2.0).unwrap().schema, 0);
    /// assert_eq!(NativeConfig::from_growth_factor(1.01).unwrap().schema, 7); // 1.0054
    /// assert!(NativeConfig::from_growth_factor(1.0).is_err());
    /// ```
    pub fn from_growth_factor(factor: f64) -> Result<NativeConfig, Error> {
        if factor.is_nan() || factor <= 1.0 {
            return Err(Error::InvalidBuckets(format!(
                "a growth factor must be above 1 (got {factor})"
            )));
        }
        Ok(NativeConfig {
            schema: bounds::schema_for_growth(factor, &OCTAVES),
            ..NativeConfig::default()
        })
    }
}

/// The checked configuration of a native histogram family, shared by its series.
#[derive(Debug)]
pub struct NativeLayout {
    schema: i32,
    zero_threshold: f64,
    width: usize,
    /// The classic buckets, if any (their `le` values rendered once).
    pub(crate) classic: Option<Buckets>,
}

impl NativeLayout {
    pub(crate) fn new(config: &NativeConfig) -> Result<NativeLayout, Error> {
        let bad = |what: String| Err(Error::InvalidBuckets(what));
        if !(MIN_SCHEMA..=MAX_SCHEMA).contains(&config.schema) {
            return bad(format!("schema {} is not in -4..=8", config.schema));
        }
        let threshold = config.zero_threshold;
        if !threshold.is_finite() || threshold < 0.0 {
            return bad(format!(
                "the zero threshold must be finite and not negative (got {threshold})"
            ));
        }
        if !(1..=MAX_BUCKETS_LIMIT).contains(&config.max_buckets) {
            return bad(format!(
                "max_buckets must be 1 to {MAX_BUCKETS_LIMIT} (got {})",
                config.max_buckets
            ));
        }
        let classic = if config.classic_buckets.is_empty() {
            None
        } else {
            Some(Buckets::new(&config.classic_buckets)?)
        };
        Ok(NativeLayout {
            schema: config.schema,
            zero_threshold: threshold,
            width: config.max_buckets,
            classic,
        })
    }
}

/// A native histogram. Cloning it is cheap and every clone updates the same series.
///
/// ```
/// use promlite::{NativeConfig, Registry};
///
/// let registry = Registry::new();
/// let latency = registry
///     .native_histogram("rpc_seconds", "RPC latency.", &NativeConfig::default())
///     .unwrap();
/// latency.observe(0.25);
/// latency.observe(0.003);
/// {
///     let _timer = latency.start_timer(); // observes the elapsed seconds when dropped
/// }
/// assert_eq!(latency.count(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct NativeHistogram {
    pub(crate) inner: Arc<NativeSeries>,
}

/// Stripe slots come in chunks of 16: the first in the series itself, the
/// others allocated when a thread of their range first observes the series.
const CHUNK: usize = 16;
const CHUNKS: usize = 4;
/// How many threads can hold a stripe of their own at once.
const SLOTS: usize = CHUNK * CHUNKS;

type Chunk = Box<[OnceLock<Box<Stripe>>]>;

#[derive(Debug)]
pub(crate) struct NativeSeries {
    /// The schema a stripe starts with.
    schema: i32,
    zero_threshold: f64,
    /// Buckets per sign and stripe.
    width: usize,
    /// The classic bounds as the classic histogram searches them, and how
    /// many are finite; `classic` words per stripe (0 without classic buckets).
    classic_bounds: Arc<[f64]>,
    classic_finite: usize,
    classic: usize,
    octaves: &'static [Octave; 8],
    first: [OnceLock<Box<Stripe>>; CHUNK],
    more: [OnceLock<Chunk>; CHUNKS - 1],
    shared: OnceLock<Box<Stripe>>,
    /// The label values and the creation time; see `family.rs`.
    pub(crate) key: SeriesKey,
}

/// The sign bit of an `f64`, and the bits of `+Inf`.
const SIGN: u64 = 1 << 63;
const INFINITY: u64 = 0x7ff0_0000_0000_0000;

/// Marks a sign that has seen no observation yet (its window has no place).
const EMPTY: i32 = i32::MIN;

/// What one thread writes. The first words, on the stripe's own cache lines,
/// are the writer's; `request` is the one word a scrape writes.
#[repr(align(128))]
#[derive(Debug)]
struct Stripe {
    /// Odd while the writer is in the middle of an observation.
    seq: AtomicU64,
    /// The sum, as `f64` bits.
    sum: AtomicU64,
    zero: AtomicU64,
    nan: AtomicU64,
    positive_inf: AtomicU64,
    negative_inf: AtomicU64,
    schema: AtomicI32,
    /// The bucket index of each sign's first slot ([`EMPTY`] before any).
    positive_base: AtomicI32,
    negative_base: AtomicI32,
    /// The last copy asked for (scrapes add one), and the last one made.
    request: AtomicU64,
    served: AtomicU64,
    /// Odd while the writer is copying to `published`.
    published_seq: AtomicU64,
    /// The classic counts (none without classic buckets).
    classic: Box<[AtomicU64]>,
    /// The positive window.
    positive: Box<[AtomicU64]>,
    /// The negative window, made at the first negative observation.
    negative: OnceLock<Box<[AtomicU64]>>,
    /// The copy made for a scrape, in the layout of [`HEADER`] and after.
    published: OnceLock<Box<[AtomicU64]>>,
}

/// The words of a stripe's copy before its counts: sum, zero, NaN, +Inf, -Inf,
/// schema, positive base, negative base.
const HEADER: usize = 8;

#[inline]
fn bump(word: &AtomicU64) {
    // The stripe has one writer: a load and a store suffice.
    word.store(word.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn zeroed(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl Stripe {
    fn new(series: &NativeSeries) -> Box<Stripe> {
        Box::new(Stripe {
            seq: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
            zero: AtomicU64::new(0),
            nan: AtomicU64::new(0),
            positive_inf: AtomicU64::new(0),
            negative_inf: AtomicU64::new(0),
            schema: AtomicI32::new(series.schema),
            positive_base: AtomicI32::new(EMPTY),
            negative_base: AtomicI32::new(EMPTY),
            request: AtomicU64::new(0),
            served: AtomicU64::new(0),
            published_seq: AtomicU64::new(0),
            classic: zeroed(series.classic),
            positive: zeroed(series.width),
            negative: OnceLock::new(),
            published: OnceLock::new(),
        })
    }

    /// Copies the stripe into `out` (`HEADER + classic + 2 * width` words).
    fn copy_to(&self, out: &mut [u64], width: usize) {
        let load = |w: &AtomicU64| w.load(Ordering::Relaxed);
        out[0] = load(&self.sum);
        out[1] = load(&self.zero);
        out[2] = load(&self.nan);
        out[3] = load(&self.positive_inf);
        out[4] = load(&self.negative_inf);
        out[5] = self.schema.load(Ordering::Relaxed) as i64 as u64;
        out[6] = self.positive_base.load(Ordering::Relaxed) as i64 as u64;
        out[7] = self.negative_base.load(Ordering::Relaxed) as i64 as u64;
        let (classic, counts) = out[HEADER..].split_at_mut(self.classic.len());
        let (positive, negative) = counts.split_at_mut(width);
        for (o, w) in classic.iter_mut().zip(&*self.classic) {
            *o = load(w);
        }
        for (o, w) in positive.iter_mut().zip(&*self.positive) {
            *o = load(w);
        }
        match self.negative.get() {
            Some(n) => negative
                .iter_mut()
                .zip(&**n)
                .for_each(|(o, w)| *o = load(w)),
            None => negative[..width].fill(0),
        }
    }

    /// A copy taken while no observation was written, if there was none.
    fn try_read(&self, out: &mut [u64], width: usize) -> bool {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return false;
        }
        self.copy_to(out, width);
        fence(Ordering::Acquire);
        self.seq.load(Ordering::Relaxed) == before
    }

    /// The copy the writer made for request `ticket` or a later one, if made.
    fn try_read_published(&self, out: &mut [u64], ticket: u64) -> bool {
        if self.served.load(Ordering::Acquire) < ticket {
            return false;
        }
        let Some(published) = self.published.get() else {
            return false;
        };
        let before = self.published_seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return false;
        }
        for (o, w) in out.iter_mut().zip(&**published) {
            *o = w.load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        self.published_seq.load(Ordering::Relaxed) == before
    }

    /// A consistent copy of the stripe; see the module's docs.
    fn read(&self, out: &mut [u64], width: usize) {
        let mut ticket = None;
        let mut deadline = None;
        for attempt in 0u32.. {
            if self.try_read(out, width) {
                return;
            }
            if attempt < 3 {
                std::hint::spin_loop();
                continue;
            }
            let ticket =
                *ticket.get_or_insert_with(|| self.request.fetch_add(1, Ordering::Relaxed) + 1);
            if self.try_read_published(out, ticket) {
                return;
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + GIVE_UP);
            if Instant::now() > deadline {
                // A writer stopped in the middle of an observation for a whole
                // second: take the stripe as it is rather than hang the scrape.
                self.copy_to(out, width);
                return;
            }
            if attempt < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// How long a scrape waits for an observation in progress.
const GIVE_UP: Duration = Duration::from_secs(1);

impl NativeHistogram {
    pub(crate) fn new(layout: &NativeLayout, key: SeriesKey) -> NativeHistogram {
        let (classic_bounds, classic_finite) = match &layout.classic {
            Some(b) => (Arc::clone(&b.bounds), b.finite),
            None => (Arc::from(&[][..]), 0),
        };
        let classic = if layout.classic.is_some() {
            classic_finite + 1
        } else {
            0
        };
        NativeHistogram {
            inner: Arc::new(NativeSeries {
                schema: layout.schema,
                zero_threshold: layout.zero_threshold,
                width: layout.width,
                classic_bounds,
                classic_finite,
                classic,
                octaves: &OCTAVES,
                first: std::array::from_fn(|_| OnceLock::new()),
                more: std::array::from_fn(|_| OnceLock::new()),
                shared: OnceLock::new(),
                key,
            }),
        }
    }

    /// Records one observation (`NaN` and the infinities too; see the module's docs).
    #[inline]
    pub fn observe(&self, v: f64) {
        let series = &*self.inner;
        let Some(slot) = stripe_slot() else {
            return series.observe_shared(v);
        };
        let stripe = series.own_stripe(slot);
        // This thread is the stripe's only writer: no read-modify-write.
        let seq = stripe.seq.load(Ordering::Relaxed);
        stripe.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        series.record(stripe, v);
        series.serve(stripe);
        stripe.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Records a duration, in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Starts a timer that observes the elapsed seconds when it is dropped
    /// (or when [`NativeHistogramTimer::observe`] is called).
    pub fn start_timer(&self) -> NativeHistogramTimer<'_> {
        HistogramTimer::start(self)
    }

    /// How many observations were made.
    pub fn count(&self) -> u64 {
        self.inner.snapshot(&mut Vec::new()).count
    }

    /// The sum of all observations (`NaN` once a `NaN` was observed).
    pub fn sum(&self) -> f64 {
        self.inner.snapshot(&mut Vec::new()).sum
    }
}

impl NativeSeries {
    #[inline]
    fn own_stripe(&self, slot: usize) -> &Stripe {
        let stripe = match self.first.get(slot) {
            Some(stripe) => stripe,
            None => self.more_stripe(slot),
        };
        stripe.get_or_init(|| Stripe::new(self))
    }

    #[cold]
    fn more_stripe(&self, slot: usize) -> &OnceLock<Box<Stripe>> {
        let chunk = self.more[(slot / CHUNK - 1) % (CHUNKS - 1)]
            .get_or_init(|| (0..CHUNK).map(|_| OnceLock::new()).collect());
        &chunk[slot % CHUNK]
    }

    /// An observation by a thread without a stripe of its own: the shared
    /// stripe, taken by a compare-and-swap of its sequence number.
    #[cold]
    fn observe_shared(&self, v: f64) {
        let stripe = self.shared.get_or_init(|| Stripe::new(self));
        let mut spins = 0u32;
        let seq = loop {
            let seq = stripe.seq.load(Ordering::Relaxed);
            if seq & 1 == 0
                && stripe
                    .seq
                    .compare_exchange_weak(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break seq;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        };
        fence(Ordering::Release);
        self.record(stripe, v);
        self.serve(stripe);
        stripe.seq.store(seq + 2, Ordering::Release);
    }

    /// The observation itself, by the stripe's (one) writer.
    #[inline]
    fn record(&self, stripe: &Stripe, v: f64) {
        if self.classic > 0 {
            if let Some(count) = stripe.classic.get(self.classic_index(v)) {
                bump(count);
            }
        }
        let sum = f64::from_bits(stripe.sum.load(Ordering::Relaxed)) + v;
        stripe.sum.store(sum.to_bits(), Ordering::Relaxed);
        // The magnitude's bits: ordered as the magnitudes are (NaN above +Inf).
        let magnitude = v.to_bits() & !SIGN;
        let threshold = self.zero_threshold.to_bits();
        // One comparison for threshold < |v| < +Inf, the common case.
        if magnitude.wrapping_sub(threshold + 1) < INFINITY - (threshold + 1) {
            let schema = stripe.schema.load(Ordering::Relaxed);
            let k = index(f64::from_bits(magnitude), schema, self.octaves);
            if v > 0.0 {
                let at = stripe.positive_base.load(Ordering::Relaxed);
                match slot_of(k, at).and_then(|i| stripe.positive.get(i)) {
                    Some(count) => bump(count),
                    None => self.place(stripe, k, true),
                }
            } else {
                self.record_negative(stripe, k);
            }
        } else if magnitude <= threshold {
            bump(&stripe.zero);
        } else if magnitude == INFINITY {
            bump(if v > 0.0 {
                &stripe.positive_inf
            } else {
                &stripe.negative_inf
            });
        } else {
            bump(&stripe.nan);
        }
    }

    /// A negative observation of bucket `k`, the same way, in its own window.
    #[inline(never)]
    fn record_negative(&self, stripe: &Stripe, k: i32) {
        let at = stripe.negative_base.load(Ordering::Relaxed);
        let window = stripe.negative.get();
        match slot_of(k, at).and_then(|i| window?.get(i)) {
            Some(count) => bump(count),
            None => self.place(stripe, k, false),
        }
    }

    /// The classic bucket of `v`: the first bound at or above it; `NaN` in `+Inf`.
    #[inline]
    fn classic_index(&self, v: f64) -> usize {
        histogram::bucket_index(&self.classic_bounds, self.classic_finite, v)
    }

    /// The slow path of an observation of bucket `k`: the negative window, a
    /// first observation, or one outside the window, which then moves, or
    /// (when the buckets would not fit) halves the stripe's resolution.
    #[cold]
    fn place(&self, stripe: &Stripe, mut k: i32, positive: bool) {
        let width = self.width;
        loop {
            let (window, base) = self.window(stripe, positive);
            let at = base.load(Ordering::Relaxed);
            if at == EMPTY {
                let start = k.saturating_sub(((width - 1) / 2) as i32);
                base.store(start, Ordering::Relaxed);
                bump(&window[(k - start) as usize]);
                return;
            }
            let i = i64::from(k) - i64::from(at);
            if (0..width as i64).contains(&i) {
                bump(&window[i as usize]);
                return;
            }
            let (lo, hi) = populated(window).map_or((k, k), |(lo, hi)| (at + lo, at + hi));
            let (low, high) = (lo.min(k), hi.max(k));
            if ((high - low) as usize) < width {
                let start = recenter(window, at, lo, hi, low, high);
                base.store(start, Ordering::Relaxed);
                bump(&window[(k - start) as usize]);
                return;
            }
            let schema = stripe.schema.load(Ordering::Relaxed);
            if schema == MIN_SCHEMA {
                // Nothing coarser: the outlier counts in the nearest bucket kept.
                let w = width as i32;
                let (low, high) = if k < lo {
                    (hi - w + 1, hi)
                } else {
                    (lo, lo + w - 1)
                };
                let start = recenter(window, at, lo, hi, low, high);
                base.store(start, Ordering::Relaxed);
                let edge = if k < lo { 0 } else { width - 1 };
                bump(&window[edge]);
                return;
            }
            for positive in [true, false] {
                let (window, base) = match (positive, stripe.negative.get()) {
                    (true, _) => (&stripe.positive[..], &stripe.positive_base),
                    (false, Some(n)) => (&n[..], &stripe.negative_base),
                    (false, None) => continue,
                };
                let at = base.load(Ordering::Relaxed);
                if at != EMPTY {
                    base.store(halve(window, at), Ordering::Relaxed);
                }
            }
            stripe.schema.store(schema - 1, Ordering::Relaxed);
            k = reduce(k, 1);
        }
    }

    /// A sign's window and the index of its first slot.
    fn window<'s>(&self, stripe: &'s Stripe, positive: bool) -> (&'s [AtomicU64], &'s AtomicI32) {
        if positive {
            (&stripe.positive[..], &stripe.positive_base)
        } else {
            let window = stripe.negative.get_or_init(|| zeroed(self.width));
            (window, &stripe.negative_base)
        }
    }

    /// Makes the copy a scrape asked for, if one did.
    #[inline]
    fn serve(&self, stripe: &Stripe) {
        let request = stripe.request.load(Ordering::Relaxed);
        if request != stripe.served.load(Ordering::Relaxed) {
            self.publish(stripe, request);
        }
    }

    #[cold]
    fn publish(&self, stripe: &Stripe, request: u64) {
        let published = stripe.published.get_or_init(|| zeroed(self.stripe_words()));
        let seq = stripe.published_seq.load(Ordering::Relaxed);
        stripe.published_seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        // The writer copies its own stripe: nothing changes it meanwhile.
        self.copy_published(stripe, published);
        stripe.published_seq.store(seq + 2, Ordering::Release);
        stripe.served.store(request, Ordering::Release);
    }

    /// Copies the live stripe into `published`, word by word.
    fn copy_published(&self, stripe: &Stripe, published: &[AtomicU64]) {
        let load = |w: &AtomicU64| w.load(Ordering::Relaxed);
        let header = [
            load(&stripe.sum),
            load(&stripe.zero),
            load(&stripe.nan),
            load(&stripe.positive_inf),
            load(&stripe.negative_inf),
            stripe.schema.load(Ordering::Relaxed) as i64 as u64,
            stripe.positive_base.load(Ordering::Relaxed) as i64 as u64,
            stripe.negative_base.load(Ordering::Relaxed) as i64 as u64,
        ];
        let negative = stripe.negative.get();
        let words = header
            .into_iter()
            .chain(stripe.classic.iter().map(load))
            .chain(stripe.positive.iter().map(load))
            .chain((0..self.width).map(|i| negative.map_or(0, |n| load(&n[i]))));
        for (p, w) in published.iter().zip(words) {
            p.store(w, Ordering::Relaxed);
        }
    }

    /// The words of a stripe's copy.
    fn stripe_words(&self) -> usize {
        HEADER + self.classic + 2 * self.width
    }

    /// Every stripe in use, in slot order, the shared one last.
    fn stripes(&self) -> impl Iterator<Item = &Stripe> {
        let more = self
            .more
            .iter()
            .filter_map(OnceLock::get)
            .flat_map(|c| c.iter());
        self.first
            .iter()
            .chain(more)
            .filter_map(OnceLock::get)
            .chain(self.shared.get())
            .map(|s| &**s)
    }

    /// A consistent view of the whole series, built in `scratch` (which keeps
    /// its size for the next scrape, so that a warm scrape allocates nothing).
    pub(crate) fn snapshot<'s>(&self, scratch: &'s mut Vec<u64>) -> NativeSnapshot<'s> {
        let words = self.stripe_words();
        let stripes = self.stripes().count();
        scratch.clear();
        scratch.resize(stripes * words, 0);
        for (stripe, out) in self.stripes().zip(scratch.chunks_mut(words)) {
            stripe.read(out, self.width);
        }
        merge(scratch, stripes, words, self)
    }
}

/// The slot of bucket `k` in a window that starts at bucket `at`, if `k` is
/// not below it (the window's length says whether it is above).
#[inline]
fn slot_of(k: i32, at: i32) -> Option<usize> {
    usize::try_from(i64::from(k) - i64::from(at)).ok()
}

/// The first and last slot of `window` that count anything.
fn populated(window: &[AtomicU64]) -> Option<(i32, i32)> {
    let nonzero = |w: &AtomicU64| w.load(Ordering::Relaxed) != 0;
    let first = window.iter().position(nonzero)?;
    let last = window.iter().rposition(nonzero)?;
    Some((first as i32, last as i32))
}

/// Moves the counts of buckets `lo..=hi` (the window starting at bucket `at`)
/// so that buckets `low..=high`, which include them, sit in the middle of the
/// window; returns the window's new first bucket.
fn recenter(window: &[AtomicU64], at: i32, lo: i32, hi: i32, low: i32, high: i32) -> i32 {
    let width = window.len() as i32;
    let start = low - (width - (high - low + 1)) / 2;
    let shift = (at - start) as isize;
    let slot = |k: i32| (k - at) as usize;
    let mut move_one = |k: i32| {
        let from = slot(k);
        let count = window[from].load(Ordering::Relaxed);
        window[from].store(0, Ordering::Relaxed);
        let to = (from as isize + shift) as usize;
        window[to].store(count, Ordering::Relaxed);
    };
    // Move in the direction that never overwrites a count not yet moved.
    if shift > 0 {
        (lo..=hi).rev().for_each(&mut move_one);
    } else if shift < 0 {
        (lo..=hi).for_each(&mut move_one);
    }
    start
}

/// Halves the resolution of a window that starts at bucket `at`: bucket `k`
/// joins bucket `ceil(k/2)`. Returns the window's new first bucket.
fn halve(window: &[AtomicU64], at: i32) -> i32 {
    let Some((lo, hi)) = populated(window) else {
        return at;
    };
    let (lo, hi) = (at + lo, at + hi);
    let (new_lo, new_hi) = (reduce(lo, 1), reduce(hi, 1));
    // First gather the merged buckets at the start of the window (bucket
    // `new_lo` in slot 0): each lands at or before the slot it is read from,
    // which was read already.
    for k in lo..=hi {
        let from = (k - at) as usize;
        let count = window[from].load(Ordering::Relaxed);
        if count == 0 {
            continue;
        }
        window[from].store(0, Ordering::Relaxed);
        let to = &window[(reduce(k, 1) - new_lo) as usize];
        to.store(to.load(Ordering::Relaxed) + count, Ordering::Relaxed);
    }
    recenter(window, new_lo, new_lo, new_hi, new_lo, new_hi)
}

/// One sign's buckets in a snapshot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window<'s> {
    /// The index of `counts[0]`.
    pub(crate) first: i32,
    pub(crate) counts: &'s [u64],
    /// Infinite observations, in bucket `infinite_index`.
    pub(crate) infinite: u64,
    pub(crate) infinite_index: i32,
}

impl Window<'_> {
    /// The buckets that count anything, as (index, count), by increasing index.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        let first = self.first;
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c != 0)
            .map(move |(i, &c)| (first + i as i32, c))
            .chain((self.infinite != 0).then_some((self.infinite_index, self.infinite)))
    }
}

/// A consistent view of one native histogram series.
#[derive(Debug)]
pub(crate) struct NativeSnapshot<'s> {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    pub(crate) schema: i32,
    pub(crate) zero_threshold: f64,
    pub(crate) zero_count: u64,
    pub(crate) positive: Window<'s>,
    pub(crate) negative: Window<'s>,
    /// The classic buckets' own counts, `+Inf` last (empty without them).
    pub(crate) classic: &'s [u64],
}

/// A stripe copy's schema.
fn copy_schema(copy: &[u64]) -> i32 {
    copy[5] as i64 as i32
}

/// The buckets a stripe copy's sign (0 positive, 1 negative) counts, from
/// the first to the last that counts anything, at the copy's schema.
fn copy_range(copy: &[u64], classic: usize, width: usize, sign: usize) -> Option<(i32, i32)> {
    let base = copy[6 + sign] as i64 as i32;
    if base == EMPTY {
        return None;
    }
    let window = copy_window(copy, classic, width, sign);
    let first = window.iter().position(|&n| n != 0)?;
    let last = window.iter().rposition(|&n| n != 0)?;
    Some((base + first as i32, base + last as i32))
}

fn copy_window(copy: &[u64], classic: usize, width: usize, sign: usize) -> &[u64] {
    let start = HEADER + classic + sign * width;
    &copy[start..start + width]
}

/// Adds up the `stripes` copies at the start of `scratch` (`words` each) at the
/// lowest schema among them, lower still if a sign's buckets would not fit.
fn merge<'s>(
    scratch: &'s mut Vec<u64>,
    stripes: usize,
    words: usize,
    series: &NativeSeries,
) -> NativeSnapshot<'s> {
    let (width, classic) = (series.width, series.classic);
    let copies = &scratch[..stripes * words];
    let mut schema = copies
        .chunks(words)
        .map(copy_schema)
        .min()
        .unwrap_or(series.schema);
    let spans = loop {
        let mut spans = [None::<(i32, i32)>; 2];
        for copy in copies.chunks(words) {
            let by = (copy_schema(copy) - schema) as u32;
            for (sign, span) in spans.iter_mut().enumerate() {
                if let Some((lo, hi)) = copy_range(copy, classic, width, sign) {
                    let (lo, hi) = (reduce(lo, by), reduce(hi, by));
                    *span = Some(span.map_or((lo, hi), |(l, h)| (l.min(lo), h.max(hi))));
                }
            }
        }
        let fits = spans
            .iter()
            .all(|s| s.is_none_or(|(lo, hi)| ((hi - lo) as usize) < width));
        if fits || schema == MIN_SCHEMA {
            break spans;
        }
        schema -= 1;
    };
    let len = |s: Option<(i32, i32)>| s.map_or(0, |(lo, hi)| (hi - lo + 1) as usize);
    let out_start = stripes * words;
    scratch.resize(out_start + classic + len(spans[0]) + len(spans[1]), 0);
    let (copies, out) = scratch.split_at_mut(out_start);
    let (out_classic, rest) = out.split_at_mut(classic);
    let (out_positive, out_negative) = rest.split_at_mut(len(spans[0]));
    let (mut zero_count, mut nan, mut infinite) = (0u64, 0u64, [0u64; 2]);
    let (mut sum, mut in_buckets) = (0.0, 0u64);
    for copy in copies.chunks(words) {
        sum += f64::from_bits(copy[0]);
        zero_count += copy[1];
        nan += copy[2];
        infinite[0] += copy[3];
        infinite[1] += copy[4];
        for (o, &n) in out_classic.iter_mut().zip(&copy[HEADER..HEADER + classic]) {
            *o += n;
        }
        let by = (copy_schema(copy) - schema) as u32;
        for (sign, out) in [&mut *out_positive, &mut *out_negative]
            .into_iter()
            .enumerate()
        {
            let (Some((lo, _)), Some(_)) = (spans[sign], copy_range(copy, classic, width, sign))
            else {
                continue;
            };
            let base = copy[6 + sign] as i64 as i32;
            let window = copy_window(copy, classic, width, sign);
            for (i, &n) in window.iter().enumerate() {
                if n != 0 {
                    out[(reduce(base + i as i32, by) - lo) as usize] += n;
                    in_buckets += n;
                }
            }
        }
    }
    let infinite_index = infinite_index(schema, series.octaves);
    let window = |span: Option<(i32, i32)>, counts, infinite| Window {
        first: span.map_or(0, |(lo, _)| lo),
        counts,
        infinite,
        infinite_index,
    };
    NativeSnapshot {
        count: zero_count + nan + infinite[0] + infinite[1] + in_buckets,
        sum,
        schema,
        zero_threshold: series.zero_threshold,
        zero_count,
        positive: window(spans[0], &*out_positive, infinite[0]),
        negative: window(spans[1], &*out_negative, infinite[1]),
        classic: out_classic,
    }
}

static POOL: stripe::Pool = stripe::Pool::new();

thread_local! {
    static SLOT: stripe::ThreadSlot = const { stripe::ThreadSlot::new(&POOL) };
}

/// This thread's own native stripe slot, if it has (or can claim) one.
#[inline]
fn stripe_slot() -> Option<usize> {
    stripe::slot(&SLOT, || SLOTS)
}

impl Sealed for NativeHistogram {}

impl Series for NativeHistogram {
    type Config = NativeLayout;
    fn create(config: &Self::Config, key: SeriesKey) -> Self {
        NativeHistogram::new(config, key)
    }
    #[inline]
    fn key(&self) -> &SeriesKey {
        &self.inner.key
    }
    fn recent() -> &'static LocalKey<RefCell<Recent<Self>>> {
        thread_local! {
            static RECENT: RefCell<Recent<NativeHistogram>> = const { RefCell::new(Recent::new()) };
        }
        &RECENT
    }
}

#[cfg(test)]
mod tests;
