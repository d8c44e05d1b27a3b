//! Channels over real WebSockets and a real `redis-server`: the Pusher protocol as clients
//! see it, channel authorization by the session, the HTTP events API and its signature,
//! delivery across two servers sharing one Redis, presence across them, and every refusal
//! answered with the protocol's code.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rondo_tests::channels::{
    authorize, channels_config, log_in_as, publish, publish_raw, publish_signed, start_channels,
    PusherClient, Refused, KEY, SECRET,
};
use rondo_tests::http::TestServer;
use rondo_tests::process::rss_kib;
use rondo_tests::redis::RedisServer;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

async fn two_servers(extra: &str) -> (RedisServer, TestServer, TestServer) {
    let redis = RedisServer::start().await;
    let a = start_channels(channels_config(redis.port(), extra)).await;
    let b = start_channels(channels_config(redis.port(), extra)).await;
    (redis, a, b)
}

/// The handshake answers `connection_established` with a socket id and the configured
/// activity timeout, and `pusher:ping` gets `pusher:pong`.
#[tokio::test]
async fn connection_established_and_ping_pong() {
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(redis.port(), "activity_timeout = 30")).await;
    let mut client = PusherClient::connect(server.addr).await;
    assert!(
        rondo::channels::protocol::is_valid_socket_id(&client.socket_id),
        "{}",
        client.socket_id
    );
    assert_eq!(client.activity_timeout, 30);
    client.send_event("pusher:ping", None, json!({})).await;
    let pong = client.next(WAIT).await.unwrap();
    assert_eq!(pong.event, "pusher:pong");
}

/// A client silent for `activity_timeout` is pinged by the server; one that answers stays.
#[tokio::test]
async fn silent_clients_are_pinged() {
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(redis.port(), "activity_timeout = 1")).await;
    let mut client = PusherClient::connect(server.addr).await;
    assert_eq!(client.activity_timeout, 1);
    assert!(
        client.server_ping(Duration::from_secs(3)).await,
        "no pusher:ping"
    );
    client.send_event("pusher:pong", None, json!({})).await;
    client.send_event("pusher:ping", None, json!({})).await;
    assert_eq!(
        client.expect("pusher:pong", WAIT).await.unwrap().event,
        "pusher:pong"
    );
}

