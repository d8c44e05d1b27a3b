//! A job as it travels on a queue, what the queue hands out, and what becomes of a run.

use std::time::Duration;

use bytes::Bytes;

use crate::config::JobsConfig;

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

/// A failed run: retried with backoff, or dead-lettered once out of attempts.
pub(crate) fn failed(config: &JobsConfig, job: &Envelope, why: String) -> Outcome {
    let attempts = job.attempts.saturating_add(1);
    if attempts >= config.max_attempts {
        tracing::error!(job = %job.id, name = %job.name, attempts, error = %why, "job failed for the last time; moved to the dead-letter stream");
        return Outcome::Dead {
            reason: format!("failed {attempts} times; last error: {why}"),
        };
    }
    let delay = backoff(config.retry_backoff, attempts);
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
