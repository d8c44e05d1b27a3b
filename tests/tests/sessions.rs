//! Black-box tests of the session manager: a real `redis-server`, real HTTP, the example app
//! and small custom apps that use the `Session` API directly.
//!
//! Every test starts its own Redis and server; every wait is bounded.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use example_app::api::Item;
use http::StatusCode;
use rondo::session::SessionId;
use rondo::{App, Config, Json, Path, Session, SessionError, SessionManager, State};
use rondo_tests::app::{example_config, set_cookie_header, set_cookie_value, start_example, Jar};
use rondo_tests::http::{request, TestResponse, TestServer};
use rondo_tests::redis::RedisServer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How long a check of the store waits for an after-response commit.
const COMMIT_WAIT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Starts a fresh redis-server for one test.
async fn redis() -> RedisServer {
    RedisServer::start().await
}

/// The Redis key of the session whose cookie value is `cookie` (config prefix `t:`).
fn store_key(cookie: &str) -> String {
    SessionId::parse(cookie)
        .unwrap()
        .store_key("t:")
        .as_str()
        .to_owned()
}

/// Polls `check` every 20 ms until it returns `true`, at most `COMMIT_WAIT`; says whether it
/// did.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + COMMIT_WAIT;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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

/// The session hash at `key`, field names to raw bytes (empty when the key is absent).
async fn hash(redis: &RedisServer, key: &str) -> HashMap<String, Vec<u8>> {
    redis.hgetall(key).await.into_iter().collect()
}

/// Whether Redis holds `key`.
async fn exists(redis: &RedisServer, key: &str) -> bool {
    !redis.keys(key).await.is_empty()
}

/// A request with the session cookie `dmsession=cookie`.
async fn send_with_cookie(
    server: &TestServer,
    method: &str,
    path: &str,
    cookie: &str,
    json_body: Option<&str>,
) -> TestResponse {
    let cookie = format!("dmsession={cookie}");
    let mut headers = vec![("cookie", cookie.as_str())];
    if json_body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    server
        .send(request(
            method,
            path,
            &headers,
            json_body.unwrap_or("").to_owned(),
        ))
        .await
}

/// The attributes of a `Set-Cookie` header after the name=value pair.
fn attributes(header: &str) -> Vec<String> {
    header
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_owned())
        .collect()
}

/// Whether `value` has the shape of a session id: 43 URL-safe base64 characters.
fn is_session_id(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether the response expires the session cookie (`dmsession=; ... Max-Age=0`).
fn expires_cookie(response: &TestResponse) -> bool {
    set_cookie_value(response, "dmsession").as_deref() == Some("")
        && set_cookie_header(response, "dmsession").is_some_and(|h| h.contains("Max-Age=0"))
}

/// The CSRF token of the form posting to `action` in a page of the HTML shop.
fn csrf_token(page: &str, action: &str) -> String {
    let form = page
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form for {action} in {page}"));
    let rest = &page[form..];
    let marker = "name=\"_csrf\" value=\"";
    let start = rest.find(marker).unwrap() + marker.len();
    let len = rest[start..].find('"').unwrap();
    rest[start..start + len].to_owned()
}

/// The example app on a fresh Redis, with `extra` INI lines.
async fn example(extra: &str) -> (RedisServer, TestServer) {
    let redis = redis().await;
    let server = start_example(example_config(redis.port(), extra)).await;
    (redis, server)
}

/// `GET /api/basket` as JSON.
async fn basket(jar: &mut Jar, server: &TestServer) -> Value {
    let res = jar.get(server, "/api/basket").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.json()
}

// ---------------------------------------------------------------------------------------
// A custom app on the Session API
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    age: u32,
    tags: Vec<String>,
}

fn profile() -> Profile {
    Profile {
        name: "Ann".into(),
        age: 37,
        tags: vec!["admin".into(), "beta".into()],
    }
}

/// Writes four typed values; says whether the session had an id before and after the puts.
async fn typed_write(session: Session) -> Result<Json<Value>, SessionError> {
    let before = session.id().map(|id| id.as_str().to_owned());
    session.put("profile", &profile())?;
    session.put("list", &vec![3u32, 1, 2])?;
    session.put("name", "zoë")?;
    session.put("number", &-12_345_i64)?;
    let after = session.id().map(|id| id.as_str().to_owned());
    Ok(Json(json!({ "before": before, "after": after })))
}

/// Reads the four typed values back (and the id once the session is open).
async fn typed_read(session: Session) -> Result<Json<Value>, SessionError> {
    let profile: Option<Profile> = session.get("profile").await?;
    let list: Option<Vec<u32>> = session.get("list").await?;
    let name: Option<String> = session.get("name").await?;
    let number: Option<i64> = session.get("number").await?;
    let missing: Option<String> = session.get("missing").await?;
    let id = session.id().map(|id| id.as_str().to_owned());
    Ok(Json(json!({
        "profile": profile.map(|p| (p == self::profile(), p.name, p.age, p.tags)),
        "list": list,
        "name": name,
        "number": number,
        "missing": missing,
        "id": id,
    })))
}

async fn contains(session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    Ok(session.contains(&key).await?.to_string())
}

