//! Background jobs against a real `redis-server`: the session guarantees of job handles
//! (a logout between a job's open and its write never brings the session back), retries and
//! the dead-letter stream, unreadable entries, shutdown, and the in-process queue.
//!
//! Every test starts its own Redis and servers; every wait is bounded. The in-process queue's
//! test is the exception: with the memory store its jobs, workers and waits all live on the
//! test's own runtime (no Redis, no sockets, no other thread), so it runs on tokio's paused
//! clock and its polling costs no real time.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use example_app::api::Item;
use redis::Value;
use rondo::jobs::{Job, JobContext, JobError, Jobs, JobsError};
use rondo::{App, Config, SessionError, SessionManager};
use rondo_tests::app::{example_config, Jar};
use rondo_tests::http::TestServer;
use rondo_tests::redis::RedisServer;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// How long a test waits for a job before failing.
const DEADLINE: Duration = Duration::from_secs(10);

/// A job signals `opened`, then waits for `go`; what it saw goes to `results`.
#[derive(Clone, Default)]
struct Gates {
    opened: Arc<Notify>,
    go: Arc<Notify>,
    results: Arc<Mutex<Vec<String>>>,
}

impl Gates {
    fn record(&self, what: impl Into<String>) {
        self.results.lock().unwrap().push(what.into());
    }

    fn results(&self) -> Vec<String> {
        self.results.lock().unwrap().clone()
    }
}

/// Opens its session, waits to be let go, then writes `from-job` with `update`.
#[derive(Serialize, Deserialize)]
struct Gate {
    session: rondo::SessionRef,
}

impl Job for Gate {
    const NAME: &'static str = "test.gate";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let gates = ctx.state::<Gates>().ok_or(JobError::failed("no gates"))?;
        let Some(session) = ctx.session(&self.session).await? else {
            gates.record("missing");
            return Ok(());
        };
        gates.opened.notify_one();
        gates.go.notified().await;
        match session
            .update("from-job", |_: Option<String>| "written".to_owned())
            .await
        {
            Ok(_) => gates.record("written"),
            Err(SessionError::Gone) => gates.record("gone"),
            Err(err) => return Err(err.into()),
        }
        Ok(())
    }
}

/// Always fails.
#[derive(Serialize, Deserialize)]
struct Flaky;

impl Job for Flaky {
    const NAME: &'static str = "test.flaky";

    async fn run(self, _ctx: JobContext) -> Result<(), JobError> {
        Err(JobError::failed("flaky by design"))
    }
}

/// Sleeps for the [`Nap`] in the runtime's state, then records `done`.
#[derive(Serialize, Deserialize)]
struct Slow {
    tag: String,
}

#[derive(Clone, Copy)]
struct Nap(Duration);

impl Job for Slow {
    const NAME: &'static str = "test.slow";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let nap = ctx.state::<Nap>().map_or(Duration::ZERO, |n| n.0);
        tokio::time::sleep(nap).await;
        if let Some(gates) = ctx.state::<Gates>() {
            gates.record(format!("{} attempt {}", self.tag, ctx.attempt()));
        }
        Ok(())
    }
}

/// A server with the session manager and the shop's basket and logout routes.
async fn node(config: Config) -> (SessionManager, TestServer) {
    let app = App::new(config);
    let sessions = SessionManager::from_config(app.config(), app.redis())
        .await
        .unwrap();
    // The shop's controllers broadcast basket changes: channels are installed (off).
    let channels = rondo::channels::Channels::builder(app.config(), app.redis(), &sessions)
        .start()
        .await
        .unwrap();
    let app = app
        .with(sessions.clone())
        .with(channels)
        .post("/api/basket/items", example_app::api::add_item)
        .post("/api/logout", example_app::api::log_out);
    (sessions, TestServer::start(app).await)
}

