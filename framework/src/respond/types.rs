//! The common response types: JSON, HTML and redirects.

use http::header::{HeaderValue, LOCATION};
use http::StatusCode;
use serde::Serialize;

use super::{with_body, ErrorPage, IntoResponse, RequestHead, Responder};
use crate::body::{Body, Response};

/// A JSON value: as a responder it serializes `T` with `Content-Type: application/json`; as a
/// controller argument it deserializes the request body (see [`crate::extract`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize + Send> Responder for Json<T> {
    fn respond(self, head: &RequestHead) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(bytes) => with_body("application/json", Body::from(bytes)),
            Err(err) => {
                tracing::error!(error = %err, "response could not be serialized to JSON");
                ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
                    .respond(head)
            }
        }
    }
}

/// An HTML document or fragment, sent as `text/html; charset=utf-8`.
#[derive(Debug, Clone, Default)]
pub struct Html<T>(pub T);

impl<T: Into<Body>> IntoResponse for Html<T> {
    fn into_response(self) -> Response {
        with_body("text/html; charset=utf-8", self.0.into())
    }
}

/// A redirect to another location.
#[derive(Debug, Clone)]
pub struct Redirect {
    status: StatusCode,
    location: HeaderValue,
}

impl Redirect {
    /// `303 See Other`: the answer to a form POST, followed with a GET.
    pub fn to(uri: &str) -> Self {
        Self::with_status(StatusCode::SEE_OTHER, uri)
    }

    /// `307 Temporary Redirect`: same method, same body.
    pub fn temporary(uri: &str) -> Self {
        Self::with_status(StatusCode::TEMPORARY_REDIRECT, uri)
    }

    /// `308 Permanent Redirect`.
    pub fn permanent(uri: &str) -> Self {
        Self::with_status(StatusCode::PERMANENT_REDIRECT, uri)
    }

    fn with_status(status: StatusCode, uri: &str) -> Self {
        // A location with bytes not allowed in a header falls back to the site root rather
        // than failing: redirect targets come from the application, not from clients.
        let location = HeaderValue::from_str(uri).unwrap_or(HeaderValue::from_static("/"));
        Self { status, location }
    }
}

impl IntoResponse for Redirect {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self.status;
        response.headers_mut().insert(LOCATION, self.location);
        response
    }
}
