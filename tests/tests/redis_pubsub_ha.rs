//! Pub/sub on the highly available deployments: a Sentinel set (the subscriber follows the
//! primary) and a Redis Cluster (sharded pub/sub, one connection per primary serving a
//! subscribed channel, following failovers), on real `redis-server` processes.
//!
//! These tests print the gaps they measure (run with `--nocapture` to see them).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rondo::redis::topology::key_slot;
use rondo::redis::{RedisPool, SubscriberEvent};
use rondo_tests::pubsub::{
    client_field, counts, longest_gap, numbered, subscriber_clients, summary, Published, Publisher,
    Recorder,
};
use rondo_tests::redis_ha::{RedisCluster, RedisProcess, RedisSentinelSet};

/// How long a test waits for something that should take milliseconds.
const SOON: Duration = Duration::from_secs(5);
/// How long a failover may take to be followed, from the harness' own wait to the
/// subscriber's recovery.
const RECOVERY: Duration = Duration::from_secs(30);
/// How often the publishers publish on each channel.
const EVERY: Duration = Duration::from_millis(10);
/// A publisher's longest run.
const PUBLISHING: Duration = Duration::from_secs(90);

/// The subscriber connections a node sees.
async fn subscriber_connections(node: &RedisProcess) -> Vec<String> {
    let list: String = node.typed(&["CLIENT", "LIST"]).await;
    subscriber_clients(&list)
}

/// The first event satisfying `wanted` read after `since`, and when it was read.
fn first_after(
    events: &[(Instant, SubscriberEvent)],
    since: Instant,
    wanted: impl Fn(&SubscriberEvent) -> bool,
) -> Option<(Instant, SubscriberEvent)> {
    events
        .iter()
        .find(|(at, event)| *at >= since && wanted(event))
        .cloned()
}

