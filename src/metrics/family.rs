//! [`Family`]: the series of one metric, one per label set.
//!
//! # Series identity
//!
//! A series is identified by its exact label values. They are stored joined by the
//! byte 0xFF, which never occurs in UTF-8, so `{a="ab",b="c"}` and `{a="a",b="bc"}`
//! are different keys (a peer that hashes the values run together merges them).
//! The 64-bit hash only picks a slot; a lookup always compares the values.
//!
//! # Layout
//!
//! An insertion-ordered hash table: the series in a `Vec`, in the order they were
//! created (which is the order of the exposition, stable from run to run), and an
//! open-addressing index of `u32` positions into it. Per series that is the handle
//! (one pointer), about 6 bytes of index, and the series itself.

use crate::Error;
use crate::encoding::LabelNames;
use crate::metrics::counter::Counter;
use crate::metrics::gauge::Gauge;
use crate::metrics::histogram::Histogram;
use crate::metrics::unix_now_millis;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};

/// How many series a family holds at most, unless told otherwise.
pub const DEFAULT_SERIES_LIMIT: usize = 10_000;

/// The byte between label values in a series key.
pub(crate) const SEPARATOR: u8 = 0xFF;

/// A metric with labels: one series per distinct set of label values.
///
/// [`with_labels`](Family::with_labels) returns the series' handle (creating the
/// series the first time); keep the handle and the hot path is only an atomic.
///
/// ```
/// let registry = promlite::Registry::new();
/// let requests = registry
///     .counter_family(
///         "slpocapp_request_operations_total",
///         "The total number of processed requests",
///         &["namespace", "pod"],
///     )
///     .unwrap();
/// let mine = requests.with_labels(&["default", "laptop-jaime"]).unwrap();
/// mine.inc();
/// assert_eq!(requests.with_labels(&["default", "laptop-jaime"]).unwrap().get(), 1.0);
/// assert!(requests.with_labels(&["default"]).is_err()); // two label names, one value
/// assert!(requests.remove(&["default", "laptop-jaime"]));
/// assert_eq!(requests.len(), 0);
/// ```
#[derive(Debug)]
pub struct Family<M: Series> {
    pub(crate) core: Arc<FamilyCore<M>>,
}

impl<M: Series> Clone for Family<M> {
    fn clone(&self) -> Self {
        Family {
            core: Arc::clone(&self.core),
        }
    }
}

/// What a family needs from the metric type it holds. Implemented by
/// [`Counter`], [`Gauge`] and [`Histogram`]; not meant to be implemented elsewhere.
pub trait Series: Clone + sealed::Sealed {
    /// Shared by every series of a family (the bucket bounds of a histogram).
    #[doc(hidden)]
    type Config: std::fmt::Debug + Send + Sync;
    #[doc(hidden)]
    fn create(config: &Self::Config, key: SeriesKey) -> Self;
    #[doc(hidden)]
    fn key(&self) -> &SeriesKey;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Counter {}
    impl Sealed for super::Gauge {}
    impl Sealed for super::Histogram {}
}

impl Series for Counter {
    type Config = ();
    fn create(_: &(), key: SeriesKey) -> Self {
        Counter::new(key)
    }
    fn key(&self) -> &SeriesKey {
        &self.inner.key
    }
}

impl Series for Gauge {
    type Config = ();
    fn create(_: &(), key: SeriesKey) -> Self {
        Gauge::new(key)
    }
    fn key(&self) -> &SeriesKey {
        &self.inner.key
    }
}

impl Series for Histogram {
    type Config = crate::metrics::histogram::Buckets;
    fn create(config: &Self::Config, key: SeriesKey) -> Self {
        Histogram::new(config, key)
    }
    fn key(&self) -> &SeriesKey {
        &self.inner.key
    }
}

/// The shared part of a family: its description, its series, its limit.
#[derive(Debug)]
pub(crate) struct FamilyCore<M: Series> {
    /// The name as written on the `# TYPE` line of the text format.
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) label_names: LabelNames,
    pub(crate) config: M::Config,
    /// Random per family, so that label values chosen by an attacker cannot be
    /// made to collide (the cardinality limit bounds the damage anyway).
    seed: [u64; 2],
    limit: AtomicUsize,
    table: RwLock<SeriesTable<M>>,
}