/// `/metrics` shows the channels: connections, subscriptions, presence members, messages.
#[tokio::test]
async fn metrics_count_connections_and_messages() {
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(redis.port(), "")).await;
    let mut jar = log_in_as(&server, "ana").await;
    let mut client = PusherClient::connect(server.addr).await;
    client.subscribe_with("news", None, None).await.unwrap();
    client.join(&server, &mut jar, "presence-room.3").await;
    publish(&server, "news", "e", &json!(1)).await;
    client.expect("e", WAIT).await.unwrap();
    let metrics = server.get("/metrics").await.body;
    for line in [
        "rondo_channels_connections 1",
        "rondo_channels_subscriptions 2",
        "rondo_channels_presence_members 1",
        "rondo_channels_messages_in_total 2",
        "rondo_channels_messages_out_total 1",
        "rondo_channels_publish_to_send_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

/// A client on A joins a private channel authorized with its session cookie and receives
/// an event published on B through the HTTP API, and one broadcast from a controller on B.
#[tokio::test]
async fn private_event_published_on_b_reaches_a() {
    let (_redis, a, b) = two_servers("").await;
    let mut jar = log_in_as(&a, "ana").await;
    let mut client = PusherClient::connect(a.addr).await;
    client.join(&a, &mut jar, "private-user.ana").await;
    publish(&b, "private-user.ana", "order.shipped", &json!({"id": 5})).await;
    let event = client.expect("order.shipped", WAIT).await.unwrap();
    assert_eq!(event.channel.as_deref(), Some("private-user.ana"));
    assert_eq!(event.data, json!({"id": 5}));
    let sent = b
        .post_json(
            "/broadcast",
            r#"{"channel":"private-user.ana","event":"basket.updated","data":{"qty":2}}"#,
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let event = client.expect("basket.updated", WAIT).await.unwrap();
    assert_eq!(event.data, json!({"qty": 2}));
}

/// Events from one publisher arrive once each, in order, on every subscriber of both
/// servers; a subscriber named as `socket_id` is left out.
#[tokio::test]
async fn events_arrive_once_in_order_on_both_servers() {
    let (_redis, a, b) = two_servers("").await;
    let mut on_a = PusherClient::connect(a.addr).await;
    let mut on_b = PusherClient::connect(b.addr).await;
    let mut excluded = PusherClient::connect(b.addr).await;
    for client in [&mut on_a, &mut on_b, &mut excluded] {
        let reply = client.subscribe_with("news", None, None).await.unwrap();
        assert_eq!(reply.event, "pusher_internal:subscription_succeeded");
    }
    for n in 0..20 {
        let body = json!({"name": "tick", "channel": "news", "data": n.to_string(),
            "socket_id": excluded.socket_id});
        let (status, answer) = publish_signed(&a, SECRET, &body).await;
        assert_eq!(status, 200, "{answer}");
    }
    for client in [&mut on_a, &mut on_b] {
        for n in 0..20 {
            let event = client.expect("tick", WAIT).await.unwrap();
            assert_eq!(event.data, json!(n));
        }
        assert!(client
            .expect("tick", Duration::from_millis(300))
            .await
            .is_none());
    }
    assert!(excluded
        .expect("tick", Duration::from_millis(300))
        .await
        .is_none());
}

/// Presence across servers: members join once per user (two sockets of one user are one
/// member), see each other's `member_added`, and `member_removed` comes with a user's last
/// socket only.
#[tokio::test]
async fn presence_join_and_leave_across_servers() {
    let (_redis, a, b) = two_servers("").await;
    let room = "presence-room.1";
    let mut ana_jar = log_in_as(&a, "ana").await;
    let mut bo_jar = log_in_as(&b, "bo").await;
    let mut ana = PusherClient::connect(a.addr).await;
    let joined = ana.join(&a, &mut ana_jar, room).await;
    assert_eq!(joined.data["presence"]["count"], 1);
    let mut bo = PusherClient::connect(b.addr).await;
    let joined = bo.join(&b, &mut bo_jar, room).await;
    assert_eq!(joined.data["presence"]["count"], 2, "{:?}", joined.data);
    assert_eq!(
        joined.data["presence"]["hash"]["ana"],
        json!({"name": "ana"})
    );
    let added = ana
        .expect("pusher_internal:member_added", WAIT)
        .await
        .unwrap();
    assert_eq!(
        added.data,
        json!({"user_id": "bo", "user_info": {"name": "bo"}})
    );
    // Bo's second socket, on A: no second member_added.
    let mut bo_again = PusherClient::connect(a.addr).await;
    let joined = bo_again.join(&a, &mut bo_jar, room).await;
    assert_eq!(joined.data["presence"]["count"], 2);
    assert!(ana
        .expect("pusher_internal:member_added", Duration::from_millis(500))
        .await
        .is_none());
    drop(bo);
    assert!(ana
        .expect("pusher_internal:member_removed", Duration::from_millis(700))
        .await
        .is_none());
    drop(bo_again);
    let removed = ana
        .expect("pusher_internal:member_removed", WAIT)
        .await
        .unwrap();
    assert_eq!(removed.data, json!({"user_id": "bo"}));
}

/// `Channels::remove_user` on one server takes a user off a presence channel on every
/// server: each of their sockets is told (`Removed`, 403), the others see one
/// `member_removed`, nothing published afterwards reaches the removed sockets, and their old
/// authorization no longer subscribes them. Only presence channels can be asked.
#[tokio::test]
async fn a_removed_user_leaves_the_channel_on_every_server() {
    let (_redis, a, b) = two_servers("").await;
    let room = "presence-room.5";
    let mut ana_jar = log_in_as(&a, "ana").await;
    let mut bo_jar = log_in_as(&b, "bo").await;
    let mut ana = PusherClient::connect(a.addr).await;
    ana.join(&a, &mut ana_jar, room).await;
    let mut bo_on_b = PusherClient::connect(b.addr).await;
    let (status, grant) = authorize(&b, &mut bo_jar, &bo_on_b.socket_id, room).await;
    assert_eq!(status, 200, "{grant}");
    let reply = bo_on_b
        .subscribe_with(room, grant["auth"].as_str(), grant["channel_data"].as_str())
        .await
        .unwrap();
    assert_eq!(reply.event, "pusher_internal:subscription_succeeded");
    let mut bo_on_a = PusherClient::connect(a.addr).await;
    bo_on_a.join(&a, &mut bo_jar, room).await;
    ana.expect("pusher_internal:member_added", WAIT)
        .await
        .unwrap();

    let removal = json!({ "channel": room, "user": "bo" }).to_string();
    let res = a.post_json("/remove", &removal).await;
    assert_eq!(res.status, 200, "{}", res.body);
    for bo in [&mut bo_on_b, &mut bo_on_a] {
        let told = bo.expect("pusher:subscription_error", WAIT).await.unwrap();
        assert_eq!(told.channel.as_deref(), Some(room));
        assert_eq!(told.data["type"], "Removed");
        assert_eq!(told.data["status"], 403);
    }
    let removed = ana
        .expect("pusher_internal:member_removed", WAIT)
        .await
        .unwrap();
    assert_eq!(removed.data, json!({"user_id": "bo"}));
    assert!(ana
        .expect("pusher_internal:member_removed", Duration::from_millis(500))
        .await
        .is_none());

    publish(&b, room, "after", &json!({"n": 1})).await;
    let after = ana.expect("after", WAIT).await.unwrap();
    assert_eq!(after.data, json!({"n": 1}));
    for bo in [&mut bo_on_b, &mut bo_on_a] {
        assert!(bo
            .expect("after", Duration::from_millis(500))
            .await
            .is_none());
    }
    // The authorization Bo held still verifies, but the socket refuses the channel now.
    let again = bo_on_b
        .subscribe_with(room, grant["auth"].as_str(), grant["channel_data"].as_str())
        .await
        .unwrap();
    assert_eq!(again.event, "pusher:subscription_error");
    assert_eq!(again.data["type"], "Removed");

    let private = json!({ "channel": "private-user.bo", "user": "bo" }).to_string();
    assert_eq!(a.post_json("/remove", &private).await.status, 400);
    let nobody = json!({ "channel": room, "user": "" }).to_string();
    assert_eq!(a.post_json("/remove", &nobody).await.status, 400);
}

/// Authorization: no session, another user's channel, and a channel no rule covers are
/// refused with 403; a malformed request with 400.
#[tokio::test]
async fn authorization_refusals() {
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(redis.port(), "")).await;
    let client = PusherClient::connect(server.addr).await;
    let mut anonymous = rondo_tests::app::Jar::default();
    let (status, _) = authorize(
        &server,
        &mut anonymous,
        &client.socket_id,
        "private-user.ana",
    )
    .await;
    assert_eq!(status, 403);
    let mut bo = log_in_as(&server, "bo").await;
    let (status, _) = authorize(&server, &mut bo, &client.socket_id, "private-user.ana").await;
    assert_eq!(status, 403);
    let (status, _) = authorize(&server, &mut bo, &client.socket_id, "private-other.1").await;
    assert_eq!(status, 403);
    let (status, _) = authorize(&server, &mut bo, "not-a-socket", "private-user.bo").await;
    assert_eq!(status, 400);
    let (status, grant) = authorize(&server, &mut bo, &client.socket_id, "private-user.bo").await;
    assert_eq!(status, 200);
    assert!(grant["auth"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{KEY}:")));
}

/// A tampered or replayed signature is refused with `pusher:subscription_error` (401), and
/// no event of the channel reaches that socket.
#[tokio::test]
async fn tampered_subscriptions_are_refused() {
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(redis.port(), "")).await;
    let mut jar = log_in_as(&server, "ana").await;
    let mut mine = PusherClient::connect(server.addr).await;
    let mut thief = PusherClient::connect(server.addr).await;
    let (_, grant) = authorize(&server, &mut jar, &mine.socket_id, "private-user.ana").await;
    let auth = grant["auth"].as_str().unwrap().to_owned();
    // Replayed on another socket.
    let reply = thief
        .subscribe_with("private-user.ana", Some(&auth), None)
        .await
        .unwrap();
    assert_eq!(reply.event, "pusher:subscription_error");
    assert_eq!(reply.data["status"], 401);
    // One hex digit changed.
    let mut tampered = auth.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let reply = mine
        .subscribe_with("private-user.ana", Some(&tampered), None)
        .await
        .unwrap();
    assert_eq!(reply.event, "pusher:subscription_error");
    // No auth at all on a private channel.
    let reply = thief
        .subscribe_with("private-user.ana", None, None)
        .await
        .unwrap();
    assert_eq!(reply.event, "pusher:subscription_error");
    // A presence member the server did not sign.
    let (_, grant) = authorize(&server, &mut jar, &mine.socket_id, "presence-room.1").await;
    let forged = r#"{"user_id":"admin"}"#;
    let reply = mine
        .subscribe_with("presence-room.1", grant["auth"].as_str(), Some(forged))
        .await
        .unwrap();
    assert_eq!(reply.event, "pusher:subscription_error");
    publish(&server, "private-user.ana", "secret", &json!(1)).await;
    assert!(thief
        .expect("secret", Duration::from_millis(400))
        .await
        .is_none());
    assert!(mine
        .expect("secret", Duration::from_millis(100))
        .await
        .is_none());
}

/// The HTTP events API: a wrong secret, a body changed after signing and a stale timestamp
/// answer 401; oversize data 413; a reserved event name 400; an unknown app 404.
#[tokio::test]
async fn events_api_refusals() {
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(redis.port(), "")).await;
    let body = json!({"name": "e", "channel": "news", "data": "x"});
    let (status, _) = publish_signed(&server, "wrong-secret-1", &body).await;
    assert_eq!(status, 401);
    let credentials = rondo::channels::protocol::Credentials::new(KEY, SECRET);
    let path = format!("/apps/{}/events", rondo_tests::channels::APP_ID);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = body.to_string();
    let query = rondo::channels::protocol::sign_request(
        &credentials,
        "POST",
        &path,
        &[],
        signed.as_bytes(),
        now,
    );
    let changed = json!({"name": "e", "channel": "news", "data": "y"}).to_string();
    let (status, _) = publish_raw(&server, &format!("{path}?{query}"), changed).await;
    assert_eq!(status, 401);
    let stale = rondo::channels::protocol::sign_request(
        &credentials,
        "POST",
        &path,
        &[],
        signed.as_bytes(),
        now - 3600,
    );
    let (status, answer) = publish_raw(&server, &format!("{path}?{stale}"), signed.clone()).await;
    assert_eq!(status, 401, "{answer}");
    let (status, _) = publish_raw(&server, &format!("{path}?{query}"), signed).await;
    assert_eq!(status, 200);
    let big = json!({"name": "e", "channel": "news", "data": "x".repeat(11 * 1024)});
    let (status, _) = publish_signed(&server, SECRET, &big).await;
    assert_eq!(status, 413);
    let reserved = json!({"name": "pusher_internal:member_added", "channel": "news", "data": "{}"});
    let (status, _) = publish_signed(&server, SECRET, &reserved).await;
    assert_eq!(status, 400);
    let (status, _) = publish_raw(&server, "/apps/other/events?x=1", "{}".into()).await;
    assert_eq!(status, 404);
}

/// Bad frames are answered with `pusher:error` and the connection stays up: invalid JSON,
/// an unknown event, a client event when they are off, oversize client-event data; a
/// message over `max_message_size` closes the socket with 1009.
#[tokio::test]
async fn bad_frames_get_protocol_errors() {
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(
        redis.port(),
        "client_events = false\nmax_message_size = 16k",
    ))
    .await;
    let mut client = PusherClient::connect(server.addr).await;
    for bad in [
        "{not json".to_owned(),
        json!({"event": "pusher:nope", "data": {}}).to_string(),
        json!({"event": "whatever", "data": {}}).to_string(),
        json!({"event": "client-typing", "channel": "private-x", "data": {}}).to_string(),
        json!({"event": "client-typing", "channel": "private-x", "data": "x".repeat(11_000)})
            .to_string(),
    ] {
        client.send_text(&bad).await;
        let error = client.next(WAIT).await.unwrap();
        assert_eq!(error.event, "pusher:error", "{bad:.60}: {error:?}");
        assert!(error.data["message"].is_string(), "{error:?}");
    }
    client.send_event("pusher:ping", None, json!({})).await;
    assert_eq!(client.next(WAIT).await.unwrap().event, "pusher:pong");
    client.send_text(&"x".repeat(20 * 1024)).await;
    assert_eq!(client.closed_with(WAIT).await, Some(1009));
}