/// The channels named by `Lost` (or, with `back`, `Resubscribed`) events.
fn named(events: &[(Instant, SubscriberEvent)], back: bool) -> BTreeSet<String> {
    events
        .iter()
        .flat_map(|(_, event)| match event {
            SubscriberEvent::Lost { channels } if !back => channels.clone(),
            SubscriberEvent::Resubscribed { channels } if back => channels.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// Every publish of `channel` that Redis counted a subscriber for was received, exactly
/// once, and in order.
fn assert_all_heard(published: &[Published], events: &[(Instant, SubscriberEvent)], channel: &str) {
    let received: Vec<u64> = numbered(events, channel)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let unique: BTreeSet<u64> = received.iter().copied().collect();
    assert_eq!(
        unique.len(),
        received.len(),
        "{channel}: a message came twice"
    );
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "{channel}: out of order"
    );
    let missing: Vec<u64> = published
        .iter()
        .filter(|p| p.channel == channel && p.heard.is_some_and(|n| n > 0))
        .map(|p| p.seq)
        .filter(|seq| !unique.contains(seq))
        .collect();
    assert!(
        missing.is_empty(),
        "{channel}: published and counted, never received: {missing:?}"
    );
}

// --- Sentinel -------------------------------------------------------------------------------

/// The primary killed: the subscriber reports its channel `Lost`, then `Resubscribed` on the
/// promoted replica, and delivery resumes there.
#[tokio::test]
async fn sentinel_subscriber_follows_the_primary_when_it_dies() {
    let mut set = RedisSentinelSet::start().await;
    let pool = RedisPool::new(&set.pool_config("ps:")).await.expect("pool");
    let (subscriber, events) = pool.subscriber(16_384);
    let recorder = Recorder::start(events);
    subscriber.subscribe("news").await.expect("subscribe");
    let old = set.primary_port().await;
    let node = set.process(old).expect("primary");
    assert_eq!(subscriber_connections(node).await.len(), 1);

    let channels = vec!["news".to_owned()];
    let publisher = Publisher::start(&pool, &channels, EVERY, PUBLISHING);
    recorder
        .wait_for("a first message", SOON, |e| {
            (!numbered(e, "news").is_empty()).then_some(())
        })
        .await;
    let killed = Instant::now();
    let failover = set.kill_primary().await;
    let (lost_at, back_at) = recorder
        .wait_for("Lost then Resubscribed", RECOVERY, |events| {
            let lost = first_after(events, killed, |e| {
                matches!(e, SubscriberEvent::Lost { .. })
            })?;
            let back = first_after(events, lost.0, |e| {
                matches!(e, SubscriberEvent::Resubscribed { .. })
            })?;
            Some((lost.0, back.0))
        })
        .await;
    let resumed = recorder
        .wait_for("a message after the failover", RECOVERY, |events| {
            numbered(events, "news")
                .into_iter()
                .find(|(at, _)| *at > back_at)
        })
        .await;
    let published = publisher.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = recorder.events();
    assert_eq!(named(&events, false), BTreeSet::from(["news".to_owned()]));
    assert_eq!(named(&events, true), BTreeSet::from(["news".to_owned()]));
    let arrivals = numbered(&events, "news");
    let before = arrivals.iter().rev().find(|(at, _)| *at < killed).copied();
    println!(
        "sentinel, primary killed: failover agreed after {:?}; Lost after {:?}, Resubscribed \
         after {:?}, first message after {:?}; longest gap between messages {:?} (last before \
         the kill: #{:?}, first after: #{})",
        failover.elapsed,
        lost_at - killed,
        back_at - killed,
        resumed.0 - killed,
        longest_gap(&arrivals),
        before.map(|b| b.1),
        resumed.1,
    );
    // Everything Redis counted a subscriber for after the move was received.
    let after: Vec<Published> = published.into_iter().filter(|p| p.at > back_at).collect();
    assert!(!after.is_empty());
    assert_all_heard(&after, &events, "news");
    let promoted = set.process(failover.promoted).expect("promoted");
    let connections = subscriber_connections(promoted).await;
    assert_eq!(connections.len(), 1, "{connections:?}");
    assert_eq!(client_field(&connections[0], "sub"), Some(1));
}

/// `SENTINEL FAILOVER`: the old primary stays up (it is demoted only later), yet the
/// subscriber moves to the new primary as soon as the Sentinels announce the switch.
#[tokio::test]
async fn sentinel_subscriber_moves_on_a_manual_failover() {
    let mut set = RedisSentinelSet::start().await;
    let pool = RedisPool::new(&set.pool_config("ps:")).await.expect("pool");
    let (subscriber, events) = pool.subscriber(16_384);
    let recorder = Recorder::start(events);
    subscriber.subscribe("news").await.expect("subscribe");
    let channels = vec!["news".to_owned()];
    let publisher = Publisher::start(&pool, &channels, EVERY, PUBLISHING);
    let started = Instant::now();
    let failover = set.manual_failover().await;
    let back_at = recorder
        .wait_for("Resubscribed", RECOVERY, |events| {
            first_after(events, started, |e| {
                matches!(e, SubscriberEvent::Resubscribed { .. })
            })
            .map(|(at, _)| at)
        })
        .await;
    let resumed = recorder
        .wait_for("a message after the move", RECOVERY, |events| {
            numbered(events, "news")
                .into_iter()
                .find(|(at, _)| *at > back_at)
        })
        .await;
    publisher.stop().await;
    println!(
        "sentinel, manual failover: agreed after {:?}; Resubscribed after {:?}, first message \
         after {:?}",
        failover.elapsed,
        back_at - started,
        resumed.0 - started,
    );
    let promoted = set.process(failover.promoted).expect("promoted");
    assert_eq!(subscriber_connections(promoted).await.len(), 1);
    let old = set.process(failover.old).expect("old primary");
    rondo_tests::eventually(
        "the old primary's subscriber connection to close",
        SOON,
        || async { subscriber_connections(old).await.is_empty().then_some(()) },
    )
    .await;
}

// --- Cluster --------------------------------------------------------------------------------

/// `per` channel names for each primary, whose hash slots it serves, by primary port.
async fn channels_by_primary(cluster: &RedisCluster, per: usize) -> BTreeMap<u16, Vec<String>> {
    let primaries = cluster.primaries().await;
    let mut by_primary: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for n in 0..10_000 {
        if by_primary.values().map(Vec::len).sum::<usize>() == per * primaries.len() {
            break;
        }
        let channel = format!("room:{n}");
        let slot = key_slot(channel.as_bytes());
        if let Some(owner) = primaries.iter().find(|p| p.serves(slot)) {
            let list = by_primary.entry(owner.port).or_default();
            if list.len() < per {
                list.push(channel);
            }
        }
    }
    assert_eq!(by_primary.len(), primaries.len());
    by_primary
}

/// The subscriber connections on each live node of the cluster, by port.
async fn connections_by_node(cluster: &RedisCluster) -> BTreeMap<u16, Vec<String>> {
    let mut out = BTreeMap::new();
    for port in cluster.ports() {
        if let Some(node) = cluster.process(port).filter(|p| p.is_running()) {
            let connections = subscriber_connections(node).await;
            if !connections.is_empty() {
                out.insert(port, connections);
            }
        }
    }
    out
}

/// Channels on all three shards: each message is delivered exactly once; the subscriber
/// keeps exactly one connection per primary serving a subscribed channel, with that shard's
/// channels on it, and closes one when its last channel is unsubscribed.
#[tokio::test]
async fn cluster_channels_on_every_shard_are_delivered_once_on_one_connection_per_primary() {
    let cluster = RedisCluster::start().await;
    let pool = RedisPool::new(&cluster.pool_config("ps:"))
        .await
        .expect("pool");
    let by_primary = channels_by_primary(&cluster, 4).await;
    let (subscriber, events) = pool.subscriber(1024);
    let recorder = Recorder::start(events);
    let all: Vec<String> = by_primary.values().flatten().cloned().collect();
    // Hash tags keep two channels on one shard.
    let tagged = ["room:{7}".to_owned(), "presence:{7}".to_owned()];
    let subscribed =
        futures_util::future::join_all(all.iter().chain(&tagged).map(|c| subscriber.subscribe(c)))
            .await;
    assert!(subscribed.iter().all(Result::is_ok), "{subscribed:?}");

    let tagged_owner = cluster.primary_for("room:{7}").await.port;
    let connections = connections_by_node(&cluster).await;
    assert_eq!(
        connections.keys().copied().collect::<Vec<_>>(),
        by_primary.keys().copied().collect::<Vec<_>>(),
        "one connection on each primary, none on a replica"
    );
    for (port, lines) in &connections {
        assert_eq!(lines.len(), 1, "port {port}: {lines:?}");
        let expected = 4 + if *port == tagged_owner { 2 } else { 0 };
        assert_eq!(
            client_field(&lines[0], "ssub"),
            Some(expected),
            "port {port}"
        );
    }

    for channel in all.iter().chain(&tagged) {
        assert_eq!(
            pool.publish(channel, channel.as_bytes())
                .await
                .expect("publish"),
            1
        );
    }
    let total = all.len() + tagged.len();
    recorder
        .wait_for("every message", SOON, |events| {
            let got: Vec<SubscriberEvent> = events.iter().map(|(_, e)| e.clone()).collect();
            (counts(&got).values().sum::<usize>() >= total).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<SubscriberEvent> = recorder.events().into_iter().map(|(_, e)| e).collect();
    let per_channel = counts(&got);
    assert_eq!(per_channel.len(), total, "{:?}", summary(&got));
    assert!(per_channel.values().all(|n| *n == 1), "{per_channel:?}");

    // The first shard's channels unsubscribed: its connection closes (unless the tagged
    // channels keep it), the others stay.
    let (&emptied, channels) = by_primary
        .iter()
        .find(|(port, _)| **port != tagged_owner)
        .expect("a shard without the tagged channels");
    for channel in channels {
        subscriber.unsubscribe(channel).await.expect("unsubscribe");
    }
    rondo_tests::eventually("the emptied shard's connection to close", SOON, || async {
        let connections = connections_by_node(&cluster).await;
        (connections.len() == 2 && !connections.contains_key(&emptied)).then_some(())
    })
    .await;
    for channel in channels {
        assert_eq!(pool.publish(channel, b"late").await.expect("publish"), 0);
    }
    assert_eq!(subscriber.channels().len(), total - 4);
}

/// A primary killed: its channels are reported `Lost`, then `Resubscribed` on the promoted
/// replica, and resume; the other shards' channels are never lost and receive every message
/// Redis counted a subscriber for.
#[tokio::test]
async fn cluster_killed_primary_its_channels_resume_the_others_never_stop() {
    let mut cluster = RedisCluster::start().await;
    let pool = RedisPool::new(&cluster.pool_config("ps:"))
        .await
        .expect("pool");
    let by_primary = channels_by_primary(&cluster, 3).await;
    let (subscriber, events) = pool.subscriber(65_536);
    let recorder = Recorder::start(events);
    let all: Vec<String> = by_primary.values().flatten().cloned().collect();
    for channel in &all {
        subscriber.subscribe(channel).await.expect("subscribe");
    }
    let (&victim, hit) = by_primary.iter().next().expect("a primary");
    let hit: BTreeSet<String> = hit.iter().cloned().collect();
    let publisher = Publisher::start(&pool, &all, EVERY, PUBLISHING);
    recorder
        .wait_for("messages on every channel", SOON, |events| {
            all.iter()
                .all(|c| !numbered(events, c).is_empty())
                .then_some(())
        })
        .await;

    let killed = Instant::now();
    let failover = cluster.kill_primary(victim).await;
    let back_at = recorder
        .wait_for("every hit channel Resubscribed", RECOVERY, |events| {
            let back = named(events, true);
            hit.iter().all(|c| back.contains(c)).then(|| {
                events
                    .iter()
                    .filter(|(_, e)| matches!(e, SubscriberEvent::Resubscribed { .. }))
                    .map(|(at, _)| *at)
                    .max()
            })?
        })
        .await;
    let resumed = recorder
        .wait_for("a message on every hit channel after", RECOVERY, |events| {
            hit.iter()
                .map(|c| {
                    numbered(events, c)
                        .into_iter()
                        .find(|(at, _)| *at > back_at)
                        .map(|(at, _)| at)
                })
                .collect::<Option<Vec<Instant>>>()
                .and_then(|ats| ats.into_iter().max())
        })
        .await;
    let published = publisher.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = recorder.events();

    let lost = named(&events, false);
    assert_eq!(lost, hit, "only the killed primary's channels are lost");
    assert_eq!(named(&events, true), hit);
    let mut others_gap = Duration::ZERO;
    let mut hit_gap = Duration::ZERO;
    for channel in &all {
        let arrivals = numbered(&events, channel);
        if hit.contains(channel) {
            hit_gap = hit_gap.max(longest_gap(&arrivals));
            let after: Vec<Published> = published
                .iter()
                .filter(|p| p.at > back_at)
                .cloned()
                .collect();
            assert_all_heard(&after, &events, channel);
        } else {
            others_gap = others_gap.max(longest_gap(&arrivals));
            assert_all_heard(&published, &events, channel);
        }
    }
    let lost_at = first_after(&events, killed, |e| {
        matches!(e, SubscriberEvent::Lost { .. })
    })
    .map(|(at, _)| at - killed);
    println!(
        "cluster, primary killed: promotion agreed after {:?}; Lost after {lost_at:?}, \
         Resubscribed after {:?}, every hit channel delivering again after {:?}; longest gap \
         on the hit channels {hit_gap:?}, on the others {others_gap:?}",
        failover.elapsed,
        back_at - killed,
        resumed - killed,
    );
    // One connection per primary, the promoted replica included, the dead one gone.
    let connections = connections_by_node(&cluster).await;
    let primaries: Vec<u16> = cluster.primaries().await.iter().map(|p| p.port).collect();
    assert!(
        connections.contains_key(&failover.promoted),
        "{connections:?}"
    );
    assert_eq!(
        connections.keys().copied().collect::<BTreeSet<_>>(),
        primaries.into_iter().collect::<BTreeSet<_>>()
    );
    assert!(connections.values().all(|lines| lines.len() == 1));
}

/// `CLUSTER FAILOVER` on a replica (the old primary stays up and becomes its replica): Redis
/// drops the moved channels' subscriptions, and the subscriber re-subscribes them on the new
/// primary; the other shards' channels are not touched.
#[tokio::test]
async fn cluster_manual_failover_moves_the_subscriptions() {
    let cluster = RedisCluster::start().await;
    let pool = RedisPool::new(&cluster.pool_config("ps:"))
        .await
        .expect("pool");
    let by_primary = channels_by_primary(&cluster, 3).await;
    let (subscriber, events) = pool.subscriber(65_536);
    let recorder = Recorder::start(events);
    let all: Vec<String> = by_primary.values().flatten().cloned().collect();
    for channel in &all {
        subscriber.subscribe(channel).await.expect("subscribe");
    }
    let (&moved, hit) = by_primary.iter().last().expect("a primary");
    let hit: BTreeSet<String> = hit.iter().cloned().collect();
    let primary = cluster
        .primaries()
        .await
        .into_iter()
        .find(|p| p.port == moved)
        .expect("primary");
    let replica = cluster.replicas_of(&primary.id).await[0].port;
    let publisher = Publisher::start(&pool, &all, EVERY, PUBLISHING);
    recorder
        .wait_for("messages on every channel", SOON, |events| {
            all.iter()
                .all(|c| !numbered(events, c).is_empty())
                .then_some(())
        })
        .await;

    let started = Instant::now();
    let failover = cluster.failover_to(replica).await;
    let back_at = recorder
        .wait_for("every moved channel Resubscribed", RECOVERY, |events| {
            let back = named(events, true);
            hit.iter().all(|c| back.contains(c)).then(|| {
                events
                    .iter()
                    .filter(|(_, e)| matches!(e, SubscriberEvent::Resubscribed { .. }))
                    .map(|(at, _)| *at)
                    .max()
            })?
        })
        .await;
    let resumed = recorder
        .wait_for(
            "a message on every moved channel after",
            RECOVERY,
            |events| {
                hit.iter()
                    .map(|c| {
                        numbered(events, c)
                            .into_iter()
                            .find(|(at, _)| *at > back_at)
                            .map(|(at, _)| at)
                    })
                    .collect::<Option<Vec<Instant>>>()
                    .and_then(|ats| ats.into_iter().max())
            },
        )
        .await;
    let published = publisher.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = recorder.events();
    assert_eq!(
        named(&events, false),
        hit,
        "only the moved shard's channels are lost"
    );
    let mut hit_gap = Duration::ZERO;
    for channel in all.iter().filter(|c| !hit.contains(*c)) {
        assert_all_heard(&published, &events, channel);
    }
    for channel in &hit {
        hit_gap = hit_gap.max(longest_gap(&numbered(&events, channel)));
    }
    println!(
        "cluster, CLUSTER FAILOVER: agreed after {:?}; Resubscribed after {:?}, every moved \
         channel delivering again after {:?}; longest gap on the moved channels {hit_gap:?}",
        failover.elapsed,
        back_at - started,
        resumed - started,
    );
    // Within the recovery bound, not `SOON`: with the other tests' clusters running beside
    // it, the last route look-up may still see the old primary's slots for a few rounds.
    rondo_tests::eventually(
        "the subscriber to sit on the new primary only",
        RECOVERY,
        || async {
            let connections = connections_by_node(&cluster).await;
            (connections.contains_key(&replica)
                && !connections.contains_key(&moved)
                && connections.len() == 3)
                .then_some(())
        },
    )
    .await;
}
