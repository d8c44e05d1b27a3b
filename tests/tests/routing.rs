//! Routing on a real Rondo server on `127.0.0.1:0`: static and parameterised routes,
//! percent-decoding, 404 and 405 (with `Allow`), HEAD on GET routes, and the example app's
//! own routes. The app is [`rondo_tests::plain_app`].
//!
//! Every test builds its own app and server, and every network wait is bounded.

#![allow(clippy::unwrap_used)]

use http::StatusCode;
use rondo_tests::http::{raw_header, request, split_head, RawEnd, TestServer};
use rondo_tests::plain_app::{start, test_config, RAW_WAIT};

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
