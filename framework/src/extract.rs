//! Controller arguments: values a controller asks for, pulled out of the request.
//!
//! A controller is an async function whose arguments implement [`FromRequestParts`] (they
//! read the head: path, query, headers, app state) except the last, which may implement
//! [`FromRequest`] and consume the body ([`Json`], [`Form`], [`String`], [`Bytes`]). The
//! body can be read only once, after everything else: so a body extractor must be the last
//! argument, and a controller takes at most one. The compiler reports a body extractor in
//! the wrong place only as "not a Rondo controller"; `#[rondo::debug_handler]` on the
//! controller names the argument instead.
//! A failed extraction never reaches the controller: its typed [`Rejection`] answers instead,
//! with the status code chosen here on purpose (400 malformed, 413 too large, 415 wrong media
//! type, 422 well-formed but wrong shape).

use std::future::Future;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use crate::body::{Request, Response};
use crate::context::{AppContext, Limits, StateNeed};
use crate::respond::Json;
use crate::respond::{ErrorPage, RequestHead, Responder};
use crate::routing::PathParams;

mod path;

/// Why a controller argument could not be extracted; answers with the matching status code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The body has the wrong `Content-Type` (415).
    #[error("expected a request with Content-Type: {expected}")]
    UnsupportedMediaType {
        /// The media type the extractor reads.
        expected: &'static str,
    },
    /// The body is larger than `[http] max_body_bytes` (413).
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The client did not send the whole body within `[http] body_read_timeout` (408; the
    /// connection is closed).
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// The body could not be read from the connection (400).
    #[error("failed to read the request body: {0}")]
    BodyRead(String),
    /// The body is not valid JSON (400).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON of the wrong shape (422).
    #[error("unexpected JSON: {0}")]
    JsonData(String),
    /// The form body could not be decoded into the expected fields (422).
    #[error("invalid form: {0}")]
    InvalidForm(String),
    /// The body is not valid UTF-8 where text was expected (400).
    #[error("request body is not valid UTF-8")]
    InvalidUtf8,
    /// The query string could not be decoded (400).
    #[error("invalid query string: {0}")]
    InvalidQuery(String),
    /// A path parameter could not be decoded (400).
    #[error("invalid path parameter: {0}")]
    InvalidPath(String),
    /// A required header is missing or not valid text (400).
    #[error("missing or invalid header {0}")]
    Header(&'static str),
    /// The controller asked for `State<T>` that the app never registered (500; a bug in the
    /// app, logged with the type name).
    #[error("internal server error")]
    MissingState(&'static str),
}

impl Rejection {
    /// The status code this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::JsonData(_) | Self::InvalidForm(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MissingState(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::BodyRead(_)
            | Self::InvalidJson(_)
            | Self::InvalidUtf8
            | Self::InvalidQuery(_)
            | Self::InvalidPath(_)
            | Self::Header(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl Responder for Rejection {
    fn respond(self, head: &RequestHead) -> Response {
        if let Self::MissingState(type_name) = &self {
            tracing::error!(
                state = type_name,
                "State<T> requested but never registered with App::state"
            );
        }
        let page = ErrorPage::new(self.status(), self.to_string());
        // The rest of a trickled body is not worth waiting for: the connection goes.
        if let Self::BodyTimeout(_) = self {
            page.header(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            )
        } else {
            page
        }
        .respond(head)
    }
}

/// A controller argument built from the request head.
///
/// Every argument of a controller but the last must implement it; the last may implement
/// [`FromRequest`] instead. Implement it for your own types to extract them from headers,
/// the path or app state.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a controller argument before the last one",
    label = "does not implement `FromRequestParts`",
    note = "every argument but the last must read only the request head (`FromRequestParts`): `Path`, `Query`, `State`, `Session`, `HeaderMap`, `Method`, `Uri`, or your own type",
    note = "a body extractor (`Json`, `Form`, `CsrfForm`, `String`, `Bytes`, `Request`) reads the body, which comes last: it must be the last argument, and only one"
)]
pub trait FromRequestParts: Sized + Send {
    /// The answer when extraction fails.
    type Rejection: Responder;

    /// Whether this argument may defer work with [`crate::respond::defer`] (a session does);
    /// controllers taking such an argument run inside a request scope.
    const DEFERS: bool = false;

    /// The app state this argument needs, if any (see [`StateNeed`]): the app refuses to
    /// start when a route's argument needs state that was never registered.
    fn state_need() -> Option<StateNeed> {
        None
    }

    /// Extracts the value.
    fn from_request_parts(
        parts: &mut Parts,
        app: &AppContext,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send;
}

/// A controller argument that may consume the whole request, body included. Only the last
/// argument of a controller can be one.
///
/// Every [`FromRequestParts`] type is one too, so the last argument may also be a head
/// extractor.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a controller argument",
    label = "implements neither `FromRequestParts` nor `FromRequest`",
    note = "controller arguments are extractors: `Path`, `Query`, `State`, `Session`, `HeaderMap`, `Method`, `Uri`, and, last, one body extractor: `Json`, `Form`, `CsrfForm`, `String`, `Bytes` or `Request`",
    note = "for an app-wide value, register it with `App::state` and take `State<T>`; for your own type, implement `FromRequestParts`"
)]
pub trait FromRequest: Sized + Send {
    /// The answer when extraction fails.
    type Rejection: Responder;

    /// Whether this argument may defer work with [`crate::respond::defer`]; see
    /// [`FromRequestParts::DEFERS`].
    const DEFERS: bool = false;

    /// The app state this argument needs, if any; see [`FromRequestParts::state_need`].
    fn state_need() -> Option<StateNeed> {
        None
    }

    /// Extracts the value.
    fn from_request(
        req: Request,
        app: &AppContext,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send;
}

impl<T: FromRequestParts> FromRequest for T {
    type Rejection = <T as FromRequestParts>::Rejection;
    const DEFERS: bool = <T as FromRequestParts>::DEFERS;

    fn state_need() -> Option<StateNeed> {
        <T as FromRequestParts>::state_need()
    }

    async fn from_request(req: Request, app: &AppContext) -> Result<Self, Self::Rejection> {
        let (mut parts, _body) = req.into_parts();
        T::from_request_parts(&mut parts, app).await
    }
}

impl FromRequest for Request {
    type Rejection = std::convert::Infallible;
    // The raw request is how controllers call `SessionManager::start` by hand.
    const DEFERS: bool = true;

    async fn from_request(req: Request, _app: &AppContext) -> Result<Self, Self::Rejection> {
        Ok(req)
    }
}

impl Responder for std::convert::Infallible {
    fn respond(self, _head: &RequestHead) -> Response {
        match self {}
    }
}

/// Typed path parameters: `Path<u64>` for one, a tuple for several in order, or a struct
/// deserialized by parameter name.
///
/// The parameters are the route pattern's `{name}` segments and its `{*rest}` tail (see
/// [`App::route`](crate::App::route)), percent-decoded. A value that does not parse answers
/// 400: `{"error":"invalid path parameter: cannot parse \"abc\" as u32","status":400}`.
///
/// # Examples
///
/// ```
/// use rondo::{App, Config, Path};
/// use serde::Deserialize;
///
/// // GET /users/7
/// async fn user(Path(id): Path<u64>) -> String {
///     format!("user {id}")
/// }
///
/// // GET /users/7/files/docs/a.txt: (7, "docs/a.txt")
/// async fn file(Path((id, rest)): Path<(u64, String)>) -> String {
///     format!("user {id}: {rest}")
/// }
///
/// #[derive(Deserialize)]
/// struct Post {
///     year: u16,
///     slug: String,
/// }
///
/// // GET /posts/2026/hello, by name
/// async fn post(Path(post): Path<Post>) -> String {
///     format!("{}: {}", post.year, post.slug)
/// }
///
/// let app = App::new(Config::default())
///     .get("/users/{id}", user)
///     .get("/users/{id}/files/{*rest}", file)
///     .get("/posts/{year}/{slug}", post);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts for Path<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _app: &AppContext) -> Result<Self, Rejection> {
        let empty = PathParams::default();
        let params = parts.extensions.get::<PathParams>().unwrap_or(&empty);
        path::deserialize(params)
            .map(Path)
            .map_err(Rejection::InvalidPath)
    }
}

