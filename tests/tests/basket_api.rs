//! The example shop's JSON basket API on a session: lines of one SKU merge, invalid bodies are
//! refused with a 400 that changes nothing, `DELETE` empties the basket. Real `redis-server`,
//! real HTTP.
//!
//! Every test starts its own Redis and server; every wait is bounded.

#![allow(clippy::unwrap_used)]

use http::StatusCode;
use rondo_tests::app::{basket, example, Jar};
use serde_json::json;

/// Lines of the same SKU merge; invalid bodies are 400 `{"error": ...}` and change
/// nothing; `DELETE /api/basket` empties it.
#[tokio::test]
async fn basket_api_merges_validates_and_clears() {
    let (_redis, server) = example("").await;
    let mut jar = Jar::default();
    for _ in 0..2 {
        let res = jar
            .post_json(&server, "/api/basket/items", r#"{"sku":"A-1","qty":2}"#)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    }
    let one = json!({"items": [{"sku": "A-1", "qty": 4}], "total_qty": 4});
    assert_eq!(basket(&mut jar, &server).await, one);

    let res = jar
        .post_json(&server, "/api/basket/items", r#"{"sku":"b_2","qty":1000}"#)
        .await;
    let two = json!({
        "items": [{"sku": "A-1", "qty": 4}, {"sku": "b_2", "qty": 1000}],
        "total_qty": 1004
    });
    assert_eq!(res.json(), two);
    assert_eq!(basket(&mut jar, &server).await, two);

    let long = format!(r#"{{"sku":"{}","qty":1}}"#, "a".repeat(65));
    for body in [
        r#"{"sku":"A 1","qty":1}"#,
        long.as_str(),
        r#"{"sku":"","qty":1}"#,
        r#"{"sku":"A-1","qty":0}"#,
        r#"{"sku":"A-1","qty":1001}"#,
        r#"{"sku":"A-1","qty":-1}"#,
        r#"{"sku":"A-1"}"#,
        r#"{"qty":1}"#,
        r#"{}"#,
        r#"{"sku":"A-1","qty":"x"}"#,
        r#"{"sku":"A-1","qty":1.5}"#,
    ] {
        let res = jar.post_json(&server, "/api/basket/items", body).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}: {}", res.body);
        let error = res.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains("sku") || error.contains("qty"),
            "{body}: {error}"
        );
    }
    assert_eq!(basket(&mut jar, &server).await, two);

    let res = jar.send(&server, "DELETE", "/api/basket", None, "").await;
    assert_eq!(res.status, StatusCode::OK);
    let empty = json!({"items": [], "total_qty": 0});
    assert_eq!(res.json(), empty);
    assert_eq!(basket(&mut jar, &server).await, empty);
}
