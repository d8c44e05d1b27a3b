//! Races on one session, on one server and across two servers sharing one Redis: a CSRF
//! token spent by many requests at once, a write racing a rotation of the session id, and
//! many writers on one session. What a response acknowledged must hold afterwards, and
//! contention must never be reported as an outage.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use http::StatusCode;
use rondo::session::SessionId;
use rondo_tests::app::{example_config, set_cookie_value, start_example, Jar};
use rondo_tests::http::{request, Client, TestResponse, TestServer};
use rondo_tests::redis::RedisServer;

/// `method path` with the session cookie `cookie` (and a JSON or form body).
async fn send(
    client: Client,
    method: &'static str,
    path: &'static str,
    cookie: impl AsRef<str>,
    content_type: Option<&'static str>,
    body: impl Into<String>,
) -> TestResponse {
    let cookie = cookie.as_ref();
    let cookie = format!("dmsession={cookie}");
    let mut headers = vec![("cookie", cookie.as_str())];
    if let Some(content_type) = content_type {
        headers.push(("content-type", content_type));
    }
    client
        .send(request(method, path, &headers, body.into()))
        .await
}

/// The `_csrf` token of the form posting to `action` in a rendered page.
fn csrf_token(page: &str, action: &str) -> String {
    let form = page
        .split("<form")
        .find(|form| form.contains(&format!("action=\"{action}\"")))
        .unwrap_or_else(|| panic!("no form for {action}"));
    let at = form.find("name=\"_csrf\" value=\"").unwrap() + 20;
    form[at..].split('"').next().unwrap().to_owned()
}

/// Two example apps on one Redis, with `extra` config lines.
async fn two_servers(extra: &str) -> (RedisServer, TestServer, TestServer) {
    let redis = RedisServer::start().await;
    let a = start_example(example_config(redis.port(), extra)).await;
    let b = start_example(example_config(redis.port(), extra)).await;
    (redis, a, b)
}