/// The query string, deserialized with `serde_urlencoded` (an absent query is empty).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts for Query<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _app: &AppContext) -> Result<Self, Rejection> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(Query)
            .map_err(|e| Rejection::InvalidQuery(e.to_string()))
    }
}

/// An application singleton registered with [`crate::App::state`] (the Resonance service
/// container): database pools, the session manager, configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct State<T>(pub T);

impl<T: Clone + Send + Sync + 'static> FromRequestParts for State<T> {
    type Rejection = Rejection;
    // A singleton such as the session manager can start sessions.
    const DEFERS: bool = true;

    fn state_need() -> Option<StateNeed> {
        Some(StateNeed::of::<T>())
    }

    async fn from_request_parts(_parts: &mut Parts, app: &AppContext) -> Result<Self, Rejection> {
        app.state::<T>()
            .map(State)
            .ok_or(Rejection::MissingState(std::any::type_name::<T>()))
    }
}

impl FromRequestParts for HeaderMap {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _app: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts.headers.clone())
    }
}

impl FromRequestParts for Method {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _app: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts.method.clone())
    }
}

impl FromRequestParts for Uri {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _app: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts.uri.clone())
    }
}

/// Whether the request's `Content-Type` is `expected` or, for JSON, a `+json` type.
fn has_media_type(headers: &HeaderMap, expected: &str) -> bool {
    let Some(value) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == expected || (expected == "application/json" && media.ends_with("+json"))
}

