//! Server-sent events over real HTTP: the stream's format and headers, keep-alive comments,
//! `Last-Event-ID` on reconnect, and a stream that ends when the server shuts down instead
//! of holding the drain until its deadline.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rondo::respond::sse::{Event, LastEventId, Sse};
use rondo::App;
use rondo_tests::http::TestServer;
use rondo_tests::plain_app::test_config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Three events after the last id the client saw, then silence (the stream stays open).
async fn feed(
    LastEventId(last): LastEventId,
) -> Sse<impl futures_util::Stream<Item = Event> + Send> {
    let start: u64 = last
        .and_then(|id| id.parse().ok())
        .map_or(0, |n: u64| n + 1);
    let events = futures_util::stream::iter(start..start + 3)
        .map(|n| {
            Event::default()
                .id(n.to_string())
                .event("tick")
                .data(format!("n={n}"))
        })
        .chain(futures_util::stream::pending());
    Sse::new(events).keep_alive(Some(Duration::from_millis(200)))
}

async fn server() -> TestServer {
    let mut config = test_config();
    config.http.shutdown_timeout = Duration::from_secs(8);
    TestServer::start(App::new(config).get("/feed", feed)).await
}

/// Reads from `stream` until `needle` has arrived (or 3 s pass); everything read so far.
async fn read_until(stream: &mut TcpStream, seen: &mut String, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(n)) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    true
}

async fn open(server: &TestServer, last_id: Option<&str>) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let last = last_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET /feed HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{last}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    (stream, String::new())
}

/// The events arrive in the wire format with the event-stream headers, and a keep-alive
/// comment follows while the stream is quiet.
#[tokio::test]
async fn events_stream_with_keep_alive_comments() {
    let server = server().await;
    let (mut stream, mut seen) = open(&server, None).await;
    assert!(
        read_until(&mut stream, &mut seen, "id:2\nevent:tick\ndata:n=2\n\n").await,
        "{seen}"
    );
    let head = seen.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("cache-control: no-cache"), "{head}");
    assert!(seen.contains("id:0\nevent:tick\ndata:n=0\n\n"), "{seen}");
    let before = seen.len();
    assert!(
        read_until(&mut stream, &mut seen, ":\n\n").await,
        "no keep-alive: {seen}"
    );
    assert!(seen.len() > before);
}

/// A reconnecting client's `Last-Event-ID` reaches the controller, which resumes after it.
#[tokio::test]
async fn last_event_id_resumes_the_stream() {
    let server = server().await;
    let (mut stream, mut seen) = open(&server, Some("41")).await;
    assert!(
        read_until(&mut stream, &mut seen, "data:n=44").await,
        "{seen}"
    );
    assert!(
        seen.contains("id:42\n") && !seen.contains("id:41\n"),
        "{seen}"
    );
}

/// A shutdown ends open event streams at once: `serve` returns long before its 8 s
/// deadline, and the client sees its response end.
#[tokio::test]
async fn shutdown_ends_open_streams() {
    let server = server().await;
    let (mut stream, mut seen) = open(&server, None).await;
    assert!(
        read_until(&mut stream, &mut seen, "data:n=2").await,
        "{seen}"
    );
    let started = Instant::now();
    server.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection should be closed");
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || rest.ends_with("0\r\n\r\n") || rest.contains(":\n\n"),
        "{rest}"
    );
}
