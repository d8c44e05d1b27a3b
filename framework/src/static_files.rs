//! Serving a directory of files: stylesheets, scripts, images, downloads.
//!
//! [`StaticFiles`] is a route handler. The file is named by the route's **last path
//! parameter**, conventionally a catch-all: with `app.get("/static/{*path}", …)`, a request
//! for `/static/css/site.css` serves `css/site.css` from the directory. A route without a
//! parameter serves the directory itself, that is its `index.html`.
//!
//! The HTTP work is `tower-http`'s `ServeDir`: content types by extension, `Last-Modified`
//! and a strong `ETag` (from size and modification time), the precondition headers in
//! RFC 9110's order, single byte ranges and precompressed variants. Around it, this module
//! adds what a Rondo app expects:
//!
//! - **Confinement.** The path is refused (404) before any file is touched when it holds a
//!   `..` or `.` segment, an empty segment, a backslash, a NUL, a leading `/` (an absolute
//!   path), a segment starting with `.` (dotfiles such as `.env` or `.git/`, unless
//!   [`StaticFiles::dotfiles`] allows them), or is unreasonably long. Percent-decoding
//!   happens once, in the router, so `%2e%2e` is a `..` here. Symlinks are followed only
//!   while their target stays inside the directory (see `confined.rs`).
//! - **Directories.** `dir/` serves `dir/index.html` when present and 404 otherwise (never
//!   a listing); `dir` without the slash is redirected (307) to `dir/`, so that the page's
//!   relative links resolve.
//! - **`If-Range`**, which `ServeDir` ignores: a range request whose `If-Range` names
//!   another version of the file gets the whole file (200), never a piece of the new one
//!   to patch into the old.
//! - **Error pages.** Every error answer is the app's negotiated [`ErrorPage`] (HTML or
//!   JSON), not an empty body; a file that exists but cannot be read is logged and answers
//!   404, any other I/O failure 500.
//! - **`Cache-Control`** on 200, 206 and 304 answers, when set.
//!
//! A directory missing at start-up is not an error: routes are declared before deployment
//! steps may have run, and the directory may appear later. It is logged (a warning, once
//! per handler), and its requests answer 404 until it exists.
//!
//! # Conditional and range requests
//!
//! Evaluated in RFC 9110's order (§13.2.2), against the file actually chosen (a `.br`
//! variant has validators of its own):
//!
//! | Request | Answer |
//! |---|---|
//! | `If-Match` naming no current strong tag (`*` matches any) | 412 |
//! | else `If-Unmodified-Since` earlier than `Last-Modified` | 412 |
//! | `If-None-Match` naming the current tag (weakly compared), or `*` | 304 |
//! | else `If-Modified-Since` at or after `Last-Modified` | 304 |
//! | `Range: bytes=a-b` (or `a-`, `-n`) within the file | 206, `Content-Range: bytes a-b/len` |
//! | a range starting past the end, malformed, or several ranges | 416, `Content-Range: bytes */len` |
//! | `Range` with an `If-Range` naming another version (tag or date) | 200, the whole file |
//! | `HEAD` | `GET`'s headers, `Content-Length` included, no body |
//!
//! A 304 carries `ETag`, `Last-Modified`, `Cache-Control` and `Vary` as the 200 would.

mod confined;
mod path;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, LOCATION, RANGE, VARY,
};
use http::{HeaderMap, Method, StatusCode};
use tower_http::services::fs::{DefaultServeDirFallback, ServeDir, ServeFileSystemResponseBody};

use crate::body::{Body, Request, Response};
use crate::context::AppContext;
use crate::handler::{BoxFuture, Handler};
use crate::respond::{ErrorPage, RequestHead, Responder};
use crate::routing::PathParams;
use confined::Confined;
use path::{checked, engine_uri};

/// A directory served over HTTP: a route handler, for `GET` (and so `HEAD`) routes.
///
/// See the [module documentation](self) for which file a request names, what is refused,
/// and what each conditional or range request answers.
///
/// # Examples
///
/// ```
/// use rondo::{App, Config, StaticFiles};
///
/// let app = App::new(Config::default())
///     // `/static/css/site.css` serves `static/css/site.css`, or its `.br`/`.gz` variant.
///     .get(
///         "/static/{*path}",
///         StaticFiles::new("static")
///             .cache_control("public, max-age=3600")
///             .precompressed(true),
///     )
///     // A route without a parameter serves the directory's `index.html`.
///     .get("/", StaticFiles::new("public"));
/// ```
#[derive(Debug, Clone)]
pub struct StaticFiles {
    dir: Arc<Path>,
    backend: Confined,
    cache_control: Option<HeaderValue>,
    precompressed: bool,
    dotfiles: bool,
}

