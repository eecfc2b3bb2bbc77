//! The open connections: a slot each, and who owns it.
//!
//! A connection is either *parked* in its slot (registered with the poller, armed,
//! waiting for its socket or its deadline) or *busy* (taken out by the one worker
//! whose event it was). Only the owner touches it; a parked connection can also be
//! taken by the timer (its deadline passed), by the worker that admits a new
//! connection over the cap (the oldest idle one makes room), or by a shutdown.
//! Each of those takes it under the slot's lock, so exactly one of them wins.
//!
//! A slot's generation changes every time it is freed, and it is half of the token
//! the poller reports: an event that comes late for a connection that is gone names
//! an old generation and is ignored.
//!
//! Slots are allocated in chunks, as connections come, so that an idle server with a
//! cap of 4096 connections pays for none of them.
//!
//! The buffers parked connections keep (a partial request, an answer the client
//! has not read yet) are counted against a budget: a connection that would go
//! over it is closed rather than parked, so that many clients that each send
//! part of a large body cannot hold more memory than the budget, together.

use super::conn::Conn;
use super::poller::{Interest, Poller};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

/// Why a connection is parked, which says what ends its wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Between requests, nothing received: waits for bytes or the idle timeout.
    Idle,
    /// Part of a request came: waits for the rest or the request timeout.
    Reading,
    /// An answer is partly written: waits until the socket takes more, or the
    /// write timeout (which restarts whenever a write makes progress).
    Writing,
    /// Requests already received wait their turn (the connection gave way to
    /// others after a batch): waits for the socket to be writable, at once.
    Resume,
    /// An error was answered and the write side shut: what the client still sends
    /// is read and dropped, so that closing does not reset the connection before
    /// the client has read the answer.
    Lingering,
}

struct Slot {
    inner: Mutex<SlotInner>,
}

struct SlotInner {
    generation: u32,
    state: State,
}

enum State {
    Free,
    Busy,
    Parked {
        conn: Box<Conn>,
        phase: Phase,
        deadline: Instant,
        since: Instant,
    },
}

/// A connection's slot and generation, as one number (the poller's token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) u64);

impl Token {
    fn new(index: u32, generation: u32) -> Token {
        Token(u64::from(generation) << 32 | u64::from(index))
    }

    fn index(self) -> usize {
        (self.0 & u64::from(u32::MAX)) as usize
    }

    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

const CHUNK: usize = 256;

pub(crate) struct Table {
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    capacity: usize,
    free: Mutex<Free>,
    open: AtomicUsize,
    /// Buffer bytes parked connections hold, and the most they may.
    held: AtomicUsize,
    budget: usize,
}

struct Free {
    /// Indices of freed slots, reused first (their chunks exist).
    stack: Vec<u32>,
    /// The first index never used.
    next: u32,
}

/// A connection taken out of its slot, with what its slot said about it.
pub(crate) struct Taken {
    pub(crate) conn: Box<Conn>,
    pub(crate) phase: Phase,
}

impl Table {
    pub(crate) fn new(capacity: usize, budget: usize) -> Table {
        let capacity = capacity.clamp(1, u32::MAX as usize - 1);
        Table {
            chunks: (0..capacity.div_ceil(CHUNK))
                .map(|_| OnceLock::new())
                .collect(),
            capacity,
            free: Mutex::new(Free {
                stack: Vec::new(),
                next: 0,
            }),
            open: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            budget,
        }
    }

    /// Buffer bytes that parked connections hold now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Relaxed)
    }

