//! Where the records of temporary files live: Redis (with the sessions, when they are there)
//! or this process's memory.
//!
//! Redis layout, under the pool's prefix `P`:
//!
//! - `P` `files:{ID}`: a hash per file (`owner`, `owner_key`, `name`, `type`, `size`,
//!   `expires`, `disk`), with `EXPIREAT` at the file's expiry: Redis forgets the file by
//!   itself, on its own clock;
//! - `P` `files:owner:{HASH}`: a hash per owner (`HASH` is 32 hex digits of the owner's
//!   SHA-256), file id to `size:expires`, for the byte quota; expired entries are dropped
//!   whenever it is read, and the key expires with its last file;
//! - `P` `files:sweep`: a lock with the sweep interval as its TTL, so that one server in the
//!   group dispatches each sweep.
//!
//! Every script touches one key, so nothing here needs two keys in one Cluster slot. Time
//! is Redis' (`TIME`) for everything that expires, so servers with skewed clocks agree.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use redis::{FromRedisValue, Script};
use sha2::{Digest, Sha256};

use super::FilesError;
use crate::redis::{AnyConn, RedisFailure, RedisPool};
use crate::signed::unix_now;

/// KEYS: the owner's hash. ARGV: file id, size, ttl (seconds), quota. Drops expired
/// entries, then either records the file (`ok`, its expiry, the owner's bytes with it) or
/// refuses it (`over`, the owner's bytes).
const RESERVE: &str = r"
local now = tonumber(redis.call('TIME')[1])
local entries = redis.call('HGETALL', KEYS[1])
local used, latest = 0, 0
for i = 1, #entries, 2 do
  local size, expires = string.match(entries[i + 1], '^(%d+):(%d+)$')
  if size and tonumber(expires) > now then
    used = used + tonumber(size)
    latest = math.max(latest, tonumber(expires))
  else
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
if ARGV[1] == '' then return {'usage', tostring(used)} end
local size = tonumber(ARGV[2])
if used + size > tonumber(ARGV[4]) then return {'over', tostring(used)} end
local expires = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. expires)
redis.call('EXPIREAT', KEYS[1], math.max(latest, expires))
return {'ok', tostring(expires), tostring(used + size)}
";

/// KEYS: the file's hash. ARGV: expiry, then field/value pairs. Writes the record and its
/// expiry in one step.
const PUT: &str = r"
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return 1
";

/// A temporary file's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) id: String,
    /// The owner as the app named it.
    pub(crate) owner: String,
    /// [`owner_key`] of the owner.
    pub(crate) owner_key: String,
    pub(crate) name: String,
    pub(crate) content_type: String,
    pub(crate) size: u64,
    /// Unix second from which the file is gone.
    pub(crate) expires_at: u64,
    /// Its name in `{dir}/temp/`.
    pub(crate) disk: String,
}

