//! Counters of the job runtime: relaxed atomics, cheap enough to bump on every job and to read
//! from a metrics endpoint at any rate.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A snapshot of this server's job counters since start-up ([`Jobs::stats`](super::Jobs::stats)).
///
/// Counters are per server: the queue is shared, so sum them over servers for the whole
/// picture. Every field but `running` only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobStats {
    /// Jobs dispatched from this server (put on the queue).
    pub dispatched: u64,
    /// Jobs running on this server now.
    pub running: u64,
    /// Runs started on this server (retries and runs of other servers' jobs included).
    pub started: u64,
    /// Runs that succeeded, acknowledged on the queue.
    pub succeeded: u64,
    /// Runs that failed and were put back for a retry.
    pub retried: u64,
    /// Jobs moved to the dead-letter stream: out of attempts, or unreadable.
    pub dead_lettered: u64,
    /// Jobs put back on the queue by a shutdown or taken over from a server that died.
    pub requeued: u64,
}

/// The live counters behind [`JobStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) dispatched: AtomicU64,
    pub(crate) running: AtomicU64,
    pub(crate) started: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) requeued: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> JobStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        JobStats {
            dispatched: get(&self.dispatched),
            running: get(&self.running),
            started: get(&self.started),
            succeeded: get(&self.succeeded),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            requeued: get(&self.requeued),
        }
    }
}
