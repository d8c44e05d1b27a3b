//! HTTP/2 and the connection limits: prior-knowledge HTTP/2 is served only with `[http]
//! http2` on, idle HTTP/2 connections are cut like idle HTTP/1 ones, the header-count limit
//! holds for HTTP/2 streams, and a server at `[http] max_connections` answers one more client
//! `503` at once instead of leaving it hanging.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rondo::{App, ConfigLoader};
use rondo_tests::http::TestServer;
use rondo_tests::plain_app::{app, start, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client preface of HTTP/2 and an empty SETTINGS frame: what a client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A small app with the `[http]` lines of `extra`.
async fn serve(extra: &str) -> TestServer {
    let config = ConfigLoader::new()
        .parse_str(
            &format!("[session]\nstore = memory\n[http]\nport = 0\n{extra}\n"),
            "test.ini",
        )
        .unwrap();
    let app = App::new(config).get("/hello", || async { "hello" });
    TestServer::start(app).await
}

/// An HTTP/2 connection through hyper's client: its request handle and the task driving it
/// (which ends when the server closes the connection).
async fn h2_client(
    server: &TestServer,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, driver)
}

/// `GET path` over an HTTP/2 connection with `headers` extra headers: status and body.
async fn h2_get(
    send: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    server: &TestServer,
    headers: usize,
) -> (StatusCode, String) {
    let mut req = Request::get(server.url("/hello"));
    for i in 0..headers {
        req = req.header(format!("x-extra-{i}"), "v");
    }
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        send.send_request(req.body(Empty::new()).unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Reads until the server closes the connection (or `deadline` passes: then `false`).
async fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {} // the server's SETTINGS, a GOAWAY
            Err(_) => return false,
        }
    }
}

/// This process's resident set size in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The soft limit on open files of this process.
fn open_file_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// 2000 HTTP/2 connections that sent only the preface and an empty SETTINGS frame, and 100
/// that made one request and then went quiet, do not keep another client from being served
/// at once; every one of them is closed by the server within the header timeout (1 s) and
/// the GOAWAY grace (1 s) plus slack, the process grows by less than 64 MiB, and a new
/// client is served afterwards.
#[tokio::test]
async fn thousands_of_idle_http2_connections_are_cut() {
    let server = serve("header_read_timeout = 1").await;
    // Each connection costs two descriptors here: the client's and the server's.
    let count = 2000.min(open_file_limit().saturating_sub(400) / 2);
    assert!(
        count >= 200,
        "open-file limit too low: {}",
        open_file_limit()
    );
    let before = rss_kib();

    let opening = Instant::now();
    let mut idle = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(PREFACE).await.unwrap();
        idle.push(stream);
    }
    let mut quiet = Vec::new();
    for _ in 0..100 {
        let (mut send, driver) = h2_client(&server).await;
        assert_eq!(
            h2_get(&mut send, &server, 0).await,
            (StatusCode::OK, "hello".to_owned())
        );
        quiet.push((send, driver));
    }
    let started = Instant::now();
    let (mut send, _driver) = h2_client(&server).await;
    assert_eq!(h2_get(&mut send, &server, 0).await.0, StatusCode::OK);
    drop(send);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let peak = rss_kib();

    let deadline = opening + Duration::from_secs(15);
    let mut cut = 0;
    for stream in &mut idle {
        if closed_by(stream, deadline).await {
            cut += 1;
        }
    }
    assert_eq!(cut, count, "idle HTTP/2 connections still open after 15 s");
    for (send, driver) in quiet {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            tokio::time::timeout(left, driver).await.is_ok(),
            "a quiet HTTP/2 connection is still open"
        );
        drop(send);
    }
    drop(idle);
    let (mut send, _driver) = h2_client(&server).await;
    assert_eq!(h2_get(&mut send, &server, 0).await.0, StatusCode::OK);
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "RSS grew by {grown} KiB for {count} connections"
    );
}

/// A connection that stays busy is not cut: requests one after another on one HTTP/2
/// connection, for longer than the header timeout, all succeed.
#[tokio::test]
async fn a_busy_http2_connection_is_not_cut() {
    let server = serve("header_read_timeout = 300ms").await;
    let (mut send, driver) = h2_client(&server).await;
    let until = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < until {
        assert_eq!(h2_get(&mut send, &server, 0).await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!driver.is_finished());
}

/// `max_headers` holds over HTTP/2 as over HTTP/1.1: 300 headers get 431, 90 are served.
#[tokio::test]
async fn too_many_headers_over_http2_get_431() {
    let server = serve("").await;
    let (mut send, _driver) = h2_client(&server).await;
    let (status, body) = h2_get(&mut send, &server, 300).await;
    assert_eq!(
        status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "{body}"
    );
    assert!(body.contains("more than 100 request headers"), "{body}");
    // The connection is still good for a request within the limit.
    assert_eq!(
        h2_get(&mut send, &server, 90).await,
        (StatusCode::OK, "hello".to_owned())
    );
}

/// At `[http] max_connections`, one more client is answered 503 with `Retry-After` and
/// closed at once; once a connection leaves, clients are served again.
#[tokio::test]
async fn connections_over_the_limit_are_refused_with_503() {
    let server = serve("max_connections = 10\nheader_read_timeout = 10").await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Let the server count them all before the next one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = server
        .raw(
            b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
            Duration::from_secs(2),
        )
        .await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 1"), "{refused}");
    assert!(refused.ends_with("too many connections"), "{refused}");
    drop(held.pop());
    let served = rondo_tests::eventually("a free connection", Duration::from_secs(3), || async {
        let answer = server
            .raw(
                b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                Duration::from_secs(2),
            )
            .await;
        answer.starts_with("HTTP/1.1 200").then_some(answer)
    })
    .await;
    assert!(served.ends_with("hello"), "{served}");
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
