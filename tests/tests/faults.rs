//! Redis failing under the example app: killed under load and restarted, stalled by `DEBUG
//! SLEEP`, out of connections, restarted empty, and a commit racing a logout. Requests get
//! 200 or a prompt 503, never another 5xx nor a hang, and nothing comes back from the dead.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use rondo::session::SessionId;
use rondo_tests::app::{example_config, start_example, Jar};
use rondo_tests::http::TestServer;
use rondo_tests::redis::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest a 503 may take with `[redis] timeout = 1`: a write can queue behind a
/// commit of the same session already waiting for Redis, so two timeouts, plus slack for a
/// loaded machine (the test binaries share two cores with the rest of the suite).
const FAST_503: Duration = Duration::from_millis(3000);

/// Whether Redis holds the session record of the cookie value `id`.
async fn stored(redis: &RedisServer, id: &str) -> bool {
    let key = SessionId::parse(id).unwrap().store_key("t:");
    !redis.keys(key.as_str()).await.is_empty()
}

/// One worker's tally in the load test.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    unavailable: u64,
    other: Vec<u16>,
    /// When this worker's first 200 after the restart arrived.
    first_ok_after: Option<Instant>,
    /// The last counter value a 200 acknowledged, and the cookie it belongs to.
    last: Option<(String, u64)>,
}

