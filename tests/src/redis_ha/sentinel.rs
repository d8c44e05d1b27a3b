//! A local Redis Sentinel set: a primary, a replica and three sentinels.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::Value;
use rondo::config::{RedisMode, RedisPoolConfig};

use super::{wait_for, RedisProcess};

/// The name the sentinels monitor the primary under (`sentinel monitor <name> ...`).
pub const SERVICE_NAME: &str = "rondo";

/// `down-after-milliseconds`: how long the primary may be unreachable before a sentinel
/// considers it down.
pub const DOWN_AFTER_MS: u64 = 1000;

/// `failover-timeout`, in milliseconds (a failed failover is retried after twice this).
pub const FAILOVER_TIMEOUT_MS: u64 = 3000;

/// How long [`RedisSentinelSet::start`] waits for the replica to sync and for the sentinels to
/// know each other, the replica, and to agree on the primary. Sentinels find each other
/// through hello messages sent every 2 s.
pub const SENTINEL_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`RedisSentinelSet::kill_primary`] waits for the failover.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The quorum: sentinels that must agree the primary is down.
const QUORUM: usize = 2;

/// A primary, its replica and three sentinels, `redis-server` child processes on
/// `127.0.0.1`, private to one test.
///
/// The data nodes run with `--save '' --appendonly no`, the replica with `--replicaof`. Each
/// sentinel runs as `redis-server <dir>/sentinel.conf --sentinel` with
/// `sentinel monitor` [`SERVICE_NAME`] `127.0.0.1 <primary port> 2`, a
/// `down-after-milliseconds` of [`DOWN_AFTER_MS`] and a `failover-timeout` of
/// [`FAILOVER_TIMEOUT_MS`].
///
/// Dropping it kills every process it started (SIGKILL, through their handles) and removes
/// their directories.
#[derive(Debug)]
pub struct RedisSentinelSet {
    /// The primary first, then the replica (roles change on failover; these are the start-up
    /// ones).
    data: Vec<RedisProcess>,
    sentinels: Vec<RedisProcess>,
}

/// What [`RedisSentinelSet::kill_primary`] or [`RedisSentinelSet::manual_failover`] did and
/// saw.
#[derive(Debug, Clone)]
pub struct SentinelFailover {
    /// The port of the former primary (killed, or demoted to a replica).
    pub old: u16,
    /// The port of the replica promoted in its place.
    pub promoted: u16,
    /// From the kill (or the `SENTINEL FAILOVER`) until every live sentinel named the new
    /// primary and it said `role:master` (and, for a manual failover, the old one said
    /// `slave`).
    pub elapsed: Duration,
}

impl RedisSentinelSet {
    /// Starts the primary, the replica (waiting until it is in sync), then three sentinels, and
    /// waits (at most [`SENTINEL_START_TIMEOUT`]) until every sentinel names the primary, sees
    /// the replica and the two other sentinels.
    ///
    /// # Panics
    ///
    /// When a process does not start or the set does not settle in time.
    pub async fn start() -> RedisSentinelSet {
        Self::start_with(1).await
    }

