//! Pub/sub on a standalone Redis: `RedisPool::publish` and a `Subscriber`, against a real
//! `redis-server` per test (restarted and killed by some of them).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rondo::redis::{PoolError, RedisPool, SubscriberEvent};
use rondo_tests::pubsub::{
    client_field, counts, drain, messages, next_event, subscriber_clients, summary, until,
};
use rondo_tests::redis::RedisServer;

/// How long a test waits for something that should take milliseconds.
const SOON: Duration = Duration::from_secs(5);
/// How long a drain waits for one more event before it decides none is coming.
const QUIET: Duration = Duration::from_millis(300);

async fn pool(server: &RedisServer) -> RedisPool {
    RedisPool::new(&server.pool_config("pubsub:"))
        .await
        .expect("pool")
}

/// The subscriber connections the server sees.
async fn subscriber_connections(server: &RedisServer) -> Vec<String> {
    let list: String =
        redis::from_redis_value(server.cmd(&["CLIENT", "LIST"]).await).expect("CLIENT LIST text");
    subscriber_clients(&list)
}

fn message(channel: &str, payload: &str) -> SubscriberEvent {
    SubscriberEvent::Message {
        channel: channel.to_owned(),
        payload: bytes::Bytes::copy_from_slice(payload.as_bytes()),
    }
}

/// A message published on a subscribed channel comes back once, with its payload; Redis
/// counts the subscriber, and a channel nobody subscribed counts none.
#[tokio::test]
async fn a_published_message_reaches_the_subscriber() {
    let server = RedisServer::start().await;
    let pool = pool(&server).await;
    let (subscriber, mut events) = pool.subscriber(64);
    assert!(
        subscriber_connections(&server).await.is_empty(),
        "nothing connects before the first subscription"
    );
    subscriber.subscribe("news").await.expect("subscribe");
    assert_eq!(subscriber.channels(), ["news"]);

    assert_eq!(pool.publish("news", b"hello").await.expect("publish"), 1);
    assert_eq!(
        next_event(&mut events, SOON).await,
        Some(message("news", "hello"))
    );
    assert_eq!(pool.publish("elsewhere", b"x").await.expect("publish"), 0);
    assert_eq!(drain(&mut events, QUIET).await, vec![]);

    // Subscribing again is the same subscription: still one subscriber in Redis' count.
    subscriber.subscribe("news").await.expect("subscribe again");
    assert_eq!(pool.publish("news", b"again").await.expect("publish"), 1);
    assert_eq!(
        drain(&mut events, QUIET).await,
        vec![message("news", "again")]
    );
    let connections = subscriber_connections(&server).await;
    assert_eq!(connections.len(), 1, "{connections:?}");
    assert_eq!(client_field(&connections[0], "sub"), Some(1));
}

/// Two hundred channels share one connection, and each gets exactly its own messages.
#[tokio::test]
async fn many_channels_each_get_their_own_messages() {
    let server = RedisServer::start().await;
    let pool = pool(&server).await;
    let (subscriber, mut events) = pool.subscriber(1024);
    let channels: Vec<String> = (0..200).map(|n| format!("room:{n}")).collect();
    let subscribed =
        futures_util::future::join_all(channels.iter().map(|c| subscriber.subscribe(c))).await;
    assert!(subscribed.iter().all(Result::is_ok), "{subscribed:?}");
    assert_eq!(subscriber.channels().len(), 200);

    for channel in &channels {
        assert_eq!(
            pool.publish(channel, channel.as_bytes())
                .await
                .expect("publish"),
            1
        );
    }
    let received = drain(&mut events, QUIET).await;
    let got = messages(&received);
    assert_eq!(got.len(), 200, "{:?}", summary(&received));
    assert!(got.iter().all(|(channel, payload)| channel == payload));
    assert!(counts(&received).values().all(|n| *n == 1));

    let connections = subscriber_connections(&server).await;
    assert_eq!(connections.len(), 1, "{connections:?}");
    assert_eq!(client_field(&connections[0], "sub"), Some(200));
}