/// Removes `key`; answers whether it is still there for this request.
async fn remove(session: Session, Path(key): Path<String>) -> Result<String, SessionError> {
    session.remove(&key)?;
    Ok(session.contains(&key).await?.to_string())
}

/// Reads `n`, then puts the given number under it.
async fn put_n(session: Session, Path(n): Path<u32>) -> Result<&'static str, SessionError> {
    session.get::<u32>("n").await?;
    session.put("n", &n)?;
    Ok("ok")
}

async fn get_n(session: Session) -> Result<String, SessionError> {
    Ok(format!("{:?}", session.get::<u32>("n").await?))
}

/// The name of the worker thread that serves the request.
async fn lane() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

/// Blocks its worker thread for 300 ms (as a controller must not).
async fn stall() -> &'static str {
    std::thread::sleep(Duration::from_millis(300));
    "stalled"
}

async fn keys(session: Session) -> Result<Json<Vec<String>>, SessionError> {
    Ok(Json(session.keys().await?))
}

/// Adds framework-owned keys (a flash value and a CSRF token) next to a user key.
async fn framework_keys(session: Session) -> Result<&'static str, SessionError> {
    session.flash("notice", "hi")?;
    session.csrf_token("/form").await?;
    session.put("alpha", &1u8)?;
    Ok("ok")
}

/// Clears the session; answers the keys this request sees afterwards.
async fn clear(session: Session) -> Result<Json<Vec<String>>, SessionError> {
    session.clear();
    Ok(Json(session.keys().await?))
}

/// Reads a string value as a number: a decode error.
async fn wrong_type(session: Session) -> Result<String, SessionError> {
    Ok(format!("{:?}", session.get::<u64>("name").await?))
}

async fn reserved_put(session: Session) -> Result<&'static str, SessionError> {
    session.put("_x", &1u8)?;
    Ok("stored")
}

async fn reserved_get(session: Session) -> Result<String, SessionError> {
    Ok(format!("{:?}", session.get::<u8>("_x").await?))
}

/// The explicit Resonance pattern: start, modify, persist before answering.
async fn explicit(
    State(manager): State<SessionManager>,
    mut req: rondo::Request,
) -> Result<&'static str, SessionError> {
    let session = manager.start(&mut req);
    session.put("explicit", "persisted by hand")?;
    manager.persist_session(&req).await?;
    Ok("persisted")
}

/// A manager on the test Redis and an app with the typed routes, the explicit route and the
/// example shop's JSON API.
async fn custom_app(redis: &RedisServer, extra: &str) -> (SessionManager, TestServer) {
    let config: Config = example_config(redis.port(), extra);
    let app = App::new(config);
    let manager = SessionManager::from_config(app.config(), app.redis())
        .await
        .unwrap();
    let app = app
        .with(manager.clone())
        .get("/typed/write", typed_write)
        .get("/typed/read", typed_read)
        .get("/contains/{key}", contains)
        .get("/remove/{key}", remove)
        .get("/keys", keys)
        .get("/put-n/{n}", put_n)
        .get("/get-n", get_n)
        .get("/lane", lane)
        .get("/stall", stall)
        .get("/framework-keys", framework_keys)
        .get("/clear", clear)
        .get("/wrong-type", wrong_type)
        .get("/reserved-put", reserved_put)
        .get("/reserved-get", reserved_get)
        .post("/explicit", explicit)
        .get("/api/basket", example_app::api::basket)
        .post("/api/basket/items", example_app::api::add_item)
        .post("/api/logout", example_app::api::log_out)
        .get("/api/me", example_app::api::me);
    (manager, TestServer::start(app).await)
}

// ---------------------------------------------------------------------------------------
// 1. Typed API
// ---------------------------------------------------------------------------------------

/// `put` then `get::<T>` round-trips a struct, a vec, a string and a number across requests;
/// the id is `None` before the first write and the cookie's id once the session is open.
#[tokio::test]
async fn typed_values_round_trip_across_requests() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "").await;
    let mut jar = Jar::default();

    let res = jar.get(&server, "/typed/write").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json()["before"], Value::Null);
    let cookie = jar.value.clone().expect("the first write sets the cookie");
    assert!(is_session_id(&cookie), "{cookie}");

    let res = jar.get(&server, "/typed/read").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        res.json(),
        json!({
            "profile": [true, "Ann", 37, ["admin", "beta"]],
            "list": [3, 1, 2],
            "name": "zoë",
            "number": -12345,
            "missing": null,
            "id": cookie,
        })
    );
    assert_eq!(set_cookie_header(&res, "dmsession"), None);
}

/// `Session::id()` is `Some` right after the first `put` of a new session, as its doc says
/// ("a new session gets one on its first write").
#[tokio::test]
async fn id_is_known_right_after_the_first_put() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "").await;
    let mut jar = Jar::default();
    let res = jar.get(&server, "/typed/write").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let cookie = jar.value.clone().unwrap();
    assert_eq!(res.json()["after"], json!(cookie));
}

