//! The `[jobs]` section: the background-job runtime and its queue.

use std::time::Duration;

use super::value::{self, Expected, ValueResult};
use super::Config;

/// The keys `[jobs]` accepts, for unknown-key errors and their did-you-mean.
pub(crate) const JOBS_KEYS: &[&str] = &[
    "concurrency",
    "max_attempts",
    "retry_backoff",
    "claim_timeout",
    "shutdown_timeout",
    "stream",
    "redis_connection_pool",
    "dead_letter_max_len",
];

/// The `[jobs]` section: how background jobs are queued and run.
///
/// Jobs follow the session store: with Redis sessions they go through a Redis stream (durable,
/// shared by every server), with the memory store they run in-process only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsConfig {
    /// `concurrency`: jobs running at once on this server, 1..=1024; default 8.
    pub concurrency: usize,
    /// `max_attempts`: runs (first included) before a job goes to the dead-letter stream,
    /// 1..=1000; default 5.
    pub max_attempts: u32,
    /// `retry_backoff`: delay before the first retry, doubled for each further one (at most
    /// 10 minutes), > 0; default 1 s.
    pub retry_backoff: Duration,
    /// `claim_timeout`: a job whose server stopped signalling life for this long is taken
    /// over by another server, >= 100 ms; default 30 s.
    pub claim_timeout: Duration,
    /// `shutdown_timeout`: at shutdown, how long running jobs may finish before they are
    /// stopped and put back on the queue; default 5 s (counted within `[http]
    /// shutdown_timeout`).
    pub shutdown_timeout: Duration,
    /// `stream`: the queue's name in Redis (its keys are `{prefix}jobs:{<stream>}...`, the
    /// braces a hash tag that keeps them in one Redis Cluster slot), letters, digits and
    /// `_-.:`; default `jobs`.
    pub stream: String,
    /// `redis_connection_pool`: the `[redis]` pool of the queue; default none, meaning
    /// `[session] redis_connection_pool`.
    pub redis_connection_pool: Option<String>,
    /// `dead_letter_max_len`: the dead-letter stream is trimmed to about this many entries,
    /// >= 1; default 10000.
    pub dead_letter_max_len: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            concurrency: 8,
            max_attempts: 5,
            retry_backoff: Duration::from_secs(1),
            claim_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
            stream: "jobs".to_owned(),
            redis_connection_pool: None,
            dead_letter_max_len: 10_000,
        }
    }
}

impl Config {
    /// The name of the `[redis]` pool the job queue uses: `[jobs] redis_connection_pool`, or
    /// the sessions' pool when it is not set.
    pub fn jobs_pool_name(&self) -> &str {
        self.jobs
            .redis_connection_pool
            .as_deref()
            .unwrap_or(&self.session.redis_connection_pool)
    }
}

/// Parses one `[jobs]` entry into `jobs`; `Ok(false)` for an unknown key.
pub(crate) fn parse_key(jobs: &mut JobsConfig, key: &str, v: &str) -> ValueResult<bool> {
    match key {
        "concurrency" => jobs.concurrency = value::count(v, 1, 1024)?,
        "max_attempts" => jobs.max_attempts = value::int(v, 1, 1000)?,
        "retry_backoff" => jobs.retry_backoff = value::positive_duration(v)?,
        "claim_timeout" => {
            jobs.claim_timeout = value::duration(v)
                .ok()
                .filter(|d| *d >= Duration::from_millis(100))
                .ok_or_else(|| Expected::new("a duration of at least 100ms"))?;
        }
        "shutdown_timeout" => jobs.shutdown_timeout = value::duration(v)?,
        "stream" => jobs.stream = stream_name(v)?,
        "redis_connection_pool" => {
            jobs.redis_connection_pool =
                Some(super::validate::non_empty(v, "the name of a [redis] pool")?);
        }
        "dead_letter_max_len" => jobs.dead_letter_max_len = value::count(v, 1, usize::MAX)?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn stream_name(v: &str) -> ValueResult<String> {
    let ok = (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(Expected::new(
            "a name of 1 to 64 letters, digits and _ - . :",
        ))
    }
}

/// With Redis sessions, the queue's pool must exist (sessions on `auto` or `memory` fall
/// back to in-process jobs, so a missing pool is no error then).
pub(crate) fn cross_check(config: &Config, pool_line: Option<usize>) -> super::Result<()> {
    let pool = config.jobs.redis_connection_pool.as_deref();
    super::pools::check_named_pool(config, "jobs", pool, pool_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed key parses, and the defaults are the documented ones.
    #[test]
    fn keys_parse_and_defaults() {
        let mut jobs = JobsConfig::default();
        assert_eq!(jobs.concurrency, 8);
        assert_eq!(jobs.claim_timeout, Duration::from_secs(30));
        for key in JOBS_KEYS {
            let sample = match *key {
                "stream" | "redis_connection_pool" => "queue.a",
                "claim_timeout" => "250ms",
                _ => "3",
            };
            assert_eq!(parse_key(&mut jobs, key, sample), Ok(true), "{key}");
        }
        assert_eq!(jobs.claim_timeout, Duration::from_millis(250));
        assert_eq!(parse_key(&mut jobs, "nope", "1"), Ok(false));
        assert!(parse_key(&mut jobs, "stream", "a b").is_err());
        assert!(parse_key(&mut jobs, "claim_timeout", "10ms").is_err());
        assert!(parse_key(&mut jobs, "concurrency", "0").is_err());
    }
}
