//! The login hydration job across real example-app processes sharing one real redis-server:
//! results appear, concurrent basket writes survive, a logged-out session stays dead, a
//! killed process's job runs elsewhere, and no job runs twice.

mod common;

use std::time::{Duration, Instant};

use common::{redis_cli, send, start_app_with, start_redis};
use serde_json::Value;

/// How long a test waits for a job's result before failing.
const DEADLINE: Duration = Duration::from_secs(15);

/// `[example]` and `[jobs]` settings with the given hydration delay and claim timeout.
fn settings(delay_ms: u64, claim: &str) -> String {
    format!("[example]\nhydrate_delay_ms = {delay_ms}\n[jobs]\nclaim_timeout = {claim}\n")
}

/// Logs `user` in on `addr` (a new session): the session cookie.
fn log_in(addr: &str, user: &str) -> String {
    let body = format!(r#"{{"user":"{user}"}}"#);
    let (status, text, cookie) = send(addr, "POST", "/api/login", None, &body);
    assert_eq!(status, 200, "{text}");
    cookie.expect("login sets the session cookie")
}

/// `GET /api/recommendations` as JSON.
fn recommendations(addr: &str, cookie: &str) -> Value {
    let (status, body, _) = send(addr, "GET", "/api/recommendations", Some(cookie), "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// `GET /api/jobs/stats` as JSON.
fn stats(addr: &str) -> Value {
    let (status, body, _) = send(addr, "GET", "/api/jobs/stats", None, "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// The sum of counter `name` over the given servers.
fn total(addrs: &[&str], name: &str) -> u64 {
    addrs
        .iter()
        .map(|a| stats(a)[name].as_u64().unwrap_or(0))
        .sum()
}

/// Polls `check` every 50 ms until it holds, at most [`DEADLINE`].
fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < DEADLINE {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn expected(user: &str) -> Value {
    serde_json::json!({"ready": true, "items": ["starter-kit", "gift-card", format!("picked-for-{user}")]})
}

/// Right after login the recommendations are not ready; the job dispatched on A fills them,
/// and server B reads them from the session.
#[test]
fn results_appear_after_login() {
    let (_redis, port) = start_redis();
    let (_a, a) = start_app_with(port, "hydrate-a", &settings(400, "30s"));
    let (_b, b) = start_app_with(port, "hydrate-b", &settings(400, "30s"));
    let cookie = log_in(&a, "ada");
    assert_eq!(
        recommendations(&b, &cookie),
        serde_json::json!({"ready": false, "items": []})
    );
    assert!(eventually(|| recommendations(&b, &cookie)["ready"] == true));
    assert_eq!(recommendations(&b, &cookie), expected("ada"));
    assert_eq!(recommendations(&a, &cookie), expected("ada"));
}

/// 20 basket additions on both servers while the job runs all land next to its result.
#[test]
fn basket_writes_during_the_job_survive() {
    let (_redis, port) = start_redis();
    let (_a, a) = start_app_with(port, "basket-a", &settings(2000, "30s"));
    let (_b, b) = start_app_with(port, "basket-b", &settings(2000, "30s"));
    let cookie = log_in(&a, "bob");
    let adds: Vec<_> = (0..20)
        .map(|i| {
            let addr = if i % 2 == 0 { a.clone() } else { b.clone() };
            let cookie = cookie.clone();
            std::thread::spawn(move || {
                let body = format!(r#"{{"sku":"S{}","qty":1}}"#, i % 3);
                send(&addr, "POST", "/api/basket/items", Some(&cookie), &body).0
            })
        })
        .collect();
    for add in adds {
        assert_eq!(add.join().expect("a response"), 200);
    }
    assert_eq!(
        recommendations(&a, &cookie)["ready"],
        false,
        "the job finished before the basket writes: they did not race it"
    );
    assert!(eventually(|| recommendations(&b, &cookie)["ready"] == true));
    assert_eq!(recommendations(&a, &cookie), expected("bob"));
    let (_, basket, _) = send(&b, "GET", "/api/basket", Some(&cookie), "");
    let basket: Value = serde_json::from_str(&basket).expect("JSON");
    assert_eq!(basket["total_qty"], 20, "{basket}");
}

/// A logout while the job runs: the job writes nothing and the session stays gone.
#[test]
fn a_job_on_a_logged_out_session_writes_nothing() {
    let (_redis, port) = start_redis();
    let (_a, a) = start_app_with(port, "logout-a", &settings(800, "30s"));
    let (_b, b) = start_app_with(port, "logout-b", &settings(800, "30s"));
    let cookie = log_in(&a, "eve");
    let (status, _, _) = send(&b, "POST", "/api/logout", Some(&cookie), "{}");
    assert_eq!(status, 200);
    assert!(eventually(|| total(&[&a, &b], "succeeded") == 1));
    let keys = redis_cli(port, &["--scan", "--pattern", "t:session:*"]);
    assert_eq!(keys, "", "a session record exists after the job");
    assert_eq!(
        recommendations(&a, &cookie),
        serde_json::json!({"ready": false, "items": []})
    );
    assert_eq!(total(&[&a, &b], "dead_lettered"), 0);
}

/// A job held by a process killed (SIGKILL) before finishing it is taken over and run by
/// another process once its claim times out.
#[test]
fn a_killed_process_job_runs_on_the_other() {
    let (_redis, port) = start_redis();
    let (mut a, a_addr) = start_app_with(port, "killed-a", &settings(3000, "1s"));
    let cookie = log_in(&a_addr, "kim");
    assert!(
        eventually(|| redis_cli(port, &["XPENDING", "t:jobs:jobs", "rondo"])
            .lines()
            .next()
            == Some("1")),
        "A never claimed the job"
    );
    a.0.kill().expect("SIGKILL");
    a.0.wait().expect("reaped");
    let (_b, b) = start_app_with(port, "killed-b", &settings(200, "1s"));
    assert!(eventually(|| recommendations(&b, &cookie)["ready"] == true));
    assert_eq!(recommendations(&b, &cookie), expected("kim"));
    let on_b = stats(&b);
    assert_eq!(on_b["requeued"], 1, "{on_b}");
    assert_eq!(on_b["succeeded"], 1, "{on_b}");
}

/// 20 logins over two processes: each job runs exactly once and the queue ends empty.
#[test]
fn no_job_runs_twice() {
    let (_redis, port) = start_redis();
    let (_a, a) = start_app_with(port, "once-a", &settings(100, "30s"));
    let (_b, b) = start_app_with(port, "once-b", &settings(100, "30s"));
    let cookies: Vec<(String, String)> = (0..20)
        .map(|i| {
            let user = format!("u{i}");
            let addr = if i % 2 == 0 { &a } else { &b };
            (log_in(addr, &user), user)
        })
        .collect();
    assert!(eventually(|| total(&[&a, &b], "succeeded") >= 20));
    for (cookie, user) in &cookies {
        assert_eq!(recommendations(&a, cookie), expected(user));
    }
    for counter in ["dispatched", "started", "succeeded"] {
        assert_eq!(total(&[&a, &b], counter), 20, "{counter}");
    }
    for counter in ["retried", "requeued", "dead_lettered", "running"] {
        assert_eq!(total(&[&a, &b], counter), 0, "{counter}");
    }
    assert_eq!(redis_cli(port, &["XLEN", "t:jobs:jobs"]), "0");
    assert_eq!(redis_cli(port, &["XLEN", "t:jobs:jobs:dead"]), "0");
}
