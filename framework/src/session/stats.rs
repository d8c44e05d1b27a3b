//! What the session layer counts, for the metrics endpoint.
//!
//! The counters are `prometheus-client` handles (shared atomics), updated where things
//! happen and registered with the app when the [`SessionManager`](super::SessionManager)
//! is installed. Live actors and the state of the tracking connection are read when metrics
//! are scraped, from what the manager hands over ([`Gauges`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use super::tracking::Tracking;
use crate::component::Installer;

/// Session counters and histograms.
pub(crate) struct SessionStats {
    /// Records fetched whole from the store (first use on this node, or after a change).
    pub(crate) loads: Counter,
    /// Reads that asked the store for the stored version.
    pub(crate) version_checks: Counter,
    /// Reads answered from memory without a store command (client-side caching).
    pub(crate) memory_reads: Counter,
    /// New sessions stored.
    pub(crate) created: Counter,
    /// Commits applied.
    pub(crate) commits: Counter,
    /// Commits refused because another writer got there first.
    pub(crate) conflicts: Counter,
    /// Pending changes re-applied on a fresh copy after a conflict.
    pub(crate) replays: Counter,
    /// Commits that failed (store unreachable); their changes are retried.
    pub(crate) commit_failures: Counter,
    /// Changes (puts, removes, updates) merged into each applied commit.
    pub(crate) changes_per_commit: Histogram,
    /// Time a commit took, conflicts and reloads included.
    pub(crate) commit_seconds: Histogram,
    /// Invalidations Redis pushed for keys with a live actor on this node.
    pub(crate) invalidations: Counter,
    /// Invalidations Redis pushed at all (one per key), held here or not.
    pub(crate) invalidations_received: Counter,
}

impl Default for SessionStats {
    fn default() -> Self {
        Self {
            loads: Counter::default(),
            version_checks: Counter::default(),
            memory_reads: Counter::default(),
            created: Counter::default(),
            commits: Counter::default(),
            conflicts: Counter::default(),
            replays: Counter::default(),
            commit_failures: Counter::default(),
            changes_per_commit: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            commit_seconds: crate::metrics::seconds_histogram(),
            invalidations: Counter::default(),
            invalidations_received: Counter::default(),
        }
    }
}

impl SessionStats {
    /// Registers every metric with `app`, plus the gauges read from `shared` at scrape time.
    /// Registers the counters and `gauges` with the app being built.
    pub(crate) fn register(&self, app: &mut Installer<'_>, gauges: Gauges) {
        let counters = [
            (
                "rondo_session_loads",
                "Session records fetched whole from the store",
                &self.loads,
            ),
            (
                "rondo_session_version_checks",
                "Reads that asked the store for a session's stored version",
                &self.version_checks,
            ),
            (
                "rondo_session_memory_reads",
                "Reads answered from memory without a store command (client-side caching)",
                &self.memory_reads,
            ),
            (
                "rondo_session_created",
                "New sessions stored",
                &self.created,
            ),
            (
                "rondo_session_commits",
                "Session commits applied",
                &self.commits,
            ),
            (
                "rondo_session_conflicts",
                "Session commits refused because another writer committed first",
                &self.conflicts,
            ),
            (
                "rondo_session_replays",
                "Pending session changes re-applied on a fresh copy after a conflict",
                &self.replays,
            ),
            (
                "rondo_session_commit_failures",
                "Session commits that failed (store unreachable); their changes are retried",
                &self.commit_failures,
            ),
            (
                "rondo_session_invalidations",
                "Invalidations Redis pushed for sessions live on this node",
                &self.invalidations,
            ),
            (
                "rondo_session_invalidations_received",
                "Invalidations Redis pushed to this node, for sessions live here or not",
                &self.invalidations_received,
            ),
        ];
        for (name, help, counter) in counters {
            app.register_metric(name, help, counter.clone());
        }
        app.register_metric(
            "rondo_session_changes_per_commit",
            "Changes merged into each applied session commit (coalescing)",
            self.changes_per_commit.clone(),
        );
        app.register_metric(
            "rondo_session_commit_duration_seconds",
            "Time a session commit took, conflicts and reloads included",
            self.commit_seconds.clone(),
        );
        app.register_collector(gauges);
    }
}

/// Gauges read when metrics are scraped.
/// What the session gauges read when the metrics are scraped: the live actors' count and the
/// tracking connection.
#[derive(Debug)]
pub(crate) struct Gauges {
    pub(crate) live: Arc<AtomicUsize>,
    pub(crate) tracking: Option<Arc<Tracking>>,
}

impl Collector for Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = i64::try_from(self.live.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let tracked = self
            .tracking
            .as_ref()
            .map_or(0, |t| i64::from(t.is_tracking()));
        for (name, help, value) in [
            (
                "rondo_session_live_actors",
                "Session actors live on this node",
                live,
            ),
            (
                "rondo_session_tracking_connected",
                "1 while the Redis client-side caching connection is up",
                tracked,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