/// Redis killed with SIGKILL while 6 clients hammer `/bench/counter`, and restarted (empty)
/// 2.5 s later (longer than the 1 s timeout, so the outage shows): every answer is 200 or 503, service is back within 2 s of Redis, and every
/// value acknowledged after the restart is the one stored.
#[tokio::test]
async fn redis_killed_under_load_and_restarted() {
    let mut redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let restarted: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..6 {
        let (client, stop, restarted) = (shop.client(), stop.clone(), restarted.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut jar = Jar::default();
            let limit = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < limit {
                let cookie = jar.value.as_ref().map(|v| format!("dmsession={v}"));
                let headers: Vec<(&str, &str)> =
                    cookie.iter().map(|c| ("cookie", c.as_str())).collect();
                let sent = Instant::now();
                let response = client.get_with("/bench/counter", &headers).await;
                jar.update(&response);
                match response.status.as_u16() {
                    200 => {
                        tally.ok += 1;
                        let n = response.body.parse().unwrap();
                        tally.last = Some((jar.value.clone().unwrap(), n));
                        if restarted.lock().unwrap().is_some_and(|at| sent >= at) {
                            tally.first_ok_after.get_or_insert_with(Instant::now);
                        }
                    }
                    503 => {
                        tally.unavailable += 1;
                        assert!(sent.elapsed() < FAST_503, "503 took {:?}", sent.elapsed());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => tally.other.push(other),
                }
            }
            tally
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    redis.restart().await;
    let back = Instant::now();
    *restarted.lock().unwrap() = Some(back);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut unavailable = 0;
    for worker in workers {
        let tally = worker.await.unwrap();
        assert!(tally.other.is_empty(), "non-503 errors: {:?}", tally.other);
        assert!(tally.ok > 0);
        unavailable += tally.unavailable;
        let recovered = tally.first_ok_after.expect("no success after the restart");
        let recovery = recovered.saturating_duration_since(back);
        assert!(
            recovery < Duration::from_secs(2),
            "recovery took {recovery:?}"
        );
        // The last acknowledged value is the stored one (the restart lost what came before,
        // being empty; what was acknowledged after it stays).
        let (cookie, n) = tally.last.unwrap();
        let mut jar = Jar {
            value: Some(cookie),
        };
        assert_eq!(jar.get(&shop, "/bench/read").await.body, n.to_string());
    }
    assert!(unavailable > 0, "the outage was never seen");
}

/// Redis blocked by `DEBUG SLEEP 2.5`: eight session requests at once all get 503 within
/// the 1 s timeout plus slack, `/healthz` answers meanwhile, and afterwards the session's
/// data is intact.
#[tokio::test]
async fn debug_sleep_gives_503_within_the_timeout() {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    let added = jar
        .post_json(&shop, "/api/basket/items", r#"{"sku":"pear","qty":2}"#)
        .await;
    assert_eq!(added.status, StatusCode::OK);
    let cookie = format!("dmsession={}", jar.value.clone().unwrap());

    redis.debug_sleep(3.5).await;
    let slept = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (client, cookie) = (shop.client(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            let path = if i % 2 == 0 {
                "/api/basket"
            } else {
                "/bench/counter"
            };
            let started = Instant::now();
            let response = client.get_with(path, &[("cookie", &cookie)]).await;
            (response.status, started.elapsed())
        }));
    }
    assert_eq!(shop.get("/healthz").await.status, StatusCode::OK);
    for task in tasks {
        let (status, elapsed) = task.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(elapsed < FAST_503, "{elapsed:?}");
    }
    tokio::time::sleep(Duration::from_millis(3600).saturating_sub(slept.elapsed())).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let basket = loop {
        let response = jar.get(&shop, "/api/basket").await;
        assert!(
            response.status == 200 || response.status == 503,
            "{response:?}"
        );
        if response.status == 200 {
            break response;
        }
        assert!(Instant::now() < deadline, "no recovery after the sleep");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(basket.json()["total_qty"], 2);
}

/// Sends one RESP command on `stream` and reads (the start of) its answer; empty when the
/// connection was closed or reset.
async fn resp(stream: &mut TcpStream, args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for arg in args {
        out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    // A refused connection may be reset: that reads as an empty answer.
    let _ = stream.write_all(out.as_bytes()).await;
    let mut buf = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    let n = read.ok().and_then(Result::ok).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// With one pooled connection, 100 concurrent session requests all succeed (connections are
/// multiplexed, so slow requests cannot exhaust the pool); with Redis at `maxclients` so
/// that no connection can be had, session requests get 503 within the timeout, and they
/// recover once connections are free again.
#[tokio::test]
async fn exhausted_connections_give_503_not_a_hang() {
    let redis = RedisServer::start().await;
    let mut config = example_config(redis.port(), "");
    config.redis.get_mut("default").unwrap().pool_size = 1;
    let shop = start_example(config).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "1");
    let cookie = format!("dmsession={}", jar.value.clone().unwrap());
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (client, cookie) = (shop.client(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            client
                .get_with("/bench/counter", &[("cookie", &cookie)])
                .await
                .status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(jar.get(&shop, "/bench/read").await.body, "101");

    // Redis full: a holder throws the app's connection out, then holders take every slot.
    let live = redis.cmd(&["CLIENT", "LIST"]).await;
    let live = match live {
        redis::Value::BulkString(text) => String::from_utf8_lossy(&text).lines().count(),
        redis::Value::VerbatimString { text, .. } => text.lines().count(),
        other => panic!("CLIENT LIST answered {other:?}"),
    };
    // One spare slot: the inspecting connection may not be closed yet when `first` arrives.
    redis
        .cmd(&["CONFIG", "SET", "maxclients", &(live + 1).to_string()])
        .await;
    let addr = ("127.0.0.1", redis.port());
    let mut first = TcpStream::connect(addr).await.unwrap();
    let killed = resp(
        &mut first,
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    )
    .await;
    assert!(killed.starts_with(':'), "{killed}");
    let mut holders = Vec::new();
    for _ in 0..50 {
        let mut holder = TcpStream::connect(addr).await.unwrap();
        if !resp(&mut holder, &["PING"]).await.starts_with("+PONG") {
            break;
        }
        holders.push(holder);
    }
    assert!(holders.len() < 50, "Redis never refused a connection");

    for _ in 0..3 {
        let started = Instant::now();
        let response = jar.get(&shop, "/bench/counter").await;
        assert_eq!(
            response.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            response.body
        );
        assert!(started.elapsed() < FAST_503, "{:?}", started.elapsed());
    }
    assert_eq!(shop.get("/healthz").await.status, StatusCode::OK);

    drop(holders);
    assert!(resp(&mut first, &["CONFIG", "SET", "maxclients", "100"])
        .await
        .starts_with("+OK"));
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = jar.get(&shop, "/bench/counter").await;
        assert!(
            response.status == 200 || response.status == 503,
            "{response:?}"
        );
        if response.status == 200 {
            assert_eq!(response.body, "102", "no acknowledged increment lost");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Redis restarted empty under live sessions (a logged-in user with a basket, warm actors):
/// every route answers without a 5xx, as a fresh session (no user, empty basket, counter
/// from 1), and the old data is never written back to Redis.
#[tokio::test]
async fn redis_restarted_empty_gives_fresh_sessions() {
    let mut redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    assert_eq!(
        jar.post_json(&shop, "/api/login", r#"{"user":"ann"}"#)
            .await
            .status,
        200
    );
    let item = r#"{"sku":"fig","qty":3}"#;
    assert_eq!(
        jar.post_json(&shop, "/api/basket/items", item).await.status,
        200
    );
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "1");
    let old = jar.value.clone().unwrap();

    redis.restart().await;
    assert_eq!(redis.dbsize().await, 0);
    let mut stale = Jar {
        value: Some(old.clone()),
    };
    let read = stale.get(&shop, "/bench/read").await;
    assert_eq!((read.status, read.body.as_str()), (StatusCode::OK, "0"));
    let me = stale.get(&shop, "/api/me").await;
    assert_eq!(
        (me.status, me.json()["user"].clone()),
        (StatusCode::OK, serde_json::Value::Null)
    );
    let basket = stale.get(&shop, "/api/basket").await;
    assert_eq!(
        (basket.status, basket.json()["total_qty"].clone()),
        (StatusCode::OK, 0.into())
    );
    let counter = stale.get(&shop, "/bench/counter").await;
    assert_eq!(
        (counter.status, counter.body.as_str()),
        (StatusCode::OK, "1")
    );
    assert_ne!(
        stale.value.as_deref(),
        Some(old.as_str()),
        "the dead id was adopted"
    );
    let page = stale.get(&shop, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    let out = stale.post_json(&shop, "/api/logout", "{}").await;
    assert!(!out.status.is_server_error(), "{out:?}");

    // Give any write-behind commit time to land: the old record must not reappear.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stored(&redis, &old).await, "the old session came back");
    for key in redis.keys("t:session:*").await {
        let fields = redis.hgetall(&key).await;
        assert!(
            fields.iter().all(|(f, _)| f != "d:user" && f != "d:basket"),
            "{fields:?}"
        );
    }
}

/// A logout racing ten writes on the same session (updates committed before the answer and
/// write-behind changes), on one server and across two, never brings the logged-out session
/// back: its record stays deleted and its cookie gets nothing.
#[tokio::test]
async fn a_commit_racing_destroy_cannot_resurrect_the_session() {
    let redis = RedisServer::start().await;
    let a = start_example(example_config(redis.port(), "")).await;
    let b = start_example(example_config(redis.port(), "")).await;
    for round in 0..10 {
        let mut jar = Jar::default();
        assert_eq!(jar.get(&a, "/bench/counter").await.body, "1");
        let id = jar.value.clone().unwrap();
        let cookie = format!("dmsession={id}");
        let mut tasks = Vec::new();
        for i in 0..10 {
            let client = if i % 2 == 0 { a.client() } else { b.client() };
            let cookie = cookie.clone();
            tasks.push(tokio::spawn(async move {
                let headers = [
                    ("cookie", cookie.as_str()),
                    ("content-type", "application/json"),
                ];
                let response = match i % 3 {
                    0 => client.get_with("/bench/counter", &headers).await,
                    1 => {
                        let req = rondo_tests::http::request(
                            "POST",
                            "/api/basket/items",
                            &headers,
                            r#"{"sku":"kiwi","qty":1}"#.to_owned(),
                        );
                        client.send(req).await
                    }
                    _ => {
                        let req = rondo_tests::http::request(
                            "DELETE",
                            "/api/basket",
                            &headers,
                            String::new(),
                        );
                        client.send(req).await
                    }
                };
                response.status
            }));
        }
        let logout_on: &TestServer = if round % 2 == 0 { &a } else { &b };
        let mut owner = Jar {
            value: Some(id.clone()),
        };
        let out = owner.send(logout_on, "POST", "/api/logout", None, "").await;
        assert_eq!(out.status, StatusCode::OK);
        for task in tasks {
            let status = task.await.unwrap();
            assert!(!status.is_server_error(), "round {round}: {status}");
        }
        // Write-behind commits land within milliseconds; watch for 300 ms that none revives it.
        let watch = Instant::now();
        while watch.elapsed() < Duration::from_millis(300) {
            assert!(
                !stored(&redis, &id).await,
                "round {round}: the session came back"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        for server in [&a, &b] {
            let mut stale = Jar {
                value: Some(id.clone()),
            };
            let read = stale.get(server, "/bench/read").await;
            assert_eq!(read.body, "0", "round {round}: the old id still reads data");
        }
    }
}