    /// [`start`](Self::start) with `replicas` replicas (at least one), so that a failover
    /// leaves the new primary with replicas of its own.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub async fn start_with(replicas: usize) -> RedisSentinelSet {
        let primary = RedisProcess::start("primary", |port, dir| Ok(data_args(port, dir))).await;
        let primary_port = primary.port();
        let mut set = RedisSentinelSet {
            data: vec![primary],
            sentinels: Vec::new(),
        };
        for _ in 0..replicas.max(1) {
            let replica = RedisProcess::start("replica", |port, dir| {
                let mut args = data_args(port, dir);
                args.extend([
                    "--replicaof".to_owned(),
                    "127.0.0.1".to_owned(),
                    primary_port.to_string(),
                ]);
                Ok(args)
            })
            .await;
            set.data.push(replica);
        }
        wait_for(
            "the replicas to sync with the primary",
            SENTINEL_START_TIMEOUT,
            || async {
                for replica in &set.data[1..] {
                    let info = replica.try_info("replication").await?;
                    match info.get("master_link_status").map(String::as_str) {
                        Some("up") => {}
                        other => return Err(format!("master_link_status: {other:?}")),
                    }
                }
                Ok(())
            },
        )
        .await;
        let replicas = set.data.len() - 1;
        for _ in 0..3 {
            let sentinel = RedisProcess::start("sentinel", |port, dir| {
                let conf = dir.join("sentinel.conf");
                std::fs::write(&conf, sentinel_conf(port, dir, primary_port))
                    .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
                Ok(vec![
                    conf.to_string_lossy().into_owned(),
                    "--sentinel".into(),
                ])
            })
            .await;
            set.sentinels.push(sentinel);
        }
        let sentinels = set.sentinels.len();
        wait_for(
            "the sentinels to know the primary, the replica and each other",
            SENTINEL_START_TIMEOUT,
            || async {
                for sentinel in &set.sentinels {
                    let master = sentinel_master(sentinel).await?;
                    let field = |name: &str| master.get(name).map(String::as_str).unwrap_or("");
                    let port_ok = field("port") == primary_port.to_string();
                    let others = field("num-other-sentinels").parse::<usize>().unwrap_or(0);
                    let seen = field("num-slaves").parse::<usize>().unwrap_or(0);
                    if !port_ok
                        || field("flags") != "master"
                        || others + 1 != sentinels
                        || seen != replicas
                    {
                        return Err(format!(
                            "sentinel {}: primary port {}, flags {}, {others} other sentinels, \
                             {seen} replicas",
                            sentinel.port(),
                            field("port"),
                            field("flags")
                        ));
                    }
                }
                Ok(())
            },
        )
        .await;
        set
    }

    /// [`SERVICE_NAME`].
    pub fn service_name(&self) -> &'static str {
        SERVICE_NAME
    }

    /// `redis://127.0.0.1:{port}` of every sentinel not killed: what a sentinel client is
    /// built from.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .filter(|s| s.is_running())
            .map(RedisProcess::url)
            .collect()
    }

    /// Settings for a Rondo pool on this set (`mode = sentinel`): every sentinel in
    /// `nodes`, [`SERVICE_NAME`] as `master_name`, the given key `prefix`, no prefill, a
    /// 1 s timeout.
    pub fn pool_config(&self, prefix: &str) -> RedisPoolConfig {
        let mut config = RedisPoolConfig::named("default");
        config.mode = RedisMode::Sentinel;
        config.nodes = self
            .sentinels
            .iter()
            .map(|s| ("127.0.0.1".to_owned(), s.port()))
            .collect();
        config.master_name = Some(SERVICE_NAME.to_owned());
        config.prefix = prefix.to_owned();
        config.pool_prefill = false;
        config.timeout = Duration::from_secs(1);
        config
    }

    /// The ports of the sentinels.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(RedisProcess::port).collect()
    }

    /// The ports of the data nodes: the first primary, then the first replica.
    pub fn data_ports(&self) -> Vec<u16> {
        self.data.iter().map(RedisProcess::port).collect()
    }

    /// The process on `port` (a data node or a sentinel), killed or not.
    pub fn process(&self, port: u16) -> Option<&RedisProcess> {
        self.data
            .iter()
            .chain(&self.sentinels)
            .find(|p| p.port() == port)
    }

    /// The process ids of the processes not killed.
    pub fn pids(&self) -> Vec<u32> {
        self.data
            .iter()
            .chain(&self.sentinels)
            .filter_map(RedisProcess::pid)
            .collect()
    }

    /// The directories of every process (removed on drop).
    pub fn dirs(&self) -> Vec<std::path::PathBuf> {
        self.data
            .iter()
            .chain(&self.sentinels)
            .map(|p| p.dir().to_path_buf())
            .collect()
    }

    /// The primary's port, as every live sentinel names it (`SENTINEL
    /// GET-MASTER-ADDR-BY-NAME`).
    ///
    /// # Panics
    ///
    /// When a sentinel does not answer or the sentinels disagree.
    pub async fn primary_port(&self) -> u16 {
        match self.agreed_primary().await {
            Ok(port) => port,
            Err(why) => panic!("the sentinels do not agree on the primary: {why}"),
        }
    }

    /// Kills the data node on `port` with SIGKILL (no failover is awaited); `false` when the
    /// harness did not start it or it was killed before.
    pub fn kill(&mut self, port: u16) -> bool {
        match self.data.iter_mut().find(|n| n.port() == port) {
            Some(node) if node.is_running() => {
                node.kill();
                true
            }
            _ => false,
        }
    }

    /// Kills the current primary with SIGKILL and waits (at most [`FAILOVER_TIMEOUT`]) until
    /// every live sentinel names another node as the primary and that node answers `ROLE`
    /// with `master`.
    ///
    /// # Panics
    ///
    /// When the sentinels disagree before the kill, or the failover does not happen in time.
    pub async fn kill_primary(&mut self) -> SentinelFailover {
        let old = self.primary_port().await;
        assert!(
            self.kill(old),
            "the primary (port {old}) is not a running node of this set"
        );
        let started = Instant::now();
        let promoted = self.wait_promotion(old, false).await;
        SentinelFailover {
            old,
            promoted,
            elapsed: started.elapsed(),
        }
    }

    /// Asks a sentinel for a failover without a failure (`SENTINEL FAILOVER <name>`): the
    /// replica is promoted and the old primary, still running, is turned into its replica.
    /// Waits (at most [`FAILOVER_TIMEOUT`]) until every live sentinel names the new primary,
    /// it answers `ROLE` with `master` and the old one with `slave`.
    ///
    /// # Panics
    ///
    /// When the sentinels disagree before, refuse the failover, or it does not end in time.
    pub async fn manual_failover(&mut self) -> SentinelFailover {
        let old = self.primary_port().await;
        let sentinel = self
            .sentinels
            .iter()
            .find(|s| s.is_running())
            .unwrap_or_else(|| panic!("no sentinel is running"));
        let started = Instant::now();
        sentinel.cmd(&["SENTINEL", "FAILOVER", SERVICE_NAME]).await;
        let promoted = self.wait_promotion(old, true).await;
        SentinelFailover {
            old,
            promoted,
            elapsed: started.elapsed(),
        }
    }

    /// Waits until the sentinels agree on a primary other than `old` that says `master` (and,
    /// with `demoted`, `old` says `slave`).
    async fn wait_promotion(&self, old: u16, demoted: bool) -> u16 {
        wait_for(
            &format!("the sentinels to promote a replica of port {old}"),
            FAILOVER_TIMEOUT,
            || async {
                let port = self.agreed_primary().await?;
                if port == old {
                    return Err(format!("the sentinels still name port {old}"));
                }
                let role = |port: u16| async move {
                    let node = self
                        .data
                        .iter()
                        .find(|n| n.port() == port)
                        .ok_or_else(|| format!("unknown port {port}"))?;
                    match node.try_cmd(&["ROLE"]).await? {
                        Value::Array(items) => Ok(role_name(items.first())),
                        other => Err(format!("port {port} answers ROLE with {other:?}")),
                    }
                };
                let new_role = role(port).await?;
                if new_role != "master" {
                    return Err(format!("port {port} says it is a {new_role}"));
                }
                if demoted {
                    let old_role = role(old).await?;
                    if old_role != "slave" {
                        return Err(format!("the old primary {old} says it is a {old_role}"));
                    }
                }
                Ok(port)
            },
        )
        .await
    }

    /// The primary port every live sentinel names, or why not.
    async fn agreed_primary(&self) -> Result<u16, String> {
        let mut agreed = None;
        for sentinel in self.sentinels.iter().filter(|s| s.is_running()) {
            let value = sentinel
                .try_cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE_NAME])
                .await?;
            let (_host, port): (String, u16) =
                redis::from_redis_value(value).map_err(|e| e.to_string())?;
            match agreed {
                None => agreed = Some(port),
                Some(a) if a == port => {}
                Some(a) => {
                    return Err(format!(
                        "sentinel {} names port {port}, another {a}",
                        sentinel.port()
                    ))
                }
            }
        }
        agreed.ok_or_else(|| "no live sentinel".to_owned())
    }
}

