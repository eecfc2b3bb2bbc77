//! A thread's recent series: label sets a thread looked up before, found again
//! without the family's lock.
//!
//! Why: taking and releasing a read lock is two atomic read-modify-writes, and
//! each costs as much as the counter increment itself (about 7 ns apiece on the
//! 2-CPU machine of the benchmarks, so the lock was two thirds of a labeled
//! `inc`). A safe, lock-free shared index would need a way to free what readers
//! may still be reading, and that costs the same read-modify-writes; memory a
//! thread owns needs none. So each thread keeps, per metric type, a small
//! direct-mapped table of `(family, hash) -> series` handles it used, and a
//! lookup that finds its label set there (values compared in full) goes straight
//! to the series' atomics.
//!
//! A family gets a new identity from [`next_family_id`] whenever a series is
//! removed, so a thread never serves a removed series from its table: the entry's
//! identity is then stale and the lookup goes through the lock as before. The
//! table holds at most [`SLOTS`] handles per thread and type (4 KiB, allocated
//! the first time the thread remembers one); a handle kept there keeps a removed
//! series' memory until its slot is reused or the thread ends, never its place in
//! the exposition.
//!
//! A slot already holding a series used since it was filled is not taken by
//! another label set (it loses its "used" mark instead): two label sets that fall
//! in one slot and take turns leave one of them served here, rather than both
//! paying a refill (two more read-modify-writes) on every lookup.

use crate::metrics::family::Series;
use crate::metrics::key::key_matches;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread::LocalKey;

/// Slots per thread and metric type, a power of two. 64 label sets taking turns
/// (the benchmark's rotation) mostly find their own slot.
pub(crate) const SLOTS: usize = 128;

/// One thread's recent series of one metric type.
#[doc(hidden)]
#[derive(Debug)]
pub struct Recent<M> {
    slots: Option<Box<[Slot<M>]>>,
}

#[derive(Debug)]
struct Slot<M> {
    /// The family's identity when the series was remembered; 0 for none.
    family: u64,
    hash: u64,
    series: Option<M>,
    /// Found here since the slot was filled or last passed over.
    used: bool,
}

impl<M> Recent<M> {
    /// An empty table, for the `thread_local!` of each metric type.
    pub const fn new() -> Self {
        Recent { slots: None }
    }
}

impl<M> Default for Recent<M> {
    fn default() -> Self {
        Recent::new()
    }
}

/// Family identities are never reused (an address could be) and never 0.
static NEXT_FAMILY: AtomicU64 = AtomicU64::new(1);

/// A fresh family identity: for a new family, and for one that lost a series.
pub(crate) fn next_family_id() -> u64 {
    NEXT_FAMILY.fetch_add(1, Relaxed)
}

fn slot_of(hash: u64) -> usize {
    // The high bits: the family's table probes from the low ones.
    (hash >> 32) as usize & (SLOTS - 1)
}

/// Runs `f` on the series this thread remembered for these values in family
/// `family` (its current identity), if there is one.
#[inline]
pub(crate) fn find<M: Series, R>(
    recent: &'static LocalKey<RefCell<Recent<M>>>,
    family: u64,
    hash: u64,
    values: &[&str],
    f: impl Fn(&M) -> R,
) -> Option<R> {
    recent
        .try_with(|table| {
            // Busy only if a thread's own destructor looks up a series; then the lock.
            let mut table = table.try_borrow_mut().ok()?;
            let slot = table.slots.as_mut()?.get_mut(slot_of(hash))?;
            if slot.family != family || slot.hash != hash {
                return None;
            }
            let series = slot.series.as_ref()?;
            if !key_matches(series.key().labels(), values) {
                return None;
            }
            slot.used = true;
            Some(f(series))
        })
        .ok()
        .flatten()
}

/// Remembers `series`, just found under the family's lock while its identity was
/// `family`, unless its slot holds a series used since it was filled.
pub(crate) fn remember<M: Series>(
    recent: &'static LocalKey<RefCell<Recent<M>>>,
    family: u64,
    hash: u64,
    series: &M,
) {
    let _ = recent.try_with(|table| {
        let Ok(mut table) = table.try_borrow_mut() else {
            return;
        };
        let slots = table.slots.get_or_insert_with(|| {
            (0..SLOTS)
                .map(|_| Slot {
                    family: 0,
                    hash: 0,
                    series: None,
                    used: false,
                })
                .collect()
        });
        let Some(slot) = slots.get_mut(slot_of(hash)) else {
            return;
        };
        if slot.used {
            slot.used = false;
            return;
        }
        // The handle it replaces is dropped here, after the borrow is set up:
        // dropping a handle never looks a series up.
        *slot = Slot {
            family,
            hash,
            series: Some(series.clone()),
            used: false,
        };
    });
}
