//! Background jobs: work dispatched from a request that runs outside it, with bounded
//! concurrency, on a durable queue shared by every server.
//!
//! A job is a serde type implementing [`Job`]; the app registers it on the [`Jobs`] runtime
//! and controllers dispatch it (`jobs.dispatch(&job)`, with `State<Jobs>`). With Redis
//! sessions the queue is a Redis stream read through a consumer group, so a job dispatched
//! on one server runs on whichever server is free, and survives restarts:
//!
//! - **at least once**: a job is acknowledged only after it succeeded; one whose server died
//!   is taken over by another server after `[jobs] claim_timeout` (a running job renews its
//!   claim, so in the normal path no job runs twice);
//! - **retries**: a failed job runs again after `retry_backoff`, doubled each time, and
//!   after `max_attempts` runs it goes to the dead-letter stream, as does a payload that
//!   cannot be read (never a panic);
//! - **graceful shutdown**: running jobs get `[jobs] shutdown_timeout` to finish; the rest
//!   go back to the queue for another server, before the sessions make their last commits.
//!
//! With the memory session store, jobs run in-process only (lost on restart), which the log
//! says loudly at start-up.
//!
//! Jobs reach sessions through [`SessionManager::open_ref`](crate::SessionManager::open_ref)
//! ([`JobContext::session`]), with the [`SessionRef`] they were queued
//! with (the id's hash: no credential sits in the queue): the same actor as requests, so a
//! job's writes and concurrent requests' writes are merged, and a job never recreates a
//! session that was logged out.
//!
//! Why Redis streams and no queue crate: the crates that fit (apalis-redis, for one) bring
//! their own Redis connection (a redis-rs `ConnectionManager`, not our bb8 pools, their
//! timeouts and metrics) and their own worker monitor, whose shutdown cannot be ordered
//! between the draining of requests and the sessions' last commits. A consumer group gives
//! what is needed (claims, takeover of a dead server's jobs, acknowledgement) in a few
//! commands on the pools the sessions already use.
//!
//! # Layout
//!
//! - `runtime`: [`Jobs`] (build, register, dispatch, stats, shutdown).
//! - `worker`: the fetch-run-acknowledge loop with its semaphore.
//! - `redis`: the Redis stream queue (`entry`: its entries as jobs); `memory`: the
//!   in-process one.
//! - `stats`: the [`JobStats`] counters.

mod entry;
mod memory;
mod redis;
mod runtime;
mod stats;
mod worker;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use runtime::{Jobs, JobsBuilder};
pub use stats::JobStats;

use crate::{Session, SessionError, SessionManager, SessionRef};

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

/// Why a job could not be dispatched, or the runtime not built.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JobsError {
    /// The job's value could not be serialized.
    #[error("job {name:?} could not be encoded: {message}")]
    Encode {
        /// The job's [`Job::NAME`].
        name: &'static str,
        /// What the encoder said.
        message: String,
    },
    /// The queue could not be reached (Redis down, pool exhausted).
    #[error("job queue unavailable: {0}")]
    Unavailable(String),
    /// The runtime is shutting down and no longer takes in-process jobs.
    #[error("the job runtime is shutting down")]
    Closed,
    /// The job's name has no registered handler on this server (a bug in the app).
    #[error("no job registered under the name {0:?}")]
    Unregistered(&'static str),
}

/// The result type of dispatching.
pub type Result<T, E = JobsError> = std::result::Result<T, E>;

/// What a running job receives: sessions, its attempt number, app singletons.
#[derive(Clone)]
pub struct JobContext {
    sessions: SessionManager,
    state: Arc<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    attempt: u32,
    id: Arc<str>,
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

    /// A clone of the singleton of type `T` registered with [`JobsBuilder::state`].
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.state
            .get(&TypeId::of::<T>())?
            .downcast_ref::<T>()
            .cloned()
    }
}
