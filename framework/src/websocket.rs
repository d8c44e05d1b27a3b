//! WebSocket connections: an HTTP/1.1 request upgraded to the WebSocket protocol
//! (RFC 6455), framed by tungstenite over the connection hyper hands over.
//!
//! A controller takes a [`WebSocketUpgrade`] and answers with
//! [`WebSocketUpgrade::on_upgrade`]: the client gets `101 Switching Protocols`, and the
//! callback then runs in a task of its own with the [`WebSocket`]. Before upgrading, check
//! where the page that opened the socket came from ([`WebSocketUpgrade::origin_allowed`]):
//! a browser sends cookies with a WebSocket handshake from *any* site, so a socket that
//! relies on the session cookie must refuse foreign origins, or another site's page could
//! act as the user (cross-site WebSocket hijacking).
//!
//! The limits are tungstenite's, set per upgrade: the largest frame and message accepted
//! (a larger one ends the connection with close code 1009), and the read buffer, which is
//! most of what an idle connection costs (4 KiB here, against tungstenite's 128 KiB).
//!
//! Upgraded connections take part in graceful shutdown: once every HTTP request has
//! finished, [`WebSocket::closing`] completes, and the server waits (within `[http]
//! shutdown_timeout`) for each socket to end; close it with code 1001 ("going away"), as
//! [`WebSocket::close_going_away`] does, so that clients reconnect elsewhere.
//!
//! # Examples
//!
//! ```
//! use rondo::websocket::{Message, WebSocket, WebSocketUpgrade};
//! use rondo::{ErrorPage, Response, Responder};
//!
//! async fn echo(upgrade: WebSocketUpgrade) -> Result<Response, ErrorPage> {
//!     if !upgrade.origin_allowed(&["https://shop.example".to_owned()]) {
//!         return Err(ErrorPage::new(http::StatusCode::FORBIDDEN, "origin not allowed"));
//!     }
//!     Ok(upgrade.on_upgrade(|mut socket: WebSocket| async move {
//!         while let Some(Ok(message)) = socket.recv().await {
//!             if let Message::Text(text) = message {
//!                 if socket.send(Message::Text(text)).await.is_err() {
//!                     return;
//!                 }
//!             }
//!         }
//!     }))
//! }
//!
//! let app = rondo::App::new(rondo::Config::default()).get("/echo", echo);
//! ```

use std::future::Future;

