//! The HTML shop's forms: a flash notice shows on the next page only, and a CSRF token is
//! required, single-use and bound to its form. Races on one token are in `races.rs`. Real
//! `redis-server`, real HTTP, the example app.
//!
//! Every test starts its own Redis and server; every wait is bounded.

#![allow(clippy::unwrap_used)]

use http::StatusCode;
use rondo_tests::app::{basket, csrf_token, example, Jar};
use rondo_tests::session::is_session_id;
use serde_json::json;

/// A flash notice set by `POST /basket/add` shows on the next `GET /` only.
#[tokio::test]
async fn flash_notice_shows_exactly_once() {
    let (_redis, server) = example("").await;
    let mut jar = Jar::default();
    let page = jar.get(&server, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("class=\"flash\""));
    let token = csrf_token(&page.body, "/basket/add");

    let res = jar
        .post_form(
            &server,
            "/basket/add",
            &format!("_csrf={token}&sku=A-1&qty=2"),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);

    let page = jar.get(&server, "/").await;
    assert!(
        page.body
            .contains("<p class=\"flash\" role=\"status\">Added 2 × A-1.</p>"),
        "{}",
        page.body
    );
    let page = jar.get(&server, "/").await;
    assert!(!page.body.contains("class=\"flash\""), "{}", page.body);
    assert!(page.body.contains("<span id=\"total\">2</span>"));
}

/// CSRF: no token or a wrong one is 400 with the basket unchanged; a valid one is 303 to
/// `/`; a replay is 400 (single use); a token for `/login` is refused on `/basket/add`.
#[tokio::test]
async fn csrf_tokens_are_required_single_use_and_per_form() {
    let (_redis, server) = example("").await;
    let mut jar = Jar::default();
    let page = jar.get(&server, "/").await;
    let token = csrf_token(&page.body, "/basket/add");
    let login_token = csrf_token(&page.body, "/login");
    assert!(is_session_id(&token), "{token}");
    assert_ne!(token, login_token);
    let empty = json!({"items": [], "total_qty": 0});

    let res = jar.post_form(&server, "/basket/add", "sku=A-1&qty=1").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert_eq!(basket(&mut jar, &server).await, empty);

    let wrong = format!("_csrf={}&sku=A-1&qty=1", "x".repeat(43));
    let res = jar.post_form(&server, "/basket/add", &wrong).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let res = jar
        .post_form(
            &server,
            "/basket/add",
            &format!("_csrf={login_token}&sku=A-1&qty=1"),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "a /login token");
    assert_eq!(basket(&mut jar, &server).await, empty);

    let body = format!("_csrf={token}&sku=A-1&qty=1");
    let res = jar.post_form(&server, "/basket/add", &body).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.header("location"), Some("/"));
    assert_eq!(basket(&mut jar, &server).await["total_qty"], 1);

    let res = jar.post_form(&server, "/basket/add", &body).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "a replayed token");
    assert_eq!(basket(&mut jar, &server).await["total_qty"], 1);

    // The /login token was not spent by the refusals: it still logs in.
    let res = jar
        .post_form(&server, "/login", &format!("_csrf={login_token}&user=ann"))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        jar.get(&server, "/api/me").await.json(),
        json!({"user": "ann"})
    );
}
