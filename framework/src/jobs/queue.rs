//! The queue behind a job runtime: a Redis stream shared by every server, or this
//! process's memory.

use super::envelope::{Delivery, Envelope, Outcome};
use super::error::JobsError;
use super::memory::MemoryQueue;
use super::redis::{Reader, RedisQueue};

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

    pub(crate) async fn fetch(
        &self,
        reader: &mut Reader,
        max: usize,
    ) -> Result<Vec<Delivery>, JobsError> {
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