use futures_util::{SinkExt, StreamExt};
use http::header::{
    HeaderValue, CONNECTION, HOST, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::request::Parts;
use http::{Method, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;

pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
pub use tokio_tungstenite::tungstenite::protocol::CloseFrame;
pub use tokio_tungstenite::tungstenite::{Error as WebSocketError, Message, Utf8Bytes};

use crate::body::{Body, Response};
use crate::connections::{UpgradeTicket, Upgraded};
use crate::context::AppContext;
use crate::extract::FromRequestParts;
use crate::respond::{ErrorPage, RequestHead, Responder};

/// The raw tungstenite stream of an upgraded connection.
pub type WebSocketStream = tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The default read buffer of a socket: small, since it is most of an idle socket's memory;
/// a larger message still arrives (the buffer grows while it is read).
pub const DEFAULT_READ_BUFFER: usize = 4 * 1024;
/// The default limit on one message (and one frame), in bytes.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// A request to upgrade to a WebSocket, as a controller argument; see the [module](self)
/// docs. Extraction fails with 400 (426 for a wrong version) when the request is not a
/// valid WebSocket handshake.
pub struct WebSocketUpgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    ticket: Option<UpgradeTicket>,
    origin: Option<HeaderValue>,
    host: Option<HeaderValue>,
    config: WebSocketConfig,
}

impl std::fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why a request is not a WebSocket handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeRejection {
    /// Not a `GET`.
    #[error("a WebSocket handshake is a GET request")]
    NotGet,
    /// No `Connection: upgrade` and `Upgrade: websocket`.
    #[error("expected the headers Connection: upgrade and Upgrade: websocket")]
    NotUpgrade,
    /// `Sec-WebSocket-Version` is not 13 (answered 426 with the version to use).
    #[error("unsupported Sec-WebSocket-Version; this server speaks 13")]
    Version,
    /// No `Sec-WebSocket-Key`.
    #[error("missing Sec-WebSocket-Key")]
    NoKey,
    /// The connection cannot be upgraded (HTTP/2, or a request made in-process).
    #[error("this connection cannot be upgraded (WebSocket needs HTTP/1.1)")]
    NotUpgradable,
}

impl Responder for UpgradeRejection {
    fn respond(self, head: &RequestHead) -> Response {
        let status = match self {
            Self::Version => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = ErrorPage::new(status, self.to_string()).respond(head);
        if self == Self::Version {
            response
                .headers_mut()
                .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }
}

fn header_has_token(parts: &Parts, name: http::header::HeaderName, token: &str) -> bool {
    parts
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl FromRequestParts for WebSocketUpgrade {
    type Rejection = UpgradeRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _app: &AppContext,
    ) -> Result<Self, UpgradeRejection> {
        if parts.method != Method::GET {
            return Err(UpgradeRejection::NotGet);
        }
        if !header_has_token(parts, CONNECTION, "upgrade")
            || !header_has_token(parts, UPGRADE, "websocket")
        {
            return Err(UpgradeRejection::NotUpgrade);
        }
        if parts
            .headers
            .get(SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(UpgradeRejection::Version);
        }
        let key = parts
            .headers
            .get(SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or(UpgradeRejection::NoKey)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeRejection::NotUpgradable)?;
        Ok(Self {
            key,
            on_upgrade,
            ticket: parts.extensions.remove::<UpgradeTicket>(),
            origin: parts.headers.get(ORIGIN).cloned(),
            host: parts.headers.get(HOST).cloned(),
            config: WebSocketConfig::default()
                .read_buffer_size(DEFAULT_READ_BUFFER)
                .write_buffer_size(DEFAULT_READ_BUFFER)
                .max_message_size(Some(DEFAULT_MAX_MESSAGE))
                .max_frame_size(Some(DEFAULT_MAX_MESSAGE)),
        })
    }
}

impl WebSocketUpgrade {
    /// The `Origin` header: the site of the page that opened the socket (browsers always
    /// send it; other clients usually do not).
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_ref().and_then(|v| v.to_str().ok())
    }

    /// Whether the handshake's origin may open this socket: no `Origin` at all (not a
    /// browser, so no cookie was sent on someone else's behalf), the origin of the request's
    /// own `Host` over http or https, or one of `allowed`. Entries are origins
    /// (`https://shop.example`, `http://127.0.0.1:8080`), `*` for any, or
    /// `https://*.shop.example` for its subdomains; compared without case.
    pub fn origin_allowed(&self, allowed: &[String]) -> bool {
        let Some(origin) = &self.origin else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let same_host = self
            .host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase)
            .is_some_and(|host| {
                origin == format!("http://{host}") || origin == format!("https://{host}")
            });
        same_host || allowed.iter().any(|entry| origin_matches(entry, &origin))
    }

    /// The largest message accepted (default 64 KiB); a larger one closes the socket with
    /// code 1009.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config = self.config.max_message_size(Some(bytes));
        self
    }

    /// The largest frame accepted (default 64 KiB).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config = self.config.max_frame_size(Some(bytes));
        self
    }

    /// The socket's read buffer (default [`DEFAULT_READ_BUFFER`]).
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.config = self.config.read_buffer_size(bytes);
        self
    }

    /// Answers `101 Switching Protocols`; once the client has it, `callback` runs with the
    /// socket in a task of its own (on the thread that served the handshake).
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept =
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        // Counted from now, so a shutdown that begins during the handshake waits for it.
        let guard = self.ticket.as_ref().map(UpgradeTicket::admit);
        let config = self.config;
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(err) => {
                    tracing::debug!(error = %err, "WebSocket upgrade failed");
                    return;
                }
            };
            let stream = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            let closing = guard.as_ref().map(Upgraded::closing).unwrap_or_default();
            callback(WebSocket {
                stream,
                closing,
                _guard: guard,
            })
            .await;
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

