//! What a controller's answer becomes on the wire: errors negotiated as HTML or JSON, the
//! `Redirect`, `Result` and `Html` responders, and a panicking controller's 500. The app is
//! [`rondo_tests::plain_app`].
//!
//! Every test builds its own app and server, and every network wait is bounded.

#![allow(clippy::unwrap_used)]

use http::StatusCode;
use rondo_tests::plain_app::start;

/// Errors are HTML for `Accept: text/html` (a page naming the status) and JSON
/// `{"error", "status"}` for `Accept: application/json`, `*/*` or no `Accept` at all.
#[tokio::test]
async fn error_content_negotiation() {
    let server = start().await;
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for accept in ["text/html", browser] {
        let res = server.get_with("/missing", &[("accept", accept)]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        assert_eq!(res.content_type(), "text/html; charset=utf-8");
        assert!(res.body.starts_with("<!doctype html>"), "{}", res.body);
        assert!(res.body.contains("<h1>404 Not Found</h1>"), "{}", res.body);
        assert!(res.body.contains("not found"), "{}", res.body);
    }
    let expected = serde_json::json!({"error": "not found", "status": 404});
    for accept in [
        Some("application/json"),
        Some("*/*"),
        Some("application/json, text/html;q=0.5"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let res = server.get_with("/missing", &headers).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{accept:?}");
        assert_eq!(res.content_type(), "application/json", "{accept:?}");
        assert_eq!(res.json(), expected, "{accept:?}");
    }
    // Rejections are negotiated too.
    let res = server
        .get_with("/users/abc", &[("accept", "text/html")])
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.body.contains("400 Bad Request"), "{}", res.body);
}

/// `Redirect::to("/x")` answers 303 See Other with `Location: /x` and an empty body.
#[tokio::test]
async fn redirect_responder() {
    let server = start().await;
    let res = server.get("/redirect").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.header("location"), Some("/x"));
    assert_eq!(res.body, "");
}

/// `Result<String, ErrorPage>` answers with the Ok value (200) or the error page (its status,
/// negotiated body).
#[tokio::test]
async fn result_responder_both_branches() {
    let server = start().await;
    let res = server.get("/result/true").await;
    assert_eq!((res.status, res.body.as_str()), (StatusCode::OK, "fine"));
    let res = server.get("/result/false").await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert_eq!(
        res.json(),
        serde_json::json!({"error": "it went wrong", "status": 409})
    );
    let res = server
        .get_with("/result/false", &[("accept", "text/html")])
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert!(
        res.body.contains("409 Conflict") && res.body.contains("it went wrong"),
        "{}",
        res.body
    );
}

/// `Html(..)` answers with `text/html; charset=utf-8` and the markup as given.
#[tokio::test]
async fn html_responder() {
    let server = start().await;
    let res = server.get("/html").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.content_type(), "text/html; charset=utf-8");
    assert_eq!(res.body, "<p>hi</p>");
}

/// A controller that panics answers 500 and the server keeps serving.
#[tokio::test]
async fn panicking_controller_is_500() {
    let server = start().await;
    let res = server.get("/panic").await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        res.json(),
        serde_json::json!({"error": "internal server error", "status": 500})
    );
    let res = server.get("/hello").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "hello world")
    );
}