/// 50 posts of one form at once, with one token, half through each of two servers: exactly
/// one is accepted. Three rounds, each with a fresh token, of the basket-emptying form (a
/// controller that only makes blind changes, so nothing else serializes the posts).
#[tokio::test]
async fn one_csrf_token_admits_one_of_fifty_concurrent_posts_across_two_servers() {
    let (_redis, a, b) = two_servers("").await;
    let mut jar = Jar::default();
    let added = jar
        .post_json(&a, "/api/basket/items", r#"{"sku":"A-1","qty":1}"#)
        .await;
    assert_eq!(added.status, StatusCode::OK);
    let cookie = jar.value.clone().unwrap();
    let form = Some("application/x-www-form-urlencoded");
    for round in 0..3 {
        let page = send(a.client(), "GET", "/", cookie.as_str(), None, "").await;
        let token = csrf_token(&page.body, "/basket/clear");
        // Both servers hold a warm copy of the session, as a browser's other requests leave.
        for server in [&a, &b] {
            let basket = send(
                server.client(),
                "GET",
                "/api/basket",
                cookie.as_str(),
                None,
                "",
            )
            .await;
            assert_eq!(basket.status, StatusCode::OK);
        }
        let body = format!("_csrf={token}");
        let posts: Vec<_> = (0..50)
            .map(|i| {
                let client = if i % 2 == 0 { a.client() } else { b.client() };
                tokio::spawn(send(
                    client,
                    "POST",
                    "/basket/clear",
                    cookie.clone(),
                    form,
                    body.clone(),
                ))
            })
            .collect();
        let mut accepted = 0;
        for post in posts {
            let response = post.await.unwrap();
            match response.status {
                StatusCode::SEE_OTHER => accepted += 1,
                StatusCode::BAD_REQUEST => {}
                other => panic!("unexpected {other}: {}", response.body),
            }
        }
        assert_eq!(
            accepted, 1,
            "round {round}: one token, {accepted} accepted posts"
        );
        // The form shows only with something in the basket.
        let added = send(
            a.client(),
            "POST",
            "/api/basket/items",
            cookie.as_str(),
            Some("application/json"),
            r#"{"sku":"A-1","qty":1}"#,
        )
        .await;
        assert_eq!(added.status, StatusCode::OK);
    }
}

/// A form that fails to decode (422) does not spend its token: the corrected form goes
/// through with the same token.
#[tokio::test]
async fn a_form_refused_as_malformed_keeps_its_token() {
    let (_redis, a, _b) = two_servers("").await;
    let mut jar = Jar::default();
    let page = jar.get(&a, "/").await;
    let token = csrf_token(&page.body, "/basket/add");
    let bad = jar
        .post_form(&a, "/basket/add", &format!("_csrf={token}&qty=2"))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let good = jar
        .post_form(&a, "/basket/add", &format!("_csrf={token}&sku=A-1&qty=2"))
        .await;
    assert_eq!(good.status, StatusCode::SEE_OTHER, "{}", good.body);
    assert_eq!(jar.get(&a, "/api/basket").await.json()["total_qty"], 2);
}

/// CSRF tokens issued before a login die with the old id: after the login (which rotates
/// the id) a token from the page seen before it is refused.
#[tokio::test]
async fn csrf_tokens_issued_before_login_die_with_the_old_id() {
    let (_redis, a, _b) = two_servers("").await;
    let mut jar = Jar::default();
    let page = jar.get(&a, "/").await;
    let add = csrf_token(&page.body, "/basket/add");
    let login = csrf_token(&page.body, "/login");
    let before = jar.value.clone();
    let res = jar
        .post_form(&a, "/login", &format!("_csrf={login}&user=ann"))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_ne!(jar.value, before, "the login rotates the id");
    let res = jar
        .post_form(&a, "/basket/add", &format!("_csrf={add}&sku=A-1&qty=1"))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    // A token from a page rendered after the login works.
    let page = jar.get(&a, "/").await;
    let add = csrf_token(&page.body, "/basket/add");
    let res = jar
        .post_form(&a, "/basket/add", &format!("_csrf={add}&sku=A-1&qty=1"))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
}

/// What one rotation-versus-write trial showed.
#[derive(Debug, Default)]
struct Outcomes {
    /// The write was acknowledged on the old id and is in the rotated session.
    followed: u32,
    /// The write was refused (409): the session had moved before it could be applied.
    refused: u32,
    /// The write was served on a fresh session (the old id was already unknown): its
    /// response expired the old cookie.
    fresh: u32,
}

/// `trials` times: a basket with one item, then `DELETE /api/basket` through `writer` and
/// `POST /api/login` through `rotator` at once. Whenever the delete is acknowledged (200)
/// on the old session (no new cookie), the rotated session's basket must end empty.
async fn rotation_races(writer: &TestServer, rotator: &TestServer, trials: usize) -> Outcomes {
    let mut outcomes = Outcomes::default();
    let json = Some("application/json");
    for trial in 0..trials {
        let added = send(
            rotator.client(),
            "POST",
            "/api/basket/items",
            "",
            json,
            r#"{"sku":"A-1","qty":1}"#,
        )
        .await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.body);
        let old = set_cookie_value(&added, "dmsession").unwrap();
        // The writer's server holds a warm copy of the session, as it would in use.
        let warm = send(writer.client(), "GET", "/api/basket", &old, None, "").await;
        assert_eq!(warm.json()["total_qty"], 1);

        let delete = tokio::spawn(send(
            writer.client(),
            "DELETE",
            "/api/basket",
            old.clone(),
            None,
            "",
        ));
        let login = tokio::spawn(send(
            rotator.client(),
            "POST",
            "/api/login",
            old.clone(),
            json,
            format!(r#"{{"user":"u{trial}"}}"#),
        ));
        let (delete, login) = (delete.await.unwrap(), login.await.unwrap());
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let new = set_cookie_value(&login, "dmsession").unwrap();
        match (delete.status, set_cookie_value(&delete, "dmsession")) {
            (StatusCode::OK, None) => {
                outcomes.followed += 1;
                let emptied = rondo_tests::eventually(
                    "the delete in the rotated session",
                    Duration::from_secs(3),
                    || {
                        let new = new.clone();
                        async move {
                            let basket =
                                send(rotator.client(), "GET", "/api/basket", &new, None, "").await;
                            (basket.json()["total_qty"] == 0).then_some(())
                        }
                    },
                );
                emptied.await;
            }
            (StatusCode::OK, Some(expired)) => {
                assert_eq!(expired, "", "a fresh session expires the old cookie");
                outcomes.fresh += 1;
            }
            (StatusCode::CONFLICT, _) => outcomes.refused += 1,
            (status, _) => panic!("unexpected {status}: {}", delete.body),
        }
    }
    outcomes
}

/// 400 races of a write on server B against a login (id rotation) on server A, with the
/// default `persist = after_response`: no write acknowledged on the old id is lost.
#[tokio::test]
async fn a_write_racing_a_rotation_elsewhere_is_never_lost() {
    let (_redis, a, b) = two_servers("").await;
    let outcomes = rotation_races(&b, &a, 400).await;
    eprintln!("{outcomes:?}");
}

/// The same with `persist = before_response`.
#[tokio::test]
async fn a_write_racing_a_rotation_elsewhere_is_never_lost_before_response() {
    let (_redis, a, b) = two_servers("[session]\npersist = before_response\n").await;
    let outcomes = rotation_races(&b, &a, 400).await;
    eprintln!("{outcomes:?}");
}

/// The same on one server past `max_actors` (the two requests get actors of their own).
#[tokio::test]
async fn a_write_racing_a_rotation_past_max_actors_is_never_lost() {
    let (_redis, a, _b) = two_servers("[session]\nmax_actors = 1\n").await;
    let outcomes = rotation_races(&a, &a, 300).await;
    eprintln!("{outcomes:?}");
}

/// 16 clients per server, on two servers, increment one session's counter at once: every
/// answer is a 200 (or a 503 that says "busy, retry", never "store unavailable"), and the
/// counter ends at exactly the number of 200s.
#[tokio::test]
async fn contention_on_one_session_is_not_an_outage() {
    let (_redis, a, b) = two_servers("").await;
    let first = send(a.client(), "GET", "/bench/counter", "", None, "").await;
    let cookie = set_cookie_value(&first, "dmsession").unwrap();
    let workers: Vec<_> = (0..32)
        .map(|i| {
            let client = if i % 2 == 0 { a.client() } else { b.client() };
            let cookie = cookie.clone();
            tokio::spawn(async move {
                let (mut ok, mut busy) = (0u64, 0u64);
                for _ in 0..100 {
                    let res =
                        send(client, "GET", "/bench/counter", cookie.as_str(), None, "").await;
                    match res.status {
                        StatusCode::OK => ok += 1,
                        StatusCode::SERVICE_UNAVAILABLE => {
                            assert!(!res.body.contains("unavailable"), "{}", res.body);
                            assert_eq!(res.header("retry-after"), Some("1"));
                            busy += 1;
                        }
                        other => panic!("unexpected {other}: {}", res.body),
                    }
                }
                (ok, busy)
            })
        })
        .collect();
    let (mut ok, mut busy) = (1u64, 0u64);
    for worker in workers {
        let (o, b) = worker.await.unwrap();
        ok += o;
        busy += b;
    }
    let read = send(b.client(), "GET", "/bench/read", &cookie, None, "").await;
    assert_eq!(read.body, ok.to_string(), "{busy} busy answers");
    eprintln!("{ok} increments, {busy} busy answers");
}

/// Bumps the stored version of the session at `key` as fast as Redis takes it, for `how_long`:
/// another server committing to the session without pause. Returns how many bumps it made.
async fn compete(
    redis: &RedisServer,
    key: String,
    how_long: Duration,
) -> tokio::task::JoinHandle<u64> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    tokio::spawn(async move {
        let until = tokio::time::Instant::now() + how_long;
        let mut bumps = 0;
        while tokio::time::Instant::now() < until {
            let _: i64 = redis::cmd("HINCRBY")
                .arg(&key)
                .arg("_v")
                .arg(1)
                .query_async(&mut conn)
                .await
                .unwrap();
            bumps += 1;
        }
        bumps
    })
}

