//! Reads kept current by Redis client-side caching (`[session] read_check = tracking`, the
//! default): a warm read sends nothing to Redis, yet every write — from another server, by
//! hand, by a flush — is seen by the next read, and losing the tracking connection only
//! costs round trips, never exactness. Real `redis-server`, real HTTP.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use http::StatusCode;
use rondo_tests::app::{example_config, start_example, Jar};
use rondo_tests::eventually;
use rondo_tests::http::TestServer;
use rondo_tests::redis::RedisServer;

/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(10);

/// The `CLIENT LIST` ids of connections named `rondo-tracking`.
async fn tracking_clients(redis: &RedisServer) -> Vec<String> {
    let list: String = redis::from_redis_value(redis.cmd(&["CLIENT", "LIST"]).await).unwrap();
    list.lines()
        .filter(|line| line.split(' ').any(|field| field == "name=rondo-tracking"))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

/// `/bench/read` through `jar`, which must answer 200.
async fn read(jar: &mut Jar, server: &TestServer) -> String {
    let response = jar.get(server, "/bench/read").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body
}

/// Reads until ten reads in a row send no data command to Redis: the node's copy is
/// tracked. Panics if that does not happen within [`WAIT`].
async fn until_reads_are_free(redis: &RedisServer, jar: &Jar, server: &TestServer, want: &str) {
    eventually("reads served from memory", WAIT, || {
        let mut jar = jar.clone();
        async move {
            redis.reset_stats().await;
            for _ in 0..10 {
                assert_eq!(read(&mut jar, server).await, want);
            }
            redis.data_commands().await.is_empty().then_some(())
        }
    })
    .await;
}

/// Once a session's copy is tracked, a hundred reads of it send no command to Redis, and
/// the node holds exactly one tracking connection.
#[tokio::test]
async fn warm_reads_send_nothing_to_redis() {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "1");
    until_reads_are_free(&redis, &jar, &shop, "1").await;

    redis.reset_stats().await;
    for _ in 0..100 {
        assert_eq!(read(&mut jar, &shop).await, "1");
    }
    assert_eq!(redis.data_commands().await, Default::default());
    assert_eq!(tracking_clients(&redis).await.len(), 1);
}

/// A write on one server is seen by the very next read on another whose copy was served
/// from memory: 100 rounds of "increment on B, read on A" read exactly what B answered.
#[tokio::test]
async fn a_write_on_another_server_is_seen_by_the_next_read() {
    let redis = RedisServer::start().await;
    let a = start_example(example_config(redis.port(), "")).await;
    let b = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&b, "/bench/counter").await.body, "1");
    until_reads_are_free(&redis, &jar, &a, "1").await;

    for round in 2..=101u64 {
        let wrote = jar.get(&b, "/bench/counter").await;
        assert_eq!(wrote.body, round.to_string());
        assert_eq!(read(&mut jar, &a).await, round.to_string(), "round {round}");
    }
}

/// A change made in Redis by hand (data and version) reaches a tracked copy, and so does
/// `FLUSHALL`: the next read sees the new value, then an unknown session.
#[tokio::test]
async fn hand_edits_and_flushes_reach_tracked_copies() {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "1");
    until_reads_are_free(&redis, &jar, &shop, "1").await;

    let keys = redis.keys("t:session:*").await;
    assert_eq!(keys.len(), 1);
    // MessagePack for 7 is the single byte 0x07.
    redis.cmd(&["HSET", &keys[0], "d:count", "\x07"]).await;
    redis.cmd(&["HINCRBY", &keys[0], "_v", "1"]).await;
    assert_eq!(read(&mut jar, &shop).await, "7");

    until_reads_are_free(&redis, &jar, &shop, "7").await;
    redis.flushall().await;
    assert_eq!(read(&mut jar, &shop).await, "0");
    assert_eq!(jar.value, None, "the unknown id was dropped");
}

/// When the tracking connection is killed, reads fall back to checking the version (still
/// exact across servers), and once it is back reads are free again.
#[tokio::test]
async fn losing_the_tracking_connection_keeps_reads_exact() {
    let redis = RedisServer::start().await;
    let a = start_example(example_config(redis.port(), "")).await;
    let b = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&b, "/bench/counter").await.body, "1");
    until_reads_are_free(&redis, &jar, &a, "1").await;

    for id in tracking_clients(&redis).await {
        redis.cmd(&["CLIENT", "KILL", "ID", &id]).await;
    }
    for round in 2..=21u64 {
        assert_eq!(jar.get(&b, "/bench/counter").await.body, round.to_string());
        assert_eq!(read(&mut jar, &a).await, round.to_string(), "round {round}");
    }
    until_reads_are_free(&redis, &jar, &a, "21").await;
    assert!(!tracking_clients(&redis).await.is_empty());
}

/// With `read_check = version`, every read asks Redis for the version (one `HGET`) and no
/// tracking connection is opened.
#[tokio::test]
async fn version_checks_ask_redis_on_every_read() {
    let redis = RedisServer::start().await;
    let config = example_config(redis.port(), "[session]\nread_check = version");
    let shop = start_example(config).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "1");
    assert_eq!(read(&mut jar, &shop).await, "1");

    redis.reset_stats().await;
    for _ in 0..20 {
        assert_eq!(read(&mut jar, &shop).await, "1");
    }
    let commands = redis.data_commands().await;
    assert_eq!(commands.get("hget"), Some(&20), "{commands:?}");
    assert!(tracking_clients(&redis).await.is_empty());
}
