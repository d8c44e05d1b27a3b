//! The HTTP server: accept loop, one task per connection, limits, timeouts, graceful drain.
//!
//! Connections are served by hyper: HTTP/1.1 with keep-alive, and HTTP/2 (prior knowledge)
//! when `[http] http2` is on, told apart by peeking at the first bytes. Each connection runs in
//! its own tokio task, on one of the server's lanes (threads with a single-threaded runtime
//! each, `[http] workers`; see `lanes.rs`), and each request in its own future. A connection
//! idle for `header_read_timeout` (HTTP/1: no request head; HTTP/2: no open stream) is cut.
//! At most `[http] max_connections` are served at once: one more is answered `503` and
//! closed. An accept error (out of file descriptors, say) backs off and retries rather than
//! ending the loop; out of descriptors, a descriptor held in reserve lets the loop take the
//! waiting connection and close it, so its client is not left hanging in the backlog.
//! HTTP/1.1 connections may be upgraded (WebSocket, `rondo::websocket`): the 101 response
//! hands the socket over, and it is counted until it closes.
//! On shutdown the listener closes first, streaming bodies that last until shutdown
//! (server-sent events) end, in-flight requests finish, upgraded connections are told to
//! close (WebSocket close 1001) and are waited for, and then the app's shutdown hooks run
//! (pending session commits), all within `[http] shutdown_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use http::StatusCode;

use crate::app::App;
use crate::body::{Body, Response};
use crate::config::HttpConfig;
use crate::connections::{Armed, Connections, EndsAtShutdown, InFlight, Slot, UpgradeTicket};
use crate::dispatch::{Dispatch, Service};
use crate::lanes::Lanes;
use crate::respond::{ErrorPage, RequestHead, Responder};

/// hyper does not accept a read buffer smaller than this.
const MIN_BUF_SIZE: usize = 8 * 1024;
/// hyper's own limit on request headers when none is configured.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Binds the address of `[http] host` and `port`.
///
/// # Errors
///
/// The address cannot be resolved or bound (in use, no permission). The error keeps the
/// operating system's [`io::ErrorKind`] and names the address and the settings it came
/// from: `cannot listen on 127.0.0.1:8080 ([http] host, port): Address already in use (os
/// error 98)`.
pub async fn bind(http: &HttpConfig) -> io::Result<TcpListener> {
    TcpListener::bind((http.host.as_str(), http.port))
        .await
        .map_err(|source| {
            let kind = source.kind();
            let address = match http.host.contains(':') {
                true => format!("[{}]:{}", http.host, http.port),
                false => format!("{}:{}", http.host, http.port),
            };
            io::Error::new(kind, BindError { address, source })
        })
}

/// Why [`bind`] failed, with the address: the operating system's error alone ("Address
/// already in use") does not say which one. `Debug` prints the `Display` line, so that a
/// `main` returning the error shows it as a sentence inside `io::Error`'s own `Debug`.
struct BindError {
    address: String,
    source: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot listen on {} ([http] host, port): {}",
            self.address, self.source
        )
    }
}

