//! Several example-app processes on one Redis, no sticky sessions: concurrent updates of one
//! session stay exact across processes.

mod common;

use std::collections::BTreeSet;

use common::{get, get_body, start_app, start_redis};

/// Sends 200 concurrent `/bench/counter` requests on `cookie`, spread over `nodes` in turn,
/// and returns the counts they answered.
fn count_concurrently(nodes: &[String], cookie: &str) -> BTreeSet<u64> {
    let requests: Vec<_> = (0..200)
        .map(|i| {
            let addr = nodes[i % nodes.len()].clone();
            let cookie = cookie.to_owned();
            std::thread::spawn(move || get_body(&addr, "/bench/counter", &cookie))
        })
        .collect();
    let mut values = BTreeSet::new();
    for request in requests {
        let (status, body) = request.join().expect("a response");
        assert_eq!(status, 200, "{body}");
        values.insert(body.trim().parse::<u64>().expect("a count"));
    }
    values
}

/// 200 concurrent `/bench/counter` requests on one session, split between two processes, end
/// at exactly 200, and every request got its own value 1..=200.
#[test]
fn two_processes_count_exactly() {
    let (_redis, redis_port) = start_redis();
    let (_a, a) = start_app(redis_port, "node-a");
    let (_b, b) = start_app(redis_port, "node-b");
    let (status, cookie) = get(&a, "/bench/new", None);
    assert_eq!(status, 200);
    let cookie = cookie.expect("a session cookie");

    let values = count_concurrently(&[a.clone(), b.clone()], &cookie);
    assert_eq!(values, (1..=200).collect::<BTreeSet<u64>>());
    assert_eq!(get_body(&a, "/bench/read", &cookie).1.trim(), "200");
    assert_eq!(get_body(&b, "/bench/read", &cookie).1.trim(), "200");
}

/// The same 200 concurrent requests on one process: exactly 200, each value 1..=200 once,
/// also as Redis stores it (a second process, which never saw them, reads 200).
#[test]
fn one_process_counts_exactly() {
    let (_redis, redis_port) = start_redis();
    let (_a, a) = start_app(redis_port, "node-a");
    let (status, cookie) = get(&a, "/bench/new", None);
    assert_eq!(status, 200);
    let cookie = cookie.expect("a session cookie");

    let values = count_concurrently(std::slice::from_ref(&a), &cookie);
    assert_eq!(values, (1..=200).collect::<BTreeSet<u64>>());
    assert_eq!(get_body(&a, "/bench/read", &cookie).1.trim(), "200");
    let (_b, b) = start_app(redis_port, "node-b");
    assert_eq!(get_body(&b, "/bench/read", &cookie).1.trim(), "200");
}
