//! Test harness.
//!
//! - [`http`]: a Rondo app served on `127.0.0.1:0` and a small HTTP client.
//! - [`app`]: the example app against a test Redis, and a cookie jar.
//! - [`redis`]: a real `redis-server` child process per test, with inspection
//!   helpers.

pub mod app;
pub mod http;
pub mod redis;