impl<M: Series> FamilyCore<M> {
    pub(crate) fn new(name: String, help: String, label_names: &[&str], config: M::Config) -> Self {
        let state = RandomState::new();
        let seed = [state.hash_one(1u8), state.hash_one(2u8) | 1];
        FamilyCore {
            name,
            help,
            label_names: LabelNames::new(label_names),
            config,
            seed,
            limit: AtomicUsize::new(DEFAULT_SERIES_LIMIT),
            table: RwLock::new(SeriesTable::new(label_names.len(), seed)),
        }
    }

    /// The hash of a label set, as the table places it.
    #[inline]
    fn hash(&self, values: &[&str]) -> u64 {
        hash_parts(self.seed, values.iter().map(|v| v.as_bytes()))
    }

    /// Calls `f` on every series, in creation order, under the read lock.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&M)) {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        table.entries.iter().for_each(&mut f);
    }
}

impl<M: Series> Family<M> {
    pub(crate) fn from_core(core: FamilyCore<M>) -> Self {
        Family {
            core: Arc::new(core),
        }
    }

    /// The series for these label values (in the order of the label names),
    /// created at zero the first time. Keep the handle: updates through it are
    /// only an atomic. For a one-off update, [`inc`](Family::inc),
    /// [`set`](Family::set) and [`observe`](Family::observe) skip the handle.
    ///
    /// Fails with [`Error::LabelCount`] if the number of values is wrong, and with
    /// [`Error::CardinalityLimit`] if the series is new and the family is full.
    pub fn with_labels(&self, values: &[&str]) -> Result<M, Error> {
        self.apply(values, M::clone)
    }

    /// Runs `f` on the series for these values (creating it if needed) while the
    /// table is locked for reading, so no handle is cloned. `f` is the crate's own
    /// code, never the caller's: a caller's closure could ask for a new series of
    /// the same family and deadlock on the lock.
    #[inline]
    fn apply<R>(&self, values: &[&str], f: impl FnOnce(&M) -> R) -> Result<R, Error> {
        let core = &*self.core;
        if values.len() != core.label_names.len() {
            return Err(Error::LabelCount {
                metric: core.name.clone(),
                expected: core.label_names.len(),
                got: values.len(),
            });
        }
        let hash = core.hash(values);
        {
            let table = core.table.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, i)) = table.find(hash, values) {
                return Ok(f(&table.entries[i]));
            }
        }
        let mut table = core.table.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have created it between the two locks.
        if let Some((_, i)) = table.find(hash, values) {
            return Ok(f(&table.entries[i]));
        }
        let limit = core.limit.load(Relaxed);
        if table.entries.len() >= limit {
            return Err(Error::CardinalityLimit {
                metric: core.name.clone(),
                limit,
            });
        }
        let series = M::create(&core.config, SeriesKey::new(values, unix_now_millis()));
        let result = f(&series);
        table.insert(hash, series);
        Ok(result)
    }

    /// Removes the series with these label values; returns whether it existed.
    /// Handles to it that are still held keep working but are no longer exposed.
    pub fn remove(&self, values: &[&str]) -> bool {
        if values.len() != self.core.label_names.len() {
            return false;
        }
        let mut table = self
            .core
            .table
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let hash = self.core.hash(values);
        table.remove(hash, values)
    }

    /// Removes every series.
    pub fn clear(&self) {
        let mut table = self
            .core
            .table
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *table = SeriesTable::new(self.core.label_names.len(), self.core.seed);
    }

    /// How many series the family holds.
    pub fn len(&self) -> usize {
        let table = self
            .core
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        table.entries.len()
    }

    /// Whether the family holds no series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the most series the family may hold (default [`DEFAULT_SERIES_LIMIT`]).
    /// Past it, new label sets are refused; existing series are never dropped.
    pub fn set_series_limit(&self, limit: usize) {
        self.core.limit.store(limit, Relaxed);
    }

    /// The most series the family may hold.
    pub fn series_limit(&self) -> usize {
        self.core.limit.load(Relaxed)
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

impl Family<Histogram> {
    /// Observes `v` in the series for these label values, creating it if needed.
    ///
    /// ```
    /// let registry = promlite::Registry::new();
    /// let latency = registry
    ///     .histogram_family("latency_seconds", "Latency.", &["path"], &promlite::DEFAULT_BUCKETS)
    ///     .unwrap();
    /// latency.observe(&["/"], 0.02).unwrap();
    /// assert_eq!(latency.with_labels(&["/"]).unwrap().count(), 1);
    /// ```
    #[inline]
    pub fn observe(&self, values: &[&str], v: f64) -> Result<(), Error> {
        self.apply(values, |h| h.observe(v))
    }
}

/// What identifies a series, in one allocation: the time it was created (6 bytes,
/// milliseconds since the Unix epoch, enough until the year 10889), then its label
/// values joined by 0xFF. Keeping the creation time here rather than in a field
/// of its own saves the padding it would cost (about 10 bytes per series).
#[derive(Debug)]
pub struct SeriesKey(Box<[u8]>);

const CREATED_BYTES: usize = 6;

impl SeriesKey {
    pub(crate) fn new(values: &[&str], created_millis: u64) -> SeriesKey {
        let len = values
            .iter()
            .map(|v| v.len() + 1)
            .sum::<usize>()
            .saturating_sub(1);
        let mut key = Vec::with_capacity(CREATED_BYTES + len);
        key.extend_from_slice(&created_millis.to_le_bytes()[..CREATED_BYTES]);
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                key.push(SEPARATOR);
            }
            key.extend_from_slice(v.as_bytes());
        }
        SeriesKey(key.into_boxed_slice())
    }

    /// The label values, joined by 0xFF.
    #[inline]
    pub(crate) fn labels(&self) -> &[u8] {
        &self.0[CREATED_BYTES..]
    }

    /// When the series was created, in milliseconds since the Unix epoch.
    pub(crate) fn created_millis(&self) -> u64 {
        let mut bytes = [0u8; 8];
        bytes[..CREATED_BYTES].copy_from_slice(&self.0[..CREATED_BYTES]);
        u64::from_le_bytes(bytes)
    }
}

