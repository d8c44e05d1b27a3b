//! The example-app binary stopped by SIGTERM right after a burst of acknowledged writes loses
//! none of them: the real process, a real redis-server, real HTTP. (The in-process test
//! `shutdown_right_after_a_burst_loses_no_acknowledged_write` holds commits back in Redis to
//! prove that shutdown waits for them; this one checks the signal path end to end.)

use std::time::Duration;

use rondo_tests::app::set_cookie_value;
use rondo_tests::process::AppCommand;
use rondo_tests::redis::RedisServer;
use rondo_tests::session::send_with_cookie;

/// The example-app binary this test runs.
const APP: &str = env!("CARGO_BIN_EXE_example-app");

/// SIGTERM right after 30 acknowledged logins (each a write-behind `put`) exits cleanly with
/// all 30 users stored.
#[tokio::test]
async fn sigterm_after_a_burst_keeps_every_acknowledged_write() {
    let redis = RedisServer::start().await;
    let mut app = AppCommand::example(APP, "sigterm", redis.port(), "")
        .start()
        .await;

    let res = app.client().get("/api/basket").await;
    assert_eq!(res.status, 200);
    assert!(
        set_cookie_value(&res, "dmsession").is_none(),
        "a read-only request set a cookie"
    );
    let mut cookies = Vec::new();
    for _ in 0..30 {
        let res = app.client().get("/bench/new").await;
        cookies.push(set_cookie_value(&res, "dmsession").expect("a session cookie"));
    }

    // 30 logins at once: each rotates its session id and puts the user, which is written
    // after its response (persist = after_response).
    let client = app.client();
    let burst: Vec<_> = cookies
        .into_iter()
        .enumerate()
        .map(|(i, cookie)| {
            tokio::spawn(async move {
                let body = format!(r#"{{"user":"user{i:02}"}}"#);
                let res = send_with_cookie(client, "POST", "/api/login", &cookie, Some(&body));
                res.await.status == 200
            })
        })
        .collect();
    let mut acknowledged = 0;
    for login in burst {
        if login.await.unwrap_or(false) {
            acknowledged += 1;
        }
    }
    assert_eq!(acknowledged, 30);

    // SIGTERM by PID, at once.
    let status = app.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");

    // Every acknowledged login is stored: 30 sessions, each with its user (the old ids'
    // keys only hold a forwarding marker, `_m`, for a while).
    let mut users = Vec::new();
    for key in redis.keys("t:session:*").await {
        let fields = redis.hgetall(&key).await;
        if !fields.iter().any(|(field, _)| field == "_v") {
            continue;
        }
        let user = fields
            .iter()
            .find(|(field, _)| field == "d:user")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default();
        users.push(user);
    }
    assert_eq!(users.len(), 30, "{users:?}");
    users.sort();
    for (i, user) in users.iter().enumerate() {
        assert!(user.ends_with(&format!("user{i:02}")), "{users:?}");
    }
}