impl std::fmt::Debug for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains gracefully.
///
/// Returns once in-flight requests have finished and the shutdown hooks have run, or when
/// `[http] shutdown_timeout` has passed (then whatever is still running is logged and dropped).
///
/// Connections are served on `[http] workers` threads of the server's own, each running a
/// single-threaded runtime, so a request and the tasks it spawns stay on one thread; the
/// calling runtime runs the accept loop and the app's background work (jobs, the shutdown
/// hooks). A controller must therefore not block its thread (use
/// `tokio::task::spawn_blocking`), nor rely on a multi-threaded runtime
/// (`block_in_place`). With `workers = 0` connections are tasks of the calling runtime.
/// Dropping the returned future stops the threads and drops what runs on them.
///
/// # Errors
///
/// The app cannot start ([`App::check`](crate::App::check): a route needs state that was
/// never registered), the listener's local address cannot be read, or the worker threads
/// cannot be started; accept errors are retried.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let config = rondo::Config::default();
/// let listener = rondo::bind(&config.http).await?;
/// let app = rondo::App::new(config).get("/", || async { "ok" });
/// rondo::serve(listener, app, rondo::shutdown_signal()).await
/// # }
/// ```
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let local: SocketAddr = listener.local_addr()?;
    let (service, hooks) = app
        .try_into_service()
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    // Logs on by default, unless the application installed a subscriber of its own.
    crate::logging::ensure(service.context().config());
    let http = service.context().config().http.clone();
    let builders = Builders::new(&http);
    let connections = Connections::new(http.header_read_timeout);
    let sweeper = CancellationToken::new();
    tokio::spawn(connections.sweep(sweeper.clone()));
    let _stop_sweeper = sweeper.drop_guard();
    // Kept until `serve` returns, after the shutdown hooks: the lanes run the actors whose
    // final commits those hooks wait for.
    let lanes = match http.workers {
        0 => None,
        count => Some(Lanes::start(count)?),
    };
    tracing::info!(address = %local, workers = http.workers, "listening");

    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    let mut reserve = Reserve::open();
    let refusals = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSALS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                backoff = Duration::from_millis(5);
                stream
            }
            Err(err) => {
                // Out of descriptors, the connection waiting in the backlog would wait
                // there unanswered: spend the reserved descriptor on taking it and closing
                // it, so its client learns at once, then back off and take the reserve back.
                let out_of_files = matches!(err.raw_os_error(), Some(EMFILE | ENFILE));
                if out_of_files && reserve.release() {
                    // Each one closed gives its descriptor back for the next.
                    for _ in 0..MAX_REFUSALS {
                        let next = std::future::poll_fn(|cx| listener.poll_accept(cx));
                        match futures_util::FutureExt::now_or_never(next) {
                            Some(Ok((stream, _))) => drop(stream),
                            _ => break,
                        }
                    }
                    reserve = Reserve::open();
                }
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        if connections.live() >= http.max_connections {
            refuse(stream, &refusals);
            continue;
        }
        // Small responses should leave at once, not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let builders = builders.clone();
        // The slot's head deadline runs from now: it bounds the protocol sniffing too, so
        // a client that connects and stays silent does not hold a task for long.
        let slot = connections.open();
        let sniff = http.http2;
        let ticket = connections.upgrade_ticket();
        let serve = move |stream| connection(stream, sniff, slot, ticket, service, builders);
        match &lanes {
            Some(lanes) => lanes.spawn(stream, serve),
            None => drop(tokio::spawn(serve(stream))),
        }
    }

    drop(listener);
    let deadline = Instant::now() + http.shutdown_timeout;
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    connections.drain();
    if tokio::time::timeout_at(deadline.into(), connections.drained())
        .await
        .is_err()
    {
        tracing::warn!("shutdown deadline passed with requests still in flight");
    }
    // The last requests could still reach upgraded connections (a WebSocket receiving what
    // they published); now those close too, each telling its client it is going away.
    connections.close_upgraded();
    if tokio::time::timeout_at(deadline.into(), connections.upgraded_closed())
        .await
        .is_err()
    {
        tracing::warn!("shutdown deadline passed with upgraded connections still open");
    }
    if tokio::time::timeout_at(deadline.into(), hooks.run())
        .await
        .is_err()
    {
        tracing::error!("shutdown deadline passed before the shutdown hooks finished");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Serves one connection: HTTP/1 or (when `sniff`, and the client says so) HTTP/2.
async fn connection(
    stream: tokio::net::TcpStream,
    sniff: bool,
    slot: Arc<Slot>,
    ticket: UpgradeTicket,
    app: Service,
    builders: Builders,
) {
    let protocol = if sniff {
        match slot.guard(sniff_protocol(&stream)).await {
            Some(Some(protocol)) => protocol,
            Some(None) | None => return,
        }
    } else {
        Protocol::Http1
    };
    let io = TokioIo::new(stream);
    let result = match protocol {
        Protocol::Http1 => {
            let service = service(app, slot.clone(), None, Some(ticket));
            // Upgrades (WebSocket) are HTTP/1.1 only: the 101 response hands the socket over.
            let conn = builders.http1.serve_connection(io, service).with_upgrades();
            slot.supervise(conn, |c| c.graceful_shutdown(), false).await
        }
        Protocol::Http2 => {
            // hyper bounds the header *bytes* of an HTTP/2 request, not their count.
            let max_headers = app.context().config().http.max_headers;
            let service = service(app, slot.clone(), Some(max_headers), None);
            let conn = builders.http2.serve_connection(io, service);
            slot.supervise(conn, |c| c.graceful_shutdown(), true).await
        }
    };
    if let Some(Err(err)) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// The hyper service of one connection: each request is dispatched to the app. A request's
/// arrival lifts the connection's head deadline until its response has been sent (or the
/// request abandoned); an HTTP/2 connection (`max_headers` given, since hyper does not count
/// its headers) runs each stream as a task of its own, so the count is kept atomically.
fn service(
    app: Service,
    slot: Arc<Slot>,
    max_headers: Option<usize>,
    ticket: Option<UpgradeTicket>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = hyper::Response<Armed>,
    Error = Infallible,
    Future = Respond,
> + Clone {
    service_fn(move |mut req: hyper::Request<Incoming>| {
        let request = Some(slot.request(max_headers.is_some()));
        // Only a request that asks for an upgrade pays for the ticket (one `Arc` clone).
        if let Some(ticket) = &ticket {
            if req.headers().contains_key(http::header::UPGRADE) {
                req.extensions_mut().insert(ticket.clone());
            }
        }
        let answer = match max_headers {
            Some(max) if req.headers().len() > max => {
                let head = RequestHead::new(req.method(), req.headers());
                let page = ErrorPage::new(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    format!("more than {max} request headers"),
                );
                Answer::Now(Some(page.respond(&head)))
            }
            _ => Answer::Dispatch(app.clone().dispatch(req.map(Body::from))),
        };
        Respond { answer, request }
    })
}

/// A request's answer, for hyper: the app's response (or a refusal made before dispatch),
/// with a body that re-arms the connection's head deadline once sent.
struct Respond {
    answer: Answer,
    request: Option<InFlight>,
}

enum Answer {
    Dispatch(Dispatch),
    /// Taken when polled.
    Now(Option<Response>),
}

impl Future for Respond {
    type Output = Result<hyper::Response<Armed>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match &mut self.answer {
            Answer::Dispatch(dispatch) => std::task::ready!(Pin::new(dispatch).poll(cx)),
            Answer::Now(response) => response.take().unwrap_or_default(),
        };
        let request = self.request.take();
        let until = match (&request, response.extensions().get::<EndsAtShutdown>()) {
            (Some(request), Some(_)) => Some(Box::pin(request.drain_started())),
            _ => None,
        };
        Poll::Ready(Ok(response.map(|body| Armed {
            body,
            _request: request,
            until,
        })))
    }
}

/// At most this many over-the-limit connections are being answered `503` at once; beyond,
/// they are closed without an answer.
const MAX_REFUSALS: usize = 256;

/// What a connection beyond `[http] max_connections` is told before it is closed.
const REFUSAL: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 33\r\n\r\nserver busy: too many connections";

/// Answers a connection over the limit with a plain `503` and closes it, within a second,
/// on a task of its own (at most [`MAX_REFUSALS`] at a time).
fn refuse(stream: tokio::net::TcpStream, refusals: &Arc<tokio::sync::Semaphore>) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let answered = async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream.write_all(REFUSAL).await?;
            stream.shutdown().await?;
            // Read what the client sent until it closes, so that closing does not reset the
            // connection before the client has read the answer.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), answered).await;
    });
}