/// The first element of a `ROLE` answer: `master`, `slave` or `sentinel`.
fn role_name(role: Option<&Value>) -> String {
    match role {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// A primary's or replica's arguments.
fn data_args(port: u16, dir: &std::path::Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        &dir.to_string_lossy(),
        "--save",
        "",
        "--appendonly",
        "no",
        // Replicas sync at once (Redis 7.0 waits 5 s for more replicas by default).
        "--repl-diskless-sync-delay",
        "0",
        "--daemonize",
        "no",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// A sentinel's config: it rewrites the file (known sentinels and replicas, epochs), so each
/// has its own, in its own directory.
fn sentinel_conf(port: u16, dir: &std::path::Path, primary_port: u16) -> String {
    format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         daemonize no\n\
         dir {dir}\n\
         sentinel resolve-hostnames no\n\
         sentinel monitor {SERVICE_NAME} 127.0.0.1 {primary_port} {QUORUM}\n\
         sentinel down-after-milliseconds {SERVICE_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {SERVICE_NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {SERVICE_NAME} 1\n",
        dir = dir.display()
    )
}

/// `SENTINEL MASTER <name>` of `sentinel`, as `field -> value`.
async fn sentinel_master(sentinel: &RedisProcess) -> Result<HashMap<String, String>, String> {
    let value = sentinel
        .try_cmd(&["SENTINEL", "MASTER", SERVICE_NAME])
        .await?;
    // RESP2: a flat array of field, value, ...; RESP3: a map.
    match value {
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    redis::from_redis_value(k).map_err(|e| e.to_string())?,
                    redis::from_redis_value(v).map_err(|e| e.to_string())?,
                ))
            })
            .collect(),
        Value::Array(items) => {
            let strings: Vec<String> =
                redis::from_redis_value(Value::Array(items)).map_err(|e| e.to_string())?;
            Ok(strings
                .chunks(2)
                .filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone())))
                .collect())
        }
        other => Err(format!("unexpected SENTINEL MASTER answer {other:?}")),
    }
}
