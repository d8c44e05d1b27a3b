//! How Rondo uses Redis, and how it behaves when Redis fails: black-box tests against a real
//! `redis-server` (one per test, on a free port) and real HTTP servers on port 0.
//!
//! Hand-made changes to Redis (corrupting a record, writing a foreign field) and every look
//! at it go through the harness' own short-lived connections, never the app's pool. Every
//! wait is bounded.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use http::StatusCode;
use rondo::session::store::RedisStore;
use rondo::{App, Config, ConfigLoader, Json, Path, Session, SessionError, SessionManager};
use rondo_tests::app::{example_config, set_cookie_value, start_example, Jar};
use rondo_tests::eventually;
use rondo_tests::http::{TestResponse, TestServer};
use rondo_tests::redis::RedisServer;

/// The longest any single wait for Redis or the app may take.
const WAIT: Duration = Duration::from_secs(5);

/// Commands that change data.
const WRITE_COMMANDS: &[&str] = &[
    "hset",
    "hmset",
    "hdel",
    "hsetnx",
    "hincrby",
    "pexpire",
    "expire",
    "pexpireat",
    "expireat",
    "del",
    "unlink",
    "set",
    "setex",
    "psetex",
    "rename",
    "restore",
    "renamenx",
    "flushall",
    "flushdb",
];

// ---------------------------------------------------------------------------------------
// Looking at Redis by hand (each call on a connection of its own, never the app's).
// ---------------------------------------------------------------------------------------

/// `HSET key field value` by hand.
async fn hset(redis: &RedisServer, key: &str, field: &str, value: &str) {
    let reply = redis.cmd(&["HSET", key, field, value]).await;
    assert!(
        matches!(reply, redis::Value::Int(_)),
        "HSET answered {reply:?}"
    );
}

/// Every field of the hash at `key`, values as raw bytes.
async fn hash_fields(redis: &RedisServer, key: &str) -> BTreeMap<String, Vec<u8>> {
    redis.hgetall(key).await.into_iter().collect()
}

/// `connected_clients` from `INFO clients` (the inspecting connection included).
async fn connected_clients(redis: &RedisServer) -> u64 {
    let info: String = redis::from_redis_value(redis.cmd(&["INFO", "clients"]).await).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("connected_clients:"))
        .expect("INFO clients reports connected_clients")
        .trim()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Waiting, apps, requests.
// ---------------------------------------------------------------------------------------

/// The single session key in Redis, once exactly one exists.
async fn only_session_key(redis: &RedisServer) -> String {
    eventually("exactly one session key", WAIT, || async {
        let keys = redis.keys("t:session:*").await;
        (keys.len() == 1).then(|| keys[0].clone())
    })
    .await
}

/// Waits (bounded) until the hash at `key` has `field`: the after-response commit landed.
async fn wait_for_field(redis: &RedisServer, key: &str, field: &str) {
    eventually(&format!("{field} in {key}"), WAIT, || async {
        hash_fields(redis, key)
            .await
            .contains_key(field)
            .then_some(())
    })
    .await;
}

/// `GET /put/{k}/{v}`: `put`s the string `v` at `k`.
async fn put_value(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<&'static str, SessionError> {
    session.put(&key, &value)?;
    Ok("ok")
}

/// `GET /get/{k}`: the string at `k`, or `null`.
async fn get_value(
    session: Session,
    Path(key): Path<String>,
) -> Result<Json<Option<String>>, SessionError> {
    Ok(Json(session.get::<String>(&key).await?))
}

/// `GET /keys`: the session's keys, sorted.
async fn session_keys(session: Session) -> Result<Json<Vec<String>>, SessionError> {
    Ok(Json(session.keys().await?))
}

/// `GET /put-then-panic/{k}`: `put`s at `k`, then panics before answering.
async fn put_then_panic(
    session: Session,
    Path(key): Path<String>,
) -> Result<&'static str, SessionError> {
    session.put(&key, "half-made")?;
    if !key.is_empty() {
        panic!("controller fails after its put");
    }
    Ok("unreachable")
}

