//! Named Redis connection pools from `[redis] name[key]` entries.
//!
//! Each pool is a bb8 pool of bb8-redis multiplexed connections, built the first time it is
//! asked for. A connection is checked out for one operation only: the caller clones the
//! multiplexed handle and gives the pooled one back at once, so concurrent operations
//! pipeline over few sockets instead of queueing for a connection each.
//!
//! Redis connections do not notice by themselves that the server went away, and a pool that
//! kept them would fail forever after a Redis restart. So every handle shares a "broken" flag
//! with its pooled connection: an I/O error or a timeout sets it, and the pool then drops the
//! connection at its next check-out (a flag check, not a PING round trip) and opens a new one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bb8_redis::RedisConnectionManager;
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use redis::aio::MultiplexedConnection;
use redis::RedisError;

use crate::config::RedisPoolConfig;

/// A pool could not be created or a connection could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// `[redis]` has no pool of that name.
    #[error("no Redis pool named {0:?} in [redis]")]
    UnknownPool(String),
    /// The connection settings are not valid.
    #[error("invalid Redis settings for pool {pool:?}: {source}")]
    Config {
        /// The pool's name.
        pool: String,
        /// What the client said.
        source: RedisError,
    },
    /// No connection within the pool's timeout: Redis is down, slow, or the pool is exhausted.
    #[error("Redis pool {pool:?} unavailable: {message}")]
    Unavailable {
        /// The pool's name.
        pool: String,
        /// What went wrong.
        message: String,
    },
}

/// bb8-redis' manager, plus the broken flag described in the module docs.
struct Manager {
    inner: RedisConnectionManager,
}

/// A pooled connection and its broken flag.
struct Pooled {
    conn: MultiplexedConnection,
    broken: Arc<AtomicBool>,
}

impl bb8::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = RedisError;

    async fn connect(&self) -> Result<Pooled, RedisError> {
        let conn = bb8::ManageConnection::connect(&self.inner).await?;
        Ok(Pooled {
            conn,
            broken: Arc::default(),
        })
    }

    async fn is_valid(&self, conn: &mut Pooled) -> Result<(), RedisError> {
        if conn.broken.load(Ordering::Relaxed) {
            Err(RedisError::from((
                redis::ErrorKind::Io,
                "connection marked broken",
            )))
        } else {
            Ok(())
        }
    }

    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }
}

/// Command metrics of one pool, shared with its connections.
struct CommandMetrics {
    /// Seconds per command or script call, failures included.
    latency: Histogram,
    /// Failed commands by kind: dropped, timeout, server.
    failures: [Counter; 3],
}

/// One named pool.
#[derive(Clone)]
pub struct RedisPool {
    pool: bb8::Pool<Manager>,
    config: Arc<RedisPoolConfig>,
    metrics: Arc<CommandMetrics>,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("config", &self.config)
            .finish()
    }
}

impl RedisPool {
    /// Builds the pool. With `pool_prefill` it opens every connection now and fails if Redis
    /// cannot be reached; otherwise connections open on first use.
    ///
    /// # Errors
    ///
    /// Invalid settings, or (with `pool_prefill`) Redis unreachable.
    pub async fn new(config: &RedisPoolConfig) -> Result<Self, PoolError> {
        let inner =
            RedisConnectionManager::new(config.url()).map_err(|source| PoolError::Config {
                pool: config.name.clone(),
                source,
            })?;
        let builder = bb8::Pool::builder()
            .max_size(config.pool_size)
            .connection_timeout(config.timeout)
            // The broken flag replaces bb8-redis' PING on every check-out.
            .test_on_check_out(true);
        let manager = Manager { inner };
        let pool = if config.pool_prefill {
            builder
                .min_idle(Some(config.pool_size))
                .build(manager)
                .await
                .map_err(|e| PoolError::Unavailable {
                    pool: config.name.clone(),
                    message: e.to_string(),
                })?
        } else {
            builder.build_unchecked(manager)
        };
        Ok(Self {
            pool,
            config: Arc::new(config.clone()),
            metrics: Arc::new(CommandMetrics {
                latency: crate::metrics::seconds_histogram(),
                failures: Default::default(),
            }),
        })
    }

