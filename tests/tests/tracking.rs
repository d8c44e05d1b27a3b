//! Reads kept current by Redis client-side caching, in both modes (`[session] read_check =
//! tracking`, the default, where Redis tracks the keys each server read, and `broadcast`):
//! a warm read sends nothing to Redis, yet every write — from another server, by hand, by a
//! flush, by an expiry refresh — is seen by the next read, and losing the tracking
//! connection only costs round trips, never exactness. Real `redis-server`, real HTTP.

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

/// The example app's config on `redis` with `read_check = mode` and `extra` lines of
/// `[session]`.
fn config(redis: &RedisServer, mode: &str, extra: &str) -> rondo::Config {
    example_config(
        redis.port(),
        &format!("[session]\nread_check = {mode}\n{extra}"),
    )
}

/// A server of the example app in `mode`.
async fn server(redis: &RedisServer, mode: &str) -> TestServer {
    start_example(config(redis, mode, "")).await
}

/// `/bench/counter` through `jar` on `server`: the new count.
async fn increment(jar: &mut Jar, server: &TestServer) -> String {
    let response = jar.get(server, "/bench/counter").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body
}

/// A counter of `server`'s metrics, 0 when absent.
async fn metric(server: &TestServer, name: &str) -> u64 {
    let text = server.get("/metrics").await.body;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// The session commands Redis ran since its stats were reset: a read served from memory
/// sends none. (The app's job queue keeps sending its own upkeep, which this leaves out.)
async fn reads_sent(redis: &RedisServer) -> std::collections::BTreeMap<String, u64> {
    redis.session_commands().await
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
            reads_sent(redis).await.is_empty().then_some(())
        }
    })
    .await;
}

/// Once a session's copy is tracked, a hundred reads of it send no command to Redis, and
/// the node holds exactly one tracking connection.
async fn warm_reads_send_nothing_to_redis(mode: &str) {
    let redis = RedisServer::start().await;
    let shop = server(&redis, mode).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "1");
    until_reads_are_free(&redis, &jar, &shop, "1").await;

    redis.reset_stats().await;
    for _ in 0..100 {
        assert_eq!(read(&mut jar, &shop).await, "1");
    }
    assert_eq!(reads_sent(&redis).await, Default::default());
    assert_eq!(tracking_clients(&redis).await.len(), 1);
}

/// A write on one server is seen by the very next read on another whose copy was served
/// from memory: 100 rounds of "increment on B, read on A" read exactly what B answered.
async fn a_write_on_another_server_is_seen_by_the_next_read(mode: &str) {
    let redis = RedisServer::start().await;
    let a = server(&redis, mode).await;
    let b = server(&redis, mode).await;
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
async fn hand_edits_and_flushes_reach_tracked_copies(mode: &str) {
    let redis = RedisServer::start().await;
    let shop = server(&redis, mode).await;
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
    // Copies are trusted again after the flush.
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "1");
    until_reads_are_free(&redis, &jar, &shop, "1").await;
}

