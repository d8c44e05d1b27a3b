//! The worker: fetches jobs while permits of the concurrency semaphore are free, runs each in
//! its own task, and tells the queue the outcome (acknowledge, retry later, dead-letter, or
//! back to the queue at shutdown).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::sync::OwnedSemaphorePermit;

use super::memory::MemoryQueue;
use super::redis::{Reader, RedisQueue};
use super::runtime::{Inner, RunError};
use super::stats::Counters;
use super::{JobContext, JobsError};

/// Most jobs taken from the queue in one fetch.
const BATCH: usize = 32;
/// Longest wait between retries of a job.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// A job as it travels on a queue.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    /// Unique per dispatch, kept across retries.
    pub(crate) id: String,
    /// The job's [`Job::NAME`](super::Job::NAME).
    pub(crate) name: String,
    /// Runs that failed or were lost so far.
    pub(crate) attempts: u32,
    /// The job's value as MessagePack.
    pub(crate) payload: Bytes,
}

/// One job the queue handed to this server.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The queue's tag for it (the stream entry id); `None` in memory.
    pub(crate) tag: Option<String>,
    /// The job, or why its entry could not be read.
    pub(crate) job: Result<Envelope, String>,
    /// The entry's fields as stored, kept for the dead-letter stream.
    pub(crate) raw: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What happens to a delivery after its run.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Done: acknowledge and forget.
    Ack,
    /// Failed: run `job` again after `delay`.
    Retry { job: Envelope, delay: Duration },
    /// Out of attempts or unreadable: to the dead-letter stream, with why.
    Dead { reason: String },
    /// Not run (shutdown): back on the queue as it was.
    Requeue,
}

/// The queue behind the runtime (one per runtime, so the size difference does not matter).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Queue {
    Redis(RedisQueue),
    Memory(MemoryQueue),
}

impl Queue {
    pub(crate) async fn push(&self, job: &Envelope) -> Result<(), JobsError> {
        match self {
            Self::Redis(q) => q.push(job).await,
            Self::Memory(q) => q.push(job.clone()),
        }
    }

    async fn fetch(&self, reader: &mut Reader, max: usize) -> Result<Vec<Delivery>, JobsError> {
        match self {
            Self::Redis(q) => q.fetch(reader, max).await,
            Self::Memory(q) => Ok(q.fetch(max).await),
        }
    }

    pub(crate) async fn finish(&self, delivery: &Delivery, outcome: Outcome) {
        let result = match self {
            Self::Redis(q) => q.finish(delivery, &outcome).await,
            Self::Memory(q) => {
                q.finish(delivery, outcome);
                Ok(())
            }
        };
        if let Err(err) = result {
            // The entry stays pending under this server: another server takes it over after
            // `claim_timeout` (or this one puts it back at shutdown).
            tracing::warn!(error = %err, "job outcome could not be recorded; it will run again");
        }
    }
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
        return failed(inner, job, format!("no job registered as {:?}", job.name));
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
        Ok(Err(RunError::Failed(err))) => failed(inner, job, err.to_string()),
        Err(_panic) => failed(inner, job, "the job panicked".to_owned()),
    }
}

/// A failed run: retried with backoff, or dead-lettered once out of attempts.
pub(crate) fn failed(inner: &Inner, job: &Envelope, why: String) -> Outcome {
    let attempts = job.attempts.saturating_add(1);
    if attempts >= inner.config.max_attempts {
        tracing::error!(job = %job.id, name = %job.name, attempts, error = %why, "job failed for the last time; moved to the dead-letter stream");
        return Outcome::Dead {
            reason: format!("failed {attempts} times; last error: {why}"),
        };
    }
    let delay = backoff(inner.config.retry_backoff, attempts);
    tracing::warn!(job = %job.id, name = %job.name, attempts, error = %why, retry_in_ms = delay.as_millis() as u64, "job failed; it will be retried");
    Outcome::Retry {
        job: Envelope {
            attempts,
            ..job.clone()
        },
        delay,
    }
}

/// `base` doubled for each failure after the first, at most [`MAX_BACKOFF`].
fn backoff(base: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retry delays double from the base and stop growing at the cap.
    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), base);
        assert_eq!(backoff(base, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, 4), Duration::from_millis(800));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }
}
