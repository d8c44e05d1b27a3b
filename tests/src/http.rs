//! An in-process HTTP harness: a Rondo app served on `127.0.0.1:0`, a small HTTP/1.1 client
//! (one fresh connection per request) and a raw TCP helper for byte-level tests.
//!
//! Every network wait here is bounded by a timeout, so a misbehaving server fails a test
//! instead of hanging it.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The longest one request made through [`Client`] may take, connect to last body byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest [`TestServer::shutdown`] waits for `serve` to return.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// An error from the test client: connect, protocol or timeout.
pub type ClientError = Box<dyn std::error::Error + Send + Sync>;

/// A Rondo app served by [`rondo::serve`] on an ephemeral port of `127.0.0.1`.
///
/// Dropping it triggers the graceful shutdown without waiting for it; call
/// [`TestServer::shutdown`] to wait for `serve` to return.
#[derive(Debug)]
pub struct TestServer {
    /// The address the server listens on.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl TestServer {
    /// Binds `127.0.0.1:0` and spawns `rondo::serve(listener, app, shutdown)`, where
    /// `shutdown` completes when [`TestServer::trigger_shutdown`] is called or the server is
    /// dropped.
    pub async fn start(app: rondo::App) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 should work");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            // Sent or dropped: either way the test is done with the server.
            let _ = rx.await;
        };
        let task = tokio::spawn(rondo::serve(listener, app, shutdown));
        TestServer {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A client for this server; `Copy`, so it can move into spawned tasks.
    pub fn client(&self) -> Client {
        Client { addr: self.addr }
    }

    /// Starts the graceful shutdown without waiting for it (idempotent).
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Triggers the graceful shutdown and waits (at most [`SHUTDOWN_TIMEOUT`]) for `serve`
    /// to return, giving back what it returned.
    ///
    /// # Panics
    ///
    /// When `serve` does not return in time, or its task panicked.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.trigger_shutdown();
        let task = self
            .task
            .take()
            .expect("the serve task is awaited only once");
        tokio::time::timeout(SHUTDOWN_TIMEOUT, task)
            .await
            .expect("serve should return within the shutdown timeout")
            .expect("the serve task should not panic")
    }

    /// Sends `req` on a fresh connection; see [`Client::send`].
    pub async fn send(&self, req: Request<String>) -> TestResponse {
        self.client().send(req).await
    }

    /// `GET path`; see [`Client::get`].
    pub async fn get(&self, path: &str) -> TestResponse {
        self.client().get(path).await
    }

    /// `GET path` with extra headers; see [`Client::get_with`].
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        self.client().get_with(path, headers).await
    }

    /// `POST path` with a JSON body; see [`Client::post_json`].
    pub async fn post_json(&self, path: &str, body: &str) -> TestResponse {
        self.client().post_json(path, body).await
    }

    /// `POST path` with a URL-encoded form body; see [`Client::post_form`].
    pub async fn post_form(&self, path: &str, body: &str) -> TestResponse {
        self.client().post_form(path, body).await
    }

    /// Writes `bytes` on a fresh connection and reads until close or `read_timeout`; see
    /// [`Client::raw`].
    pub async fn raw(&self, bytes: &[u8], read_timeout: Duration) -> String {
        self.client().raw(bytes, read_timeout).await
    }

    /// Like [`TestServer::raw`], also saying whether the server closed the connection.
    pub async fn raw_exchange(&self, bytes: &[u8], read_timeout: Duration) -> RawExchange {
        self.client().raw_exchange(bytes, read_timeout).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.trigger_shutdown();
    }
}

/// A minimal HTTP/1.1 client for one server: each request opens its own connection, so
/// tests do not influence each other through keep-alive.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The server address.
    pub addr: SocketAddr,
}

impl Client {
    /// Sends `req` and reads the whole response, panicking on any client-side failure.
    ///
    /// The request's URI should be in origin form (`/path?query`); a `Host` header is added
    /// when missing.
    ///
    /// # Panics
    ///
    /// When the request fails or takes longer than [`REQUEST_TIMEOUT`].
    pub async fn send(&self, req: Request<String>) -> TestResponse {
        let what = format!("{} {}", req.method(), req.uri());
        match self.try_send(req).await {
            Ok(response) => response,
            Err(err) => panic!("request {what} failed: {err}"),
        }
    }

