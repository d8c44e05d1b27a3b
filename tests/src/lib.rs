//! Test harness.

pub mod http;