    fn unhold(&self, conn: &mut Conn) {
        self.held.fetch_sub(std::mem::take(&mut conn.held), Relaxed);
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    fn slot(&self, index: usize) -> &Slot {
        let chunk = self.chunks[index / CHUNK].get_or_init(|| {
            (0..CHUNK)
                .map(|_| Slot {
                    inner: Mutex::new(SlotInner {
                        generation: 0,
                        state: State::Free,
                    }),
                })
                .collect()
        });
        &chunk[index % CHUNK]
    }

    /// The slots allocated so far.
    fn allocated(&self) -> impl Iterator<Item = (usize, &Slot)> {
        self.chunks
            .iter()
            .enumerate()
            .filter_map(|(c, chunk)| chunk.get().map(|slots| (c, slots)))
            .flat_map(|(c, slots)| {
                slots
                    .iter()
                    .enumerate()
                    .map(move |(i, s)| (c * CHUNK + i, s))
            })
    }

    /// Parks a new connection in a free slot, registered with the poller for
    /// reading; gives it back if the table is full or the poller refuses it.
    pub(crate) fn admit(
        &self,
        conn: Box<Conn>,
        poller: &Poller,
        deadline: Instant,
    ) -> Result<Token, Box<Conn>> {
        let index = {
            let mut free = lock(&self.free);
            match free.stack.pop() {
                Some(i) => i,
                None if (free.next as usize) < self.capacity => {
                    free.next += 1;
                    free.next - 1
                }
                None => return Err(conn),
            }
        };
        let slot = self.slot(index as usize);
        let mut inner = lock(&slot.inner);
        let token = Token::new(index, inner.generation);
        if poller.add(&conn.source, token.0, Interest::Read).is_err() {
            drop(inner);
            lock(&self.free).stack.push(index);
            return Err(conn);
        }
        self.open.fetch_add(1, Relaxed);
        let now = Instant::now();
        inner.state = State::Parked {
            conn,
            phase: Phase::Idle,
            deadline,
            since: now,
        };
        Ok(token)
    }

    /// Takes the connection of an event out of its slot, if it is still the one
    /// the event was for and still parked.
    pub(crate) fn take(&self, token: Token) -> Option<Taken> {
        if token.index() >= self.capacity {
            return None;
        }
        let slot = self.slot(token.index());
        let mut inner = lock(&slot.inner);
        if inner.generation != token.generation() || !matches!(inner.state, State::Parked { .. }) {
            return None;
        }
        match std::mem::replace(&mut inner.state, State::Busy) {
            State::Parked {
                mut conn, phase, ..
            } => {
                self.unhold(&mut conn);
                Some(Taken { conn, phase })
            }
            _ => None,
        }
    }

    /// Puts a busy connection back, armed for `interest`, until `deadline`; if
    /// `refuse(phase)` says so (the server is stopping), its buffers would go over
    /// the budget, or the poller cannot arm it, the connection is handed back to
    /// be closed instead.
    pub(crate) fn park(
        &self,
        token: Token,
        mut conn: Box<Conn>,
        phase: Phase,
        deadline: Instant,
        poller: &Poller,
        refuse: impl FnOnce(Phase) -> bool,
    ) -> Result<(), Box<Conn>> {
        let slot = self.slot(token.index());
        let mut inner = lock(&slot.inner);
        if refuse(phase) {
            return Err(conn);
        }
        let need = conn.input.capacity() + conn.output.capacity();
        if need > 0 && self.held.fetch_add(need, Relaxed) + need > self.budget {
            self.held.fetch_sub(need, Relaxed);
            return Err(conn);
        }
        conn.held = need;
        let interest = match phase {
            Phase::Idle | Phase::Reading | Phase::Lingering => Interest::Read,
            Phase::Writing | Phase::Resume => Interest::Write,
        };
        // Armed under the lock: an event that fires at once waits for the lock and
        // then finds the connection parked.
        if poller.rearm(&conn.source, token.0, interest).is_err() {
            self.unhold(&mut conn);
            return Err(conn);
        }
        inner.state = State::Parked {
            conn,
            phase,
            deadline,
            since: Instant::now(),
        };
        Ok(())
    }

    /// Frees the slot of a busy connection that its owner closes.
    pub(crate) fn release(&self, token: Token, conn: Box<Conn>, poller: &Poller) {
        poller.remove(&conn.source, token.0);
        drop(conn);
        self.free_slot(token.index(), |state| matches!(state, State::Busy));
    }

    fn free_slot(&self, index: usize, expected: impl FnOnce(&State) -> bool) {
        let slot = self.slot(index);
        let mut inner = lock(&slot.inner);
        if expected(&inner.state) {
            inner.state = State::Free;
            inner.generation = inner.generation.wrapping_add(1);
            drop(inner);
            self.open.fetch_sub(1, Relaxed);
            lock(&self.free).stack.push(index as u32);
        }
    }

    /// Takes out every parked connection for which `pick(phase, deadline, since)`
    /// is true, frees their slots, and hands them to `close` (after they left the
    /// poller). Returns how many.
    pub(crate) fn sweep(
        &self,
        poller: &Poller,
        mut pick: impl FnMut(Phase, Instant, Instant) -> bool,
        mut close: impl FnMut(Box<Conn>, Phase),
    ) -> usize {
        let mut swept = 0;
        for (index, slot) in self.allocated() {
            let mut inner = lock(&slot.inner);
            let chosen = match &inner.state {
                State::Parked {
                    phase,
                    deadline,
                    since,
                    ..
                } => pick(*phase, *deadline, *since),
                _ => false,
            };
            if !chosen {
                continue;
            }
            let State::Parked { conn, phase, .. } =
                std::mem::replace(&mut inner.state, State::Free)
            else {
                continue;
            };
            let token = Token::new(index as u32, inner.generation);
            inner.generation = inner.generation.wrapping_add(1);
            drop(inner);
            poller.remove(&conn.source, token.0);
            self.open.fetch_sub(1, Relaxed);
            lock(&self.free).stack.push(index as u32);
            close(conn, phase);
            swept += 1;
        }
        swept
    }

    /// Closes the idle connection that has been idle longest, to make room;
    /// whether there was one.
    pub(crate) fn evict_oldest_idle(&self, poller: &Poller) -> bool {
        let mut oldest: Option<(Instant, usize)> = None;
        for (index, slot) in self.allocated() {
            if let State::Parked {
                phase: Phase::Idle,
                since,
                ..
            } = &lock(&slot.inner).state
            {
                if oldest.is_none_or(|(t, _)| *since < t) {
                    oldest = Some((*since, index));
                }
            }
        }
        let Some((since, index)) = oldest else {
            return false;
        };
        // Taken only if it is still that idle connection.
        let slot = self.slot(index);
        let mut inner = lock(&slot.inner);
        let still = matches!(&inner.state, State::Parked { phase: Phase::Idle, since: s, .. } if *s == since);
        if !still {
            return false;
        }
        let State::Parked { mut conn, .. } = std::mem::replace(&mut inner.state, State::Free)
        else {
            return false;
        };
        self.unhold(&mut conn);
        let token = Token::new(index as u32, inner.generation);
        inner.generation = inner.generation.wrapping_add(1);
        drop(inner);
        poller.remove(&conn.source, token.0);
        drop(conn);
        self.open.fetch_sub(1, Relaxed);
        lock(&self.free).stack.push(index as u32);
        true
    }

    /// Connections a worker holds now, or that wait to write or to resume: what a
    /// graceful stop waits for.
    pub(crate) fn active(&self) -> usize {
        self.allocated()
            .filter(|(_, slot)| {
                matches!(
                    lock(&slot.inner).state,
                    State::Busy
                        | State::Parked {
                            phase: Phase::Writing | Phase::Resume,
                            ..
                        }
                )
            })
            .count()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
