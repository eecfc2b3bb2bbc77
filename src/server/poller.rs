//! Readiness of sockets, one shot at a time: epoll on Linux, `poll(2)` elsewhere.
//!
//! Every source is registered *one-shot*: once an event of it is reported, to one
//! waiting thread only, the source reports nothing more until it is re-armed. So a
//! connection belongs to the one worker that got its event until that worker parks
//! it again, and any number of workers may wait at once (leader and followers:
//! no thread hands a request to another).
//!
//! * [`Backend::Epoll`] (Linux): the kernel keeps the interest list and wakes one
//!   waiter per event.
//! * [`Backend::Poll`] (every Unix; the one used off Linux, and tested on Linux
//!   too): one waiting thread at a time polls every armed source, disarms those
//!   that are ready and queues them for the others; a change of the interest list
//!   wakes it through a socket pair so that it polls the new list.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// What a source is waited on for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
}

/// What [`Poller::wait`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The source registered with this token is ready (or in error, or hung up:
    /// the next read or write says which).
    Ready(u64),
    /// Nothing within the timeout.
    Timeout,
    /// [`Poller::close`] was called: the waiting thread should end.
    Closed,
}

/// Which kernel interface to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll,
    // On Linux only the tests choose it.
    #[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
    Poll,
}

impl Backend {
    /// The best one this system has.
    pub(crate) fn native() -> Backend {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return Backend::Epoll;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return Backend::Poll;
    }
}

/// A source of events, shared with the poller where it needs to keep it (the
/// `poll(2)` backend polls the sources it holds).
pub(crate) type Source = Arc<dyn AsFd + Send + Sync>;

pub(crate) enum Poller {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Epoll(epoll::Epoll),
    Poll(PollSet),
}

impl Poller {
    pub(crate) fn new(backend: Backend) -> io::Result<Poller> {
        Ok(match backend {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Epoll => Poller::Epoll(epoll::Epoll::new()?),
            Backend::Poll => Poller::Poll(PollSet::new()?),
        })
    }

    /// Registers `source`, armed for `interest`.
    pub(crate) fn add(&self, source: &Source, token: u64, interest: Interest) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(e) => e.add(source, token, interest),
            Poller::Poll(p) => p.set(source, token, interest),
        }
    }

    /// Arms `source` again, for `interest`, after its event was reported.
    pub(crate) fn rearm(&self, source: &Source, token: u64, interest: Interest) -> io::Result<()> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(e) => e.rearm(source, token, interest),
            Poller::Poll(p) => p.set(source, token, interest),
        }
    }

    /// Forgets `source`. Call it before the source is closed.
    pub(crate) fn remove(&self, source: &Source, token: u64) {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(e) => e.remove(source),
            Poller::Poll(p) => {
                let _ = source;
                p.remove(token)
            }
        }
    }

    /// Waits for one event, at most `timeout` (`None`: for ever).
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<Wait> {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(e) => e.wait(timeout),
            Poller::Poll(p) => p.wait(timeout),
        }
    }

    /// Makes every waiting thread, and every later wait, return [`Wait::Closed`].
    pub(crate) fn close(&self) {
        match self {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Poller::Epoll(e) => e.close(),
            Poller::Poll(p) => p.close(),
        }
    }
}

/// A connected pair of sockets: a byte written to one end makes the other readable.
struct Waker {
    read: Arc<UnixStream>,
    write: UnixStream,
}

