//! Starting the example app (or any app) against a test Redis, a cookie jar, and the few
//! readings of the shop's answers that several test files make (its basket, its forms' CSRF
//! tokens).

use http::StatusCode;
use rondo::{Config, ConfigLoader};
use serde_json::Value;

use crate::http::{request, Client, TestResponse, TestServer};
use crate::redis::RedisServer;

/// A config for the example app: `[session] store = redis` on `127.0.0.1:redis_port` (prefix
/// `t:`, timeout 1 s), HTTP on port 0, then `extra` INI lines appended (they may add keys to
/// `[session]`, `[http]` or `[app]`: later sections are merged, but a key may appear once —
/// so `extra` must not repeat `store`, `redis_connection_pool` or the `[redis]` keys).
///
/// # Panics
///
/// When the resulting text is not a valid config (a bug in the test).
pub fn example_config(redis_port: u16, extra: &str) -> Config {
    let text = format!(
        "[http]\nport = 0\n[session]\nstore = redis\n[redis]\ndefault[host] = 127.0.0.1\n\
         default[port] = {redis_port}\ndefault[prefix] = t:\ndefault[timeout] = 1\n{extra}\n"
    );
    ConfigLoader::new()
        .section("example")
        .parse_str(&text, "test.ini")
        .expect("test config is valid")
}

/// Builds the example app from `config` and serves it on a free port.
///
/// # Panics
///
/// When the app cannot be built (e.g. Redis unreachable with `store = redis`).
pub async fn start_example(config: Config) -> TestServer {
    let app = example_app::build(config)
        .await
        .expect("example app builds");
    TestServer::start(app).await
}

/// The example app on a fresh Redis (see [`example_config`] for `extra`), and that Redis.
///
/// # Panics
///
/// As [`RedisServer::start`] and [`start_example`] do.
pub async fn example(extra: &str) -> (RedisServer, TestServer) {
    let redis = RedisServer::start().await;
    let server = start_example(example_config(redis.port(), extra)).await;
    (redis, server)
}

/// `GET /api/basket` with the jar's cookie, as JSON.
///
/// # Panics
///
/// When the answer is not `200` with JSON.
pub async fn basket(jar: &mut Jar, server: &TestServer) -> Value {
    let res = jar.get(server, "/api/basket").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    res.json()
}

/// The CSRF token of the form posting to `action` in a page of the HTML shop.
///
/// # Panics
///
/// When the page has no such form, or the form no `_csrf` field.
pub fn csrf_token(page: &str, action: &str) -> String {
    let form = page
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form for {action} in {page}"));
    let rest = &page[form..];
    let marker = "name=\"_csrf\" value=\"";
    let start = rest.find(marker).expect("a _csrf field") + marker.len();
    let len = rest[start..].find('"').expect("a quoted token");
    rest[start..start + len].to_owned()
}

/// The session cookie (`dmsession=...` value part) a response sets, if any; `Some("")` when
/// it expires the cookie.
pub fn set_cookie_value(response: &TestResponse, name: &str) -> Option<String> {
    response
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (n, value) = pair.split_once('=')?;
            (n.trim() == name).then(|| value.trim().to_owned())
        })
}

/// The full `Set-Cookie` header for `name`, attributes included.
pub fn set_cookie_header(response: &TestResponse, name: &str) -> Option<String> {
    response
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.trim_start().starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// A one-cookie jar for the session cookie, like a browser keeps it.
#[derive(Debug, Default, Clone)]
pub struct Jar {
    /// The current `dmsession` value, if any.
    pub value: Option<String>,
}

impl Jar {
    /// Updates the jar from a response's `Set-Cookie` (an empty value clears it).
    pub fn update(&mut self, response: &TestResponse) {
        if let Some(value) = set_cookie_value(response, "dmsession") {
            self.value = (!value.is_empty()).then_some(value);
        }
    }

    /// Sends `method path` with the jar's cookie (and `body` with `content_type`, if any),
    /// then keeps whatever cookie the response sets.
    pub async fn send(
        &mut self,
        server: &TestServer,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> TestResponse {
        let cookie = self.value.as_ref().map(|v| format!("dmsession={v}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(cookie) = &cookie {
            headers.push(("cookie", cookie));
        }
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type));
        }
        let response = server
            .send(request(method, path, &headers, body.to_owned()))
            .await;
        self.update(&response);
        response
    }

    /// `GET path` with the cookie.
    pub async fn get(&mut self, server: &TestServer, path: &str) -> TestResponse {
        self.send(server, "GET", path, None, "").await
    }

    /// `GET path` with the cookie through `client` (a server's [`Client`], which a spawned
    /// task can own), keeping whatever cookie the response sets.
    pub async fn get_via(&mut self, client: &Client, path: &str) -> TestResponse {
        let cookie = self.value.as_ref().map(|v| format!("dmsession={v}"));
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", c.as_str())).collect();
        let response = client
            .send(request("GET", path, &headers, String::new()))
            .await;
        self.update(&response);
        response
    }

    /// `POST path` with a JSON body and the cookie.
    pub async fn post_json(&mut self, server: &TestServer, path: &str, body: &str) -> TestResponse {
        self.send(server, "POST", path, Some("application/json"), body)
            .await
    }

    /// `POST path` with a form body and the cookie.
    pub async fn post_form(&mut self, server: &TestServer, path: &str, body: &str) -> TestResponse {
        self.send(
            server,
            "POST",
            path,
            Some("application/x-www-form-urlencoded"),
            body,
        )
        .await
    }
}
