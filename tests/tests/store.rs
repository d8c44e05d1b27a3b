//! One session-store test suite, run against both stores.
//!
//! Every case in [`cases`] is an async function taking a `&dyn SessionStore` (plus, for the
//! Redis run, the [`RedisServer`] behind it, to look at keys and TTLs directly). The
//! `store_suite!` macro turns each case into two tests: `on_memory::<case>` against a fresh
//! [`MemoryStore`] and `on_redis::<case>` against a [`RedisStore`] on a private
//! `redis-server`. Cases that only make sense for Redis (hand-corrupted records, a killed or
//! stalled server, round trips) are in [`redis_only`].

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rondo::redis::RedisPool;
use rondo::session::store::{
    Commit, Delta, Loaded, MemoryStore, Record, RedisStore, SessionStore, StoreError,
};
use rondo::session::{SessionId, StoreKey};
use rondo_tests::redis::RedisServer;

/// The key prefix of the Redis pools.
const PREFIX: &str = "t:";
/// A TTL long enough never to expire during a test.
const TTL: Duration = Duration::from_secs(60);
/// The `now` of first commits (Unix seconds; the stores stamp what they are given).
const T0: u64 = 1_000;
/// A later `now`.
const T1: u64 = 2_000;
/// The longest any one test may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh store key under [`PREFIX`].
fn new_key() -> StoreKey {
    SessionId::generate().expect("random id").store_key(PREFIX)
}

/// A delta setting `set` and removing `remove`.
fn delta(set: &[(&str, &[u8])], remove: &[&str]) -> Delta {
    Delta {
        set: set
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v)))
            .collect(),
        remove: remove.iter().map(|k| (*k).to_owned()).collect(),
    }
}

/// A data map from pairs.
fn data(pairs: &[(&str, &[u8])]) -> HashMap<String, Bytes> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v)))
        .collect()
}

/// Loads `key` with known version 0 and expects a whole record.
async fn record(store: &dyn SessionStore, key: &StoreKey) -> Record {
    match store.load(key, 0).await.unwrap() {
        Loaded::Record(record) => record,
        other => panic!("expected a record at {key:?}, got {other:?}"),
    }
}

/// A Redis store on a fresh server, with the server.
async fn redis_store() -> (RedisServer, RedisStore) {
    let server = RedisServer::start().await;
    let pool = RedisPool::new(&server.pool_config(PREFIX))
        .await
        .expect("pool on a running redis-server");
    (server, RedisStore::new(pool))
}

/// Turns each listed case of [`cases`] into a test per store.
macro_rules! store_suite {
    ($( $(#[$attr:meta])* $name:ident ),* $(,)?) => {
        /// The suite against [`MemoryStore`].
        mod on_memory {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = super::MemoryStore::new();
                    tokio::time::timeout(super::TEST_TIMEOUT, super::cases::$name(&store, None))
                        .await
                        .expect("test timed out");
                }
            )*
        }

        /// The suite against [`RedisStore`], each test on its own `redis-server`.
        mod on_redis {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (server, store) = super::redis_store().await;
                    tokio::time::timeout(
                        super::TEST_TIMEOUT,
                        super::cases::$name(&store, Some(&server)),
                    )
                    .await
                    .expect("test timed out");
                }
            )*
        }
    };
}

store_suite! {
    /// Loading a key that was never stored answers Missing, whatever version is known.
    unknown_key_is_missing,
    /// A commit expecting 0 creates version 1, stamped created == refreshed == now.
    first_commit_creates_version_1,
    /// Loading with the stored version answers Unchanged; any other version the record.
    known_version_loads_unchanged,
    /// A stale or future expected version, or 0 on an existing record, is a Conflict.
    stale_version_conflicts_and_changes_nothing,
    /// A delta sets and removes only the keys it names; created stays, refreshed moves.
    delta_changes_only_named_keys,
    /// Data keys and values round-trip byte for byte, including reserved-looking keys.
    odd_keys_and_binary_values_round_trip,
    /// Touch answers false for a missing key, and on a record moves refreshed and the expiry
    /// only.
    touch_refreshes_without_changing_data,
    /// A record is gone once its TTL has passed (and in Redis the key has a PTTL and layout).
    record_expires_after_ttl,
    /// Delete removes a record; deleting a missing key is Ok.
    delete_removes_and_is_idempotent,
    /// Rename moves data, version and timestamps; the old key is gone; a missing source is false.
    rename_moves_the_record,
    /// A renamed record keeps its expiry.
    rename_keeps_the_expiry,
    /// Ping answers Ok and kind names the store.
    ping_and_kind,
    /// Of two concurrent commits expecting the same version, exactly one wins.
    concurrent_writers_exactly_one_wins,
    /// `create` stores version 1 with its data, timestamps and expiry, and later commits
    /// build on it like on a committed record.
    create_stores_version_1_with_expiry,
}