/// `contains`, `remove`, `keys` (sorted, without the framework's `_` keys) and `clear`.
#[tokio::test]
async fn contains_remove_keys_clear() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "").await;
    let mut jar = Jar::default();
    assert_eq!(
        jar.get(&server, "/typed/write").await.status,
        StatusCode::OK
    );
    assert_eq!(
        jar.get(&server, "/framework-keys").await.status,
        StatusCode::OK
    );
    // The framework's keys exist in the store (until the next request ages the flash);
    // `keys` hides them.
    let key = store_key(jar.value.as_deref().unwrap());
    assert!(
        eventually(|| async {
            let fields = hash(&redis, &key).await;
            fields.contains_key("d:_flash:notice") && fields.contains_key("d:_csrf:/form")
        })
        .await,
        "{:?}",
        hash(&redis, &key).await.keys().collect::<Vec<_>>()
    );

    assert_eq!(jar.get(&server, "/contains/name").await.body, "true");
    assert_eq!(jar.get(&server, "/contains/nothing").await.body, "false");

    let res = jar.get(&server, "/keys").await;
    assert_eq!(
        res.json(),
        json!(["alpha", "list", "name", "number", "profile"])
    );

    assert_eq!(jar.get(&server, "/remove/name").await.body, "false");
    assert_eq!(jar.get(&server, "/contains/name").await.body, "false");
    assert_eq!(
        jar.get(&server, "/keys").await.json(),
        json!(["alpha", "list", "number", "profile"])
    );
    assert!(
        eventually(|| async { !hash(&redis, &key).await.contains_key("d:name") }).await,
        "the removal reaches Redis"
    );

    let res = jar.get(&server, "/clear").await;
    assert_eq!(res.json(), json!([]));
    assert_eq!(jar.get(&server, "/keys").await.json(), json!([]));
    assert_eq!(jar.get(&server, "/contains/profile").await.body, "false");
    let read = jar.get(&server, "/typed/read").await.json();
    assert_eq!(read["profile"], Value::Null);
    assert_eq!(read["number"], Value::Null);
    // The session and its id stay.
    assert_eq!(read["id"], json!(jar.value.clone().unwrap()));
    assert!(
        eventually(|| async {
            let fields = hash(&redis, &key).await;
            fields.contains_key("_v") && !fields.keys().any(|f| f.starts_with("d:"))
        })
        .await,
        "{:?}",
        hash(&redis, &key).await.keys().collect::<Vec<_>>()
    );
}

/// `get` of the wrong type answers 500, and so does a reserved `_` key in `put` or `get`;
/// the internal detail is not shown to the client.
#[tokio::test]
async fn wrong_type_and_reserved_keys_are_500() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "").await;
    let mut jar = Jar::default();
    assert_eq!(
        jar.get(&server, "/typed/write").await.status,
        StatusCode::OK
    );

    let res = jar.get(&server, "/wrong-type").await;
    assert_eq!(
        res.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        res.body
    );
    assert_eq!(res.json()["error"], "internal server error");

    for path in ["/reserved-put", "/reserved-get"] {
        let res = jar.get(&server, path).await;
        assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(!res.body.contains("stored"), "{path}: {}", res.body);
    }
    // Nothing was stored under the reserved name.
    let key = store_key(jar.value.as_deref().unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!hash(&redis, &key).await.contains_key("d:_x"));
    // And the session is still fine.
    assert_eq!(jar.get(&server, "/typed/read").await.json()["name"], "zoë");
}

// ---------------------------------------------------------------------------------------
// 2. MessagePack
// ---------------------------------------------------------------------------------------

/// Each value is a `d:<key>` field of the session hash holding MessagePack: a map for a
/// struct (named fields), an array for a vec, a str for a string, an int for a number.
#[tokio::test]
async fn values_are_stored_as_messagepack_fields() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "[session]\npersist = before_response\n").await;
    let mut jar = Jar::default();
    assert_eq!(
        jar.get(&server, "/typed/write").await.status,
        StatusCode::OK
    );
    let key = store_key(jar.value.as_deref().unwrap());
    let fields = hash(&redis, &key).await;

    let profile_bytes = &fields["d:profile"];
    assert_eq!(profile_bytes[0], 0x83, "fixmap of 3 entries");
    assert_eq!(
        rmp_serde::from_slice::<Profile>(profile_bytes).unwrap(),
        profile()
    );
    let as_map: HashMap<String, Value> = rmp_serde::from_slice(profile_bytes).unwrap();
    assert_eq!(as_map["name"], "Ann", "named fields");

    let list = &fields["d:list"];
    assert_eq!(list[0], 0x93, "fixarray of 3");
    assert_eq!(rmp_serde::from_slice::<Vec<u32>>(list).unwrap(), [3, 1, 2]);

    let name = &fields["d:name"];
    assert_eq!(
        name[0],
        0xa0 | 4,
        "fixstr of 4 bytes (zoë is 4 bytes of UTF-8)"
    );
    assert_eq!(rmp_serde::from_slice::<String>(name).unwrap(), "zoë");

    let number = &fields["d:number"];
    assert_eq!(number[0], 0xd1, "int 16");
    assert_eq!(rmp_serde::from_slice::<i64>(number).unwrap(), -12345);

    // Bookkeeping fields are plain numbers.
    assert_eq!(fields["_v"], b"1");
    let created: u64 = std::str::from_utf8(&fields["_c"]).unwrap().parse().unwrap();
    assert!(created > 1_600_000_000, "{created}");
}

