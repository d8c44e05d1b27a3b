//! The two ends of a logged-in session: logging in rotates the session id and keeps the data
//! (the old id is refused, its key only forwards), logging out destroys the record and
//! expires the cookie. Real `redis-server`, real HTTP, the example app.
//!
//! Every test starts its own Redis and server; every wait is bounded.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use http::StatusCode;
use rondo_tests::app::{basket, example, set_cookie_value, Jar};
use rondo_tests::session::{
    eventually, exists, expires_cookie, hash, is_session_id, send_with_cookie, store_key,
};
use serde_json::json;

/// `POST /api/login` rotates the id and keeps the basket; the old id sees nothing, its
/// Redis record is gone and the new one exists.
#[tokio::test]
async fn login_rotates_the_id_and_keeps_the_data() {
    let (redis, server) = example("").await;
    let mut jar = Jar::default();
    jar.post_json(&server, "/api/basket/items", r#"{"sku":"A-1","qty":2}"#)
        .await;
    let old = jar.value.clone().unwrap();
    let old_key = store_key(&old);
    assert!(eventually(|| exists(&redis, &old_key)).await);

    let res = jar
        .post_json(&server, "/api/login", r#"{"user":"ann"}"#)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json(), json!({"user": "ann"}));
    let new = set_cookie_value(&res, "dmsession").unwrap();
    assert!(is_session_id(&new));
    assert_ne!(new, old);
    assert_eq!(jar.value.as_deref(), Some(new.as_str()));

    let b = basket(&mut jar, &server).await;
    assert_eq!(
        b,
        json!({"items": [{"sku": "A-1", "qty": 2}], "total_qty": 2})
    );
    assert_eq!(
        jar.get(&server, "/api/me").await.json(),
        json!({"user": "ann"})
    );

    // The old id is dead: a request that still names it (a second tab's, sent before the
    // login's answer arrived) is refused with 409, and told nothing about cookies, so it
    // cannot replace or expire the new cookie the browser holds by now.
    for path in ["/api/me", "/api/basket"] {
        let res = send_with_cookie(&server, "GET", path, &old, None).await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{path}: {}", res.body);
        assert_eq!(res.header("set-cookie"), None, "{path}");
    }

    let new_key = store_key(&new);
    assert!(eventually(|| async { hash(&redis, &new_key).await.contains_key("d:user") }).await);
    // The old key holds nothing but the new key's hash, for a while.
    let marker = hash(&redis, &old_key).await;
    assert_eq!(marker.len(), 1, "{marker:?}");
    let hash_of_new = String::from_utf8(marker["_m"].clone()).expect("hex");
    assert!(new_key.ends_with(&hash_of_new), "{marker:?}");
    let mut keys = vec![old_key, new_key];
    keys.sort();
    assert_eq!(redis.keys("t:session:*").await, keys);
}

/// `POST /api/logout` expires the cookie and deletes the record; the old cookie then sees
/// no user.
#[tokio::test]
async fn logout_destroys_the_session() {
    let (redis, server) = example("").await;
    let mut jar = Jar::default();
    jar.post_json(&server, "/api/login", r#"{"user":"bob"}"#)
        .await;
    let id = jar.value.clone().unwrap();
    let key = store_key(&id);
    assert!(eventually(|| exists(&redis, &key)).await);

    let res = jar.post_json(&server, "/api/logout", "{}").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json(), json!({"user": null}));
    assert!(expires_cookie(&res), "{:?}", res.headers);
    assert_eq!(jar.value, None);
    assert!(!exists(&redis, &key).await, "deleted before the response");

    let res = send_with_cookie(&server, "GET", "/api/me", &id, None).await;
    assert_eq!(res.json(), json!({"user": null}));
    assert!(expires_cookie(&res), "{:?}", res.headers);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!exists(&redis, &key).await, "not resurrected");
}
