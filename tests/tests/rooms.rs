//! The example app's meeting rooms through their JSON API, on two servers sharing one real
//! `redis-server`: a room made on one server is joined, chatted in, shared into and closed
//! through the other; every refusal of a join link answers with its own status and reason;
//! non-members get 403 on the room, its files, its token and its channel; removing a
//! member takes their socket off the room's channel.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use livekit_api::access_token::TokenVerifier;
use rondo::signed::unix_now;
use rondo_tests::app::{example_config, start_example, Jar};
use rondo_tests::channels::{authorize_with, channels_section, PusherClient};
use rondo_tests::files::{content_type, file, multipart, FilesDir};
use rondo_tests::http::{request, TestResponse, TestServer};
use rondo_tests::redis::RedisServer;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);
/// `[livekit]` of the test servers: no LiveKit listens there; tokens are what is tested.
const LIVEKIT_KEY: &str = "APIrooms";
const LIVEKIT_SECRET: &str = "a-rooms-test-secret-of-32-characters";

/// Two example apps on one Redis, one `[files] dir` and one `[app] key` (as two servers of
/// one deployment), with channels and client events on.
struct World {
    redis: RedisServer,
    a: TestServer,
    b: TestServer,
    _files: FilesDir,
}

async fn world() -> World {
    let redis = RedisServer::start().await;
    let files = FilesDir::new();
    let extra = format!(
        "[app]\nkey = base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n[files]\ndir = {}\n\
         [livekit]\nurl = ws://127.0.0.1:9\napi_key = {LIVEKIT_KEY}\napi_secret = {LIVEKIT_SECRET}\n{}",
        files.path().display(),
        channels_section("client_events = true"),
    );
    let a = start_example(example_config(redis.port(), &extra)).await;
    let b = start_example(example_config(redis.port(), &extra)).await;
    World {
        redis,
        a,
        b,
        _files: files,
    }
}

async fn log_in(server: &TestServer, user: &str) -> Jar {
    let mut jar = Jar::default();
    let res = jar
        .post_json(server, "/api/login", &json!({ "user": user }).to_string())
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    jar
}

/// Ann (logged in on `server`) opens a room with `capacity` places; its id.
async fn open_room(server: &TestServer, host: &mut Jar, capacity: u32) -> String {
    let body = json!({ "title": "Standup <weekly>", "capacity": capacity }).to_string();
    let res = host.post_json(server, "/api/rooms", &body).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let answer = res.json();
    let id = answer["room"]["id"].as_str().unwrap().to_owned();
    assert_eq!(answer["path"], format!("/rooms/{id}"));
    id
}

