//! [`Jobs`]: the runtime that dispatches and runs jobs, and its builder.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::envelope::Envelope;
use super::error::{JobsError, Result};
use super::job::{Job, JobContext};
use super::memory::MemoryQueue;
use super::queue::Queue;
use super::redis::RedisQueue;
use super::stats::{Counters, JobStats, StatsCollector};
use super::worker::{self, Handler, Inner, RunError, StateMap};
use crate::component::{Component, Installer};
use crate::config::Config;
use crate::redis::Redis;
use crate::session::{Backend, SessionManager};

/// Registers jobs and state, then starts the runtime ([`Jobs::builder`]).
pub struct JobsBuilder {
    config: Config,
    redis: Redis,
    sessions: SessionManager,
    handlers: HashMap<&'static str, Handler>,
    state: StateMap,
}

impl std::fmt::Debug for JobsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.handlers.keys().collect();
        names.sort();
        f.debug_struct("JobsBuilder").field("jobs", &names).finish()
    }
}

impl JobsBuilder {
    /// Registers the job type `J` under [`Job::NAME`]; a second registration of the same
    /// name replaces the first.
    #[must_use]
    pub fn register<J: Job>(mut self) -> Self {
        let handler: Handler = Box::new(|payload: Bytes, ctx: JobContext| {
            Box::pin(async move {
                let job: J = rmp_serde::from_slice(&payload)
                    .map_err(|e| RunError::Unreadable(e.to_string()))?;
                job.run(ctx).await.map_err(RunError::Failed)
            })
        });
        self.handlers.insert(J::NAME, handler);
        self
    }

    /// Registers a singleton that jobs get with [`JobContext::state`]; one per type.
    #[must_use]
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(TypeId::of::<T>(), Box::new(value));
        self
    }

    /// Starts the runtime: on the Redis stream when the sessions are in Redis, in-process
    /// otherwise (with a loud warning: such jobs are lost on restart).
    ///
    /// # Errors
    ///
    /// The queue's `[redis]` pool is missing or invalid, or the consumer group could not be
    /// created (Redis unreachable).
    pub async fn start(self) -> Result<Jobs> {
        let jobs = &self.config.jobs;
        // The queue follows the sessions: jobs write sessions, and must share their fate.
        let queue = if self.sessions.backend() == Backend::Redis {
            // The app's pool of that name: the sessions' own when it is the same one.
            let pool = self
                .redis
                .pool(self.config.jobs_pool_name())
                .await
                .map_err(|e| JobsError::Unavailable(e.to_string()))?;
            let queue = RedisQueue::new(pool, jobs, consumer_name()?).await?;
            tracing::info!(stream = %queue.stream(), consumer = %queue.consumer(), "jobs run from the Redis stream");
            Queue::Redis(queue)
        } else {
            warn_in_process();
            Queue::Memory(MemoryQueue::new())
        };
        let inner = Arc::new(Inner {
            queue,
            handlers: self.handlers,
            sessions: self.sessions,
            state: Arc::new(self.state),
            permits: Arc::new(Semaphore::new(jobs.concurrency)),
            config: jobs.clone(),
            counters: Counters::default(),
            tracker: TaskTracker::new(),
            closing: CancellationToken::new(),
            abort: CancellationToken::new(),
            in_flight: Mutex::default(),
        });
        inner.tracker.spawn(worker::fetch_loop(inner.clone()));
        if let Queue::Redis(_) = inner.queue {
            inner.tracker.spawn(worker::maintain(inner.clone()));
        }
        Ok(Jobs { inner })
    }
}