/// `GET /untouched`: takes the session but never uses it.
async fn untouched(_session: Session) -> &'static str {
    "untouched"
}

/// The small app the tests that need `put` use.
fn routes(manager: &SessionManager, config: Config) -> App {
    App::new(config)
        .with(manager.clone())
        .get("/put/{k}/{v}", put_value)
        .get("/get/{k}", get_value)
        .get("/keys", session_keys)
        .get("/untouched", untouched)
        .get("/put-then-panic/{k}", put_then_panic)
}

/// [`routes`] with the session manager `[session] store` asks for, served on a free port.
async fn start_custom(config: Config) -> TestServer {
    let manager =
        SessionManager::from_config(&config, &rondo::redis::Redis::new(config.redis.clone()))
            .await
            .unwrap();
    TestServer::start(routes(&manager, config)).await
}

/// A config with `[redis] default[port] = port` and `store` as given (no prefix).
fn store_config(store: &str, port: u16) -> Config {
    let text = format!(
        "[http]\nport = 0\n[session]\nstore = {store}\n[redis]\ndefault[host] = 127.0.0.1\n\
         default[port] = {port}\ndefault[timeout] = 1\n"
    );
    ConfigLoader::new()
        .section("example")
        .parse_str(&text, "store.ini")
        .unwrap()
}

/// A loopback port nothing listens on (bound, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Sends `GET path` with the cookie `dmsession=value`.
async fn get_with_cookie(server: &TestServer, path: &str, value: &str) -> TestResponse {
    let cookie = format!("dmsession={value}");
    server.get_with(path, &[("cookie", &cookie)]).await
}

