//! Redis pub/sub, handed out by the pool like its other connections: [`RedisPool::publish`]
//! and a [`Subscriber`] with connections of its own, on each of the three deployments.
//!
//! | deployment | publish | subscribe |
//! |---|---|---|
//! | standalone | `PUBLISH` | `SUBSCRIBE` on one connection to the pool's `host:port` |
//! | Sentinel | `PUBLISH` on the primary | `SUBSCRIBE` on one connection to the primary the Sentinels name, moved at each failover they announce |
//! | Cluster | `SPUBLISH`, routed by the channel's hash slot | `SSUBSCRIBE` on one connection per primary that serves a subscribed channel's slot |
//!
//! A Cluster's sharded pub/sub (Redis 7) keeps a channel on the shard of its name's hash
//! slot (hash tags apply: `room:{42}` and `presence:{42}` share one), so a message crosses
//! only that shard instead of every node. The subscriber follows the cluster by itself: a
//! connection lost, a `MOVED` answer, or Redis dropping a channel whose slot moved away
//! (a failover, a resharding) makes it look the slots up again and subscribe where they are
//! now.
//!
//! Pub/sub is at most once: what is published while a subscription is down is not kept for
//! it. The subscriber says so ([`SubscriberEvent::Lost`], then
//! [`SubscriberEvent::Resubscribed`]), so that a consumer that must not miss anything can
//! resynchronise from where the data lives. Messages of one channel from one publisher
//! arrive in the order they were published.
//!
//! - `supervisor`: the subscriber's actor: which channel goes on which connection, route
//!   look-ups, retries, deadlines.
//! - `routes`: where each channel belongs on each deployment.
//! - `link`: one raw RESP3 (or RESP2) connection to one node; `handshake`: opening it.
//! - `outbox`: the bounded channel of events to the consumer, which never makes a
//!   connection wait.

mod handshake;
mod link;
mod outbox;
mod routes;
mod supervisor;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use self::outbox::Outbox;
use self::supervisor::{Request, Supervisor};
use super::{AnyConn, PoolError, RedisFailure, RedisPool};

/// A node's address: host and port.
type Addr = (String, u16);

/// How much longer than its deadline a caller waits for the actor's answer: the actor
/// answers by the deadline, so this only covers an actor that is gone.
const GRACE: Duration = Duration::from_secs(1);

/// What a [`Subscriber`] tells its consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberEvent {
    /// A message published on a subscribed channel.
    Message {
        /// The channel it was published on.
        channel: String,
        /// What was published.
        payload: Bytes,
    },
    /// The connection serving these channels was lost; they are being re-subscribed.
    Lost {
        /// The channels whose subscription was lost, sorted.
        channels: Vec<String>,
    },
    /// Subscribed again after a loss: messages published in between were missed (pub/sub is
    /// at most once), so a consumer that needs them must resynchronise.
    Resubscribed {
        /// The channels subscribed again, sorted.
        channels: Vec<String>,
    },
    /// The consumer did not keep up and this many messages were dropped (the event channel
    /// is bounded). It comes where the dropped messages would have been.
    Lagged(u64),
}

/// A pub/sub subscriber of one [`RedisPool`]'s deployment, from [`RedisPool::subscriber`].
///
/// Cheap to clone; the connections close when the last clone is dropped. Its connections
/// are its own (never the pool's): they open when a channel is first subscribed, one per
/// node that serves a subscribed channel, and close when their last channel is
/// unsubscribed.
#[derive(Clone)]
pub struct Subscriber {
    requests: mpsc::Sender<Request>,
    outbox: Arc<Outbox>,
    pool: Arc<str>,
    timeout: Duration,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("pool", &self.pool)
            .field("channels", &self.outbox.channels().len())
            .finish()
    }
}

impl Subscriber {
    /// Subscribes `channel`; returns once Redis confirmed. Messages published from then on
    /// are delivered. Subscribing a channel twice is one subscription: one
    /// [`Subscriber::unsubscribe`] ends it.
    ///
    /// # Errors
    ///
    /// Redis did not confirm within the pool's `timeout` ([`PoolError::Unavailable`]: it
    /// cannot be reached, or a Cluster's slot is not served), or refused the channel
    /// ([`PoolError::Refused`]: an ACL, a Cluster before Redis 7). The channel is then not
    /// subscribed, unless it was before the call (a subscription being restored after a
    /// loss stays, and keeps being retried).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(pool: rondo::redis::RedisPool) -> Result<(), rondo::redis::PoolError> {
    /// use rondo::redis::SubscriberEvent;
    ///
    /// let (subscriber, mut events) = pool.subscriber(1024);
    /// subscriber.subscribe("room:{42}").await?;
    /// pool.publish("room:{42}", b"hello").await?;
    /// while let Some(event) = events.recv().await {
    ///     match event {
    ///         SubscriberEvent::Message { channel, payload } => println!("{channel}: {payload:?}"),
    ///         SubscriberEvent::Resubscribed { .. } | SubscriberEvent::Lagged(_) => {
    ///             // Messages were missed: reload the state they would have changed.
    ///         }
    ///         SubscriberEvent::Lost { .. } => {}
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe(&self, channel: &str) -> Result<(), PoolError> {
        let deadline = Instant::now() + self.timeout;
        let ask = async {
            let (reply, answer) = oneshot::channel();
            let request = Request::Subscribe {
                channel: channel.to_owned(),
                deadline,
                reply,
            };
            self.requests.send(request).await.ok()?;
            answer.await.ok()
        };
        match tokio::time::timeout_at(deadline + GRACE, ask).await {
            Ok(Some(result)) => result,
            Ok(None) | Err(_) => Err(self.gone()),
        }
    }

