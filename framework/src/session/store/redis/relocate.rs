//! Renaming a record on a Redis Cluster, where the old and the new key (both drawn at
//! random) live in different hash slots, so that no one script may touch both.
//!
//! In three steps, each atomic on its own key, in an order that loses nothing if it stops
//! half-way: read the record (with its remaining lifetime), store it whole under the new
//! key (which nobody can know yet), then swap the old key for the forwarding marker only if
//! its version is still the one read. A commit that lands between the read and the swap
//! makes the swap refuse; the copy is deleted and the rename starts over. Stopped after the
//! copy, the old record is intact and the copy expires with its lifetime.

use redis::Value;

use super::client::{millis, Kind};
use super::{parse_record, RedisStore};
use crate::session::store::{StoreError, StoreKey, MOVED_TTL};

/// KEYS[1]: the record. Returns `{}` when it holds none, else `{version, pttl, fields}`.
pub(super) const READ: &str = r"
local v = redis.call('HGET', KEYS[1], '_v')
if not v then return {} end
return {v, redis.call('PTTL', KEYS[1]), redis.call('HGETALL', KEYS[1])}
";

/// KEYS[1]: the new key. ARGV: ttl ms (-1: none), then field/value pairs.
pub(super) const PLACE: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
";

/// KEYS[1]: the old key. ARGV: the version read, marker ttl ms, the new key's hash. Leaves
/// the marker (for no longer than the record had to live) if the version is unchanged.
pub(super) const RETIRE: &str = r"
if redis.call('HGET', KEYS[1], '_v') ~= ARGV[1] then return 0 end
local left = redis.call('PTTL', KEYS[1])
local ttl = tonumber(ARGV[2])
if left > 0 and left < ttl then ttl = left end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_m', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
";

/// How many times a rename starts over when commits keep landing under it.
const ATTEMPTS: usize = 5;

impl RedisStore {
    /// [`rename`](crate::session::store::SessionStore::rename) on a cluster (see the module
    /// docs).
    pub(super) async fn relocate(
        &self,
        from: &StoreKey,
        to: &StoreKey,
    ) -> Result<bool, StoreError> {
        for _ in 0..ATTEMPTS {
            let read: Vec<Value> = self
                .client
                .eval(&self.relocation.read, &[from.as_str()], Kind::Plain, |_| {})
                .await?;
            let [version, pttl, Value::Array(fields)] = read.as_slice() else {
                if read.is_empty() {
                    return Ok(false);
                }
                return Err(StoreError::Backend(
                    "unexpected answer reading a record to move".into(),
                ));
            };
            let corrupt = |e: redis::ParsingError| StoreError::Corrupt(e.to_string());
            let version: String = redis::from_redis_value(version.clone()).map_err(corrupt)?;
            let pttl: i64 = redis::from_redis_value(pttl.clone()).map_err(corrupt)?;
            // Only a record Rondo wrote is moved, field for field.
            parse_record(fields.clone())?;
            let fields: Vec<Vec<u8>> = fields
                .iter()
                .map(|f| redis::from_redis_value(f.clone()).map_err(corrupt))
                .collect::<Result<_, _>>()?;
            let () = self
                .client
                .eval(&self.relocation.place, &[to.as_str()], Kind::Plain, |c| {
                    c.arg(pttl.max(-1));
                    for field in fields {
                        c.arg(field);
                    }
                })
                .await
                .map(|_: i64| ())?;
            let retired: i64 = self
                .client
                .eval(
                    &self.relocation.retire,
                    &[from.as_str()],
                    Kind::Plain,
                    |c| {
                        c.arg(&version).arg(millis(MOVED_TTL)).arg(to.hash());
                    },
                )
                .await?;
            if retired == 1 {
                return Ok(true);
            }
            // A commit landed in between: drop the copy and read again.
            let mut del = redis::cmd("DEL");
            del.arg(to.as_str());
            self.client
                .query::<i64>(to.as_str(), Kind::Plain, &del)
                .await?;
        }
        Err(StoreError::Unavailable(
            "the session kept changing while its id was being rotated".into(),
        ))
    }
}

/// The three scripts of a rename on a cluster.
pub(super) struct Relocation {
    read: redis::Script,
    place: redis::Script,
    retire: redis::Script,
}

impl Relocation {
    pub(super) fn new() -> Self {
        Self {
            read: redis::Script::new(READ),
            place: redis::Script::new(PLACE),
            retire: redis::Script::new(RETIRE),
        }
    }
}
