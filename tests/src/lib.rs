//! Test harness.
//!
//! - [`http`]: a Rondo app served on `127.0.0.1:0` and a small HTTP client.
//! - [`plain_app`]: the plain app (no sessions) of the routing, extractor, limit,
//!   responder, timeout and shutdown tests.
//! - [`app`]: the example app against a test Redis, a cookie jar, and readings of the
//!   shop's answers (basket, CSRF tokens).
//! - [`channels`]: an app with channel rules, a Pusher protocol client over a real
//!   WebSocket, channel authorization and signed publishing through the HTTP API.
//! - [`redis`]: a real `redis-server` child process per test, with inspection
//!   helpers.
//! - [`redis_ha`]: a local Redis Cluster (six nodes) and a Sentinel set (a primary, a
//!   replica, three sentinels), with failovers on demand.
//! - [`pubsub`]: a pub/sub subscriber's events read with time limits, and its connections
//!   as Redis lists them.
//! - [`process`]: a binary run as a child process (the example app started with a config,
//!   its address read from its log), for `example-app/tests`.
//! - [`session`]: a session seen from outside: its Redis key and hash, its cookie, a wait
//!   for an after-response commit.
//! - [`store`]: one session-store test suite run against every store (the
//!   [`store_suite!`] macro) and the fixtures of its cases.
//! - [`static_dir`]: a temporary directory of files served by `StaticFiles`.
//! - [`files`]: multipart bodies built by hand, and a `[files] dir` to look into.
//! - [`session_app`]: a custom app on the `Session` API, for the tests that call it
//!   directly.
//! - [`eventually`]: bounded polling.

pub mod app;
pub mod channels;
pub mod files;
pub mod http;
pub mod plain_app;
pub mod process;
pub mod pubsub;
pub mod redis;
pub mod redis_ha;
pub mod session;
pub mod session_app;
pub mod static_dir;
pub mod store;

/// The README's Rust examples, compiled by `cargo test --doc -p rondo-tests` (and run, unless
/// marked `no_run`; the block that shows a compile error is `compile_fail`). A code block
/// without a language would be taken for Rust: the README marks its other blocks `text`,
/// `sh`, `ini` or `toml`. `tests/readme.rs` checks that the crates these examples name are
/// the ones the README's `Cargo.toml` lists.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct Readme;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` every 20 ms until it gives a value, for at most `limit`.
///
/// # Panics
///
/// When `limit` passes without a value (naming `what`).
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
