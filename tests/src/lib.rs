//! Test harness.

pub mod app;
pub mod http;