    /// Registers the pool's metrics with `app`: connections in use and idle, check-outs
    /// (direct, after a wait, timed out) and the time spent waiting, command latency and
    /// failures, each labelled `pool="{name}"`. A pool registered twice counts once.
    pub fn register_metrics(&self, app: crate::App) -> crate::App {
        if let Some(PoolMetricsSet(pools)) = app.state_ref::<PoolMetricsSet>().cloned() {
            let mut pools = pools.lock();
            if !pools.iter().any(|p| p.config.name == self.config.name) {
                pools.push(self.clone());
            }
            drop(pools);
            return app;
        }
        let pools = PoolMetricsSet(Arc::new(Mutex::new(vec![self.clone()])));
        app.state(pools.clone()).register_collector(pools)
    }

    /// The pool's settings.
    pub fn config(&self) -> &RedisPoolConfig {
        &self.config
    }

    /// Checks a connection out for one operation and returns it to the pool at once; the
    /// handle stays usable because multiplexed connections are shared.
    ///
    /// # Errors
    ///
    /// No connection within `timeout`.
    pub async fn conn(&self) -> Result<RedisConn, PoolError> {
        let pooled = self.pool.get().await.map_err(|e| PoolError::Unavailable {
            pool: self.config.name.clone(),
            message: match e {
                bb8::RunError::TimedOut => {
                    format!("no connection within {:?}", self.config.timeout)
                }
                bb8::RunError::User(err) => err.to_string(),
            },
        })?;
        Ok(RedisConn {
            conn: pooled.conn.clone(),
            broken: pooled.broken.clone(),
            timeout: self.config.timeout,
            metrics: self.metrics.clone(),
        })
    }

    /// Connections open and idle, for readiness and metrics.
    pub fn state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }
}

/// Why a command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisFailure {
    /// The connection was closed under the command (Redis restarted, or closed an idle
    /// connection): the connection is replaced and a retry on another one may well succeed.
    #[error("{0}")]
    Dropped(String),
    /// No answer within the timeout (the connection is replaced; Redis is down or stalled).
    #[error("{0}")]
    Unreachable(String),
    /// Redis answered with an error (a script error, a wrong type).
    #[error("{0}")]
    Server(String),
}

/// A connection for one operation, with the pool's command timeout.
pub struct RedisConn {
    conn: MultiplexedConnection,
    broken: Arc<AtomicBool>,
    timeout: Duration,
    metrics: Arc<CommandMetrics>,
}

impl RedisConn {
    /// Runs one command or script invocation built by `op`, bounded by the pool's timeout.
    /// A timeout or an I/O error marks the connection broken so the pool replaces it.
    ///
    /// # Errors
    ///
    /// The command failed, or did not answer in time.
    pub async fn run<T, F, Fut>(&mut self, op: F) -> Result<T, RedisFailure>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let started = std::time::Instant::now();
        let outcome = self.run_timed(op).await;
        self.metrics
            .latency
            .observe(started.elapsed().as_secs_f64());
        if let Err(failure) = &outcome {
            let kind = match failure {
                RedisFailure::Dropped(_) => "dropped",
                RedisFailure::Unreachable(_) => "timeout",
                RedisFailure::Server(_) => "server",
            };
            self.metrics.failures[kind_index(kind)].inc();
        }
        outcome
    }

    async fn run_timed<T, F, Fut>(&mut self, op: F) -> Result<T, RedisFailure>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        match tokio::time::timeout(self.timeout, op(self.conn.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) if err.is_io_error() || err.is_connection_dropped() => {
                self.broken.store(true, Ordering::Relaxed);
                Err(RedisFailure::Dropped(err.to_string()))
            }
            Ok(Err(err)) if err.is_timeout() => {
                self.broken.store(true, Ordering::Relaxed);
                Err(RedisFailure::Unreachable(err.to_string()))
            }
            Ok(Err(err)) => Err(RedisFailure::Server(err.to_string())),
            Err(_elapsed) => {
                self.broken.store(true, Ordering::Relaxed);
                Err(RedisFailure::Unreachable(format!(
                    "no answer within {:?}",
                    self.timeout
                )))
            }
        }
    }
}

/// The pools whose metrics an app reports: one collector for all of them, so that each
/// metric is one family with a `pool` label.
#[derive(Clone)]
struct PoolMetricsSet(Arc<Mutex<Vec<RedisPool>>>);

impl std::fmt::Debug for PoolMetricsSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolMetricsSet")
    }
}

/// Encodes one family: `help` under `name`, one sample per pool.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    pools: &[(String, M)],
    name: &str,
    help: &str,
) -> Result<(), std::fmt::Error> {
    let Some((_, first)) = pools.first() else {
        return Ok(());
    };
    let mut family = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (pool, metric) in pools {
        metric.encode(family.encode_family(&[("pool", pool.as_str())])?)?;
    }
    Ok(())
}

