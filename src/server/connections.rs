//! One thread per client connection at a time, and refusal of clients that
//! pipeline requests without reading the answers.
//!
//! tiny_http reads a connection's requests ahead and queues every one of them for
//! the workers, while the answers must go out in order. Without this table, a
//! client that pipelines requests and never reads would hold every worker: the
//! first blocks writing to the full socket, the others wait for their turn behind
//! it. Here the first worker to take a connection's request owns the connection;
//! further requests of that connection wait in its own small queue, and the owner
//! answers them in turn. A connection whose queue overflows, or whose write failed
//! (timed out), is refused for a while: its requests are dropped unanswered, at
//! the cost of a table lookup, so the flood costs little memory and no worker.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tiny_http::Request;

/// Requests of one connection that may wait for its owner; more means a flood.
pub(crate) const MAX_PENDING: usize = 64;

/// How long a refused connection stays refused after its last request.
const REFUSE_FOR: Duration = Duration::from_secs(10);

/// Refused entries are swept when the table grows past this, at most once per
/// `REFUSE_FOR`.
const SWEEP_AT: usize = 1024;

pub(crate) struct Connections {
    table: Mutex<Table>,
}

struct Table {
    conns: HashMap<SocketAddr, Conn>,
    swept: Instant,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            table: Mutex::new(Table {
                conns: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }
}

/// A connection that a thread owns, or that is refused (or both: refused while
/// its owner is still writing to it).
struct Conn {
    owned: bool,
    pending: VecDeque<Request>,
    /// Set once the connection misbehaved; updated at each refused request.
    refused: Option<Instant>,
}

impl Conn {
    fn owned() -> Conn {
        Conn {
            owned: true,
            pending: VecDeque::new(),
            refused: None,
        }
    }
}

/// What a worker does with a request it received.
pub(crate) enum Claim {
    /// Answer it: the worker owns the connection now.
    Serve(Request),
    /// Nothing: the connection's owner will answer it.
    Queued,
    /// Drop these unanswered: the connection is refused.
    Refuse(Vec<Request>),
}

/// What the owner of a connection does after an answer.
pub(crate) enum Next {
    /// Answer this request of the connection, which waited meanwhile.
    Serve(Request),
    /// Drop these: the connection is refused, and no longer owned.
    Refuse(Vec<Request>),
    /// Nothing: the connection is no longer owned.
    Done,
}

impl Connections {
    pub(crate) fn claim(&self, peer: SocketAddr, request: Request) -> Claim {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.conns.len() >= SWEEP_AT && now - table.swept >= REFUSE_FOR {
            table.swept = now;
            table
                .conns
                .retain(|_, c| c.owned || c.refused.is_some_and(|t| now - t < REFUSE_FOR));
        }
        let conn = match table.conns.entry(peer) {
            Entry::Vacant(slot) => {
                slot.insert(Conn::owned());
                return Claim::Serve(request);
            }
            Entry::Occupied(slot) => slot.into_mut(),
        };
        match conn.refused {
            // Refused long ago, and nobody is writing to it: the port now belongs
            // to a new connection.
            Some(t) if now - t >= REFUSE_FOR && !conn.owned => {
                *conn = Conn::owned();
                Claim::Serve(request)
            }
            Some(_) => {
                conn.refused = Some(now);
                Claim::Refuse(vec![request])
            }
            None if conn.pending.len() < MAX_PENDING => {
                conn.pending.push_back(request);
                Claim::Queued
            }
            None => {
                conn.refused = Some(now);
                let mut dropped: Vec<Request> = conn.pending.drain(..).collect();
                dropped.push(request);
                Claim::Refuse(dropped)
            }
        }
    }

    /// Called by the owner after each answer: the next waiting request, if any.
    /// When the answer could not be written (or the connection was refused
    /// meanwhile), the connection is refused and its waiting requests come back
    /// to be dropped.
    pub(crate) fn next(&self, peer: SocketAddr, written: bool) -> Next {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(conn) = table.conns.get_mut(&peer) else {
            return Next::Done;
        };
        if !written || conn.refused.is_some() {
            conn.refused = Some(Instant::now());
            conn.owned = false;
            return Next::Refuse(conn.pending.drain(..).collect());
        }
        match conn.pending.pop_front() {
            Some(request) => Next::Serve(request),
            None => {
                table.conns.remove(&peer);
                Next::Done
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.lock().unwrap().conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_http::TestRequest;

    fn request(peer: SocketAddr) -> Request {
        TestRequest::new().with_remote_addr(peer).into()
    }

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn the_first_request_of_a_connection_makes_its_worker_the_owner() {
        let c = Connections::default();
        assert!(matches!(
            c.claim(peer(1), request(peer(1))),
            Claim::Serve(_)
        ));
        // A second connection is independent.
        assert!(matches!(
            c.claim(peer(2), request(peer(2))),
            Claim::Serve(_)
        ));
        // The first connection's next request waits for its owner.
        assert!(matches!(c.claim(peer(1), request(peer(1))), Claim::Queued));
        assert!(matches!(c.next(peer(1), true), Next::Serve(_)));
        assert!(matches!(c.next(peer(1), true), Next::Done));
        assert!(matches!(c.next(peer(2), true), Next::Done));
        assert_eq!(c.len(), 0, "connections without an owner leave the table");
        assert!(matches!(
            c.claim(peer(1), request(peer(1))),
            Claim::Serve(_)
        ));
    }

    #[test]
    fn a_connection_that_floods_is_refused() {
        let c = Connections::default();
        assert!(matches!(
            c.claim(peer(1), request(peer(1))),
            Claim::Serve(_)
        ));
        for _ in 0..MAX_PENDING {
            assert!(matches!(c.claim(peer(1), request(peer(1))), Claim::Queued));
        }
        match c.claim(peer(1), request(peer(1))) {
            Claim::Refuse(dropped) => assert_eq!(dropped.len(), MAX_PENDING + 1),
            _ => panic!("an overflowing queue refuses the connection"),
        }
        assert!(matches!(c.claim(peer(1), request(peer(1))), Claim::Refuse(r) if r.len() == 1));
        // The owner learns of it after its answer.
        assert!(matches!(c.next(peer(1), true), Next::Refuse(r) if r.is_empty()));
        // Other connections are unaffected.
        assert!(matches!(
            c.claim(peer(2), request(peer(2))),
            Claim::Serve(_)
        ));
    }

    #[test]
    fn a_failed_write_refuses_the_connection_and_drops_its_queue() {
        let c = Connections::default();
        assert!(matches!(
            c.claim(peer(1), request(peer(1))),
            Claim::Serve(_)
        ));
        assert!(matches!(c.claim(peer(1), request(peer(1))), Claim::Queued));
        assert!(matches!(c.next(peer(1), false), Next::Refuse(r) if r.len() == 1));
        assert!(matches!(
            c.claim(peer(1), request(peer(1))),
            Claim::Refuse(_)
        ));
    }
}
