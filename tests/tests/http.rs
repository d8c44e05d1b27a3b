//! Black-box HTTP tests: a real Rondo server on `127.0.0.1:0`, real sockets.
//!
//! Every test builds its own app and server, and every network wait is bounded.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};
use rondo::{App, Config, ErrorPage, Form, Html, Json, Path, Query, Redirect, State};
use rondo_tests::http::{request, RawEnd, TestServer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The read timeout of raw exchanges that expect the server to close the connection.
const RAW_WAIT: Duration = Duration::from_secs(3);

/// A configuration with short timeouts, so that timeout tests stay fast.
fn test_config() -> Config {
    let mut config = Config::default();
    config.http.port = 0;
    config.http.header_read_timeout = Duration::from_millis(300);
    config.http.request_timeout = Duration::from_secs(5);
    config.http.shutdown_timeout = Duration::from_secs(5);
    config
}

#[derive(Debug, Deserialize, Serialize)]
struct Item {
    name: String,
    qty: u32,
}

#[derive(Debug, Deserialize)]
struct Sku {
    sku: String,
    qty: u32,
}

#[derive(Debug, Deserialize)]
struct Login {
    user: String,
    age: u8,
}

#[derive(Debug, Deserialize)]
struct Search {
    page: u32,
    q: Option<String>,
}

/// Registered with `App::state` in [`app`].
#[derive(Debug, Clone)]
struct Greeting(&'static str);

/// Never registered: asking for it is a bug in the app.
#[derive(Debug, Clone)]
struct Unregistered;

async fn hello() -> &'static str {
    "hello world"
}

async fn user(Path(id): Path<u64>) -> String {
    format!("user {id}")
}

async fn pair(Path((a, b)): Path<(String, u32)>) -> String {
    format!("{a}+{b}")
}

async fn sku(Path(s): Path<Sku>) -> String {
    format!("{} x{}", s.sku, s.qty)
}

async fn echo_param(Path(text): Path<String>) -> String {
    format!("[{text}]")
}

async fn search(Query(s): Query<Search>) -> String {
    format!("page {} q {}", s.page, s.q.unwrap_or_default())
}

async fn create_item(Json(item): Json<Item>) -> (StatusCode, Json<Item>) {
    (StatusCode::CREATED, Json(item))
}

async fn login(Form(l): Form<Login>) -> String {
    format!("{} is {}", l.user, l.age)
}

async fn body_len(body: String) -> String {
    format!("{} bytes", body.len())
}

async fn greet(State(g): State<Greeting>) -> String {
    g.0.to_owned()
}

async fn needs_unregistered(State(_): State<Unregistered>) -> &'static str {
    "unreachable"
}

async fn redirect() -> Redirect {
    Redirect::to("/x")
}

async fn result(Path(ok): Path<bool>) -> Result<String, ErrorPage> {
    if ok {
        Ok("fine".to_owned())
    } else {
        Err(ErrorPage::new(StatusCode::CONFLICT, "it went wrong"))
    }
}

async fn html() -> Html<&'static str> {
    Html("<p>hi</p>")
}

async fn list_items() -> &'static str {
    "items"
}

async fn add_item() -> &'static str {
    "added"
}

async fn headers_count(headers: HeaderMap) -> String {
    format!("{} headers", headers.len())
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(500)).await;
    "slow done"
}

async fn very_slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(2)).await;
    "too late"
}

async fn panics() -> &'static str {
    panic!("controller panicked on purpose")
}

/// The app most tests use.
fn app(config: Config) -> App {
    App::new(config)
        .state(Greeting("hi from state"))
        .get("/hello", hello)
        .get("/users/{id}", user)
        .get("/pairs/{a}/{b}", pair)
        .get("/skus/{sku}/{qty}", sku)
        .get("/echo/{text}", echo_param)
        .get("/search", search)
        .post("/items", create_item)
        .get("/list", list_items)
        .post("/list", add_item)
        .post("/login", login)
        .post("/len", body_len)
        .get("/greet", greet)
        .get("/unregistered", needs_unregistered)
        .get("/redirect", redirect)
        .get("/result/{ok}", result)
        .get("/html", html)
        .get("/headers", headers_count)
        .get("/slow", slow)
        .get("/very-slow", very_slow)
        .get("/panic", panics)
}

async fn start() -> TestServer {
    TestServer::start(app(test_config())).await
}

