//! Test harness.
//!
//! - [`http`]: a Rondo app served on `127.0.0.1:0` and a small HTTP client.
//! - [`app`]: the example app against a test Redis, and a cookie jar.
//! - [`redis`]: a real `redis-server` child process per test, with inspection
//!   helpers.
//! - [`eventually`]: bounded polling.

pub mod app;
pub mod http;
pub mod redis;

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
