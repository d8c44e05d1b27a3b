//! Values in a session through the `Session` API: typed `put`/`get` across requests,
//! `contains`, `remove`, `keys`, `clear`, what a wrong type or a reserved key gives, and how
//! each value is stored (one MessagePack field per key). Real `redis-server`, real HTTP, a
//! custom app on the API ([`rondo_tests::session_app`]).
//!
//! Every test starts its own Redis and server; every wait is bounded.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use http::StatusCode;
use rondo_tests::app::{set_cookie_header, Jar};
use rondo_tests::session::{eventually, hash, is_session_id, redis, store_key};
use rondo_tests::session_app::{custom_app, profile, Profile};
use serde_json::{json, Value};

/// `put` then `get::<T>` round-trips a struct, a vec, a string and a number across requests;
/// the id is `None` before the first write and the cookie's id once the session is open.
#[tokio::test]
async fn typed_values_round_trip_across_requests() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "").await;
    let mut jar = Jar::default();

    let res = jar.get(&server, "/typed/write").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json()["before"], Value::Null);
    let cookie = jar.value.clone().expect("the first write sets the cookie");
    assert!(is_session_id(&cookie), "{cookie}");

    let res = jar.get(&server, "/typed/read").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        res.json(),
        json!({
            "profile": [true, "Ann", 37, ["admin", "beta"]],
            "list": [3, 1, 2],
            "name": "zoë",
            "number": -12345,
            "missing": null,
            "id": cookie,
        })
    );
    assert_eq!(set_cookie_header(&res, "dmsession"), None);
}

/// `Session::id()` is `Some` right after the first `put` of a new session, as its doc says
/// ("a new session gets one on its first write").
#[tokio::test]
async fn id_is_known_right_after_the_first_put() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "").await;
    let mut jar = Jar::default();
    let res = jar.get(&server, "/typed/write").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let cookie = jar.value.clone().unwrap();
    assert_eq!(res.json()["after"], json!(cookie));
}

/// `contains`, `remove`, `keys` (sorted, without the framework's `_` keys) and `clear`.
#[tokio::test]
async fn contains_remove_keys_clear() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "").await;
    let mut jar = Jar::default();
    assert_eq!(
        jar.get(&server, "/typed/write").await.status,
        StatusCode::OK
    );
    assert_eq!(
        jar.get(&server, "/framework-keys").await.status,
        StatusCode::OK
    );
    // The framework's keys exist in the store (until the next request ages the flash);
    // `keys` hides them.
    let key = store_key(jar.value.as_deref().unwrap());
    assert!(
        eventually(|| async {
            let fields = hash(&redis, &key).await;
            fields.contains_key("d:_flash:notice") && fields.contains_key("d:_csrf:/form")
        })
        .await,
        "{:?}",
        hash(&redis, &key).await.keys().collect::<Vec<_>>()
    );

    assert_eq!(jar.get(&server, "/contains/name").await.body, "true");
    assert_eq!(jar.get(&server, "/contains/nothing").await.body, "false");

    let res = jar.get(&server, "/keys").await;
    assert_eq!(
        res.json(),
        json!(["alpha", "list", "name", "number", "profile"])
    );

    assert_eq!(jar.get(&server, "/remove/name").await.body, "false");
    assert_eq!(jar.get(&server, "/contains/name").await.body, "false");
    assert_eq!(
        jar.get(&server, "/keys").await.json(),
        json!(["alpha", "list", "number", "profile"])
    );
    assert!(
        eventually(|| async { !hash(&redis, &key).await.contains_key("d:name") }).await,
        "the removal reaches Redis"
    );

    let res = jar.get(&server, "/clear").await;
    assert_eq!(res.json(), json!([]));
    assert_eq!(jar.get(&server, "/keys").await.json(), json!([]));
    assert_eq!(jar.get(&server, "/contains/profile").await.body, "false");
    let read = jar.get(&server, "/typed/read").await.json();
    assert_eq!(read["profile"], Value::Null);
    assert_eq!(read["number"], Value::Null);
    // The session and its id stay.
    assert_eq!(read["id"], json!(jar.value.clone().unwrap()));
    assert!(
        eventually(|| async {
            let fields = hash(&redis, &key).await;
            fields.contains_key("_v") && !fields.keys().any(|f| f.starts_with("d:"))
        })
        .await,
        "{:?}",
        hash(&redis, &key).await.keys().collect::<Vec<_>>()
    );
}

/// `get` of the wrong type answers 500, and so does a reserved `_` key in `put` or `get`;
/// the internal detail is not shown to the client.
#[tokio::test]
async fn wrong_type_and_reserved_keys_are_500() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "").await;
    let mut jar = Jar::default();
    assert_eq!(
        jar.get(&server, "/typed/write").await.status,
        StatusCode::OK
    );

    let res = jar.get(&server, "/wrong-type").await;
    assert_eq!(
        res.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        res.body
    );
    assert_eq!(res.json()["error"], "internal server error");

    for path in ["/reserved-put", "/reserved-get"] {
        let res = jar.get(&server, path).await;
        assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(!res.body.contains("stored"), "{path}: {}", res.body);
    }
    // Nothing was stored under the reserved name.
    let key = store_key(jar.value.as_deref().unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!hash(&redis, &key).await.contains_key("d:_x"));
    // And the session is still fine.
    assert_eq!(jar.get(&server, "/typed/read").await.json()["name"], "zoë");
}

/// Each value is a `d:<key>` field of the session hash holding MessagePack: a map for a
/// struct (named fields), an array for a vec, a str for a string, an int for a number.
#[tokio::test]
async fn values_are_stored_as_messagepack_fields() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "[session]\npersist = before_response\n").await;
    let mut jar = Jar::default();
    assert_eq!(
        jar.get(&server, "/typed/write").await.status,
        StatusCode::OK
    );
    let key = store_key(jar.value.as_deref().unwrap());
    let fields = hash(&redis, &key).await;

    let profile_bytes = &fields["d:profile"];
    assert_eq!(profile_bytes[0], 0x83, "fixmap of 3 entries");
    assert_eq!(
        rmp_serde::from_slice::<Profile>(profile_bytes).unwrap(),
        profile()
    );
    let as_map: HashMap<String, Value> = rmp_serde::from_slice(profile_bytes).unwrap();
    assert_eq!(as_map["name"], "Ann", "named fields");

    let list = &fields["d:list"];
    assert_eq!(list[0], 0x93, "fixarray of 3");
    assert_eq!(rmp_serde::from_slice::<Vec<u32>>(list).unwrap(), [3, 1, 2]);

    let name = &fields["d:name"];
    assert_eq!(
        name[0],
        0xa0 | 4,
        "fixstr of 4 bytes (zoë is 4 bytes of UTF-8)"
    );
    assert_eq!(rmp_serde::from_slice::<String>(name).unwrap(), "zoë");

    let number = &fields["d:number"];
    assert_eq!(number[0], 0xd1, "int 16");
    assert_eq!(rmp_serde::from_slice::<i64>(number).unwrap(), -12345);

    // Bookkeeping fields are plain numbers.
    assert_eq!(fields["_v"], b"1");
    let created: u64 = std::str::from_utf8(&fields["_c"]).unwrap().parse().unwrap();
    assert!(created > 1_600_000_000, "{created}");
}
