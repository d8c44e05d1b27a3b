//! Extractors and their rejections over real HTTP: `Json` (content types, 400 for bad JSON,
//! 422 for the wrong shape), `Form`, `Query` and `State`. Body size limits are in
//! `limits.rs`. The app is [`rondo_tests::plain_app`].
//!
//! Every test builds its own app and server, and every network wait is bounded.

#![allow(clippy::unwrap_used)]

use http::StatusCode;
use rondo_tests::http::request;
use rondo_tests::plain_app::start;

/// `Json<T>` without a `Content-Type` answers 415 naming `application/json`.
#[tokio::test]
async fn json_without_content_type_is_415() {
    let server = start().await;
    let res = server
        .send(request(
            "POST",
            "/items",
            &[],
            r#"{"name":"a","qty":1}"#.into(),
        ))
        .await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let json = res.json();
    assert_eq!(json["status"], 415);
    assert!(
        json["error"].as_str().unwrap().contains("application/json"),
        "{json}"
    );
    let headers = [("content-type", "text/plain")];
    let res = server
        .send(request(
            "POST",
            "/items",
            &headers,
            r#"{"name":"a","qty":1}"#.into(),
        ))
        .await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// `Json<T>` accepts `application/json; charset=utf-8` and `+json` types and answers with
/// the `(StatusCode::CREATED, Json(..))` responder: 201 and the JSON back.
#[tokio::test]
async fn json_created_responder() {
    let server = start().await;
    let res = server
        .post_json("/items", r#"{"name":"apple","qty":3}"#)
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.content_type(), "application/json");
    assert_eq!(res.json(), serde_json::json!({"name": "apple", "qty": 3}));
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let headers = [("content-type", content_type)];
        let res = server
            .send(request(
                "POST",
                "/items",
                &headers,
                r#"{"name":"b","qty":0}"#.into(),
            ))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{content_type}");
    }
}

/// Malformed JSON answers 400 (`invalid JSON`); well-formed JSON of the wrong shape answers
/// 422 (`unexpected JSON`).
#[tokio::test]
async fn invalid_json_is_400_and_wrong_shape_is_422() {
    let server = start().await;
    for body in [r#"{"name": }"#, "{", "not json"] {
        let res = server.post_json("/items", body).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            res.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid JSON"),
            "{}",
            res.body
        );
    }
    for body in [
        r#"{"name": 1, "qty": 1}"#,
        r#"{"name": "a"}"#,
        r#"{"name":"a","qty":-1}"#,
        "[]",
    ] {
        let res = server.post_json("/items", body).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let json = res.json();
        assert_eq!(json["status"], 422);
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .starts_with("unexpected JSON"),
            "{json}"
        );
    }
}

/// `Form<T>` decodes a URL-encoded body; another content type answers 415, a field that does
/// not parse (or is missing) answers 422.
#[tokio::test]
async fn form_extraction_and_rejections() {
    let server = start().await;
    let res = server.post_form("/login", "user=ann+lee&age=30").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "ann lee is 30")
    );
    let headers = [("content-type", "application/json")];
    let res = server
        .send(request("POST", "/login", &headers, "user=a&age=1".into()))
        .await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .contains("application/x-www-form-urlencoded"));
    let res = server.post_form("/login", "user=a&age=abc").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.json()["status"], 422);
    let res = server.post_form("/login", "user=a&age=300").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let res = server.post_form("/login", "user=a").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// `Query<T>` decodes the query string; a value that does not parse, or a missing required
/// field, answers 400.
#[tokio::test]
async fn query_extraction_and_rejection() {
    let server = start().await;
    let res = server.get("/search?page=2&q=red%20shoes").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "page 2 q red shoes")
    );
    let res = server.get("/search?page=x").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid query string"));
    let res = server.get("/search").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
}

/// `State<T>` gives the registered value (a route asking for a type never registered does
/// not start at all: `app_building::a_route_needing_unregistered_state_does_not_start`).
#[tokio::test]
async fn state_registered() {
    let server = start().await;
    let res = server.get("/greet").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "hi from state")
    );
}