/// Splits a raw HTTP/1.1 response into its head and what follows the blank line.
fn split_head(raw: &str) -> (&str, &str) {
    raw.split_once("\r\n\r\n").unwrap_or((raw, ""))
}

/// The value of header `name` in a raw response head (case-insensitive name).
fn raw_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// ---------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------

/// A static GET route answers 200 with its text body and a text/plain content type.
#[tokio::test]
async fn static_route() {
    let server = start().await;
    let res = server.get("/hello").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, "hello world");
    assert_eq!(res.content_type(), "text/plain; charset=utf-8");
    assert_eq!(res.header("content-length"), Some("11"));
    server.shutdown().await.unwrap();
}

/// `Path<u64>`, `Path<(String, u32)>` and `Path<Struct>` receive the parsed parameters.
#[tokio::test]
async fn path_params_single_tuple_struct() {
    let server = start().await;
    let res = server.get("/users/42").await;
    assert_eq!((res.status, res.body.as_str()), (StatusCode::OK, "user 42"));
    let res = server.get("/pairs/abc/7").await;
    assert_eq!((res.status, res.body.as_str()), (StatusCode::OK, "abc+7"));
    let res = server.get("/skus/A-1/3").await;
    assert_eq!((res.status, res.body.as_str()), (StatusCode::OK, "A-1 x3"));
}

/// Path parameters are percent-decoded (`a%20b` -> `a b`, UTF-8 escapes too); an escape
/// that is not UTF-8 (`%ff`) matches no route and answers 404.
#[tokio::test]
async fn path_params_are_percent_decoded() {
    let server = start().await;
    let res = server.get("/echo/a%20b").await;
    assert_eq!((res.status, res.body.as_str()), (StatusCode::OK, "[a b]"));
    let res = server.get("/echo/caf%C3%A9%2Fx").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "[café/x]")
    );
    let res = server.get("/echo/%ff").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
}

/// A path parameter that does not parse as the requested type answers 400 with a JSON error
/// that names the bad value, without reaching the controller.
#[tokio::test]
async fn bad_path_param_type_is_400() {
    let server = start().await;
    let res = server.get("/users/abc").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let json = res.json();
    assert_eq!(json["status"], 400);
    let error = json["error"].as_str().unwrap();
    assert!(error.starts_with("invalid path parameter"), "{error}");
    assert!(error.contains("abc"), "{error}");
    let res = server.get("/pairs/abc/-1").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
}

/// An unknown path answers 404 with the JSON error body `{"error":"not found","status":404}`.
#[tokio::test]
async fn unknown_path_is_404() {
    let server = start().await;
    let res = server.get("/no/such/page").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.content_type(), "application/json");
    assert_eq!(
        res.json(),
        serde_json::json!({"error": "not found", "status": 404})
    );
}

/// A known path with another method answers 405 with `Allow` listing the registered
/// methods in registration order and HEAD (implied by GET) last: `GET, POST, HEAD`.
#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let server = start().await;
    let res = server
        .send(request("PUT", "/list", &[], String::new()))
        .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.header("allow"), Some("GET, POST, HEAD"));
    assert_eq!(res.json()["status"], 405);
    let res = server
        .send(request("DELETE", "/hello", &[], String::new()))
        .await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.header("allow"), Some("GET, HEAD"));
    let res = server.get("/items").await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.header("allow"), Some("POST"));
    // Both methods of /list really route to their own controller.
    assert_eq!(server.get("/list").await.body, "items");
    let res = server
        .send(request("POST", "/list", &[], String::new()))
        .await;
    assert_eq!(res.body, "added");
}

/// HEAD on a GET route answers 200 with the GET body's `content-length` and not one body
/// byte on the wire after the head.
#[tokio::test]
async fn head_on_get_route_sends_no_body() {
    let server = start().await;
    let res = server
        .send(request("HEAD", "/hello", &[], String::new()))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-length"), Some("11"));
    assert_eq!(res.body, "");

    let raw = server
        .raw_exchange(
            b"HEAD /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            RAW_WAIT,
        )
        .await;
    assert_eq!(raw.end, RawEnd::Closed, "{raw:?}");
    let (head, rest) = split_head(&raw.text);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(raw_header(head, "content-length"), Some("11"), "{head}");
    assert!(raw.text.contains("\r\n\r\n"), "{:?}", raw.text);
    assert_eq!(
        rest, "",
        "no body bytes may follow the head of a HEAD response"
    );
}

