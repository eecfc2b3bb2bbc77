//! [`Family`]: the series of one metric, one per label set.
//!
//! A series is identified by its exact label values ([`key`](super::key)); the
//! family keeps them in an insertion-ordered hash table ([`table`](super::table)).
//! Each metric type's file says how it is created and adds its one-off updates
//! (`Family<Counter>::inc`, ...): this file names no concrete type.

use crate::Error;
use crate::metrics::key::{LabelNames, SeriesKey};
use crate::metrics::recent::{self, Recent, next_family_id};
use crate::metrics::table::{SeriesTable, hash_parts};
use crate::metrics::unix_now_millis;
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::LocalKey;

/// How many series a family holds at most, unless told otherwise.
pub const DEFAULT_SERIES_LIMIT: usize = 10_000;

/// A metric with labels: one series per distinct set of label values.
///
/// [`with_labels`](Family::with_labels) returns the series' handle (creating the
/// series the first time); keep the handle and the hot path is only an atomic.
/// Without a kept handle, each thread remembers the series it looked up (up to
/// 256 per metric type), so an update like `requests.inc(&labels)` repeated on a
/// thread takes no lock: a hash, the values compared in full, the atomic.
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
/// [`Counter`](crate::Counter), [`Gauge`](crate::Gauge), [`Histogram`](crate::Histogram) and
/// [`NativeHistogram`](crate::NativeHistogram); not meant to be implemented elsewhere.
pub trait Series: Clone + Sealed + 'static {
    /// Shared by every series of a family (the bucket bounds of a histogram).
    #[doc(hidden)]
    type Config: std::fmt::Debug + Send + Sync;
    #[doc(hidden)]
    fn create(config: &Self::Config, key: SeriesKey) -> Self;
    #[doc(hidden)]
    fn key(&self) -> &SeriesKey;
    /// Each thread's recent series of this type ([`recent`](super::recent)).
    #[doc(hidden)]
    fn recent() -> &'static LocalKey<RefCell<Recent<Self>>>;
}

/// Only the crate's own metric types are series: the family's table relies on
/// what they store.
pub trait Sealed {}

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
    /// The identity under which threads remember this family's series; a new
    /// one, set under the write lock, whenever a series is removed or the family
    /// cleared.
    id: AtomicU64,
}

impl<M: Series> FamilyCore<M> {
    pub(crate) fn new(
        name: String,
        help: String,
        label_names: LabelNames,
        config: M::Config,
    ) -> Self {
        let state = RandomState::new();
        let seed = [state.hash_one(1u8), state.hash_one(2u8) | 1];
        FamilyCore {
            name,
            help,
            table: RwLock::new(SeriesTable::new(label_names.len(), seed)),
            label_names,
            config,
            seed,
            limit: AtomicUsize::new(DEFAULT_SERIES_LIMIT),
            id: AtomicU64::new(next_family_id()),
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

    /// Runs `f` on the series for these values (creating it if needed): on the
    /// one this thread remembered for them, else while the table is locked (and
    /// then the thread remembers it). `f` is the crate's own code, never the
    /// caller's: a caller's closure could ask for a new series of the same family
    /// and deadlock on the lock.
    #[inline]
    pub(crate) fn apply<R>(&self, values: &[&str], f: impl Fn(&M) -> R) -> Result<R, Error> {
        let core = &*self.core;
        core.label_names.check_count(&core.name, values.len())?;
        let hash = core.hash(values);
        // Relaxed is enough: nothing is published through the identity. A removal
        // that happened before this lookup stored a newer one, and coherence
        // means this load sees it (or a later one).
        if let Some(result) = recent::find(M::recent(), core.id.load(Relaxed), hash, values, &f) {
            return Ok(result);
        }
        // A handle the thread's table lets go of is dropped after the lock: it
        // may be the last one of a removed series.
        let _evicted;
        {
            let table = core.table.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, i)) = table.find(hash, values) {
                let series = &table.entries[i];
                // The identity read under the lock: no removal can come between.
                _evicted = recent::remember(M::recent(), core.id.load(Relaxed), hash, series);
                return Ok(f(series));
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
        if let Some(series) = table.entries.last() {
            _evicted = recent::remember(M::recent(), core.id.load(Relaxed), hash, series);
        }
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
        let removed = table.remove(hash, values);
        if removed {
            // Threads no longer serve this family's series from their tables.
            self.core.id.store(next_family_id(), Relaxed);
        }
        removed
    }

    /// Removes every series.
    pub fn clear(&self) {
        let mut table = self
            .core
            .table
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *table = SeriesTable::new(self.core.label_names.len(), self.core.seed);
        self.core.id.store(next_family_id(), Relaxed);
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

#[cfg(test)]
#[path = "family_tests.rs"]
mod tests;
