//! The bus across servers: Redis pub/sub, through the pool's [`Subscriber`].
//!
//! Each server subscribes only to the channels it has sockets for
//! (`{prefix}channels:{name}`), on the subscriber's connections of its own: one to a
//! standalone Redis or to the Sentinels' primary (moved at each failover), or on a Redis
//! Cluster one per primary serving a subscribed channel (sharded pub/sub, `SSUBSCRIBE` /
//! `SPUBLISH`, so a message crosses only its channel's shard). Publishing is one `PUBLISH`
//! (`SPUBLISH`); Redis hands the message to every server subscribed, this one included, once
//! each, and in the order of the publisher's commands. Subscriptions change in one task, in
//! the order the hub reported them, so an unsubscribe never overtakes the subscribe that
//! followed it; a subscribe Redis did not confirm is retried until it is, or until the
//! channel has no socket here any more. Pub/sub is at most once: what was published while a
//! subscription was lost did not reach this server, which is logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::bus::{Bus, Envelope};
use super::hub::Hub;
use super::ChannelError;
use crate::redis::{RedisPool, Subscriber, SubscriberEvent};

/// Events waiting for the hub; more are dropped and counted (`Lagged`) rather than holding up
/// a Redis connection.
const EVENT_CAPACITY: usize = 4096;
/// How often subscribes Redis did not confirm are tried again.
const RETRY: Duration = Duration::from_millis(250);

enum Command {
    Subscribe(String, watch::Sender<bool>),
    Unsubscribe(String),
}

/// The Redis pub/sub bus.
pub(crate) struct RedisBus {
    pool: RedisPool,
    /// `{prefix}channels:`.
    key_prefix: String,
    commands: mpsc::UnboundedSender<Command>,
}

impl RedisBus {
    /// Checks that Redis answers (failing the start when it cannot be reached) and starts the
    /// subscriber's tasks.
    pub(crate) async fn start(
        pool: RedisPool,
        hub: Arc<Hub>,
        stop: CancellationToken,
    ) -> Result<Self, ChannelError> {
        let key_prefix = format!("{}channels:", pool.config().prefix);
        // Publishing to a channel nobody listens to proves the deployment serves pub/sub
        // (on a Cluster, that the channel's shard answers), without subscribing anything.
        pool.publish(&format!("{key_prefix}rondo-start"), b"")
            .await
            .map_err(|e| ChannelError::Unavailable(e.to_string()))?;
        let (subscriber, events) = pool.subscriber(EVENT_CAPACITY);
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(subscriptions(
            subscriber,
            key_prefix.clone(),
            receiver,
            stop.clone(),
        ));
        tokio::spawn(deliveries(events, hub, key_prefix.clone(), stop));
        Ok(Self {
            pool,
            key_prefix,
            commands,
        })
    }
}

impl Bus for RedisBus {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        envelope: Envelope,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let key = format!("{}{channel}", self.key_prefix);
            self.pool
                .publish(&key, &envelope.encode())
                .await
                .map(|_| ())
                .map_err(|e| ChannelError::Unavailable(e.to_string()))
        })
    }

    fn interest(&self, channel: &str, on: bool, ready: watch::Sender<bool>) {
        let command = if on {
            Command::Subscribe(channel.to_owned(), ready)
        } else {
            Command::Unsubscribe(channel.to_owned())
        };
        // The task ends only at shutdown, when nobody waits for readiness any more.
        let _ = self.commands.send(command);
    }

    fn describe(&self) -> &'static str {
        "redis pub/sub (every server)"
    }
}

/// Applies the hub's subscription changes in order; retries the subscribes Redis did not
/// confirm (their readiness is reported once it does).
async fn subscriptions(
    subscriber: Subscriber,
    key_prefix: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    stop: CancellationToken,
) {
    let mut unconfirmed: HashMap<String, watch::Sender<bool>> = HashMap::new();
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            command = commands.recv() => match command {
                None => return,
                Some(Command::Subscribe(channel, ready)) => {
                    let key = format!("{key_prefix}{channel}");
                    match subscriber.subscribe(&key).await {
                        Ok(()) => {
                            let _ = ready.send(true);
                        }
                        Err(err) => {
                            tracing::warn!(channel = %channel, error = %err, "channel not subscribed on Redis yet; retrying");
                            unconfirmed.insert(channel, ready);
                        }
                    }
                }
                Some(Command::Unsubscribe(channel)) => {
                    unconfirmed.remove(&channel);
                    // Fails only when the subscriber's task is gone, at shutdown.
                    let _ = subscriber.unsubscribe(&format!("{key_prefix}{channel}")).await;
                }
            },
            _ = retry.tick(), if !unconfirmed.is_empty() => {
                let channels: Vec<String> = unconfirmed.keys().cloned().collect();
                for channel in channels {
                    if subscriber.subscribe(&format!("{key_prefix}{channel}")).await.is_ok() {
                        if let Some(ready) = unconfirmed.remove(&channel) {
                            let _ = ready.send(true);
                        }
                        tracing::info!(channel = %channel, "channel subscribed on Redis");
                    }
                }
            }
        }
    }
}

/// Hands what Redis delivers to the hub, and says when a subscription lost messages.
async fn deliveries(
    mut events: mpsc::Receiver<SubscriberEvent>,
    hub: Arc<Hub>,
    key_prefix: String,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        match event {
            SubscriberEvent::Message { channel, payload } => {
                let Some(name) = channel.strip_prefix(&key_prefix) else {
                    continue;
                };
                match Envelope::decode(payload) {
                    Some(envelope) => {
                        hub.deliver(name, &envelope);
                    }
                    None => {
                        tracing::warn!(channel = %name, "unreadable message on a channel's Redis pub/sub ignored");
                    }
                }
            }
            SubscriberEvent::Lost { channels } => tracing::warn!(
                channels = channels.len(),
                "channels' Redis subscription lost; events published until it is back do not reach this server"
            ),
            SubscriberEvent::Resubscribed { channels } => tracing::info!(
                channels = channels.len(),
                "channels' Redis subscription restored"
            ),
            SubscriberEvent::Lagged(dropped) => tracing::warn!(
                dropped,
                "channels' Redis events came faster than this server delivered them; some were dropped"
            ),
        }
    }
}
