//! The login hydration job across real example-app processes sharing one real redis-server:
//! results appear, concurrent basket writes survive, a logged-out session stays dead, a
//! killed process's job runs elsewhere, and no job runs twice.

use std::time::Duration;

use redis::Value as Reply;
use rondo_tests::app::set_cookie_value;
use rondo_tests::eventually;
use rondo_tests::process::{AppCommand, AppProcess};
use rondo_tests::redis::RedisServer;
use rondo_tests::session::send_with_cookie;
use serde_json::Value;

/// The example-app binary these tests run.
const APP: &str = env!("CARGO_BIN_EXE_example-app");

/// How long a test waits for a job's result before failing.
const DEADLINE: Duration = Duration::from_secs(15);

/// `[example]` and `[jobs]` settings with the given hydration delay and claim timeout.
fn settings(delay_ms: u64, claim: &str) -> String {
    format!("[example]\nhydrate_delay_ms = {delay_ms}\n[jobs]\nclaim_timeout = {claim}\n")
}

/// The example app as a process named `name`, on the Redis at `redis_port`, with `extra`.
async fn start_app_with(redis_port: u16, name: &str, extra: &str) -> AppProcess {
    AppCommand::example(APP, name, redis_port, extra)
        .start()
        .await
}

/// Logs `user` in on `node` (a new session): the session cookie.
async fn log_in(node: &AppProcess, user: &str) -> String {
    let body = format!(r#"{{"user":"{user}"}}"#);
    let res = node.client().post_json("/api/login", &body).await;
    assert_eq!(res.status, 200, "{}", res.body);
    set_cookie_value(&res, "dmsession").expect("login sets the session cookie")
}

/// `GET /api/recommendations` as JSON.
async fn recommendations(node: &AppProcess, cookie: &str) -> Value {
    let res = send_with_cookie(node, "GET", "/api/recommendations", cookie, None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

/// `GET /api/jobs/stats` as JSON.
async fn stats(node: &AppProcess) -> Value {
    let res = node.client().get("/api/jobs/stats").await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.json()
}

/// The sum of counter `name` over the given servers.
async fn total(nodes: &[&AppProcess], name: &str) -> u64 {
    let mut sum = 0;
    for node in nodes {
        sum += stats(node).await[name].as_u64().unwrap_or(0);
    }
    sum
}

/// Waits (at most [`DEADLINE`]) until `node` reads the job's result for `cookie`.
async fn until_ready(node: &AppProcess, cookie: &str) {
    eventually("the job's result", DEADLINE, || async {
        (recommendations(node, cookie).await["ready"] == true).then_some(())
    })
    .await;
}

fn expected(user: &str) -> Value {
    serde_json::json!({"ready": true, "items": ["starter-kit", "gift-card", format!("picked-for-{user}")]})
}

/// Right after login the recommendations are not ready; the job dispatched on A fills them,
/// and server B reads them from the session.
#[tokio::test]
async fn results_appear_after_login() {
    let redis = RedisServer::start().await;
    let a = start_app_with(redis.port(), "hydrate-a", &settings(400, "30s")).await;
    let b = start_app_with(redis.port(), "hydrate-b", &settings(400, "30s")).await;
    let cookie = log_in(&a, "ada").await;
    assert_eq!(
        recommendations(&b, &cookie).await,
        serde_json::json!({"ready": false, "items": []})
    );
    until_ready(&b, &cookie).await;
    assert_eq!(recommendations(&b, &cookie).await, expected("ada"));
    assert_eq!(recommendations(&a, &cookie).await, expected("ada"));
}

/// 20 basket additions on both servers while the job runs all land next to its result.
#[tokio::test]
async fn basket_writes_during_the_job_survive() {
    let redis = RedisServer::start().await;
    let a = start_app_with(redis.port(), "basket-a", &settings(2000, "30s")).await;
    let b = start_app_with(redis.port(), "basket-b", &settings(2000, "30s")).await;
    let cookie = log_in(&a, "bob").await;
    let adds: Vec<_> = (0..20)
        .map(|i| {
            let node = if i % 2 == 0 { a.client() } else { b.client() };
            let cookie = cookie.clone();
            tokio::spawn(async move {
                let body = format!(r#"{{"sku":"S{}","qty":1}}"#, i % 3);
                send_with_cookie(node, "POST", "/api/basket/items", &cookie, Some(&body))
                    .await
                    .status
            })
        })
        .collect();
    for add in adds {
        assert_eq!(add.await.expect("a response"), 200);
    }
    assert_eq!(
        recommendations(&a, &cookie).await["ready"],
        false,
        "the job finished before the basket writes: they did not race it"
    );
    until_ready(&b, &cookie).await;
    assert_eq!(recommendations(&a, &cookie).await, expected("bob"));
    let basket = send_with_cookie(&b, "GET", "/api/basket", &cookie, None)
        .await
        .json();
    assert_eq!(basket["total_qty"], 20, "{basket}");
}

/// A logout while the job runs: the job writes nothing and the session stays gone.
#[tokio::test]
async fn a_job_on_a_logged_out_session_writes_nothing() {
    let redis = RedisServer::start().await;
    let a = start_app_with(redis.port(), "logout-a", &settings(800, "30s")).await;
    let b = start_app_with(redis.port(), "logout-b", &settings(800, "30s")).await;
    let cookie = log_in(&a, "eve").await;
    let res = send_with_cookie(&b, "POST", "/api/logout", &cookie, Some("{}")).await;
    assert_eq!(res.status, 200);
    eventually("the job to finish", DEADLINE, || async {
        (total(&[&a, &b], "succeeded").await == 1).then_some(())
    })
    .await;
    assert_eq!(
        redis.keys("t:session:*").await,
        Vec::<String>::new(),
        "a session record exists after the job"
    );
    assert_eq!(
        recommendations(&a, &cookie).await,
        serde_json::json!({"ready": false, "items": []})
    );
    assert_eq!(total(&[&a, &b], "dead_lettered").await, 0);
}

/// A job held by a process killed (SIGKILL) before finishing it is taken over and run by
/// another process once its claim times out.
#[tokio::test]
async fn a_killed_process_job_runs_on_the_other() {
    let redis = RedisServer::start().await;
    let mut a = start_app_with(redis.port(), "killed-a", &settings(3000, "1s")).await;
    let cookie = log_in(&a, "kim").await;
    eventually("A to claim the job", DEADLINE, || async {
        let pending = redis.cmd(&["XPENDING", "t:jobs:{jobs}", "rondo"]).await;
        matches!(pending, Reply::Array(ref summary) if summary.first() == Some(&Reply::Int(1)))
            .then_some(())
    })
    .await;
    a.kill();
    let b = start_app_with(redis.port(), "killed-b", &settings(200, "1s")).await;
    until_ready(&b, &cookie).await;
    assert_eq!(recommendations(&b, &cookie).await, expected("kim"));
    // The job is counted once it has returned, just after its result reached the session.
    eventually("B to count the job", DEADLINE, || async {
        (stats(&b).await["succeeded"] == 1).then_some(())
    })
    .await;
    let on_b = stats(&b).await;
    assert_eq!(on_b["requeued"], 1, "{on_b}");
    assert_eq!(on_b["succeeded"], 1, "{on_b}");
}

/// 20 logins over two processes: each job runs exactly once and the queue ends empty.
#[tokio::test]
async fn no_job_runs_twice() {
    let redis = RedisServer::start().await;
    let a = start_app_with(redis.port(), "once-a", &settings(100, "30s")).await;
    let b = start_app_with(redis.port(), "once-b", &settings(100, "30s")).await;
    let mut cookies: Vec<(String, String)> = Vec::new();
    for i in 0..20 {
        let user = format!("u{i}");
        let node = if i % 2 == 0 { &a } else { &b };
        cookies.push((log_in(node, &user).await, user));
    }
    eventually("20 jobs to succeed", DEADLINE, || async {
        (total(&[&a, &b], "succeeded").await >= 20).then_some(())
    })
    .await;
    for (cookie, user) in &cookies {
        assert_eq!(recommendations(&a, cookie).await, expected(user));
    }
    for counter in ["dispatched", "started", "succeeded"] {
        assert_eq!(total(&[&a, &b], counter).await, 20, "{counter}");
    }
    for counter in ["retried", "requeued", "dead_lettered", "running"] {
        assert_eq!(total(&[&a, &b], counter).await, 0, "{counter}");
    }
    assert_eq!(redis.cmd(&["XLEN", "t:jobs:{jobs}"]).await, Reply::Int(0));
    assert_eq!(
        redis.cmd(&["XLEN", "t:jobs:{jobs}:dead"]).await,
        Reply::Int(0)
    );
}