// ---------------------------------------------------------------------------------------
// Extractor rejections
// ---------------------------------------------------------------------------------------

/// `Json<T>` without a `Content-Type` answers 415 naming `application/json`.
#[tokio::test]
async fn json_without_content_type_is_415() {
    let server = start().await;
    let res = server
        .send(request(
            "POST",
            "/items",
            &[],
            r#"{"name":"a","qty":1}"#.into(),
        ))
        .await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let json = res.json();
    assert_eq!(json["status"], 415);
    assert!(
        json["error"].as_str().unwrap().contains("application/json"),
        "{json}"
    );
    let headers = [("content-type", "text/plain")];
    let res = server
        .send(request(
            "POST",
            "/items",
            &headers,
            r#"{"name":"a","qty":1}"#.into(),
        ))
        .await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// `Json<T>` accepts `application/json; charset=utf-8` and `+json` types and answers with
/// the `(StatusCode::CREATED, Json(..))` responder: 201 and the JSON back.
#[tokio::test]
async fn json_created_responder() {
    let server = start().await;
    let res = server
        .post_json("/items", r#"{"name":"apple","qty":3}"#)
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.content_type(), "application/json");
    assert_eq!(res.json(), serde_json::json!({"name": "apple", "qty": 3}));
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let headers = [("content-type", content_type)];
        let res = server
            .send(request(
                "POST",
                "/items",
                &headers,
                r#"{"name":"b","qty":0}"#.into(),
            ))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{content_type}");
    }
}

/// Malformed JSON answers 400 (`invalid JSON`); well-formed JSON of the wrong shape answers
/// 422 (`unexpected JSON`).
#[tokio::test]
async fn invalid_json_is_400_and_wrong_shape_is_422() {
    let server = start().await;
    for body in [r#"{"name": }"#, "{", "not json"] {
        let res = server.post_json("/items", body).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            res.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid JSON"),
            "{}",
            res.body
        );
    }
    for body in [
        r#"{"name": 1, "qty": 1}"#,
        r#"{"name": "a"}"#,
        r#"{"name":"a","qty":-1}"#,
        "[]",
    ] {
        let res = server.post_json("/items", body).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let json = res.json();
        assert_eq!(json["status"], 422);
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .starts_with("unexpected JSON"),
            "{json}"
        );
    }
}

/// `Form<T>` decodes a URL-encoded body; another content type answers 415, a field that does
/// not parse (or is missing) answers 422.
#[tokio::test]
async fn form_extraction_and_rejections() {
    let server = start().await;
    let res = server.post_form("/login", "user=ann+lee&age=30").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "ann lee is 30")
    );
    let headers = [("content-type", "application/json")];
    let res = server
        .send(request("POST", "/login", &headers, "user=a&age=1".into()))
        .await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .contains("application/x-www-form-urlencoded"));
    let res = server.post_form("/login", "user=a&age=abc").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.json()["status"], 422);
    let res = server.post_form("/login", "user=a&age=300").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let res = server.post_form("/login", "user=a").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// `Query<T>` decodes the query string; a value that does not parse, or a missing required
/// field, answers 400.
#[tokio::test]
async fn query_extraction_and_rejection() {
    let server = start().await;
    let res = server.get("/search?page=2&q=red%20shoes").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "page 2 q red shoes")
    );
    let res = server.get("/search?page=x").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid query string"));
    let res = server.get("/search").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
}

/// A body of exactly `max_body_bytes` is read; one byte more, or a larger declared
/// `Content-Length`, answers 413.
#[tokio::test]
async fn body_limit_with_content_length() {
    let mut config = test_config();
    config.http.max_body_bytes = 1024;
    let server = TestServer::start(app(config)).await;
    let headers = [("content-type", "text/plain")];
    let res = server
        .send(request("POST", "/len", &headers, "a".repeat(1024)))
        .await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "1024 bytes")
    );
    let res = server
        .send(request("POST", "/len", &headers, "a".repeat(1025)))
        .await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    let json = res.json();
    assert_eq!(json["status"], 413);
    assert!(json["error"].as_str().unwrap().contains("1024"), "{json}");
    let big = format!(r#"{{"name":"{}","qty":1}}"#, "x".repeat(4096));
    let res = server.post_json("/items", &big).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    // The server is still fine afterwards.
    assert_eq!(server.get("/hello").await.status, StatusCode::OK);
}