    /// Unsubscribes `channel`: once this returns, none of its messages is delivered (events
    /// already in the channel stay there). Its connection unsubscribes it in the background,
    /// or closes when it held no other channel. Unsubscribing a channel not subscribed does
    /// nothing.
    ///
    /// # Errors
    ///
    /// Only when the subscriber's task is gone (the runtime is shutting down).
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), PoolError> {
        let ask = async {
            let (reply, answer) = oneshot::channel();
            let request = Request::Unsubscribe {
                channel: channel.to_owned(),
                reply,
            };
            self.requests.send(request).await.ok()?;
            answer.await.ok()
        };
        match tokio::time::timeout(self.timeout + GRACE, ask).await {
            Ok(Some(())) => Ok(()),
            Ok(None) | Err(_) => Err(self.gone()),
        }
    }

    /// Channels currently subscribed (asked for, whether or not their connection is up now),
    /// sorted.
    pub fn channels(&self) -> Vec<String> {
        self.outbox.channels()
    }

    fn gone(&self) -> PoolError {
        PoolError::Unavailable {
            pool: self.pool.to_string(),
            message: "the pub/sub subscriber's task is gone".into(),
        }
    }
}

impl RedisPool {
    /// Publishes `payload` on `channel`: `PUBLISH` on a standalone Redis or the Sentinels'
    /// primary, `SPUBLISH` on a Cluster (sent to the primary of the channel's hash slot,
    /// where the [`Subscriber`]s of every server listen). Answers how many subscribers Redis
    /// counted (on a Cluster: on that shard).
    ///
    /// # Errors
    ///
    /// No connection or no answer within the pool's `timeout` ([`PoolError::Unavailable`]),
    /// or Redis answered an error ([`PoolError::Refused`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(pool: rondo::redis::RedisPool) -> Result<(), rondo::redis::PoolError> {
    /// let heard_by = pool.publish("room:{42}", b"{\"event\":\"joined\"}").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> Result<u64, PoolError> {
        let mut command = redis::cmd(if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        });
        command.arg(channel).arg(payload);
        let mut conn = self.conn().await?;
        conn.run(|mut c: AnyConn| async move { command.query_async::<u64>(&mut c).await })
            .await
            .map_err(|failure| match failure {
                RedisFailure::Server(message) => PoolError::Refused {
                    pool: self.config().name.clone(),
                    message,
                },
                RedisFailure::Dropped(message) | RedisFailure::Unreachable(message) => {
                    PoolError::Unavailable {
                        pool: self.config().name.clone(),
                        message,
                    }
                }
            })
    }

    /// A subscriber with connections of its own (never pooled ones), and the receiving end
    /// of its events, which holds at most `capacity` of them (at least 1): when the consumer
    /// falls behind, messages are dropped and counted ([`SubscriberEvent::Lagged`]) rather
    /// than held up in Redis or here. Nothing connects until the first
    /// [`Subscriber::subscribe`].
    ///
    /// The subscriber's tasks run on the Tokio runtime this is called on: call it where the
    /// app starts (not on a request's worker thread, whose runtime ends with it).
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(pool: rondo::redis::RedisPool) -> Result<(), rondo::redis::PoolError> {
    /// let (subscriber, mut events) = pool.subscriber(1024);
    /// subscriber.subscribe("news").await?;
    /// assert_eq!(subscriber.channels(), ["news"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscriber(&self, capacity: usize) -> (Subscriber, mpsc::Receiver<SubscriberEvent>) {
        let (events, receiver) = mpsc::channel(capacity.max(1));
        let outbox = Arc::new(Outbox::new(events));
        // Requests wait here only while the actor handles the ones before them.
        let (requests, inbox) = mpsc::channel(64);
        tokio::spawn(Supervisor::new(self.clone(), outbox.clone(), inbox).run());
        let subscriber = Subscriber {
            requests,
            outbox,
            pool: Arc::from(self.config().name.as_str()),
            timeout: self.config().timeout,
        };
        (subscriber, receiver)
    }
}
