//! Sessions and jobs on a local Redis Cluster (six nodes) and on a Sentinel set (a primary,
//! a replica, three sentinels), each shared by two app servers, with the guarantees of a
//! single Redis: a concurrent counter through both servers loses nothing, a read right after
//! an answered write on the other server sees it, a deleted session is not read from a
//! stale copy, and jobs run once across servers. Real `redis-server` processes, real HTTP.
//!
//! The failover tests (`failover_*`) kill the primary that holds a session while a client
//! keeps writing to it through both servers, and report the window of 503s, the time to
//! recover and the acknowledged writes lost, with and without `wait_replicas`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use http::StatusCode;
use rondo::{Config, ConfigLoader};
use rondo_tests::app::{start_example, Jar};
use rondo_tests::eventually;
use rondo_tests::http::TestServer;
use rondo_tests::redis_ha::{RedisCluster, RedisSentinelSet};

/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(20);

/// A deployment under test, and how the app reaches it.
enum Deployment {
    Cluster(RedisCluster),
    Sentinel(RedisSentinelSet),
}

impl Deployment {
    async fn cluster() -> Self {
        Self::Cluster(RedisCluster::start().await)
    }

    async fn sentinel() -> Self {
        Self::Sentinel(RedisSentinelSet::start().await)
    }

    /// With two replicas per primary: a failover leaves the new primary a replica, so
    /// writes can still wait for one (`wait_replicas = 1`).
    async fn cluster_with_two_replicas() -> Self {
        Self::Cluster(RedisCluster::start_with(3, 2).await)
    }

    /// As [`cluster_with_two_replicas`](Self::cluster_with_two_replicas).
    async fn sentinel_with_two_replicas() -> Self {
        Self::Sentinel(RedisSentinelSet::start_with(2).await)
    }

    /// `[redis] default[...]` lines for this deployment.
    fn redis_lines(&self) -> String {
        let nodes = |ports: Vec<u16>| {
            ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Self::Cluster(cluster) => format!(
                "default[mode] = cluster\ndefault[nodes] = {}\n",
                nodes(cluster.ports())
            ),
            Self::Sentinel(set) => format!(
                "default[mode] = sentinel\ndefault[nodes] = {}\ndefault[master_name] = {}\n",
                nodes(set.sentinel_ports()),
                set.service_name()
            ),
        }
    }

    /// The example app's config on this deployment, with `extra` lines.
    fn config(&self, extra: &str) -> Config {
        let text = format!(
            "[http]\nport = 0\n[session]\nstore = redis\n[redis]\n{}default[prefix] = t:\n\
             default[timeout] = 1\n{extra}\n",
            self.redis_lines()
        );
        ConfigLoader::new()
            .section("example")
            .parse_str(&text, "test.ini")
            .expect("test config is valid")
    }

    /// Runs `args` on the primary that holds `key`.
    async fn on_primary_of(&self, key: &str, args: &[&str]) -> redis::Value {
        match self {
            Self::Cluster(cluster) => {
                let node = cluster.primary_for(key).await;
                cluster.process(node.port).unwrap().cmd(args).await
            }
            Self::Sentinel(set) => {
                let port = set.primary_port().await;
                set.process(port).unwrap().cmd(args).await
            }
        }
    }

    /// The session keys (`t:session:*`) on every primary.
    async fn session_keys(&self) -> Vec<String> {
        let ports = match self {
            Self::Cluster(cluster) => cluster.primaries().await.iter().map(|n| n.port).collect(),
            Self::Sentinel(set) => vec![set.primary_port().await],
        };
        let mut keys = Vec::new();
        for port in ports {
            let process = match self {
                Self::Cluster(cluster) => cluster.process(port),
                Self::Sentinel(set) => set.process(port),
            };
            let found: Vec<String> =
                redis::from_redis_value(process.unwrap().cmd(&["KEYS", "t:session:*"]).await)
                    .unwrap();
            keys.extend(found);
        }
        keys
    }

