//! Why a job could not be dispatched, or the runtime not built.

/// Why a job could not be dispatched, or the runtime not built.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JobsError {
    /// The job's value could not be serialized.
    #[error("job {name:?} could not be encoded: {message}")]
    Encode {
        /// The job's [`Job::NAME`](super::Job::NAME).
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
