//! The worker: fetches jobs while permits of the concurrency semaphore are free, runs each in
//! its own task, and tells the queue the outcome (acknowledge, retry later, dead-letter, or
//! back to the queue at shutdown).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::sync::OwnedSemaphorePermit;

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::envelope::{failed, Delivery, Envelope, Outcome};
use super::job::{JobContext, JobError};
use super::queue::Queue;
use super::redis::Reader;
use super::stats::Counters;
use crate::config::JobsConfig;
use crate::session::SessionManager;

/// Most jobs taken from the queue in one fetch.
const BATCH: usize = 32;

/// Why a run did not succeed.
pub(crate) enum RunError {
    /// The payload is not a value of the job's type: retrying cannot help.
    Unreadable(String),
    /// The job returned an error.
    Failed(JobError),
}

/// Decodes a payload and runs the job.
pub(crate) type Handler =
    Box<dyn Fn(Bytes, JobContext) -> BoxFuture<'static, Result<(), RunError>> + Send + Sync>;

pub(crate) type StateMap = HashMap<TypeId, Box<dyn Any + Send + Sync>>;

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

/// The fetch loop: one permit per job, fetched in batches, until the runtime closes.
pub(crate) async fn fetch_loop(inner: Arc<Inner>) {
    let mut reader = Reader::default();
    let mut backoff = Duration::from_millis(100);
    loop {
        let first = tokio::select! {
            permit = inner.permits.clone().acquire_owned() => permit,
            () = inner.closing.cancelled() => break,
        };
        let Ok(first) = first else { break };
        let mut permits = vec![first];
        while permits.len() < BATCH {
            match inner.permits.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let fetched = tokio::select! {
            fetched = inner.queue.fetch(&mut reader, permits.len()) => fetched,
            () = inner.closing.cancelled() => break,
        };
        match fetched {
            Ok(deliveries) => {
                backoff = Duration::from_millis(100);
                for delivery in deliveries {
                    let Some(permit) = permits.pop() else { break };
                    let job = run(inner.clone(), delivery, permit);
                    inner.tracker.spawn(job);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "fetching jobs failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = inner.closing.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Runs one delivery and records its outcome; the permit is held until then.
async fn run(inner: Arc<Inner>, delivery: Delivery, _permit: OwnedSemaphorePermit) {
    let counters = &inner.counters;
    if let Some(tag) = &delivery.tag {
        inner.in_flight.lock().insert(tag.clone());
    }
    counters.running.fetch_add(1, Ordering::Relaxed);
    let outcome = match &delivery.job {
        Err(why) => {
            tracing::error!(reason = %why, "unreadable job entry moved to the dead-letter stream");
            Outcome::Dead {
                reason: format!("unreadable job entry: {why}"),
            }
        }
        Ok(job) => attempt(&inner, job).await,
    };
    match &outcome {
        Outcome::Ack => Counters::bump(&counters.succeeded),
        Outcome::Retry { .. } => Counters::bump(&counters.retried),
        Outcome::Dead { .. } => Counters::bump(&counters.dead_lettered),
        Outcome::Requeue => Counters::bump(&counters.requeued),
    }
    inner.queue.finish(&delivery, outcome).await;
    counters.running.fetch_sub(1, Ordering::Relaxed);
    if let Some(tag) = &delivery.tag {
        inner.in_flight.lock().remove(tag);
    }
}

/// One run of `job`, stopped (and put back) if the shutdown deadline passes first.
async fn attempt(inner: &Arc<Inner>, job: &Envelope) -> Outcome {
    let Some(handler) = inner.handlers.get(job.name.as_str()) else {
        return failed(
            &inner.config,
            job,
            format!("no job registered as {:?}", job.name),
        );
    };
    Counters::bump(&inner.counters.started);
    let ctx = JobContext {
        sessions: inner.sessions.clone(),
        state: inner.state.clone(),
        attempt: job.attempts.saturating_add(1),
        id: Arc::from(job.id.as_str()),
    };
    let running = std::panic::AssertUnwindSafe(handler(job.payload.clone(), ctx)).catch_unwind();
    let result = tokio::select! {
        result = running => result,
        () = inner.abort.cancelled() => {
            tracing::warn!(job = %job.id, name = %job.name, "shutdown deadline: job stopped and put back on the queue");
            return Outcome::Requeue;
        }
    };
    match result {
        Ok(Ok(())) => {
            tracing::debug!(job = %job.id, name = %job.name, "job done");
            Outcome::Ack
        }
        Ok(Err(RunError::Unreadable(why))) => {
            tracing::error!(job = %job.id, name = %job.name, reason = %why, "job payload unreadable; moved to the dead-letter stream");
            Outcome::Dead {
                reason: format!("payload unreadable: {why}"),
            }
        }
        Ok(Err(RunError::Failed(err))) => failed(&inner.config, job, err.to_string()),
        Err(_panic) => failed(&inner.config, job, "the job panicked".to_owned()),
    }
}

/// The maintenance loop: renew claims, promote due retries, take over lost entries.
pub(crate) async fn maintain(inner: Arc<Inner>) {
    let Queue::Redis(queue) = &inner.queue else {
        return;
    };
    let tick = (queue.claim_timeout / 3).clamp(Duration::from_millis(30), Duration::from_secs(1));
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = inner.closing.cancelled() => break,
        }
        let tags: Vec<String> = inner.in_flight.lock().iter().cloned().collect();
        let rounds = [
            queue.renew(tags).await,
            queue.promote_due().await,
            queue.take_over(&inner.config, &inner.counters).await,
        ];
        for err in rounds.into_iter().filter_map(Result::err) {
            tracing::debug!(error = %err, "job queue maintenance failed; retrying");
        }
    }
    // Running jobs still need their claims renewed until they are done or stopped.
    while !inner.in_flight.lock().is_empty() {
        let tags: Vec<String> = inner.in_flight.lock().iter().cloned().collect();
        let _ = queue.renew(tags).await;
        tokio::time::sleep(tick).await;
    }
}
