//! The in-process queue, used with the memory session store: same worker, same retries, but
//! nothing is shared between servers or kept across restarts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::envelope::{Delivery, Envelope, Outcome};
use super::error::JobsError;

/// How long a fetch waits for a job before it returns empty-handed.
const WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Shared {
    /// Jobs waiting to run. A short lock, never held across an await.
    items: Mutex<VecDeque<Envelope>>,
    ready: Notify,
    closed: AtomicBool,
}

/// Jobs in a `VecDeque`; retries wait in their own timer task.
#[derive(Default)]
pub(crate) struct MemoryQueue {
    shared: Arc<Shared>,
}

impl MemoryQueue {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&self, job: Envelope) -> Result<(), JobsError> {
        push(&self.shared, job, false)
    }

    /// Up to `max` jobs, waiting a little for the first one.
    pub(crate) async fn fetch(&self, max: usize) -> Vec<Delivery> {
        let notified = self.shared.ready.notified();
        let mut jobs = self.take(max);
        if jobs.is_empty() {
            // `notified` was created before the check, so a push in between is not missed.
            let _ = tokio::time::timeout(WAIT, notified).await;
            jobs = self.take(max);
        }
        jobs.into_iter()
            .map(|job| Delivery {
                tag: None,
                job: Ok(job),
                raw: Vec::new(),
            })
            .collect()
    }

    fn take(&self, max: usize) -> Vec<Envelope> {
        let mut items = self.shared.items.lock();
        let n = max.min(items.len());
        items.drain(..n).collect()
    }

    pub(crate) fn finish(&self, delivery: &Delivery, outcome: Outcome) {
        match outcome {
            Outcome::Ack => {}
            Outcome::Dead { reason } => {
                let (id, name) = match &delivery.job {
                    Ok(job) => (job.id.as_str(), job.name.as_str()),
                    Err(_) => ("?", "?"),
                };
                tracing::error!(job = %id, name = %name, reason = %reason, "job dead-lettered (in-process queue: dropped)");
            }
            Outcome::Requeue => {
                if let Ok(job) = &delivery.job {
                    if push(&self.shared, job.clone(), true).is_err() {
                        tracing::warn!(job = %job.id, "in-process job lost at shutdown");
                    }
                }
            }
            Outcome::Retry { job, delay } => {
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if push(&shared, job.clone(), false).is_err() {
                        tracing::warn!(job = %job.id, "in-process job retry lost at shutdown");
                    }
                });
            }
        }
    }

    /// No more jobs: says how many queued ones are lost.
    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        let lost = std::mem::take(&mut *self.shared.items.lock());
        if !lost.is_empty() {
            tracing::warn!(
                jobs = lost.len(),
                "in-process jobs not run before shutdown are lost"
            );
        }
    }
}

fn push(shared: &Shared, job: Envelope, front: bool) -> Result<(), JobsError> {
    if shared.closed.load(Ordering::Relaxed) {
        return Err(JobsError::Closed);
    }
    {
        let mut items = shared.items.lock();
        if front {
            items.push_front(job);
        } else {
            items.push_back(job);
        }
    }
    shared.ready.notify_one();
    Ok(())
}
