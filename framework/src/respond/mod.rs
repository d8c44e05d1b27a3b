//! Responders: how a controller's return value becomes an HTTP response.
//!
//! Two traits, as in Resonance's responder model made idiomatic:
//!
//! - [`IntoResponse`] is for values that know their response without looking at the request:
//!   strings, bytes, status codes, [`Json`], [`Html`], [`Redirect`].
//! - [`Responder`] is what a controller returns. It gets the [`RequestHead`] (method and
//!   `Accept`), so it can negotiate, and it may answer with *another* responder: a
//!   `Result<T, E>` answers with `T` or `E`, `(StatusCode, R)` answers with `R` and then sets the
//!   status, an error page answers in HTML or JSON depending on what the client accepts. Every
//!   `IntoResponse` type is a `Responder` that ignores the request.
//!
//! Error pages ([`ErrorPage`]) are responders, so every error that reaches a client goes
//! through one place that picks the format and the status code.

mod error_page;
mod finish;
pub mod sse;
mod types;

pub use error_page::{escape_html, ErrorPage};
pub(crate) use finish::run as run_finishing;
pub use finish::{defer, Finisher};
pub use sse::{Event, LastEventId, Sse};
pub use types::{Html, Json, Redirect};

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};

use crate::body::{Body, Response};

/// What a responder may know about the request it answers.
///
/// Kept small on purpose: it is captured before the controller consumes the request, on
/// every request.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    method: Method,
    accept: Option<HeaderValue>,
}

impl RequestHead {
    /// Captures the head of a request.
    pub fn new(method: &Method, headers: &HeaderMap) -> Self {
        Self {
            method: method.clone(),
            accept: headers.get(ACCEPT).cloned(),
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The raw `Accept` header, if any.
    pub fn accept(&self) -> Option<&HeaderValue> {
        self.accept.as_ref()
    }

    /// Whether the client prefers HTML over JSON (a browser), judged by `Accept` q-values.
    /// Without a preference, JSON wins: API clients and tools rarely ask for HTML.
    pub fn prefers_html(&self) -> bool {
        let Some(accept) = self.accept.as_ref().and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let (mut html, mut json) = (0.0f32, 0.0f32);
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "text/html" | "application/xhtml+xml" => html = html.max(q),
                "application/json" => json = json.max(q),
                _ => {}
            }
        }
        html > json
    }
}

/// A value that knows its response without looking at the request.
pub trait IntoResponse {
    /// Builds the response.
    fn into_response(self) -> Response;
}

/// A value that answers a request; what controllers return.
///
/// Implement it for your own types to build responses that depend on the request (content
/// negotiation, templates) or that delegate to another responder.
///
/// # Examples
///
/// ```
/// use rondo::{Html, Json, RequestHead, Responder, Response};
///
/// /// Answers with HTML for browsers and JSON for everybody else.
/// struct Greeting(String);
///
/// impl Responder for Greeting {
///     fn respond(self, head: &RequestHead) -> Response {
///         if head.prefers_html() {
///             Html(format!("<p>{}</p>", self.0)).respond(head)
///         } else {
///             Json(serde_json::json!({ "greeting": self.0 })).respond(head)
///         }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a responder, so a controller cannot return it",
    label = "does not implement `Responder`",
    note = "return `String`, `&'static str`, `Json(value)`, `Html(..)`, `Redirect`, `StatusCode`, `(StatusCode, R)`, `ErrorPage`, or `Result<T, E>` where `T` and `E` are responders",
    note = "wrap a `serde_json::Value` or any `Serialize` type in `Json(..)`; turn an `Option` into a `Result` (`.ok_or(ErrorPage::new(StatusCode::NOT_FOUND, \"...\"))`); give an error type `impl Responder` or `.map_err` it to an `ErrorPage`"
)]
pub trait Responder: Send {
    /// Answers the request described by `head`.
    fn respond(self, head: &RequestHead) -> Response;
}

impl<T: IntoResponse + Send> Responder for T {
    fn respond(self, _head: &RequestHead) -> Response {
        self.into_response()
    }
}

impl<T: Responder, E: Responder> Responder for Result<T, E> {
    fn respond(self, head: &RequestHead) -> Response {
        match self {
            Ok(ok) => ok.respond(head),
            Err(err) => err.respond(head),
        }
    }
}

impl<R: Responder> Responder for (StatusCode, R) {
    fn respond(self, head: &RequestHead) -> Response {
        let mut response = self.1.respond(head);
        *response.status_mut() = self.0;
        response
    }
}

impl<R: Responder> Responder for (StatusCode, HeaderMap, R) {
    fn respond(self, head: &RequestHead) -> Response {
        let mut response = (self.0, self.2).respond(head);
        response.headers_mut().extend(self.1);
        response
    }
}

/// Builds a response with a body and a content type.
pub(crate) fn with_body(content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

const TEXT: &str = "text/plain; charset=utf-8";

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        with_body(TEXT, Body::from(self))
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        with_body(TEXT, Body::from(self))
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response {
        with_body("application/octet-stream", Body::from(self))
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        with_body("application/octet-stream", Body::from(self))
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self;
        response
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(Body::empty())
    }
}