/// `EMFILE`/`ENFILE`: this process / the system is out of file descriptors.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// A descriptor kept in reserve, so that when the process runs out of them the accept loop
/// can still take a waiting connection and close it (see [`serve`]).
struct Reserve(Option<std::fs::File>);

impl Reserve {
    fn open() -> Self {
        Self(std::fs::File::open("/dev/null").ok())
    }

    /// Gives the descriptor back to the system; whether there was one.
    fn release(&mut self) -> bool {
        self.0.take().is_some()
    }
}

#[derive(Clone, Copy)]
enum Protocol {
    Http1,
    Http2,
}

/// Waits until the client has sent enough to tell HTTP/1 from HTTP/2; `None` if it closed.
async fn sniff_protocol(stream: &tokio::net::TcpStream) -> Option<Protocol> {
    const H2: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; 24];
    loop {
        match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) if buf[..n] != H2[..n] => return Some(Protocol::Http1),
            Ok(n) if n == H2.len() => return Some(Protocol::Http2),
            // A partial HTTP/2 preface: peek would return at once again, so wait a little.
            Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// The per-protocol connection settings, built once.
#[derive(Clone)]
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(http: &HttpConfig) -> Self {
        // No timer and no `header_read_timeout`: hyper would arm a timer on every request
        // for it; the connection's slot (connections.rs) bounds the wait for heads instead.
        let mut http1 = http1::Builder::new();
        http1
            .max_buf_size(http.max_header_bytes.max(MIN_BUF_SIZE))
            // Copy each response into one buffer and write it with one plain `write`: for
            // the small answers a session service gives, that is cheaper than the `writev`
            // of head and body hyper would otherwise make (about 4% less CPU per request on
            // /bench/plain). A large body costs one more copy; Rondo's bodies are built in
            // memory anyway, and are mostly small.
            .writev(false);
        // hyper parses into a stack array of its default size, but initialises a buffer of
        // the configured size on every request once one is set: set it only when it differs.
        if http.max_headers != HYPER_DEFAULT_MAX_HEADERS {
            http1.max_headers(http.max_headers);
        }
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(http.max_header_bytes).unwrap_or(u32::MAX))
            // While a stream is open, a peer that stops answering pings is gone: its
            // connection ends instead of holding its streams (an idle connection, with no
            // stream, is cut by its slot after `header_read_timeout`).
            .keep_alive_interval(Some(http.header_read_timeout))
            .keep_alive_timeout(http.header_read_timeout);
        Self { http1, http2 }
    }
}

/// Completes on Ctrl-C or, on Unix, SIGTERM: the usual `shutdown` argument of [`serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