/// Client events, when enabled, reach the channel's other subscribers with the sender's
/// `user_id` on presence channels, and beyond the rate limit are refused with 4301.
#[tokio::test]
async fn client_events_are_relayed_and_rate_limited() {
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(
        redis.port(),
        "client_events = true\nclient_event_rate = 3",
    ))
    .await;
    let room = "presence-room.9";
    let mut ana_jar = log_in_as(&server, "ana").await;
    let mut bo_jar = log_in_as(&server, "bo").await;
    let mut ana = PusherClient::connect(server.addr).await;
    let mut bo = PusherClient::connect(server.addr).await;
    ana.join(&server, &mut ana_jar, room).await;
    bo.join(&server, &mut bo_jar, room).await;
    ana.send_event("client-typing", Some(room), json!({"on": true}))
        .await;
    let typing = bo.expect("client-typing", WAIT).await.unwrap();
    assert_eq!(typing.data, json!({"on": true}));
    assert_eq!(typing.raw["user_id"], "ana");
    for _ in 0..5 {
        ana.send_event("client-typing", Some(room), json!({})).await;
    }
    let limited = ana.expect("pusher:error", WAIT).await.unwrap();
    assert_eq!(limited.data["code"], 4301);
}

/// Refusals at connect time close with the protocol's codes: an unknown app key 4001, an
/// unsupported protocol version 4007 (none at all is taken for the current one); a foreign
/// origin gets 403 before the upgrade; beyond `max_connections` 4100.
#[tokio::test]
async fn connection_refusals_use_protocol_codes() {
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(redis.port(), "max_connections = 2")).await;
    let refused = |r: Result<PusherClient, Refused>| match r {
        Err(Refused::Closed(code)) => code,
        Err(Refused::Http(status)) => status,
        Err(Refused::Other(other)) => panic!("unexpected refusal: {other}"),
        Ok(_) => 0,
    };
    let try_connect = |key: &'static str, query: &'static str, origin: Option<&'static str>| {
        PusherClient::try_connect(server.addr, key, query, origin)
    };
    assert_eq!(refused(try_connect("nope", "protocol=7", None).await), 4001);
    assert_eq!(refused(try_connect(KEY, "protocol=99", None).await), 4007);
    assert_eq!(
        refused(try_connect(KEY, "protocol=7", Some("https://evil.example")).await),
        403
    );
    // No protocol version: served as the current one (this socket stays, as one of two).
    let Ok(_one) = try_connect(KEY, "client=js", None).await else {
        panic!("a URL without `protocol` was refused");
    };
    let _two = PusherClient::connect(server.addr).await;
    assert_eq!(refused(try_connect(KEY, "protocol=7", None).await), 4100);
}