impl Collector for PoolMetricsSet {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pools = self.0.lock().clone();
        let states: Vec<(String, bb8::State)> = pools
            .iter()
            .map(|p| (p.config.name.clone(), p.pool.state()))
            .collect();
        let gauges = |f: fn(&bb8::State) -> u32| -> Vec<(String, ConstGauge)> {
            states
                .iter()
                .map(|(n, s)| (n.clone(), ConstGauge::new(i64::from(f(s)))))
                .collect()
        };
        let counters = |f: fn(&bb8::State) -> u64| -> Vec<(String, ConstCounter)> {
            states
                .iter()
                .map(|(n, s)| (n.clone(), ConstCounter::new(f(s))))
                .collect()
        };
        let e = &mut encoder;
        family(
            e,
            &gauges(|s| s.connections.saturating_sub(s.idle_connections)),
            "rondo_redis_connections_in_use",
            "Pooled Redis connections checked out",
        )?;
        family(
            e,
            &gauges(|s| s.idle_connections),
            "rondo_redis_connections_idle",
            "Pooled Redis connections idle",
        )?;
        family(
            e,
            &counters(|s| s.statistics.get_direct),
            "rondo_redis_checkouts_direct",
            "Check-outs served without waiting",
        )?;
        family(
            e,
            &counters(|s| s.statistics.get_waited),
            "rondo_redis_checkouts_waited",
            "Check-outs that had to wait for a connection",
        )?;
        family(
            e,
            &counters(|s| s.statistics.get_timed_out),
            "rondo_redis_checkout_timeouts",
            "Check-outs that timed out (the request got 503)",
        )?;
        let waited: Vec<(String, ConstCounter<f64>)> = states
            .iter()
            .map(|(n, s)| {
                let secs = s.statistics.get_wait_time.as_secs_f64();
                (n.clone(), ConstCounter::new(secs))
            })
            .collect();
        family(
            e,
            &waited,
            "rondo_redis_checkout_wait_seconds",
            "Time spent waiting for a pooled connection",
        )?;
        family(
            e,
            &counters(|s| s.statistics.connections_created),
            "rondo_redis_connections_created",
            "Redis connections opened",
        )?;
        family(
            e,
            &counters(|s| s.statistics.connections_closed_broken),
            "rondo_redis_connections_broken",
            "Redis connections dropped as broken",
        )?;
        let latency: Vec<(String, Histogram)> = pools
            .iter()
            .map(|p| (p.config.name.clone(), p.metrics.latency.clone()))
            .collect();
        family(
            e,
            &latency,
            "rondo_redis_command_duration_seconds",
            "Redis command latency, failures included",
        )?;
        for kind in ["dropped", "timeout", "server"] {
            let failures: Vec<(String, ConstCounter)> = pools
                .iter()
                .map(|p| {
                    (
                        p.config.name.clone(),
                        ConstCounter::new(p.metrics.failures[kind_index(kind)].get()),
                    )
                })
                .collect();
            family(
                e,
                &failures,
                &format!("rondo_redis_command_failures_{kind}"),
                "Redis commands that failed: connection dropped, no answer in time, or an error reply",
            )?;
        }
        Ok(())
    }
}

fn kind_index(kind: &str) -> usize {
    match kind {
        "dropped" => 0,
        "timeout" => 1,
        _ => 2,
    }
}

/// The app's named pools, each created on first use.
#[derive(Default)]
pub struct RedisPools {
    configs: BTreeMap<String, RedisPoolConfig>,
    /// Pools built so far; a short lock, never held across the build's await.
    pools: Mutex<HashMap<String, RedisPool>>,
}

impl RedisPools {
    /// Pools for `[redis]`'s entries; nothing connects yet.
    pub fn new(configs: BTreeMap<String, RedisPoolConfig>) -> Self {
        Self {
            configs,
            pools: Mutex::default(),
        }
    }

    /// The pool named `name`, built on first use.
    ///
    /// # Errors
    ///
    /// No such pool in `[redis]`, invalid settings, or (with `pool_prefill`) Redis down.
    pub async fn get(&self, name: &str) -> Result<RedisPool, PoolError> {
        if let Some(pool) = self.pools.lock().get(name) {
            return Ok(pool.clone());
        }
        let config = self
            .configs
            .get(name)
            .ok_or_else(|| PoolError::UnknownPool(name.to_owned()))?;
        let pool = RedisPool::new(config).await?;
        // Two first uses may race: keep whichever was stored first.
        Ok(self
            .pools
            .lock()
            .entry(name.to_owned())
            .or_insert(pool)
            .clone())
    }
}
