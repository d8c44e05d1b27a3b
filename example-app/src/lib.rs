//! The example application as a library, so tests can build it in-process on port 0.
//!
//! [`build`] wires the routes; the controllers live in [`api`] (the basket shop's JSON API),
//! [`pages`] (the HTML shop with CSRF-protected forms) and [`mod@bench`] (benchmark routes);
//! [`jobs`] holds the background job that fills a session's recommendations after a login.

pub mod api;
pub mod bench;
pub mod jobs;
pub mod pages;

use rondo::jobs::Jobs;
use rondo::{App, Config, SessionManager};

/// What can stop the app from starting.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the example app from its configuration.
///
/// # Errors
///
/// The configured session store cannot be reached at start-up (`[session] store = redis`),
/// the job queue cannot be set up, or `[example]` is invalid.
pub async fn build(config: Config) -> Result<App, BuildError> {
    let settings = jobs::ExampleSettings::from_section(config.section("example"))?;
    let sessions = SessionManager::from_config(&config).await?;
    let runtime = Jobs::builder(&config, &sessions)
        .register::<jobs::Hydrate>()
        .state(settings)
        .start()
        .await?;
    let app = runtime
        .install(sessions.install(App::new(config)))
        .get("/", pages::home)
        .post("/basket/add", pages::add_item)
        .post("/basket/clear", pages::clear_basket)
        .post("/login", pages::log_in)
        .post("/logout", pages::log_out)
        .get("/healthz", || async { "ok" })
        .get("/readyz", api::ready)
        .get("/api/basket", api::basket)
        .post("/api/basket/items", api::add_item)
        .delete("/api/basket", api::clear_basket)
        .post("/api/login", api::log_in)
        .post("/api/logout", api::log_out)
        .get("/api/me", api::me)
        .get("/api/recommendations", api::recommendations)
        .get("/api/jobs/stats", api::job_stats)
        .get("/bench/plain", bench::plain)
        .get("/bench/counter", bench::counter)
        .get("/bench/read", bench::read)
        .get("/bench/new", bench::new);
    Ok(app)
}