/// Splits joined label values back into `count` values.
pub(crate) fn split_labels(labels: &[u8], count: usize) -> impl Iterator<Item = &[u8]> {
    labels.split(|&b| b == SEPARATOR).take(count)
}

/// Whether a stored key holds exactly these values.
#[inline]
fn key_matches(key: &[u8], values: &[&str]) -> bool {
    let mut rest = key;
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            match rest.split_first() {
                Some((&SEPARATOR, tail)) => rest = tail,
                _ => return false,
            }
        }
        let v = v.as_bytes();
        if rest.len() < v.len() || !same_bytes(&rest[..v.len()], v) {
            return false;
        }
        rest = &rest[v.len()..];
    }
    rest.is_empty()
}

/// `a == b` for slices of the same length, inlined: label values are short, and a
/// call to `memcmp` per value cost a third of a lookup.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if read_u64(&a[i..]) != read_u64(&b[i..]) {
                return false;
            }
            i += 8;
        }
        read_u64(&a[n - 8..]) == read_u64(&b[n - 8..])
    } else {
        words(a) == words(b)
    }
}

/// The series of a family and their index.
#[derive(Debug)]
struct SeriesTable<M> {
    label_count: usize,
    /// Every series, in creation order.
    entries: Vec<M>,
    /// Open addressing with linear probing: 0 is empty, `i + 1` points at `entries[i]`.
    /// The length is a power of two, at most three quarters full.
    slots: Vec<u32>,
    /// The family's hash seed.
    seed: [u64; 2],
}

impl<M: Series> SeriesTable<M> {
    fn new(label_count: usize, seed: [u64; 2]) -> Self {
        SeriesTable {
            label_count,
            entries: Vec::new(),
            slots: Vec::new(),
            seed,
        }
    }

    fn hash_key(&self, key: &[u8]) -> u64 {
        hash_parts(self.seed, split_labels(key, self.label_count))
    }

