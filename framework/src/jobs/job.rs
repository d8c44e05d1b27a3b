//! What an application writes: a [`Job`], the [`JobContext`] it runs with, and the
//! [`JobError`] it may fail with.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::session::{Session, SessionError, SessionManager, SessionRef};

/// A kind of background work, queued as its serialized value (MessagePack).
///
/// Jobs run at least once: a job interrupted by a crash or a shutdown runs again, so `run`
/// should be idempotent (store results with `put`, or with `update` closures that compute
/// from what they find).
///
/// # Examples
///
/// ```
/// use rondo::jobs::{Job, JobContext, JobError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Greet {
///     session: rondo::SessionRef,
/// }
///
/// impl Job for Greet {
///     const NAME: &'static str = "greet";
///
///     async fn run(self, ctx: JobContext) -> Result<(), JobError> {
///         // `None`: the session ended (logged out) meanwhile; nothing to do.
///         let Some(session) = ctx.session(&self.session).await? else { return Ok(()) };
///         session.update("greeting", |_: Option<String>| "hello".to_owned()).await?;
///         Ok(())
///     }
/// }
/// ```
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The name the job is queued under: stable across deploys, unique per app.
    const NAME: &'static str;

    /// Does the work.
    ///
    /// # Errors
    ///
    /// Any [`JobError`]: the job is retried with backoff, then dead-lettered.
    fn run(self, ctx: JobContext) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// Why a job failed; the job is retried (then dead-lettered) with this message in the log.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A session operation failed (store down, value of the wrong type).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The job's own failure.
    #[error("{0}")]
    Failed(String),
}

impl JobError {
    /// A failure described by `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }
}

/// What a running job receives: sessions, its attempt number, app singletons.
#[derive(Clone)]
pub struct JobContext {
    pub(super) sessions: SessionManager,
    pub(super) state: Arc<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    pub(super) attempt: u32,
    pub(super) id: Arc<str>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl JobContext {
    /// The app's session manager.
    pub fn sessions(&self) -> &SessionManager {
        &self.sessions
    }

    /// Opens the session `reference` names ([`Session::reference`], queued with the job
    /// instead of the id) through its actor, like [`SessionManager::open_ref`]: `None` when
    /// it no longer exists, which is logged; the job should then end without error.
    ///
    /// # Errors
    ///
    /// The store could not be reached.
    pub async fn session(&self, reference: &SessionRef) -> Result<Option<Session>, SessionError> {
        let session = self.sessions.open_ref(reference).await?;
        if session.is_none() {
            tracing::info!(job = %self.id, "job's session no longer exists; nothing written");
        }
        Ok(session)
    }

    /// Which run this is: 1 for the first, more after failures or a server's crash.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The job's id, unique per dispatch (kept across retries), for logs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A clone of the singleton of type `T` registered with [`JobsBuilder::state`](super::JobsBuilder::state).
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.state
            .get(&TypeId::of::<T>())?
            .downcast_ref::<T>()
            .cloned()
    }
}
