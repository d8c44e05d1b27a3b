//! Channels on a local Redis Cluster (six nodes, sharded pub/sub) and on a Sentinel set (a
//! primary, a replica, three sentinels), each shared by two app servers: an event published
//! on one server reaches a socket on the other, presence is shared, and after the primary
//! that serves the channel is killed, events flow again once its replica is promoted.
//! Real `redis-server` processes, real HTTP and WebSocket.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rondo::{Config, ConfigLoader};
use rondo_tests::channels::{
    channels_section, log_in_as, publish, publish_signed, start_channels, PusherClient, SECRET,
};
use rondo_tests::http::TestServer;
use rondo_tests::redis_ha::{RedisCluster, RedisSentinelSet};
use serde_json::json;

/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(20);

/// The `[redis]` lines and the app config for a cluster or a Sentinel set, channels on.
fn config(redis_lines: &str) -> Config {
    let text = format!(
        "[http]\nport = 0\n[session]\nstore = redis\n[redis]\n{redis_lines}default[prefix] = t:\n\
         default[timeout] = 1\n{}",
        channels_section("")
    );
    ConfigLoader::new()
        .section("example")
        .parse_str(&text, "test.ini")
        .expect("test config is valid")
}

fn nodes(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cluster_config(cluster: &RedisCluster) -> Config {
    config(&format!(
        "default[mode] = cluster\ndefault[nodes] = {}\n",
        nodes(&cluster.ports())
    ))
}

fn sentinel_config(set: &RedisSentinelSet) -> Config {
    config(&format!(
        "default[mode] = sentinel\ndefault[nodes] = {}\ndefault[master_name] = {}\n",
        nodes(&set.sentinel_ports()),
        set.service_name()
    ))
}

/// Ana on server A in her private channel and the room's presence channel, Bo on B in the
/// room: B's member joins on A, and an event published on B reaches Ana on A once.
async fn across_two_servers(a: &TestServer, b: &TestServer) -> PusherClient {
    let mut ana_jar = log_in_as(a, "ana").await;
    let mut bo_jar = log_in_as(b, "bo").await;
    let mut ana = PusherClient::connect(a.addr).await;
    ana.join(a, &mut ana_jar, "private-user.ana").await;
    let joined = ana.join(a, &mut ana_jar, "presence-room.7").await;
    assert_eq!(joined.data["presence"]["count"], 1);
    let mut bo = PusherClient::connect(b.addr).await;
    let joined = bo.join(b, &mut bo_jar, "presence-room.7").await;
    assert_eq!(joined.data["presence"]["count"], 2, "{:?}", joined.data);
    let added = ana
        .expect("pusher_internal:member_added", WAIT)
        .await
        .unwrap();
    assert_eq!(added.data["user_id"], "bo");

    publish(b, "private-user.ana", "order.shipped", &json!({"id": 1})).await;
    let event = ana.expect("order.shipped", WAIT).await.unwrap();
    assert_eq!(event.channel.as_deref(), Some("private-user.ana"));
    assert_eq!(event.data, json!({"id": 1}));
    assert!(
        ana.expect("order.shipped", Duration::from_millis(300))
            .await
            .is_none(),
        "an event arrived twice"
    );

    drop(bo);
    let removed = ana
        .expect("pusher_internal:member_removed", WAIT)
        .await
        .unwrap();
    assert_eq!(removed.data, json!({"user_id": "bo"}));
    ana
}

/// After the primary serving the channel is gone, publishing on B reaches Ana on A again:
/// B's publishes may fail (503) during the failover, and Ana's server re-subscribes by
/// itself. Answers when the first event got through.
async fn events_flow_again(ana: &mut PusherClient, b: &TestServer) -> Duration {
    let started = Instant::now();
    let mut n = 100;
    while started.elapsed() < WAIT {
        n += 1;
        let body = json!({
            "name": "order.shipped",
            "channels": ["private-user.ana"],
            "data": json!({"id": n}).to_string(),
        });
        let (status, _) = publish_signed(b, SECRET, &body).await;
        if status == 200 {
            if let Some(event) = ana
                .expect("order.shipped", Duration::from_millis(500))
                .await
            {
                assert!(event.data["id"].as_u64().unwrap() > 100, "{:?}", event.data);
                return started.elapsed();
            }
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    panic!("no event reached A within {WAIT:?} after the failover");
}

#[tokio::test]
async fn cluster_events_and_presence_cross_servers() {
    let cluster = RedisCluster::start().await;
    let a = start_channels(cluster_config(&cluster)).await;
    let b = start_channels(cluster_config(&cluster)).await;
    across_two_servers(&a, &b).await;
}

#[tokio::test]
async fn sentinel_events_and_presence_cross_servers() {
    let set = RedisSentinelSet::start().await;
    let a = start_channels(sentinel_config(&set)).await;
    let b = start_channels(sentinel_config(&set)).await;
    across_two_servers(&a, &b).await;
}

#[tokio::test]
async fn cluster_channel_survives_its_primary() {
    let mut cluster = RedisCluster::start().await;
    let a = start_channels(cluster_config(&cluster)).await;
    let b = start_channels(cluster_config(&cluster)).await;
    let mut ana = across_two_servers(&a, &b).await;
    let failover = cluster
        .kill_primary_for("t:channels:private-user.ana")
        .await;
    let back = events_flow_again(&mut ana, &b).await;
    eprintln!(
        "cluster: promotion {:?}, events again {back:?} after it",
        failover.elapsed
    );
}

#[tokio::test]
async fn sentinel_channel_survives_its_primary() {
    let mut set = RedisSentinelSet::start().await;
    let a = start_channels(sentinel_config(&set)).await;
    let b = start_channels(sentinel_config(&set)).await;
    let mut ana = across_two_servers(&a, &b).await;
    let failover = set.kill_primary().await;
    let back = events_flow_again(&mut ana, &b).await;
    eprintln!(
        "sentinel: promotion {:?}, events again {back:?} after it",
        failover.elapsed
    );
}