/// Whether `s` is `t:session:` followed by 64 lowercase hex digits.
fn is_hashed_session_key(s: &str) -> bool {
    s.strip_prefix("t:session:").is_some_and(|hash| {
        hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

// ---------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------

/// Requests that do not use their session (`/healthz`, `/bench/plain`, an untouched
/// `Session` argument) send no data command to Redis, cookie or not.
#[tokio::test]
async fn requests_that_do_not_touch_the_session_send_no_redis_command() {
    let redis = RedisServer::start().await;
    let config = example_config(redis.port(), "");
    let shop = start_example(config.clone()).await;
    let custom = start_custom(config).await;

    let mut jar = Jar::default();
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "1");
    let cookie = jar.value.clone().unwrap();
    only_session_key(&redis).await;

    redis.reset_stats().await;
    for _ in 0..20 {
        let health = shop.get("/healthz").await;
        assert_eq!(
            (health.status, health.body.as_str()),
            (StatusCode::OK, "ok")
        );
        let plain = shop.get("/bench/plain").await;
        assert_eq!((plain.status, plain.body.as_str()), (StatusCode::OK, "ok"));
        let health = get_with_cookie(&shop, "/healthz", &cookie).await;
        assert_eq!(health.status, StatusCode::OK);
        let plain = get_with_cookie(&shop, "/bench/plain", &cookie).await;
        assert_eq!(plain.status, StatusCode::OK);
        let left_alone = get_with_cookie(&custom, "/untouched", &cookie).await;
        assert_eq!(left_alone.status, StatusCode::OK);
        assert_eq!(left_alone.body, "untouched");
        assert_eq!(set_cookie_value(&left_alone, "dmsession"), None);
        let fresh = custom.get("/untouched").await;
        assert_eq!(set_cookie_value(&fresh, "dmsession"), None);
    }
    // An after-response commit, if any, would land shortly after the last response.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(redis.session_commands().await, BTreeMap::new());
}

/// Reading a session (`/bench/read`, `/api/basket`) sends no write command, and the
/// revalidation answers "unchanged" without fetching the hash again.
#[tokio::test]
async fn read_only_requests_send_no_write_command() {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "1");
    let key = only_session_key(&redis).await;
    wait_for_field(&redis, &key, "d:count").await;

    redis.reset_stats().await;
    for _ in 0..20 {
        let read = jar.get(&shop, "/bench/read").await;
        assert_eq!((read.status, read.body.as_str()), (StatusCode::OK, "1"));
        let basket = jar.get(&shop, "/api/basket").await;
        assert_eq!(basket.status, StatusCode::OK);
        assert_eq!(
            basket.json(),
            serde_json::json!({"items": [], "total_qty": 0})
        );
        assert_eq!(set_cookie_value(&basket, "dmsession"), None);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let commands = redis.session_commands().await;
    for write in WRITE_COMMANDS {
        assert_eq!(commands.get(*write), None, "{write} in {commands:?}");
    }
    // 40 revalidations, each one plain HGET of the version answering "unchanged" (the very
    // first also fetching the record with HGETALL: a new session is stored directly, so this
    // node has not held its data yet). No script runs for a read.
    let hget = commands.get("hget").copied().unwrap_or(0);
    assert!((1..=40).contains(&hget), "{commands:?}");
    assert!(
        commands.get("hgetall").copied().unwrap_or(0) <= 1,
        "{commands:?}"
    );
    let allowed = ["hget", "hgetall"];
    assert!(
        commands.keys().all(|c| allowed.contains(&c.as_str())),
        "{commands:?}"
    );
}

/// A session is one hash at `t:session:<sha256 hex>` with a TTL of at most the cookie
/// lifespan; the cookie's id appears in no key, field or value.
#[tokio::test]
async fn session_keys_are_hashed_and_expire() {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    let added = jar
        .post_json(&shop, "/api/basket/items", r#"{"sku":"apple","qty":2}"#)
        .await;
    assert_eq!(added.status, StatusCode::OK);
    let id = jar.value.clone().unwrap();
    assert_eq!(id.len(), 43);

    let key = only_session_key(&redis).await;
    assert!(is_hashed_session_key(&key), "{key}");
    let keys = redis.keys("t:session:*").await;
    assert_eq!(keys, vec![key.clone()]);

    for stored in redis.keys("*").await {
        assert!(!stored.contains(&id), "the id is in key {stored}");
        if stored.starts_with("t:jobs:") {
            // The job queue's stream (empty here: nobody logged in).
            continue;
        }
        for (field, value) in hash_fields(&redis, &stored).await {
            assert!(!field.contains(&id), "the id is in field {field}");
            let value = String::from_utf8_lossy(&value);
            assert!(!value.contains(&id), "the id is in the value of {field}");
        }
    }
    let fields = hash_fields(&redis, &key).await;
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    // A new session is stored by a plain HSET: no commit token until its first commit.
    assert_eq!(names, ["_c", "_r", "_v", "d:basket"]);
    assert_eq!(fields["_v"], b"1");

    let ttl = redis.ttl_ms(&key).await;
    assert!(ttl > 0 && ttl <= 86_400_000, "PTTL {ttl}");
    assert!(
        ttl > 86_000_000,
        "PTTL {ttl} should be close to the cookie lifespan"
    );
}

/// A commit writes only the keys that changed: a field written into the hash by hand
/// survives a later commit, next to both committed keys.
#[tokio::test]
async fn a_commit_writes_only_changed_keys() {
    let redis = RedisServer::start().await;
    let server = start_custom(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&server, "/put/a/1").await.status, StatusCode::OK);
    let key = only_session_key(&redis).await;
    wait_for_field(&redis, &key, "d:a").await;

    // MessagePack for the integer 5; `_v` is left alone.
    hset(&redis, &key, "d:zz", "\u{5}").await;
    assert_eq!(jar.get(&server, "/put/b/2").await.status, StatusCode::OK);
    wait_for_field(&redis, &key, "d:b").await;

    let fields = hash_fields(&redis, &key).await;
    assert_eq!(fields.get("d:zz").map(Vec::as_slice), Some(&b"\x05"[..]));
    assert_eq!(fields.get("d:a").map(Vec::as_slice), Some(&b"\xa11"[..]));
    assert_eq!(fields.get("d:b").map(Vec::as_slice), Some(&b"\xa12"[..]));
    assert_eq!(fields.get("_v").map(Vec::as_slice), Some(&b"2"[..]));
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(names, ["_c", "_r", "_t", "_v", "d:a", "d:b", "d:zz"]);
}

/// Two servers on one Redis share sessions without sticky sessions, and a counter
/// alternating between them counts every request exactly once.
#[tokio::test]
async fn two_servers_share_sessions() {
    let redis = RedisServer::start().await;
    let a = start_example(example_config(redis.port(), "")).await;
    let b = start_example(example_config(redis.port(), "")).await;

    let mut jar = Jar::default();
    let added = jar
        .post_json(&a, "/api/basket/items", r#"{"sku":"apple","qty":2}"#)
        .await;
    assert_eq!(added.status, StatusCode::OK);
    let id = jar.value.clone().unwrap();
    let seen = jar.get(&b, "/api/basket").await;
    assert_eq!(
        seen.json(),
        serde_json::json!({"items": [{"sku": "apple", "qty": 2}], "total_qty": 2})
    );
    let added = jar
        .post_json(&b, "/api/basket/items", r#"{"sku":"pear","qty":3}"#)
        .await;
    assert_eq!(added.status, StatusCode::OK);
    let seen = jar.get(&a, "/api/basket").await;
    assert_eq!(
        seen.json(),
        serde_json::json!({
            "items": [{"sku": "apple", "qty": 2}, {"sku": "pear", "qty": 3}],
            "total_qty": 5
        })
    );
    assert_eq!(
        jar.value.as_deref(),
        Some(id.as_str()),
        "the id never changed"
    );

    let mut counter = Jar::default();
    for i in 1..=20u64 {
        let server = if i % 2 == 1 { &a } else { &b };
        let response = counter.get(server, "/bench/counter").await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.body, i.to_string());
    }
    assert_eq!(counter.get(&a, "/bench/read").await.body, "20");
    assert_eq!(counter.get(&b, "/bench/read").await.body, "20");
}

/// Concurrent `put`s of different keys on one session from two servers all survive
/// (`persist = before_response`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_from_two_servers_all_survive() {
    let redis = RedisServer::start().await;
    let config = example_config(redis.port(), "[session]\npersist = before_response\n");
    let a = start_custom(config.clone()).await;
    let b = start_custom(config).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&a, "/put/init/0").await.status, StatusCode::OK);
    let cookie = format!("dmsession={}", jar.value.clone().unwrap());

    let mut tasks = Vec::new();
    for i in 0..20 {
        for (server, name) in [(&a, "a"), (&b, "b")] {
            let client = server.client();
            let cookie = cookie.clone();
            tasks.push(tokio::spawn(async move {
                let path = format!("/put/{name}{i}/v{i}");
                client.get_with(&path, &[("cookie", &cookie)]).await
            }));
        }
    }
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert_eq!(set_cookie_value(&response, "dmsession"), None);
    }

    let mut expected: Vec<String> = (0..20)
        .flat_map(|i| [format!("a{i}"), format!("b{i}")])
        .collect();
    expected.push("init".to_owned());
    expected.sort();
    for server in [&a, &b] {
        let keys = jar.get(server, "/keys").await.json();
        assert_eq!(keys, serde_json::json!(expected));
    }
    assert_eq!(jar.get(&b, "/get/a7").await.json(), serde_json::json!("v7"));
    assert_eq!(
        jar.get(&a, "/get/b19").await.json(),
        serde_json::json!("v19")
    );
    let key = only_session_key(&redis).await;
    let fields = hash_fields(&redis, &key).await;
    assert_eq!(fields.keys().filter(|f| f.starts_with("d:")).count(), 41);
}