/// A chunked body (no `Content-Length`) larger than `max_body_bytes` answers 413 once the
/// limit is crossed; a chunked body under the limit is read normally.
#[tokio::test]
async fn body_limit_with_chunked_encoding() {
    let mut config = test_config();
    config.http.max_body_bytes = 1024;
    let server = TestServer::start(app(config)).await;

    let mut small = b"POST /len HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
        Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    small.extend_from_slice(b"200\r\n");
    small.extend_from_slice(&[b'a'; 0x200]);
    small.extend_from_slice(b"\r\n0\r\n\r\n");
    let raw = server.raw_exchange(&small, RAW_WAIT).await;
    assert_eq!(raw.status(), Some(200), "{raw:?}");
    assert_eq!(split_head(&raw.text).1, "512 bytes");

    let mut big = b"POST /items HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
        Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for _ in 0..8 {
        big.extend_from_slice(b"200\r\n");
        big.extend_from_slice(&[b' '; 0x200]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b"0\r\n\r\n");
    let raw = server.raw_exchange(&big, RAW_WAIT).await;
    assert_eq!(raw.status(), Some(413), "{raw:?}");
    assert!(raw.end.server_closed(), "{raw:?}");
    let (head, body) = split_head(&raw.text);
    assert_eq!(raw_header(head, "content-type"), Some("application/json"));
    assert!(body.contains(r#""status":413"#), "{body}");
    assert_eq!(server.get("/hello").await.status, StatusCode::OK);
}

/// `[http] max_body_bytes` read from INI text is the limit the server enforces.
#[tokio::test]
async fn body_limit_from_ini_config() {
    let config = Config::parse_str(
        "[http]\nport = 0\nmax_body_bytes = 1k\n\n[session]\nstore = memory\n",
        "test.ini",
    )
    .unwrap();
    assert_eq!(config.http.max_body_bytes, 1024);
    let server = TestServer::start(app(config)).await;
    let headers = [("content-type", "text/plain")];
    let res = server
        .send(request("POST", "/len", &headers, "a".repeat(1000)))
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let res = server
        .send(request("POST", "/len", &headers, "a".repeat(2000)))
        .await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// `State<T>` gives the registered value; asking for a type never registered answers 500
/// with a generic message.
#[tokio::test]
async fn state_registered_and_missing() {
    let server = start().await;
    let res = server.get("/greet").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "hi from state")
    );
    let res = server.get("/unregistered").await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        res.json(),
        serde_json::json!({"error": "internal server error", "status": 500})
    );
}

// ---------------------------------------------------------------------------------------
// Error negotiation and responders
// ---------------------------------------------------------------------------------------

/// Errors are HTML for `Accept: text/html` (a page naming the status) and JSON
/// `{"error", "status"}` for `Accept: application/json`, `*/*` or no `Accept` at all.
#[tokio::test]
async fn error_content_negotiation() {
    let server = start().await;
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for accept in ["text/html", browser] {
        let res = server.get_with("/missing", &[("accept", accept)]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        assert_eq!(res.content_type(), "text/html; charset=utf-8");
        assert!(res.body.starts_with("<!doctype html>"), "{}", res.body);
        assert!(res.body.contains("<h1>404 Not Found</h1>"), "{}", res.body);
        assert!(res.body.contains("not found"), "{}", res.body);
    }
    let expected = serde_json::json!({"error": "not found", "status": 404});
    for accept in [
        Some("application/json"),
        Some("*/*"),
        Some("application/json, text/html;q=0.5"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let res = server.get_with("/missing", &headers).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{accept:?}");
        assert_eq!(res.content_type(), "application/json", "{accept:?}");
        assert_eq!(res.json(), expected, "{accept:?}");
    }
    // Rejections are negotiated too.
    let res = server
        .get_with("/users/abc", &[("accept", "text/html")])
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.body.contains("400 Bad Request"), "{}", res.body);
}

/// `Redirect::to("/x")` answers 303 See Other with `Location: /x` and an empty body.
#[tokio::test]
async fn redirect_responder() {
    let server = start().await;
    let res = server.get("/redirect").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.header("location"), Some("/x"));
    assert_eq!(res.body, "");
}

/// `Result<String, ErrorPage>` answers with the Ok value (200) or the error page (its status,
/// negotiated body).
#[tokio::test]
async fn result_responder_both_branches() {
    let server = start().await;
    let res = server.get("/result/true").await;
    assert_eq!((res.status, res.body.as_str()), (StatusCode::OK, "fine"));
    let res = server.get("/result/false").await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert_eq!(
        res.json(),
        serde_json::json!({"error": "it went wrong", "status": 409})
    );
    let res = server
        .get_with("/result/false", &[("accept", "text/html")])
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert!(
        res.body.contains("409 Conflict") && res.body.contains("it went wrong"),
        "{}",
        res.body
    );
}

/// `Html(..)` answers with `text/html; charset=utf-8` and the markup as given.
#[tokio::test]
async fn html_responder() {
    let server = start().await;
    let res = server.get("/html").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.content_type(), "text/html; charset=utf-8");
    assert_eq!(res.body, "<p>hi</p>");
}

