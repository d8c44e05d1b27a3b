//! The `SessionManager`'s own ways in: `start` + `persist_session` by hand in a controller (the
//! explicit Resonance pattern), and `open` from background work, whose `update` the next
//! request sees. Real `redis-server`, real HTTP.
//!
//! Every test starts its own Redis and server; every wait is bounded.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use example_app::api::Item;
use http::StatusCode;
use rondo::session::SessionId;
use rondo_tests::app::{basket, set_cookie_value, Jar};
use rondo_tests::http::request;
use rondo_tests::session::{hash, is_session_id, redis, store_key};
use rondo_tests::session_app::custom_app;
use serde_json::json;

/// `manager.start(&mut req)` → `put` → `manager.persist_session(&req)` stores the value
/// before the response (default `after_response` mode) and sets the cookie.
#[tokio::test]
async fn explicit_start_and_persist_session() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "").await;
    let res = server
        .send(request("POST", "/explicit", &[], String::new()))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, "persisted");
    let id = set_cookie_value(&res, "dmsession").expect("the cookie is set");
    assert!(is_session_id(&id));
    let fields = hash(&redis, &store_key(&id)).await;
    let value = fields
        .get("d:explicit")
        .expect("stored before the response");
    assert_eq!(
        rmp_serde::from_slice::<String>(value).unwrap(),
        "persisted by hand"
    );
}

/// `SessionManager::open(id)` sees a request's write, its `update` is seen by the next
/// request; an unknown id and a logged-out id give `None`.
#[tokio::test]
async fn open_reaches_a_session_from_background_work() {
    let redis = redis().await;
    let (manager, server) = custom_app(&redis, "").await;
    let mut jar = Jar::default();
    jar.post_json(&server, "/api/basket/items", r#"{"sku":"A-1","qty":2}"#)
        .await;
    let id = jar.value.clone().unwrap();

    let session = tokio::time::timeout(Duration::from_secs(3), manager.open(&id))
        .await
        .unwrap()
        .unwrap()
        .expect("a live session opens");
    assert_eq!(
        session.id().map(|i| i.as_str().to_owned()),
        Some(id.clone())
    );
    let items: Vec<Item> = session.get("basket").await.unwrap().unwrap();
    assert_eq!(
        items,
        [Item {
            sku: "A-1".into(),
            qty: 2
        }]
    );
    let updated = tokio::time::timeout(
        Duration::from_secs(3),
        session.update("basket", |items: Option<Vec<Item>>| {
            example_app::api::add_to(
                items.unwrap_or_default(),
                &Item {
                    sku: "BG".into(),
                    qty: 1,
                },
            )
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(updated.len(), 2);
    // `update` commits by itself: the record holds it without any request.
    let fields = hash(&redis, &store_key(&id)).await;
    let stored: Vec<Item> = rmp_serde::from_slice(&fields["d:basket"]).unwrap();
    assert_eq!(stored, updated);
    assert_eq!(
        basket(&mut jar, &server).await,
        json!({"items": [{"sku": "A-1", "qty": 2}, {"sku": "BG", "qty": 1}], "total_qty": 3})
    );

    let unknown = SessionId::generate().unwrap();
    assert!(manager.open(unknown.as_str()).await.unwrap().is_none());
    assert!(manager.open("not an id").await.unwrap().is_none());

    let res = jar.post_json(&server, "/api/logout", "{}").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(manager.open(&id).await.unwrap().is_none());
}