// ---------------------------------------------------------------------------------------
// 3. Cookie attributes
// ---------------------------------------------------------------------------------------

/// The first write sets `dmsession=<43 chars>; HttpOnly; SameSite=Lax; Path=/;
/// Max-Age=86400` without `Secure` on an http URL, with `Cache-Control: no-store`; a
/// read-only request on the session and a request that never touches it set no cookie.
#[tokio::test]
async fn cookie_attributes_and_when_it_is_set() {
    let (_redis, server) = example("").await;
    let mut jar = Jar::default();
    let res = jar
        .post_json(&server, "/api/basket/items", r#"{"sku":"A-1","qty":1}"#)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let header = set_cookie_header(&res, "dmsession").expect("the first write sets the cookie");
    let value = set_cookie_value(&res, "dmsession").unwrap();
    assert!(is_session_id(&value), "{header}");
    let mut attrs = attributes(&header);
    attrs.sort();
    assert_eq!(
        attrs,
        ["HttpOnly", "Max-Age=86400", "Path=/", "SameSite=Lax"],
        "{header}"
    );
    assert_eq!(res.header("cache-control"), Some("no-store"));

    // Read-only on an existing session: no cookie.
    let res = jar.get(&server, "/api/basket").await;
    assert_eq!(res.json()["total_qty"], 1);
    assert!(res.headers.get("set-cookie").is_none(), "{:?}", res.headers);
    // Never touching the session: no cookie, no no-store.
    let res = jar.get(&server, "/bench/plain").await;
    assert_eq!(res.body, "ok");
    assert!(res.headers.get("set-cookie").is_none(), "{:?}", res.headers);
    assert_ne!(res.header("cache-control"), Some("no-store"));
    // A read-only request without a cookie creates nothing.
    let res = server.get("/api/me").await;
    assert_eq!(res.json(), json!({"user": null}));
    assert!(res.headers.get("set-cookie").is_none(), "{:?}", res.headers);
}

/// `[app] url = https://...` adds `Secure`; `cookie_samesite = strict` gives
/// `SameSite=Strict`.
#[tokio::test]
async fn cookie_secure_on_https_and_samesite_strict() {
    let redis = redis().await;
    let config = example_config(
        redis.port(),
        "[app]\nurl = https://shop.example\n[session]\ncookie_samesite = strict\n",
    );
    let server = start_example(config).await;
    let res = server
        .post_json("/api/basket/items", r#"{"sku":"A-1","qty":1}"#)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let header = set_cookie_header(&res, "dmsession").unwrap();
    let mut attrs = attributes(&header);
    attrs.sort();
    assert_eq!(
        attrs,
        [
            "HttpOnly",
            "Max-Age=86400",
            "Path=/",
            "SameSite=Strict",
            "Secure"
        ],
        "{header}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Strict ids
// ---------------------------------------------------------------------------------------

/// A well-formed but invented id is never adopted: reads see no user and the cookie is
/// expired, a write gets a new id, and no record is ever created under the invented id.
#[tokio::test]
async fn invented_ids_are_not_adopted() {
    let (redis, server) = example("").await;
    let invented = "Inv3nted_session-id_of_the_right_shape_0123";
    assert!(is_session_id(invented));
    let invented_key = store_key(invented);

    let res = send_with_cookie(&server, "GET", "/api/me", invented, None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"user": null}));
    assert!(expires_cookie(&res), "{:?}", res.headers);

    let res = send_with_cookie(
        &server,
        "POST",
        "/api/basket/items",
        invented,
        Some(r#"{"sku":"A-1","qty":1}"#),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let new_id = set_cookie_value(&res, "dmsession").unwrap();
    assert!(is_session_id(&new_id), "{new_id}");
    assert_ne!(new_id, invented);

    let new_key = store_key(&new_id);
    assert!(eventually(|| exists(&redis, &new_key)).await);
    assert!(!exists(&redis, &invented_key).await);
    assert_eq!(redis.keys("t:session:*").await, vec![new_key.clone()]);
}

/// Malformed cookies (`../../x`, 5000 bytes, 50 cookies in one header) are ignored: 200 and
/// a fresh session, never a 5xx.
#[tokio::test]
async fn malformed_cookies_get_a_fresh_session() {
    let (redis, server) = example("").await;
    let many = (0..50)
        .map(|i| format!("c{i}=v{i}"))
        .chain(std::iter::once("dmsession=short".to_owned()))
        .collect::<Vec<_>>()
        .join("; ");
    let cookies = [
        "dmsession=../../x".to_owned(),
        format!("dmsession={}", "a".repeat(5000)),
        many,
        "dmsession=\"quoted\"; dmsession=; =; ;;".to_owned(),
    ];
    let mut ids = Vec::new();
    for cookie in &cookies {
        let headers = [("cookie", cookie.as_str())];
        let res = server.get_with("/api/me", &headers).await;
        assert_eq!(res.status, StatusCode::OK, "{cookie:.40}: {}", res.body);
        assert_eq!(res.json(), json!({"user": null}));

        let headers = [
            ("cookie", cookie.as_str()),
            ("content-type", "application/json"),
        ];
        let res = server
            .send(request(
                "POST",
                "/api/basket/items",
                &headers,
                r#"{"sku":"B-2","qty":3}"#.into(),
            ))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{cookie:.40}: {}", res.body);
        assert_eq!(res.json()["total_qty"], 3, "a fresh, empty basket");
        let id = set_cookie_value(&res, "dmsession").unwrap();
        assert!(is_session_id(&id), "{id}");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        cookies.len(),
        "every fresh session has its own id"
    );
    assert!(eventually(|| async { redis.keys("t:session:*").await.len() == cookies.len() }).await);
}

// ---------------------------------------------------------------------------------------
// 5. Rotation, 6. Logout
// ---------------------------------------------------------------------------------------

/// `POST /api/login` rotates the id and keeps the basket; the old id sees nothing, its
/// Redis record is gone and the new one exists.
#[tokio::test]
async fn login_rotates_the_id_and_keeps_the_data() {
    let (redis, server) = example("").await;
    let mut jar = Jar::default();
    jar.post_json(&server, "/api/basket/items", r#"{"sku":"A-1","qty":2}"#)
        .await;
    let old = jar.value.clone().unwrap();
    let old_key = store_key(&old);
    assert!(eventually(|| exists(&redis, &old_key)).await);

    let res = jar
        .post_json(&server, "/api/login", r#"{"user":"ann"}"#)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json(), json!({"user": "ann"}));
    let new = set_cookie_value(&res, "dmsession").unwrap();
    assert!(is_session_id(&new));
    assert_ne!(new, old);
    assert_eq!(jar.value.as_deref(), Some(new.as_str()));

    let b = basket(&mut jar, &server).await;
    assert_eq!(
        b,
        json!({"items": [{"sku": "A-1", "qty": 2}], "total_qty": 2})
    );
    assert_eq!(
        jar.get(&server, "/api/me").await.json(),
        json!({"user": "ann"})
    );

    // The old id is dead: a request that still names it (a second tab's, sent before the
    // login's answer arrived) is refused with 409, and told nothing about cookies, so it
    // cannot replace or expire the new cookie the browser holds by now.
    for path in ["/api/me", "/api/basket"] {
        let res = send_with_cookie(&server, "GET", path, &old, None).await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{path}: {}", res.body);
        assert_eq!(res.header("set-cookie"), None, "{path}");
    }

    let new_key = store_key(&new);
    assert!(eventually(|| async { hash(&redis, &new_key).await.contains_key("d:user") }).await);
    // The old key holds nothing but the new key's hash, for a while.
    let marker = hash(&redis, &old_key).await;
    assert_eq!(marker.len(), 1, "{marker:?}");
    let hash_of_new = String::from_utf8(marker["_m"].clone()).expect("hex");
    assert!(new_key.ends_with(&hash_of_new), "{marker:?}");
    let mut keys = vec![old_key, new_key];
    keys.sort();
    assert_eq!(redis.keys("t:session:*").await, keys);
}

/// `POST /api/logout` expires the cookie and deletes the record; the old cookie then sees
/// no user.
#[tokio::test]
async fn logout_destroys_the_session() {
    let (redis, server) = example("").await;
    let mut jar = Jar::default();
    jar.post_json(&server, "/api/login", r#"{"user":"bob"}"#)
        .await;
    let id = jar.value.clone().unwrap();
    let key = store_key(&id);
    assert!(eventually(|| exists(&redis, &key)).await);

    let res = jar.post_json(&server, "/api/logout", "{}").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json(), json!({"user": null}));
    assert!(expires_cookie(&res), "{:?}", res.headers);
    assert_eq!(jar.value, None);
    assert!(!exists(&redis, &key).await, "deleted before the response");

    let res = send_with_cookie(&server, "GET", "/api/me", &id, None).await;
    assert_eq!(res.json(), json!({"user": null}));
    assert!(expires_cookie(&res), "{:?}", res.headers);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!exists(&redis, &key).await, "not resurrected");
}

// ---------------------------------------------------------------------------------------
// 7. Flash, 8. CSRF (HTML shop)
// ---------------------------------------------------------------------------------------

/// A flash notice set by `POST /basket/add` shows on the next `GET /` only.
#[tokio::test]
async fn flash_notice_shows_exactly_once() {
    let (_redis, server) = example("").await;
    let mut jar = Jar::default();
    let page = jar.get(&server, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("class=\"flash\""));
    let token = csrf_token(&page.body, "/basket/add");

    let res = jar
        .post_form(
            &server,
            "/basket/add",
            &format!("_csrf={token}&sku=A-1&qty=2"),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);

    let page = jar.get(&server, "/").await;
    assert!(
        page.body
            .contains("<p class=\"flash\" role=\"status\">Added 2 × A-1.</p>"),
        "{}",
        page.body
    );
    let page = jar.get(&server, "/").await;
    assert!(!page.body.contains("class=\"flash\""), "{}", page.body);
    assert!(page.body.contains("<span id=\"total\">2</span>"));
}

/// CSRF: no token or a wrong one is 400 with the basket unchanged; a valid one is 303 to
/// `/`; a replay is 400 (single use); a token for `/login` is refused on `/basket/add`.
#[tokio::test]
async fn csrf_tokens_are_required_single_use_and_per_form() {
    let (_redis, server) = example("").await;
    let mut jar = Jar::default();
    let page = jar.get(&server, "/").await;
    let token = csrf_token(&page.body, "/basket/add");
    let login_token = csrf_token(&page.body, "/login");
    assert!(is_session_id(&token), "{token}");
    assert_ne!(token, login_token);
    let empty = json!({"items": [], "total_qty": 0});

    let res = jar.post_form(&server, "/basket/add", "sku=A-1&qty=1").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert_eq!(basket(&mut jar, &server).await, empty);

    let wrong = format!("_csrf={}&sku=A-1&qty=1", "x".repeat(43));
    let res = jar.post_form(&server, "/basket/add", &wrong).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let res = jar
        .post_form(
            &server,
            "/basket/add",
            &format!("_csrf={login_token}&sku=A-1&qty=1"),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "a /login token");
    assert_eq!(basket(&mut jar, &server).await, empty);

    let body = format!("_csrf={token}&sku=A-1&qty=1");
    let res = jar.post_form(&server, "/basket/add", &body).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.header("location"), Some("/"));
    assert_eq!(basket(&mut jar, &server).await["total_qty"], 1);

    let res = jar.post_form(&server, "/basket/add", &body).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "a replayed token");
    assert_eq!(basket(&mut jar, &server).await["total_qty"], 1);

    // The /login token was not spent by the refusals: it still logs in.
    let res = jar
        .post_form(&server, "/login", &format!("_csrf={login_token}&user=ann"))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        jar.get(&server, "/api/me").await.json(),
        json!({"user": "ann"})
    );
}

// ---------------------------------------------------------------------------------------
// 9. Basket API
// ---------------------------------------------------------------------------------------

/// Lines of the same SKU merge; invalid bodies are 400 `{"error": ...}` and change
/// nothing; `DELETE /api/basket` empties it.
#[tokio::test]
async fn basket_api_merges_validates_and_clears() {
    let (_redis, server) = example("").await;
    let mut jar = Jar::default();
    for _ in 0..2 {
        let res = jar
            .post_json(&server, "/api/basket/items", r#"{"sku":"A-1","qty":2}"#)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    }
    let one = json!({"items": [{"sku": "A-1", "qty": 4}], "total_qty": 4});
    assert_eq!(basket(&mut jar, &server).await, one);

    let res = jar
        .post_json(&server, "/api/basket/items", r#"{"sku":"b_2","qty":1000}"#)
        .await;
    let two = json!({
        "items": [{"sku": "A-1", "qty": 4}, {"sku": "b_2", "qty": 1000}],
        "total_qty": 1004
    });
    assert_eq!(res.json(), two);
    assert_eq!(basket(&mut jar, &server).await, two);

    let long = format!(r#"{{"sku":"{}","qty":1}}"#, "a".repeat(65));
    for body in [
        r#"{"sku":"A 1","qty":1}"#,
        long.as_str(),
        r#"{"sku":"","qty":1}"#,
        r#"{"sku":"A-1","qty":0}"#,
        r#"{"sku":"A-1","qty":1001}"#,
        r#"{"sku":"A-1","qty":-1}"#,
        r#"{"sku":"A-1"}"#,
        r#"{"qty":1}"#,
        r#"{}"#,
        r#"{"sku":"A-1","qty":"x"}"#,
        r#"{"sku":"A-1","qty":1.5}"#,
    ] {
        let res = jar.post_json(&server, "/api/basket/items", body).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}: {}", res.body);
        let error = res.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains("sku") || error.contains("qty"),
            "{body}: {error}"
        );
    }
    assert_eq!(basket(&mut jar, &server).await, two);

    let res = jar.send(&server, "DELETE", "/api/basket", None, "").await;
    assert_eq!(res.status, StatusCode::OK);
    let empty = json!({"items": [], "total_qty": 0});
    assert_eq!(res.json(), empty);
    assert_eq!(basket(&mut jar, &server).await, empty);
}

// ---------------------------------------------------------------------------------------
// 10. Regenerate + exact update under concurrency
// ---------------------------------------------------------------------------------------

/// After a rotation keeps the data, 50 concurrent `/bench/counter` requests on one cookie
/// (each its own connection) answer exactly 1..=50, and `/bench/read` then says 50.
#[tokio::test]
async fn concurrent_updates_on_one_session_are_exact() {
    let (redis, server) = example("").await;
    let mut jar = Jar::default();
    jar.post_json(&server, "/api/basket/items", r#"{"sku":"Z","qty":5}"#)
        .await;
    let before = jar.value.clone().unwrap();
    jar.post_json(&server, "/api/login", r#"{"user":"cy"}"#)
        .await;
    let cookie = jar.value.clone().unwrap();
    assert_ne!(cookie, before);
    assert_eq!(basket(&mut jar, &server).await["total_qty"], 5);

    let header = format!("dmsession={cookie}");
    let client = server.client();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let header = header.clone();
            tokio::spawn(async move {
                client
                    .get_with("/bench/counter", &[("cookie", header.as_str())])
                    .await
            })
        })
        .collect();
    let mut values = Vec::new();
    for task in tasks {
        let res = tokio::time::timeout(Duration::from_secs(8), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(set_cookie_header(&res, "dmsession"), None);
        values.push(res.body.parse::<u64>().unwrap());
    }
    values.sort_unstable();
    assert_eq!(values, (1..=50).collect::<Vec<u64>>());
    assert_eq!(jar.get(&server, "/bench/read").await.body, "50");

    let key = store_key(&cookie);
    assert!(
        eventually(|| async {
            hash(&redis, &key)
                .await
                .get("d:count")
                .is_some_and(|b| rmp_serde::from_slice::<u64>(b).ok() == Some(50))
        })
        .await
    );
}

// ---------------------------------------------------------------------------------------
// 11. Persist modes
// ---------------------------------------------------------------------------------------

/// `persist = before_response`: when the response arrives the record is already stored.
#[tokio::test]
async fn before_response_commits_before_answering() {
    let (redis, server) = example("[session]\npersist = before_response\n").await;
    let mut jar = Jar::default();
    let res = jar
        .post_json(&server, "/api/basket/items", r#"{"sku":"A-1","qty":7}"#)
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let key = store_key(jar.value.as_deref().unwrap());
    let fields = hash(&redis, &key).await;
    let items: Vec<Item> = rmp_serde::from_slice(&fields["d:basket"]).unwrap();
    assert_eq!(
        items,
        [Item {
            sku: "A-1".into(),
            qty: 7
        }]
    );

    // A plain put (login) is stored before the answer too.
    let res = jar
        .post_json(&server, "/api/login", r#"{"user":"di"}"#)
        .await;
    let key = store_key(&set_cookie_value(&res, "dmsession").unwrap());
    let fields = hash(&redis, &key).await;
    assert_eq!(
        rmp_serde::from_slice::<String>(&fields["d:user"]).unwrap(),
        "di"
    );
}

/// `persist = after_response`: a request right after a write on the same server already
/// sees it (read-your-writes on one node), and the commit follows shortly.
#[tokio::test]
async fn after_response_reads_its_writes_on_one_node() {
    let (redis, server) = example("").await;
    let mut jar = Jar::default();
    jar.post_json(&server, "/api/login", r#"{"user":"eve"}"#)
        .await;
    for qty in 1..=5u64 {
        let res = jar
            .post_json(
                &server,
                "/api/basket/items",
                &format!(r#"{{"sku":"S{qty}","qty":{qty}}}"#),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(
            basket(&mut jar, &server).await["total_qty"],
            qty * (qty + 1) / 2
        );
    }
    let res = jar
        .post_json(&server, "/api/login", r#"{"user":"eve2"}"#)
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        jar.get(&server, "/api/me").await.json(),
        json!({"user": "eve2"})
    );
    let key = store_key(jar.value.as_deref().unwrap());
    assert!(
        eventually(|| async {
            hash(&redis, &key)
                .await
                .get("d:user")
                .is_some_and(|b| rmp_serde::from_slice::<String>(b).ok().as_deref() == Some("eve2"))
        })
        .await
    );
}

/// One keep-alive HTTP/1.1 connection: `GET path` with a cookie, the body back.
struct KeepAlive(tokio::io::BufReader<tokio::net::TcpStream>);

impl KeepAlive {
    async fn open(server: &TestServer) -> Self {
        Self(tokio::io::BufReader::new(
            tokio::net::TcpStream::connect(server.addr).await.unwrap(),
        ))
    }

    async fn get(&mut self, path: &str, cookie: &str) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let head = format!("GET {path} HTTP/1.1\r\nhost: t\r\ncookie: dmsession={cookie}\r\n\r\n");
        self.0.get_mut().write_all(head.as_bytes()).await.unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.0.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.0.read_exact(&mut body).await.unwrap();
        String::from_utf8(body).unwrap()
    }
}

/// A read on one worker thread right after a write on another sees the write, even while
/// the thread that runs the session's actor is too busy to have applied it: the reader then
/// asks the actor and waits, instead of taking the copy the actor published before.
#[tokio::test]
async fn reads_see_the_last_write_while_the_actors_thread_is_busy() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "[http]\nworkers = 2").await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&server, "/put-n/0").await.status, StatusCode::OK);
    let cookie = jar.value.clone().unwrap();
    // Keep-alive connections until two are on each worker thread.
    let mut by_lane: HashMap<String, Vec<KeepAlive>> = HashMap::new();
    for _ in 0..20 {
        let mut conn = KeepAlive::open(&server).await;
        let lane = conn.get("/lane", &cookie).await;
        by_lane.entry(lane).or_default().push(conn);
        if by_lane.len() == 2 && by_lane.values().all(|c| c.len() >= 2) {
            break;
        }
    }
    let mut lanes: Vec<Vec<KeepAlive>> = by_lane.into_values().collect();
    assert!(
        lanes.len() == 2 && lanes.iter().all(|c| c.len() >= 2),
        "two connections on each of two threads"
    );
    let (mut busy, mut other) = (lanes.remove(0), lanes.remove(0));
    // The session's actor starts on the first thread, and its copy is checked there.
    assert_eq!(busy[0].get("/get-n", &cookie).await, "Some(0)");
    // Block that thread for a while.
    let mut staller = busy.remove(1);
    let stall = tokio::spawn(async move { staller.get("/stall", "").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Write and read on the other thread while the actor cannot run.
    assert_eq!(other[0].get("/put-n/1", &cookie).await, "ok");
    assert_eq!(other[1].get("/get-n", &cookie).await, "Some(1)");
    assert!(stall.is_finished(), "the read waited for the busy thread");
    assert_eq!(stall.await.unwrap(), "stalled");
}

// ---------------------------------------------------------------------------------------
// 12. Expiry
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// 13. Explicit Resonance pattern, 14. Background access
// ---------------------------------------------------------------------------------------

/// `manager.start(&mut req)` → `put` → `manager.persist_session(&req)` stores the value
/// before the response (default `after_response` mode) and sets the cookie.
#[tokio::test]
async fn explicit_start_and_persist_session() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "").await;
    let res = server
        .send(request("POST", "/explicit", &[], String::new()))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, "persisted");
    let id = set_cookie_value(&res, "dmsession").expect("the cookie is set");
    assert!(is_session_id(&id));
    let fields = hash(&redis, &store_key(&id)).await;
    let value = fields
        .get("d:explicit")
        .expect("stored before the response");
    assert_eq!(
        rmp_serde::from_slice::<String>(value).unwrap(),
        "persisted by hand"
    );
}

/// `SessionManager::open(id)` sees a request's write, its `update` is seen by the next
/// request; an unknown id and a logged-out id give `None`.
#[tokio::test]
async fn open_reaches_a_session_from_background_work() {
    let redis = redis().await;
    let (manager, server) = custom_app(&redis, "").await;
    let mut jar = Jar::default();
    jar.post_json(&server, "/api/basket/items", r#"{"sku":"A-1","qty":2}"#)
        .await;
    let id = jar.value.clone().unwrap();

    let session = tokio::time::timeout(Duration::from_secs(3), manager.open(&id))
        .await
        .unwrap()
        .unwrap()
        .expect("a live session opens");
    assert_eq!(
        session.id().map(|i| i.as_str().to_owned()),
        Some(id.clone())
    );
    let items: Vec<Item> = session.get("basket").await.unwrap().unwrap();
    assert_eq!(
        items,
        [Item {
            sku: "A-1".into(),
            qty: 2
        }]
    );
    let updated = tokio::time::timeout(
        Duration::from_secs(3),
        session.update("basket", |items: Option<Vec<Item>>| {
            example_app::api::add_to(
                items.unwrap_or_default(),
                &Item {
                    sku: "BG".into(),
                    qty: 1,
                },
            )
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(updated.len(), 2);
    // `update` commits by itself: the record holds it without any request.
    let fields = hash(&redis, &store_key(&id)).await;
    let stored: Vec<Item> = rmp_serde::from_slice(&fields["d:basket"]).unwrap();
    assert_eq!(stored, updated);
    assert_eq!(
        basket(&mut jar, &server).await,
        json!({"items": [{"sku": "A-1", "qty": 2}, {"sku": "BG", "qty": 1}], "total_qty": 3})
    );

    let unknown = SessionId::generate().unwrap();
    assert!(manager.open(unknown.as_str()).await.unwrap().is_none());
    assert!(manager.open("not an id").await.unwrap().is_none());

    let res = jar.post_json(&server, "/api/logout", "{}").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(manager.open(&id).await.unwrap().is_none());
}

/// A new session is stored before its first response, even with `persist = after_response`:
/// the cookie it hands out names a stored session at once, on every server.
#[tokio::test]
async fn a_new_session_is_stored_before_its_response() {
    let (redis, a) = example("").await;
    let b = start_example(example_config(redis.port(), "")).await;
    for route in ["/bench/new", "/bench/counter"] {
        let mut jar = Jar::default();
        let res = jar.get(&a, route).await;
        assert_eq!(res.status, StatusCode::OK);
        let key = store_key(jar.value.as_deref().expect("a session cookie"));
        assert!(
            exists(&redis, &key).await,
            "{route}: not stored when the response arrived"
        );
        // Another server knows it immediately.
        let on_b = jar.get(&b, "/bench/read").await;
        assert_eq!(on_b.status, StatusCode::OK);
        assert!(
            set_cookie_value(&on_b, "dmsession").is_none(),
            "{route}: B refused the new id"
        );
    }
    let mut jar = Jar::default();
    assert_eq!(jar.get(&a, "/bench/counter").await.body, "1");
    assert_eq!(jar.get(&b, "/bench/counter").await.body, "2");
    assert_eq!(jar.get(&a, "/bench/read").await.body, "2");
}