// ---------------------------------------------------------------------------------------
// Header limits and slow clients
// ---------------------------------------------------------------------------------------

/// With `max_header_bytes = 8 KiB`, a request carrying a 20 KiB header gets hyper's automatic
/// `431 Request Header Fields Too Large` (and the connection closed), not a crash; a 4 KiB
/// header is fine and the server keeps serving the next request.
#[tokio::test]
async fn oversized_headers_get_431() {
    let mut config = test_config();
    config.http.max_header_bytes = 8 * 1024;
    let server = TestServer::start(app(config)).await;

    let ok_value = "v".repeat(4 * 1024);
    let res = server.get_with("/hello", &[("x-big", &ok_value)]).await;
    assert_eq!(res.status, StatusCode::OK);

    let big = format!(
        "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "v".repeat(20 * 1024)
    );
    let raw = server.raw_exchange(big.as_bytes(), RAW_WAIT).await;
    assert_eq!(raw.status(), Some(431), "{raw:?}");
    assert!(
        raw.end.server_closed(),
        "the connection should be closed after a 431: {raw:?}"
    );

    let res = server.get("/hello").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "hello world")
    );
}

/// With `max_headers = 10`, a request with 20 headers gets 431 and a request with 5 is
/// served; the server keeps serving afterwards.
#[tokio::test]
async fn too_many_headers_get_431() {
    let mut config = test_config();
    config.http.max_headers = 10;
    let server = TestServer::start(app(config)).await;

    let mut many = String::from("GET /headers HTTP/1.1\r\nHost: t\r\n");
    for i in 0..20 {
        many.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let raw = server.raw_exchange(many.as_bytes(), RAW_WAIT).await;
    assert_eq!(raw.status(), Some(431), "{raw:?}");
    assert!(raw.end.server_closed(), "{raw:?}");

    let few: Vec<(String, String)> = (0..4).map(|i| (format!("x-h{i}"), i.to_string())).collect();
    let few: Vec<(&str, &str)> = few.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let res = server.get_with("/headers", &few).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "5 headers")
    );
}

/// With `header_read_timeout = 300ms`, a client that sends half a request line and then
/// nothing has its connection closed (no response bytes: hyper sends no 408) well within 2 s,
/// while other clients are served meanwhile.
#[tokio::test]
async fn slow_client_is_cut_off_by_header_read_timeout() {
    let server = start().await;
    let client = server.client();
    let slow = tokio::spawn(async move { client.raw_exchange(b"GET /hel", RAW_WAIT).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let res = server.get("/hello").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "served while the slow client waits"
    );

    let raw = tokio::time::timeout(Duration::from_secs(5), slow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.end, RawEnd::Closed, "{raw:?}");
    assert_eq!(raw.text, "", "hyper closes without a 408");
    assert!(raw.elapsed >= Duration::from_millis(250), "{raw:?}");
    assert!(raw.elapsed < Duration::from_secs(2), "{raw:?}");
    assert_eq!(server.get("/hello").await.status, StatusCode::OK);
}

/// The head deadline restarts with every response: a keep-alive client that sends a
/// request every 200 ms (under the 300 ms timeout) keeps its connection for well over a
/// second, and a request that took longer than the timeout to answer does not count
/// against the next head either.
#[tokio::test]
async fn keep_alive_requests_under_the_timeout_keep_the_connection() {
    // `/slow` answers after 500 ms.
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let mut answered = 0;
    for path in [
        "/hello", "/slow", "/hello", "/hello", "/hello", "/hello", "/hello", "/hello",
    ] {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut response = Vec::new();
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&response).contains("\r\n\r\n")
            || !response.ends_with(b"slow done") && !response.ends_with(b"hello world")
        {
            let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut chunk))
                .await
                .expect("an answer in time")
                .unwrap();
            assert!(n > 0, "connection closed after {answered} answers");
            response.extend_from_slice(&chunk[..n]);
        }
        assert!(response.starts_with(b"HTTP/1.1 200"), "{response:?}");
        answered += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(answered, 8);
    assert!(started.elapsed() > Duration::from_millis(1_500));
}