/// `update` is exact across two servers: 100 concurrent counter increments split between
/// them end at exactly 100, each request seeing a distinct value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_on_two_servers_are_exact() {
    let redis = RedisServer::start().await;
    let a = start_example(example_config(redis.port(), "")).await;
    let b = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    let created = jar
        .post_json(&a, "/api/basket/items", r#"{"sku":"apple","qty":1}"#)
        .await;
    assert_eq!(created.status, StatusCode::OK);
    let cookie = format!("dmsession={}", jar.value.clone().unwrap());

    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = if i % 2 == 0 { a.client() } else { b.client() };
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move {
            client
                .get_with("/bench/counter", &[("cookie", &cookie)])
                .await
        }));
    }
    let mut values = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        values.push(response.body.parse::<u64>().unwrap());
    }
    values.sort_unstable();
    assert_eq!(values, (1..=100).collect::<Vec<u64>>());
    assert_eq!(jar.get(&a, "/bench/read").await.body, "100");
    assert_eq!(jar.get(&b, "/bench/read").await.body, "100");
    assert_eq!(jar.get(&b, "/api/basket").await.json()["total_qty"], 1);
}

/// With Redis killed, session routes answer 503 (JSON, `Retry-After`) within 3 s while
/// `/healthz` stays up; once Redis is back, sessions work again and the old cookie, now
/// unknown, gets a fresh session.
#[tokio::test]
async fn redis_killed_gives_fast_503_then_recovers() {
    let mut redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let mut old = Jar::default();
    assert_eq!(old.get(&shop, "/bench/counter").await.body, "1");
    let old_id = old.value.clone().unwrap();

    redis.kill();
    let health = shop.get("/healthz").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok")
    );
    let started = Instant::now();
    let basket = old.get(&shop, "/api/basket").await;
    let elapsed = started.elapsed();
    assert_eq!(basket.status, 503, "{}", basket.body);
    assert!(elapsed < Duration::from_secs(3), "503 took {elapsed:?}");
    assert!(basket.content_type().starts_with("application/json"));
    assert_eq!(basket.json()["status"], 503);
    assert!(basket.json()["error"].is_string());
    assert_eq!(basket.header("retry-after"), Some("1"));

    // Many session requests at once during the outage: every one a 503 within 3 s.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let client = shop.client();
        let cookie = format!("dmsession={old_id}");
        tasks.push(tokio::spawn(async move {
            let (path, with_cookie) = match i % 4 {
                0 => ("/api/basket", true),
                1 => ("/bench/counter", true),
                2 => ("/bench/counter", false),
                _ => ("/readyz", false),
            };
            let headers: &[(&str, &str)] = if with_cookie {
                &[("cookie", &cookie)]
            } else {
                &[]
            };
            let started = Instant::now();
            let response = client.get_with(path, headers).await;
            (path, response.status, started.elapsed())
        }));
    }
    for task in tasks {
        let (path, status, elapsed) = task.await.unwrap();
        assert_eq!(status, 503, "{path}");
        assert!(elapsed < Duration::from_secs(3), "{path} took {elapsed:?}");
    }
    assert_eq!(shop.get("/bench/plain").await.status, StatusCode::OK);
    assert_eq!(old.value.as_deref(), Some(old_id.as_str()), "cookie kept");

    redis.restart().await;
    let deadline = Instant::now() + WAIT;
    let mut ready = false;
    for _ in 0..50 {
        let response = shop.get("/readyz").await;
        assert!(
            response.status == 200 || response.status == 503,
            "{response:?}"
        );
        if response.status == StatusCode::OK {
            ready = true;
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz never became 200 after the restart");

    let mut new = Jar::default();
    let first = new.get(&shop, "/bench/counter").await;
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "1"));
    assert_eq!(new.get(&shop, "/bench/counter").await.body, "2");
    assert_eq!(new.get(&shop, "/bench/read").await.body, "2");

    let revived = old.get(&shop, "/bench/counter").await;
    assert_eq!(
        (revived.status, revived.body.as_str()),
        (StatusCode::OK, "1")
    );
    let new_id = old.value.clone().unwrap();
    assert_ne!(new_id, old_id, "the unknown id must not be adopted");
    assert_eq!(old.get(&shop, "/bench/read").await.body, "1");
}