    /// The ports of the primaries.
    async fn primary_ports(&self) -> Vec<u16> {
        match self {
            Self::Cluster(cluster) => cluster.primaries().await.iter().map(|n| n.port).collect(),
            Self::Sentinel(set) => vec![set.primary_port().await],
        }
    }

    /// Session reads (`HGET`, `HMGET`, `HGETALL`) run on the primary at `port` since its
    /// last `CONFIG RESETSTAT` (the job queue's upkeep sends other commands all along).
    async fn session_commands(&self, port: u16) -> u64 {
        let process = match self {
            Self::Cluster(cluster) => cluster.process(port),
            Self::Sentinel(set) => set.process(port),
        };
        let stats = process.unwrap().try_info("commandstats").await.unwrap();
        ["hget", "hmget", "hgetall"]
            .iter()
            .filter_map(|name| stats.get(&format!("cmdstat_{name}")))
            .filter_map(|value| {
                value
                    .split(',')
                    .find_map(|field| field.strip_prefix("calls="))
                    .and_then(|calls| calls.parse::<u64>().ok())
            })
            .sum()
    }

    /// `CONFIG RESETSTAT` on every primary.
    async fn reset_stats(&self) {
        for port in self.primary_ports().await {
            let process = match self {
                Self::Cluster(cluster) => cluster.process(port),
                Self::Sentinel(set) => set.process(port),
            };
            process.unwrap().cmd(&["CONFIG", "RESETSTAT"]).await;
        }
    }

    /// Kills the primary that holds `key` and waits for its replica's promotion: the time
    /// that took.
    async fn kill_primary_of(&mut self, key: &str) -> Duration {
        match self {
            Self::Cluster(cluster) => cluster.kill_primary_for(key).await.elapsed,
            Self::Sentinel(set) => set.kill_primary().await.elapsed,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Cluster(_) => "cluster",
            Self::Sentinel(_) => "sentinel",
        }
    }
}

/// `/bench/counter` through `jar`: the status and the new count.
async fn increment(jar: &mut Jar, server: &TestServer) -> (StatusCode, String) {
    let response = jar.get(server, "/bench/counter").await;
    (response.status, response.body)
}

/// `/bench/read` through `jar`, which must answer 200.
async fn read(jar: &mut Jar, server: &TestServer) -> String {
    let response = jar.get(server, "/bench/read").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body
}

