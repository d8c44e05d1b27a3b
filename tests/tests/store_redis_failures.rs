//! Redis store cases with no memory-store counterpart, on failures: hashes Rondo did not
//! write (corrupt versions, stray fields, non-UTF-8 keys, a key of the wrong type) and a
//! Redis that is killed, paused or blocked in a slow command. They live in `mod redis_only`
//! like the rest of the Redis-only cases (`store_redis_commands.rs`); the suite run against
//! every store is in the other `store_*.rs` files.

#![allow(clippy::unwrap_used)]

/// Cases that only exist for Redis: foreign data, a dead, stalled or blocked server.
mod redis_only {
    use std::time::{Duration, Instant};

    use rondo::session::store::{Commit, Delta, Loaded, SessionStore, StoreError};
    use rondo_tests::store::{data, delta, new_key, record, redis_store, T0, T1, TTL};

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
}
