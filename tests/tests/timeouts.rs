//! Timeouts against slow and silent clients and slow controllers: `header_read_timeout` cuts
//! a client that does not finish its head (HTTP/1 only or with HTTP/2 enabled) but not a
//! keep-alive client that keeps asking, and `request_timeout` answers 503. These measure
//! real sockets against real deadlines, so they run in real time. The app is
//! [`rondo_tests::plain_app`].
//!
//! Every test builds its own app and server, and every network wait is bounded.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use http::StatusCode;
use rondo_tests::http::{RawEnd, TestServer};
use rondo_tests::plain_app::{app, start, test_config, RAW_WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
