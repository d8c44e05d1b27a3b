//! The session-store suite on loads and commits: missing keys, versions and conflicts, what
//! a delta changes, `create`, two writers racing for one version, and the store's ping.
//!
//! Each case in `mod cases` runs against every store through `rondo_tests::store_suite!`:
//! `on_memory::<case>` against a fresh memory store and `on_redis::<case>` against a Redis
//! store on a private `redis-server` (the Redis run also looks at keys and TTLs directly).
//! The rest of the suite is in the other `store_*.rs` files; the harness is
//! `rondo_tests::store`.

#![allow(clippy::unwrap_used)]

rondo_tests::store_suite! {
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
    /// Ping answers Ok and kind names the store.
    ping_and_kind,
    /// Of two concurrent commits expecting the same version, exactly one wins.
    concurrent_writers_exactly_one_wins,
    /// `create` stores version 1 with its data, timestamps and expiry, and later commits
    /// build on it like on a committed record.
    create_stores_version_1_with_expiry,
}

/// The cases, each run against every store by `store_suite!`.
mod cases {
    use rondo::session::store::{Commit, Delta, Loaded, Record, SessionStore};
    use rondo_tests::redis::RedisServer;
    use rondo_tests::store::{data, delta, new_key, record, T0, T1, TTL};

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
