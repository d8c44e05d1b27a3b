//! The example-app binary stopped by SIGTERM right after a burst of acknowledged writes loses
//! none of them: the real process, a real redis-server, real HTTP. (The in-process test
//! `shutdown_right_after_a_burst_loses_no_acknowledged_write` holds commits back in Redis to
//! prove that shutdown waits for them; this one checks the signal path end to end.)

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{get, post_json, redis_cli, start_app, start_redis};

/// SIGTERM right after 30 acknowledged logins (each a write-behind `put`) exits cleanly with
/// all 30 users stored.
#[test]
fn sigterm_after_a_burst_keeps_every_acknowledged_write() {
    let (_redis, redis_port) = start_redis();
    let (mut app, addr) = start_app(redis_port, "sigterm");

    let (status, cookie) = get(&addr, "/api/basket", None);
    assert_eq!(status, 200);
    assert!(cookie.is_none(), "a read-only request set a cookie");
    let cookies: Vec<String> = (0..30)
        .map(|_| get(&addr, "/bench/new", None).1.expect("a session cookie"))
        .collect();

    // 30 logins at once: each rotates its session id and puts the user, which is written
    // after its response (persist = after_response).
    let burst: Vec<_> = cookies
        .into_iter()
        .enumerate()
        .map(|(i, cookie)| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let body = format!(r#"{{"user":"user{i:02}"}}"#);
                post_json(&addr, "/api/login", &cookie, &body).0 == 200
            })
        })
        .collect();
    let acknowledged = burst
        .into_iter()
        .map(|t| t.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    assert_eq!(acknowledged, 30);

    // SIGTERM by PID, at once.
    let pid = app.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs")
        .success());
    let exited = Instant::now();
    let status = loop {
        if let Some(status) = app.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            exited.elapsed() < Duration::from_secs(15),
            "example-app did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");

    // Every acknowledged login is stored: 30 sessions, each with its user (the old ids'
    // keys only hold a forwarding marker, `_m`, for a while).
    let keys = redis_cli(redis_port, &["--scan", "--pattern", "t:session:*"]);
    let keys: Vec<&str> = keys
        .lines()
        .filter(|key| redis_cli(redis_port, &["HEXISTS", key, "_v"]).trim() == "1")
        .collect();
    assert_eq!(keys.len(), 30, "{keys:?}");
    let mut users: Vec<String> = keys
        .iter()
        .map(|key| redis_cli(redis_port, &["HGET", key, "d:user"]))
        .collect();
    users.sort();
    for (i, user) in users.iter().enumerate() {
        assert!(user.ends_with(&format!("user{i:02}")), "{users:?}");
    }
}
