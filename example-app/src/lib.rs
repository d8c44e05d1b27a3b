//! The example application as a library, so tests can build it in-process on port 0.
//!
//! [`build`] wires the routes; the controllers live in [`pages`] and [`bench`].

pub mod bench;
pub mod pages;

use rondo::{App, Config, RequestLog};

/// What can stop the app from starting.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the example app from its configuration.
///
/// # Errors
///
/// The configured session store cannot be reached at start-up.
pub async fn build(config: Config) -> Result<App, BuildError> {
    let app = App::new(config)
        .middleware(RequestLog)
        .get("/", pages::home)
        .get("/healthz", || async { "ok" })
        .get("/bench/plain", bench::plain);
    Ok(app)
}