    /// Sends `req` and reads the whole response, or says why that failed (connection
    /// refused or closed, protocol error, [`REQUEST_TIMEOUT`] passed).
    ///
    /// # Errors
    ///
    /// Any failure to connect, send, or read the response.
    pub async fn try_send(&self, mut req: Request<String>) -> Result<TestResponse, ClientError> {
        if !req.headers().contains_key(HOST) {
            let host = HeaderValue::from_str(&self.addr.to_string())?;
            req.headers_mut().insert(HOST, host);
        }
        let exchange = async {
            let stream = TcpStream::connect(self.addr).await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake::<_, String>(TokioIo::new(stream)).await?;
            let driver = tokio::spawn(connection);
            let response = sender.send_request(req).await?;
            let (parts, body) = response.into_parts();
            let body: Bytes = body.collect().await?.to_bytes();
            drop(sender);
            driver.abort();
            let body = String::from_utf8(body.to_vec())?;
            Ok::<_, ClientError>(TestResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no complete response within {REQUEST_TIMEOUT:?}"))?
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.get_with(path, &[]).await
    }

    /// `GET path` with extra headers, given as `(name, value)` pairs.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        self.send(request("GET", path, headers, String::new()))
            .await
    }

    /// `POST path` with `Content-Type: application/json` and `body`.
    pub async fn post_json(&self, path: &str, body: &str) -> TestResponse {
        let headers = [("content-type", "application/json")];
        self.send(request("POST", path, &headers, body.to_owned()))
            .await
    }

    /// `POST path` with `Content-Type: application/x-www-form-urlencoded` and `body`.
    pub async fn post_form(&self, path: &str, body: &str) -> TestResponse {
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        self.send(request("POST", path, &headers, body.to_owned()))
            .await
    }

    /// Writes `bytes` on a fresh connection, then reads until the server closes it or
    /// `read_timeout` passes, and returns what was read (lossily decoded as UTF-8).
    pub async fn raw(&self, bytes: &[u8], read_timeout: Duration) -> String {
        self.raw_exchange(bytes, read_timeout).await.text
    }

    /// Like [`Client::raw`], with how the exchange ended.
    ///
    /// A write error (the server may close before reading everything) is not fatal: the
    /// response may already be on its way, so reading goes on. A read error (a reset) ends
    /// the read like a close.
    ///
    /// # Panics
    ///
    /// When the connection cannot be established within [`REQUEST_TIMEOUT`].
    pub async fn raw_exchange(&self, bytes: &[u8], read_timeout: Duration) -> RawExchange {
        let mut stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .expect("connecting should not time out")
            .expect("the server should accept connections");
        let started = Instant::now();
        let write_error = match tokio::time::timeout(REQUEST_TIMEOUT, stream.write_all(bytes)).await
        {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some("write timed out".to_owned()),
        };
        let deadline = tokio::time::Instant::now() + read_timeout;
        let mut received = Vec::new();
        let mut buf = [0u8; 8192];
        let end = loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) => break RawEnd::Closed,
                Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
                Ok(Err(err)) => break RawEnd::Error(err.kind()),
                Err(_) => break RawEnd::TimedOut,
            }
        };
        RawExchange {
            text: String::from_utf8_lossy(&received).into_owned(),
            end,
            elapsed: started.elapsed(),
            write_error,
        }
    }
}

impl From<&TestServer> for Client {
    fn from(server: &TestServer) -> Client {
        server.client()
    }
}

/// How a raw exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEnd {
    /// The server closed the connection (read returned 0).
    Closed,
    /// Reading failed (typically a connection reset).
    Error(io::ErrorKind),
    /// The read timeout passed with the connection still open.
    TimedOut,
}

impl RawEnd {
    /// Whether the server ended the connection (a close or a reset), as opposed to a timeout.
    pub fn server_closed(self) -> bool {
        !matches!(self, RawEnd::TimedOut)
    }
}

/// The outcome of [`Client::raw_exchange`].
#[derive(Debug, Clone)]
pub struct RawExchange {
    /// Everything read, lossily decoded.
    pub text: String,
    /// How the read ended.
    pub end: RawEnd,
    /// Time from the end of connecting to the end of reading.
    pub elapsed: Duration,
    /// Why writing the bytes failed, if it did.
    pub write_error: Option<String>,
}

impl RawExchange {
    /// The status code of the first response in [`RawExchange::text`], if any.
    pub fn status(&self) -> Option<u16> {
        let line = self.text.lines().next()?;
        let mut words = line.split(' ');
        (words.next()? == "HTTP/1.1").then_some(())?;
        words.next()?.parse().ok()
    }
}

/// Splits a raw HTTP/1.1 response (such as [`RawExchange::text`]) into its head and what
/// follows the blank line.
pub fn split_head(raw: &str) -> (&str, &str) {
    raw.split_once("\r\n\r\n").unwrap_or((raw, ""))
}

/// The value of header `name` in a raw response head (case-insensitive name).
pub fn raw_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Builds a request with an origin-form `path`, headers as `(name, value)` pairs and a body.
///
/// # Panics
///
/// On an invalid method, path or header.
pub fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Request<String> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        let value = HeaderValue::from_str(value).expect("a valid header value");
        builder = builder.header(name, value);
    }
    builder.body(body).expect("a valid request")
}

/// A whole response, as the client received it.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, which must be UTF-8.
    pub body: String,
}

impl TestResponse {
    /// The body parsed as JSON.
    ///
    /// # Panics
    ///
    /// When the body is not JSON.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_str(&self.body) {
            Ok(value) => value,
            Err(err) => panic!("response body is not JSON ({err}): {:?}", self.body),
        }
    }

    /// The value of header `name` as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Content-Type` header, or `""`.
    pub fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}
