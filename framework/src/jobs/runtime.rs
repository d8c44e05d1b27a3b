//! [`Jobs`]: the runtime that dispatches and runs jobs, and its builder.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::memory::MemoryQueue;
use super::redis::RedisQueue;
use super::stats::{Counters, JobStats};
use super::worker::{self, Envelope, Queue};
use super::{Job, JobContext, JobError, JobsError, Result};
use crate::config::{Config, JobsConfig};
use crate::handler::BoxFuture;
use crate::redis_pool::RedisPool;
use crate::{App, SessionManager};

/// Why a run did not succeed.
pub(crate) enum RunError {
    /// The payload is not a value of the job's type: retrying cannot help.
    Unreadable(String),
    /// The job returned an error.
    Failed(JobError),
}

/// Decodes a payload and runs the job.
type Handler =
    Box<dyn Fn(Bytes, JobContext) -> BoxFuture<'static, Result<(), RunError>> + Send + Sync>;

type StateMap = HashMap<TypeId, Box<dyn Any + Send + Sync>>;

/// What the worker tasks share.
pub(crate) struct Inner {
    pub(crate) queue: Queue,
    pub(crate) handlers: HashMap<&'static str, Handler>,
    pub(crate) sessions: SessionManager,
    pub(crate) state: Arc<StateMap>,
    pub(crate) config: JobsConfig,
    pub(crate) counters: Counters,
    /// `[jobs] concurrency` permits: a job runs only while it holds one.
    pub(crate) permits: Arc<Semaphore>,
    /// The fetch loop, the maintenance loop and every running job, so shutdown can wait.
    pub(crate) tracker: TaskTracker,
    /// Cancelled at shutdown: stop taking jobs from the queue.
    pub(crate) closing: CancellationToken,
    /// Cancelled when the shutdown deadline passes: running jobs stop and go back.
    pub(crate) abort: CancellationToken,
    /// Stream entries running here, whose claim the maintenance loop renews. A short lock,
    /// never held across an await.
    pub(crate) in_flight: Mutex<HashSet<String>>,
}

/// Registers jobs and state, then starts the runtime ([`Jobs::builder`]).
pub struct JobsBuilder {
    config: Config,
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
        let queue = if self.sessions.store_kind() == "redis" {
            let name = self.config.jobs_pool_name();
            let pool_config =
                self.config.redis.get(name).ok_or_else(|| {
                    JobsError::Unavailable(format!("no Redis pool named {name:?}"))
                })?;
            // The sessions' own pool when it is the same one: no extra connections.
            let pool = match self.sessions.redis_pool() {
                Some(pool) if pool.config().name == name => pool.clone(),
                _ => RedisPool::new(pool_config)
                    .await
                    .map_err(|e| JobsError::Unavailable(e.to_string()))?,
            };
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
            inner.tracker.spawn(super::redis::maintain(inner.clone()));
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
/// let config = Config::load("config.ini")?;
/// let sessions = SessionManager::from_config(&config).await?;
/// let jobs = Jobs::builder(&config, &sessions).register::<Hydrate>().start().await?;
/// let app = jobs.install(sessions.install(App::new(config))).post("/login", log_in);
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
    /// A builder with `[jobs]` settings from `config`, running jobs against `sessions`.
    pub fn builder(config: &Config, sessions: &SessionManager) -> JobsBuilder {
        JobsBuilder {
            config: config.clone(),
            sessions: sessions.clone(),
            handlers: HashMap::new(),
            state: HashMap::new(),
        }
    }

    /// Registers the runtime with `app`: as state (for `State<Jobs>` in controllers) and as
    /// a drain hook, so that at shutdown jobs stop before the sessions' last commits, and
    /// its counters as `rondo_jobs_*` metrics.
    pub fn install(&self, app: App) -> App {
        let jobs = self.clone();
        let stats = self.clone();
        app.state(self.clone())
            .on_drain(move || async move { jobs.shutdown().await })
            .register_collector(super::stats::StatsCollector(Box::new(move || {
                stats.stats()
            })))
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
    /// and logged). Run by the server as a drain hook ([`Jobs::install`]).
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
