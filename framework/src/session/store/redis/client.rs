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

impl Client {
    /// Runs `script` as one prebuilt `EVALSHA` command (one buffer, not a vector per
    /// argument), loading the script first on a server that does not know it yet.
    pub(super) async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: impl FnOnce(&mut redis::Cmd),
    ) -> Result<T, StoreError> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        args(&mut cmd);
        let cmd = &cmd;
        self.attempt(|mut c| async move {
            match cmd.query_async::<T>(&mut c).await {
                Err(err)
                    if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    script.load_async(&mut c).await?;
                    cmd.query_async::<T>(&mut c).await
                }
                other => other,
            }
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
        let mut dropped = None;
        for _ in 0..2 {
            let mut conn = self.pool.conn().await.map_err(unavailable)?;
            match conn.run(&op).await {
                Ok(value) => return Ok(value),
                Err(err @ RedisFailure::Dropped(_)) => dropped = Some(err),
                Err(err) => return Err(failure(err)),
            }
        }
        Err(failure(
            dropped.unwrap_or(RedisFailure::Unreachable("no attempt".into())),
        ))
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
