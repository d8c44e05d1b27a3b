//! The example application as a library, so tests can build it in-process on port 0.
//!
//! [`build`] wires the routes; the controllers live in [`api`] (the basket shop's JSON API),
//! [`pages`] (the HTML shop with CSRF-protected forms, rendered from `templates/`, kept
//! live by [`live`] over channels) and
//! [`mod@bench`] (benchmark routes); [`jobs`] holds the background job that fills a
//! session's recommendations after a login; [`settings`] reads `[example]`.

pub mod api;
pub mod bench;
pub mod jobs;
pub mod live;
pub mod pages;
pub mod settings;

use rondo::channels::Channels;
use rondo::jobs::Jobs;
use rondo::{App, Config, SessionManager, Templates};

pub use settings::TEMPLATES_DIR;

/// What can stop the app from starting.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the example app from its configuration.
///
/// # Errors
///
/// `[example]` is invalid, the templates cannot be loaded (`[example] templates`, default
/// [`TEMPLATES_DIR`]), the configured session store cannot be reached at start-up
/// (`[session] store = redis`), or the job queue cannot be set up.
pub async fn build(config: Config) -> Result<App, BuildError> {
    let settings = settings::ExampleSettings::from_section(config.section("example"))?;
    let templates = Templates::load(&settings.templates)?;
    let app = App::new(config);
    let sessions = SessionManager::from_config(app.config(), app.redis()).await?;
    let channels = live::channels(Channels::builder(app.config(), app.redis(), &sessions))
        .start()
        .await?;
    let runtime = Jobs::builder(app.config(), app.redis(), &sessions)
        .register::<jobs::Hydrate>()
        .state(settings)
        .state(channels.clone())
        .start()
        .await?;
    let app = app
        .with(sessions)
        .with(runtime)
        .with(channels)
        .state(templates)
        .get("/", pages::home)
        .get("/static/shop.css", pages::stylesheet)
        .get("/static/live.js", pages::live_script)
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