    /// The slot and the entry index of the series with these values.
    #[inline]
    fn find(&self, hash: u64, values: &[&str]) -> Option<(usize, usize)> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut pos = hash as usize & mask;
        loop {
            match self.slots[pos] {
                0 => return None,
                s => {
                    let i = s as usize - 1;
                    if key_matches(self.entries[i].key().labels(), values) {
                        return Some((pos, i));
                    }
                }
            }
            pos = (pos + 1) & mask;
        }
    }

    fn insert(&mut self, hash: u64, series: M) {
        if (self.entries.len() + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        if self.entries.len() == self.entries.capacity() {
            // Grow by a quarter rather than double: the spare capacity is paid per series.
            self.entries.reserve_exact(self.entries.len() / 4 + 4);
        }
        self.entries.push(series);
        let index = self.entries.len() as u32;
        self.place(hash, index);
    }

    fn place(&mut self, hash: u64, index: u32) {
        let mask = self.slots.len() - 1;
        let mut pos = hash as usize & mask;
        while self.slots[pos] != 0 {
            pos = (pos + 1) & mask;
        }
        self.slots[pos] = index;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(8);
        self.slots = vec![0; size];
        for i in 0..self.entries.len() {
            let hash = self.hash_key(self.entries[i].key().labels());
            self.place(hash, i as u32 + 1);
        }
    }

    fn remove(&mut self, hash: u64, values: &[&str]) -> bool {
        let Some((pos, index)) = self.find(hash, values) else {
            return false;
        };
        self.entries.remove(index);
        // Entries after the removed one moved down by one.
        for slot in &mut self.slots {
            if *slot as usize > index + 1 {
                *slot -= 1;
            }
        }
        // Backward-shift deletion keeps every probe chain unbroken, no tombstones.
        let mask = self.slots.len() - 1;
        let mut hole = pos;
        let mut next = (hole + 1) & mask;
        while self.slots[next] != 0 {
            let entry = self.slots[next] as usize - 1;
            let home = self.hash_key(self.entries[entry].key().labels()) as usize & mask;
            // The entry may fill the hole if its home is not inside (hole, next].
            let stays = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !stays {
                self.slots[hole] = self.slots[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.slots[hole] = 0;
        true
    }
}

/// A keyed multiply-fold hash over the label values (each one ended by its length,
/// so the split between values counts): one 64x64->128-bit multiply per 16 bytes.
/// Fast on short strings, and seeded per family.
fn hash_parts<'a>(seed: [u64; 2], parts: impl Iterator<Item = &'a [u8]>) -> u64 {
    #[inline]
    fn fold(a: u64, b: u64) -> u64 {
        let product = u128::from(a) * u128::from(b);
        (product as u64) ^ ((product >> 64) as u64)
    }
    let mut h = seed[0];
    for part in parts {
        let n = part.len();
        let (a, b) = if n <= 16 {
            // Two words that together cover the part (overlapping when short).
            if n >= 8 {
                (read_u64(part), read_u64(&part[n - 8..]))
            } else {
                (words(part), 0)
            }
        } else {
            let mut i = 0;
            while i + 16 < n {
                h = fold(h ^ read_u64(&part[i..]), seed[1] ^ read_u64(&part[i + 8..]));
                i += 16;
            }
            (read_u64(&part[n - 16..]), read_u64(&part[n - 8..]))
        };
        h = fold(h ^ a, seed[1] ^ b) ^ n as u64;
    }
    fold(h, 0x9E37_79B9_7F4A_7C15)
}

/// The bytes of a part shorter than 8 as one word, read with whole loads:
/// assembling it byte by byte in a buffer stalls the CPU's store-to-load
/// forwarding, which cost more than the rest of a lookup.
#[inline]
fn words(part: &[u8]) -> u64 {
    let n = part.len();
    if n >= 4 {
        u64::from(read_u32(part)) | u64::from(read_u32(&part[n - 4..])) << 32
    } else if n > 0 {
        let b = |i: usize| u64::from(part[i]);
        b(0) | b(n / 2) << 8 | b(n - 1) << 16
    } else {
        0
    }
}

#[inline]
fn read_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

#[inline]
fn read_u32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(labels: &[&str]) -> Family<Counter> {
        Family::from_core(FamilyCore::new(
            "test_total".into(),
            "help".into(),
            labels,
            (),
        ))
    }

    #[test]
    fn values_that_run_together_the_same_are_different_series() {
        let f = counters(&["a", "b"]);
        f.with_labels(&["ab", "c"]).unwrap().inc();
        f.with_labels(&["a", "bc"]).unwrap().inc_by(5.0).unwrap();
        f.with_labels(&["abc", ""]).unwrap().inc_by(7.0).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f.with_labels(&["ab", "c"]).unwrap().get(), 1.0);
        assert_eq!(f.with_labels(&["a", "bc"]).unwrap().get(), 5.0);
        assert_eq!(f.with_labels(&["abc", ""]).unwrap().get(), 7.0);
        assert_eq!(f.with_labels(&["", "abc"]).unwrap().get(), 0.0);
    }

    #[test]
    fn same_values_give_the_same_series() {
        let f = counters(&["x"]);
        let a = f.with_labels(&["v"]).unwrap();
        let b = f.with_labels(&["v"]).unwrap();
        a.inc();
        b.inc();
        assert_eq!(f.len(), 1);
        assert_eq!(a.get(), 2.0);
    }

    #[test]
    fn wrong_label_count_is_an_error() {
        let f = counters(&["a", "b"]);
        let err = f.with_labels(&["only one"]).unwrap_err();
        assert_eq!(
            err,
            Error::LabelCount {
                metric: "test_total".into(),
                expected: 2,
                got: 1
            }
        );
        assert!(f.with_labels(&["1", "2", "3"]).is_err());
        assert!(!f.remove(&["1"]));
        assert!(f.is_empty());
    }

    #[test]
    fn the_cardinality_limit_refuses_new_series_only() {
        let f = counters(&["id"]);
        assert_eq!(f.series_limit(), DEFAULT_SERIES_LIMIT);
        f.set_series_limit(3);
        for id in ["1", "2", "3"] {
            f.with_labels(&[id]).unwrap().inc();
        }
        assert_eq!(
            f.with_labels(&["4"]).unwrap_err(),
            Error::CardinalityLimit {
                metric: "test_total".into(),
                limit: 3
            }
        );
        // Existing series are still served, and removing one makes room.
        f.with_labels(&["2"]).unwrap().inc();
        assert!(f.remove(&["1"]));
        f.with_labels(&["4"]).unwrap().inc();
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn the_default_limit_is_ten_thousand() {
        let f = counters(&["id"]);
        for i in 0..DEFAULT_SERIES_LIMIT {
            f.with_labels(&[&i.to_string()]).unwrap();
        }
        assert!(matches!(
            f.with_labels(&["one more"]),
            Err(Error::CardinalityLimit { limit: 10_000, .. })
        ));
        assert_eq!(f.len(), DEFAULT_SERIES_LIMIT);
    }

    #[test]
    fn removal_keeps_every_other_series_findable_and_in_order() {
        let f = counters(&["id"]);
        let ids: Vec<String> = (0..500).map(|i| format!("series-{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            f.with_labels(&[id]).unwrap().inc_by(i as f64).unwrap();
        }
        for id in ids.iter().step_by(3) {
            assert!(f.remove(&[id]));
            assert!(!f.remove(&[id]));
        }
        let mut seen = Vec::new();
        f.core.for_each(|c| seen.push(c.get() as usize));
        let expected: Vec<usize> = (0..500).filter(|i| i % 3 != 0).collect();
        assert_eq!(seen, expected, "creation order survives removals");
        for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
            assert_eq!(f.with_labels(&[id]).unwrap().get(), i as f64);
        }
        assert_eq!(f.len(), expected.len());
    }

    #[test]
    fn a_family_without_labels_has_one_series() {
        let f = counters(&[]);
        f.with_labels(&[]).unwrap().inc();
        f.with_labels(&[]).unwrap().inc();
        assert_eq!(f.len(), 1);
        assert_eq!(f.with_labels(&[]).unwrap().get(), 2.0);
        assert!(f.remove(&[]));
        assert!(f.is_empty());
    }

    #[test]
    fn clear_removes_everything() {
        let f = counters(&["id"]);
        f.with_labels(&["a"]).unwrap();
        f.with_labels(&["b"]).unwrap();
        f.clear();
        assert!(f.is_empty());
        assert_eq!(f.with_labels(&["a"]).unwrap().get(), 0.0);
    }

    #[test]
    fn hostile_values_are_kept_exactly() {
        let f = counters(&["v"]);
        let hostile = ["", "\"", "\\", "\n", "a\u{0}b", "ñandú 🦀", "\u{feff}"];
        for v in hostile {
            f.with_labels(&[v]).unwrap().inc();
        }
        assert_eq!(f.len(), hostile.len());
        let mut keys = Vec::new();
        f.core.for_each(|c| keys.push(c.key().labels().to_vec()));
        let expected: Vec<Vec<u8>> = hostile.iter().map(|v| v.as_bytes().to_vec()).collect();
        assert_eq!(keys, expected);
    }

    #[test]
    fn concurrent_lookups_create_each_series_once() {
        let f = counters(&["id"]);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..2_000 {
                        f.with_labels(&[&(i % 100).to_string()]).unwrap().inc();
                    }
                });
            }
        });
        assert_eq!(f.len(), 100);
        let mut total = 0.0;
        f.core.for_each(|c| total += c.get());
        assert_eq!(total, 8_000.0);
    }
}