/// A subscriber that stops reading is cut with 4100 once its send queue is full, while
/// the others keep receiving everything.
#[tokio::test]
async fn slow_consumers_are_cut() {
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(redis.port(), "send_queue = 8")).await;
    let mut reader = PusherClient::connect(server.addr).await;
    let mut slow = PusherClient::connect_small_buffer(server.addr).await;
    reader.subscribe_with("firehose", None, None).await.unwrap();
    slow.subscribe_with("firehose", None, None).await.unwrap();
    let slow = slow.into_inner();
    // Batches of big events fill the slow socket's TCP buffers, then its queue.
    let data = "y".repeat(9_000);
    let mut published = 0;
    let mut cut = false;
    for _ in 0..200 {
        let batch: Vec<_> = (0..10)
            .map(|_| json!({"name": "big", "channel": "firehose", "data": data}))
            .collect();
        let credentials = rondo::channels::protocol::Credentials::new(KEY, SECRET);
        let body = json!({ "batch": batch }).to_string();
        let path = format!("/apps/{}/batch_events", rondo_tests::channels::APP_ID);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let query = rondo::channels::protocol::sign_request(
            &credentials,
            "POST",
            &path,
            &[],
            body.as_bytes(),
            now,
        );
        let (status, answer) = publish_raw(&server, &format!("{path}?{query}"), body).await;
        assert_eq!(status, 200, "{answer}");
        for _ in 0..10 {
            published += 1;
            let event = reader.expect("big", WAIT).await;
            assert!(event.is_some(), "the reader missed event {published}");
        }
        let metrics = server.get("/metrics").await.body;
        if metrics.contains("rondo_channels_slow_consumers_cut_total 1") {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "the slow consumer was never cut after {published} events"
    );
    let mut slow = slow;
    let code = tokio::time::timeout(WAIT, async {
        use futures_util::StreamExt;
        while let Some(Ok(message)) = slow.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(Some(frame)) = message {
                return Some(u16::from(frame.code));
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    assert_eq!(code, Some(4100));
}

/// One node holds 1,000 subscribed connections, and one event reaches all of them; the
/// process's memory per connection (clients included, both ends in this process) is
/// printed.
#[tokio::test]
async fn a_thousand_connections_on_one_node() {
    let redis = RedisServer::start().await;
    let server = start_channels(channels_config(redis.port(), "max_connections = 5000")).await;
    let before = rss_kib(std::process::id());
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let mut client = PusherClient::connect(server.addr).await;
        let reply = client.subscribe_with("crowd", None, None).await.unwrap();
        assert_eq!(reply.event, "pusher_internal:subscription_succeeded");
        clients.push(client);
    }
    let after = rss_kib(std::process::id());
    println!(
        "1000 subscribed connections: RSS {before} KiB -> {after} KiB, {:.1} KiB per connection \
         (server and client ends together)",
        (after.saturating_sub(before)) as f64 / 1000.0
    );
    publish(&server, "crowd", "hello", &json!({"to": "all"})).await;
    for (n, client) in clients.iter_mut().enumerate() {
        let event = client.expect("hello", WAIT).await;
        assert!(event.is_some(), "client {n} missed the event");
    }
}
