//! The channels' Prometheus metrics: connections, subscriptions, messages in and out, the
//! time from publish to send, consumers cut for being slow, presence members.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::component::Installer;

/// The channels' metrics; cheap to clone (each metric is a shared handle).
#[derive(Clone)]
pub(crate) struct ChannelMetrics {
    /// Sockets open now.
    pub(crate) connections: Gauge<i64, AtomicI64>,
    /// Subscriptions held by this server's sockets now.
    pub(crate) subscriptions: Gauge<i64, AtomicI64>,
    /// Messages received from clients.
    pub(crate) messages_in: Counter,
    /// Messages written to sockets.
    pub(crate) messages_out: Counter,
    /// Seconds from an event's publication (on any server) to its write to a socket here.
    pub(crate) publish_to_send: Histogram,
    /// Sockets disconnected because their send queue was full.
    pub(crate) slow_consumers: Counter,
    /// Presence subscriptions held by this server's sockets now.
    pub(crate) presence_members: Gauge<i64, AtomicI64>,
    /// Sockets refused at `max_connections`.
    pub(crate) refused: Counter,
}

impl Default for ChannelMetrics {
    fn default() -> Self {
        Self {
            connections: Gauge::default(),
            subscriptions: Gauge::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            publish_to_send: Histogram::new(exponential_buckets(0.000_05, 2.0, 18)),
            slow_consumers: Counter::default(),
            presence_members: Gauge::default(),
            refused: Counter::default(),
        }
    }
}

impl ChannelMetrics {
    /// Registers every metric with the app.
    pub(crate) fn register(self: &Arc<Self>, app: &mut Installer<'_>) {
        let m = self.as_ref().clone();
        app.register_metric(
            "rondo_channels_connections",
            "WebSocket channel connections open on this server",
            m.connections,
        );
        app.register_metric(
            "rondo_channels_subscriptions",
            "Channel subscriptions held by this server's connections",
            m.subscriptions,
        );
        app.register_metric(
            "rondo_channels_messages_in",
            "Messages received from channel clients",
            m.messages_in,
        );
        app.register_metric(
            "rondo_channels_messages_out",
            "Messages written to channel clients",
            m.messages_out,
        );
        app.register_metric(
            "rondo_channels_publish_to_send_seconds",
            "Time from an event's publication to its write to a socket on this server",
            m.publish_to_send,
        );
        app.register_metric(
            "rondo_channels_slow_consumers_cut",
            "Connections closed because they could not keep up with their events",
            m.slow_consumers,
        );
        app.register_metric(
            "rondo_channels_presence_members",
            "Presence-channel subscriptions held by this server's connections",
            m.presence_members,
        );
        app.register_metric(
            "rondo_channels_connections_refused",
            "Connections refused at [channels] max_connections",
            m.refused,
        );
    }

    /// One fewer connection when dropped.
    pub(crate) fn connection(&self) -> ConnectionCount {
        self.connections.inc();
        ConnectionCount(self.connections.clone())
    }

    /// Records the age of a message written now that was published at `at_micros`.
    pub(crate) fn sent(&self, at_micros: u64) {
        self.messages_out.inc();
        let now = super::bus::now_micros();
        let age = now.saturating_sub(at_micros);
        // Clocks of two servers may disagree a little: a negative age counts as zero.
        self.publish_to_send.observe(age as f64 / 1e6);
    }
}

/// Holds one connection in the gauge.
pub(crate) struct ConnectionCount(Gauge<i64, AtomicI64>);

impl ConnectionCount {
    /// Connections counted now (this one included).
    pub(crate) fn current(&self) -> i64 {
        self.0.get()
    }
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.dec();
    }
}
