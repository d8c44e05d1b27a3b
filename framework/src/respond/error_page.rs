//! Error pages, in HTML for browsers and JSON for everybody else.

use std::borrow::Cow;

use http::header::{HeaderValue, RETRY_AFTER};
use http::{HeaderMap, StatusCode};

use super::{with_body, RequestHead, Responder};
use crate::body::{Body, Response};

/// An error answer: a status code and a message meant for the client.
///
/// JSON clients get `{"error": message, "status": code}`; browsers (by `Accept`) get a small
/// HTML page with the message escaped.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    status: StatusCode,
    message: Cow<'static, str>,
    headers: HeaderMap,
}

impl ErrorPage {
    /// An error page with this status and message.
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
            headers: HeaderMap::new(),
        }
    }

    /// Adds `Retry-After: seconds` (for 503 answers).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        self
    }

    /// Adds a header to the answer.
    pub fn header(mut self, name: http::HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Responder for ErrorPage {
    fn respond(self, head: &RequestHead) -> Response {
        let mut response = if head.prefers_html() {
            let reason = self.status.canonical_reason().unwrap_or("Error");
            let page = format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1>\
                 <p>{message}</p></body></html>\n",
                code = self.status.as_u16(),
                message = escape_html(&self.message),
            );
            with_body("text/html; charset=utf-8", Body::from(page))
        } else {
            let body = serde_json::json!({ "error": self.message, "status": self.status.as_u16() });
            with_body("application/json", Body::from(body.to_string()))
        };
        *response.status_mut() = self.status;
        response.headers_mut().extend(self.headers);
        response
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::ACCEPT;
    use http::Method;

    fn head(accept: &str) -> RequestHead {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_str(accept).unwrap_or(HeaderValue::from_static("")),
        );
        RequestHead::new(&Method::GET, &headers)
    }

    #[test]
    fn browsers_get_html_and_tools_get_json() {
        let browser = head("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        assert!(browser.prefers_html());
        assert!(!head("*/*").prefers_html());
        assert!(!head("application/json, text/html;q=0.5").prefers_html());
        assert!(!RequestHead::default().prefers_html());
    }

    #[test]
    fn html_page_escapes_the_message() {
        let page = ErrorPage::new(StatusCode::BAD_REQUEST, "<script>");
        let response = page.respond(&head("text/html"));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body =
            std::str::from_utf8(response.body().as_bytes().unwrap_or_default()).map(str::to_owned);
        let body = body.unwrap_or_default();
        assert!(body.contains("&lt;script&gt;"), "{body}");
    }
}