/// Four publishers, each publishing a numbered sequence on two channels at once: every
/// message arrives, and each publisher's messages on a channel arrive in publish order.
#[tokio::test]
async fn each_publishers_messages_arrive_in_publish_order() {
    let server = RedisServer::start().await;
    let pool = pool(&server).await;
    let (subscriber, mut events) = pool.subscriber(8192);
    subscriber.subscribe("a").await.expect("subscribe a");
    subscriber.subscribe("b").await.expect("subscribe b");

    const EACH: usize = 500;
    let publishers: Vec<_> = (0..4)
        .map(|publisher| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for seq in 0..EACH {
                    let channel = if seq % 2 == 0 { "a" } else { "b" };
                    let payload = format!("{publisher}:{seq}");
                    pool.publish(channel, payload.as_bytes())
                        .await
                        .expect("publish");
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    let received = drain(&mut events, QUIET).await;
    let got = messages(&received);
    assert_eq!(got.len(), 4 * EACH, "{:?}", summary(&received));
    let mut last: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (channel, payload) in got {
        let (publisher, seq) = payload.split_once(':').expect("publisher:seq");
        let seq: usize = seq.parse().expect("seq");
        let key = (channel.clone(), publisher.to_owned());
        if let Some(before) = last.insert(key, seq) {
            assert!(
                seq > before,
                "publisher {publisher} on {channel}: {seq} after {before}"
            );
        }
    }
}

/// After `unsubscribe` returns, the channel's messages stop (Redis stops counting the
/// subscriber soon after) while the other channel's go on; the last `unsubscribe` closes the
/// connection.
#[tokio::test]
async fn unsubscribe_stops_delivery_and_the_last_one_closes_the_connection() {
    let server = RedisServer::start().await;
    let pool = pool(&server).await;
    let (subscriber, mut events) = pool.subscriber(64);
    subscriber.subscribe("a").await.expect("subscribe a");
    subscriber.subscribe("b").await.expect("subscribe b");
    pool.publish("a", b"1").await.expect("publish");
    pool.publish("b", b"1").await.expect("publish");
    assert_eq!(drain(&mut events, QUIET).await.len(), 2);

    subscriber.unsubscribe("a").await.expect("unsubscribe a");
    assert_eq!(subscriber.channels(), ["b"]);
    // From now on `a`'s messages are not delivered, even before Redis has processed the
    // unsubscription.
    pool.publish("a", b"2").await.expect("publish");
    pool.publish("b", b"2").await.expect("publish");
    assert_eq!(drain(&mut events, QUIET).await, vec![message("b", "2")]);
    rondo_tests::eventually("Redis to drop the subscription of a", SOON, || async {
        let numsub: Vec<redis::Value> =
            redis::from_redis_value(server.cmd(&["PUBSUB", "NUMSUB", "a"]).await).ok()?;
        (numsub.get(1) == Some(&redis::Value::Int(0))).then_some(())
    })
    .await;
    assert_eq!(pool.publish("a", b"3").await.expect("publish"), 0);

    subscriber.unsubscribe("b").await.expect("unsubscribe b");
    subscriber
        .unsubscribe("never")
        .await
        .expect("unsubscribe a channel never subscribed");
    assert!(subscriber.channels().is_empty());
    rondo_tests::eventually("the subscriber connection to close", SOON, || async {
        subscriber_connections(&server)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    // And a new subscription opens one again.
    subscriber.subscribe("c").await.expect("subscribe c");
    assert_eq!(pool.publish("c", b"1").await.expect("publish"), 1);
    assert_eq!(drain(&mut events, QUIET).await, vec![message("c", "1")]);
}

/// Redis restarted under the subscriber: it reports the channels `Lost`, then
/// `Resubscribed`, and delivery resumes on the new server.
#[tokio::test]
async fn a_restarted_redis_is_resubscribed_and_delivery_resumes() {
    let mut server = RedisServer::start().await;
    let pool = pool(&server).await;
    let (subscriber, mut events) = pool.subscriber(64);
    subscriber.subscribe("a").await.expect("subscribe a");
    subscriber.subscribe("b").await.expect("subscribe b");
    pool.publish("a", b"before").await.expect("publish");
    assert_eq!(
        next_event(&mut events, SOON).await,
        Some(message("a", "before"))
    );

    let restarted = Instant::now();
    server.restart().await;
    let (before, lost) = until(&mut events, SOON, "Lost", |e| {
        matches!(e, SubscriberEvent::Lost { .. })
    })
    .await;
    assert!(before.is_empty(), "{:?}", summary(&before));
    assert_eq!(
        lost,
        SubscriberEvent::Lost {
            channels: vec!["a".into(), "b".into()]
        }
    );
    let (before, back) = until(&mut events, SOON, "Resubscribed", |e| {
        matches!(e, SubscriberEvent::Resubscribed { .. })
    })
    .await;
    assert!(before.is_empty(), "{:?}", summary(&before));
    assert_eq!(
        back,
        SubscriberEvent::Resubscribed {
            channels: vec!["a".into(), "b".into()]
        }
    );
    println!(
        "standalone restart: resubscribed {:?} after the restart began",
        restarted.elapsed()
    );
    // The pool recovers by itself too (its broken connection is replaced).
    let heard = rondo_tests::eventually("a publish after the restart", SOON, || async {
        pool.publish("b", b"after").await.ok()
    })
    .await;
    assert_eq!(heard, 1);
    assert_eq!(
        next_event(&mut events, SOON).await,
        Some(message("b", "after"))
    );
    assert_eq!(subscriber.channels(), ["a", "b"]);
}

/// With Redis down, `subscribe` fails within the pool's timeout and leaves nothing behind,
/// as does `publish`; once Redis is back both work.
#[tokio::test]
async fn with_redis_down_subscribe_fails_in_time_and_leaves_nothing() {
    let mut server = RedisServer::start().await;
    let pool = pool(&server).await;
    let (subscriber, mut events) = pool.subscriber(64);
    server.kill();

    let started = Instant::now();
    let refused = subscriber.subscribe("a").await;
    let waited = started.elapsed();
    assert!(
        matches!(refused, Err(PoolError::Unavailable { .. })),
        "{refused:?}"
    );
    let timeout = server.pool_config("").timeout;
    assert!(
        waited >= timeout && waited < timeout + Duration::from_millis(900),
        "{waited:?}"
    );
    assert!(subscriber.channels().is_empty());
    assert!(pool.publish("a", b"x").await.is_err());

    server.restart().await;
    subscriber
        .subscribe("b")
        .await
        .expect("subscribe once Redis is back");
    assert_eq!(subscriber.channels(), ["b"]);
    let heard = rondo_tests::eventually("a publish once Redis is back", SOON, || async {
        pool.publish("b", b"up").await.ok()
    })
    .await;
    assert_eq!(heard, 1);
    // No `Lost`/`Resubscribed` for a channel that was never subscribed, and nothing for `a`.
    assert_eq!(drain(&mut events, QUIET).await, vec![message("b", "up")]);
}

/// A consumer that reads nothing: the bounded event channel fills, later messages are
/// dropped and counted, the connection keeps reading (Redis holds no output for it), and
/// what the consumer finally reads accounts for every message published.
#[tokio::test]
async fn a_slow_consumer_gets_lagged_and_memory_stays_bounded() {
    const CAPACITY: usize = 16;
    const PUBLISHED: usize = 20_000;
    let server = RedisServer::start().await;
    let pool = pool(&server).await;
    let (subscriber, mut events) = pool.subscriber(CAPACITY);
    subscriber.subscribe("firehose").await.expect("subscribe");

    let payload = vec![b'x'; 512];
    let publishers: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                for _ in 0..PUBLISHED / 4 {
                    pool.publish("firehose", &payload).await.expect("publish");
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    // Nobody has read anything; the connection must still have taken everything Redis had
    // for it (about 10 MB went out), so Redis' output buffer for it drains to nothing.
    let connection = rondo_tests::eventually("Redis' output buffer to drain", SOON, || async {
        let connections = subscriber_connections(&server).await;
        let ours = connections.first()?.clone();
        (client_field(&ours, "omem") == Some(0)).then_some(ours)
    })
    .await;
    assert_eq!(client_field(&connection, "sub"), Some(1), "{connection}");

    let received = drain(&mut events, QUIET).await;
    let delivered = messages(&received).len();
    let lagged: u64 = received
        .iter()
        .map(|e| match e {
            SubscriberEvent::Lagged(n) => *n,
            _ => 0,
        })
        .sum();
    assert!(delivered <= CAPACITY + 1, "{delivered} delivered");
    assert!(lagged > 0);
    assert_eq!(
        delivered as u64 + lagged,
        PUBLISHED as u64,
        "{:?}",
        summary(&received)
    );
    // The count came in the dropped messages' place: after what fitted.
    assert!(matches!(received.last(), Some(SubscriberEvent::Lagged(_))));

    // A consumer that keeps up gets everything again.
    pool.publish("firehose", b"caught up")
        .await
        .expect("publish");
    assert_eq!(
        next_event(&mut events, SOON).await,
        Some(message("firehose", "caught up"))
    );
}

/// Dropping every handle closes the subscriber's connection and ends its events.
#[tokio::test]
async fn dropping_the_last_handle_closes_the_connection() {
    let server = RedisServer::start().await;
    let pool = pool(&server).await;
    let (subscriber, mut events) = pool.subscriber(8);
    let clone = subscriber.clone();
    subscriber.subscribe("a").await.expect("subscribe");
    drop(subscriber);
    assert_eq!(pool.publish("a", b"still").await.expect("publish"), 1);
    assert_eq!(
        next_event(&mut events, SOON).await,
        Some(message("a", "still"))
    );
    drop(clone);
    rondo_tests::eventually("the subscriber connection to close", SOON, || async {
        subscriber_connections(&server)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(next_event(&mut events, SOON).await, None);
}