/// The host makes a link for `room` with `body` (JSON fields of the API); its id.
async fn make_link(server: &TestServer, host: &mut Jar, room: &str, body: Value) -> String {
    let res = host
        .post_json(
            server,
            &format!("/api/rooms/{room}/links"),
            &body.to_string(),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let link = res.json();
    let id = link["id"].as_str().unwrap().to_owned();
    assert_eq!(link["path"], format!("/join/{id}"));
    id
}

fn cookie(jar: &Jar) -> String {
    format!("dmsession={}", jar.value.clone().unwrap_or_default())
}

/// `GET path` with the jar's cookie and `Accept: text/html`, as a browser asks.
async fn browse(server: &TestServer, jar: &mut Jar, path: &str) -> TestResponse {
    let cookie = cookie(jar);
    let mut headers = vec![("accept", "text/html,application/xhtml+xml")];
    if jar.value.is_some() {
        headers.push(("cookie", cookie.as_str()));
    }
    let res = server
        .send(request("GET", path, &headers, String::new()))
        .await;
    jar.update(&res);
    res
}

/// Uploads `body` as `name` (text/plain) to `room`, with `X-Requested-With` or without.
async fn upload(
    server: &TestServer,
    jar: &Jar,
    room: &str,
    name: &str,
    body: &str,
    same_site: bool,
) -> TestResponse {
    let cookie = cookie(jar);
    let kind = content_type();
    let mut headers = vec![("cookie", cookie.as_str()), ("content-type", kind.as_str())];
    if same_site {
        headers.push(("x-requested-with", "rondo-rooms"));
    }
    let body = multipart(&[file("file", name, "text/plain", body)]);
    server
        .send(request(
            "POST",
            &format!("/api/rooms/{room}/files"),
            &headers,
            body,
        ))
        .await
}

/// A guest redeems `link` on `server`: the answer (303 into the room, or the refusal).
async fn join(server: &TestServer, jar: &mut Jar, link: &str) -> TestResponse {
    jar.get(server, &format!("/join/{link}")).await
}

/// A room made on A is joined by link on B (a new session id, the room bound to it), and
/// its chat, files and token work across the two servers: the chat posted on B is read on
/// A, the file uploaded on B is downloaded on A with the same bytes, through a link only a
/// member gets, and the token names the member and the room.
#[tokio::test]
async fn a_guest_joins_by_link_and_the_room_works_across_servers() {
    let w = world().await;
    let mut ann = log_in(&w.a, "Ann").await;
    let room = open_room(&w.a, &mut ann, 2).await;
    let link = make_link(&w.a, &mut ann, &room, json!({ "max_uses": 1 })).await;

    let mut guest = Jar::default();
    let first = guest.get(&w.b, "/").await; // a visitor with a session already
    assert_eq!(first.status, 200);
    let before = guest.value.clone();
    let res = join(&w.b, &mut guest, &link).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(
        res.header("location"),
        Some(format!("/rooms/{room}").as_str())
    );
    assert_ne!(guest.value, before, "the session id rotates on joining");
    let view = guest.get(&w.b, &format!("/api/rooms/{room}")).await;
    assert_eq!(view.status, 200, "{}", view.body);
    let view = view.json();
    assert!(
        view["me"]["name"].as_str().unwrap().starts_with("Guest "),
        "{view}"
    );
    assert_eq!(view["me"]["host"], false);
    assert_eq!(view["members"].as_array().unwrap().len(), 2);
    assert_eq!(view["members"][0]["name"], "Ann");
    assert_eq!(view["channel"], format!("presence-room.{room}"));

    // The room is bound to the guest's session: /rooms lists it.
    let home = browse(&w.a, &mut guest, "/rooms").await;
    assert_eq!(home.status, 200);
    assert!(
        home.body.contains(&format!("href=\"/rooms/{room}\"")),
        "{}",
        home.body
    );
    // The same visitor again: let through, no second place used.
    assert_eq!(join(&w.a, &mut guest, &link).await.status, 303);
    let links = ann
        .get(&w.a, &format!("/api/rooms/{room}/links"))
        .await
        .json();
    assert_eq!(links[0]["uses"], 1, "{links}");

    let said = guest
        .post_json(
            &w.b,
            &format!("/api/rooms/{room}/chat"),
            r#"{"text":"hello from B"}"#,
        )
        .await;
    assert_eq!(said.status, 201, "{}", said.body);
    let chat = ann
        .get(&w.a, &format!("/api/rooms/{room}/chat"))
        .await
        .json();
    assert_eq!(chat[0]["text"], "hello from B");
    assert_eq!(chat[0]["name"], view["me"]["name"]);

    let bytes = "the agenda\nline two\n";
    let shared = upload(&w.b, &guest, &room, "agenda.txt", bytes, true).await;
    assert_eq!(shared.status, 201, "{}", shared.body);
    let shared = shared.json();
    assert_eq!(shared["name"], "agenda.txt");
    assert_eq!(shared["size"], bytes.len());
    let listed = ann
        .get(&w.a, &format!("/api/rooms/{room}/files"))
        .await
        .json();
    assert_eq!(listed[0]["id"], shared["id"]);
    let signed = listed[0]["url"].as_str().unwrap();
    assert!(
        signed.contains("expires=") && signed.contains("signature="),
        "{signed}"
    );
    let path = listed[0]["path"].as_str().unwrap();
    let redirect = ann.get(&w.a, path).await;
    assert_eq!(redirect.status, 303, "{}", redirect.body);
    let location = redirect.header("location").unwrap().to_owned();
    let download = w.a.get(&location).await;
    assert_eq!(download.status, 200, "{}", download.body);
    assert_eq!(download.body, bytes);
    assert_eq!(w.b.get(&location).await.body, bytes, "any server serves it");

    let before = unix_now();
    let token = guest.get(&w.b, &format!("/api/rooms/{room}/token")).await;
    assert_eq!(token.status, 200, "{}", token.body);
    let token = token.json();
    assert_eq!(token["room"], format!("room-{room}"));
    assert_eq!(token["url"], "ws://127.0.0.1:9");
    let claims = TokenVerifier::with_api_key(LIVEKIT_KEY, LIVEKIT_SECRET)
        .verify(token["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.sub, view["me"]["id"].as_str().unwrap());
    assert_eq!(claims.video.room, format!("room-{room}"));
    assert!(claims.video.room_join);
    let exp = u64::try_from(claims.exp).unwrap();
    assert!((before + 600..=unix_now() + 600).contains(&exp), "{exp}");
    assert!(
        token["expires_at"].as_u64().unwrap().abs_diff(exp) <= 1,
        "{token}"
    );

    // Every key of the room shares its hash tag (one Redis Cluster slot).
    let keys = w.redis.keys(&format!("t:rooms:{{{room}}}*")).await;
    assert!(keys.len() >= 5, "{keys:?}");
}

/// A personal invitation binds its participant's name to the visitor who opens it; a `HEAD`
/// of a link (a link preview) redeems nothing.
#[tokio::test]
async fn a_personal_invitation_names_its_guest() {
    let w = world().await;
    let mut ann = log_in(&w.a, "Ann").await;
    let room = open_room(&w.a, &mut ann, 2).await;
    let invitation = json!({ "participant": "Dana", "max_uses": 1 });
    let link = make_link(&w.a, &mut ann, &room, invitation).await;
    let preview =
        w.b.send(request(
            "HEAD",
            &format!("/join/{link}"),
            &[],
            String::new(),
        ))
        .await;
    assert_eq!(preview.status, 303);
    let links = ann
        .get(&w.a, &format!("/api/rooms/{room}/links"))
        .await
        .json();
    assert_eq!(links[0]["uses"], 0, "{links}");
    assert_eq!(links[0]["participant"], "Dana");

    let mut dana = Jar::default();
    assert_eq!(join(&w.b, &mut dana, &link).await.status, 303);
    let view = dana.get(&w.a, &format!("/api/rooms/{room}")).await.json();
    assert_eq!(view["me"]["name"], "Dana");
    let links = ann
        .get(&w.a, &format!("/api/rooms/{room}/links"))
        .await
        .json();
    assert_eq!(links[0]["uses"], 1, "{links}");
}

/// Without Redis (sessions in this process's memory) the rooms answer 503 rather than
/// keep rooms a second server could not see; the rest of the app still works.
#[tokio::test]
async fn rooms_need_redis() {
    let files = FilesDir::new();
    let text = format!(
        "[http]\nport = 0\n[session]\nstore = memory\n[files]\ndir = {}\n",
        files.path().display()
    );
    let config = rondo::ConfigLoader::new()
        .section("example")
        .parse_str(&text, "memory.ini")
        .unwrap();
    let server = start_example(config).await;
    let mut ann = log_in(&server, "Ann").await;
    let res = ann
        .post_json(&server, "/api/rooms", r#"{"title":"x","capacity":1}"#)
        .await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(ann.get(&server, "/api/basket").await.status, 200);
}

/// Every way a link turns a visitor away has its status and reason: not open yet (403
/// with `starts_at` and `Retry-After`; the page counts down), used up and room full (403
/// `full`), expired (410), withdrawn (410 `revoked`), not a link (404 `invalid`), removed
/// (403 `removed`), and the room closed (410 `closed`).
#[tokio::test]
async fn join_links_refuse_with_their_reasons() {
    let w = world().await;
    let mut ann = log_in(&w.a, "Ann").await;
    let room = open_room(&w.a, &mut ann, 2).await;

    let later = unix_now() + 3600;
    let early = make_link(&w.a, &mut ann, &room, json!({ "starts_at": later })).await;
    let res = join(&w.b, &mut Jar::default(), &early).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert_eq!(res.json()["reason"], "not_started");
    assert_eq!(res.json()["starts_at"], later);
    let wait: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&wait), "{wait}");
    let page = browse(&w.b, &mut Jar::default(), &format!("/join/{early}")).await;
    assert_eq!(page.status, 403);
    assert!(
        page.content_type().starts_with("text/html"),
        "{}",
        page.content_type()
    );
    assert!(
        page.body.contains("data-reason=\"not_started\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("Not started yet"), "{}", page.body);
    assert!(
        page.body.contains(&format!("data-starts-at=\"{later}\"")),
        "{}",
        page.body
    );

    let once = make_link(&w.a, &mut ann, &room, json!({ "max_uses": 1 })).await;
    let mut first = Jar::default();
    assert_eq!(join(&w.a, &mut first, &once).await.status, 303);
    let res = join(&w.b, &mut Jar::default(), &once).await;
    assert_eq!(
        (res.status.as_u16(), res.json()["reason"].clone()),
        (403, json!("full"))
    );

    // Two places: the first guest and one more; a third, by another link, finds it full.
    let second = make_link(&w.a, &mut ann, &room, json!({ "max_uses": 2 })).await;
    assert_eq!(join(&w.b, &mut Jar::default(), &second).await.status, 303);
    let res = join(&w.b, &mut Jar::default(), &second).await;
    assert_eq!(
        (res.status.as_u16(), res.json()["reason"].clone()),
        (403, json!("full"))
    );

    let old = make_link(&w.a, &mut ann, &room, json!({})).await;
    let key = format!("t:links:{{{old}}}");
    w.redis.cmd(&["HSET", &key, "expires", "1000"]).await;
    let res = join(&w.b, &mut Jar::default(), &old).await;
    assert_eq!(
        (res.status.as_u16(), res.json()["reason"].clone()),
        (410, json!("expired"))
    );

    let withdrawn = make_link(&w.a, &mut ann, &room, json!({})).await;
    let res = ann
        .send(
            &w.a,
            "DELETE",
            &format!("/api/rooms/{room}/links/{withdrawn}"),
            None,
            "",
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = join(&w.b, &mut Jar::default(), &withdrawn).await;
    assert_eq!(
        (res.status.as_u16(), res.json()["reason"].clone()),
        (410, json!("revoked"))
    );

    for bad in ["nope", "AAAAAAAAAAAAAAAAAAAAAA", "%7Bx%7D"] {
        let res = join(&w.b, &mut Jar::default(), bad).await;
        assert_eq!(
            (res.status.as_u16(), res.json()["reason"].clone()),
            (404, json!("invalid")),
            "{bad}"
        );
    }

    // The first guest, removed by the host, cannot come back by their link.
    let me = first.get(&w.a, &format!("/api/rooms/{room}")).await.json()["me"]["id"].clone();
    let me = me.as_str().unwrap();
    let res = ann
        .send(
            &w.a,
            "DELETE",
            &format!("/api/rooms/{room}/members/{me}"),
            None,
            "",
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        first.get(&w.a, &format!("/api/rooms/{room}")).await.status,
        403
    );
    let res = join(&w.a, &mut first, &once).await;
    assert_eq!(
        (res.status.as_u16(), res.json()["reason"].clone()),
        (403, json!("removed"))
    );

    let unused = make_link(&w.a, &mut ann, &room, json!({})).await;
    let res = ann
        .post_json(&w.b, &format!("/api/rooms/{room}/close"), "{}")
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = join(&w.b, &mut Jar::default(), &unused).await;
    assert_eq!(
        (res.status.as_u16(), res.json()["reason"].clone()),
        (410, json!("closed"))
    );
    let info = ann
        .get(&w.a, &format!("/api/rooms/{room}/links"))
        .await
        .json();
    assert!(
        info.as_array()
            .unwrap()
            .iter()
            .all(|l| l["revoked"] == true),
        "{info}"
    );
    let res = ann
        .post_json(&w.a, &format!("/api/rooms/{room}/links"), "{}")
        .await;
    assert_eq!(res.status, 410, "{}", res.body);
}

/// Somebody who is not a member (logged in or not) gets 403 on the room's page, API, chat,
/// files (list, upload, download), token and channel; a member who is not the host gets
/// 403 on the host's actions; an unknown room is 404.
#[tokio::test]
async fn non_members_get_403_everywhere() {
    let w = world().await;
    let mut ann = log_in(&w.a, "Ann").await;
    let room = open_room(&w.a, &mut ann, 3).await;
    let link = make_link(&w.a, &mut ann, &room, json!({})).await;
    let mut guest = Jar::default();
    assert_eq!(join(&w.b, &mut guest, &link).await.status, 303);
    let shared = upload(&w.b, &guest, &room, "notes.txt", "secret notes", true).await;
    assert_eq!(shared.status, 201, "{}", shared.body);
    let file_path = shared.json()["path"].as_str().unwrap().to_owned();

    let mut eve = log_in(&w.b, "Eve").await;
    let mut nobody = Jar::default();
    nobody.get(&w.b, "/").await;
    for stranger in [&mut eve, &mut nobody] {
        for path in [
            format!("/rooms/{room}"),
            format!("/api/rooms/{room}"),
            format!("/api/rooms/{room}/chat"),
            format!("/api/rooms/{room}/files"),
            file_path.clone(),
            format!("/api/rooms/{room}/token"),
        ] {
            let res = stranger.get(&w.b, &path).await;
            assert_eq!(res.status, 403, "{path}: {}", res.body);
        }
        let res = stranger
            .post_json(&w.a, &format!("/api/rooms/{room}/chat"), r#"{"text":"hi"}"#)
            .await;
        assert_eq!(res.status, 403, "{}", res.body);
        let res = upload(&w.a, stranger, &room, "x.txt", "x", true).await;
        assert_eq!(res.status, 403, "{}", res.body);
        let socket = PusherClient::connect(w.a.addr).await;
        let channel = format!("presence-room.{room}");
        let (status, _) =
            authorize_with(w.a.client(), &cookie(stranger), &socket.socket_id, &channel).await;
        assert_eq!(status, 403);
    }
    let page = browse(&w.b, &mut eve, &format!("/rooms/{room}")).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("only the room"), "{}", page.body);

    // A member is not the host.
    for (method, path, body) in [
        ("POST", format!("/api/rooms/{room}/links"), "{}"),
        ("GET", format!("/api/rooms/{room}/links"), ""),
        ("POST", format!("/api/rooms/{room}/close"), "{}"),
        ("DELETE", format!("/api/rooms/{room}/members/u-00"), ""),
    ] {
        let kind = (!body.is_empty()).then_some("application/json");
        let res = guest.send(&w.a, method, &path, kind, body).await;
        assert_eq!(res.status, 403, "{method} {path}: {}", res.body);
    }
    // A member's upload without X-Requested-With (a form from another site) is refused.
    let res = upload(&w.a, &guest, &room, "y.txt", "y", false).await;
    assert_eq!(res.status, 403, "{}", res.body);

    let unknown = "0123456789abcdef01234567";
    assert_eq!(
        guest
            .get(&w.a, &format!("/api/rooms/{unknown}"))
            .await
            .status,
        404
    );
    assert_eq!(guest.get(&w.a, "/api/rooms/not-a-room").await.status, 404);
    // Hosting needs a login.
    let res = nobody
        .post_json(&w.a, "/api/rooms", r#"{"title":"x","capacity":1}"#)
        .await;
    assert_eq!(res.status, 401, "{}", res.body);
}

/// The chat keeps the last 50 messages, refuses empty and over-long ones, and the room page
/// shows what members wrote escaped.
#[tokio::test]
async fn chat_keeps_fifty_and_escapes() {
    let w = world().await;
    let mut ann = log_in(&w.a, "Ann").await;
    let room = open_room(&w.a, &mut ann, 1).await;
    let chat = format!("/api/rooms/{room}/chat");
    let long = json!({ "text": "é".repeat(501) }).to_string();
    assert_eq!(ann.post_json(&w.a, &chat, &long).await.status, 400);
    assert_eq!(
        ann.post_json(&w.a, &chat, r#"{"text":"   "}"#).await.status,
        400
    );
    let fits = json!({ "text": "é".repeat(500) }).to_string();
    assert_eq!(ann.post_json(&w.a, &chat, &fits).await.status, 201);
    for n in 1..=55 {
        let body = json!({ "text": format!("message {n}") }).to_string();
        let server = if n % 2 == 0 { &w.a } else { &w.b };
        assert_eq!(ann.post_json(server, &chat, &body).await.status, 201);
    }
    let kept = ann.get(&w.b, &chat).await.json();
    let kept = kept.as_array().unwrap();
    assert_eq!(kept.len(), 50);
    assert_eq!(kept[0]["text"], "message 6");
    assert_eq!(kept[49]["text"], "message 55");

    let body = json!({ "text": "<img src=x onerror=alert(1)>" }).to_string();
    assert_eq!(ann.post_json(&w.a, &chat, &body).await.status, 201);
    let page = browse(&w.a, &mut ann, &format!("/rooms/{room}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<img src=x"), "escaped");
    assert!(
        page.body.contains("Standup &lt;weekly&gt;"),
        "the title is escaped too"
    );
}

/// The host removes a member: their socket (on the other server) is told and leaves the
/// room's channel, the others see them go, and they can join it no more; closing the room
/// tells every socket and ends their subscriptions.
#[tokio::test]
async fn removal_and_closing_reach_the_sockets() {
    let w = world().await;
    let mut ann = log_in(&w.a, "Ann").await;
    let room = open_room(&w.a, &mut ann, 3).await;
    let link = make_link(&w.a, &mut ann, &room, json!({})).await;
    let mut bob = log_in(&w.b, "Bob").await;
    assert_eq!(join(&w.b, &mut bob, &link).await.status, 303);
    let mut cy = Jar::default();
    assert_eq!(join(&w.a, &mut cy, &link).await.status, 303);
    let channel = format!("presence-room.{room}");

    let mut ann_socket = PusherClient::connect(w.a.addr).await;
    let joined = ann_socket
        .join_with(w.a.client(), &cookie(&ann), &channel)
        .await;
    assert_eq!(joined.data["presence"]["count"], 1);
    let mut bob_socket = PusherClient::connect(w.b.addr).await;
    let joined = bob_socket
        .join_with(w.b.client(), &cookie(&bob), &channel)
        .await;
    assert_eq!(joined.data["presence"]["count"], 2);
    let bob_id = bob.get(&w.b, &format!("/api/rooms/{room}")).await.json()["me"]["id"].clone();
    let bob_id = bob_id.as_str().unwrap().to_owned();
    let hash = &joined.data["presence"]["hash"];
    assert_eq!(
        hash[&bob_id],
        json!({ "name": "Bob", "host": false }),
        "{hash}"
    );
    let added = ann_socket
        .expect("pusher_internal:member_added", WAIT)
        .await
        .unwrap();
    assert_eq!(added.data["user_id"], bob_id.as_str());
    let mut cy_socket = PusherClient::connect(w.b.addr).await;
    cy_socket
        .join_with(w.b.client(), &cookie(&cy), &channel)
        .await;

    // Chat reaches every socket, on both servers.
    let said = bob
        .post_json(
            &w.b,
            &format!("/api/rooms/{room}/chat"),
            r#"{"text":"hi all"}"#,
        )
        .await;
    assert_eq!(said.status, 201);
    for socket in [&mut ann_socket, &mut cy_socket] {
        let message = socket.expect("chat.message", WAIT).await.unwrap();
        assert_eq!(message.data["text"], "hi all");
        assert_eq!(message.data["name"], "Bob");
    }

    let res = ann
        .send(
            &w.a,
            "DELETE",
            &format!("/api/rooms/{room}/members/{bob_id}"),
            None,
            "",
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let told = bob_socket
        .expect("pusher:subscription_error", WAIT)
        .await
        .unwrap();
    assert_eq!(told.data["type"], "Removed");
    // The presence change and the app's event may come in either order.
    let seen = both(
        &mut ann_socket,
        "pusher_internal:member_removed",
        "member.removed",
    )
    .await;
    assert_eq!(seen.0.data["user_id"], bob_id.as_str());
    assert_eq!(seen.1.data["name"], "Bob");
    let fresh = PusherClient::connect(w.b.addr).await;
    let (status, _) = authorize_with(w.b.client(), &cookie(&bob), &fresh.socket_id, &channel).await;
    assert_eq!(status, 403, "a removed member's new socket is refused");
    let said = bob
        .post_json(
            &w.b,
            &format!("/api/rooms/{room}/chat"),
            r#"{"text":"still here?"}"#,
        )
        .await;
    assert_eq!(said.status, 403);
    let said = ann
        .post_json(
            &w.a,
            &format!("/api/rooms/{room}/chat"),
            r#"{"text":"without Bob"}"#,
        )
        .await;
    assert_eq!(said.status, 201);
    let message = cy_socket.expect("chat.message", WAIT).await.unwrap();
    assert_eq!(message.data["text"], "without Bob");
    assert!(bob_socket
        .expect("chat.message", Duration::from_millis(500))
        .await
        .is_none());
    // The host cannot remove themself.
    let ann_id = ann.get(&w.a, &format!("/api/rooms/{room}")).await.json()["me"]["id"].clone();
    let res = ann
        .send(
            &w.a,
            "DELETE",
            &format!("/api/rooms/{room}/members/{}", ann_id.as_str().unwrap()),
            None,
            "",
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.body);

    let res = ann
        .post_json(&w.a, &format!("/api/rooms/{room}/close"), "{}")
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    for socket in [&mut ann_socket, &mut cy_socket] {
        let closed = socket.expect("room.closed", WAIT).await.unwrap();
        assert_eq!(closed.data["room"], room.as_str());
        let removed = socket
            .expect("pusher:subscription_error", WAIT)
            .await
            .unwrap();
        assert_eq!(removed.data["type"], "Removed");
    }
    let said = cy
        .post_json(
            &w.a,
            &format!("/api/rooms/{room}/chat"),
            r#"{"text":"after"}"#,
        )
        .await;
    assert_eq!(said.status, 410, "{}", said.body);
    let page = browse(&w.a, &mut cy, &format!("/rooms/{room}")).await;
    assert_eq!(page.status, 200, "members still see the closed room");
    assert!(page.body.contains("data-closed=\"yes\""), "{}", page.body);
    let fresh = PusherClient::connect(w.a.addr).await;
    let (status, _) = authorize_with(w.a.client(), &cookie(&cy), &fresh.socket_id, &channel).await;
    assert_eq!(status, 403, "a closed room's channel is refused");
}

/// The next frames named `first` and `second`, in whichever order they come.
async fn both(
    socket: &mut PusherClient,
    first: &str,
    second: &str,
) -> (
    rondo_tests::channels::Received,
    rondo_tests::channels::Received,
) {
    let (mut one, mut two) = (None, None);
    let deadline = std::time::Instant::now() + WAIT;
    while one.is_none() || two.is_none() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let frame = socket
            .next(left)
            .await
            .unwrap_or_else(|| panic!("no {first} and {second} within {WAIT:?}"));
        if frame.event == first && one.is_none() {
            one = Some(frame);
        } else if frame.event == second && two.is_none() {
            two = Some(frame);
        }
    }
    (one.unwrap(), two.unwrap())
}
