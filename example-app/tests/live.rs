//! The shop's channels with real example-app processes on one Redis: the live basket of a
//! session reaches its sockets on another server, presence members of a server killed with
//! SIGKILL are removed by the other within `presence_ttl` (+ 2 s), and one server holds
//! 1,000 subscribed sockets (its memory per idle socket is printed).

use std::time::{Duration, Instant};

use rondo_tests::app::set_cookie_value;
use rondo_tests::channels::{authorize_with, channels_section, PusherClient, KEY};
use rondo_tests::http::{request, Client};
use rondo_tests::process::{rss_kib, AppCommand, AppProcess};
use rondo_tests::redis::RedisServer;
use serde_json::{json, Value};

/// The example-app binary these tests run.
const APP: &str = env!("CARGO_BIN_EXE_example-app");

const WAIT: Duration = Duration::from_secs(5);

async fn start_app(redis_port: u16, name: &str, extra: &str) -> AppProcess {
    AppCommand::example(APP, name, redis_port, &channels_section(extra))
        .start()
        .await
}

/// Logs `user` in through the JSON API: the session cookie (`dmsession=...`).
async fn log_in(client: Client, user: &str) -> String {
    let response = client
        .post_json("/api/login", &json!({ "user": user }).to_string())
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let value = set_cookie_value(&response, "dmsession").expect("a session cookie");
    format!("dmsession={value}")
}

/// The basket channel the shop page names for the session of `cookie`.
async fn basket_channel(client: Client, cookie: &str) -> String {
    let page = client
        .send(request("GET", "/", &[("cookie", cookie)], String::new()))
        .await;
    assert_eq!(page.status, 200);
    let marker = "data-channel=\"";
    let start = page.body.find(marker).expect("the page is live") + marker.len();
    let end = page.body[start..].find('"').expect("closing quote") + start;
    page.body[start..end].to_owned()
}

/// A basket change made on server B reaches the session's socket on server A as
/// `basket.updated` with the new basket, and another session cannot join that channel.
#[tokio::test]
async fn basket_changes_reach_the_session_on_another_server() {
    let redis = RedisServer::start().await;
    let a = start_app(redis.port(), "live-a", "").await;
    let b = start_app(redis.port(), "live-b", "").await;
    let cookie = log_in(a.client(), "ana").await;
    let channel = basket_channel(a.client(), &cookie).await;
    assert!(channel.starts_with("private-basket."), "{channel}");
    let mut socket = PusherClient::connect(a.addr()).await;
    socket.join_with(a.client(), &cookie, &channel).await;

    let other = log_in(b.client(), "bo").await;
    let (status, _) = authorize_with(b.client(), &other, &socket.socket_id, &channel).await;
    assert_eq!(status, 403, "another session may not join this basket");

    let added = b
        .client()
        .send(request(
            "POST",
            "/api/basket/items",
            &[("cookie", &cookie), ("content-type", "application/json")],
            json!({"sku": "TEA-01", "qty": 3}).to_string(),
        ))
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let event = socket
        .expect("basket.updated", WAIT)
        .await
        .expect("the update");
    assert_eq!(
        event.data,
        json!({"items": [{"sku": "TEA-01", "qty": 3}], "total_qty": 3})
    );
    let cleared = b
        .client()
        .send(request(
            "DELETE",
            "/api/basket",
            &[("cookie", &cookie)],
            String::new(),
        ))
        .await;
    assert_eq!(cleared.status, 200);
    let event = socket
        .expect("basket.updated", WAIT)
        .await
        .expect("the clear");
    assert_eq!(event.data, json!({"items": [], "total_qty": 0}));
}

/// Presence across servers, and a server that dies: Ana on A sees Bo (on B) join the
/// shop; when B is killed with SIGKILL, A removes Bo and tells Ana within `presence_ttl`
/// (2 s here) plus 2 s.
#[tokio::test]
async fn members_of_a_killed_server_are_removed_within_presence_ttl() {
    let redis = RedisServer::start().await;
    let a = start_app(redis.port(), "presence-a", "").await;
    let mut b = start_app(redis.port(), "presence-b", "").await;
    let ana_cookie = log_in(a.client(), "ana").await;
    let bo_cookie = log_in(b.client(), "bo").await;
    let mut ana = PusherClient::connect(a.addr()).await;
    let joined = ana
        .join_with(a.client(), &ana_cookie, "presence-shop")
        .await;
    assert_eq!(joined.data["presence"]["ids"], json!(["ana"]));
    let mut bo = PusherClient::connect(b.addr()).await;
    let joined = bo.join_with(b.client(), &bo_cookie, "presence-shop").await;
    assert_eq!(joined.data["presence"]["count"], 2, "{:?}", joined.data);
    let added = ana
        .expect("pusher_internal:member_added", WAIT)
        .await
        .expect("Bo joins");
    assert_eq!(added.data["user_id"], "bo");

    b.kill();
    let killed = Instant::now();
    let removed = ana
        .expect("pusher_internal:member_removed", Duration::from_secs(4))
        .await
        .expect("Bo is removed within presence_ttl + 2 s");
    assert_eq!(removed.data, json!({"user_id": "bo"}));
    println!("member_removed {:?} after SIGKILL", killed.elapsed());
    // Ana is still a member for a newcomer.
    let mut cy = PusherClient::connect(a.addr()).await;
    let cy_cookie = log_in(a.client(), "cy").await;
    let joined = cy.join_with(a.client(), &cy_cookie, "presence-shop").await;
    let mut ids: Vec<Value> = joined.data["presence"]["ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ids.sort_by_key(ToString::to_string);
    assert_eq!(ids, vec![json!("ana"), json!("cy")]);
}

/// One server holds 1,000 subscribed sockets; an event reaches each once. The server's
/// resident memory per idle subscribed socket is printed.
#[tokio::test]
async fn a_thousand_sockets_on_one_server() {
    let redis = RedisServer::start().await;
    let app = start_app(redis.port(), "crowd", "").await;
    let pid = app.pid().expect("running");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let mut sockets = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let mut socket = PusherClient::connect(app.addr()).await;
        let reply = socket
            .subscribe_with("crowd", None, None)
            .await
            .expect("answer");
        assert_eq!(reply.event, "pusher_internal:subscription_succeeded");
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    println!(
        "server RSS {before} KiB -> {after} KiB with 1000 idle subscribed sockets: {:.1} KiB per socket",
        after.saturating_sub(before) as f64 / 1000.0
    );
    let body = json!({"name": "hello", "channel": "crowd", "data": "{}"}).to_string();
    let credentials =
        rondo::channels::protocol::Credentials::new(KEY, rondo_tests::channels::SECRET);
    let path = format!("/apps/{}/events", rondo_tests::channels::APP_ID);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let query = rondo::channels::protocol::sign_request(
        &credentials,
        "POST",
        &path,
        &[],
        body.as_bytes(),
        now,
    );
    let published = app
        .client()
        .send(request(
            "POST",
            &format!("{path}?{query}"),
            &[("content-type", "application/json")],
            body,
        ))
        .await;
    assert_eq!(published.status, 200, "{}", published.body);
    for (n, socket) in sockets.iter_mut().enumerate() {
        assert!(
            socket.expect("hello", WAIT).await.is_some(),
            "socket {n} missed it"
        );
        assert!(socket
            .expect("hello", Duration::from_millis(1))
            .await
            .is_none());
    }
}
