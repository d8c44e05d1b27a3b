//! The example application as a library, so tests can build it in-process on port 0.
//!
//! [`build`] wires the routes; the controllers live in [`api`] (the basket shop's JSON API),
//! [`pages`] (the HTML shop with CSRF-protected forms, rendered from `templates/`) and
//! [`mod@bench`] (benchmark routes).

pub mod api;
pub mod bench;
pub mod pages;

use std::path::PathBuf;

use rondo::{App, Config, SessionManager, Templates};

/// What can stop the app from starting.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// Where the page templates are when `[example] templates` does not say: this crate's
/// `templates/` directory.
pub const TEMPLATES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");

/// Builds the example app from its configuration.
///
/// # Errors
///
/// The templates cannot be loaded (`[example] templates`, default [`TEMPLATES_DIR`]), or the
/// configured session store cannot be reached at start-up (`[session] store = redis`).
pub async fn build(config: Config) -> Result<App, BuildError> {
    let dir: Option<PathBuf> = match config.section("example") {
        Some(section) => section.get("templates")?,
        None => None,
    };
    let templates = Templates::load(dir.unwrap_or_else(|| PathBuf::from(TEMPLATES_DIR)))?;
    let sessions = SessionManager::from_config(&config).await?;
    let app = sessions
        .install(App::new(config))
        .state(templates)
        .get("/", pages::home)
        .get("/static/shop.css", pages::stylesheet)
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
        .get("/bench/plain", bench::plain)
        .get("/bench/counter", bench::counter)
        .get("/bench/read", bench::read)
        .get("/bench/new", bench::new);
    Ok(app)
}