/// 2 x 100 increments of one session, 8 at a time on each of two servers: none is lost,
/// and both servers read the total.
async fn concurrent_counter_through_two_servers(deployment: Deployment) {
    let a = start_example(deployment.config("")).await;
    let b = start_example(deployment.config("")).await;
    let mut jar = Jar::default();
    assert_eq!(increment(&mut jar, &a).await.1, "1");
    let run = |server: &TestServer| {
        let client = server.client();
        let jar = jar.clone();
        async move {
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let (client, mut jar) = (client, jar.clone());
                tasks.push(tokio::spawn(async move {
                    for _ in 0..12 {
                        let response = jar.get_via(&client, "/bench/counter").await;
                        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            for _ in 0..4 {
                let mut jar = jar.clone();
                let response = jar.get_via(&client, "/bench/counter").await;
                assert_eq!(response.status, StatusCode::OK);
            }
        }
    };
    tokio::join!(run(&a), run(&b));
    // Commits land after the responses.
    eventually("every increment committed", WAIT, || {
        let mut jar = jar.clone();
        let a = &a;
        async move { (read(&mut jar, a).await == "201").then_some(()) }
    })
    .await;
    assert_eq!(read(&mut jar, &b).await, "201");
}

/// 50 rounds of "increment on one server, read on the other", alternating: each read sees
/// the write answered just before, from whichever server.
async fn a_read_sees_the_write_answered_on_the_other_server(deployment: Deployment) {
    let a = start_example(deployment.config("[session]\npersist = before_response")).await;
    let b = start_example(deployment.config("[session]\npersist = before_response")).await;
    let mut jar = Jar::default();
    assert_eq!(increment(&mut jar, &a).await.1, "1");
    assert_eq!(read(&mut jar, &b).await, "1");
    for round in 2..=51u64 {
        let (writer, reader) = if round % 2 == 0 { (&b, &a) } else { (&a, &b) };
        assert_eq!(
            increment(&mut jar, writer).await,
            (StatusCode::OK, round.to_string())
        );
        assert_eq!(
            read(&mut jar, reader).await,
            round.to_string(),
            "round {round}"
        );
        assert_eq!(
            read(&mut jar, writer).await,
            round.to_string(),
            "round {round}"
        );
    }
}

/// A session whose key is deleted in Redis (by hand, on its primary) is unknown to the very
/// next read on either server, though both held a copy a moment before.
async fn a_deleted_session_is_not_read_from_a_copy(deployment: Deployment) {
    let a = start_example(deployment.config("")).await;
    let b = start_example(deployment.config("")).await;
    let mut jar = Jar::default();
    assert_eq!(increment(&mut jar, &a).await.1, "1");
    for _ in 0..5 {
        assert_eq!(read(&mut jar, &a).await, "1");
        assert_eq!(read(&mut jar, &b).await, "1");
    }
    let keys = deployment.session_keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    deployment.on_primary_of(&keys[0], &["DEL", &keys[0]]).await;
    let mut other = jar.clone();
    assert_eq!(read(&mut jar, &a).await, "0");
    assert_eq!(jar.value, None, "the unknown id was dropped");
    assert_eq!(read(&mut other, &b).await, "0");
}

/// Ten logins over two servers: each login's hydration job runs exactly once, on either
/// server, and both read its result from the session.
async fn jobs_run_once_across_servers(deployment: Deployment) {
    let jobs = "[example]\nhydrate_delay_ms = 50\n";
    let a = start_example(deployment.config(jobs)).await;
    let b = start_example(deployment.config(jobs)).await;
    let mut jars = Vec::new();
    for i in 0..10 {
        let server = if i % 2 == 0 { &a } else { &b };
        let mut jar = Jar::default();
        let login = jar
            .post_json(server, "/api/login", &format!(r#"{{"user":"u{i}"}}"#))
            .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        jars.push(jar);
    }
    for (i, jar) in jars.iter_mut().enumerate() {
        for server in [&a, &b] {
            let mut jar = jar.clone();
            eventually("the job's result", WAIT, || {
                let mut jar = jar.clone();
                async move {
                    let body = jar.get(server, "/api/recommendations").await.json();
                    (body["ready"] == true).then_some(body)
                }
            })
            .await;
            let body = jar.get(server, "/api/recommendations").await.json();
            assert_eq!(body["items"][2], format!("picked-for-u{i}"));
        }
    }
    // A job is counted once it has returned, just after its result reached the session.
    let counts = |name: &'static str| {
        let (a, b) = (&a, &b);
        async move {
            let mut sum = 0;
            for server in [a, b] {
                sum += server.get("/api/jobs/stats").await.json()[name]
                    .as_u64()
                    .unwrap_or(0);
            }
            sum
        }
    };
    eventually("every job counted", WAIT, || async {
        (counts("succeeded").await >= 10).then_some(())
    })
    .await;
    assert_eq!(
        (counts("succeeded").await, counts("dead_lettered").await),
        (10, 0)
    );
}

/// Warm reads are served from memory here too: once both servers checked their copies,
/// 20 reads on each send no session read to any primary.
async fn warm_reads_send_nothing(deployment: Deployment) {
    let a = start_example(deployment.config("")).await;
    let b = start_example(deployment.config("")).await;
    let mut jar = Jar::default();
    assert_eq!(increment(&mut jar, &a).await.1, "1");
    eventually("reads served from memory", WAIT, || {
        let (deployment, jar, a, b) = (&deployment, jar.clone(), &a, &b);
        async move {
            deployment.reset_stats().await;
            for server in [a, b] {
                for _ in 0..20 {
                    assert_eq!(read(&mut jar.clone(), server).await, "1");
                }
            }
            let mut sent = 0;
            for port in deployment.primary_ports().await {
                sent += deployment.session_commands(port).await;
            }
            (sent == 0).then_some(())
        }
    })
    .await;
}

/// On a cluster, losing one primary voids only the copies of the sessions it held: while
/// its shard fails over, a session on another shard is still read from memory.
#[tokio::test]
async fn a_lost_primary_voids_only_its_copies() {
    let mut deployment = Deployment::cluster().await;
    let a = start_example(deployment.config("")).await;
    let mut jars = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    // Two sessions on different primaries.
    while keys.len() < 2 {
        let mut jar = Jar::default();
        assert_eq!(increment(&mut jar, &a).await.1, "1");
        let all = deployment.session_keys().await;
        let new = all.into_iter().find(|k| !keys.contains(k)).unwrap();
        let Deployment::Cluster(cluster) = &deployment else {
            unreachable!()
        };
        let port = cluster.primary_for(&new).await.port;
        let mut taken = Vec::new();
        for key in &keys {
            taken.push(cluster.primary_for(key).await.port);
        }
        if !taken.contains(&port) {
            keys.push(new);
            jars.push(jar);
        }
    }
    let other_port = {
        let Deployment::Cluster(cluster) = &deployment else {
            unreachable!()
        };
        cluster.primary_for(&keys[1]).await.port
    };
    eventually("reads served from memory", WAIT, || {
        let (deployment, jar, a) = (&deployment, jars[1].clone(), &a);
        async move {
            deployment.reset_stats().await;
            for _ in 0..10 {
                assert_eq!(read(&mut jar.clone(), a).await, "1");
            }
            (deployment.session_commands(other_port).await == 0).then_some(())
        }
    })
    .await;
    let Deployment::Cluster(cluster) = &mut deployment else {
        unreachable!()
    };
    let victim = cluster.primary_for(&keys[0]).await.port;
    assert!(cluster.kill(victim));
    // While the killed shard has no primary, the other session stays warm.
    cluster
        .process(other_port)
        .unwrap()
        .cmd(&["CONFIG", "RESETSTAT"])
        .await;
    for _ in 0..20 {
        assert_eq!(read(&mut jars[1].clone(), &a).await, "1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(deployment.session_commands(other_port).await, 0);
}

/// What a failover did to a client that kept writing.
#[derive(Debug)]
struct FailoverReport {
    /// From the first to the last 503.
    window: Duration,
    /// From the kill to the first success after it.
    recovery: Duration,
    /// Answered increments whose count the final record does not hold.
    lost: u64,
    unavailable: usize,
    answered: u64,
    /// Answers that were neither 200 nor 503.
    other: Vec<StatusCode>,
}

/// Increments one session every 5 ms, alternating between two servers (each increment
/// committed before its answer), kills the primary holding it, and keeps going until 50
/// increments in a row have succeeded after the promotion.
async fn failover_under_writes(mut deployment: Deployment, wait_replicas: u32) -> FailoverReport {
    let extra = format!(
        "[session]\npersist = before_response\n[redis]\ndefault[wait_replicas] = {wait_replicas}\n"
    );
    let a = start_example(deployment.config(&extra)).await;
    let b = start_example(deployment.config(&extra)).await;
    let mut jar = Jar::default();
    assert_eq!(increment(&mut jar, &a).await, (StatusCode::OK, "1".into()));
    let key = deployment.session_keys().await.remove(0);
    let writes = {
        let (a_client, b_client, jar) = (a.client(), b.client(), jar.clone());
        tokio::spawn(async move {
            let mut log = Vec::new();
            let mut streak = 0;
            let started = Instant::now();
            let mut n = 0u64;
            while streak < 50 && started.elapsed() < Duration::from_secs(60) {
                let client = if n.is_multiple_of(2) {
                    &a_client
                } else {
                    &b_client
                };
                let mut jar = jar.clone();
                let response = jar.get_via(client, "/bench/counter").await;
                let count = response.body.parse::<u64>().ok();
                log.push((Instant::now(), response.status, count));
                if response.status == StatusCode::OK && started.elapsed() > Duration::from_secs(1) {
                    streak += 1;
                } else {
                    streak = 0;
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            log
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    let promotion = deployment.kill_primary_of(&key).await;
    let log = writes.await.unwrap();
    let final_count: u64 = eventually("a final read", WAIT, || {
        let mut jar = jar.clone();
        let a = &a;
        async move { a_read(&mut jar, a).await }
    })
    .await;
    let failures: Vec<&Instant> = log
        .iter()
        .filter(|(_, status, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .map(|(at, _, _)| at)
        .collect();
    let window = match (failures.first(), failures.last()) {
        (Some(first), Some(last)) => last.duration_since(**first),
        _ => Duration::ZERO,
    };
    let recovery = log
        .iter()
        .find(|(at, status, _)| {
            *at > killed_at
                && *status == StatusCode::OK
                && failures.last().is_none_or(|last| at > *last)
        })
        .map_or(Duration::MAX, |(at, _, _)| at.duration_since(killed_at));
    let answered: Vec<u64> = log.iter().filter_map(|(_, _, count)| *count).collect();
    let highest = answered.iter().copied().max().unwrap_or(0);
    let lost = answered
        .iter()
        .filter(|count| **count > final_count)
        .count() as u64;
    let report = FailoverReport {
        window,
        recovery,
        lost,
        unavailable: failures.len(),
        answered: answered.len() as u64,
        other: log
            .iter()
            .map(|(_, status, _)| *status)
            .filter(|s| *s != StatusCode::OK && *s != StatusCode::SERVICE_UNAVAILABLE)
            .collect(),
    };
    eprintln!(
        "FAILOVER {} wait_replicas={wait_replicas}: promotion took {promotion:?}; {report:?}; \
         highest answered {highest}, final {final_count}",
        deployment.name()
    );
    report
}

/// `/bench/read` as a number, when it answers 200.
async fn a_read(jar: &mut Jar, server: &TestServer) -> Option<u64> {
    let response = jar.get(server, "/bench/read").await;
    (response.status == StatusCode::OK)
        .then(|| response.body.parse().ok())
        .flatten()
}

/// A failover is survived: only 503s while it lasts (no other error), service back by
/// itself within seconds of the promotion, and with `wait_replicas = 1` no acknowledged
/// write lost.
fn assert_survived(report: &FailoverReport, wait_replicas: u32) {
    assert!(report.other.is_empty(), "{report:?}");
    assert!(
        report.unavailable > 0 || report.window.is_zero(),
        "{report:?}"
    );
    assert!(report.recovery < Duration::from_secs(20), "{report:?}");
    assert!(report.answered > 50, "{report:?}");
    if wait_replicas > 0 {
        assert_eq!(report.lost, 0, "{report:?}");
    }
}

macro_rules! on_both {
    ($($test:ident),* $(,)?) => {
        /// On a local Redis Cluster: three primaries, a replica each.
        mod cluster {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Deployment::cluster().await).await;
            })*

            #[tokio::test]
            async fn failover_without_wait() {
                let report = super::failover_under_writes(super::Deployment::cluster().await, 0).await;
                super::assert_survived(&report, 0);
            }

            #[tokio::test]
            async fn failover_with_wait_replicas() {
                let deployment = super::Deployment::cluster_with_two_replicas().await;
                let report = super::failover_under_writes(deployment, 1).await;
                super::assert_survived(&report, 1);
            }
        }
        /// On a Sentinel set: a primary, a replica, three sentinels.
        mod sentinel {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Deployment::sentinel().await).await;
            })*

            #[tokio::test]
            async fn failover_without_wait() {
                let report = super::failover_under_writes(super::Deployment::sentinel().await, 0).await;
                super::assert_survived(&report, 0);
            }

            #[tokio::test]
            async fn failover_with_wait_replicas() {
                let deployment = super::Deployment::sentinel_with_two_replicas().await;
                let report = super::failover_under_writes(deployment, 1).await;
                super::assert_survived(&report, 1);
            }
        }
    };
}

on_both!(
    warm_reads_send_nothing,
    concurrent_counter_through_two_servers,
    a_read_sees_the_write_answered_on_the_other_server,
    a_deleted_session_is_not_read_from_a_copy,
    jobs_run_once_across_servers,
);
