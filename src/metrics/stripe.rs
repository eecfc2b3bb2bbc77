//! Stripe slots: which threads own a stripe of their own in the series of one
//! histogram kind. A thread claims a slot (a bit of the pool) the first time it
//! observes and gives it back when it ends; a thread that finds no free slot
//! shares the last stripe with the others.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::LocalKey;

/// The slots of one histogram kind: bit `k` set, slot `k` belongs to a live thread.
pub(crate) struct Pool(AtomicU64);

impl Pool {
    pub(crate) const fn new() -> Pool {
        Pool(AtomicU64::new(0))
    }

    /// A free slot below `slots` (at most 64), if any.
    fn claim(&self, slots: usize) -> Option<usize> {
        let mut taken = self.0.load(Ordering::Relaxed);
        loop {
            let k = (!taken).trailing_zeros() as usize;
            if k >= slots {
                return None;
            }
            match self.0.compare_exchange_weak(
                taken,
                taken | (1 << k),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(k),
                Err(now) => taken = now,
            }
        }
    }
}

/// A thread's slot in a pool: not asked yet, none free, or slot `k`; given
/// back when the thread ends.
pub(crate) struct ThreadSlot {
    pool: &'static Pool,
    claimed: Cell<Option<Option<usize>>>,
}

impl ThreadSlot {
    pub(crate) const fn new(pool: &'static Pool) -> ThreadSlot {
        ThreadSlot {
            pool,
            claimed: Cell::new(None),
        }
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        if let Some(Some(k)) = self.claimed.get() {
            // Release: the next owner sees everything this thread stored.
            self.pool.0.fetch_and(!(1 << k), Ordering::Release);
        }
    }
}

/// This thread's slot in `key`'s pool, claimed on first use among `slots()`
/// (asked only then, off the hot path).
#[inline]
pub(crate) fn slot(key: &'static LocalKey<ThreadSlot>, slots: fn() -> usize) -> Option<usize> {
    key.try_with(|slot| match slot.claimed.get() {
        Some(claimed) => claimed,
        None => {
            let claimed = slot.pool.claim(slots());
            slot.claimed.set(Some(claimed));
            claimed
        }
    })
    .ok()
    .flatten()
}
