//! How sessions end in time: `max_lifetime` ends one in use, `idle_timeout` ends an unused
//! one, and `refresh_interval` renews the cookie and the TTL of a session that is only read.
//! These wait on Redis TTLs and the wall clock, so they run in real time. Real
//! `redis-server`, real HTTP, the example app.
//!
//! Every test starts its own Redis and server; every wait is bounded.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use rondo_tests::app::{example, set_cookie_header, set_cookie_value, Jar};
use rondo_tests::http::TestServer;
use rondo_tests::session::{eventually, exists, expires_cookie, hash, send_with_cookie, store_key};
use serde_json::json;

/// Sleeps until the wall clock is early in a second, so that the next few hundred
/// milliseconds stay within one Unix second (the store stamps `_r` in whole seconds).
async fn align_to_second_start() {
    let deadline = Instant::now() + Duration::from_millis(1500);
    loop {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_millis();
        if (20..250).contains(&millis) || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(u64::from(1020 - millis.min(1000)))).await;
    }
}

/// `max_lifetime = 2`: a session is gone after ~2.5 s even when used every 500 ms; its
/// store TTL never exceeds the lifetime.
#[tokio::test]
async fn max_lifetime_ends_a_session_in_use() {
    let (redis, server) = example("[session]\nmax_lifetime = 2\n").await;
    let res = server.post_json("/api/login", r#"{"user":"fay"}"#).await;
    let id = set_cookie_value(&res, "dmsession").unwrap();
    let key = store_key(&id);
    assert!(eventually(|| exists(&redis, &key)).await);
    // The record is stored by now, so it ends at most 2 s from here.
    let created = Instant::now();
    let ttl = redis.ttl_ms(&key).await;
    assert!(ttl > 0 && ttl <= 2000, "ttl {ttl}");

    let mut seen_alive = false;
    let mut ended = false;
    while created.elapsed() < Duration::from_millis(2600) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let res = send_with_cookie(&server, "GET", "/api/me", &id, None).await;
        assert_eq!(res.status, StatusCode::OK);
        match res.json()["user"].as_str() {
            Some(user) => {
                assert_eq!(user, "fay");
                assert!(!ended, "a session that ended came back");
                assert!(created.elapsed() < Duration::from_millis(2100));
                seen_alive = true;
            }
            None => ended = true,
        }
    }
    assert!(seen_alive, "the session was alive at first");
    let res = send_with_cookie(&server, "GET", "/api/me", &id, None).await;
    assert_eq!(res.json(), json!({"user": null}));
    assert!(expires_cookie(&res), "{:?}", res.headers);
    let res = send_with_cookie(&server, "GET", "/api/basket", &id, None).await;
    assert_eq!(res.json(), json!({"items": [], "total_qty": 0}));
    assert!(!exists(&redis, &key).await);
}

/// `refresh_interval = 1`: a read more than 1 s after the last write sets the cookie again
/// and resets the TTL to the lifespan without rewriting data (`_v` unchanged).
#[tokio::test]
async fn refresh_interval_renews_cookie_and_ttl_without_rewriting() {
    let (redis, server) = example("[session]\nrefresh_interval = 1\ncookie_lifespan = 20\n").await;
    let mut jar = Jar::default();
    align_to_second_start().await;
    let res = jar
        .post_json(&server, "/api/basket/items", r#"{"sku":"A-1","qty":1}"#)
        .await;
    assert!(set_cookie_header(&res, "dmsession")
        .unwrap()
        .contains("Max-Age=20"));
    let key = store_key(jar.value.as_deref().unwrap());
    assert!(eventually(|| async { hash(&redis, &key).await.contains_key("_v") }).await);
    let before = hash(&redis, &key).await;

    // Within the interval: a read sets nothing.
    read_within_interval_sets_no_cookie(&mut jar, &server, &before).await;

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let ttl_before = redis.ttl_ms(&key).await;
    assert!(ttl_before < 18_500, "ttl {ttl_before}");
    redis.reset_stats().await;

    let res = jar.get(&server, "/api/basket").await;
    assert_eq!(res.json()["total_qty"], 1);
    let header = set_cookie_header(&res, "dmsession").expect("a refreshed cookie");
    assert!(header.contains("Max-Age=20"), "{header}");
    assert_eq!(
        set_cookie_value(&res, "dmsession").as_deref(),
        jar.value.as_deref(),
        "same id"
    );
    assert!(
        eventually(|| async { hash(&redis, &key).await.get("_r") != before.get("_r") }).await,
        "_r is stamped"
    );
    let after = hash(&redis, &key).await;
    assert_eq!(after.get("_v"), before.get("_v"), "no data rewrite");
    assert_eq!(after.get("d:basket"), before.get("d:basket"));
    let ttl_after = redis.ttl_ms(&key).await;
    assert!(ttl_after > 19_000, "ttl {ttl_after}");
    let stats = redis.command_stats().await;
    assert_eq!(stats.get("hset").copied().unwrap_or(0), 1, "{stats:?}");
    assert_eq!(stats.get("hdel").copied().unwrap_or(0), 0, "{stats:?}");

    // Right after the refresh, a read sets nothing again.
    read_within_interval_sets_no_cookie(&mut jar, &server, &after).await;
}

/// A read in the same Unix second as the `_r` stamp of `fields` sets no cookie. (The check
/// is skipped when the clock has already moved on: the refresh would then be due.)
async fn read_within_interval_sets_no_cookie(
    jar: &mut Jar,
    server: &TestServer,
    fields: &HashMap<String, Vec<u8>>,
) {
    let stamp: u64 = std::str::from_utf8(&fields["_r"]).unwrap().parse().unwrap();
    let res = jar.get(server, "/api/basket").await;
    if unix_secs() == stamp {
        assert_eq!(set_cookie_header(&res, "dmsession"), None);
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `idle_timeout = 2` (with `refresh_interval = 1`): the TTL is at most 2 s after a write
/// and an unused session is gone after ~2.5 s. (The login's hydration job writes at once,
/// with `hydrate_delay_ms = 0`: a job's write is a use of the session too.)
#[tokio::test]
async fn idle_timeout_ends_an_unused_session() {
    let (redis, server) = example(
        "[session]\nidle_timeout = 2\nrefresh_interval = 1\n[example]\nhydrate_delay_ms = 0\n",
    )
    .await;
    let mut jar = Jar::default();
    jar.post_json(&server, "/api/login", r#"{"user":"gil"}"#)
        .await;
    let id = jar.value.clone().unwrap();
    let key = store_key(&id);
    assert!(eventually(|| exists(&redis, &key)).await);
    let ttl = redis.ttl_ms(&key).await;
    assert!(ttl > 0 && ttl <= 2000, "ttl {ttl}");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!exists(&redis, &key).await);
    let res = jar.get(&server, "/api/me").await;
    assert_eq!(res.json(), json!({"user": null}));
    assert!(expires_cookie(&res), "{:?}", res.headers);
}