impl Waker {
    fn new() -> io::Result<Waker> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok(Waker {
            read: Arc::new(read),
            write,
        })
    }

    fn wake(&self) {
        // A full buffer means a wake-up is already pending: nothing is lost.
        let _ = (&self.write).write(&[1]);
    }

    fn drain(&self) {
        let mut sink = [0u8; 64];
        while matches!((&*self.read).read(&mut sink), Ok(n) if n > 0) {}
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll {
    use super::{Interest, Source, Wait, Waker};
    use rustix::event::{Timespec, epoll};
    use std::io;
    use std::os::fd::OwnedFd;
    use std::time::Duration;

    /// The token of the waker; connection tokens never reach it.
    const WAKER: u64 = u64::MAX;

    pub(crate) struct Epoll {
        fd: OwnedFd,
        waker: Waker,
    }

    fn flags(interest: Interest) -> epoll::EventFlags {
        let wanted = match interest {
            // RDHUP: a client that half-closes is seen at once.
            Interest::Read => epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
            Interest::Write => epoll::EventFlags::OUT,
        };
        wanted | epoll::EventFlags::ONESHOT
    }

    impl Epoll {
        pub(crate) fn new() -> io::Result<Epoll> {
            let fd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
            let waker = Waker::new()?;
            // Level-triggered and never disarmed: once closed, every waiter sees it.
            epoll::add(
                &fd,
                &*waker.read,
                epoll::EventData::new_u64(WAKER),
                epoll::EventFlags::IN,
            )?;
            Ok(Epoll { fd, waker })
        }

        pub(crate) fn add(
            &self,
            source: &Source,
            token: u64,
            interest: Interest,
        ) -> io::Result<()> {
            epoll::add(
                &self.fd,
                source.as_fd(),
                epoll::EventData::new_u64(token),
                flags(interest),
            )?;
            Ok(())
        }

        pub(crate) fn rearm(
            &self,
            source: &Source,
            token: u64,
            interest: Interest,
        ) -> io::Result<()> {
            epoll::modify(
                &self.fd,
                source.as_fd(),
                epoll::EventData::new_u64(token),
                flags(interest),
            )?;
            Ok(())
        }

        pub(crate) fn remove(&self, source: &Source) {
            let _ = epoll::delete(&self.fd, source.as_fd());
        }

        pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<Wait> {
            let timeout = timeout.map(|t| Timespec {
                tv_sec: t.as_secs() as i64,
                tv_nsec: i64::from(t.subsec_nanos()),
            });
            let mut events = [epoll::Event {
                flags: epoll::EventFlags::empty(),
                data: epoll::EventData::new_u64(0),
            }];
            // One event at a time: a worker holds only the connection it serves,
            // so a route that blocks delays no other connection.
            match epoll::wait(&self.fd, &mut events[..], timeout.as_ref()) {
                Ok(0) => Ok(Wait::Timeout),
                Ok(_) => Ok(match events[0].data.u64() {
                    WAKER => Wait::Closed,
                    token => Wait::Ready(token),
                }),
                Err(rustix::io::Errno::INTR) => Ok(Wait::Timeout),
                Err(e) => Err(e.into()),
            }
        }

        pub(crate) fn close(&self) {
            self.waker.wake();
        }
    }
}

/// The `poll(2)` backend; see the module documentation.
pub(crate) struct PollSet {
    state: Mutex<PollState>,
    /// Signalled when events were queued or the set was closed.
    queued: Condvar,
    waker: Waker,
}

struct PollState {
    sources: HashMap<u64, Registered>,
    ready: VecDeque<u64>,
    /// Whether a thread is in `poll(2)` now.
    polling: bool,
    closed: bool,
}

struct Registered {
    source: Source,
    interest: Interest,
    armed: bool,
}

impl PollSet {
    fn new() -> io::Result<PollSet> {
        Ok(PollSet {
            state: Mutex::new(PollState {
                sources: HashMap::new(),
                ready: VecDeque::new(),
                polling: false,
                closed: false,
            }),
            queued: Condvar::new(),
            waker: Waker::new()?,
        })
    }

    fn lock(&self) -> MutexGuard<'_, PollState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers or re-arms a source.
    fn set(&self, source: &Source, token: u64, interest: Interest) -> io::Result<()> {
        let mut state = self.lock();
        state.sources.insert(
            token,
            Registered {
                source: Arc::clone(source),
                interest,
                armed: true,
            },
        );
        // The thread in poll(2) polls an older list: make it start again.
        if state.polling {
            self.waker.wake();
        }
        Ok(())
    }

    fn remove(&self, token: u64) {
        let mut state = self.lock();
        state.sources.remove(&token);
        state.ready.retain(|&t| t != token);
        // The polling thread holds the source until it returns: let it go now,
        // so that the socket is really closed.
        if state.polling {
            self.waker.wake();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.queued.notify_all();
        self.waker.wake();
    }

    fn wait(&self, timeout: Option<Duration>) -> io::Result<Wait> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let mut state = self.lock();
        loop {
            if state.closed {
                return Ok(Wait::Closed);
            }
            if let Some(token) = state.ready.pop_front() {
                return Ok(Wait::Ready(token));
            }
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            if left == Some(Duration::ZERO) {
                return Ok(Wait::Timeout);
            }
            if state.polling {
                // Another thread polls; wait for what it queues.
                state = match left {
                    Some(left) => {
                        self.queued
                            .wait_timeout(state, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                    None => self
                        .queued
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner),
                };
                continue;
            }
            state.polling = true;
            let armed: Vec<(u64, Source, Interest)> = state
                .sources
                .iter()
                .filter(|(_, r)| r.armed)
                .map(|(&t, r)| (t, Arc::clone(&r.source), r.interest))
                .collect();
            drop(state);
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(armed.len() + 1);
            fds.push(PollFd::new(&*self.waker.read, PollFlags::IN));
            for (_, source, interest) in &armed {
                let flags = match interest {
                    Interest::Read => PollFlags::IN,
                    Interest::Write => PollFlags::OUT,
                };
                fds.push(PollFd::from_borrowed_fd(source.as_fd(), flags));
            }
            let timeout = left.map(|t| Timespec {
                tv_sec: t.as_secs() as i64,
                tv_nsec: i64::from(t.subsec_nanos()),
            });
            let polled = poll(&mut fds, timeout.as_ref());
            let woken = !fds[0].revents().is_empty();
            let fired: Vec<u64> = armed
                .iter()
                .zip(&fds[1..])
                .filter(|(_, fd)| !fd.revents().is_empty())
                .map(|((t, _, _), _)| *t)
                .collect();
            drop(fds);
            if woken {
                self.waker.drain();
            }
            state = self.lock();
            state.polling = false;
            for token in fired {
                // Only if it is still the same registration, still armed.
                if let Some(r) = state.sources.get_mut(&token) {
                    if r.armed {
                        r.armed = false;
                        state.ready.push_back(token);
                    }
                }
            }
            drop(armed);
            // Someone else may poll now, or take what was queued.
            self.queued.notify_all();
            match polled {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
