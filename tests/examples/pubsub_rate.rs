//! Pub/sub delivery rates on loopback, standalone against a three-primary Cluster: a figure
//! to read, not a test (nothing here fails on speed).
//!
//! Run with `bench/pubsub.sh` (or `cargo run --release -p rondo-tests --example
//! pubsub_rate`). Two measures per deployment:
//!
//! - **publish → deliver**: concurrent `RedisPool::publish` calls (a round trip each,
//!   pipelined on the pool's multiplexed connections), until the subscriber has delivered
//!   every message;
//! - **subscriber alone**: Redis publishes a burst itself (a Lua loop of `PUBLISH` /
//!   `SPUBLISH`, in calls of a few thousand), so the figure is how fast the subscriber reads,
//!   parses and hands messages to a consumer that keeps up, as far as Redis produces them
//!   faster.

use std::time::{Duration, Instant};

use rondo::redis::topology::key_slot;
use rondo::redis::{RedisPool, SubscriberEvent};
use rondo_tests::redis::RedisServer;
use rondo_tests::redis_ha::RedisCluster;
use tokio::sync::mpsc::Receiver;

/// Messages published through the pool per run.
const PUBLISHED: usize = 200_000;
/// Concurrent publishing tasks.
const PUBLISHERS: usize = 32;
/// Messages Redis publishes itself per burst, and bursts.
const BURST: usize = 100_000;
const BURSTS: usize = 3;
/// Messages per script call of a burst: a script blocks its node, and a Cluster node
/// blocked for longer than the node timeout (1 s here) is failed over.
const PER_CALL: usize = 2_000;
/// Bytes per message.
const PAYLOAD: usize = 64;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = RedisServer::start().await;
    let pool = RedisPool::new(&server.pool_config("rate:"))
        .await
        .expect("pool");
    let channels: Vec<String> = (0..3).map(|n| format!("rate:{n}")).collect();
    let standalone = measure(&pool, &channels, &Deployment::Standalone(server.port())).await;
    println!("standalone: {standalone}");
    drop(server);

    let cluster = RedisCluster::start().await;
    let pool = RedisPool::new(&cluster.pool_config("rate:"))
        .await
        .expect("pool");
    // One channel on each shard.
    let channels: Vec<String> = cluster
        .primaries()
        .await
        .iter()
        .map(|p| {
            (0..)
                .map(|n| format!("rate:{n}"))
                .find(|c| p.serves(key_slot(c.as_bytes())))
                .unwrap_or_default()
        })
        .collect();
    let clustered = measure(&pool, &channels, &Deployment::Cluster(&cluster)).await;
    println!("cluster (3 primaries, one channel each): {clustered}");
}

/// Where a burst is sent.
enum Deployment<'a> {
    Standalone(u16),
    /// To the primary of the channel's slot, looked up at the time: under this load a
    /// primary may miss the cluster's 1 s node timeout and be failed over.
    Cluster(&'a RedisCluster),
}

/// Both measures on `channels`.
async fn measure(pool: &RedisPool, channels: &[String], deployment: &Deployment<'_>) -> String {
    let (subscriber, mut events) = pool.subscriber(65_536);
    for channel in channels {
        subscriber.subscribe(channel).await.expect("subscribe");
    }
    let payload = vec![b'x'; PAYLOAD];

    let started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|n| {
            let (pool, payload) = (pool.clone(), payload.clone());
            let channel = channels[n % channels.len()].clone();
            tokio::spawn(async move {
                for _ in 0..PUBLISHED / PUBLISHERS {
                    pool.publish(&channel, &payload).await.expect("publish");
                }
            })
        })
        .collect();
    let (delivered, lagged) = receive(&mut events, PUBLISHED / PUBLISHERS * PUBLISHERS).await;
    for publisher in publishers {
        publisher.await.expect("publisher");
    }
    let end_to_end = rate(delivered, started.elapsed());

    let mut alone = Vec::new();
    let mut alone_lagged = 0;
    for _ in 0..BURSTS {
        let channel = &channels[0];
        let (port, command) = match deployment {
            Deployment::Standalone(port) => (*port, "PUBLISH"),
            Deployment::Cluster(cluster) => (cluster.primary_for(channel).await.port, "SPUBLISH"),
        };
        let started = Instant::now();
        let bursting = tokio::spawn(burst(port, command, channel.clone()));
        let (delivered, lagged) = receive(&mut events, BURST).await;
        alone.push(rate(delivered, started.elapsed()));
        alone_lagged += lagged;
        let _ = bursting.await;
    }
    alone.sort_by(f64::total_cmp);
    format!(
        "publish -> deliver {:.0} msg/s ({PUBLISHERS} publishers, {lagged} lagged); subscriber \
         alone {:.0} msg/s (median of {BURSTS} bursts of {BURST}, {alone_lagged} lagged)",
        end_to_end,
        alone[BURSTS / 2]
    )
}

/// Reads until `expected` messages were delivered or lagged, or 60 s passed.
async fn receive(events: &mut Receiver<SubscriberEvent>, expected: usize) -> (usize, u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut delivered, mut lagged) = (0usize, 0u64);
    while delivered as u64 + lagged < expected as u64 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(SubscriberEvent::Message { .. })) => delivered += 1,
            Ok(Some(SubscriberEvent::Lagged(n))) => lagged += n,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    (delivered, lagged)
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Makes the Redis on `port` publish [`BURST`] messages on `channel` itself, [`PER_CALL`] per
/// script call.
async fn burst(port: u16, command: &'static str, channel: String) {
    let script = format!(
        "for i = 1, tonumber(ARGV[1]) do redis.call('{command}', KEYS[1], ARGV[2]) end return 1"
    );
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("client");
    // The burst takes longer than the client's default response timeout.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connection");
    let payload = "x".repeat(PAYLOAD);
    for _ in 0..BURST / PER_CALL {
        let _: i64 = redis::cmd("EVAL")
            .arg(&script)
            .arg(1)
            .arg(&channel)
            .arg(PER_CALL)
            .arg(&payload)
            .query_async(&mut conn)
            .await
            .expect("burst");
    }
}
