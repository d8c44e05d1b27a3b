//! The example application as a library, so tests can build it in-process on port 0.
//!
//! [`build`] wires the routes; the controllers live in [`api`] (the basket shop's JSON API),
//! [`pages`] (the HTML shop with CSRF-protected forms, rendered from `templates/`, kept
//! live by [`live`] over channels), [`rooms`] (meeting rooms: join links, presence, chat,
//! shared files, LiveKit tokens; the second model of how Rondo is used) and
//! [`mod@bench`] (benchmark routes); [`jobs`] holds the background job that fills a
//! session's recommendations after a login; [`settings`] reads `[example]`.

pub mod api;
pub mod bench;
pub mod jobs;
pub mod live;
pub mod pages;
pub mod rooms;
pub mod settings;

use rondo::channels::Channels;
use rondo::files::TempFiles;
use rondo::jobs::Jobs;
use rondo::links::Links;
use rondo::livekit::LiveKit;
use rondo::{App, Config, SessionManager, SignedUrls, Templates};

pub use settings::TEMPLATES_DIR;

/// What can stop the app from starting.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the example app from its configuration.
///
/// # Errors
///
/// `[example]` is invalid, the templates cannot be loaded (`[example] templates`, default
/// [`TEMPLATES_DIR`]), the configured session store cannot be reached at start-up
/// (`[session] store = redis`), `[app] key` is missing in production, `[files] dir` cannot
/// be created, `[livekit]` is half configured, or the job queue cannot be set up.
pub async fn build(config: Config) -> Result<App, BuildError> {
    let settings = settings::ExampleSettings::from_section(config.section("example"))?;
    let templates = Templates::load(&settings.templates)?;
    let app = App::new(config);
    let sessions = SessionManager::from_config(app.config(), app.redis()).await?;
    let store = rooms::store::RoomStore::from_config(app.config(), app.redis(), &sessions).await?;
    let channels = live::channels(Channels::builder(app.config(), app.redis(), &sessions));
    let channels = rooms::live::channels(channels, store.clone())
        .start()
        .await?;
    let urls = SignedUrls::from_config(app.config())?;
    let links = Links::from_config(app.config(), app.redis(), &sessions).await?;
    let files = TempFiles::from_config(app.config(), app.redis(), &sessions, &urls).await?;
    let meeting_rooms = rooms::Rooms {
        store,
        links: links.clone(),
        files: files.clone(),
        channels: channels.clone(),
        livekit: livekit(app.config())?,
    };
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
        .with(urls)
        .with(links)
        .with(files.clone())
        .state(templates)
        .state(meeting_rooms)
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
    let app = rooms::routes(app);
    Ok(rooms::sweep_files(app, files))
}

/// The LiveKit project of `[livekit]`, or `None` when the section names none (the rooms'
/// token endpoint then answers 503).
///
/// # Errors
///
/// A section that sets some keys but not all, or a bad URL.
fn livekit(config: &Config) -> Result<Option<LiveKit>, BuildError> {
    let section = &config.livekit;
    if section.url.is_none() && section.api_key.is_none() && section.api_secret.is_none() {
        return Ok(None);
    }
    Ok(Some(LiveKit::from_config(config)?))
}
