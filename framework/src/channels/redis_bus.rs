//! The bus across servers: Redis pub/sub.
//!
//! Each server holds one dedicated pub/sub connection, subscribed only to the channels it
//! has sockets for (`{prefix}channels:{name}`). Publishing is one `PUBLISH` on a pooled
//! connection; Redis hands the message to every server subscribed, this one included, once
//! each, and in the order of the publisher's commands. Subscriptions change in one task,
//! in the order the hub reported them, so an unsubscribe never overtakes the subscribe that
//! followed it. When the subscriber's connection is lost, it reconnects (backing off) and
//! subscribes again to every channel that still has sockets here; what was published in
//! between did not reach this server, which is logged.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::bus::{Bus, Envelope};
use super::hub::Hub;
use super::ChannelError;
use crate::redis::RedisPool;

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
    /// Opens the subscriber connection (failing the start when Redis cannot be reached) and
    /// starts its task.
    pub(crate) async fn start(
        pool: RedisPool,
        hub: Arc<Hub>,
        stop: CancellationToken,
    ) -> Result<Self, ChannelError> {
        let connection = pool
            .pubsub_connection()
            .await
            .map_err(|e| ChannelError::Unavailable(e.to_string()))?;
        let key_prefix = format!("{}channels:", pool.config().prefix);
        let (commands, receiver) = mpsc::unbounded_channel();
        let subscriber = Subscriber {
            pool: pool.clone(),
            hub,
            key_prefix: key_prefix.clone(),
            channels: HashSet::new(),
            pending: Vec::new(),
        };
        tokio::spawn(subscriber.run(connection, receiver, stop));
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
            let payload = envelope.encode();
            let mut conn = self
                .pool
                .conn()
                .await
                .map_err(|e| ChannelError::Unavailable(e.to_string()))?;
            conn.run(|mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(key)
                    .arg(payload)
                    .query_async::<i64>(&mut c)
                    .await
            })
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

/// The task owning the subscriber connection.
struct Subscriber {
    pool: RedisPool,
    hub: Arc<Hub>,
    key_prefix: String,
    /// The channels subscribed (by channel name), to subscribe again after a reconnect.
    channels: HashSet<String>,
    /// Readiness to report once subscribed (while reconnecting).
    pending: Vec<watch::Sender<bool>>,
}

impl Subscriber {
    async fn run(
        mut self,
        connection: redis::aio::PubSub,
        mut commands: mpsc::UnboundedReceiver<Command>,
        stop: CancellationToken,
    ) {
        let (mut sink, mut stream) = connection.split();
        let mut backoff = Duration::from_millis(50);
        loop {
            let lost = loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    command = commands.recv() => {
                        let Some(command) = command else { return };
                        let result = match command {
                            Command::Subscribe(channel, ready) => {
                                let key = format!("{}{channel}", self.key_prefix);
                                self.channels.insert(channel);
                                let result = sink.subscribe(key).await;
                                if result.is_ok() {
                                    let _ = ready.send(true);
                                } else {
                                    self.pending.push(ready);
                                }
                                result
                            }
                            Command::Unsubscribe(channel) => {
                                let key = format!("{}{channel}", self.key_prefix);
                                self.channels.remove(&channel);
                                sink.unsubscribe(key).await
                            }
                        };
                        if let Err(err) = result {
                            break err.to_string();
                        }
                    }
                    message = stream.next() => {
                        let Some(message) = message else {
                            break "connection closed".to_owned();
                        };
                        self.deliver(&message);
                    }
                }
            };
            tracing::warn!(error = %lost, "channels' Redis subscriber lost its connection; events published until it is back do not reach this server");
            // Reconnect, then subscribe again to what still has sockets here.
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                let Ok(connection) = self.pool.pubsub_connection().await else {
                    continue;
                };
                let (new_sink, new_stream) = connection.split();
                sink = new_sink;
                stream = new_stream;
                let keys: Vec<String> = self
                    .channels
                    .iter()
                    .map(|c| format!("{}{c}", self.key_prefix))
                    .collect();
                if keys.is_empty() || sink.subscribe(keys).await.is_ok() {
                    break;
                }
            }
            backoff = Duration::from_millis(50);
            for ready in self.pending.drain(..) {
                let _ = ready.send(true);
            }
            tracing::info!(
                channels = self.channels.len(),
                "channels' Redis subscriber reconnected"
            );
        }
    }

    fn deliver(&self, message: &redis::Msg) {
        let Some(channel) = message.get_channel_name().strip_prefix(&self.key_prefix) else {
            return;
        };
        match Envelope::decode(Bytes::copy_from_slice(message.get_payload_bytes())) {
            Some(envelope) => {
                self.hub.deliver(channel, &envelope);
            }
            None => {
                tracing::warn!(channel = %channel, "unreadable message on a channel's Redis pub/sub ignored")
            }
        }
    }
}
