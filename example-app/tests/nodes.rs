//! Several example-app processes on one Redis, no sticky sessions: concurrent updates of one
//! session stay exact across processes.

use std::collections::BTreeSet;

use rondo_tests::app::set_cookie_value;
use rondo_tests::http::Client;
use rondo_tests::process::{AppCommand, AppProcess};
use rondo_tests::redis::RedisServer;
use rondo_tests::session::send_with_cookie;

/// The example-app binary these tests run.
const APP: &str = env!("CARGO_BIN_EXE_example-app");

/// The example app as a process named `name`, on the Redis at `redis_port`.
async fn start_app(redis_port: u16, name: &str) -> AppProcess {
    AppCommand::example(APP, name, redis_port, "").start().await
}

/// `GET path` with the session cookie `cookie`: the body.
async fn read(node: Client, path: &str, cookie: &str) -> String {
    let res = send_with_cookie(node, "GET", path, cookie, None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body
}

/// A new session on `node`: its cookie.
async fn new_session(node: &AppProcess) -> String {
    let res = node.client().get("/bench/new").await;
    assert_eq!(res.status, 200);
    set_cookie_value(&res, "dmsession").expect("a session cookie")
}

/// Sends 200 concurrent `/bench/counter` requests on `cookie`, spread over `nodes` in turn,
/// and returns the counts they answered.
async fn count_concurrently(nodes: &[Client], cookie: &str) -> BTreeSet<u64> {
    let requests: Vec<_> = (0..200)
        .map(|i| {
            let node = nodes[i % nodes.len()];
            let cookie = cookie.to_owned();
            tokio::spawn(async move { read(node, "/bench/counter", &cookie).await })
        })
        .collect();
    let mut values = BTreeSet::new();
    for request in requests {
        let body = request.await.expect("a response");
        values.insert(body.trim().parse::<u64>().expect("a count"));
    }
    values
}

/// 200 concurrent `/bench/counter` requests on one session, split between two processes, end
/// at exactly 200, and every request got its own value 1..=200.
#[tokio::test]
async fn two_processes_count_exactly() {
    let redis = RedisServer::start().await;
    let a = start_app(redis.port(), "node-a").await;
    let b = start_app(redis.port(), "node-b").await;
    let cookie = new_session(&a).await;

    let values = count_concurrently(&[a.client(), b.client()], &cookie).await;
    assert_eq!(values, (1..=200).collect::<BTreeSet<u64>>());
    assert_eq!(read(a.client(), "/bench/read", &cookie).await.trim(), "200");
    assert_eq!(read(b.client(), "/bench/read", &cookie).await.trim(), "200");
}

/// The same 200 concurrent requests on one process: exactly 200, each value 1..=200 once,
/// also as Redis stores it (a second process, which never saw them, reads 200).
#[tokio::test]
async fn one_process_counts_exactly() {
    let redis = RedisServer::start().await;
    let a = start_app(redis.port(), "node-a").await;
    let cookie = new_session(&a).await;

    let values = count_concurrently(&[a.client()], &cookie).await;
    assert_eq!(values, (1..=200).collect::<BTreeSet<u64>>());
    assert_eq!(read(a.client(), "/bench/read", &cookie).await.trim(), "200");
    let b = start_app(redis.port(), "node-b").await;
    assert_eq!(read(b.client(), "/bench/read", &cookie).await.trim(), "200");
}
