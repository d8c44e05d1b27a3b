//! Graceful shutdown of `serve`: a request in flight completes while new connections are
//! refused, and an idle keep-alive connection does not hold the shutdown up. The app is
//! [`rondo_tests::plain_app`].
//!
//! Every test builds its own app and server, and every network wait is bounded.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use http::StatusCode;
use rondo_tests::plain_app::start;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