/// Polls `check` every 20 ms until it holds, at most [`DEADLINE`]. Both are measured on
/// tokio's clock, so under paused time the budget is virtual too (it passes only while
/// nothing on the runtime can make progress).
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let started = tokio::time::Instant::now();
    while started.elapsed() < DEADLINE {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A stored session on `server` (one basket line): its cookie jar.
async fn stored_session(server: &TestServer) -> Jar {
    let mut jar = Jar::default();
    let res = jar
        .post_json(server, "/api/basket/items", r#"{"sku":"A","qty":1}"#)
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    jar
}

/// `XLEN key` as a number.
async fn xlen(redis: &RedisServer, key: &str) -> i64 {
    match redis.cmd(&["XLEN", key]).await {
        Value::Int(n) => n,
        other => panic!("XLEN answered {other:?}"),
    }
}

/// A logout between a job handle's `open` and its write, on the same server or on another
/// one, makes `put`+`persist` and `update` fail with `Gone` and leaves no record behind.
#[tokio::test]
async fn a_logout_between_open_and_write_never_recreates_the_session() {
    let redis = RedisServer::start().await;
    let (a_sessions, a) = node(example_config(redis.port(), "")).await;
    let (_b_sessions, b) = node(example_config(redis.port(), "")).await;
    for (writer, logout_on) in [("put", &a), ("put", &b), ("update", &a), ("update", &b)] {
        let mut jar = stored_session(&a).await;
        let id = jar.value.clone().unwrap();
        let session = a_sessions.open(&id).await.unwrap().expect("opens");
        let basket: Vec<Item> = session.get("basket").await.unwrap().unwrap();
        assert_eq!(basket.len(), 1);
        let res = jar.post_json(logout_on, "/api/logout", "{}").await;
        assert_eq!(res.status, 200);
        let outcome = match writer {
            "put" => {
                session.put("from-job", "x").unwrap();
                session.persist().await
            }
            _ => session
                .update("from-job", |_: Option<String>| "x".to_owned())
                .await
                .map(drop),
        };
        assert!(
            matches!(outcome, Err(SessionError::Gone)),
            "{writer}: {outcome:?}"
        );
        // A second write through the same handle cannot start a new session either.
        assert!(matches!(
            session.update("again", |_: Option<u8>| 1).await,
            Err(SessionError::Gone)
        ));
        assert_eq!(
            redis.keys("t:session:*").await,
            Vec::<String>::new(),
            "{writer}"
        );
    }
}

/// Every byte of a Redis answer, nested arrays included.
fn flatten(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::BulkString(bytes) => out.extend_from_slice(bytes),
        Value::SimpleString(text) => out.extend_from_slice(text.as_bytes()),
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        _ => {}
    }
}

/// A job parked between its `open` and its write while the session is logged out on another
/// server writes nothing, and the session stays gone.
#[tokio::test]
async fn a_job_parked_during_a_logout_writes_nothing() {
    let redis = RedisServer::start().await;
    let config = example_config(redis.port(), "");
    let (sessions, a) = node(config.clone()).await;
    let (_other, b) = node(config.clone()).await;
    let gates = Gates::default();
    let jobs = Jobs::builder(
        &config,
        &rondo::redis::Redis::new(config.redis.clone()),
        &sessions,
    )
    .register::<Gate>()
    .state(gates.clone())
    .start()
    .await
    .unwrap();
    assert!(jobs.durable());
    let mut jar = stored_session(&a).await;
    let id = jar.value.clone().unwrap();
    let opened = sessions
        .open(&id)
        .await
        .unwrap()
        .expect("the session exists");
    let session = opened
        .reference()
        .expect("an existing session has a reference");
    assert!(!serde_json::to_string(&session).unwrap().contains(&id));
    jobs.dispatch(&Gate { session }).await.unwrap();
    // What sits in Redis names the session without its id.
    for key in redis.keys("t:jobs:*").await {
        let kind: String =
            redis::from_redis_value(redis.cmd(&["TYPE", key.as_str()]).await).unwrap();
        if kind == "stream" {
            let entries = redis.cmd(&["XRANGE", key.as_str(), "-", "+"]).await;
            let mut raw = Vec::new();
            flatten(&entries, &mut raw);
            assert!(!raw.is_empty(), "the job is queued in {key}");
            let found = raw.windows(id.len()).any(|w| w == id.as_bytes());
            assert!(!found, "the id is queued in {key}");
        }
    }
    tokio::time::timeout(DEADLINE, gates.opened.notified())
        .await
        .expect("the job opened its session");
    let res = jar.post_json(&b, "/api/logout", "{}").await;
    assert_eq!(res.status, 200);
    gates.go.notify_one();
    assert!(eventually(|| !gates.results().is_empty()).await);
    assert_eq!(gates.results(), ["gone"]);
    assert!(eventually(|| jobs.stats().succeeded == 1).await);
    assert_eq!(redis.keys("t:session:*").await, Vec::<String>::new());
    jobs.shutdown().await;
}

/// A job that keeps failing runs `max_attempts` times with backoff, then lands in the
/// dead-letter stream with its last error.
#[tokio::test]
async fn a_failing_job_is_retried_then_dead_lettered() {
    let redis = RedisServer::start().await;
    let config = example_config(
        redis.port(),
        "[jobs]\nmax_attempts = 3\nretry_backoff = 50ms\nclaim_timeout = 1s\n",
    );
    let (sessions, _server) = node(config.clone()).await;
    let jobs = Jobs::builder(
        &config,
        &rondo::redis::Redis::new(config.redis.clone()),
        &sessions,
    )
    .register::<Flaky>()
    .start()
    .await
    .unwrap();
    jobs.dispatch(&Flaky).await.unwrap();
    assert!(eventually(|| jobs.stats().dead_lettered == 1).await);
    let stats = jobs.stats();
    assert_eq!((stats.started, stats.retried, stats.succeeded), (3, 2, 0));
    assert_eq!(xlen(&redis, "t:jobs:{jobs}:dead").await, 1);
    assert_eq!(xlen(&redis, "t:jobs:{jobs}").await, 0);
    let dead = format!(
        "{:?}",
        redis.cmd(&["XRANGE", "t:jobs:{jobs}:dead", "-", "+"]).await
    );
    assert!(dead.contains("failed 3 times"), "{dead}");
    jobs.shutdown().await;
}

/// Unreadable entries (a bad field, a payload of the wrong shape) go to the dead-letter
/// stream without a panic, and the runtime keeps running jobs.
#[tokio::test]
async fn unreadable_entries_are_dead_lettered() {
    let redis = RedisServer::start().await;
    let config = example_config(redis.port(), "");
    let (sessions, _server) = node(config.clone()).await;
    let gates = Gates::default();
    let jobs = Jobs::builder(
        &config,
        &rondo::redis::Redis::new(config.redis.clone()),
        &sessions,
    )
    .register::<Slow>()
    .state(gates.clone())
    .start()
    .await
    .unwrap();
    let stream = "t:jobs:{jobs}";
    redis
        .cmd(&[
            "XADD",
            stream,
            "*",
            "id",
            "x1",
            "name",
            "test.slow",
            "attempts",
            "many",
        ])
        .await;
    redis
        .cmd(&[
            "XADD",
            stream,
            "*",
            "id",
            "x2",
            "name",
            "test.slow",
            "attempts",
            "0",
            "payload",
            "\u{1}zz",
        ])
        .await;
    assert!(eventually(|| jobs.stats().dead_lettered == 2).await);
    assert_eq!(xlen(&redis, "t:jobs:{jobs}:dead").await, 2);
    jobs.dispatch(&Slow { tag: "ok".into() }).await.unwrap();
    assert!(eventually(|| jobs.stats().succeeded == 1).await);
    assert_eq!(gates.results(), ["ok attempt 1"]);
    jobs.shutdown().await;
}

/// At shutdown a job that finishes within `[jobs] shutdown_timeout` completes; one that
/// does not is stopped, put back on the queue, and run by another server.
#[tokio::test]
async fn shutdown_finishes_short_jobs_and_puts_long_ones_back() {
    let redis = RedisServer::start().await;
    let config = example_config(redis.port(), "[jobs]\nshutdown_timeout = 500ms\n");
    let (sessions, _server) = node(config.clone()).await;
    let gates = Gates::default();
    let start = |nap: Duration| {
        Jobs::builder(
            &config,
            &rondo::redis::Redis::new(config.redis.clone()),
            &sessions,
        )
        .register::<Slow>()
        .state(gates.clone())
        .state(Nap(nap))
    };

    let short = start(Duration::from_millis(200)).start().await.unwrap();
    short
        .dispatch(&Slow {
            tag: "short".into(),
        })
        .await
        .unwrap();
    assert!(eventually(|| short.stats().running == 1).await);
    short.shutdown().await;
    assert_eq!(gates.results(), ["short attempt 1"]);
    assert_eq!((short.stats().succeeded, short.stats().requeued), (1, 0));

    let long = start(Duration::from_secs(30)).start().await.unwrap();
    long.dispatch(&Slow { tag: "long".into() }).await.unwrap();
    assert!(eventually(|| long.stats().running == 1).await);
    let stopping = Instant::now();
    long.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(3));
    assert_eq!((long.stats().succeeded, long.stats().requeued), (0, 1));
    assert_eq!(
        xlen(&redis, "t:jobs:{jobs}").await,
        1,
        "the job is back on the queue"
    );

    let other = start(Duration::ZERO).start().await.unwrap();
    assert!(eventually(|| other.stats().succeeded == 1).await);
    assert_eq!(gates.results(), ["short attempt 1", "long attempt 1"]);
    other.shutdown().await;
}