/// The owner's key part: 32 hex digits of SHA-256, so any owner text fits a key.
pub(crate) fn owner_key(owner: &str) -> String {
    Sha256::digest(owner.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What [`Records::reserve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reservation {
    /// Recorded against the quota; the file expires at this Unix second.
    Granted { expires_at: u64 },
    /// The owner holds this many bytes already: the file does not fit.
    OverQuota { used: u64 },
}

/// The records, in Redis or in memory.
pub(crate) enum Records {
    Redis(RedisRecords),
    Memory(MemoryRecords),
}

pub(crate) struct RedisRecords {
    pool: RedisPool,
    reserve: Script,
    put: Script,
}

/// Records in memory, by the system clock. A short lock, never held across an await.
#[derive(Default)]
pub(crate) struct MemoryRecords {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    files: HashMap<String, Record>,
    /// Owner key to file id to (size, expiry).
    owners: HashMap<String, HashMap<String, (u64, u64)>>,
}

impl Records {
    pub(crate) fn redis(pool: RedisPool) -> Self {
        Self::Redis(RedisRecords {
            pool,
            reserve: Script::new(RESERVE),
            put: Script::new(PUT),
        })
    }

    pub(crate) fn memory() -> Self {
        Self::Memory(MemoryRecords::default())
    }

    /// Counts `size` bytes of file `id` against `owner`'s `quota` for `ttl_secs`, if they
    /// fit.
    pub(crate) async fn reserve(
        &self,
        owner_key: &str,
        id: &str,
        size: u64,
        ttl_secs: u64,
        quota: u64,
    ) -> Result<Reservation, FilesError> {
        match self {
            Self::Redis(r) => {
                let mut invocation = r.reserve.prepare_invoke();
                invocation
                    .key(r.owner(owner_key))
                    .arg(id)
                    .arg(size)
                    .arg(ttl_secs)
                    .arg(quota);
                let reply: Vec<String> = r
                    .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                    .await?;
                match reply.as_slice() {
                    [ok, expires, _] if ok == "ok" => Ok(Reservation::Granted {
                        expires_at: number(expires)?,
                    }),
                    [over, used] if over == "over" => Ok(Reservation::OverQuota {
                        used: number(used)?,
                    }),
                    _ => Err(FilesError::Corrupt(format!("unexpected reply {reply:?}"))),
                }
            }
            Self::Memory(m) => {
                let now = unix_now();
                let mut state = m.state.lock();
                let entries = state.owners.entry(owner_key.to_owned()).or_default();
                entries.retain(|_, (_, expires)| *expires > now);
                let used: u64 = entries.values().map(|(size, _)| size).sum();
                if used.saturating_add(size) > quota {
                    return Ok(Reservation::OverQuota { used });
                }
                let expires_at = now.saturating_add(ttl_secs);
                entries.insert(id.to_owned(), (size, expires_at));
                Ok(Reservation::Granted { expires_at })
            }
        }
    }

    /// The bytes `owner` holds now.
    pub(crate) async fn usage(&self, owner_key: &str) -> Result<u64, FilesError> {
        match self {
            Self::Redis(r) => {
                let mut invocation = r.reserve.prepare_invoke();
                invocation
                    .key(r.owner(owner_key))
                    .arg("")
                    .arg(0)
                    .arg(0)
                    .arg(0);
                let reply: Vec<String> = r
                    .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                    .await?;
                match reply.as_slice() {
                    [usage, used] if usage == "usage" => number(used),
                    _ => Err(FilesError::Corrupt(format!("unexpected reply {reply:?}"))),
                }
            }
            Self::Memory(m) => {
                let now = unix_now();
                let state = m.state.lock();
                Ok(state.owners.get(owner_key).map_or(0, |entries| {
                    entries
                        .values()
                        .filter(|(_, expires)| *expires > now)
                        .map(|(size, _)| size)
                        .sum()
                }))
            }
        }
    }

    /// Takes file `id` off `owner`'s quota.
    pub(crate) async fn release(&self, owner_key: &str, id: &str) -> Result<(), FilesError> {
        match self {
            Self::Redis(r) => {
                let key = r.owner(owner_key);
                r.run(|mut c| async move {
                    redis::cmd("HDEL")
                        .arg(&key)
                        .arg(id)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await
            }
            Self::Memory(m) => {
                if let Some(entries) = m.state.lock().owners.get_mut(owner_key) {
                    entries.remove(id);
                }
                Ok(())
            }
        }
    }

    /// Stores `record`, to expire at its expiry.
    pub(crate) async fn put(&self, record: &Record) -> Result<(), FilesError> {
        match self {
            Self::Redis(r) => {
                let mut invocation = r.put.prepare_invoke();
                invocation
                    .key(r.file(&record.id))
                    .arg(record.expires_at)
                    .arg("owner")
                    .arg(&record.owner)
                    .arg("owner_key")
                    .arg(&record.owner_key)
                    .arg("name")
                    .arg(&record.name)
                    .arg("type")
                    .arg(&record.content_type)
                    .arg("size")
                    .arg(record.size)
                    .arg("expires")
                    .arg(record.expires_at)
                    .arg("disk")
                    .arg(&record.disk);
                r.run(|mut c| async move { invocation.invoke_async::<()>(&mut c).await })
                    .await
            }
            Self::Memory(m) => {
                let mut state = m.state.lock();
                state.files.insert(record.id.clone(), record.clone());
                Ok(())
            }
        }
    }

    /// The record of file `id`, if it exists and has not expired.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<Record>, FilesError> {
        match self {
            Self::Redis(r) => {
                let key = r.file(id);
                let fields: HashMap<String, String> = r
                    .run(|mut c| async move {
                        redis::cmd("HGETALL").arg(&key).query_async(&mut c).await
                    })
                    .await?;
                if fields.is_empty() {
                    return Ok(None);
                }
                parse_record(id, &fields).map(Some)
            }
            Self::Memory(m) => {
                let now = unix_now();
                let mut state = m.state.lock();
                if state.files.get(id).is_some_and(|r| r.expires_at <= now) {
                    state.files.remove(id);
                }
                Ok(state.files.get(id).cloned())
            }
        }
    }

    /// Forgets file `id` (and takes it off its owner's quota); the record it had.
    pub(crate) async fn remove(&self, id: &str) -> Result<Option<Record>, FilesError> {
        let Some(record) = self.get(id).await? else {
            return Ok(None);
        };
        match self {
            Self::Redis(r) => {
                let key = r.file(id);
                r.run(|mut c| async move {
                    redis::cmd("DEL").arg(&key).query_async::<()>(&mut c).await
                })
                .await?;
            }
            Self::Memory(m) => {
                m.state.lock().files.remove(id);
            }
        }
        self.release(&record.owner_key, id).await?;
        Ok(Some(record))
    }

    /// Whether file `id` still has a record.
    pub(crate) async fn exists(&self, id: &str) -> Result<bool, FilesError> {
        match self {
            Self::Redis(r) => {
                let key = r.file(id);
                let n: u64 =
                    r.run(|mut c| async move {
                        redis::cmd("EXISTS").arg(&key).query_async(&mut c).await
                    })
                    .await?;
                Ok(n > 0)
            }
            Self::Memory(_) => Ok(self.get(id).await?.is_some()),
        }
    }

    /// The clock records expire by, in Unix seconds: Redis' (`TIME`), or the system's.
    pub(crate) async fn now(&self) -> Result<u64, FilesError> {
        match self {
            Self::Redis(r) => {
                let (secs, _micros): (u64, u64) = r
                    .run(|mut c| async move { redis::cmd("TIME").query_async(&mut c).await })
                    .await?;
                Ok(secs)
            }
            Self::Memory(_) => Ok(unix_now()),
        }
    }

    /// Whether this server should dispatch a sweep now: it took the group's lock for
    /// `every` (in memory, always).
    pub(crate) async fn claim_sweep(&self, every: Duration) -> Result<bool, FilesError> {
        match self {
            Self::Redis(r) => {
                let key = format!("{}files:sweep", r.pool.config().prefix);
                let millis = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1);
                let set: Option<String> = r
                    .run(|mut c| async move {
                        redis::cmd("SET")
                            .arg(&key)
                            .arg(1)
                            .arg("NX")
                            .arg("PX")
                            .arg(millis)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                Ok(set.is_some())
            }
            Self::Memory(_) => Ok(true),
        }
    }

    /// Whether the records are shared (Redis) rather than this process's.
    pub(crate) fn shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }
}

impl RedisRecords {
    fn file(&self, id: &str) -> String {
        format!("{}files:{{{id}}}", self.pool.config().prefix)
    }

    fn owner(&self, owner_key: &str) -> String {
        format!("{}files:owner:{{{owner_key}}}", self.pool.config().prefix)
    }

    /// Runs one operation on a pooled connection, within the pool's timeout.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, FilesError>
    where
        F: FnOnce(AnyConn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
        T: FromRedisValue,
    {
        let mut conn = self
            .pool
            .conn()
            .await
            .map_err(|e| FilesError::Unavailable(e.to_string()))?;
        conn.run(op).await.map_err(|err| match err {
            RedisFailure::Dropped(why) | RedisFailure::Unreachable(why) => {
                FilesError::Unavailable(why)
            }
            RedisFailure::Server(why) => FilesError::Corrupt(why),
        })
    }
}

fn parse_record(id: &str, fields: &HashMap<String, String>) -> Result<Record, FilesError> {
    let field = |name: &str| {
        fields
            .get(name)
            .cloned()
            .ok_or_else(|| FilesError::Corrupt(format!("file {id} has no `{name}` field")))
    };
    Ok(Record {
        id: id.to_owned(),
        owner: field("owner")?,
        owner_key: field("owner_key")?,
        name: field("name")?,
        content_type: field("type")?,
        size: number(&field("size")?)?,
        expires_at: number(&field("expires")?)?,
        disk: field("disk")?,
    })
}

fn number(text: &str) -> Result<u64, FilesError> {
    text.parse()
        .map_err(|_| FilesError::Corrupt(format!("not a number: {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_keys_are_fixed_length_hex() {
        let key = owner_key("room {blue} / ünïcode");
        assert_eq!(key.len(), 32);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(key, owner_key("room {red}"));
    }

    /// The memory records follow the quota rules: expired files stop counting, a file that
    /// does not fit is refused with the owner's usage, a released one frees its bytes.
    #[tokio::test]
    async fn memory_quota() -> Result<(), FilesError> {
        let records = Records::memory();
        let owner = owner_key("ann");
        assert!(matches!(
            records.reserve(&owner, "a", 60, 100, 100).await?,
            Reservation::Granted { .. }
        ));
        assert_eq!(
            records.reserve(&owner, "b", 41, 100, 100).await?,
            Reservation::OverQuota { used: 60 }
        );
        assert!(matches!(
            records.reserve(&owner, "b", 40, 100, 100).await?,
            Reservation::Granted { .. }
        ));
        assert_eq!(records.usage(&owner).await?, 100);
        records.release(&owner, "a").await?;
        assert_eq!(records.usage(&owner).await?, 40);
        assert!(matches!(
            records.reserve(&owner, "c", 0, 0, 100).await?,
            Reservation::Granted { .. }
        ));
        Ok(())
    }
}
