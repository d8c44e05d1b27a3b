//! Reading the session cookie from what browsers (and attackers) really send: sibling
//! cookies that are not ASCII, and session cookies planted for another path or by a sibling
//! domain ("cookie tossing") in front of the real one.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rondo_tests::app::{example_config, start_example, Jar};
use rondo_tests::http::TestServer;
use rondo_tests::redis::RedisServer;

/// The example app and a session whose counter is at 2.
async fn shop_with_session() -> (RedisServer, TestServer, String) {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    for expected in ["1", "2"] {
        assert_eq!(jar.get(&shop, "/bench/counter").await.body, expected);
    }
    (redis, shop, jar.value.unwrap())
}

/// `GET /bench/read` with the raw `Cookie` header bytes `cookie`: the answer's status line,
/// whether it sets a cookie, and its body.
async fn read_with(shop: &TestServer, cookie: &[u8]) -> (String, bool, String) {
    let mut request =
        b"GET /bench/read HTTP/1.1\r\nHost: t\r\nConnection: close\r\nCookie: ".to_vec();
    request.extend_from_slice(cookie);
    request.extend_from_slice(b"\r\n\r\n");
    let answer = shop.raw(&request, Duration::from_secs(3)).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    let sets_cookie = head.to_ascii_lowercase().contains("\r\nset-cookie:");
    (status, sets_cookie, body.to_owned())
}

/// A sibling cookie with a non-ASCII value in the same header (`pref=café`) does not hide
/// the session: it is read, and no cookie is set.
#[tokio::test]
async fn a_non_ascii_sibling_cookie_keeps_the_session() {
    let (_redis, shop, id) = shop_with_session().await;
    for cookie in [
        format!("dmsession={id}; pref=caf\u{e9}").into_bytes(),
        [b"pref=\xff\xfe; dmsession=".as_slice(), id.as_bytes()].concat(),
    ] {
        let (status, sets_cookie, body) = read_with(&shop, &cookie).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, "2");
        assert!(!sets_cookie, "the session cookie must be left alone");
    }
}

/// A planted session cookie with an id the store does not know, sent before the real one,
/// neither hides the real session nor makes the server expire the real cookie.
#[tokio::test]
async fn a_planted_unknown_cookie_does_not_expire_the_real_one() {
    let (_redis, shop, id) = shop_with_session().await;
    let planted = "p".repeat(43);
    for cookie in [
        format!("dmsession={planted}; dmsession={id}"),
        format!("dmsession={id}; dmsession={planted}"),
    ] {
        let (status, sets_cookie, body) = read_with(&shop, cookie.as_bytes()).await;
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", "2"),
            "{cookie}"
        );
        assert!(!sets_cookie, "no Set-Cookie for {cookie}");
    }
    // Several unknown ones: a fresh session, and still no expiring Set-Cookie (which would
    // delete whichever cookie the browser holds for our path).
    let cookie = format!("dmsession={planted}; dmsession={}", "q".repeat(43));
    let (status, sets_cookie, body) = read_with(&shop, cookie.as_bytes()).await;
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "0"));
    assert!(!sets_cookie);
    // A single unknown one is expired, as before.
    let (_, sets_cookie, _) = read_with(&shop, format!("dmsession={planted}").as_bytes()).await;
    assert!(sets_cookie);
}
