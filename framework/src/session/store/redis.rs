//! The Redis store: one hash per session, versioned commits in one round trip.
//!
//! Layout of `{prefix}session:{sha256(id)}`: a field `d:{key}` per data key (MessagePack
//! bytes), `_v` the version, `_c` the creation time, `_r` the last expiry refresh (Unix
//! seconds) and `_t` the token of the last commit (absent until the first). Commits are Lua
//! scripts (sent as one EVALSHA each), so a commit checks the version, applies the delta,
//! bumps the version and sets the TTL atomically. A new session, which no other writer can
//! know yet, needs no checks: it is stored by `RESTORE` of the whole hash with its TTL (one
//! plain command, see [`dump`](super::dump)), or, where the server refuses that, by a lean
//! script. Reads are plain commands: `HGET _v`, and `HGETALL` only when the version moved.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{Script, Value};

use super::batch::Batcher;
use super::dump;
use super::{Commit, Delta, Loaded, Record, SessionStore, StoreError};
use crate::handler::BoxFuture;
use crate::redis_pool::{PoolError, RedisFailure, RedisPool};
use crate::session::id::StoreKey;

/// KEYS: new records, each under a key just drawn at random (so nothing can be there: no
/// existence check, no token). ARGV, per key in turn: ttl ms, now, the number of data
/// fields, then that many field/value pairs.
const NEW_RECORDS: &str = r"
local i = 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[i + 2])
  redis.call('HSET', KEYS[k], '_v', 1, '_c', ARGV[i + 1], '_r', ARGV[i + 1], unpack(ARGV, i + 3, i + 2 + 2 * n))
  redis.call('PEXPIRE', KEYS[k], ARGV[i])
  i = i + 3 + 2 * n
end
";

/// ARGV: ttl ms, now, commit token, then field/value pairs. Creates the record unless one
/// exists (1, or 1 again for this commit's own retry), else -1.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], '_t') == ARGV[3] then return 1 end
  return -1
