//! What client-side caching costs, measured (not asserted: run by `bench/tracking.sh`, or
//! `cargo test -p rondo-tests --test tracking_cost -- --ignored --nocapture`):
//!
//! - the invalidations each server receives per session write, with 1, 2 and 4 servers,
//!   key tracking against broadcast, for two ways of spreading requests: round robin (every
//!   server serves every session) and affinity (each session mostly on one server, one
//!   request in ten elsewhere);
//! - the Redis memory that key tracking's table takes for 100k live sessions.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use http::StatusCode;
use rondo_tests::app::{example_config, start_example, Jar};
use rondo_tests::http::TestServer;
use rondo_tests::redis::RedisServer;

/// Sessions in the push measurement, and requests (each a read and a write) over them.
const SESSIONS: usize = 100;
const REQUESTS: usize = 2000;

async fn servers(redis: &RedisServer, mode: &str, n: usize) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for _ in 0..n {
        let config = example_config(redis.port(), &format!("[session]\nread_check = {mode}"));
        servers.push(start_example(config).await);
    }
    servers
}

/// A counter of `server`'s metrics, 0 when absent.
async fn metric(server: &TestServer, name: &str) -> u64 {
    let text = server.get("/metrics").await.body;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// A small deterministic generator (xorshift), so every run spreads requests alike.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Invalidations received per server per session write, for `mode`, `n` servers and the
/// spreading `policy` (`round-robin` or `affinity`).
async fn pushes_per_write(mode: &str, n: usize, policy: &str) -> f64 {
    let redis = RedisServer::start().await;
    let servers = servers(&redis, mode, n).await;
    let mut jars: Vec<Jar> = (0..SESSIONS).map(|_| Jar::default()).collect();
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    // Each session starts on its home server.
    for (i, jar) in jars.iter_mut().enumerate() {
        let response = jar.get(&servers[i % n], "/bench/counter").await;
        assert_eq!(response.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = "rondo_session_invalidations_received_total";
    let mut before = Vec::new();
    for server in &servers {
        before.push(metric(server, received).await);
    }
    for turn in 0..REQUESTS {
        let session = draw.below(SESSIONS);
        let server = match policy {
            "round-robin" => turn % n,
            _ if draw.below(10) == 0 => draw.below(n),
            _ => session % n,
        };
        let response = jars[session].get(&servers[server], "/bench/counter").await;
        assert_eq!(response.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut total = 0;
    // (The tracking connections are drained every few milliseconds.)
    for (server, before) in servers.iter().zip(before) {
        total += metric(server, received).await - before;
    }
    total as f64 / n as f64 / REQUESTS as f64
}

/// The table of invalidations each server receives per session write.
#[tokio::test]
#[ignore = "a measurement: run by bench/tracking.sh"]
async fn invalidations_per_write() {
    let mut rows = Vec::new();
    for policy in ["round-robin", "affinity"] {
        for n in [1, 2, 4] {
            let keys = pushes_per_write("tracking", n, policy).await;
            let broadcast = pushes_per_write("broadcast", n, policy).await;
            rows.push(format!(
                "| {policy} | {n} | {keys:.2} | {broadcast:.2} | {:.2} | {:.2} |",
                keys * n as f64,
                broadcast * n as f64
            ));
        }
    }
    println!(
        "\n{SESSIONS} sessions, {REQUESTS} requests (each a read and a write of one session):\n\n\
         | spread | servers | keys: per server per write | broadcast: per server per write | \
         keys: all servers per write | broadcast: all servers per write |\n|---|---:|---:|---:|---:|---:|"
    );
    for row in rows {
        println!("{row}");
    }
}

/// `INFO` fields of `redis`.
async fn info(redis: &RedisServer, section: &str) -> HashMap<String, String> {
    let text: String = redis::from_redis_value(redis.cmd(&["INFO", section]).await).unwrap();
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// Redis memory with `sessions` live sessions, each written then read on one server, in
/// `mode`: used memory, tracked keys, tracking items.
async fn memory_with(mode: &str, sessions: usize) -> (u64, String, String) {
    let redis = RedisServer::start().await;
    let servers = servers(&redis, mode, 1).await;
    let server = &servers[0];
    let client = server.client();
    let batches = sessions / 100;
    for _ in 0..batches {
        let mut tasks = Vec::new();
        for _ in 0..100 {
            tasks.push(tokio::spawn(async move {
                let mut jar = Jar::default();
                let first = jar.get_via(&client, "/bench/counter").await;
                assert_eq!(first.status, StatusCode::OK);
                // The second request reads the stored session (tracked) and writes it.
                let second = jar.get_via(&client, "/bench/counter").await;
                assert_eq!(second.status, StatusCode::OK);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let memory = info(&redis, "memory").await;
    let stats = info(&redis, "stats").await;
    (
        memory["used_memory"].parse().unwrap(),
        stats
            .get("tracking_total_keys")
            .cloned()
            .unwrap_or_default(),
        stats
            .get("tracking_total_items")
            .cloned()
            .unwrap_or_default(),
    )
}

/// Redis memory of key tracking's table with 100k live sessions: the same sessions with
/// key tracking and with version checks (no tracking).
#[tokio::test]
#[ignore = "a measurement: run by bench/tracking.sh"]
async fn tracking_table_memory() {
    let sessions = 100_000;
    let (tracked, keys, items) = memory_with("tracking", sessions).await;
    let (untracked, _, _) = memory_with("version", sessions).await;
    let (broadcast, _, _) = memory_with("broadcast", sessions).await;
    println!(
        "\n{sessions} live sessions: used_memory {tracked} bytes with key tracking \
         (tracking_total_keys {keys}, tracking_total_items {items}), {broadcast} with broadcast, \
         {untracked} without tracking: the table takes {} bytes, {:.0} bytes per session",
        tracked.saturating_sub(untracked),
        tracked.saturating_sub(untracked) as f64 / sessions as f64
    );
}
