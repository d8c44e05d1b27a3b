//! Session ids never reach the logs: the example-app process, logging at `trace`, is driven
//! through every path that logs a session (new, invented id, rotation on login, corrupt
//! record, logout), and no line holds a cookie value or a store-key hash.

use std::time::Duration;

use rondo_tests::app::set_cookie_value;
use rondo_tests::process::{AppCommand, AppProcess};
use rondo_tests::redis::RedisServer;
use rondo_tests::session::send_with_cookie;

/// The example-app binary these tests run.
const APP: &str = env!("CARGO_BIN_EXE_example-app");

/// Starts example-app on `redis_port` with `app` as its `[app]` section and `RUST_LOG` set to
/// `rust_log` (or unset); every line it logs is kept ([`AppProcess::log`]).
async fn start_logging_app(redis_port: u16, app: &str, rust_log: Option<&str>) -> AppProcess {
    AppCommand::example(APP, "logs", redis_port, &format!("[app]\n{app}\n"))
        .rust_log(rust_log)
        .start()
        .await
}

/// `GET path` with the session cookie `cookie` if any: the status, and the session cookie
/// the response sets, if any.
async fn get(app: &AppProcess, path: &str, cookie: Option<&str>) -> (u16, Option<String>) {
    let res = match cookie {
        Some(cookie) => send_with_cookie(app, "GET", path, cookie, None).await,
        None => app.client().get(path).await,
    };
    (res.status.as_u16(), set_cookie_value(&res, "dmsession"))
}

/// `POST path` with a JSON body and the session cookie: the status.
async fn post_json(app: &AppProcess, path: &str, cookie: &str, body: &str) -> u16 {
    send_with_cookie(app, "POST", path, cookie, Some(body))
        .await
        .status
        .as_u16()
}

/// No log line, at any level, contains a session id that was sent or set, nor the hash under
/// which a session is stored in Redis; the lines that name a session carry an 8-digit tag.
#[tokio::test]
async fn session_ids_and_store_keys_never_reach_the_logs() {
    let redis = RedisServer::start().await;
    let app = start_logging_app(redis.port(), "", Some("trace")).await;

    let mut secrets = Vec::new();
    let (status, first) = get(&app, "/bench/counter", None).await;
    assert_eq!(status, 200);
    let first = first.expect("a new session sets its cookie");
    secrets.push(first.clone());
    let invented = "Q".repeat(43);
    secrets.push(invented.clone());
    let (status, fresh) = get(&app, "/bench/counter", Some(&invented)).await;
    assert_eq!(status, 200);
    secrets.push(fresh.expect("an invented id gets a fresh one"));
    let status = post_json(&app, "/api/login", &first, r#"{"user":"ann"}"#).await;
    assert_eq!(status, 200);

    // A corrupt record (a value that is no MessagePack) is logged when it is dropped.
    let (_, victim) = get(&app, "/bench/counter", None).await;
    let victim = victim.expect("cookie");
    secrets.push(victim.clone());
    for key in redis.keys("t:session:*").await {
        redis.cmd(&["HSET", &key, "d:count", "garbage"]).await;
    }
    let (status, _) = get(&app, "/bench/counter", Some(&victim)).await;
    assert_eq!(status, 200);
    let status = post_json(&app, "/api/logout", &victim, "{}").await;
    assert_eq!(status, 200);

    // Let the after-response commits and their log lines happen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let keys = redis.keys("t:session:*").await;
    let hashes: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("t:session:"))
        .collect();
    let lines = app.log();
    assert!(
        lines.iter().any(|l| l.contains("corrupt session record")),
        "{lines:#?}"
    );
    let mut tagged = 0;
    for line in &lines {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a session id in the log: {line}"
            );
        }
        for hash in &hashes {
            assert!(
                !line.contains(&hash[..16]),
                "a store key in the log: {line}"
            );
        }
        if let Some(at) = line.find("session=") {
            tagged += 1;
            let tag: String = line[at + 8..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            assert_eq!(tag.len(), 8, "{line}");
            assert!(hashes.iter().all(|h| !h.contains(&tag)), "{line}");
        }
    }
    assert!(tagged >= 2, "expected lines naming sessions: {lines:#?}");
}

/// `[app] log_format = json` with `log_level = debug` (no `RUST_LOG`): every line is a JSON
/// object, and each request ends with one event carrying method, path, route pattern, status
/// and latency, inside a `request` span whose `session` field is an 8-digit tag, not the id.
#[tokio::test]
async fn json_logs_carry_one_event_per_request() {
    let redis = RedisServer::start().await;
    let app = start_logging_app(redis.port(), "log_format = json\nlog_level = debug", None).await;
    let (status, cookie) = get(&app, "/bench/counter", None).await;
    assert_eq!(status, 200);
    let cookie = cookie.expect("a new session sets its cookie");
    assert_eq!(get(&app, "/bench/read", Some(&cookie)).await.0, 200);
    assert_eq!(get(&app, "/no/such/page", None).await.0, 404);

    let started = std::time::Instant::now();
    let events = loop {
        let events: Vec<serde_json::Value> = app
            .log()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .filter(|event: &serde_json::Value| event["fields"]["message"] == "request")
            .collect();
        if events.len() >= 3 || started.elapsed() > Duration::from_secs(5) {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(events.len(), 3, "{events:#?}");
    let read = events
        .iter()
        .find(|e| e["fields"]["path"] == "/bench/read")
        .expect("the read is logged");
    assert_eq!(read["level"], "DEBUG");
    assert_eq!(read["fields"]["method"], "GET");
    assert_eq!(read["fields"]["route"], "/bench/read");
    assert_eq!(read["fields"]["status"], 200);
    assert!(read["fields"]["micros"].as_u64().is_some(), "{read}");
    let tag = read["span"]["session"].as_str().expect("a session tag");
    assert_eq!(tag.len(), 8, "{read}");
    assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()), "{read}");
    assert!(!cookie.contains(tag), "{read}");
    let missing = events
        .iter()
        .find(|e| e["fields"]["path"] == "/no/such/page")
        .expect("the 404 is logged");
    assert_eq!(missing["level"], "INFO");
    assert_eq!(missing["fields"]["route"], "(unmatched)");
    assert_eq!(missing["fields"]["status"], 404);
}
