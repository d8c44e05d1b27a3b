//! The metrics endpoint: `/metrics` is read before and after known traffic, and each
//! counter must have moved by exactly what that traffic implies. Real HTTP, real Redis.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use http::StatusCode;
use rondo::{App, Session, SessionError, SessionManager};
use rondo_tests::app::{example_config, start_example, Jar};
use rondo_tests::http::{request, TestServer};
use rondo_tests::redis::RedisServer;

/// Every sample of a scrape, by series (`name{labels}`), as numbers.
async fn scrape(server: &TestServer) -> BTreeMap<String, f64> {
    let response = server.get("/metrics").await;
    assert_eq!(response.status, StatusCode::OK);
    let content_type = response.headers[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(response.body.ends_with("# EOF\n"), "{}", response.body);
    response
        .body
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// How much `series` grew between two scrapes (absent = 0).
fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

/// Requests are counted by method, route pattern (never the raw path) and status, with a
/// latency histogram per route.
#[tokio::test]
async fn requests_are_counted_by_route_pattern_and_status() {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let before = scrape(&shop).await;
    for _ in 0..5 {
        assert_eq!(shop.get("/healthz").await.status, StatusCode::OK);
    }
    for path in ["/nope", "/nope/2", "/x?y=1"] {
        assert_eq!(shop.get(path).await.status, StatusCode::NOT_FOUND);
    }
    for _ in 0..2 {
        let response = shop
            .send(request("POST", "/healthz", &[], String::new()))
            .await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    }
    let after = scrape(&shop).await;
    let count = |series: &str| delta(&before, &after, series);
    assert_eq!(
        count(r#"rondo_http_requests_total{method="GET",route="/healthz",status="200"}"#),
        5.0
    );
    assert_eq!(
        count(r#"rondo_http_requests_total{method="GET",route="(unmatched)",status="404"}"#),
        3.0
    );
    assert_eq!(
        count(r#"rondo_http_requests_total{method="POST",route="(unmatched)",status="405"}"#),
        2.0
    );
    assert_eq!(
        count(r#"rondo_http_request_duration_seconds_count{method="GET",route="/healthz"}"#),
        5.0
    );
    // The first scrape itself was counted once it had been answered.
    assert_eq!(
        after[r#"rondo_http_requests_total{method="GET",route="/metrics",status="200"}"#],
        1.0
    );
    assert!(!after.keys().any(|series| series.contains("/nope")));
}

/// `GET /many/{n}`: `n` puts in one request.
async fn many(session: Session, rondo::Path(n): rondo::Path<u32>) -> Result<String, SessionError> {
    for i in 0..n {
        session.put(&format!("k{i}"), &i)?;
    }
    Ok(n.to_string())
}

/// Ten changes in one request are one commit of ten changes; ten concurrent `update`s on one
/// session are ten changes in at most ten commits; loads, version checks and memory reads
/// are counted; the live-actor gauge and the Redis pool's series are there.
#[tokio::test]
async fn session_commits_show_coalescing() {
    let redis = RedisServer::start().await;
    let config = example_config(redis.port(), "[session]\npersist = before_response");
    let app = App::new(config);
    let sessions = SessionManager::from_config(app.config(), app.redis())
        .await
        .unwrap();
    let app = app
        .with(sessions.clone())
        .get("/many/{n}", many)
        .get("/bench/counter", example_app::bench::counter)
        .get("/bench/read", example_app::bench::read);
    let server = TestServer::start(app).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&server, "/bench/counter").await.body, "1");

    let before = scrape(&server).await;
    assert_eq!(jar.get(&server, "/many/10").await.body, "10");
    let after = scrape(&server).await;
    let count = |series: &str| delta(&before, &after, series);
    assert_eq!(count("rondo_session_commits_total"), 1.0);
    assert_eq!(count("rondo_session_changes_per_commit_sum"), 10.0);
    assert_eq!(count("rondo_session_changes_per_commit_count"), 1.0);
    assert_eq!(count("rondo_session_commit_duration_seconds_count"), 1.0);

    let before = after;
    let cookie = format!("dmsession={}", jar.value.clone().unwrap());
    let requests = (0..10).map(|_| {
        let headers = [("cookie", cookie.as_str())];
        server.send(request("GET", "/bench/counter", &headers, String::new()))
    });
    let mut answers: Vec<u64> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.body.parse().unwrap())
        .collect();
    answers.sort_unstable();
    assert_eq!(answers, (2..=11).collect::<Vec<u64>>());
    let after = scrape(&server).await;
    let count = |series: &str| delta(&before, &after, series);
    let commits = count("rondo_session_commits_total");
    assert!((1.0..=10.0).contains(&commits), "{commits} commits");
    assert_eq!(count("rondo_session_changes_per_commit_sum"), 10.0);
    assert_eq!(count("rondo_session_changes_per_commit_count"), commits);
    assert_eq!(count("rondo_session_conflicts_total"), 0.0);

    let before = after;
    for _ in 0..5 {
        assert_eq!(jar.get(&server, "/bench/read").await.body, "11");
    }
    let after = scrape(&server).await;
    let count = |series: &str| delta(&before, &after, series);
    assert_eq!(
        count("rondo_session_version_checks_total") + count("rondo_session_memory_reads_total"),
        5.0
    );
    assert!(after["rondo_session_live_actors"] >= 1.0);
    assert!(after[r#"rondo_redis_checkouts_direct_total{pool="default"}"#] >= 1.0);
    assert!(after[r#"rondo_redis_command_duration_seconds_count{pool="default"}"#] >= 3.0);
    assert!(after.contains_key(r#"rondo_redis_connections_idle{pool="default"}"#));
}

/// A commit against a copy another server has since changed is one conflict and one replay,
/// and the write still lands.
#[tokio::test]
async fn conflicts_and_replays_are_counted() {
    let redis = RedisServer::start().await;
    let config = || example_config(redis.port(), "[session]\nread_check = version");
    let a = start_example(config()).await;
    let b = start_example(config()).await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&a, "/bench/counter").await.body, "1");
    assert_eq!(jar.get(&a, "/bench/read").await.body, "1");
    assert_eq!(jar.get(&b, "/bench/counter").await.body, "2");

    let before = scrape(&a).await;
    assert_eq!(jar.get(&a, "/bench/counter").await.body, "3");
    let after = scrape(&a).await;
    let count = |series: &str| delta(&before, &after, series);
    assert_eq!(count("rondo_session_conflicts_total"), 1.0);
    assert_eq!(count("rondo_session_replays_total"), 1.0);
    assert_eq!(count("rondo_session_loads_total"), 1.0);
    assert_eq!(count("rondo_session_commits_total"), 1.0);
}

/// `metrics_path` moves the endpoint; an empty one turns it off.
#[tokio::test]
async fn the_metrics_path_can_move_or_be_turned_off() {
    let redis = RedisServer::start().await;
    let moved = start_example(example_config(
        redis.port(),
        "[app]\nmetrics_path = /ops/metrics",
    ))
    .await;
    assert_eq!(moved.get("/metrics").await.status, StatusCode::NOT_FOUND);
    let response = moved.get("/ops/metrics").await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.body.contains("rondo_http_requests_total"));

    let off = start_example(example_config(redis.port(), "[app]\nmetrics_path =")).await;
    assert_eq!(off.get("/metrics").await.status, StatusCode::NOT_FOUND);
}

/// A login queues one hydration job: `rondo_jobs_dispatched_total` and, once it ran,
/// `rondo_jobs_succeeded_total` move by one; nothing fails.
#[tokio::test]
async fn job_counters_follow_a_login() {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(
        redis.port(),
        "[example]\nhydrate_delay_ms = 0",
    ))
    .await;
    let before = scrape(&shop).await;
    let mut jar = Jar::default();
    let login = jar
        .post_json(&shop, "/api/login", r#"{"user":"ada"}"#)
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let after = rondo_tests::eventually(
        "the job to succeed",
        std::time::Duration::from_secs(10),
        || async {
            let after = scrape(&shop).await;
            (delta(&before, &after, "rondo_jobs_succeeded_total") >= 1.0).then_some(after)
        },
    )
    .await;
    let count = |series: &str| delta(&before, &after, series);
    assert_eq!(count("rondo_jobs_dispatched_total"), 1.0);
    assert_eq!(count("rondo_jobs_started_total"), 1.0);
    assert_eq!(count("rondo_jobs_succeeded_total"), 1.0);
    assert_eq!(count("rondo_jobs_failed_total"), 0.0);
    assert_eq!(after["rondo_jobs_running"], 0.0);
}

/// Redis killed under a warm pool: the next session request gets 503, and the pool's series
/// show it: the command on the dead connection counted as dropped, the check-out of a
/// replacement as timed out, and no connection left checked out. Once Redis is back, the
/// pool opens a new connection (counted as created) and session routes answer again.
#[tokio::test]
async fn pool_metrics_follow_a_redis_outage() {
    let mut redis = RedisServer::start().await;
    let server = start_example(example_config(
        redis.port(),
        "[session]\nread_check = version",
    ))
    .await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&server, "/bench/counter").await.body, "1");
    let before = scrape(&server).await;

    redis.kill();
    let started = Instant::now();
    let response = jar.get(&server, "/bench/read").await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.body
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let after = scrape(&server).await;
    let count = |series: &str| delta(&before, &after, series);
    let pool = |name: &str| format!("rondo_redis_{name}{{pool=\"default\"}}");
    assert!(
        count(&pool("command_failures_dropped_total")) >= 1.0,
        "{after:#?}"
    );
    assert!(count(&pool("checkout_timeouts_total")) >= 1.0, "{after:#?}");
    assert!(
        count(&pool("checkout_wait_seconds_total")) > 0.5,
        "{after:#?}"
    );
    assert_eq!(after[&pool("connections_in_use")], 0.0);
    assert!(
        count(r#"rondo_http_requests_total{method="GET",route="/bench/read",status="503"}"#) == 1.0
    );

    redis.restart().await;
    let created = after[&pool("connections_created_total")];
    rondo_tests::eventually(
        "session routes answer again",
        Duration::from_secs(5),
        || async { (server.get("/bench/new").await.status == StatusCode::OK).then_some(()) },
    )
    .await;
    let recovered = scrape(&server).await;
    assert!(recovered[&pool("connections_created_total")] > created);
}