impl StaticFiles {
    /// Serves the files under `dir` (relative to the working directory unless absolute).
    ///
    /// A missing directory is logged, not refused: see the [module documentation](self).
    ///
    /// # Examples
    ///
    /// ```
    /// let files = rondo::StaticFiles::new("static");
    /// ```
    pub fn new(dir: impl AsRef<Path>) -> Self {
        // `ServeDir` resolves its base as `./dir`; the backend confines to the same path.
        let root = PathBuf::from(".").join(dir.as_ref());
        Self {
            dir: dir.as_ref().into(),
            backend: Confined::new(root),
            cache_control: None,
            precompressed: false,
            dotfiles: false,
        }
    }

    /// Sends `Cache-Control: value` with every file (200, 206 and 304 answers; not with
    /// errors). By default none is sent, and browsers revalidate with `If-None-Match` or
    /// `If-Modified-Since`.
    ///
    /// A value that cannot be a header (a control character) is logged and not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// let files = rondo::StaticFiles::new("static").cache_control("public, max-age=3600");
    /// ```
    #[must_use]
    pub fn cache_control(mut self, value: &str) -> Self {
        self.cache_control = match HeaderValue::from_str(value) {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::error!(value, "static files: not a valid Cache-Control value");
                None
            }
        };
        self
    }

    /// Whether to serve `file.br` or `file.gz` in place of `file` when they exist and the
    /// client's `Accept-Encoding` takes them (Brotli first, at equal q-values), with
    /// `Content-Encoding` set. Every answer then carries `Vary: Accept-Encoding`, so that
    /// caches keep the variants apart. Off by default.
    ///
    /// # Examples
    ///
    /// ```
    /// let files = rondo::StaticFiles::new("static").precompressed(true);
    /// ```
    #[must_use]
    pub fn precompressed(mut self, on: bool) -> Self {
        self.precompressed = on;
        self
    }

    /// Whether files and directories whose name starts with `.` are served. Off by default,
    /// so that a `.env` or `.git/` left in the directory stays private; turn it on for
    /// `.well-known/`.
    ///
    /// # Examples
    ///
    /// ```
    /// let files = rondo::StaticFiles::new("public").dotfiles(true);
    /// ```
    #[must_use]
    pub fn dotfiles(mut self, on: bool) -> Self {
        self.dotfiles = on;
        self
    }

    /// The `ServeDir` of one request: cheap to build (a path and two flags), and its
    /// `try_call` needs it mutable.
    fn engine(&self) -> ServeDir<DefaultServeDirFallback, Confined> {
        let engine = ServeDir::with_backend(&self.dir, self.backend.clone());
        if self.precompressed {
            engine.precompressed_br().precompressed_gzip()
        } else {
            engine
        }
    }

    async fn serve(self, req: Request, head: RequestHead) -> Response {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return ErrorPage::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"))
                .respond(&head);
        }
        let (parts, _body) = req.into_parts();
        let named = parts
            .extensions
            .get::<PathParams>()
            .and_then(|params| params.as_slice().last())
            .map_or("", |(_, value)| value.as_str());
        let Some(uri) = checked(named, self.dotfiles).and_then(engine_uri) else {
            return not_found(&head);
        };
        // `If-Range` needs the answer's validators, which only the engine knows: ask with
        // the range, and again without it when the validator names another version.
        let if_range = parts.headers.get(IF_RANGE).cloned();
        let retry = (if_range.is_some() && parts.headers.contains_key(RANGE))
            .then(|| parts.headers.clone());
        let mut answer = self.ask(&parts.method, &uri, parts.headers).await;
        if let (Some(if_range), Some(mut headers)) = (if_range, retry) {
            // Decided before the await: the engine's body is `Send` but not `Sync`, so no
            // reference to the answer may live across it.
            let range_stands = match &answer {
                Ok(ranged) => {
                    !matches!(
                        ranged.status(),
                        StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE
                    ) || if_range_holds(&if_range, ranged.headers())
                }
                Err(_) => true,
            };
            if !range_stands {
                headers.remove(RANGE);
                answer = self.ask(&parts.method, &uri, headers).await;
            }
        }
        match answer {
            Ok(response) => self.finish(response, &parts.uri, &head),
            Err(err) => io_error(&err, parts.uri.path(), &head),
        }
    }

    /// Asks the engine for `uri` (a request of headers only: it reads no body).
    async fn ask(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: HeaderMap,
    ) -> std::io::Result<http::Response<ServeFileSystemResponseBody>> {
        let mut request = http::Request::new(());
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;
        self.engine().try_call(request).await
    }

    /// The engine's answer as the client gets it: files with their caching headers, the
    /// directory redirect pointing at the path the client asked for, errors as error pages.
    fn finish(
        &self,
        response: http::Response<ServeFileSystemResponseBody>,
        asked: &http::Uri,
        head: &RequestHead,
    ) -> Response {
        let status = response.status();
        if status.is_client_error() || status.is_server_error() {
            return error_page(status, response.headers(), asked.path(), head);
        }
        let mut response = response.map(Body::new);
        let headers = response.headers_mut();
        if status == StatusCode::TEMPORARY_REDIRECT {
            // The engine knows only the file path, not the route it sits under.
            let location = match asked.query() {
                Some(query) => format!("{}/?{query}", asked.path()),
                None => format!("{}/", asked.path()),
            };
            match HeaderValue::from_str(&location) {
                Ok(location) => headers.insert(LOCATION, location),
                Err(_) => return not_found(head),
            };
            return response;
        }
        if let Some(value) = &self.cache_control {
            headers.insert(CACHE_CONTROL, value.clone());
        }
        // The engine varies its 200 and 206 answers; a 304 stands for them (RFC 9110 §15.4.5).
        if self.precompressed && status == StatusCode::NOT_MODIFIED {
            headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        }
        response
    }
}

