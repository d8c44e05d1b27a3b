//! The durable queue: a Redis stream read through a consumer group.
//!
//! Keys, under the pool's prefix, for the stream named `jobs` (`[jobs] stream`):
//! `jobs:{jobs}` (the stream; entries hold `id`, `name`, `attempts`, `payload`),
//! `jobs:{jobs}:dead` (the dead-letter stream, the same fields plus `error` and
//! `failed_at`), `jobs:{jobs}:delayed` (a sorted set of retries by due time, each a hash
//! `jobs:{jobs}:delayed:{id}:{attempts}` holding the entry's fields). The braces are a hash
//! tag: on a Redis Cluster all the keys of one queue live in one slot, so the scripts below,
//! which touch several of them at once, run there as they do on one server.
//!
//! - Fetching is `XREADGROUP ... BLOCK` on a connection of its own (`RedisPool::dedicated`):
//!   a blocking read on a pooled multiplexed connection would hold up every session command
//!   behind it.
//! - Every change of an entry's fate is one Lua script that first `XACK`s it: only the first
//!   of two racing servers sees `XACK` answer 1, so an entry is retried, dead-lettered or
//!   put back at most once, and an entry acknowledged by its (slow) runner is never also
//!   re-queued by the server taking it over.
//! - A server renews the claim of its running entries (`XCLAIM ... JUSTID`) every third of
//!   `claim_timeout`; entries idle longer belonged to a server that died, and are taken over
//!   (`XAUTOCLAIM`) and re-queued as a new attempt.

use std::time::Duration;

use redis::{Script, Value};

use super::entry::{delivery, entry_list, fields, stream_entries, text};
use super::envelope::{failed, Delivery, Envelope, Outcome};
use super::error::JobsError;
use super::stats::Counters;
use crate::config::JobsConfig;
use crate::redis::{AnyConn, RedisPool};

/// The consumer group every server of the app joins.
const GROUP: &str = "rondo";
/// How long one blocking read waits for jobs.
const BLOCK: Duration = Duration::from_secs(2);
/// Entries taken over or promoted per maintenance round.
const SWEEP: usize = 64;

/// KEYS: stream, target, delayed set. ARGV: group, entry id, mode, number (dead-letter length
/// or due time), then field/value pairs. Returns 0 when the entry was no longer pending (its
/// fate was settled by someone else), else 1.
const SETTLE: &str = r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  if ARGV[3] == 'ack' then redis.call('XDEL', KEYS[1], ARGV[2]) end
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] == 'queue' then
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, 5))
elseif ARGV[3] == 'dead' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
elseif ARGV[3] == 'later' then
  redis.call('HSET', KEYS[2], unpack(ARGV, 5))
  redis.call('ZADD', KEYS[3], ARGV[4], KEYS[2])
end
return 1
";

/// KEYS: delayed set, stream. ARGV: now (ms), limit. Moves due retries onto the stream.
const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, key in ipairs(due) do
  local fields = redis.call('HGETALL', key)
  if #fields > 0 then redis.call('XADD', KEYS[2], '*', unpack(fields)) end
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], key)
end
return #due
";

/// The blocking reader's own connection; `None` until first use and after an error.
#[derive(Default)]
pub(crate) struct Reader(Option<AnyConn>);

pub(crate) struct RedisQueue {
    pool: RedisPool,
    stream: String,
    dead: String,
    delayed: String,
    consumer: String,
    dead_max: usize,
    pub(crate) claim_timeout: Duration,
    settle: Script,
    promote: Script,
}

impl RedisQueue {
    /// The queue on `pool`, joining (and creating) the consumer group.
    pub(crate) async fn new(
        pool: RedisPool,
        config: &JobsConfig,
        consumer: String,
    ) -> Result<Self, JobsError> {
        let stream = format!("{}jobs:{{{}}}", pool.config().prefix, config.stream);
        let queue = Self {
            dead: format!("{stream}:dead"),
            delayed: format!("{stream}:delayed"),
            stream,
            pool,
            consumer,
            dead_max: config.dead_letter_max_len,
            claim_timeout: config.claim_timeout,
            settle: Script::new(SETTLE),
            promote: Script::new(PROMOTE),
        };
        queue.ensure_group().await?;
        Ok(queue)
    }

