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
//! ([`JobContext::session`]), with the [`SessionRef`](crate::SessionRef) they were queued
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
//! - `job`: what an app writes: [`Job`], [`JobContext`], [`JobError`]; `error`: [`JobsError`].
//! - `runtime`: [`Jobs`] (build, register, dispatch, stats, shutdown), a component.
//! - `worker`: the fetch-run-acknowledge loop with its semaphore, and the Redis queue's
//!   maintenance loop.
//! - `queue`: the queue behind a runtime; `redis`: the Redis stream (`entry`: its entries as
//!   jobs); `memory`: the in-process one; `envelope`: a job on a queue, and its outcome.
//! - `stats`: the [`JobStats`] counters.

mod entry;
mod envelope;
mod error;
mod job;
mod memory;
mod queue;
mod redis;
mod runtime;
mod stats;
mod worker;

pub use error::{JobsError, Result};
pub use job::{Job, JobContext, JobError};
pub use runtime::{Jobs, JobsBuilder};
pub use stats::JobStats;