/// With the memory session store, jobs run in-process; an unregistered job is refused.
#[tokio::test(start_paused = true)]
async fn memory_store_runs_jobs_in_process() {
    let config = Config::parse_str("[session]\nstore = memory\n", "test.ini").unwrap();
    let sessions =
        SessionManager::from_config(&config, &rondo::redis::Redis::new(config.redis.clone()))
            .await
            .unwrap();
    let gates = Gates::default();
    let jobs = Jobs::builder(
        &config,
        &rondo::redis::Redis::new(config.redis.clone()),
        &sessions,
    )
    .register::<Slow>()
    .state(gates.clone())
    .start()
    .await
    .unwrap();
    assert!(!jobs.durable());
    for i in 0..3 {
        jobs.dispatch(&Slow {
            tag: format!("m{i}"),
        })
        .await
        .unwrap();
    }
    assert!(eventually(|| jobs.stats().succeeded == 3).await);
    let mut results = gates.results();
    results.sort();
    assert_eq!(results, ["m0 attempt 1", "m1 attempt 1", "m2 attempt 1"]);
    assert!(matches!(
        jobs.dispatch(&Flaky).await,
        Err(JobsError::Unregistered("test.flaky"))
    ));
    jobs.shutdown().await;
    assert!(matches!(
        jobs.dispatch(&Slow { tag: "late".into() }).await,
        Err(JobsError::Closed)
    ));
}