    pub(crate) fn stream(&self) -> &str {
        &self.stream
    }

    pub(crate) fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Creates the group (reading from the stream's start, so jobs queued before any
    /// server started are run); an existing group is fine.
    async fn ensure_group(&self) -> Result<(), JobsError> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self.query::<Value>(cmd).await {
            Ok(_) => Ok(()),
            Err(JobsError::Unavailable(why)) if why.contains("BUSYGROUP") => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, JobsError> {
        let mut conn = self.pool.conn().await.map_err(unavailable)?;
        conn.run(|mut c| async move { cmd.query_async(&mut c).await })
            .await
            .map_err(unavailable)
    }

    pub(crate) async fn push(&self, job: &Envelope) -> Result<(), JobsError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.stream).arg("*");
        for (field, value) in fields(job) {
            cmd.arg(field).arg(value);
        }
        self.query::<Value>(cmd).await.map(drop)
    }

    /// New entries for this consumer, at most `max`, waiting up to [`BLOCK`] for one.
    pub(crate) async fn fetch(
        &self,
        reader: &mut Reader,
        max: usize,
    ) -> Result<Vec<Delivery>, JobsError> {
        let conn = match &reader.0 {
            Some(conn) => conn.clone(),
            None => {
                let conn = self.pool.dedicated().await.map_err(unavailable)?;
                reader.0.insert(conn).clone()
            }
        };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(&self.consumer);
        cmd.arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64);
        cmd.arg("STREAMS").arg(&self.stream).arg(">");
        let mut c = conn;
        let limit = BLOCK + self.pool.config().timeout;
        let read = match tokio::time::timeout(limit, cmd.query_async::<Value>(&mut c)).await {
            Ok(read) => read,
            Err(_) => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no answer to XREADGROUP in time",
            ))),
        };
        match read {
            Ok(value) => Ok(stream_entries(&value).into_iter().map(delivery).collect()),
            Err(err) => {
                if err.code() == Some("NOGROUP") {
                    // Redis lost its data (a restart without persistence): start over.
                    self.ensure_group().await?;
                } else {
                    reader.0 = None;
                }
                Err(unavailable(err))
            }
        }
    }

    /// Records the outcome of a run, atomically with its acknowledgement.
    pub(crate) async fn finish(
        &self,
        delivery: &Delivery,
        outcome: &Outcome,
    ) -> Result<(), JobsError> {
        let Some(tag) = &delivery.tag else {
            return Ok(());
        };
        let mut invocation = self.settle.prepare_invoke();
        invocation.key(&self.stream);
        let now = unix_ms();
        match outcome {
            Outcome::Ack => {
                invocation.key(&self.dead).key(&self.delayed);
                invocation.arg(GROUP).arg(tag).arg("ack").arg(0);
            }
            Outcome::Requeue => {
                invocation.key(&self.dead).key(&self.delayed);
                invocation.arg(GROUP).arg(tag).arg("queue").arg(0);
                for (field, value) in &delivery.raw {
                    invocation.arg(field.as_slice()).arg(value.as_slice());
                }
            }
            Outcome::Retry { job, delay } => {
                let hash = format!("{}:{}:{}", self.delayed, job.id, job.attempts);
                invocation.key(&hash).key(&self.delayed);
                let due = now.saturating_add(delay.as_millis() as u64);
                invocation.arg(GROUP).arg(tag).arg("later").arg(due);
                for (field, value) in fields(job) {
                    invocation.arg(field).arg(value);
                }
            }
            Outcome::Dead { reason } => {
                invocation.key(&self.dead).key(&self.delayed);
                invocation
                    .arg(GROUP)
                    .arg(tag)
                    .arg("dead")
                    .arg(self.dead_max);
                for (field, value) in &delivery.raw {
                    if field.as_slice() != b"error" && field.as_slice() != b"failed_at" {
                        invocation.arg(field.as_slice()).arg(value.as_slice());
                    }
                }
                invocation.arg("error").arg(reason.as_str());
                invocation.arg("failed_at").arg(now);
            }
        }
        let mut conn = self.pool.conn().await.map_err(unavailable)?;
        conn.run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Renews the claim of entries running here, so no other server takes them over.
    pub(crate) async fn renew(&self, tags: Vec<String>) -> Result<(), JobsError> {
        if tags.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(&self.stream).arg(GROUP).arg(&self.consumer).arg(0);
        cmd.arg(tags).arg("JUSTID");
        self.query::<Value>(cmd).await.map(drop)
    }

    /// Moves retries that are due onto the stream.
    pub(crate) async fn promote_due(&self) -> Result<(), JobsError> {
        let mut invocation = self.promote.prepare_invoke();
        invocation.key(&self.delayed).key(&self.stream);
        invocation.arg(unix_ms()).arg(SWEEP);
        let mut conn = self.pool.conn().await.map_err(unavailable)?;
        conn.run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Takes over entries of servers that stopped renewing their claim for
    /// `claim_timeout`: each goes back on the queue as a new attempt (or, out of
    /// attempts, to the dead-letter stream).
    pub(crate) async fn take_over(
        &self,
        config: &JobsConfig,
        counters: &Counters,
    ) -> Result<(), JobsError> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.stream).arg(GROUP).arg(&self.consumer);
        cmd.arg(self.claim_timeout.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(SWEEP);
        let value: Value = self.query(cmd).await?;
        let entries = match &value {
            Value::Array(parts) => parts.get(1).map(entry_list).unwrap_or_default(),
            _ => Vec::new(),
        };
        for entry in entries {
            let lost = delivery(entry);
            let outcome = match &lost.job {
                Ok(job) => {
                    tracing::warn!(job = %job.id, name = %job.name, "job of a stopped server taken over");
                    failed(config, job, "its server stopped while running it".into())
                }
                Err(why) => Outcome::Dead {
                    reason: format!("unreadable job entry: {why}"),
                },
            };
            let outcome = match outcome {
                // A lost run goes back at once: the server, not the job, failed.
                Outcome::Retry { job, .. } => {
                    let raw = fields(&job)
                        .into_iter()
                        .map(|(f, v)| (f.as_bytes().to_vec(), v))
                        .collect();
                    let again = Delivery { raw, ..lost };
                    Counters::bump(&counters.requeued);
                    self.finish(&again, &Outcome::Requeue).await?;
                    continue;
                }
                other => other,
            };
            Counters::bump(&counters.dead_lettered);
            self.finish(&lost, &outcome).await?;
        }
        Ok(())
    }

    /// At shutdown: entries still pending under this consumer (read but never run) go back
    /// on the queue; then the consumer leaves the group if nothing is left under it.
    pub(crate) async fn release(&self, counters: &Counters) {
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(&self.stream)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(SWEEP)
            .arg(&self.consumer);
        let ids: Vec<String> = match self.query::<Value>(cmd).await {
            Ok(Value::Array(rows)) => rows
                .iter()
                .filter_map(|row| match row {
                    Value::Array(cols) => cols.first().and_then(text),
                    _ => None,
                })
                .collect(),
            Ok(_) => Vec::new(),
            Err(err) => {
                tracing::warn!(error = %err, "pending jobs not released; other servers take them over after claim_timeout");
                return;
            }
        };
        if !ids.is_empty() {
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(&self.stream)
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(0)
                .arg(&ids);
            if let Ok(value) = self.query::<Value>(cmd).await {
                for entry in entry_list(&value) {
                    let pending = delivery(entry);
                    Counters::bump(&counters.requeued);
                    if let Err(err) = self.finish(&pending, &Outcome::Requeue).await {
                        tracing::warn!(error = %err, "a pending job was not released");
                    }
                }
            }
        }
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(&self.stream)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(&self.consumer);
        if let Ok(Value::Array(rows)) = self.query::<Value>(cmd).await {
            if rows.is_empty() {
                let mut cmd = redis::cmd("XGROUP");
                cmd.arg("DELCONSUMER")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg(&self.consumer);
                let _ = self.query::<Value>(cmd).await;
            }
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unavailable(err: impl std::fmt::Display) -> JobsError {
    JobsError::Unavailable(err.to_string())
}