/// A writer that commits to the session without pause (every commit of the server
/// conflicts meanwhile) holds the server's changes back, not fails them: for 300 ms, eight
/// concurrent increments all wait it out and land (200, exact). For longer than the
/// server's patience (2 s), the increments get 503 "busy" with `Retry-After`, never "store
/// unavailable", and none that was answered 200 is lost.
#[tokio::test]
async fn a_commit_that_keeps_conflicting_backs_off_instead_of_failing() {
    let (redis, a, _b) = two_servers("").await;
    let first = send(a.client(), "GET", "/bench/counter", "", None, "").await;
    let cookie = set_cookie_value(&first, "dmsession").unwrap();
    let key = SessionId::parse(&cookie)
        .unwrap()
        .store_key("t:")
        .as_str()
        .to_owned();
    let mut expected = 1;
    for (how_long, all_land) in [
        (Duration::from_millis(300), true),
        (Duration::from_secs(4), false),
    ] {
        let competitor = compete(&redis, key.clone(), how_long).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let increments: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn(send(
                    a.client(),
                    "GET",
                    "/bench/counter",
                    cookie.clone(),
                    None,
                    "",
                ))
            })
            .collect();
        let (mut ok, mut busy) = (0, 0);
        for increment in increments {
            let res = increment.await.unwrap();
            match res.status {
                StatusCode::OK => ok += 1,
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert!(res.body.contains("busy"), "{}", res.body);
                    assert!(!res.body.contains("unavailable"), "{}", res.body);
                    assert_eq!(res.header("retry-after"), Some("1"));
                    busy += 1;
                }
                other => panic!("unexpected {other}: {}", res.body),
            }
        }
        let bumps = competitor.await.unwrap();
        assert!(bumps > 100, "the competitor made only {bumps} commits");
        if all_land {
            assert_eq!((ok, busy), (8, 0));
        } else {
            assert!(
                busy > 0,
                "{ok} increments landed while every commit conflicted"
            );
        }
        expected += ok;
        let read = send(a.client(), "GET", "/bench/read", cookie.as_str(), None, "").await;
        assert_eq!(read.body, expected.to_string());
    }
}
