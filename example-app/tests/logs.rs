//! Session ids never reach the logs: the example-app process, logging at `trace`, is driven
//! through every path that logs a session (new, invented id, rotation on login, corrupt
//! record, logout), and no line holds a cookie value or a store-key hash.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{get, post_json, redis_cli, start_redis, Guard};

/// Starts example-app on `redis_port` with `app` as its `[app]` section and `RUST_LOG` set to
/// `rust_log` (or unset); returns the process, its address and every log line it writes
/// (collected by a thread).
fn start_logging_app(
    redis_port: u16,
    app: &str,
    rust_log: Option<&str>,
) -> (Guard, String, Arc<Mutex<Vec<String>>>) {
    let config = std::env::temp_dir().join(format!("rondo-logs-{redis_port}.ini"));
    std::fs::write(
        &config,
        format!(
            "[app]\n{app}\n[http]\nport = 0\n[session]\nstore = redis\n[redis]\n\
             default[port] = {redis_port}\ndefault[prefix] = t:\n"
        ),
    )
    .expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_example-app"));
    command.arg("--config").arg(&config).env("NO_COLOR", "1");
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let mut app = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("example-app starts");
    let lines = Arc::new(Mutex::new(Vec::new()));
    for reader in [
        Box::new(app.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(app.stderr.take().expect("stderr")),
    ] {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                lines.lock().expect("lock").push(line);
            }
        });
    }
    let app = Guard(app);
    let started = Instant::now();
    let addr = loop {
        let found = lines.lock().expect("lock").iter().find_map(|line| {
            let (at, skip) = match line.find("address=") {
                Some(at) => (at, 8),
                None => (line.find("\"address\":\"")?, 11),
            };
            let rest = &line[at + skip..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(rest.len());
            Some(rest[..end].to_owned())
        });
        if let Some(addr) = found {
            break addr;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no address logged"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_file(&config);
    (app, addr, lines)
}

/// No log line, at any level, contains a session id that was sent or set, nor the hash under
/// which a session is stored in Redis; the lines that name a session carry an 8-digit tag.
#[test]
fn session_ids_and_store_keys_never_reach_the_logs() {
    let (_redis, redis_port) = start_redis();
    let (_app, addr, lines) = start_logging_app(redis_port, "", Some("trace"));

    let mut secrets = Vec::new();
    let (status, first) = get(&addr, "/bench/counter", None);
    assert_eq!(status, 200);
    let first = first.expect("a new session sets its cookie");
    secrets.push(first.clone());
    let invented = "Q".repeat(43);
    secrets.push(invented.clone());
    let (status, fresh) = get(&addr, "/bench/counter", Some(&invented));
    assert_eq!(status, 200);
    secrets.push(fresh.expect("an invented id gets a fresh one"));
    let (status, _) = post_json(&addr, "/api/login", &first, r#"{"user":"ann"}"#);
    assert_eq!(status, 200);

    // A corrupt record (a value that is no MessagePack) is logged when it is dropped.
    let (_, victim) = get(&addr, "/bench/counter", None);
    let victim = victim.expect("cookie");
    secrets.push(victim.clone());
    let keys = redis_cli(redis_port, &["--scan", "--pattern", "t:session:*"]);
    for key in keys.lines() {
        redis_cli(redis_port, &["HSET", key, "d:count", "garbage"]);
    }
    let (status, _) = get(&addr, "/bench/counter", Some(&victim));
    assert_eq!(status, 200);
    let (status, _) = post_json(&addr, "/api/logout", &victim, "{}");
    assert_eq!(status, 200);

    // Let the after-response commits and their log lines happen.
    std::thread::sleep(Duration::from_millis(300));
    let keys = redis_cli(redis_port, &["--scan", "--pattern", "t:session:*"]);
    let hashes: Vec<&str> = keys
        .lines()
        .filter_map(|k| k.strip_prefix("t:session:"))
        .collect();
    let lines = lines.lock().expect("lock").clone();
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
#[test]
fn json_logs_carry_one_event_per_request() {
    let (_redis, redis_port) = start_redis();
    let (_app, addr, lines) =
        start_logging_app(redis_port, "log_format = json\nlog_level = debug", None);
    let (status, cookie) = get(&addr, "/bench/counter", None);
    assert_eq!(status, 200);
    let cookie = cookie.expect("a new session sets its cookie");
    assert_eq!(get(&addr, "/bench/read", Some(&cookie)).0, 200);
    assert_eq!(get(&addr, "/no/such/page", None).0, 404);

    let started = Instant::now();
    let events = loop {
        let events: Vec<serde_json::Value> = lines
            .lock()
            .expect("lock")
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .filter(|event: &serde_json::Value| event["fields"]["message"] == "request")
            .collect();
        if events.len() >= 3 || started.elapsed() > Duration::from_secs(5) {
            break events;
        }
        std::thread::sleep(Duration::from_millis(20));
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
