//! The Redis store: one hash per session, versioned commits in one round trip.
//!
//! Layout of `{prefix}session:{sha256(id)}`: a field `d:{key}` per data key (MessagePack
//! bytes), `_v` the version, `_c` the creation time, `_r` the last expiry refresh (Unix
//! seconds) and `_t` the token of the last commit (absent until the first). Commits are Lua
//! scripts (sent as one EVALSHA each), so a commit checks the version, applies the delta,
//! bumps the version and sets the TTL atomically. A new session, which no other writer can
//! know yet, needs no checks: it is stored by `RESTORE` of the whole hash with its TTL (one
//! plain command), or, where the server refuses that, by a script: the three ways are in
//! [`create`]. Reads are plain commands: `HGET _v`, and `HGETALL` only when the version moved.

mod batch;
mod client;
mod create;
mod dump;
mod relocate;

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use redis::{Script, Value};

use self::client::{commit_token, millis, Client, Kind};
use self::create::Creator;
use super::{Backend, Commit, Delta, Loaded, Record, SessionStore, StoreError, StoreKey};
use crate::redis::RedisPool;

/// ARGV: expected version, ttl ms, now, commit token, number of sets, then field/value pairs,
/// then fields to delete. Returns the new version, or -1 on a version mismatch. A commit whose
/// token is already stored one version up has landed before (a retry after a dropped
/// connection) and answers as if applied now, so a retry never applies a delta twice.
///
/// The last command reads the key: with key tracking, a write ends Redis' tracking of the
/// key for everyone, and this node's own write is not echoed back to it (`NOLOOP`), so the
/// read after it is what keeps the key tracked for the writer (see `session::tracking`).
/// The scripts that write a live record (`TOUCH`, `CREATE`) end the same way.
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
redis.call('EXISTS', KEYS[1])
return current + 1
";

/// ARGV: ttl ms, now. Returns 1 when the record exists (a forwarding marker is none).
const TOUCH: &str = r"
if redis.call('HEXISTS', KEYS[1], '_v') == 0 then return 0 end
redis.call('HSET', KEYS[1], '_r', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('EXISTS', KEYS[1])
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

/// Session records in Redis.
pub struct RedisStore {
    client: Client,
    /// New sessions ([`create`]).
    creator: Creator,
    commit: Script,
    touch: Script,
    rename: Script,
    /// Renames on a cluster ([`relocate`]).
    relocation: relocate::Relocation,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("pool", &self.client.pool)
            .finish()
    }
}

impl RedisStore {
    /// A store on `pool`; keys get the pool's `prefix`.
    pub fn new(pool: RedisPool) -> Self {
        Self {
            client: Client { pool },
            creator: Creator::new(),
            commit: Script::new(COMMIT),
            touch: Script::new(TOUCH),
            rename: Script::new(RENAME),
            relocation: relocate::Relocation::new(),
        }
    }

    /// The pool it uses.
    pub fn pool(&self) -> &RedisPool {
        &self.client.pool
    }
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
            let mut cmd = redis::cmd("HGET");
            cmd.arg(key.as_str()).arg("_v");
            let stored: Option<String> = self.client.query(key.as_str(), Kind::Read, &cmd).await?;
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
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(key.as_str()).arg("_v").arg("_m");
                let (version, moved): (Option<String>, Option<String>) =
                    self.client.query(key.as_str(), Kind::Read, &cmd).await?;
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
            let mut cmd = redis::cmd("HGETALL");
            cmd.arg(key.as_str());
            let fields: Value = self.client.query(key.as_str(), Kind::Read, &cmd).await?;
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
            parse_loaded(key, fields)
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
                return self
                    .creator
                    .create_checked(&self.client, key, delta, ttl, now)
                    .await;
            }
            let version: i64 = self
                .client
                .eval(&self.commit, &[key.as_str()], Kind::Write, |c| {
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

    /// New sessions go out in batches of the ones that are ready together (see
    /// the `create` module): one pipeline with a `RESTORE` per record, each storing the
    /// whole hash with its TTL at once, so no record is ever stored without one.
    fn create<'a>(
        &'a self,
        key: &'a StoreKey,
        delta: &'a Delta,
        ttl: Duration,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.creator.create(&self.client, key, delta, ttl, now))
    }

    fn touch<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
        now: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let touched: i64 = self
                .client
                .eval(&self.touch, &[key.as_str()], Kind::Write, |c| {
                    c.arg(millis(ttl)).arg(now);
                })
                .await?;
            Ok(touched == 1)
        })
    }

    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = key.as_str();
            self.client
                .attempt(|mut c| async move {
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
            if self.client.pool.is_cluster() {
                return self.relocate(from, to).await;
            }
            let moved: i64 = self
                .client
                .eval(
                    &self.rename,
                    &[from.as_str(), to.as_str()],
                    Kind::Plain,
                    |c| {
                        c.arg(millis(super::MOVED_TTL)).arg(to.hash());
                    },
                )
                .await?;
            Ok(moved == 1)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.client
                .attempt(
                    |mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await },
                )
                .await
                .map(drop)
        })
    }

    fn backend(&self) -> Backend {
        Backend::Redis
    }
}