/// The cases, each run against both stores by `store_suite!`.
mod cases {
    use super::*;

    pub(super) async fn unknown_key_is_missing(
        store: &dyn SessionStore,
        redis: Option<&RedisServer>,
    ) {
        let key = new_key();
        assert_eq!(store.load(&key, 0).await.unwrap(), Loaded::Missing);
        assert_eq!(store.load(&key, 1).await.unwrap(), Loaded::Missing);
        assert_eq!(store.load(&key, 42).await.unwrap(), Loaded::Missing);
        if let Some(redis) = redis {
            assert_eq!(redis.dbsize().await, 0, "a load must not create anything");
        }
    }

    pub(super) async fn first_commit_creates_version_1(
        store: &dyn SessionStore,
        _redis: Option<&RedisServer>,
    ) {
        let key = new_key();
        let d = delta(&[("user", b"\x01"), ("cart", b"\x92\x01\x02")], &[]);
        assert_eq!(
            store.commit(&key, &d, 0, TTL, T0).await.unwrap(),
            Commit::Done { version: 1 }
        );
        assert_eq!(
            record(store, &key).await,
            Record {
                data: data(&[("user", b"\x01"), ("cart", b"\x92\x01\x02")]),
                version: 1,
                created: T0,
                refreshed: T0,
            }
        );
    }

    pub(super) async fn create_stores_version_1_with_expiry(
        store: &dyn SessionStore,
        redis: Option<&RedisServer>,
    ) {
        let key = new_key();
        let d = delta(&[("user", b"\xa3bob")], &[]);
        store.create(&key, &d, TTL, T0).await.unwrap();
        assert_eq!(
            record(store, &key).await,
            Record {
                data: data(&[("user", b"\xa3bob")]),
                version: 1,
                created: T0,
                refreshed: T0,
            }
        );
        if let Some(redis) = redis {
            let ttl = redis.ttl_ms(key.as_str()).await;
            assert!(ttl > 0 && ttl <= TTL.as_millis() as i64, "PTTL {ttl}");
        }
        let more = delta(&[("cart", b"\x01")], &[]);
        assert_eq!(
            store.commit(&key, &more, 1, TTL, T1).await.unwrap(),
            Commit::Done { version: 2 }
        );
        assert_eq!(
            store.commit(&key, &more, 1, TTL, T1).await.unwrap(),
            Commit::Conflict
        );
        assert_eq!(record(store, &key).await.data.len(), 2);
    }

    pub(super) async fn known_version_loads_unchanged(
        store: &dyn SessionStore,
        _redis: Option<&RedisServer>,
    ) {
        let key = new_key();
        let d = delta(&[("a", b"1")], &[]);
        assert_eq!(
            store.commit(&key, &d, 0, TTL, T0).await.unwrap(),
            Commit::Done { version: 1 }
        );
        assert_eq!(store.load(&key, 1).await.unwrap(), Loaded::Unchanged);
        let full = Loaded::Record(Record {
            data: data(&[("a", b"1")]),
            version: 1,
            created: T0,
            refreshed: T0,
        });
        assert_eq!(store.load(&key, 0).await.unwrap(), full);
        assert_eq!(store.load(&key, 2).await.unwrap(), full);
        // After a second commit, the old version gets the record, the new one Unchanged.
        assert_eq!(
            store.commit(&key, &d, 1, TTL, T1).await.unwrap(),
            Commit::Done { version: 2 }
        );
        assert!(matches!(
            store.load(&key, 1).await.unwrap(),
            Loaded::Record(Record { version: 2, .. })
        ));
        assert_eq!(store.load(&key, 2).await.unwrap(), Loaded::Unchanged);
    }

    pub(super) async fn stale_version_conflicts_and_changes_nothing(
        store: &dyn SessionStore,
        _redis: Option<&RedisServer>,
    ) {
        let key = new_key();
        store
            .commit(&key, &delta(&[("a", b"1")], &[]), 0, TTL, T0)
            .await
            .unwrap();
        assert_eq!(
            store
                .commit(&key, &delta(&[("a", b"2")], &[]), 1, TTL, T1)
                .await
                .unwrap(),
            Commit::Done { version: 2 }
        );
        let before = record(store, &key).await;
        let intruder = delta(&[("a", b"X"), ("b", b"X")], &["a"]);
        for expected in [0, 1, 3, 100] {
            assert_eq!(
                store
                    .commit(&key, &intruder, expected, TTL, 9_999)
                    .await
                    .unwrap(),
                Commit::Conflict,
                "expected version {expected} against stored version 2"
            );
        }
        let after = record(store, &key).await;
        assert_eq!(after, before);
        assert_eq!(after.data, data(&[("a", b"2")]));
        assert_eq!((after.version, after.created, after.refreshed), (2, T0, T1));
        // A version that never existed conflicts on a missing key too.
        assert_eq!(
            store
                .commit(&new_key(), &intruder, 1, TTL, T0)
                .await
                .unwrap(),
            Commit::Conflict
        );
    }