/// HTTP/1-only: a client that connects and sends nothing at all is also closed after
/// `header_read_timeout`.
#[tokio::test]
async fn silent_client_is_cut_off_http1_only() {
    let mut config = test_config();
    config.http.http2 = false;
    let server = TestServer::start(app(config)).await;
    let raw = server.raw_exchange(b"", RAW_WAIT).await;
    assert_eq!(raw.end, RawEnd::Closed, "{raw:?}");
    assert!(raw.elapsed < Duration::from_secs(2), "{raw:?}");
}

/// With HTTP/2 enabled (the default), a client that connects and sends nothing, or only
/// the start of the HTTP/2 preface, is also closed after `header_read_timeout` (the server
/// bounds the protocol sniffing that precedes hyper's own header timeout).
#[tokio::test]
async fn silent_client_is_cut_off_with_http2_enabled() {
    let server = start().await;
    assert!(server.get("/hello").await.status.is_success());
    for bytes in [&b"PRI * HTTP/2.0\r\n"[..], b""] {
        let raw = server.raw_exchange(bytes, RAW_WAIT).await;
        // Unread bytes in the socket make the kernel answer the close with a reset.
        let closed = matches!(
            raw.end,
            RawEnd::Closed | RawEnd::Error(std::io::ErrorKind::ConnectionReset)
        );
        assert!(closed, "after sending {bytes:?}: {raw:?}");
        assert!(raw.elapsed < Duration::from_secs(2), "{raw:?}");
    }
}

/// Sends `GET /hello` over HTTP/2 with prior knowledge; the status, version and body.
async fn h2_get_hello(server: &TestServer) -> Result<(StatusCode, http::Version, String), String> {
    use http_body_util::BodyExt;
    let exchange = async {
        let stream = TcpStream::connect(server.addr)
            .await
            .map_err(|e| e.to_string())?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http2::handshake::<_, _, String>(
            hyper_util::rt::TokioExecutor::new(),
            io,
        )
        .await
        .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let req = http::Request::get(server.url("/hello"))
            .body(String::new())
            .unwrap();
        let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = res.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        driver.abort();
        Ok((
            parts.status,
            parts.version,
            String::from_utf8_lossy(&body).into_owned(),
        ))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// With `http2 = true` (the default) a prior-knowledge HTTP/2 client is served; with
/// `http2 = false` the same client gets no answer (the connection is closed).
#[tokio::test]
async fn http2_prior_knowledge_follows_config() {
    let server = start().await;
    let (status, version, body) = h2_get_hello(&server).await.unwrap();
    assert_eq!(
        (status, version, body.as_str()),
        (StatusCode::OK, http::Version::HTTP_2, "hello world")
    );

    let mut config = test_config();
    config.http.http2 = false;
    let server = TestServer::start(app(config)).await;
    let outcome = h2_get_hello(&server).await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert_eq!(server.get("/hello").await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Shutdown, panics, timeouts
// ---------------------------------------------------------------------------------------

/// Shutdown while a 500 ms request is in flight: the request completes with 200 and its
/// body, new connections are refused once shutdown has started, and `serve` returns Ok.
#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_request() {
    let mut server = start().await;
    let client = server.client();
    let addr = server.addr;
    let in_flight = tokio::spawn(async move { client.get("/slow").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    server.trigger_shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let refused = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await;
    match refused {
        Ok(Err(err)) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused),
        Ok(Ok(mut stream)) => {
            // Should not happen (the listener is closed), but a connection accepted by the
            // kernel and never served would end without an answer.
            let _ = stream
                .write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                .await;
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
            panic!("connected after shutdown started; read: {n:?}");
        }
        Err(_) => panic!("connect after shutdown neither failed nor succeeded"),
    }

    let res = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "slow done")
    );
    server.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "serve returned once drained"
    );
}

/// `serve` returns promptly on shutdown when idle, even with an idle keep-alive connection.
#[tokio::test]
async fn shutdown_with_idle_keepalive_connection_is_prompt() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    server.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "idle connection closed: {n:?}");
}

