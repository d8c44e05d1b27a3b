//! Looking at a session from outside, as the session tests do: the Redis key and hash behind
//! a cookie, the shape of a session id, the `Set-Cookie` that ends one, and a bounded wait
//! for a commit that happens after the response.
//!
//! With `persist = after_response` (the default) a response can arrive before its changes
//! are in Redis, so a check of the store polls ([`eventually`]) instead of reading once.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use rondo::session::SessionId;

use crate::app::{set_cookie_header, set_cookie_value};
use crate::http::{request, Client, TestResponse};
use crate::redis::RedisServer;

/// How long a check of the store waits for an after-response commit.
pub const COMMIT_WAIT: Duration = Duration::from_secs(2);

/// Starts a fresh redis-server for one test.
pub async fn redis() -> RedisServer {
    RedisServer::start().await
}

/// The Redis key of the session whose cookie value is `cookie` (config prefix `t:`).
///
/// # Panics
///
/// When `cookie` is not a well-formed session id.
pub fn store_key(cookie: &str) -> String {
    SessionId::parse(cookie)
        .expect("a session id")
        .store_key("t:")
        .as_str()
        .to_owned()
}

/// Polls `check` every 20 ms until it returns `true`, at most [`COMMIT_WAIT`]; says whether
/// it did (so a test can `assert!` it with its own message).
pub async fn eventually<F, Fut>(mut check: F) -> bool
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

/// The session hash at `key`, field names to raw bytes (empty when the key is absent).
///
/// # Panics
///
/// When the command fails.
pub async fn hash(redis: &RedisServer, key: &str) -> HashMap<String, Vec<u8>> {
    redis.hgetall(key).await.into_iter().collect()
}

/// Whether Redis holds `key`.
///
/// # Panics
///
/// When the command fails.
pub async fn exists(redis: &RedisServer, key: &str) -> bool {
    !redis.keys(key).await.is_empty()
}

/// A request with the session cookie `dmsession=cookie` (and a JSON body, if any), outside
/// any [`Jar`](crate::app::Jar): the cookie the response sets is not kept. `server` is a
/// [`TestServer`](crate::http::TestServer), an [`AppProcess`](crate::process::AppProcess) or
/// a [`Client`] of either.
pub async fn send_with_cookie(
    server: impl Into<Client>,
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
        .into()
        .send(request(
            method,
            path,
            &headers,
            json_body.unwrap_or("").to_owned(),
        ))
        .await
}

/// The attributes of a `Set-Cookie` header after the name=value pair.
pub fn attributes(header: &str) -> Vec<String> {
    header
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_owned())
        .collect()
}

/// Whether `value` has the shape of a session id: 43 URL-safe base64 characters.
pub fn is_session_id(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether the response expires the session cookie (`dmsession=; ... Max-Age=0`).
pub fn expires_cookie(response: &TestResponse) -> bool {
    set_cookie_value(response, "dmsession").as_deref() == Some("")
        && set_cookie_header(response, "dmsession").is_some_and(|h| h.contains("Max-Age=0"))
}
