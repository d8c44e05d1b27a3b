//! Size limits over real HTTP: `max_body_bytes` (with `Content-Length`, chunked, and read
//! from INI text) answers 413, `max_header_bytes` and `max_headers` answer 431, and the server
//! keeps serving afterwards. The app is [`rondo_tests::plain_app`].
//!
//! Every test builds its own app and server, and every network wait is bounded.

#![allow(clippy::unwrap_used)]

use http::StatusCode;
use rondo::Config;
use rondo_tests::http::{raw_header, request, split_head, TestServer};
use rondo_tests::plain_app::{app, test_config, RAW_WAIT};

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