/// The job runtime: dispatch jobs, read its counters, shut it down. Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// # use rondo::jobs::{Job, JobContext, JobError};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Hydrate { session: rondo::SessionRef }
/// # impl Job for Hydrate {
/// #     const NAME: &'static str = "hydrate";
/// #     async fn run(self, _ctx: JobContext) -> Result<(), JobError> { Ok(()) }
/// # }
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use rondo::jobs::Jobs;
/// use rondo::{App, Config, Session, SessionManager, State};
///
/// async fn log_in(session: Session, State(jobs): State<Jobs>) -> Result<&'static str, rondo::SessionError> {
///     session.regenerate().await?;
///     session.put("user", "ada")?;
///     if let Some(reference) = session.reference() {
///         let job = Hydrate { session: reference };
///         if let Err(err) = jobs.dispatch(&job).await {
///             tracing::warn!(error = %err, "hydration not queued");
///         }
///     }
///     Ok("welcome")
/// }
///
/// let app = App::new(Config::load("config.ini")?);
/// let sessions = SessionManager::from_config(app.config(), app.redis()).await?;
/// let jobs = Jobs::builder(app.config(), app.redis(), &sessions)
///     .register::<Hydrate>()
///     .start()
///     .await?;
/// let app = app.with(sessions).with(jobs).post("/login", log_in);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("durable", &self.durable())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Jobs {
    /// A builder with `[jobs]` settings from `config`, running jobs against `sessions`; with
    /// Redis sessions the queue is on `redis`'s pool named by `[jobs] redis_connection_pool`
    /// (the app's: [`App::redis`](crate::App::redis)).
    pub fn builder(config: &Config, redis: &Redis, sessions: &SessionManager) -> JobsBuilder {
        JobsBuilder {
            config: config.clone(),
            redis: redis.clone(),
            sessions: sessions.clone(),
            handlers: HashMap::new(),
            state: HashMap::new(),
        }
    }

    /// Queues `job`; it runs on this or another server once a worker is free. Returns the
    /// job's id (for logs).
    ///
    /// # Errors
    ///
    /// No handler for `J` on this server, the job could not be encoded, the queue could not
    /// be reached, or (in-process queue) the runtime is shutting down.
    pub async fn dispatch<J: Job>(&self, job: &J) -> Result<String> {
        if !self.inner.handlers.contains_key(J::NAME) {
            return Err(JobsError::Unregistered(J::NAME));
        }
        let payload = rmp_serde::to_vec_named(job).map_err(|e| JobsError::Encode {
            name: J::NAME,
            message: e.to_string(),
        })?;
        let envelope = Envelope {
            id: random_hex(16)?,
            name: J::NAME.to_owned(),
            attempts: 0,
            payload: Bytes::from(payload),
        };
        self.inner.queue.push(&envelope).await?;
        Counters::bump(&self.inner.counters.dispatched);
        tracing::debug!(job = %envelope.id, name = J::NAME, "job dispatched");
        Ok(envelope.id)
    }

    /// This server's counters: dispatched, running, started, succeeded, retried,
    /// dead-lettered, requeued. A handful of relaxed atomic loads.
    pub fn stats(&self) -> JobStats {
        self.inner.counters.snapshot()
    }

    /// Whether jobs go through Redis (shared, kept across restarts) rather than memory.
    pub fn durable(&self) -> bool {
        matches!(self.inner.queue, Queue::Redis(_))
    }

    /// Stops taking jobs, lets running ones finish within `[jobs] shutdown_timeout`, stops
    /// the rest and puts them back on the queue (with Redis; in memory, queued jobs are lost
    /// and logged). Run by the server as a drain hook (installed with the component).
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.closing.cancel();
        inner.tracker.close();
        let grace = inner.config.shutdown_timeout;
        if tokio::time::timeout(grace, inner.tracker.wait())
            .await
            .is_err()
        {
            inner.abort.cancel();
            // Stopped jobs record their way back to the queue: one Redis call each.
            let settle = Duration::from_secs(2);
            if tokio::time::timeout(settle, inner.tracker.wait())
                .await
                .is_err()
            {
                tracing::error!("jobs still running after the shutdown deadline");
            }
        }
        match &inner.queue {
            Queue::Redis(queue) => queue.release(&inner.counters).await,
            Queue::Memory(queue) => queue.close(),
        }
    }
}

/// Installed in an app, the runtime is the state behind `State<Jobs>`, a drain hook (at
/// shutdown, jobs stop before the sessions' last commits) and the `rondo_jobs_*` metrics.
impl Component for Jobs {
    fn install(self, app: &mut Installer<'_>) {
        let jobs = self.clone();
        let stats = self.clone();
        app.state(self);
        app.on_drain(move || async move { jobs.shutdown().await });
        app.register_collector(StatsCollector(Box::new(move || stats.stats())));
    }
}

/// A consumer name no other process shares: host, process id and 32 random bits.
fn consumer_name() -> Result<String> {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    Ok(format!("{host}-{}-{}", std::process::id(), random_hex(4)?))
}

/// `bytes` random bytes from the OS, in hex.
fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| JobsError::Unavailable(format!("no randomness: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn warn_in_process() {
    let lines = [
        "JOBS RUN IN-PROCESS ONLY (the sessions use the memory store): queued jobs are NOT",
        "shared between servers and are LOST when this process stops. Use Redis sessions",
        "for a durable job queue.",
    ];
    eprintln!();
    for line in lines {
        eprintln!("!!! WARNING: {line}");
    }
    eprintln!();
    tracing::warn!("jobs run on the in-process queue: not durable");
}
