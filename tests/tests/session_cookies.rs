//! The session cookie: its attributes and when a response sets it, and which ids a request's
//! cookie may name (never an invented one; a malformed cookie gets a fresh session). Sibling
//! and planted cookies are in `cookies.rs`. Real `redis-server`, real HTTP, the example app.
//!
//! Every test starts its own Redis and server; every wait is bounded.

#![allow(clippy::unwrap_used)]

use http::StatusCode;
use rondo_tests::app::{
    example, example_config, set_cookie_header, set_cookie_value, start_example, Jar,
};
use rondo_tests::http::request;
use rondo_tests::session::{
    attributes, eventually, exists, expires_cookie, is_session_id, redis, send_with_cookie,
    store_key,
};
use serde_json::json;

/// The first write sets `dmsession=<43 chars>; HttpOnly; SameSite=Lax; Path=/;
/// Max-Age=86400` without `Secure` on an http URL, with `Cache-Control: no-store`; a
/// read-only request on the session and a request that never touches it set no cookie.
#[tokio::test]
async fn cookie_attributes_and_when_it_is_set() {
    let (_redis, server) = example("").await;
    let mut jar = Jar::default();
    let res = jar
        .post_json(&server, "/api/basket/items", r#"{"sku":"A-1","qty":1}"#)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let header = set_cookie_header(&res, "dmsession").expect("the first write sets the cookie");
    let value = set_cookie_value(&res, "dmsession").unwrap();
    assert!(is_session_id(&value), "{header}");
    let mut attrs = attributes(&header);
    attrs.sort();
    assert_eq!(
        attrs,
        ["HttpOnly", "Max-Age=86400", "Path=/", "SameSite=Lax"],
        "{header}"
    );
    assert_eq!(res.header("cache-control"), Some("no-store"));

    // Read-only on an existing session: no cookie.
    let res = jar.get(&server, "/api/basket").await;
    assert_eq!(res.json()["total_qty"], 1);
    assert!(res.headers.get("set-cookie").is_none(), "{:?}", res.headers);
    // Never touching the session: no cookie, no no-store.
    let res = jar.get(&server, "/bench/plain").await;
    assert_eq!(res.body, "ok");
    assert!(res.headers.get("set-cookie").is_none(), "{:?}", res.headers);
    assert_ne!(res.header("cache-control"), Some("no-store"));
    // A read-only request without a cookie creates nothing.
    let res = server.get("/api/me").await;
    assert_eq!(res.json(), json!({"user": null}));
    assert!(res.headers.get("set-cookie").is_none(), "{:?}", res.headers);
}

/// `[app] url = https://...` adds `Secure`; `cookie_samesite = strict` gives
/// `SameSite=Strict`.
#[tokio::test]
async fn cookie_secure_on_https_and_samesite_strict() {
    let redis = redis().await;
    let config = example_config(
        redis.port(),
        "[app]\nurl = https://shop.example\n[session]\ncookie_samesite = strict\n",
    );
    let server = start_example(config).await;
    let res = server
        .post_json("/api/basket/items", r#"{"sku":"A-1","qty":1}"#)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let header = set_cookie_header(&res, "dmsession").unwrap();
    let mut attrs = attributes(&header);
    attrs.sort();
    assert_eq!(
        attrs,
        [
            "HttpOnly",
            "Max-Age=86400",
            "Path=/",
            "SameSite=Strict",
            "Secure"
        ],
        "{header}"
    );
}

/// A well-formed but invented id is never adopted: reads see no user and the cookie is
/// expired, a write gets a new id, and no record is ever created under the invented id.
#[tokio::test]
async fn invented_ids_are_not_adopted() {
    let (redis, server) = example("").await;
    let invented = "Inv3nted_session-id_of_the_right_shape_0123";
    assert!(is_session_id(invented));
    let invented_key = store_key(invented);

    let res = send_with_cookie(&server, "GET", "/api/me", invented, None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"user": null}));
    assert!(expires_cookie(&res), "{:?}", res.headers);

    let res = send_with_cookie(
        &server,
        "POST",
        "/api/basket/items",
        invented,
        Some(r#"{"sku":"A-1","qty":1}"#),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let new_id = set_cookie_value(&res, "dmsession").unwrap();
    assert!(is_session_id(&new_id), "{new_id}");
    assert_ne!(new_id, invented);

    let new_key = store_key(&new_id);
    assert!(eventually(|| exists(&redis, &new_key)).await);
    assert!(!exists(&redis, &invented_key).await);
    assert_eq!(redis.keys("t:session:*").await, vec![new_key.clone()]);
}

/// Malformed cookies (`../../x`, 5000 bytes, 50 cookies in one header) are ignored: 200 and
/// a fresh session, never a 5xx.
#[tokio::test]
async fn malformed_cookies_get_a_fresh_session() {
    let (redis, server) = example("").await;
    let many = (0..50)
        .map(|i| format!("c{i}=v{i}"))
        .chain(std::iter::once("dmsession=short".to_owned()))
        .collect::<Vec<_>>()
        .join("; ");
    let cookies = [
        "dmsession=../../x".to_owned(),
        format!("dmsession={}", "a".repeat(5000)),
        many,
        "dmsession=\"quoted\"; dmsession=; =; ;;".to_owned(),
    ];
    let mut ids = Vec::new();
    for cookie in &cookies {
        let headers = [("cookie", cookie.as_str())];
        let res = server.get_with("/api/me", &headers).await;
        assert_eq!(res.status, StatusCode::OK, "{cookie:.40}: {}", res.body);
        assert_eq!(res.json(), json!({"user": null}));

        let headers = [
            ("cookie", cookie.as_str()),
            ("content-type", "application/json"),
        ];
        let res = server
            .send(request(
                "POST",
                "/api/basket/items",
                &headers,
                r#"{"sku":"B-2","qty":3}"#.into(),
            ))
            .await;
        assert_eq!(res.status, StatusCode::OK, "{cookie:.40}: {}", res.body);
        assert_eq!(res.json()["total_qty"], 3, "a fresh, empty basket");
        let id = set_cookie_value(&res, "dmsession").unwrap();
        assert!(is_session_id(&id), "{id}");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        cookies.len(),
        "every fresh session has its own id"
    );
    assert!(eventually(|| async { redis.keys("t:session:*").await.len() == cookies.len() }).await);
}