/// Reads the whole body, refusing more than `max_body_bytes` (by `Content-Length` first, so a
/// large upload is refused before it is read) and giving up after `body_read_timeout`.
pub(crate) async fn read_body(req: Request, limits: &Limits) -> Result<Bytes, Rejection> {
    let limit = limits.max_body_bytes;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Rejection::PayloadTooLarge { limit });
    }
    let collect = Limited::new(req.into_body(), limit).collect();
    let Ok(collected) = tokio::time::timeout(limits.body_read_timeout, collect).await else {
        return Err(Rejection::BodyTimeout(limits.body_read_timeout));
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(Rejection::PayloadTooLarge { limit })
        }
        Err(err) => Err(Rejection::BodyRead(err.to_string())),
    }
}

impl<T: DeserializeOwned + Send> FromRequest for Json<T> {
    type Rejection = Rejection;

    async fn from_request(req: Request, app: &AppContext) -> Result<Self, Rejection> {
        if !has_media_type(req.headers(), "application/json") {
            return Err(Rejection::UnsupportedMediaType {
                expected: "application/json",
            });
        }
        let bytes = read_body(req, app.limits()).await?;
        json_body(&bytes).map(Json)
    }
}

/// `bytes` as a `T`: 400 for a body that is not JSON at all (malformed or cut short), 422 for
/// JSON of the wrong shape. A typed parse stops at the first field it cannot use, so a body
/// cut short after a wrong field would look like a shape error: such a body is parsed again,
/// loosely, to tell the two apart (only on the error path).
fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Rejection> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => Rejection::JsonData(e.to_string()),
                Err(syntax) => Rejection::InvalidJson(syntax.to_string()),
            }
        }
        _ => Rejection::InvalidJson(e.to_string()),
    })
}

/// A URL-encoded form body (`application/x-www-form-urlencoded`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest for Form<T> {
    type Rejection = Rejection;

    async fn from_request(req: Request, app: &AppContext) -> Result<Self, Rejection> {
        const FORM: &str = "application/x-www-form-urlencoded";
        if !has_media_type(req.headers(), FORM) {
            return Err(Rejection::UnsupportedMediaType { expected: FORM });
        }
        let bytes = read_body(req, app.limits()).await?;
        serde_urlencoded::from_bytes(&bytes)
            .map(Form)
            .map_err(|e| Rejection::InvalidForm(e.to_string()))
    }
}

impl FromRequest for Bytes {
    type Rejection = Rejection;

    async fn from_request(req: Request, app: &AppContext) -> Result<Self, Rejection> {
        read_body(req, app.limits()).await
    }
}

impl FromRequest for String {
    type Rejection = Rejection;

    async fn from_request(req: Request, app: &AppContext) -> Result<Self, Rejection> {
        let bytes = read_body(req, app.limits()).await?;
        String::from_utf8(bytes.into()).map_err(|_| Rejection::InvalidUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Item {
        sku: String,
        qty: u32,
    }

    /// Bodies that are not JSON, or are cut short, are 400 whatever the type asked for;
    /// well-formed JSON of the wrong shape is 422.
    #[test]
    fn malformed_is_400_and_misshapen_is_422() {
        for body in [
            &br#"{"sku":"A","qty":"#[..],
            br#"{"sku":"A""#,
            br#"{"sku":3,"qty":"#,
            b"{",
            b"not json",
            br#"{"sku":"A","qty":1}x"#,
        ] {
            let status = |r: Result<(), Rejection>| r.err().map(|e| e.status());
            let item = status(json_body::<Item>(body).map(drop));
            let value = status(json_body::<serde_json::Value>(body).map(drop));
            assert_eq!(item, Some(StatusCode::BAD_REQUEST), "{body:?}");
            assert_eq!(value, Some(StatusCode::BAD_REQUEST), "{body:?}");
        }
        let wrong = json_body::<Item>(br#"{"sku":3,"qty":1}"#)
            .err()
            .map(|e| e.status());
        assert_eq!(wrong, Some(StatusCode::UNPROCESSABLE_ENTITY));
    }
}
