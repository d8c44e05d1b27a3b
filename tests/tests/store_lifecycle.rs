//! The session-store suite on a record's life after its first commit: `touch` moves its
//! expiry, it is gone once its TTL has passed, `delete` ends it, `rename` moves it (with its
//! expiry) and leaves a forwarding marker. The expiry cases sleep past a 1 s TTL in real time:
//! both stores expire records on the real clock.
//!
//! Each case in `mod cases` runs against every store through `rondo_tests::store_suite!`:
//! `on_memory::<case>` against a fresh memory store and `on_redis::<case>` against a Redis
//! store on a private `redis-server` (the Redis run also looks at keys and TTLs directly).
//! The rest of the suite is in the other `store_*.rs` files; the harness is
//! `rondo_tests::store`.

#![allow(clippy::unwrap_used)]

rondo_tests::store_suite! {
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
}

/// The cases, each run against every store by `store_suite!`.
mod cases {
    use std::collections::HashMap;
    use std::time::Duration;

    use rondo::session::store::{Commit, Delta, Loaded, Record, SessionStore};
    use rondo::session::SessionId;
    use rondo_tests::redis::RedisServer;
    use rondo_tests::store::{data, delta, new_key, record, PREFIX, T0, T1, TTL};

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
}