/// Marks [`StaticFiles`] as a [`Handler`] (`Args` tells handler kinds apart); never built.
///
/// # Examples
///
/// ```
/// use rondo::{static_files::StaticFilesArgs, Handler, StaticFiles};
///
/// fn route<H: Handler<A>, A>(_handler: H) {}
/// route::<StaticFiles, StaticFilesArgs>(StaticFiles::new("static"));
/// ```
#[derive(Debug)]
pub enum StaticFilesArgs {}

// Kept out of the hints of a controller that does not compile: they would suggest it.
#[diagnostic::do_not_recommend]
impl Handler<StaticFilesArgs> for StaticFiles {
    fn call(
        &self,
        req: Request,
        _app: &AppContext,
        head: RequestHead,
    ) -> BoxFuture<'static, Response> {
        Box::pin(self.clone().serve(req, head))
    }
}

/// Whether `If-Range` lets the range stand (RFC 9110 §13.1.5): an entity tag must equal the
/// answer's `ETag` strongly (a weak one never does), a date must equal its `Last-Modified`.
fn if_range_holds(if_range: &HeaderValue, answer: &HeaderMap) -> bool {
    let value = if_range.as_bytes();
    if value.starts_with(b"W/") {
        false
    } else if value.starts_with(b"\"") {
        answer.get(ETAG).is_some_and(|tag| tag.as_bytes() == value)
    } else {
        answer
            .get(LAST_MODIFIED)
            .is_some_and(|date| date.as_bytes() == value)
    }
}

fn not_found(head: &RequestHead) -> Response {
    ErrorPage::new(StatusCode::NOT_FOUND, "not found").respond(head)
}

/// An engine answer of `status` as the app's error page, keeping `Content-Range` (a 416
/// says the file's length in it).
fn error_page(status: StatusCode, engine: &HeaderMap, path: &str, head: &RequestHead) -> Response {
    let message = match status {
        StatusCode::NOT_FOUND => "not found",
        StatusCode::PRECONDITION_FAILED => "precondition failed",
        StatusCode::RANGE_NOT_SATISFIABLE => "range not satisfiable",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed",
        _ => {
            tracing::error!(path, %status, "static files: the file could not be served");
            "internal server error"
        }
    };
    let mut page = ErrorPage::new(status, message);
    if let Some(range) = engine.get(CONTENT_RANGE) {
        page = page.header(CONTENT_RANGE, range.clone());
    }
    page.respond(head)
}

/// An I/O error of the engine: a missing file is a 404; one that exists but cannot be
/// read is the server's problem, logged, and still a 404 so as not to confirm it exists;
/// anything else a 500.
fn io_error(err: &std::io::Error, path: &str, head: &RequestHead) -> Response {
    match err.kind() {
        std::io::ErrorKind::NotFound => not_found(head),
        std::io::ErrorKind::PermissionDenied => {
            tracing::warn!(path, error = %err, "static files: permission denied");
            not_found(head)
        }
        _ => {
            tracing::error!(path, error = %err, "static files: the file could not be read");
            ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error").respond(head)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `If-Range` holds for the answer's exact strong tag or exact date, nothing else.
    #[test]
    fn if_range_comparison() {
        let mut answer = HeaderMap::new();
        answer.insert(ETAG, HeaderValue::from_static("\"abc\""));
        answer.insert(
            LAST_MODIFIED,
            HeaderValue::from_static("Tue, 01 Dec 2026 10:00:00 GMT"),
        );
        let holds = |v: &'static str| if_range_holds(&HeaderValue::from_static(v), &answer);
        assert!(holds("\"abc\""));
        assert!(!holds("W/\"abc\""));
        assert!(!holds("\"abd\""));
        assert!(holds("Tue, 01 Dec 2026 10:00:00 GMT"));
        assert!(!holds("Tue, 01 Dec 2026 09:59:59 GMT"));
    }
}