/// A controller that panics answers 500 and the server keeps serving.
#[tokio::test]
async fn panicking_controller_is_500() {
    let server = start().await;
    let res = server.get("/panic").await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        res.json(),
        serde_json::json!({"error": "internal server error", "status": 500})
    );
    let res = server.get("/hello").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "hello world")
    );
}

/// With `request_timeout = 200ms`, a controller sleeping 2 s answers 503 with
/// `Retry-After: 1` after about 200 ms.
#[tokio::test]
async fn request_timeout_is_503() {
    let mut config = test_config();
    config.http.request_timeout = Duration::from_millis(200);
    let server = TestServer::start(app(config)).await;
    let started = Instant::now();
    let res = server.get("/very-slow").await;
    let elapsed = started.elapsed();
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(
        res.json(),
        serde_json::json!({"error": "request timed out", "status": 503})
    );
    assert!(
        elapsed >= Duration::from_millis(190) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    assert_eq!(server.get("/hello").await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Middleware
// ---------------------------------------------------------------------------------------

/// A `from_fn` middleware sees the controller's response and can add a header to it, and can
/// answer itself without calling the controller; the first added runs outermost.
#[tokio::test]
async fn middleware_wraps_and_short_circuits() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = calls.clone();
        move || {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                "controller"
            }
        }
    };
    let app = App::new(test_config())
        .middleware(rondo::middleware::from_fn(
            |req: rondo::Request, next: rondo::Next| async move {
                let mut res = next.run(req).await;
                res.headers_mut()
                    .insert("x-outer", http::HeaderValue::from_static("1"));
                res
            },
        ))
        .middleware(rondo::middleware::from_fn(
            |req: rondo::Request, next: rondo::Next| async move {
                if req.uri().path() == "/blocked" {
                    let mut res = rondo::Response::new(rondo::Body::from("blocked"));
                    *res.status_mut() = StatusCode::FORBIDDEN;
                    return res;
                }
                let mut res = next.run(req).await;
                let status = res.status().as_u16().to_string();
                res.headers_mut().insert(
                    "x-seen-status",
                    http::HeaderValue::from_str(&status).unwrap(),
                );
                res
            },
        ))
        .get("/open", counted.clone())
        .get("/blocked", counted);
    let server = TestServer::start(app).await;

    let res = server.get("/open").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "controller")
    );
    assert_eq!(res.header("x-seen-status"), Some("200"));
    assert_eq!(res.header("x-outer"), Some("1"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let res = server.get("/blocked").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::FORBIDDEN, "blocked")
    );
    assert_eq!(res.header("x-outer"), Some("1"));
    assert_eq!(res.header("x-seen-status"), None);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the controller did not run"
    );

    // Middleware also wraps the router's own answers.
    let res = server.get("/nowhere").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.header("x-seen-status"), Some("404"));
}

// ---------------------------------------------------------------------------------------
// The example app
// ---------------------------------------------------------------------------------------

/// The example app serves `/healthz` and `/bench/plain` as `ok` and `/` as an HTML page.
#[tokio::test]
async fn example_app_routes() {
    let mut config = test_config();
    config.session.store = rondo::config::StoreKind::Memory;
    let app = example_app::build(config).await.unwrap();
    let server = TestServer::start(app).await;
    let res = server.get("/healthz").await;
    assert_eq!((res.status, res.body.as_str()), (StatusCode::OK, "ok"));
    let res = server.get("/bench/plain").await;
    assert_eq!((res.status, res.body.as_str()), (StatusCode::OK, "ok"));
    let res = server.get("/").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.content_type(), "text/html; charset=utf-8");
    assert!(
        res.body.contains("<title>Rondo shop</title>"),
        "{}",
        res.body
    );
    assert_eq!(server.get("/nope").await.status, StatusCode::NOT_FOUND);
    server.shutdown().await.unwrap();
}
