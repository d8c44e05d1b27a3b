//! One session-store test suite, run against every store.
//!
//! A case is an async function taking a `&dyn SessionStore` (plus, for the Redis run, the
//! [`RedisServer`] behind it, to look at keys and TTLs directly), written once in a `mod
//! cases` of a `tests/tests/store_*.rs` file. That file lists its cases in
//! [`store_suite!`](crate::store_suite), which turns each case into one test per store:
//! `on_memory::<case>` against a fresh [`MemoryStore`] and `on_redis::<case>` against a
//! [`RedisStore`] on a private `redis-server`. A new backend is added to the macro, here,
//! once, and every case then runs against it too.
//!
//! The cases are plain data in, data out: versions, timestamps (`now` is a parameter, see
//! [`T0`] and [`T1`]) and TTLs. Only expiry waits on a clock, and both stores read the real
//! one: the memory store's deadlines are `std::time::Instant`s and Redis keeps its own time,
//! so the suite runs in real time (tokio's paused clock would not make a record expire).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use rondo::redis::RedisPool;
use rondo::session::store::{Delta, Loaded, MemoryStore, Record, RedisStore, SessionStore};
use rondo::session::{SessionId, StoreKey};

use crate::redis::RedisServer;

/// The key prefix of the Redis pools.
pub const PREFIX: &str = "t:";
/// A TTL long enough never to expire during a test.
pub const TTL: Duration = Duration::from_secs(60);
/// The `now` of first commits (Unix seconds; the stores stamp what they are given).
pub const T0: u64 = 1_000;
/// A later `now`.
pub const T1: u64 = 2_000;
/// The longest any one test may take.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh store key under [`PREFIX`].
///
/// # Panics
///
/// When the system's random source fails.
pub fn new_key() -> StoreKey {
    SessionId::generate().expect("random id").store_key(PREFIX)
}

/// A delta setting `set` and removing `remove`.
pub fn delta(set: &[(&str, &[u8])], remove: &[&str]) -> Delta {
    Delta {
        set: set
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v)))
            .collect(),
        remove: remove.iter().map(|k| (*k).to_owned()).collect(),
    }
}

/// A data map from pairs.
pub fn data(pairs: &[(&str, &[u8])]) -> HashMap<String, Bytes> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v)))
        .collect()
}

/// Loads `key` with known version 0 and expects a whole record.
///
/// # Panics
///
/// When the load fails or finds anything but a record.
pub async fn record(store: &dyn SessionStore, key: &StoreKey) -> Record {
    match store.load(key, 0).await.expect("the load succeeds") {
        Loaded::Record(record) => record,
        other => panic!("expected a record at {key:?}, got {other:?}"),
    }
}

/// A fresh, empty memory store.
pub fn memory_store() -> MemoryStore {
    MemoryStore::new()
}

/// A Redis store on a fresh server, with the server.
///
/// # Panics
///
/// When the server cannot be started or the pool cannot reach it.
pub async fn redis_store() -> (RedisServer, RedisStore) {
    let server = RedisServer::start().await;
    let pool = RedisPool::new(&server.pool_config(PREFIX))
        .await
        .expect("pool on a running redis-server");
    (server, RedisStore::new(pool))
}

/// Turns each listed case of the calling file's `mod cases` into a test per store: in `mod
/// on_memory` against [`memory_store`], in `mod on_redis` against [`redis_store`], each
/// bounded by [`TEST_TIMEOUT`]. The `///` line before a case becomes both tests' doc.
///
/// The calling crate needs `tokio` (for `#[tokio::test]`). The shape of a file that uses it
/// (not a doctest: the suite's tests are the files under `tests/tests/`):
///
/// ```text
/// rondo_tests::store_suite! {
///     /// Loading a key that was never stored answers Missing.
///     unknown_key_is_missing,
/// }
///
/// mod cases {
///     pub(super) async fn unknown_key_is_missing(
///         store: &dyn SessionStore,
///         redis: Option<&RedisServer>,
///     ) { /* ... */ }
/// }
/// ```
#[macro_export]
macro_rules! store_suite {
    ($( $(#[$attr:meta])* $name:ident ),* $(,)?) => {
        /// The suite against the memory store.
        mod on_memory {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = $crate::store::memory_store();
                    tokio::time::timeout(
                        $crate::store::TEST_TIMEOUT,
                        super::cases::$name(&store, None),
                    )
                    .await
                    .expect("test timed out");
                }
            )*
        }

        /// The suite against the Redis store, each test on its own `redis-server`.
        mod on_redis {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (server, store) = $crate::store::redis_store().await;
                    tokio::time::timeout(
                        $crate::store::TEST_TIMEOUT,
                        super::cases::$name(&store, Some(&server)),
                    )
                    .await
                    .expect("test timed out");
                }
            )*
        }
    };
}
