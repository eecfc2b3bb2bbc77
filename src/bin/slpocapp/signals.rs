//! Waiting for SIGTERM and SIGINT: the binary's one piece of FFI.
//!
//! The signals are blocked in every thread (the mask is set before any thread
//! starts, and threads inherit it) and taken synchronously with `sigtimedwait`,
//! so no handler runs at an arbitrary point of the program. This also works when
//! the binary is PID 1 in a container: the kernel discards a signal sent to PID 1
//! when its action is the default one, but never a blocked signal, which stays
//! pending until `sigtimedwait` takes it. Without this, Kubernetes would wait out
//! the grace period and SIGKILL the pod.
//!
//! The declarations follow POSIX and the Linux ABI (glibc and musl alike): a
//! `sigset_t` of 1024 bits, `SIG_BLOCK` = 0, `SIGINT` = 2, `SIGTERM` = 15,
//! `EAGAIN` = 11 on timeout.
#![allow(unsafe_code)]

use std::ffi::c_int;
use std::time::Duration;

#[repr(C)]
struct SigSet([u64; 16]);

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

unsafe extern "C" {
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigaddset(set: *mut SigSet, signal: c_int) -> c_int;
    fn pthread_sigmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigtimedwait(set: *const SigSet, info: *mut [u64; 16], timeout: *const Timespec) -> c_int;
}

const SIG_BLOCK: c_int = 0;
pub const SIGINT: c_int = 2;
pub const SIGTERM: c_int = 15;

/// SIGTERM and SIGINT, blocked in the calling thread and all threads it starts.
pub struct Termination {
    set: SigSet,
}

impl Termination {
    /// Blocks the signals. Call it before starting any thread.
    pub fn block() -> std::io::Result<Termination> {
        let mut set = SigSet([0; 16]);
        // SAFETY: `set` is a valid, writable sigset_t-sized buffer; the calls only
        // read and write it, and pthread_sigmask changes this thread's mask only.
        let failed = unsafe {
            sigemptyset(&mut set) != 0
                || sigaddset(&mut set, SIGTERM) != 0
                || sigaddset(&mut set, SIGINT) != 0
                || pthread_sigmask(SIG_BLOCK, &set, std::ptr::null_mut()) != 0
        };
        if failed {
            return Err(std::io::Error::other("cannot block SIGTERM and SIGINT"));
        }
        Ok(Termination { set })
    }

    /// Waits up to `timeout` for SIGTERM or SIGINT; returns the signal taken.
    pub fn wait(&self, timeout: Duration) -> Option<c_int> {
        let timeout = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut info = [0u64; 16]; // siginfo_t is 128 bytes on Linux
        // SAFETY: the set was filled by `block`; `info` and `timeout` are valid for
        // the duration of the call. A return of -1 (timeout or EINTR) is no signal.
        let signal = unsafe { sigtimedwait(&self.set, &mut info, &timeout) };
        (signal > 0).then_some(signal)
    }
}

/// The signal's name, for the log line.
pub fn name(signal: c_int) -> &'static str {
    match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "signal",
    }
}
