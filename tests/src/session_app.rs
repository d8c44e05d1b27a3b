//! A custom app on the `Session` API, for the session tests that call it directly rather than
//! through the example shop: typed `put`/`get`, `contains`, `remove`, `keys`, `clear`, reserved
//! keys, the explicit `start` + `persist_session` pattern, and two routes that expose which
//! worker thread serves a request (and block it), next to the shop's JSON basket API.

use std::time::Duration;

use rondo::{App, Config, Json, Path, Session, SessionError, SessionManager, State};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::app::example_config;
use crate::http::TestServer;
use crate::redis::RedisServer;

/// What `/typed/write` stores under `profile`: a struct with named fields, a number and a
/// vec, to see how structs are encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    name: String,
    age: u32,
    tags: Vec<String>,
}

/// The [`Profile`] `/typed/write` stores: Ann, 37, `admin` and `beta`.
pub fn profile() -> Profile {
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
///
/// # Panics
///
/// When the session manager cannot be built on `redis`.
pub async fn custom_app(redis: &RedisServer, extra: &str) -> (SessionManager, TestServer) {
    let config: Config = example_config(redis.port(), extra);
    let app = App::new(config);
    let manager = SessionManager::from_config(app.config(), app.redis())
        .await
        .expect("a session manager on the test Redis");
    // The shop's basket controllers broadcast changes: channels are installed (off unless
    // `extra` turns them on).
    let channels = rondo::channels::Channels::builder(app.config(), app.redis(), &manager)
        .start()
        .await
        .expect("channels start");
    let app = app
        .with(manager.clone())
        .with(channels)
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
