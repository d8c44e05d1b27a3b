//! Keeping the tracking connections up: one task per connection connects (with backoff),
//! drains, checks the node is still a primary, and publishes the key-tracking redirection;
//! on a cluster, one more task follows the shards and gives each primary its connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::channel::Channel;
use super::connect::{connect, ConnectError};
use super::{Map, Mode, Tracking};
use crate::redis::topology::Topology;

/// How often a connection is checked with `ROLE`: a connection that silently stopped
/// delivering (a network partition), or reaches a primary that a failover demoted (its
/// successor takes the writes, and tells only the connections it has), must not keep
/// copies trusted for long.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How often the background task drains what readers have not. Readers drain before they
/// trust a copy, so this only keeps the input small (and notices a closed connection while
/// nobody reads). The socket is not watched for input: in broadcast mode every session
/// write of every server sends an `invalidate`, and waking a thread for each would cost
/// more than the writes themselves.
const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// How often a cluster's shards are read, to follow failovers and resharding.
const TOPOLOGY_EVERY: Duration = Duration::from_secs(1);
/// Reconnection backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Waits for the first read that could use tracking, then keeps the connections up until
/// `closing` (or the holders are gone).
pub(super) async fn run(tracking: Arc<Tracking>, prefix: String, closing: CancellationToken) {
    tokio::select! {
        () = tracking.wanted.notified() => {}
        () = closing.cancelled() => return,
    }
    if tracking.pool.is_cluster() {
        follow_shards(tracking, prefix, closing).await;
    } else {
        let channel = tracking.map.read().channels[0].clone();
        keep(tracking, channel, prefix, closing).await;
    }
}

/// Keeps `channel` connected: to its fixed address, or to the pool's primary as the
/// Sentinels name it now.
async fn keep(
    tracking: Arc<Tracking>,
    channel: Arc<Channel>,
    prefix: String,
    stop: CancellationToken,
) {
    let pool = &tracking.pool;
    let config = pool.config().clone();
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u32;
    loop {
        if stop.is_cancelled() || tracking.sink.holders.strong_count() == 0 {
            break;
        }
        let failovers = pool.failovers();
        let attempt = async {
            let address = match &channel.address {
                Some(address) => address.clone(),
                None => pool
                    .primary()
                    .await
                    .map_err(|e| ConnectError::Transient(e.to_string()))?
                    .ok_or_else(|| ConnectError::Transient("no primary".into()))?,
            };
            connect(
                (address.0.as_str(), address.1),
                &config,
                tracking.mode,
                &prefix,
            )
            .await
        };
        let client_id = match attempt.await {
            Ok(connected) => {
                let epoch = channel.install(connected.link);
                if let (Mode::Keys, Some(id)) = (tracking.mode, connected.client_id) {
                    pool.redirect().set(epoch, id);
                }
                tracing::info!(prefix = %prefix, mode = ?tracking.mode, redis = ?channel.address, "reads served from memory, kept current by Redis client-side caching");
                backoff = BACKOFF_MIN;
                failures = 0;
                connected.client_id
            }
            Err(ConnectError::Unsupported(why)) => {
                tracing::warn!(reason = %why, "Redis cannot track keys for this client; every read checks the stored version");
                break;
            }
            Err(ConnectError::Transient(why)) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(reason = %why, attempts = failures, "Redis tracking connection unavailable; reads check the stored version");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => break,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let installed = channel.installed();
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drain = tokio::time::interval(DRAIN_EVERY);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while channel.is_up() {
            tokio::select! {
                _ = drain.tick() => {
                    if tracking.sink.holders.strong_count() == 0 {
                        break;
                    }
                    channel.drain(&tracking.sink);
                }
                _ = check.tick() => {
                    if pool.failovers() != failovers {
                        channel.lose("the Sentinels announced a failover");
                    } else if client_id.is_some() && pool.redirect().epoch() != installed {
                        channel.lose("a data connection could not redirect its tracking here");
                    } else {
                        channel.check(config.timeout.max(CHECK_EVERY));
                    }
                }
                () = stop.cancelled() => break,
            }
        }
        if tracking.mode == Mode::Keys {
            pool.redirect().clear();
        }
    }
    channel.lose("tracking stopped");
    if tracking.mode == Mode::Keys {
        tracking.pool.redirect().clear();
    }
}

/// On a cluster: reads the shards every [`TOPOLOGY_EVERY`], gives each primary a
/// connection of its own (kept by [`keep`]) and maps every slot to its primary's.
/// Connections to nodes that are no longer primaries are closed, which voids what they
/// vouched for.
async fn follow_shards(tracking: Arc<Tracking>, prefix: String, closing: CancellationToken) {
    let mut known = Topology::default();
    let mut running: HashMap<(String, u16), (Arc<Channel>, CancellationToken)> = HashMap::new();
    let mut every = tokio::time::interval(TOPOLOGY_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = closing.cancelled() => break,
        }
        if tracking.sink.holders.strong_count() == 0 {
            break;
        }
        let topology = match Topology::fetch(&tracking.pool).await {
            Ok(topology) => topology,
            Err(err) => {
                tracing::debug!(error = %err, "cluster shards unavailable; tracking keeps its map");
                continue;
            }
        };
        if topology == known {
            continue;
        }
        let mut channels = Vec::with_capacity(topology.shards.len());
        for shard in &topology.shards {
            let entry = running.entry(shard.primary.clone()).or_insert_with(|| {
                let channel = Arc::new(Channel::new(
                    Some(shard.primary.clone()),
                    tracking.epochs.clone(),
                ));
                let stop = closing.child_token();
                tokio::spawn(keep(
                    tracking.clone(),
                    channel.clone(),
                    prefix.clone(),
                    stop.clone(),
                ));
                (channel, stop)
            });
            channels.push(entry.0.clone());
        }
        running.retain(|address, (_, stop)| {
            let kept = topology.shards.iter().any(|s| &s.primary == address);
            if !kept {
                stop.cancel();
            }
            kept
        });
        *tracking.map.write() = Arc::new(Map {
            channels,
            slots: Some(topology.slot_table()),
        });
        tracing::info!(
            primaries = topology.shards.len(),
            "cluster shards mapped for client-side caching"
        );
        known = topology;
    }
    for (channel, stop) in running.into_values() {
        stop.cancel();
        channel.lose("tracking stopped");
    }
}
