//! Middleware made with `from_fn`: it wraps the controller's response, can answer without
//! calling the controller, and wraps the router's own answers too; the first added runs
//! outermost.
//!
//! Every test builds its own app and server, and every network wait is bounded.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::StatusCode;
use rondo::App;
use rondo_tests::http::TestServer;
use rondo_tests::plain_app::test_config;

/// A `from_fn` middleware sees the controller's response and can add a header to it, and can
/// answer itself without calling the controller; the first added runs outermost.
#[tokio::test]
async fn middleware_wraps_and_short_circuits() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = calls.clone();
        move || {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                "controller"
            }
        }
    };
    let app = App::new(test_config())
        .middleware(rondo::middleware::from_fn(
            |req: rondo::Request, next: rondo::Next| async move {
                let mut res = next.run(req).await;
                res.headers_mut()
                    .insert("x-outer", http::HeaderValue::from_static("1"));
                res
            },
        ))
        .middleware(rondo::middleware::from_fn(
            |req: rondo::Request, next: rondo::Next| async move {
                if req.uri().path() == "/blocked" {
                    let mut res = rondo::Response::new(rondo::Body::from("blocked"));
                    *res.status_mut() = StatusCode::FORBIDDEN;
                    return res;
                }
                let mut res = next.run(req).await;
                let status = res.status().as_u16().to_string();
                res.headers_mut().insert(
                    "x-seen-status",
                    http::HeaderValue::from_str(&status).unwrap(),
                );
                res
            },
        ))
        .get("/open", counted.clone())
        .get("/blocked", counted);
    let server = TestServer::start(app).await;

    let res = server.get("/open").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "controller")
    );
    assert_eq!(res.header("x-seen-status"), Some("200"));
    assert_eq!(res.header("x-outer"), Some("1"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let res = server.get("/blocked").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::FORBIDDEN, "blocked")
    );
    assert_eq!(res.header("x-outer"), Some("1"));
    assert_eq!(res.header("x-seen-status"), None);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the controller did not run"
    );

    // Middleware also wraps the router's own answers.
    let res = server.get("/nowhere").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.header("x-seen-status"), Some("404"));
}
