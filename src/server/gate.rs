//! How many workers take events at once.
//!
//! A route may block (slpocapp's `--work-ms` sleeps), so the server keeps as
//! many workers as routes that may run at once. But if all of them wait on the
//! poller, every event wakes a sleeping thread while the threads already running
//! would have taken it a few microseconds later: on two CPUs, 32 waiting workers
//! answered half as many requests a second as 2, and on one CPU a request
//! waited up to 100 ms behind the others' time slices.
//!
//! So only as many workers as the process has CPUs take events; the others wait
//! here as spares. A worker that has been in a route for a whole tick of the
//! timer (1 ms while routes run) counts as blocked, and a spare takes its place
//! until it comes back; then one worker too many parks again. A fast route
//! costs two atomic stores and a load; a route that blocks holds up the other connections
//! for at most about two ticks.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, PoisonError};

pub(crate) struct Gate {
    /// Workers that take events when no route blocks: the CPUs, or fewer.
    base: usize,
    /// Workers that may take events now: `base` plus one per blocked route.
    target: AtomicUsize,
    /// Workers taking events now (all but the parked spares).
    active: AtomicUsize,
    /// Per worker: the tick at which its current route began, 0 when in none,
    /// each on a line of its own (every request writes its worker's twice).
    started: Box<[Started]>,
    /// The timer's tick count (from 1).
    tick: AtomicU64,
    /// Whether the timer ticks fast (a route was running at its last tick);
    /// when it does not, the next route to start wakes it.
    fast: AtomicBool,
    /// Whether the gate is closed; spares wait on it.
    closed: Mutex<bool>,
    wake: Condvar,
}

/// One worker's route start, padded to a line pair (what adjacent-line
/// prefetching moves together) so that workers never write a shared line.
#[repr(align(128))]
struct Started(AtomicU64);

impl Gate {
    pub(crate) fn new(workers: usize) -> Gate {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let base = cpus.clamp(1, workers.max(1));
        Gate {
            base,
            target: AtomicUsize::new(base),
            active: AtomicUsize::new(workers),
            started: (0..workers).map(|_| Started(AtomicU64::new(0))).collect(),
            tick: AtomicU64::new(1),
            fast: AtomicBool::new(false),
            closed: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Called by a worker before it waits for an event: parks it as a spare while
    /// more workers take events than may. `false` once the server stops.
    pub(crate) fn pass(&self) -> bool {
        loop {
            let active = self.active.load(Relaxed);
            if active <= self.target.load(Relaxed) {
                return true;
            }
            if self
                .active
                .compare_exchange(active, active - 1, Relaxed, Relaxed)
                .is_ok()
            {
                return self.park();
            }
        }
    }

    fn park(&self) -> bool {
        let mut closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if *closed {
                return false;
            }
            // Joining under the lock: two spares woken at once cannot both take
            // the one free place.
            if self.active.load(Relaxed) < self.target.load(Relaxed) {
                self.active.fetch_add(1, Relaxed);
                return true;
            }
            closed = self
                .wake
                .wait(closed)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A worker enters a route. Returns whether the timer must be woken to tick
    /// fast: it was ticking slowly (no route ran at its last tick). One shared
    /// load per route otherwise; the timer finds the running routes itself.
    pub(crate) fn enter_route(&self, worker: usize) -> bool {
        self.started[worker]
            .0
            .store(self.tick.load(Relaxed), Relaxed);
        !self.fast.load(Relaxed) && !self.fast.swap(true, Relaxed)
    }

    pub(crate) fn leave_route(&self, worker: usize) {
        self.started[worker].0.store(0, Relaxed);
    }

    /// One tick of the timer: counts the routes running since before the last
    /// tick, lets as many spares take their places, and returns whether the next
    /// tick should come fast (a route is running).
    pub(crate) fn tick(&self) -> bool {
        let tick = self.tick.fetch_add(1, Relaxed);
        let (mut running, mut blocked) = (0, 0);
        for started in self.started.iter().map(|s| s.0.load(Relaxed)) {
            running += usize::from(started != 0);
            blocked += usize::from(started != 0 && started < tick);
        }
        let target = (self.base + blocked).min(self.started.len());
        let before = self.target.swap(target, Relaxed);
        if target > before {
            let _closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
            self.wake.notify_all();
        }
        let fast = running > 0;
        self.fast.store(fast, Relaxed);
        fast
    }

    /// Whether a route asked for fast ticks since the last one.
    pub(crate) fn ticks_fast(&self) -> bool {
        self.fast.load(Relaxed)
    }

    /// Lets the spares end.
    pub(crate) fn close(&self) {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    #[cfg(test)]
    pub(crate) fn taking(&self) -> (usize, usize) {
        (self.active.load(Relaxed), self.target.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_route_lets_one_spare_in_and_it_parks_again_after() {
        let gate = Gate::new(8);
        let base = gate.base;
        // All eight start active; all but `base` park at their first pass.
        let spares: Vec<_> = std::thread::scope(|s| {
            let parked: Vec<_> = (0..8 - base).map(|_| s.spawn(|| gate.pass())).collect();
            while gate.taking().0 > base {
                std::thread::yield_now();
            }
            assert!(gate.pass(), "a worker within the target passes");
            // Every taking worker enters a route; the first that fills them asks
            // for the timer once.
            let woke: Vec<bool> = (0..base).map(|w| gate.enter_route(w)).collect();
            assert_eq!(woke.iter().filter(|w| **w).count(), 1);
            // Within the tick they began in, they do not count as blocked.
            assert!(gate.tick());
            assert_eq!(gate.taking(), (base, base));
            // A tick later they do: as many spares come in.
            assert!(gate.tick());
            while gate.taking().0 < 2 * base.min(8 - base) {
                std::thread::yield_now();
            }
            for w in 0..base {
                gate.leave_route(w);
            }
            assert!(!gate.tick(), "no route runs: the timer may slow down");
            assert_eq!(gate.taking().1, base);
            gate.close();
            parked.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // The spares that came in returned true; those still parked at the close, false.
        assert_eq!(
            spares.iter().filter(|passed| **passed).count(),
            base.min(8 - base)
        );
        // More workers take events than may: the next to pass parks, and the
        // closed gate ends it.
        assert!(!gate.pass());
    }
}