end
redis.call('HSET', KEYS[1], '_v', 1, '_c', ARGV[2], '_r', ARGV[2], '_t', ARGV[3], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

/// ARGV: expected version, ttl ms, now, commit token, number of sets, then field/value pairs,
/// then fields to delete. Returns the new version, or -1 on a version mismatch. A commit whose
/// token is already stored one version up has landed before (a retry after a dropped
/// connection) and answers as if applied now, so a retry never applies a delta twice.
const COMMIT: &str = r"
local meta = redis.call('HMGET', KEYS[1], '_v', '_t')
local current = tonumber(meta[1] or '0')
local expected = tonumber(ARGV[1])
if current ~= expected then
  if current == expected + 1 and meta[2] == ARGV[4] then return current end
  return -1
end
local fields = {'_v', current + 1, '_r', ARGV[3], '_t', ARGV[4]}
if current == 0 then fields[7] = '_c'; fields[8] = ARGV[3] end
local dels = 6 + 2 * tonumber(ARGV[5])
for i = 6, dels - 1 do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if dels <= #ARGV then redis.call('HDEL', KEYS[1], unpack(ARGV, dels, #ARGV)) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return current + 1
";

/// ARGV: ttl ms, now. Returns 1 when the record exists (a forwarding marker is none).
const TOUCH: &str = r"
if redis.call('HEXISTS', KEYS[1], '_v') == 0 then return 0 end
redis.call('HSET', KEYS[1], '_r', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

/// RENAME keeps the TTL; the old key then holds only `_m`, the new key's hash, for ARGV[1] ms
/// at most (and no longer than the record had left). Returns 0 when the source holds no
/// record.
const RENAME: &str = r"
if redis.call('HEXISTS', KEYS[1], '_v') == 0 then return 0 end
local left = redis.call('PTTL', KEYS[1])
redis.call('RENAME', KEYS[1], KEYS[2])
local ttl = tonumber(ARGV[1])
if left > 0 and left < ttl then ttl = left end
redis.call('HSET', KEYS[1], '_m', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
";

/// A new session waiting to be stored.
#[derive(Debug)]
struct NewRecord {
    key: StoreKey,
    /// Milliseconds.
    ttl: u64,
    now: u64,
    /// `d:{key}` and the value, per data key.
    fields: Vec<(String, Bytes)>,
}

/// Session records in Redis.
pub struct RedisStore {
    pool: RedisPool,
    create: Script,
    new_records: Script,
    /// New sessions stored together ([`batch`](super::batch)).
    new_batch: Batcher<NewRecord>,
    /// New sessions are stored by `RESTORE`; cleared for good once the server has refused
    /// it and the script stored the same records instead.
    restore: AtomicBool,
    commit: Script,
    touch: Script,
    rename: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("pool", &self.pool)
            .finish()
    }
}

impl RedisStore {
    /// A store on `pool`; keys get the pool's `prefix`.
    pub fn new(pool: RedisPool) -> Self {
        Self {
            pool,
            create: Script::new(CREATE),
            new_records: Script::new(NEW_RECORDS),
            new_batch: Batcher::default(),
            restore: AtomicBool::new(true),
            commit: Script::new(COMMIT),
            touch: Script::new(TOUCH),
            rename: Script::new(RENAME),
        }
    }

    /// The pool it uses.
    pub fn pool(&self) -> &RedisPool {
        &self.pool
    }

    /// Stores `records` (new sessions): one `RESTORE` each, pipelined, or where the server
    /// refuses that (an ACL without `@dangerous`, a server that does not read the format),
    /// one script call for all of them.
    async fn store_new(&self, records: Vec<std::sync::Arc<NewRecord>>) -> Result<(), StoreError> {
        if !self.restore.load(Ordering::Relaxed) {
            return self.run_new_records(&records).await;
        }
        let Some(refusal) = self.restore_new(&records).await? else {
            return Ok(());
        };
        // Refused: whatever was refused is not stored. Were the script to fail too, the
        // cause is not RESTORE (out of memory, a read-only replica), so it is tried again.
        self.run_new_records(&records).await?;
        if self.restore.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = %refusal,
                "Redis refused RESTORE: new sessions are stored by a script from now on"
            );
        }
        Ok(())
    }

    /// Sends one `RESTORE` per record in one pipeline; returns the first refusal, if any.
    async fn restore_new(
        &self,
        records: &[std::sync::Arc<NewRecord>],
    ) -> Result<Option<String>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for record in records {
            let now = record.now.to_string();
            let mut fields: Vec<(&[u8], &[u8])> = Vec::with_capacity(3 + record.fields.len());
            fields.extend([
                (&b"_v"[..], &b"1"[..]),
                (b"_c", now.as_bytes()),
                (b"_r", now.as_bytes()),
            ]);
            fields.extend(
                record
                    .fields
                    .iter()
                    .map(|(field, value)| (field.as_bytes(), value.as_ref())),
            );
            let payload = dump::hash(&fields);
            pipe.cmd("RESTORE")
                .arg(record.key.as_str())
                .arg(record.ttl)
                .arg(payload);
        }
        let pipe = &pipe;
        let replies: Vec<redis::RedisResult<Value>> = self
            .attempt(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        // BUSYKEY: the key, drawn at random, exists, so this very write landed before (the
        // pipeline ran again after a dropped connection, or its batch after a dropped leader).
        Ok(replies
            .into_iter()
            .filter_map(Result::err)
            .find(|err| err.code() != Some("BUSYKEY"))
            .map(|err| err.to_string()))
    }

    /// Stores `records` in one call of the `NEW_RECORDS` script.
    async fn run_new_records(
        &self,
        records: &[std::sync::Arc<NewRecord>],
    ) -> Result<(), StoreError> {
        let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
        let () = self
            .eval(&self.new_records, &keys, |c| {
                for record in records {
                    c.arg(record.ttl).arg(record.now).arg(record.fields.len());
                    for (field, value) in &record.fields {
                        c.arg(field.as_str()).arg(value.as_ref());
                    }
                }
            })
            .await?;
        Ok(())
    }

    /// Stores a new record: the lean path of `commit` with expected version 0.
    async fn create(
        &self,
        key: &StoreKey,
        delta: &Delta,
        ttl: Duration,
        now: u64,
    ) -> Result<Commit, StoreError> {
        let created: i64 = self
            .eval(&self.create, &[key.as_str()], |c| {
                c.arg(millis(ttl)).arg(now).arg(commit_token());
                for (k, v) in &delta.set {
                    c.arg(format!("d:{k}")).arg(v.as_ref());
                }
            })
            .await?;
        Ok(if created == 1 {
            Commit::Done { version: 1 }
        } else {
            Commit::Conflict
        })
    }

    /// Runs `script` as one prebuilt `EVALSHA` command (one buffer, not a vector per
    /// argument), loading the script first on a server that does not know it yet.
    async fn eval<T: redis::FromRedisValue>(
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
    async fn attempt<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(MultiplexedConnection) -> Fut,
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

fn unavailable(err: PoolError) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

/// Redis could not be reached (503, retry later), or answered with an error: a key that is
/// not a hash (`WRONGTYPE`) is data Rondo did not write, so it is corrupt, not an outage.
fn failure(err: RedisFailure) -> StoreError {
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
fn commit_token() -> u64 {
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

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Turns HGETALL's flat array at `key` into what is stored there: a record, or the marker a
/// rename left; anything Rondo did not write is `Corrupt`.
fn parse_loaded(key: &StoreKey, fields: Vec<Value>) -> Result<Loaded, StoreError> {
    if let [Value::BulkString(name), Value::BulkString(hash)] = fields.as_slice() {
        if name == b"_m" {
            return std::str::from_utf8(hash)
                .ok()
                .and_then(|hash| key.with_hash(hash))
                .map(Loaded::Moved)
                .ok_or_else(|| StoreError::Corrupt("malformed forwarding marker".into()));
        }
    }
    parse_record(fields).map(Loaded::Record)
}

/// Turns HGETALL's flat array into a record; anything Rondo did not write is `Corrupt`.
pub(crate) fn parse_record(fields: Vec<Value>) -> Result<Record, StoreError> {
    fn text(value: &Value) -> Option<&[u8]> {
        match value {
            Value::BulkString(b) => Some(b),
            Value::SimpleString(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
    fn number(raw: &[u8], name: &str) -> Result<u64, StoreError> {
        std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("field {name} is not a number")))
    }
    let mut record = Record::default();
    let mut iter = fields.iter();
    while let (Some(name), Some(value)) = (iter.next(), iter.next()) {
        let (Some(name), Some(value)) = (text(name), text(value)) else {
            return Err(StoreError::Corrupt("unexpected value type".into()));
        };
        match name {
            b"_v" => record.version = number(value, "_v")?,
            b"_c" => record.created = number(value, "_c")?,
            b"_r" => record.refreshed = number(value, "_r")?,
            b"_t" => {}
            _ => match name.strip_prefix(b"d:") {
                Some(key) => {
                    let key = String::from_utf8(key.to_vec())
                        .map_err(|_| StoreError::Corrupt("a data key is not UTF-8".into()))?;
                    record.data.insert(key, Bytes::copy_from_slice(value));
                }
                None => return Err(StoreError::Corrupt("unknown field".into())),
            },
        }
    }
    if record.version == 0 {
        return Err(StoreError::Corrupt("no version".into()));
    }
    Ok(record)
}

impl SessionStore for RedisStore {
    fn version<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move {
            let key = key.as_str();
            let stored: Option<String> = self
                .attempt(|mut c| async move {
                    redis::cmd("HGET")
                        .arg(key)
                        .arg("_v")
                        .query_async(&mut c)
                        .await
                })
                .await?;
            match stored {
                None => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| StoreError::Corrupt("field _v is not a number".into())),
            }
        })
    }

    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
        known_version: u64,
    ) -> BoxFuture<'a, Result<Loaded, StoreError>> {
        Box::pin(async move {
            // Plain commands, not a script: a read is the common case, and a Lua call costs
            // Redis several times an HGET. The version first; the record only if it moved.
            if known_version != 0 {
                let name = key.as_str();
                let (version, moved): (Option<String>, Option<String>) = self
                    .attempt(|mut c| async move {
                        redis::cmd("HMGET")
                            .arg(name)
                            .arg("_v")
                            .arg("_m")
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                match (version.map(|v| v.parse::<u64>()), moved) {
                    (Some(Ok(v)), _) if v == known_version => return Ok(Loaded::Unchanged),
                    (None, None) => return Ok(Loaded::Missing),
                    (None, Some(hash)) => {
                        return key.with_hash(&hash).map(Loaded::Moved).ok_or_else(|| {
                            StoreError::Corrupt("malformed forwarding marker".into())
                        })
                    }
                    _ => {}
                }
            }
            let key_ref = key;
            let key = key.as_str();
            let fields: Value = self
                .attempt(
                    |mut c| async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await },
                )
                .await?;
            let fields = match fields {
                Value::Array(fields) => fields,
                Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => {
                    return Err(StoreError::Backend(format!(
                        "unexpected HGETALL answer {other:?}"
                    )))
                }
            };
            if fields.is_empty() {
                return Ok(Loaded::Missing);
            }
            parse_loaded(key_ref, fields)
        })
    }

    fn commit<'a>(
        &'a self,
        key: &'a StoreKey,
        delta: &'a Delta,
        expected: u64,
        ttl: Duration,
        now: u64,
    ) -> BoxFuture<'a, Result<Commit, StoreError>> {
        Box::pin(async move {
            if expected == 0 {
                return self.create(key, delta, ttl, now).await;
            }
            let version: i64 = self
                .eval(&self.commit, &[key.as_str()], |c| {
                    c.arg(expected)
                        .arg(millis(ttl))
                        .arg(now)
                        .arg(commit_token())
                        .arg(delta.set.len());
                    for (k, v) in &delta.set {
                        c.arg(format!("d:{k}")).arg(v.as_ref());
                    }
                    for k in &delta.remove {
                        c.arg(format!("d:{k}"));
                    }
                })
                .await?;
            Ok(u64::try_from(version).map_or(Commit::Conflict, |version| Commit::Done { version }))
        })
    }

    /// New sessions go out in batches (`batch::Batcher`) of the ones that are ready
    /// together: one pipeline with a `RESTORE` per record, each storing the whole hash with
    /// its TTL at once, so no record is ever stored without one. Pipelined, Redis spends
    /// about 2.5 µs of CPU on a `RESTORE`, 3.5 µs on `MULTI`/`HSET`/`PEXPIRE`/`EXEC` and
    /// 4–5 µs per record on the `NEW_RECORDS` script, which remains for servers that refuse
    /// `RESTORE` (`bench/create_cost.sh`); the client sends one write and reads the replies
    /// once per batch.
    fn create<'a>(
        &'a self,
        key: &'a StoreKey,
        delta: &'a Delta,
        ttl: Duration,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let record = NewRecord {
            key: key.clone(),
            ttl: millis(ttl),
            now,
            fields: delta
                .set
                .iter()
                .map(|(k, v)| (format!("d:{k}"), v.clone()))
                .collect(),
        };
        Box::pin(
            self.new_batch
                .run(record, |records| self.store_new(records)),
        )
    }

    fn touch<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
        now: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let touched: i64 = self
                .eval(&self.touch, &[key.as_str()], |c| {
                    c.arg(millis(ttl)).arg(now);
                })
                .await?;
            Ok(touched == 1)
        })
    }

    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = key.as_str();
            self.attempt(|mut c| async move {
                redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await
            })
            .await
        })
    }

    fn rename<'a>(
        &'a self,
        from: &'a StoreKey,
        to: &'a StoreKey,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let moved: i64 = self
                .eval(&self.rename, &[from.as_str(), to.as_str()], |c| {
                    c.arg(millis(super::MOVED_TTL)).arg(to.hash());
                })
                .await?;
            Ok(moved == 1)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.attempt(
                |mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await },
            )
            .await
            .map(drop)
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn redis_pool(&self) -> Option<&RedisPool> {
        Some(&self.pool)
    }
}
