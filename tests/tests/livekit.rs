//! LiveKit room tokens, checked with the `livekit-api` crate's own verifier: the identity,
//! name, room, grants and expiry asked for, HS256 with the project's secret, from
//! `[livekit]` and over HTTP.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::StatusCode;
use livekit_api::access_token::TokenVerifier;
use rondo::livekit::{LiveKit, LiveKitError, RoomGrants};
use rondo::{App, Config, Json, Path, State};
use rondo_tests::http::TestServer;
use serde_json::{json, Value};

const KEY: &str = "APIrondoTest";
const SECRET: &str = "a-test-secret-of-at-least-32-characters-long";

fn config() -> Config {
    let text = format!(
        "[session]\nstore = memory\n[livekit]\nurl = wss://meet.rondo.example\n\
         api_key = {KEY}\napi_secret = {SECRET}\n"
    );
    Config::parse_str(&text, "livekit.ini").unwrap()
}

fn project() -> LiveKit {
    LiveKit::from_config(&config()).unwrap()
}

fn now() -> usize {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    usize::try_from(secs).unwrap()
}

/// The token carries the identity, name, room, join and publish grants and the expiry asked
/// for, and the crate's verifier accepts it with the project's key and secret.
#[test]
fn a_token_carries_what_was_asked_and_verifies() {
    let before = now();
    let token = project()
        .token(
            "user-42",
            "Ann Lee",
            "standup",
            RoomGrants::PARTICIPANT,
            Duration::from_secs(600),
        )
        .unwrap();
    let after = now();
    let claims = TokenVerifier::with_api_key(KEY, SECRET)
        .verify(&token)
        .unwrap();
    assert_eq!(claims.iss, KEY);
    assert_eq!(claims.sub, "user-42");
    assert_eq!(claims.name, "Ann Lee");
    assert_eq!(claims.video.room, "standup");
    assert!(claims.video.room_join);
    assert_eq!(claims.video.can_publish, Some(true));
    assert_eq!(claims.video.can_subscribe, Some(true));
    assert_eq!(claims.video.can_publish_data, Some(true));
    assert!(!claims.video.room_admin && !claims.video.room_create);
    assert!(
        (before + 600..=after + 600).contains(&claims.exp),
        "{}",
        claims.exp
    );
    assert!((before..=after).contains(&claims.nbf), "{}", claims.nbf);
}

/// HS256, bound to the secret and the key: another secret or another key fails the check.
#[test]
fn a_token_is_hs256_and_bound_to_the_project() {
    let token = project()
        .token("u", "U", "r", RoomGrants::VIEWER, Duration::from_secs(60))
        .unwrap();
    let header = token.split('.').next().unwrap();
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert!(header.contains(r#""alg":"HS256""#), "{header}");
    assert!(
        TokenVerifier::with_api_key(KEY, "another-secret-another-secret-1234")
            .verify(&token)
            .is_err()
    );
    assert!(TokenVerifier::with_api_key("APIother", SECRET)
        .verify(&token)
        .is_err());
    let video = TokenVerifier::with_api_key(KEY, SECRET)
        .verify(&token)
        .unwrap()
        .video;
    assert!(video.room_join);
    assert_eq!(video.can_publish, Some(false));
    assert_eq!(video.can_subscribe, Some(true));
}

/// Incomplete requests and settings are refused, each with its reason; the secret never
/// shows in a debug print.
#[test]
fn incomplete_requests_and_settings_are_refused() {
    let lk = project();
    let ttl = Duration::from_secs(60);
    let grants = RoomGrants::PARTICIPANT;
    assert!(matches!(
        lk.token("", "n", "r", grants, ttl),
        Err(LiveKitError::MissingIdentity)
    ));
    assert!(matches!(
        lk.token("i", "n", "", grants, ttl),
        Err(LiveKitError::MissingRoom)
    ));
    assert!(matches!(
        lk.token("i", "n", "r", grants, Duration::from_millis(999)),
        Err(LiveKitError::TooShort)
    ));
    let partial = Config::parse_str(
        "[session]\nstore = memory\n[livekit]\nurl = wss://m.example\napi_key = k\n",
        "partial.ini",
    )
    .unwrap();
    assert!(matches!(
        LiveKit::from_config(&partial),
        Err(LiveKitError::NotConfigured("api_secret"))
    ));
    assert!(matches!(
        LiveKit::from_config(&Config::default()),
        Err(LiveKitError::NotConfigured("url"))
    ));
    let shown = format!("{:?} {:?}", project(), config());
    assert!(shown.contains(KEY), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert_eq!(project().url(), "wss://meet.rondo.example");
}

async fn token(
    State(livekit): State<LiveKit>,
    Path((room, user)): Path<(String, String)>,
) -> Result<Json<Value>, LiveKitError> {
    let token = livekit.token(
        &user,
        &user,
        &room,
        RoomGrants::VIEWER,
        Duration::from_secs(120),
    )?;
    Ok(Json(json!({ "url": livekit.url(), "token": token })))
}

/// Installed as a component, a controller hands out tokens over HTTP that verify.
#[tokio::test]
async fn tokens_over_http() {
    let app = App::new(config())
        .with(project())
        .get("/rooms/{room}/token/{user}", token);
    let server = TestServer::start(app).await;
    let response = server.get("/rooms/town-hall/token/bob").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let json = response.json();
    assert_eq!(json["url"], "wss://meet.rondo.example");
    let claims = TokenVerifier::with_api_key(KEY, SECRET)
        .verify(json["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.video.room.as_str()),
        ("bob", "town-hall")
    );
    assert!(claims.video.room_join);
}
