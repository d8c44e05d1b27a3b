//! Background work of the shop: after a login, a job computes the user's recommendations
//! (slow work, simulated by `[example] hydrate_delay_ms`) and stores them in the session, so
//! the next request reads them from the session at once.

use std::time::Duration;

use rondo::config::Section;
use rondo::jobs::{Job, JobContext, JobError, Jobs};
use rondo::{ConfigError, Session, SessionError};
use serde::{Deserialize, Serialize};

/// The session key the job fills: a `Vec<String>`.
pub const RECOMMENDATIONS: &str = "recommendations";

/// The keys `[example]` accepts.
const EXAMPLE_KEYS: &[&str] = &["hydrate_delay_ms"];

/// `[example]` settings, given to jobs as state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleSettings {
    /// `hydrate_delay_ms`: how long the hydration job's "slow work" takes; default 1500.
    pub hydrate_delay: Duration,
}

impl Default for ExampleSettings {
    fn default() -> Self {
        Self {
            hydrate_delay: Duration::from_millis(1500),
        }
    }
}

impl ExampleSettings {
    /// Reads `[example]` (absent: the defaults).
    ///
    /// # Errors
    ///
    /// An unknown key, or a `hydrate_delay_ms` that is not a whole number up to 600000.
    pub fn from_section(section: Option<&Section>) -> Result<Self, ConfigError> {
        let Some(section) = section else {
            return Ok(Self::default());
        };
        if let Some(key) = section.keys().find(|k| !EXAMPLE_KEYS.contains(k)) {
            let message = format!("unknown key; expected one of {}", EXAMPLE_KEYS.join(", "));
            return Err(section.error(key, message));
        }
        let ms: u64 = section.get_or("hydrate_delay_ms", 1500)?;
        if ms > 600_000 {
            let message = format!("expected milliseconds in 0..=600000, got {ms}");
            return Err(section.error("hydrate_delay_ms", message));
        }
        Ok(Self {
            hydrate_delay: Duration::from_millis(ms),
        })
    }
}

/// Fills a session's `recommendations` after a login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hydrate {
    /// The session to fill.
    pub session: String,
}

impl Job for Hydrate {
    const NAME: &'static str = "example.hydrate";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let Some(session) = ctx.session(&self.session).await? else {
            return Ok(());
        };
        let user: Option<String> = session.get("user").await?;
        let delay = ctx
            .state::<ExampleSettings>()
            .unwrap_or_default()
            .hydrate_delay;
        // The slow part: queries, API calls.
        tokio::time::sleep(delay).await;
        let items = recommendations_for(user.as_deref());
        session.put(RECOMMENDATIONS, &items)?;
        match session.persist().await {
            // Logged out while the work ran: nothing was written, and nothing comes back.
            Err(SessionError::Gone) => {
                tracing::info!(job = %ctx.id(), "session ended during hydration; results dropped");
                Ok(())
            }
            other => Ok(other?),
        }
    }
}

/// What the shop recommends to `user`.
pub fn recommendations_for(user: Option<&str>) -> Vec<String> {
    let user = user.unwrap_or("guest");
    vec![
        "starter-kit".to_owned(),
        "gift-card".to_owned(),
        format!("picked-for-{user}"),
    ]
}

/// Queues the hydration of `session` (just logged in). The session is stored first, so the
/// job finds it on any server. A queue failure is logged, not fatal: the login stands, the
/// recommendations just never become ready.
///
/// # Errors
///
/// The session could not be stored.
pub async fn hydrate_after_login(session: &Session, jobs: &Jobs) -> Result<(), SessionError> {
    session.persist().await?;
    let Some(id) = session.id() else {
        return Ok(());
    };
    let job = Hydrate {
        session: id.as_str().to_owned(),
    };
    if let Err(err) = jobs.dispatch(&job).await {
        tracing::warn!(error = %err, "hydration job not queued");
    }
    Ok(())
}