/// When the tracking connection is killed, reads fall back to checking the version (still
/// exact across servers), and once it is back reads are free again.
async fn losing_the_tracking_connection_keeps_reads_exact(mode: &str) {
    let redis = RedisServer::start().await;
    let a = server(&redis, mode).await;
    let b = server(&redis, mode).await;
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

/// A server's own writes leave its copy tracked: 30 rounds of writes alternating between A
/// and B, each followed by reads on both, read exactly what was written. With key tracking
/// the writer's next read costs nothing (its commit re-armed the tracking of the key), where
/// broadcast sends the writer its own write and the next read checks the version.
async fn own_writes_keep_copies_tracked(mode: &str) {
    let redis = RedisServer::start().await;
    // One connection per server, which the reads and the commits share; each write is
    // committed before its answer.
    let one = "persist = before_response\n[http]\nworkers = 1\n[redis]\ndefault[pool_size] = 1";
    let a = start_example(config(&redis, mode, one)).await;
    let b = start_example(config(&redis, mode, one)).await;
    let mut jar = Jar::default();
    assert_eq!(increment(&mut jar, &a).await, "1");
    until_reads_are_free(&redis, &jar, &a, "1").await;
    until_reads_are_free(&redis, &jar, &b, "1").await;
    let mut checks_after_own_write = 0;
    for round in 1..=30u64 {
        let (writer, other) = if round % 2 == 1 { (&a, &b) } else { (&b, &a) };
        let count = (round + 1).to_string();
        assert_eq!(increment(&mut jar, writer).await, count, "round {round}");
        redis.reset_stats().await;
        assert_eq!(read(&mut jar, writer).await, count, "writer, round {round}");
        let commands = reads_sent(&redis).await;
        checks_after_own_write += commands.values().sum::<u64>();
        assert_eq!(read(&mut jar, other).await, count, "other, round {round}");
        assert_eq!(
            read(&mut jar, writer).await,
            count,
            "writer again, round {round}"
        );
    }
    if mode == "tracking" {
        assert_eq!(
            checks_after_own_write, 0,
            "a writer's next read asked Redis"
        );
    } else {
        assert!(checks_after_own_write >= 15, "{checks_after_own_write}");
    }
}

/// An expiry refresh (a write to the record's `_r` and TTL) keeps the copy tracked: after
/// A refreshed the session, a write on B is still seen by A's next read.
async fn an_expiry_refresh_keeps_the_copy_tracked(mode: &str) {
    let redis = RedisServer::start().await;
    // One connection per server: the refresh and the reads share it, so nothing but the
    // refresh itself can keep the key tracked.
    let one = "refresh_interval = 1\n[http]\nworkers = 1\n[redis]\ndefault[pool_size] = 1";
    let a = start_example(config(&redis, mode, one)).await;
    let b = start_example(config(&redis, mode, one)).await;
    let mut jar = Jar::default();
    assert_eq!(increment(&mut jar, &b).await, "1");
    until_reads_are_free(&redis, &jar, &a, "1").await;
    let key = redis.keys("t:session:*").await.remove(0);
    let refreshed = || async {
        let fields = redis.hgetall(&key).await;
        fields
            .into_iter()
            .find(|(name, _)| name == "_r")
            .map(|(_, value)| String::from_utf8(value).unwrap())
    };
    let before = refreshed().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(read(&mut jar, &a).await, "1");
    eventually("A to refresh the expiry", WAIT, || async {
        (refreshed().await != before).then_some(())
    })
    .await;
    for round in 2..=6u64 {
        assert_eq!(increment(&mut jar, &b).await, round.to_string());
        assert_eq!(read(&mut jar, &a).await, round.to_string(), "round {round}");
    }
}

/// Who hears of a write: with key tracking, a server that never read a session hears
/// nothing of its writes, and a server hears of others' writes to the sessions it read;
/// with broadcast, every server hears of every session write.
async fn who_hears_of_a_write(mode: &str) {
    let redis = RedisServer::start().await;
    // One connection per server, so that a key is tracked once per server.
    let one = "[http]\nworkers = 1\n[redis]\ndefault[pool_size] = 1";
    let a = start_example(config(&redis, mode, one)).await;
    let b = start_example(config(&redis, mode, one)).await;
    let c = start_example(config(&redis, mode, one)).await;
    // C's tracking connection is opened by its first read of any session.
    let mut own = Jar::default();
    assert_eq!(increment(&mut own, &c).await, "1");
    assert_eq!(read(&mut own, &c).await, "1");
    let received = "rondo_session_invalidations_received_total";
    eventually("C's tracking connection", WAIT, || async {
        let mut probe = own.clone();
        redis.reset_stats().await;
        read(&mut probe, &c).await;
        reads_sent(&redis).await.is_empty().then_some(())
    })
    .await;
    let mut jars: Vec<Jar> = (0..5).map(|_| Jar::default()).collect();
    for jar in &mut jars {
        assert_eq!(increment(jar, &a).await, "1");
        until_reads_are_free(&redis, jar, &a, "1").await;
        assert_eq!(read(jar, &b).await, "1");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (before_a, before_c) = (metric(&a, received).await, metric(&c, received).await);
    // 20 writes on B to sessions A and B read (C read none of them).
    for jar in &mut jars {
        for round in 2..=5u64 {
            assert_eq!(increment(jar, &b).await, round.to_string());
        }
    }
    // Each drains its connection when it reads (and every few milliseconds).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(read(&mut own, &c).await, "1");
    let heard_by_a = metric(&a, received).await - before_a;
    let heard_by_c = metric(&c, received).await - before_c;
    if mode == "tracking" {
        assert_eq!(heard_by_c, 0, "C read none of these sessions");
        // A is told once per session, then not again until it reads it again.
        assert_eq!(heard_by_a, 5);
    } else {
        assert_eq!(heard_by_c, 20);
        assert_eq!(heard_by_a, 20);
    }
}

macro_rules! in_both_modes {
    ($($test:ident),* $(,)?) => {
        /// `read_check = tracking`: Redis tracks the keys each server read.
        mod key_tracking {
            $(#[tokio::test]
            async fn $test() {
                super::$test("tracking").await;
            })*
        }
        /// `read_check = broadcast`: every server hears of every session write.
        mod broadcast {
            $(#[tokio::test]
            async fn $test() {
                super::$test("broadcast").await;
            })*
        }
    };
}

in_both_modes!(
    warm_reads_send_nothing_to_redis,
    a_write_on_another_server_is_seen_by_the_next_read,
    hand_edits_and_flushes_reach_tracked_copies,
    losing_the_tracking_connection_keeps_reads_exact,
    own_writes_keep_copies_tracked,
    an_expiry_refresh_keeps_the_copy_tracked,
    who_hears_of_a_write,
);
