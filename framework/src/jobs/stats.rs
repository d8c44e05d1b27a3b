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

/// Reports the counters when metrics are scraped.
pub(crate) struct StatsCollector(pub(crate) Box<dyn Fn() -> JobStats + Send + Sync>);

impl std::fmt::Debug for StatsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsCollector")
    }
}

impl prometheus_client::collector::Collector for StatsCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;

        let s = (self.0)();
        let running = ConstGauge::new(i64::try_from(s.running).unwrap_or(i64::MAX));
        running.encode(encoder.encode_descriptor(
            "rondo_jobs_running",
            "Jobs running on this server now",
            None,
            running.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "rondo_jobs_dispatched",
                "Jobs queued from this server",
                s.dispatched,
            ),
            (
                "rondo_jobs_started",
                "Job runs started on this server",
                s.started,
            ),
            (
                "rondo_jobs_succeeded",
                "Job runs that succeeded",
                s.succeeded,
            ),
            (
                "rondo_jobs_failed",
                "Job runs that failed (retried later, or dead-lettered when out of attempts)",
                s.retried + s.dead_lettered,
            ),
            (
                "rondo_jobs_retried",
                "Failed job runs put back for a retry",
                s.retried,
            ),
            (
                "rondo_jobs_dead_lettered",
                "Jobs moved to the dead-letter stream (out of attempts, or unreadable)",
                s.dead_lettered,
            ),
            (
                "rondo_jobs_requeued",
                "Jobs put back by a shutdown or taken over from a server that died",
                s.requeued,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