    pub(super) async fn delta_changes_only_named_keys(
        store: &dyn SessionStore,
        _redis: Option<&RedisServer>,
    ) {
        let key = new_key();
        store
            .commit(&key, &delta(&[("a", b"A"), ("b", b"B")], &[]), 0, TTL, T0)
            .await
            .unwrap();
        assert_eq!(
            store
                .commit(&key, &delta(&[("b2", b"B2")], &["a"]), 1, TTL, T1)
                .await
                .unwrap(),
            Commit::Done { version: 2 }
        );
        let rec = record(store, &key).await;
        assert_eq!(rec.data, data(&[("b", b"B"), ("b2", b"B2")]));
        assert_eq!((rec.version, rec.created, rec.refreshed), (2, T0, T1));

        // Overwrite one key, remove one that does not exist: the rest stays.
        assert_eq!(
            store
                .commit(&key, &delta(&[("b", b"new")], &["nope"]), 2, TTL, T1 + 1)
                .await
                .unwrap(),
            Commit::Done { version: 3 }
        );
        assert_eq!(
            record(store, &key).await.data,
            data(&[("b", b"new"), ("b2", b"B2")])
        );

        // An empty delta still bumps the version and stamps refreshed.
        assert_eq!(
            store
                .commit(&key, &Delta::default(), 3, TTL, T1 + 2)
                .await
                .unwrap(),
            Commit::Done { version: 4 }
        );
        let rec = record(store, &key).await;
        assert_eq!(rec.data, data(&[("b", b"new"), ("b2", b"B2")]));
        assert_eq!((rec.version, rec.created, rec.refreshed), (4, T0, T1 + 2));

        // Removing every key leaves an empty record, not a missing one.
        assert_eq!(
            store
                .commit(&key, &delta(&[], &["b", "b2"]), 4, TTL, T1 + 3)
                .await
                .unwrap(),
            Commit::Done { version: 5 }
        );
        let rec = record(store, &key).await;
        assert!(rec.data.is_empty());
        assert_eq!(rec.version, 5);
    }

    pub(super) async fn odd_keys_and_binary_values_round_trip(
        store: &dyn SessionStore,
        _redis: Option<&RedisServer>,
    ) {
        let key = new_key();
        let pairs: &[(&str, &[u8])] = &[
            ("_v", b"999"),
            ("_c", b"x"),
            ("d:nested", b"y"),
            ("user:name", "Zoë".as_bytes()),
            ("empty", b""),
            ("binary", b"\x00\xff\r\n\x80"),
            ("ключ", b"\xc0"),
        ];
        assert_eq!(
            store
                .commit(&key, &delta(pairs, &[]), 0, TTL, T0)
                .await
                .unwrap(),
            Commit::Done { version: 1 }
        );
        let rec = record(store, &key).await;
        assert_eq!(rec.data, data(pairs));
        assert_eq!((rec.version, rec.created, rec.refreshed), (1, T0, T0));
    }

    pub(super) async fn touch_refreshes_without_changing_data(
        store: &dyn SessionStore,
        redis: Option<&RedisServer>,
    ) {
        let missing = new_key();
        assert!(!store.touch(&missing, TTL, T1).await.unwrap());
        assert_eq!(
            store.load(&missing, 0).await.unwrap(),
            Loaded::Missing,
            "touch must not create a record"
        );

        let key = new_key();
        let short = Duration::from_secs(10);
        store
            .commit(&key, &delta(&[("a", b"A")], &[]), 0, short, T0)
            .await
            .unwrap();
        assert!(store.touch(&key, TTL, T1).await.unwrap());
        assert_eq!(
            record(store, &key).await,
            Record {
                data: data(&[("a", b"A")]),
                version: 1,
                created: T0,
                refreshed: T1,
            }
        );
        // The version did not move: a writer holding version 1 still commits.
        assert_eq!(store.load(&key, 1).await.unwrap(), Loaded::Unchanged);
        if let Some(redis) = redis {
            let pttl = redis.ttl_ms(key.as_str()).await;
            assert!(
                pttl > 10_000 && pttl <= 60_000,
                "touch should set the expiry to the new TTL, PTTL is {pttl}"
            );
        }
        assert_eq!(
            store
                .commit(&key, &delta(&[("b", b"B")], &[]), 1, TTL, T1)
                .await
                .unwrap(),
            Commit::Done { version: 2 }
        );
    }

