//! Running commands for the Redis store: one pooled connection per operation, retried once
//! on a fresh connection when Redis dropped the old one, scripts sent as `EVALSHA` and
//! loaded when the server does not know them, and Redis' failures turned into store errors.

use std::time::Duration;

use redis::Script;

use crate::redis::{AnyConn, PoolError, RedisFailure, RedisPool};
use crate::session::store::StoreError;

/// The store's way to Redis.
#[derive(Debug, Clone)]
pub(super) struct Client {
    pub(super) pool: RedisPool,
}

/// What a store command about one key carries with it, in the same round trip.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// A read that may vouch for a copy: tracked for this node (key tracking).
    Read,
    /// A write whose script ends with a read of the key: tracked too, and with
    /// `wait_replicas`, acknowledged only once replicated.
    Write,
    /// Neither (a write to a key no copy is vouched for by: deleted, renamed, new).
    Plain,
}

impl Client {
    /// Runs `script` about `keys[0]` (and the other keys, which share its hash slot) as one
    /// prebuilt `EVALSHA` command, loading the script first on a server that does not know
    /// it yet.
    pub(super) async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        kind: Kind,
        args: impl FnOnce(&mut redis::Cmd),
    ) -> Result<T, StoreError> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        args(&mut cmd);
        let cmd = &cmd;
        let key = keys.first().copied().unwrap_or_default();
        self.attempt_keyed(kind, |mut c, around| async move {
            match around.query::<T>(&mut c, key, cmd).await {
                Err(err)
                    if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    script.load_async(&mut c).await?;
                    around.query::<T>(&mut c, key, cmd).await
                }
                other => other,
            }
        })
        .await
    }

    /// Runs the command `cmd` about `key`, as a `kind`.
    pub(super) async fn query<T: redis::FromRedisValue>(
        &self,
        key: &str,
        kind: Kind,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.attempt_keyed(kind, |mut c, around| async move {
            around.query::<T>(&mut c, key, cmd).await
        })
        .await
    }

    /// Runs `op` on a pooled connection; when the connection turns out to have been closed
    /// (Redis restarted, or dropped an idle connection) it runs once more on a fresh one.
    /// Every operation here is safe to run twice: reads, touches, deletes and renames
    /// trivially, commits through their token.
    pub(super) async fn attempt<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(AnyConn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.attempt_keyed(Kind::Plain, |c, _| op(c)).await
    }

    /// [`attempt`](Self::attempt), with what a command of `kind` needs around it on the
    /// connection it got.
    async fn attempt_keyed<T, F, Fut>(&self, kind: Kind, op: F) -> Result<T, StoreError>
    where
        F: Fn(AnyConn, Around) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let mut dropped = None;
        for _ in 0..2 {
            let mut conn = self.pool.conn().await.map_err(unavailable)?;
            let around = Around {
                caching: conn.is_tracked() && !matches!(kind, Kind::Plain),
                wait: match kind {
                    Kind::Write => self.wait(),
                    Kind::Read | Kind::Plain => None,
                },
            };
            match conn.run(|c| op(c, around)).await {
                Ok(value) => return Ok(value),
                Err(err @ RedisFailure::Dropped(_)) => dropped = Some(err),
                Err(err) => return Err(failure(err)),
            }
        }
        Err(failure(
            dropped.unwrap_or(RedisFailure::Unreachable("no attempt".into())),
        ))
    }

    /// `wait_replicas`, and how long `WAIT` may take: the pool's timeout, less a margin for
    /// the write itself.
    fn wait(&self) -> Option<(u32, u64)> {
        let config = self.pool.config();
        (config.wait_replicas > 0).then(|| {
            let millis = u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX);
            (config.wait_replicas, (millis * 3 / 4).max(1))
        })
    }
}

/// How a write that `WAIT` found under-replicated is reported.
const NOT_REPLICATED: &str = "write not replicated in time";

/// What goes around a command in its round trip.
#[derive(Debug, Clone, Copy)]
pub(super) struct Around {
    /// `CLIENT CACHING YES` first: the command's reads are tracked for this node.
    caching: bool,
    /// `WAIT replicas timeout` after: the write is acknowledged once that many replicas
    /// have it.
    wait: Option<(u32, u64)>,
}

impl Around {
    /// Runs `cmd` about `key` with what goes around it, in one round trip.
    async fn query<T: redis::FromRedisValue>(
        self,
        conn: &mut AnyConn,
        key: &str,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        if !self.caching && self.wait.is_none() {
            return cmd.query_async(conn).await;
        }
        let mut pipe = redis::pipe();
        if self.caching {
            pipe.cmd("CLIENT").arg("CACHING").arg("YES");
        }
        pipe.add_command(cmd.clone());
        if let Some((replicas, millis)) = self.wait {
            pipe.cmd("WAIT").arg(replicas).arg(millis);
        }
        let count = usize::from(self.caching) + 1 + usize::from(self.wait.is_some());
        let mut replies = conn
            .pipeline_on_node_of(key, &pipe, count)
            .await?
            .into_iter();
        let missing = || redis::RedisError::from((redis::ErrorKind::Parse, "missing reply"));
        if self.caching {
            replies.next().ok_or_else(missing)?.extract_error()?;
        }
        let value = replies.next().ok_or_else(missing)?.extract_error()?;
        if let Some((replicas, millis)) = self.wait {
            let acked: i64 = redis::from_redis_value(replies.next().ok_or_else(missing)?)
                .map_err(redis::RedisError::from)?;
            if acked < i64::from(replicas) {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    NOT_REPLICATED,
                    format!(
                        "applied on the primary but acknowledged by {acked} of {replicas} \
                         replicas within {millis} ms (wait_replicas)"
                    ),
                )));
            }
        }
        Ok(redis::from_redis_value(value)?)
    }
}

pub(super) fn unavailable(err: PoolError) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

/// Redis could not be reached (503, retry later), or answered with an error: a key that is
/// not a hash (`WRONGTYPE`) is data Rondo did not write, so it is corrupt, not an outage.
pub(super) fn failure(err: RedisFailure) -> StoreError {
    match err {
        RedisFailure::Dropped(message) | RedisFailure::Unreachable(message) => {
            StoreError::Unavailable(message)
        }
        // Applied, but not known to survive a failover: the caller must not take it as
        // acknowledged (a retry finds it applied, through its commit token).
        RedisFailure::Server(message) if message.contains(NOT_REPLICATED) => {
            StoreError::Unavailable(message)
        }
        RedisFailure::Server(message) if message.contains("WRONGTYPE") => {
            StoreError::Corrupt(message)
        }
        RedisFailure::Server(message) => StoreError::Backend(message),
    }
}

/// A token naming one commit, so that its retry can be recognised: unique per process
/// (a counter) and between processes (a random start).
pub(super) fn commit_token() -> u64 {
    static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU64> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // Without randomness the start is the clock: tokens only need to differ.
        let seed = match getrandom::fill(&mut bytes) {
            Ok(()) => u64::from_le_bytes(bytes),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        };
        std::sync::atomic::AtomicU64::new(seed)
    });
    next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub(super) fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
