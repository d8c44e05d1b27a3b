//! When a session's changes reach Redis: before the response with `persist =
//! before_response`, shortly after it (yet read back at once on the same server) with
//! `after_response`, and always before the response for a new session. Real `redis-server`,
//! real HTTP, the example app.
//!
//! Every test starts its own Redis and server; every wait is bounded.

#![allow(clippy::unwrap_used)]

use example_app::api::Item;
use http::StatusCode;
use rondo_tests::app::{basket, example, example_config, set_cookie_value, start_example, Jar};
use rondo_tests::session::{eventually, exists, hash, store_key};
use serde_json::json;

/// `persist = before_response`: when the response arrives the record is already stored.
#[tokio::test]
async fn before_response_commits_before_answering() {
    let (redis, server) = example("[session]\npersist = before_response\n").await;
    let mut jar = Jar::default();
    let res = jar
        .post_json(&server, "/api/basket/items", r#"{"sku":"A-1","qty":7}"#)
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let key = store_key(jar.value.as_deref().unwrap());
    let fields = hash(&redis, &key).await;
    let items: Vec<Item> = rmp_serde::from_slice(&fields["d:basket"]).unwrap();
    assert_eq!(
        items,
        [Item {
            sku: "A-1".into(),
            qty: 7
        }]
    );

    // A plain put (login) is stored before the answer too.
    let res = jar
        .post_json(&server, "/api/login", r#"{"user":"di"}"#)
        .await;
    let key = store_key(&set_cookie_value(&res, "dmsession").unwrap());
    let fields = hash(&redis, &key).await;
    assert_eq!(
        rmp_serde::from_slice::<String>(&fields["d:user"]).unwrap(),
        "di"
    );
}

/// `persist = after_response`: a request right after a write on the same server already
/// sees it (read-your-writes on one node), and the commit follows shortly.
#[tokio::test]
async fn after_response_reads_its_writes_on_one_node() {
    let (redis, server) = example("").await;
    let mut jar = Jar::default();
    jar.post_json(&server, "/api/login", r#"{"user":"eve"}"#)
        .await;
    for qty in 1..=5u64 {
        let res = jar
            .post_json(
                &server,
                "/api/basket/items",
                &format!(r#"{{"sku":"S{qty}","qty":{qty}}}"#),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(
            basket(&mut jar, &server).await["total_qty"],
            qty * (qty + 1) / 2
        );
    }
    let res = jar
        .post_json(&server, "/api/login", r#"{"user":"eve2"}"#)
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        jar.get(&server, "/api/me").await.json(),
        json!({"user": "eve2"})
    );
    let key = store_key(jar.value.as_deref().unwrap());
    assert!(
        eventually(|| async {
            hash(&redis, &key)
                .await
                .get("d:user")
                .is_some_and(|b| rmp_serde::from_slice::<String>(b).ok().as_deref() == Some("eve2"))
        })
        .await
    );
}

/// A new session is stored before its first response, even with `persist = after_response`:
/// the cookie it hands out names a stored session at once, on every server.
#[tokio::test]
async fn a_new_session_is_stored_before_its_response() {
    let (redis, a) = example("").await;
    let b = start_example(example_config(redis.port(), "")).await;
    for route in ["/bench/new", "/bench/counter"] {
        let mut jar = Jar::default();
        let res = jar.get(&a, route).await;
        assert_eq!(res.status, StatusCode::OK);
        let key = store_key(jar.value.as_deref().expect("a session cookie"));
        assert!(
            exists(&redis, &key).await,
            "{route}: not stored when the response arrived"
        );
        // Another server knows it immediately.
        let on_b = jar.get(&b, "/bench/read").await;
        assert_eq!(on_b.status, StatusCode::OK);
        assert!(
            set_cookie_value(&on_b, "dmsession").is_none(),
            "{route}: B refused the new id"
        );
    }
    let mut jar = Jar::default();
    assert_eq!(jar.get(&a, "/bench/counter").await.body, "1");
    assert_eq!(jar.get(&b, "/bench/counter").await.body, "2");
    assert_eq!(jar.get(&a, "/bench/read").await.body, "2");
}
