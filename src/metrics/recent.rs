//! A thread's recent series: label sets a thread looked up before, found again
//! without the family's lock.
//!
//! Why: taking and releasing a read lock is two atomic read-modify-writes, and
//! each costs as much as the counter increment itself (about 7 ns apiece on the
//! 2-CPU machine of the benchmarks, so the lock was two thirds of a labeled
//! `inc`). A safe, lock-free shared index would need a way to free what readers
//! may still be reading, and that costs the same read-modify-writes; memory a
//! thread owns needs none. So each thread keeps, per metric type, a small
//! table of `(family, hash) -> series` handles it used, and a
//! lookup that finds its label set there (values compared in full) goes straight
//! to the series' atomics.
//!
//! A family gets a new identity from [`next_family_id`] whenever a series is
//! removed or the family cleared, so a lookup never serves a series removed
//! before it started: the entry's identity is then stale and the lookup goes
//! through the lock as before (the series it finds there, if it is still the
//! same one, gets the new identity). The table holds at most [`SLOTS`] handles
//! per thread and type (4 KiB, allocated the first time the thread remembers
//! one). A handle kept there keeps its series' memory, even once the series is
//! removed or its family dropped, until the slot is reused or the thread ends:
//! at most 256 series per thread and type outside any family's count (for
//! native histograms, each holds its stripes), never their place in the
//! exposition.
//!
//! The table is two-way set-associative: a label set may sit in either slot of
//! the pair its hash picks. A found series is marked used; a new one takes a slot
//! of its pair that is empty or unused, and when both are used it takes neither
//! but clears their marks (a second chance), so label sets taking turns in one
//! pair leave two of them served here rather than all paying a refill (two more
//! read-modify-writes) every time. With the 64 label sets of the benchmark's
//! rotation, about 96% find a place.

use crate::metrics::family::Series;
use crate::metrics::key::key_matches;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread::LocalKey;

/// Slots per thread and metric type, a power of two: 128 pairs.
pub(crate) const SLOTS: usize = 256;

/// The bit of a slot's `family` word that marks it used; identities stay below.
const USED: u64 = 1 << 63;

/// One thread's recent series of one metric type.
#[doc(hidden)]
#[derive(Debug)]
pub struct Recent<M> {
    slots: Option<Box<[Slot<M>]>>,
}

#[derive(Debug)]
struct Slot<M> {
    /// The family's identity when the series was remembered (0 for none), and
    /// [`USED`] if it was found here since it was filled or last passed over.
    family: u64,
    series: Option<M>,
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

/// Family identities are never reused (an address could be) and never 0; they
/// stay below [`USED`] (2^63 of them: one per nanosecond for 292 years).
static NEXT_FAMILY: AtomicU64 = AtomicU64::new(1);

/// A fresh family identity: for a new family, and for one that lost a series.
pub(crate) fn next_family_id() -> u64 {
    let id = NEXT_FAMILY.fetch_add(1, Relaxed);
    debug_assert!(id < USED);
    id
}

/// The pair of slots where a label set of this hash may sit.
fn pair<M>(slots: &mut [Slot<M>], hash: u64) -> Option<&mut [Slot<M>]> {
    // The high bits: the family's table probes from the low ones.
    let first = ((hash >> 32) as usize & (SLOTS / 2 - 1)) * 2;
    slots.get_mut(first..first + 2)
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
            // Busy only if a lookup runs inside another one (an allocator that
            // records metrics, say); then the lock. During the thread's exit the
            // table is gone and `try_with` fails: the lock too.
            let mut table = table.try_borrow_mut().ok()?;
            let pair = pair(table.slots.as_mut()?, hash)?;
            for slot in pair {
                if slot.family & !USED != family {
                    continue;
                }
                if let Some(series) = &slot.series {
                    if key_matches(series.key().labels(), values) {
                        slot.family |= USED;
                        return Some(f(series));
                    }
                }
            }
            None
        })
        .ok()
        .flatten()
}

/// Remembers `series`, just found under the family's lock while its identity was
/// `family`: in the slot of its pair that already holds it (under an older
/// identity), else in one that is empty or not used since it was filled; if both
/// are used, clears their marks instead. Returns the handle it let go of, for
/// the caller to drop once the lock is released.
pub(crate) fn remember<M: Series>(
    recent: &'static LocalKey<RefCell<Recent<M>>>,
    family: u64,
    hash: u64,
    series: &M,
) -> Option<M> {
    recent
        .try_with(|table| {
            let mut table = table.try_borrow_mut().ok()?;
            let slots = table.slots.get_or_insert_with(|| {
                (0..SLOTS)
                    .map(|_| Slot {
                        family: 0,
                        series: None,
                    })
                    .collect()
            });
            let pair = pair(slots, hash)?;
            // The same series (one key, one allocation): a removal of another
            // series of its family gave it a new identity, nothing else.
            let same = |slot: &Slot<M>| {
                slot.series
                    .as_ref()
                    .is_some_and(|kept| std::ptr::eq(kept.key(), series.key()))
            };
            if let Some(slot) = pair.iter_mut().find(|slot| same(slot)) {
                slot.family = family;
                return None;
            }
            let free = match pair.iter().position(|slot| slot.series.is_none()) {
                Some(i) => Some(i),
                None => pair.iter().position(|slot| slot.family & USED == 0),
            };
            match free.and_then(|i| pair.get_mut(i)) {
                Some(slot) => {
                    slot.family = family;
                    slot.series.replace(series.clone())
                }
                None => {
                    pair.iter_mut().for_each(|slot| slot.family &= !USED);
                    None
                }
            }
        })
        .ok()
        .flatten()
}

/// Whether this thread's table holds the series for these values under the
/// identity `family` (for tests: that lookups do take the short way).
#[cfg(test)]
pub(crate) fn holds<M: Series>(
    recent: &'static LocalKey<RefCell<Recent<M>>>,
    family: u64,
    hash: u64,
    values: &[&str],
) -> bool {
    recent.with(|table| {
        let mut table = table.borrow_mut();
        let Some(slots) = table.slots.as_mut() else {
            return false;
        };
        pair(slots, hash).is_some_and(|pair| {
            pair.iter().any(|slot| {
                slot.family & !USED == family
                    && slot
                        .series
                        .as_ref()
                        .is_some_and(|s| key_matches(s.key().labels(), values))
            })
        })
    })
}