    pub(super) async fn record_expires_after_ttl(
        store: &dyn SessionStore,
        redis: Option<&RedisServer>,
    ) {
        let id = SessionId::generate().expect("random id");
        let key = id.store_key(PREFIX);
        let ttl = Duration::from_secs(1);
        assert_eq!(
            store
                .commit(&key, &delta(&[("a", b"A")], &[]), 0, ttl, T0)
                .await
                .unwrap(),
            Commit::Done { version: 1 }
        );
        if let Some(redis) = redis {
            let pttl = redis.ttl_ms(key.as_str()).await;
            assert!(pttl > 0 && pttl <= 1_000, "PTTL right after commit: {pttl}");

            // Layout: one hash at t:session:<sha256 hex of the id>.
            let name = key.as_str();
            let hex = name.strip_prefix("t:session:").expect("prefixed key");
            assert_eq!(hex.len(), 64, "{name}");
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{name}"
            );
            assert!(
                !name.contains(id.as_str()),
                "the key must not contain the id"
            );
            assert_eq!(redis.keys("*").await, vec![name.to_owned()]);
            assert_eq!(
                redis.cmd(&["TYPE", name]).await,
                redis::Value::SimpleString("hash".into())
            );
            let mut fields = redis.hgetall(name).await;
            // `_t` is the commit's random token.
            let token = fields
                .iter()
                .position(|(k, _)| k == "_t")
                .expect("a commit token");
            let (_, token) = fields.remove(token);
            assert!(std::str::from_utf8(&token).unwrap().parse::<u64>().is_ok());
            assert_eq!(
                fields,
                vec![
                    ("_c".to_owned(), b"1000".to_vec()),
                    ("_r".to_owned(), b"1000".to_vec()),
                    ("_v".to_owned(), b"1".to_vec()),
                    ("d:a".to_owned(), b"A".to_vec()),
                ]
            );
        }