/// A stalled Redis (`CLIENT PAUSE`) gives 503 within ~2.5 s instead of a hang; after the
/// pause the same session works again, its data intact.
#[tokio::test]
async fn stalled_redis_gives_503_not_a_hang() {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    let added = jar
        .post_json(&shop, "/api/basket/items", r#"{"sku":"apple","qty":4}"#)
        .await;
    assert_eq!(added.status, StatusCode::OK);

    redis.pause(3000).await;
    let paused_at = Instant::now();
    let started = Instant::now();
    let stalled = jar.get(&shop, "/api/basket").await;
    let elapsed = started.elapsed();
    assert_eq!(
        stalled.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        stalled.body
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "503 took {elapsed:?}"
    );
    assert_eq!(stalled.header("retry-after"), Some("1"));
    assert_eq!(shop.get("/healthz").await.status, StatusCode::OK);

    let remaining = Duration::from_secs(3).saturating_sub(paused_at.elapsed());
    tokio::time::sleep(remaining).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let basket = loop {
        let response = jar.get(&shop, "/api/basket").await;
        assert!(
            response.status == StatusCode::OK || response.status == 503,
            "{} {}",
            response.status,
            response.body
        );
        if response.status == StatusCode::OK {
            break response;
        }
        assert!(Instant::now() < deadline, "no success after the pause");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        basket.json(),
        serde_json::json!({"items": [{"sku": "apple", "qty": 4}], "total_qty": 4})
    );
    let counter = jar.get(&shop, "/bench/counter").await;
    assert_eq!(
        (counter.status, counter.body.as_str()),
        (StatusCode::OK, "1")
    );
}

/// `store = redis` without Redis fails to build with an error naming the address;
/// `store = auto` falls back to memory and serves; `store = memory` needs no Redis.
#[tokio::test]
async fn store_selection_with_and_without_redis() {
    let port = free_port();
    let started = Instant::now();
    let built = tokio::time::timeout(
        Duration::from_secs(10),
        example_app::build(store_config("redis", port)),
    )
    .await
    .expect("building should fail fast, not hang");
    let err = match built {
        Ok(_) => panic!("store = redis must not start without Redis"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    for store in ["auto", "memory"] {
        let app = example_app::build(store_config(store, port)).await.unwrap();
        let server = TestServer::start(app).await;
        let mut jar = Jar::default();
        assert_eq!(
            jar.get(&server, "/bench/counter").await.body,
            "1",
            "{store}"
        );
        assert_eq!(
            jar.get(&server, "/bench/counter").await.body,
            "2",
            "{store}"
        );
        assert_eq!(jar.get(&server, "/bench/read").await.body, "2", "{store}");
        let ready = server.get("/readyz").await;
        assert_eq!(
            (ready.status, ready.body.as_str()),
            (StatusCode::OK, "ready")
        );
    }
}

/// A record Rondo cannot decode (`_v` not a number, or a foreign field) is replaced by a
/// fresh session with a new id: 200, never 500.
#[tokio::test]
async fn corrupt_record_gives_a_fresh_session() {
    let redis = RedisServer::start().await;
    let port = redis.port();
    let shop = start_example(example_config(port, "")).await;

    // `_v` overwritten with text.
    let mut jar = Jar::default();
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "1");
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "2");
    let old_id = jar.value.clone().unwrap();
    let old_key = only_session_key(&redis).await;
    hset(&redis, &old_key, "_v", "abc").await;
    let fresh = jar.get(&shop, "/bench/counter").await;
    assert_eq!((fresh.status, fresh.body.as_str()), (StatusCode::OK, "1"));
    let new_id = jar.value.clone().unwrap();
    assert_ne!(new_id, old_id);
    let new_key = only_session_key(&redis).await;
    assert_ne!(new_key, old_key, "the corrupt record is deleted");

    // A field Rondo never writes, with `_v` bumped so the server reloads the record.
    let added = jar
        .post_json(&shop, "/api/basket/items", r#"{"sku":"apple","qty":2}"#)
        .await;
    assert_eq!(added.status, StatusCode::OK);
    hset(&redis, &new_key, "junk", "x").await;
    hset(&redis, &new_key, "_v", "99").await;
    let fresh = jar
        .post_json(&shop, "/api/basket/items", r#"{"sku":"pear","qty":1}"#)
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(
        fresh.json(),
        serde_json::json!({"items": [{"sku": "pear", "qty": 1}], "total_qty": 1})
    );
    assert_ne!(jar.value.as_deref(), Some(new_id.as_str()));
    assert_eq!(jar.get(&shop, "/bench/read").await.body, "0");
    let last_key = only_session_key(&redis).await;
    assert_ne!(last_key, new_key);
}

/// The pool is lazy: requests that do not touch a session open no Redis connection; the
/// first session request does. (One worker thread, so that one pool of the worker's serves
/// every request and the counts are exact.)
#[tokio::test]
async fn connections_open_only_when_a_session_is_touched() {
    let redis = RedisServer::start().await;
    let port = redis.port();
    let config = example_config(port, "[http]\nworkers = 1");

    // A manager on a lazily built pool, without the start-up ping `from_config` makes.
    let pool = rondo::redis::RedisPool::new(config.session_pool().unwrap())
        .await
        .unwrap();
    let manager = SessionManager::new(RedisStore::new(pool), &config, "t:");
    let app = routes(&manager, config.clone()).get("/plain", || async { "plain" });
    let server = TestServer::start(app).await;
    let baseline = connected_clients(&redis).await;
    let mut jar = Jar::default();
    for _ in 0..20 {
        assert_eq!(server.get("/plain").await.status, StatusCode::OK);
        assert_eq!(jar.get(&server, "/untouched").await.status, StatusCode::OK);
    }
    assert_eq!(connected_clients(&redis).await, baseline);
    assert_eq!(jar.get(&server, "/put/k/v").await.status, StatusCode::OK);
    assert_eq!(
        jar.get(&server, "/get/k").await.json(),
        serde_json::json!("v")
    );
    assert_eq!(connected_clients(&redis).await, baseline + 1);

    // The example app pings Redis once at start-up on the pool its job queue shares, and
    // the queue's blocking reader has a connection of its own; plain requests add nothing.
    let shop = start_example(config).await;
    let started = Instant::now();
    let mut before = connected_clients(&redis).await;
    while before < baseline + 3 && started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        before = connected_clients(&redis).await;
    }
    assert_eq!(before, baseline + 3);
    for _ in 0..20 {
        assert_eq!(shop.get("/bench/plain").await.status, StatusCode::OK);
        assert_eq!(shop.get("/healthz").await.status, StatusCode::OK);
    }
    assert_eq!(connected_clients(&redis).await, before);
}

/// A healthy Redis that closed the pool's idle connection (restart between requests,
/// `CLIENT KILL`, or its own idle `timeout`) costs no request a 503.
#[tokio::test]
async fn closed_idle_connection_costs_no_request() {
    let mut redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&shop, "/bench/counter").await.body, "1");

    // Redis closes every client connection but the one asking.
    redis
        .cmd(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
        .await;
    let after_kill = jar.get(&shop, "/bench/counter").await;
    assert_eq!(
        (after_kill.status, after_kill.body.as_str()),
        (StatusCode::OK, "2")
    );

    // A restart with no request during the short outage: Redis is up (and empty) again.
    redis.restart().await;
    let mut fresh = Jar::default();
    let after_restart = fresh.get(&shop, "/bench/counter").await;
    assert_eq!(
        (after_restart.status, after_restart.body.as_str()),
        (StatusCode::OK, "1")
    );
    assert_eq!(shop.get("/readyz").await.status, StatusCode::OK);
}

/// Graceful shutdown right after a burst of acknowledged writes (`persist = after_response`,
/// so every commit follows its response) loses none of them: the server waits for the
/// session actors' last commits before it returns.
#[tokio::test]
async fn shutdown_right_after_a_burst_loses_no_acknowledged_write() {
    let redis = RedisServer::start().await;
    let server = start_custom(store_config("redis", redis.port())).await;
    let mut jar = Jar::default();
    assert_eq!(
        jar.get(&server, "/put/first/0").await.status,
        StatusCode::OK
    );
    let cookie = format!("dmsession={}", jar.value.clone().unwrap());
    // Writes stall in Redis for a moment: the responses go out, the commits wait.
    redis.cmd(&["CLIENT", "PAUSE", "400", "WRITE"]).await;
    let mut burst = Vec::new();
    for i in 0..60 {
        let client = server.client();
        let cookie = cookie.clone();
        burst.push(tokio::spawn(async move {
            let path = format!("/put/k{i}/v{i}");
            client
                .get_with(&path, &[("cookie", cookie.as_str())])
                .await
                .status
        }));
    }
    for request in burst {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    // Every write above was acknowledged; stop at once.
    server.shutdown().await.unwrap();
    let keys = redis.keys("session:*").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let fields: Vec<String> = redis
        .hgetall(&keys[0])
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for i in 0..60 {
        assert!(fields.contains(&format!("d:k{i}")), "k{i} lost: {fields:?}");
    }
}

/// A controller that panics after a `put` answers 500 and its change is not persisted: the
/// session keeps exactly what it had.
#[tokio::test]
async fn a_failed_controller_persists_nothing() {
    let redis = RedisServer::start().await;
    let server = start_custom(store_config("redis", redis.port())).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&server, "/put/kept/1").await.status, StatusCode::OK);
    let failed = jar.get(&server, "/put-then-panic/lost").await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(jar.get(&server, "/get/lost").await.body, "null");
    assert_eq!(jar.get(&server, "/get/kept").await.body, "\"1\"");
    let keys = redis.keys("session:*").await;
    let fields: Vec<String> = redis
        .hgetall(&keys[0])
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(!fields.contains(&"d:lost".to_owned()), "{fields:?}");
}

/// An `update` on a session that another server has just logged out continues in a fresh
/// session (new id, counter from 1): it neither fails nor brings the old session back.
#[tokio::test]
async fn update_after_logout_elsewhere_starts_fresh() {
    let redis = RedisServer::start().await;
    let a = start_example(example_config(redis.port(), "")).await;
    let b = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&a, "/bench/counter").await.body, "1");
    assert_eq!(jar.get(&a, "/bench/counter").await.body, "2"); // A's actor is warm now
    let old = jar.value.clone().unwrap();
    let mut other = Jar {
        value: Some(old.clone()),
    };
    let out = other.send(&b, "POST", "/api/logout", None, "").await;
    assert_eq!(out.status, StatusCode::OK);
    let next = jar.get(&a, "/bench/counter").await;
    assert_eq!((next.status, next.body.as_str()), (StatusCode::OK, "1"));
    let new = jar.value.clone().unwrap();
    assert_ne!(new, old);
    // Only the new session is stored; the logged-out one stays gone.
    assert_eq!(redis.keys("t:session:*").await.len(), 1);
    let mut stale = Jar { value: Some(old) };
    assert_eq!(stale.get(&b, "/bench/read").await.body, "0");
}
