//! Redis store cases with no memory-store counterpart, on what reaches Redis: one round trip
//! per operation once the scripts are cached, new sessions stored by `RESTORE` as plain
//! hashes (and by the script where `RESTORE` is refused), and the harness' own restart. They
//! live in `mod redis_only` like the failure cases (`store_redis_failures.rs`).

#![allow(clippy::unwrap_used)]

/// Cases that only exist for Redis: the commands each operation sends, and the harness.
mod redis_only {
    use rondo::redis::RedisPool;
    use rondo::session::store::{Commit, Delta, Loaded, RedisStore, SessionStore};
    use rondo::session::StoreKey;
    use rondo_tests::redis::RedisServer;
    use rondo_tests::store::{data, delta, new_key, record, redis_store, PREFIX, T0, T1, TTL};

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