        tokio::time::sleep(Duration::from_millis(1_300)).await;
        assert_eq!(store.load(&key, 0).await.unwrap(), Loaded::Missing);
        assert_eq!(store.load(&key, 1).await.unwrap(), Loaded::Missing);
        assert!(!store.touch(&key, TTL, T1).await.unwrap());
        if let Some(redis) = redis {
            assert_eq!(redis.ttl_ms(key.as_str()).await, -2);
        }
        // An expired record is gone for writers too: only a fresh creation succeeds.
        assert_eq!(
            store
                .commit(&key, &Delta::default(), 1, TTL, T1)
                .await
                .unwrap(),
            Commit::Conflict
        );
        assert_eq!(
            store
                .commit(&key, &Delta::default(), 0, TTL, T1)
                .await
                .unwrap(),
            Commit::Done { version: 1 }
        );
        assert_eq!(
            record(store, &key).await,
            Record {
                data: HashMap::new(),
                version: 1,
                created: T1,
                refreshed: T1,
            }
        );
    }

    pub(super) async fn delete_removes_and_is_idempotent(
        store: &dyn SessionStore,
        redis: Option<&RedisServer>,
    ) {
        let key = new_key();
        let other = new_key();
        store
            .commit(&key, &delta(&[("a", b"A")], &[]), 0, TTL, T0)
            .await
            .unwrap();
        store
            .commit(&other, &delta(&[("o", b"O")], &[]), 0, TTL, T0)
            .await
            .unwrap();
        store.delete(&key).await.unwrap();
        assert_eq!(store.load(&key, 0).await.unwrap(), Loaded::Missing);
        assert_eq!(store.load(&key, 1).await.unwrap(), Loaded::Missing);
        store.delete(&key).await.unwrap();
        store.delete(&new_key()).await.unwrap();
        assert_eq!(record(store, &other).await.data, data(&[("o", b"O")]));
        if let Some(redis) = redis {
            assert_eq!(redis.keys("*").await, vec![other.as_str().to_owned()]);
        }
        // A deleted session can only be created anew.
        assert_eq!(
            store
                .commit(&key, &Delta::default(), 1, TTL, T1)
                .await
                .unwrap(),
            Commit::Conflict
        );
        assert_eq!(
            store
                .commit(&key, &Delta::default(), 0, TTL, T1)
                .await
                .unwrap(),
            Commit::Done { version: 1 }
        );
    }

    pub(super) async fn rename_moves_the_record(
        store: &dyn SessionStore,
        redis: Option<&RedisServer>,
    ) {
        let from = new_key();
        let to = new_key();
        store
            .commit(&from, &delta(&[("a", b"A")], &[]), 0, TTL, T0)
            .await
            .unwrap();
        store
            .commit(&from, &delta(&[("b", b"B")], &[]), 1, TTL, T1)
            .await
            .unwrap();
        let before = record(store, &from).await;

        assert!(store.rename(&from, &to).await.unwrap());
        // The old key only names the new one now: no record for readers and writers.
        assert_eq!(
            store.load(&from, 0).await.unwrap(),
            Loaded::Moved(to.clone())
        );
        assert_eq!(store.version(&from).await.unwrap(), None);
        assert!(!store.touch(&from, TTL, T1).await.unwrap());
        let after = record(store, &to).await;
        assert_eq!(after, before);
        assert_eq!(after.data, data(&[("a", b"A"), ("b", b"B")]));
        assert_eq!((after.version, after.created, after.refreshed), (2, T0, T1));
        if let Some(redis) = redis {
            let pttl = redis.ttl_ms(to.as_str()).await;
            assert!(
                pttl > 0 && pttl <= 60_000,
                "PTTL of the renamed key: {pttl}"
            );
            let marker = redis.ttl_ms(from.as_str()).await;
            assert!(
                marker > 0 && marker <= 60_000,
                "PTTL of the forwarding marker: {marker}"
            );
            let mut keys = vec![from.as_str().to_owned(), to.as_str().to_owned()];
            keys.sort();
            assert_eq!(redis.keys("*").await, keys);
        }

        // The version moved with it: writers holding version 2 continue on the new key.
        assert_eq!(
            store
                .commit(&to, &Delta::default(), 2, TTL, T1)
                .await
                .unwrap(),
            Commit::Done { version: 3 }
        );
        // The old key is gone for writers.
        assert_eq!(
            store
                .commit(&from, &Delta::default(), 2, TTL, T1)
                .await
                .unwrap(),
            Commit::Conflict
        );

        assert!(!store.rename(&from, &new_key()).await.unwrap());
        let never = new_key();
        let target = new_key();
        assert!(!store.rename(&never, &target).await.unwrap());
        assert_eq!(store.load(&target, 0).await.unwrap(), Loaded::Missing);
    }

    pub(super) async fn rename_keeps_the_expiry(
        store: &dyn SessionStore,
        redis: Option<&RedisServer>,
    ) {
        let from = new_key();
        let to = new_key();
        let ttl = Duration::from_secs(1);
        store
            .commit(&from, &delta(&[("a", b"A")], &[]), 0, ttl, T0)
            .await
            .unwrap();
        assert!(store.rename(&from, &to).await.unwrap());
        if let Some(redis) = redis {
            let pttl = redis.ttl_ms(to.as_str()).await;
            assert!(pttl > 0 && pttl <= 1_000, "PTTL of the renamed key: {pttl}");
        }
        assert!(matches!(
            store.load(&to, 0).await.unwrap(),
            Loaded::Record(_)
        ));
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        assert_eq!(store.load(&to, 0).await.unwrap(), Loaded::Missing);
        assert_eq!(store.load(&from, 0).await.unwrap(), Loaded::Missing);
    }

    pub(super) async fn ping_and_kind(store: &dyn SessionStore, redis: Option<&RedisServer>) {
        store.ping().await.unwrap();
        let expected = if redis.is_some() { "redis" } else { "memory" };
        assert_eq!(store.backend().to_string(), expected);
    }

    pub(super) async fn concurrent_writers_exactly_one_wins(
        store: &dyn SessionStore,
        _redis: Option<&RedisServer>,
    ) {
        // Two creators of the same session.
        let key = new_key();
        let first = delta(&[("w", b"1")], &[]);
        let second = delta(&[("w", b"2")], &[]);
        let (a, b) = tokio::join!(
            store.commit(&key, &first, 0, TTL, T0),
            store.commit(&key, &second, 0, TTL, T0),
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        assert!(
            outcomes.contains(&Commit::Done { version: 1 }) && outcomes.contains(&Commit::Conflict),
            "{outcomes:?}"
        );

        // Then twenty rounds of two writers expecting the same version.
        for version in 1..=20u64 {
            let mine = delta(&[("w", format!("a{version}").as_bytes())], &[]);
            let theirs = delta(&[("w", format!("b{version}").as_bytes())], &[]);
            let (a, b) = tokio::join!(
                store.commit(&key, &mine, version, TTL, T1),
                store.commit(&key, &theirs, version, TTL, T1),
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            let winner = match (a, b) {
                (Commit::Done { version: v }, Commit::Conflict) => {
                    assert_eq!(v, version + 1);
                    format!("a{version}")
                }
                (Commit::Conflict, Commit::Done { version: v }) => {
                    assert_eq!(v, version + 1);
                    format!("b{version}")
                }
                other => {
                    panic!("round {version}: expected one Done and one Conflict, got {other:?}")
                }
            };
            let rec = record(store, &key).await;
            assert_eq!(rec.version, version + 1);
            assert_eq!(rec.data, data(&[("w", winner.as_bytes())]));
        }
    }
}

/// Cases that only exist for Redis: foreign data, a dead or stalled server, round trips.
mod redis_only {
    use super::*;

    /// Asserts that `result` is `Err(StoreError::Corrupt(_))`.
    fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
        match result {
            Err(StoreError::Corrupt(_)) => {}
            other => panic!("{what}: expected Err(Corrupt), got {other:?}"),
        }
    }

    /// A hash whose `_v` is not a number, or which has a field without `d:`, loads as Corrupt.
    #[tokio::test]
    async fn hand_written_hashes_are_corrupt() {
        let (redis, store) = redis_store().await;
        let cases: &[(&str, &[&str])] = &[
            ("version not a number", &["_v", "abc"]),
            ("negative version", &["_v", "-1"]),
            ("fractional version", &["_v", "1.5"]),
            ("created not a number", &["_v", "1", "_c", "yesterday"]),
            ("refreshed not a number", &["_v", "1", "_r", ""]),
            ("field without d:", &["_v", "1", "user", "x"]),
            ("stray underscore field", &["_v", "1", "_x", "x"]),
        ];
        for (what, fields) in cases {
            let key = new_key();
            let mut args = vec!["HSET", key.as_str()];
            args.extend_from_slice(fields);
            redis.cmd(&args).await;
            assert_corrupt(store.load(&key, 0).await, what);
            assert_corrupt(store.load(&key, 7).await, what);
        }
    }

    /// A data key that is not UTF-8 loads as Corrupt.
    #[tokio::test]
    async fn non_utf8_data_key_is_corrupt() {
        let (redis, store) = redis_store().await;
        let key = new_key();
        let conn_url = redis.url();
        let client = redis::Client::open(conn_url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("HSET")
            .arg(key.as_str())
            .arg("_v")
            .arg("1")
            .arg(b"d:\xff\xfe".as_slice())
            .arg("x")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        assert_corrupt(store.load(&key, 0).await, "non-UTF-8 data key");
    }

    /// A hash with `_v` = 0 (never written by Rondo) is Corrupt, not Unchanged for a newcomer.
    #[tokio::test]
    async fn version_zero_is_corrupt() {
        let (redis, store) = redis_store().await;
        let key = new_key();
        redis
            .cmd(&["HSET", key.as_str(), "_v", "0", "d:a", "x"])
            .await;
        assert_corrupt(store.load(&key, 1).await, "_v = 0, known 1");
        assert_corrupt(store.load(&key, 0).await, "_v = 0, known 0");
    }

    /// A session key holding a non-hash value is reported as corrupt/backend data, not as an
    /// unavailable store.
    #[tokio::test]
    async fn wrong_type_key_is_not_unavailable() {
        let (redis, store) = redis_store().await;
        let key = new_key();
        redis.cmd(&["SET", key.as_str(), "not a hash"]).await;
        let loaded = store.load(&key, 0).await;
        assert!(
            matches!(
                loaded,
                Err(StoreError::Corrupt(_)) | Err(StoreError::Backend(_))
            ),
            "load of a string key: {loaded:?}"
        );
        let committed = store.commit(&key, &Delta::default(), 0, TTL, T0).await;
        assert!(
            matches!(
                committed,
                Err(StoreError::Corrupt(_)) | Err(StoreError::Backend(_))
            ),
            "commit onto a string key: {committed:?}"
        );
    }

    /// With Redis killed, operations fail as Unavailable within ~2 timeouts; after a restart
    /// on the same port the pool recovers by itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_down_is_unavailable_then_recovers() {
        let (mut redis, store) = redis_store().await;
        let key = new_key();
        let d = delta(&[("a", b"A")], &[]);
        assert_eq!(
            store.commit(&key, &d, 0, TTL, T0).await.unwrap(),
            Commit::Done { version: 1 }
        );

        redis.kill();
        for op in ["load", "commit", "touch", "ping", "load again"] {
            let started = Instant::now();
            let result = match op {
                "commit" => store.commit(&key, &d, 1, TTL, T1).await.map(drop),
                "touch" => store.touch(&key, TTL, T1).await.map(drop),
                "ping" => store.ping().await,
                _ => store.load(&key, 0).await.map(drop),
            };
            let elapsed = started.elapsed();
            assert!(
                matches!(result, Err(StoreError::Unavailable(_))),
                "{op} with Redis down: {result:?}"
            );
            assert!(
                elapsed < Duration::from_secs(3),
                "{op} took {elapsed:?} to fail"
            );
        }

        redis.restart().await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match store.commit(&key, &d, 0, TTL, T1).await {
                Ok(Commit::Done { version: 1 }) => break,
                Ok(other) => panic!("a restarted Redis is empty, yet commit answered {other:?}"),
                Err(StoreError::Unavailable(why)) if attempts < 20 => {
                    eprintln!("attempt {attempts}: {why}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("no recovery after {attempts} attempts: {err:?}"),
            }
        }
        assert_eq!(record(&store, &key).await.data, data(&[("a", b"A")]));
        store.ping().await.unwrap();
    }

    /// A stalled Redis (CLIENT PAUSE) makes operations fail as Unavailable after about the
    /// timeout, and the store works again once the pause is over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stalled_redis_times_out_then_recovers() {
        let (redis, store) = redis_store().await;
        let key = new_key();
        let d = delta(&[("a", b"A")], &[]);
        store.commit(&key, &d, 0, TTL, T0).await.unwrap();

        redis.pause(2_500).await;
        let started = Instant::now();
        let result = store.load(&key, 0).await;
        let elapsed = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "load from a paused Redis: {result:?}"
        );
        assert!(
            elapsed < Duration::from_millis(2_000),
            "load took {elapsed:?} to fail"
        );

        tokio::time::sleep(Duration::from_millis(2_600).saturating_sub(started.elapsed())).await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match store.load(&key, 0).await {
                Ok(Loaded::Record(rec)) => {
                    assert_eq!(rec.version, 1);
                    break;
                }
                Ok(other) => panic!("after the pause: {other:?}"),
                Err(StoreError::Unavailable(_)) if attempts < 20 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("no recovery after {attempts} attempts: {err:?}"),
            }
        }
    }

    /// A Redis blocked in a slow command (DEBUG SLEEP) makes operations fail as Unavailable
    /// after about the timeout instead of hanging.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocked_redis_times_out() {
        let (redis, store) = redis_store().await;
        let key = new_key();
        store
            .commit(&key, &Delta::default(), 0, TTL, T0)
            .await
            .unwrap();
        redis.debug_sleep(2.0).await;
        let started = Instant::now();
        let result = store.commit(&key, &Delta::default(), 1, TTL, T1).await;
        let elapsed = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "commit to a sleeping Redis: {result:?}"
        );
        assert!(
            elapsed < Duration::from_millis(1_900),
            "commit took {elapsed:?} to fail"
        );
    }

    /// Once the scripts are cached, commit, touch and rename are one EVALSHA each, delete
    /// one DEL; a load is a plain HGETALL when nothing is held yet, and a plain HGET of the
    /// version when the caller holds one that is still current.
    #[tokio::test]
    async fn one_round_trip_per_operation() {
        let (redis, store) = redis_store().await;
        let key = new_key();
        let moved = new_key();
        // Warm-up: the first use of each script loads it (EVALSHA, NOSCRIPT, SCRIPT LOAD).
        store.load(&key, 0).await.unwrap();
        store
            .commit(&key, &Delta::default(), 0, TTL, T0)
            .await
            .unwrap();
        store
            .commit(&key, &Delta::default(), 1, TTL, T0)
            .await
            .unwrap();
        store.touch(&key, TTL, T0).await.unwrap();
        store.rename(&key, &moved).await.unwrap();
        store.rename(&moved, &key).await.unwrap();

        redis.reset_stats().await;
        store.load(&key, 0).await.unwrap();
        assert_eq!(store.load(&key, 2).await.unwrap(), Loaded::Unchanged);
        let committed = store
            .commit(
                &key,
                &delta(&[("a", b"A"), ("b", b"B")], &["c"]),
                2,
                TTL,
                T1,
            )
            .await
            .unwrap();
        assert_eq!(committed, Commit::Done { version: 3 });
        store.touch(&key, TTL, T1).await.unwrap();
        store.rename(&key, &moved).await.unwrap();
        store.delete(&moved).await.unwrap();
        let stats = redis.command_stats().await;
        // commit, touch, rename; the two loads run no script.
        assert_eq!(stats.get("evalsha"), Some(&3), "{stats:?}");
        assert_eq!(stats.get("hgetall"), Some(&1), "{stats:?}");
        assert_eq!(stats.get("del"), Some(&1), "{stats:?}");
        assert_eq!(stats.get("eval"), None, "{stats:?}");
        assert_eq!(stats.get("script|load"), None, "{stats:?}");
        // What is left: the forwarding marker of the last rename.
        assert_eq!(redis.dbsize().await, 1);
        assert_eq!(
            store.load(&key, 0).await.unwrap(),
            Loaded::Moved(moved.clone())
        );
    }

    /// One command's answer as text (a status or a bulk string).
    async fn text(redis: &RedisServer, args: &[&str]) -> String {
        redis::from_redis_value(redis.cmd(args).await).expect("a text answer")
    }

    /// New sessions created at once all end up complete, each with its own data and a
    /// TTL, each stored by one `RESTORE` (pipelined in batches), no script involved.
    #[tokio::test]
    async fn concurrent_creations_are_each_restored_whole() {
        let (redis, store) = redis_store().await;
        let store = std::sync::Arc::new(store);
        let keys: Vec<StoreKey> = (0..200).map(|_| new_key()).collect();
        let creations = keys.iter().enumerate().map(|(i, key)| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move {
                let value = format!("user-{i}");
                let d = delta(&[("user", value.as_bytes()), ("n", &[i as u8])], &[]);
                store.create(&key, &d, TTL, T0 + i as u64).await
            })
        });
        for creation in futures_util::future::join_all(creations).await {
            creation.unwrap().unwrap();
        }
        let stats = redis.command_stats().await;
        assert_eq!(stats.get("restore"), Some(&200), "{stats:?}");
        assert_eq!(stats.get("evalsha"), None, "{stats:?}");
        for (i, key) in keys.iter().enumerate() {
            let stored = record(&*store, key).await;
            let value = format!("user-{i}");
            assert_eq!(
                stored.data,
                data(&[("user", value.as_bytes()), ("n", &[i as u8])])
            );
            assert_eq!((stored.version, stored.created), (1, T0 + i as u64));
            let ttl = redis.ttl_ms(key.as_str()).await;
            assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
        }
    }

    /// A restored record is an ordinary hash: the fields a script would have written,
    /// Redis's compact encoding when small, and values of every length (one byte, over
    /// 64 bytes, over 16 KiB) byte for byte.
    #[tokio::test]
    async fn a_restored_record_is_a_plain_hash() {
        let (redis, store) = redis_store().await;
        let small = new_key();
        store
            .create(&small, &delta(&[("a", b"\x01")], &[]), TTL, T0)
            .await
            .unwrap();
        let now = T0.to_string();
        let expected: Vec<(String, Vec<u8>)> = [
            ("_c", now.as_bytes()),
            ("_r", now.as_bytes()),
            ("_v", &b"1"[..]),
            ("d:a", b"\x01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_vec()))
        .collect();
        assert_eq!(redis.hgetall(small.as_str()).await, expected);
        assert_eq!(text(&redis, &["TYPE", small.as_str()]).await, "hash");
        assert_eq!(
            text(&redis, &["OBJECT", "ENCODING", small.as_str()]).await,
            "listpack"
        );

        let large = new_key();
        let medium: Vec<u8> = (0..200u8).collect();
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let d = delta(&[("medium", &medium), ("big", &big)], &[]);
        store.create(&large, &d, TTL, T1).await.unwrap();
        let stored = record(&store, &large).await;
        assert_eq!(stored.data, data(&[("medium", &medium), ("big", &big)]));
        assert_eq!((stored.version, stored.created), (1, T1));
        let ttl = redis.ttl_ms(large.as_str()).await;
        assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
        // Later commits work on it as on any record.
        let committed = store
            .commit(&large, &delta(&[("a", b"A")], &["big"]), 1, TTL, T1)
            .await
            .unwrap();
        assert_eq!(committed, Commit::Done { version: 2 });
        let stored = record(&store, &large).await;
        assert_eq!(stored.data, data(&[("medium", &medium), ("a", b"A")]));
    }

    /// Where the server refuses `RESTORE` (here an ACL user without it), new sessions are
    /// stored by the script instead: the refused one too, and every later one without
    /// asking again.
    #[tokio::test]
    async fn without_restore_new_sessions_use_the_script() {
        let redis = RedisServer::start().await;
        redis
            .cmd(&[
                "ACL", "SETUSER", "app", "on", ">secret", "~*", "&*", "+@all", "-restore",
            ])
            .await;
        let mut config = redis.pool_config(PREFIX);
        config.username = Some("app".into());
        config.password = Some("secret".into());
        let store = RedisStore::new(RedisPool::new(&config).await.unwrap());
        let keys: Vec<StoreKey> = (0..3).map(|_| new_key()).collect();
        for (i, key) in keys.iter().enumerate() {
            let d = delta(&[("n", &[i as u8])], &[]);
            store.create(key, &d, TTL, T0).await.unwrap();
        }
        for (i, key) in keys.iter().enumerate() {
            let stored = record(&store, key).await;
            assert_eq!(stored.data, data(&[("n", &[i as u8])]));
            assert_eq!(stored.version, 1);
            let ttl = redis.ttl_ms(key.as_str()).await;
            assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
        }
        let info = text(&redis, &["INFO", "commandstats"]).await;
        let restore = info
            .lines()
            .find(|l| l.starts_with("cmdstat_restore:"))
            .unwrap_or_default();
        assert!(
            restore.contains("calls=0,"),
            "refused before it ran: {restore}"
        );
        assert!(
            restore.contains("rejected_calls=1,"),
            "asked once: {restore}"
        );
        let stats = redis.command_stats().await;
        assert!(stats.get("evalsha").copied().unwrap_or(0) >= 3, "{stats:?}");
    }

    /// The harness itself: a restarted server is on the same port, empty, and a dropped one
    /// is gone.
    #[tokio::test]
    async fn harness_restart_and_drop() {
        let mut redis = RedisServer::start().await;
        let port = redis.port();
        redis.cmd(&["SET", "k", "v"]).await;
        assert_eq!(redis.dbsize().await, 1);
        redis.restart().await;
        assert_eq!(redis.port(), port);
        assert_eq!(redis.dbsize().await, 0);
        redis.flushall().await;
        drop(redis);
        let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(refused.is_err(), "redis-server still listens after drop");
    }
}
