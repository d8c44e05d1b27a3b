//! Background work of the shop: after a login, a job computes the user's recommendations
//! (slow work, simulated by `[example] hydrate_delay_ms`) and stores them in the session, so
//! the next request reads them from the session at once.

use rondo::channels::Channels;
use rondo::jobs::{Job, JobContext, JobError, Jobs};
use rondo::{Session, SessionError, SessionRef};

use crate::live::RECOMMENDATIONS_READY;
use crate::settings::ExampleSettings;
use serde::{Deserialize, Serialize};

/// The session key the job fills: a `Vec<String>`.
pub const RECOMMENDATIONS: &str = "recommendations";

/// Fills a session's `recommendations` after a login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hydrate {
    /// The session to fill: a reference, never the id (the job sits in Redis).
    pub session: SessionRef,
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
            Err(err) => Err(err.into()),
            Ok(()) => {
                // Open tabs show them at once (the job runs on any server).
                if let Some(channels) = ctx.state::<Channels>() {
                    crate::live::publish(&channels, &session, RECOMMENDATIONS_READY, &items).await;
                }
                Ok(())
            }
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
    let Some(reference) = session.reference() else {
        return Ok(());
    };
    let job = Hydrate { session: reference };
    if let Err(err) = jobs.dispatch(&job).await {
        tracing::warn!(error = %err, "hydration job not queued");
    }
    Ok(())
}