/// Whether `origin` (lower-cased, no trailing slash) matches the allowed-origin `entry`.
fn origin_matches(entry: &str, origin: &str) -> bool {
    let entry = entry.trim().trim_end_matches('/').to_ascii_lowercase();
    if entry == "*" {
        return true;
    }
    if let Some((scheme, host)) = entry.split_once("://*.") {
        return origin
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .and_then(|rest| rest.strip_suffix(host))
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'));
    }
    entry == origin
}

/// The origin (`scheme://host[:port]`) of a URL such as `[app] url`, lower-cased.
pub fn origin_of(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!("{scheme}://{authority}").to_ascii_lowercase()
}

/// An upgraded WebSocket connection; see the [module](self) docs.
pub struct WebSocket {
    stream: WebSocketStream,
    closing: CancellationToken,
    /// Counts this socket for graceful shutdown until it is dropped.
    _guard: Option<Upgraded>,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket").finish_non_exhaustive()
    }
}

impl WebSocket {
    /// The next message; `None` once the connection is closed. A message or frame over the
    /// limits closes the connection with code 1009, a protocol violation with 1002, before
    /// the error is returned.
    pub async fn recv(&mut self) -> Option<Result<Message, WebSocketError>> {
        let next = self.stream.next().await;
        if let Some(Err(err)) = &next {
            match err {
                WebSocketError::Capacity(_) => self.close(CloseCode::Size, "message too big").await,
                WebSocketError::Protocol(_) | WebSocketError::Utf8(_) => {
                    self.close(CloseCode::Protocol, "protocol error").await;
                }
                _ => {}
            }
        }
        next
    }

    /// Sends a message and flushes it.
    ///
    /// # Errors
    ///
    /// The connection is closed or broken.
    pub async fn send(&mut self, message: Message) -> Result<(), WebSocketError> {
        self.stream.send(message).await
    }

    /// Completes when the server shuts down and every HTTP request has finished: close the
    /// socket then ([`WebSocket::close_going_away`]).
    pub fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        self.closing.clone().cancelled_owned()
    }

    /// Whether [`WebSocket::closing`] has completed.
    pub fn is_closing(&self) -> bool {
        self.closing.is_cancelled()
    }

    /// Closes with code 1001 ("going away": the server is shutting down) and waits a little
    /// for the client's answer.
    pub async fn close_going_away(&mut self) {
        self.close(CloseCode::Away, "server shutting down").await;
    }

    /// Closes with `code` and `reason` (at most 123 bytes; cut if longer), waiting at most a
    /// second for the client's close frame.
    pub async fn close(&mut self, code: CloseCode, reason: &str) {
        let mut cut = reason.len().min(123);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason[..cut].to_owned()),
        };
        let closed = async {
            if self.stream.close(Some(frame)).await.is_err() {
                return;
            }
            // Read until the client's close frame (or the end) so the close completes.
            while let Some(Ok(_)) = self.stream.next().await {}
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), closed).await;
    }

    /// The tungstenite stream, for what this type does not wrap (splitting, batching).
    pub fn get_mut(&mut self) -> &mut WebSocketStream {
        &mut self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        assert!(origin_matches(
            "https://shop.example",
            "https://shop.example"
        ));
        assert!(origin_matches(
            "HTTPS://Shop.Example/",
            "https://shop.example"
        ));
        assert!(!origin_matches(
            "https://shop.example",
            "http://shop.example"
        ));
        assert!(!origin_matches(
            "https://shop.example",
            "https://shop.example.evil"
        ));
        assert!(origin_matches("*", "https://anything"));
        assert!(origin_matches(
            "https://*.shop.example",
            "https://eu.shop.example"
        ));
        assert!(!origin_matches(
            "https://*.shop.example",
            "https://shop.example"
        ));
        assert!(!origin_matches(
            "https://*.shop.example",
            "https://evilshop.example"
        ));
        assert!(!origin_matches(
            "https://*.shop.example",
            "http://eu.shop.example"
        ));
    }

    #[test]
    fn origin_of_a_url() {
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(
            origin_of("https://Shop.example/app?x#y"),
            "https://shop.example"
        );
    }
}
