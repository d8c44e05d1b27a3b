//! Session stores: where session records live between requests.
//!
//! A record is a map of data keys to MessagePack bytes plus a version. Every change is a
//! [`Delta`] (changed keys only) committed on the condition that the stored version is still
//! the one the writer read; a mismatch is a [`Commit::Conflict`] and the writer reloads and
//! replays. That one rule is what keeps concurrent writers on several servers exact.
//!
//! Two stores share one contract and one test suite: [`RedisStore`] (shared, durable) and
//! [`MemoryStore`] (in-process, for development and tests).

mod key;
mod memory;
mod redis;

pub use self::key::StoreKey;
pub use self::memory::MemoryStore;
/// For the record-decoding fuzz target (`session::fuzzing`).
pub(crate) use self::redis::parse_record;
pub use self::redis::RedisStore;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

/// A stored session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// Data keys and their MessagePack-encoded values.
    pub data: HashMap<String, Bytes>,
    /// Bumped by every data commit; 0 means "not stored".
    pub version: u64,
    /// When the session was first stored (Unix seconds), for the absolute lifetime.
    pub created: u64,
    /// When its expiry was last refreshed (Unix seconds), for sliding expiry.
    pub refreshed: u64,
}

/// What [`SessionStore::load`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// No such session (never stored, expired or deleted).
    Missing,
    /// The stored version is the one the caller already holds.
    Unchanged,
    /// The whole record.
    Record(Record),
    /// The session was given a new id ([`SessionStore::rename`]) and now lives at this key;
    /// the old key only says so, for a while ([`MOVED_TTL`]), so that changes acknowledged
    /// under the old id just before the move can follow it.
    Moved(StoreKey),
}

/// How long a renamed record leaves a forwarding marker at its old key (at most: never
/// longer than the record itself had to live). It only has to outlast the commits that were
/// already under way when the id rotated; reads never follow it.
pub const MOVED_TTL: Duration = Duration::from_secs(60);

/// Changed keys of one commit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// Keys to set.
    pub set: Vec<(String, Bytes)>,
    /// Keys to remove.
    pub remove: Vec<String>,
}

impl Delta {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// `loaded`, unless a value of its record is not exactly one well-formed MessagePack value
/// (a truncated or overwritten field): then the record is `Corrupt`, so the session layer
/// starts a fresh session instead of failing every `get` of that key with a 500. Stores keep
/// values as opaque bytes; this is the session layer's check, made once per full load.
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the first malformed key.
pub(crate) fn msgpack_values(loaded: Loaded) -> Result<Loaded, StoreError> {
    if let Loaded::Record(record) = &loaded {
        if let Some((key, _)) = record.data.iter().find(|(_, v)| !is_one_msgpack_value(v)) {
            return Err(StoreError::Corrupt(format!(
                "the value of {key:?} is not MessagePack"
            )));
        }
    }
    Ok(loaded)
}

/// Whether `bytes` holds exactly one complete MessagePack value, nothing after it.
fn is_one_msgpack_value(bytes: &[u8]) -> bool {
    use serde::Deserialize;
    let mut rest = bytes;
    let mut de = rmp_serde::Deserializer::new(&mut rest);
    serde::de::IgnoredAny::deserialize(&mut de).is_ok() && rest.is_empty()
}

/// The outcome of a conditional commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Applied; the record now has this version.
    Done {
        /// The new version.
        version: u64,
    },
    /// The stored version was not the expected one (another writer, or the session is gone).
    Conflict,
}

/// A store operation failed; the session layer answers 503.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had within the timeout (store down or pool exhausted).
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The store answered, but not as expected.
    #[error("session store error: {0}")]
    Backend(String),
    /// The stored record is not one Rondo wrote (corrupted or foreign data).
    #[error("corrupt session record: {0}")]
    Corrupt(String),
}

/// Storage for session records.
///
/// Implementations must make `commit` atomic: check the version, apply the delta, bump the
/// version, set the expiry, all or nothing.
pub trait SessionStore: Send + Sync + 'static {
    /// The stored version of a record (`None`: no such record), the cheapest way to tell
    /// whether a copy in memory is current.
    fn version<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<u64>, StoreError>>;

    /// Loads a record; `known_version` lets the store answer [`Loaded::Unchanged`] without
    /// sending the data again.
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
        known_version: u64,
    ) -> BoxFuture<'a, Result<Loaded, StoreError>>;

    /// Applies `delta` if the stored version is `expected` (0: only if no record exists),
    /// bumps the version, stamps `now` as refreshed (and as created for a new record) and
    /// sets the expiry to `ttl`.
    fn commit<'a>(
        &'a self,
        key: &'a StoreKey,
        delta: &'a Delta,
        expected: u64,
        ttl: Duration,
        now: u64,
    ) -> BoxFuture<'a, Result<Commit, StoreError>>;

    /// Stores a new record under a key derived from an id that was just drawn from the
    /// CSPRNG and shown to nobody yet, so no other writer can know it: version 1, `delta.set`
    /// as its data, created and refreshed `now`, expiring after `ttl`. Unlike a `commit`
    /// with expected version 0, it need not check that the key is free (a 256-bit collision
    /// is not an event to design for), so a store may use plain writes where they are
    /// cheaper; the default is the conditional commit.
    fn create<'a>(
        &'a self,
        key: &'a StoreKey,
        delta: &'a Delta,
        ttl: Duration,
        now: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match self.commit(key, delta, 0, ttl, now).await? {
                Commit::Done { .. } => Ok(()),
                Commit::Conflict => Err(StoreError::Backend("session key already in use".into())),
            }
        })
    }

    /// Refreshes the expiry of an existing record to `ttl` and stamps `now` as refreshed,
    /// without touching its data or version. Returns whether the record exists.
    fn touch<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
        now: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Deletes a record (a no-op when it does not exist).
    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Moves a record to a new key (id rotation), keeping its data, version and expiry, and
    /// leaves at `from` a marker naming `to` for [`MOVED_TTL`] (or the record's remaining
    /// lifetime, if shorter): `version` and `touch` see no record there and commits conflict,
    /// but `load` answers [`Loaded::Moved`]. Returns `false` when `from` holds no record.
    fn rename<'a>(
        &'a self,
        from: &'a StoreKey,
        to: &'a StoreKey,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Checks that the store answers (readiness).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// What keeps the records: other parts that must share the sessions' fate (the job
    /// queue follows the session store) decide by it.
    fn backend(&self) -> Backend;
}

/// The kind of store behind a [`SessionStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Redis: shared by every server, durable.
    Redis,
    /// This process's memory: neither shared nor durable.
    Memory,
    /// A store of the application's own, named for logs.
    Other(&'static str),
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Redis => "redis",
            Self::Memory => "memory",
            Self::Other(name) => name,
        })
    }
}

/// The current Unix time in seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
