//! Storing new sessions, the three ways. A new session's key was just drawn at random, so
//! no other writer can know it and nothing needs checking:
//!
//! 1. **`RESTORE`** of the whole hash, with its TTL, in the serialization `DUMP` produces
//!    ([`dump`](super::dump)): one plain command, the cheapest for Redis (about 2.5 µs of its
//!    CPU, pipelined, against 3.5 µs for `MULTI`/`HSET`/`PEXPIRE`/`EXEC`; `bench/create_cost.sh`).
//! 2. **A script storing a batch** (`NEW_RECORDS`), where the server refuses `RESTORE` (an ACL
//!    without `@dangerous`): 4–5 µs per record; after one refusal, always.
//! 3. **A script storing one record** (`CREATE`) with a commit token, for a conditional
//!    commit at version 0 (a record that must not exist yet): the lean path of a commit.
//!
//! Ways 1 and 2 go out in batches of the records that are ready together
//! ([`batch`](super::batch)): one write and one read of replies per batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::{Script, Value};

use super::batch::Batcher;
use super::client::{commit_token, millis, Client, Kind};
use super::dump;
use crate::session::store::{Commit, Delta, StoreError, StoreKey};

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
redis.call('EXISTS', KEYS[1])
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

/// How new sessions are stored (see the module docs).
pub(super) struct Creator {
    create: Script,
    new_records: Script,
    /// New sessions stored together.
    batch: Batcher<NewRecord>,
    /// New sessions are stored by `RESTORE`; cleared for good once the server has refused
    /// it and the script stored the same records instead.
    restore: AtomicBool,
}

impl Creator {
    pub(super) fn new() -> Self {
        Self {
            create: Script::new(CREATE),
            new_records: Script::new(NEW_RECORDS),
            batch: Batcher::default(),
            restore: AtomicBool::new(true),
        }
    }

    /// Stores a new record, in a batch with the others ready now (ways 1 and 2).
    pub(super) async fn create(
        &self,
        client: &Client,
        key: &StoreKey,
        delta: &Delta,
        ttl: Duration,
        now: u64,
    ) -> Result<(), StoreError> {
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
        self.batch
            .run(record, |records| self.store(client, records))
            .await
    }

    /// Stores `records` (new sessions): one `RESTORE` each, pipelined, or where the server
    /// refuses that (an ACL without `@dangerous`, a server that does not read the format),
    /// one script call for all of them.
    async fn store(&self, client: &Client, records: Vec<Arc<NewRecord>>) -> Result<(), StoreError> {
        if !self.restore.load(Ordering::Relaxed) {
            return self.run_new_records(client, &records).await;
        }
        let Some(refusal) = self.restore_new(client, &records).await? else {
            return Ok(());
        };
        // Refused: whatever was refused is not stored. Were the script to fail too, the
        // cause is not RESTORE (out of memory, a read-only replica), so it is tried again.
        self.run_new_records(client, &records).await?;
        if self.restore.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = %refusal,
                "Redis refused RESTORE: new sessions are stored by a script from now on"
            );
        }
        Ok(())
    }

    /// Sends one `RESTORE` per record, in one pipeline (on a cluster, where one pipeline may
    /// not span hash slots, as separate commands sent together); returns the first refusal,
    /// if any.
    async fn restore_new(
        &self,
        client: &Client,
        records: &[Arc<NewRecord>],
    ) -> Result<Option<String>, StoreError> {
        let restores: Vec<redis::Cmd> = records.iter().map(|r| restore(r)).collect();
        let replies: Vec<redis::RedisResult<Value>> = if client.pool.is_cluster() {
            let sent = restores.iter().map(|cmd| {
                client
                    .attempt(move |mut c| async move { Ok(cmd.query_async::<Value>(&mut c).await) })
            });
            futures_util::future::try_join_all(sent).await?
        } else {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for cmd in restores {
                pipe.add_command(cmd);
            }
            let pipe = &pipe;
            client
                .attempt(|mut c| async move { pipe.query_async(&mut c).await })
                .await?
        };
        // BUSYKEY: the key, drawn at random, exists, so this very write landed before (the
        // pipeline ran again after a dropped connection, or its batch after a dropped leader).
        Ok(replies
            .into_iter()
            .filter_map(Result::err)
            .find(|err| err.code() != Some("BUSYKEY"))
            .map(|err| err.to_string()))
    }

    /// Stores `records` in one call of the `NEW_RECORDS` script (on a cluster, one call per
    /// record, sent together: a script's keys must share a hash slot).
    async fn run_new_records(
        &self,
        client: &Client,
        records: &[Arc<NewRecord>],
    ) -> Result<(), StoreError> {
        if client.pool.is_cluster() {
            let calls = records
                .iter()
                .map(|record| self.new_records_call(client, std::slice::from_ref(record)));
            futures_util::future::try_join_all(calls).await?;
            return Ok(());
        }
        self.new_records_call(client, records).await
    }

    async fn new_records_call(
        &self,
        client: &Client,
        records: &[Arc<NewRecord>],
    ) -> Result<(), StoreError> {
        let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
        let () = client
            .eval(&self.new_records, &keys, Kind::Plain, |c| {
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

    /// Stores a new record unless one exists (way 3): the lean path of `commit` with
    /// expected version 0.
    pub(super) async fn create_checked(
        &self,
        client: &Client,
        key: &StoreKey,
        delta: &Delta,
        ttl: Duration,
        now: u64,
    ) -> Result<Commit, StoreError> {
        let created: i64 = client
            .eval(&self.create, &[key.as_str()], Kind::Write, |c| {
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
}

/// The `RESTORE` that stores `record` whole, with its TTL.
fn restore(record: &NewRecord) -> redis::Cmd {
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
    let mut cmd = redis::cmd("RESTORE");
    cmd.arg(record.key.as_str())
        .arg(record.ttl)
        .arg(dump::hash(&fields));
    cmd
}
