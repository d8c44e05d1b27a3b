//! Named Redis connection pools from `[redis] name[key]` entries.
//!
//! Each pool is a bb8 pool of bb8-redis multiplexed connections, built the first time it is
//! asked for. A connection is checked out for one operation only: the caller clones the
//! multiplexed handle and gives the pooled one back at once, so concurrent operations
//! pipeline over few sockets instead of queueing for a connection each.
//!
//! A server's lanes (`[http] workers`, see `lanes.rs`) each get a pool of their own, built on
//! the lane the first time a request there needs Redis, so that the task driving each of its
//! connections runs on the thread whose requests use it: a command then goes out and its
//! answer comes back without waking another thread. Work off the lanes (start-up, jobs,
//! shutdown) uses the pool's home pool. Metrics add them all up.
//!
//! Redis connections do not notice by themselves that the server went away, and a pool that
//! kept them would fail forever after a Redis restart. So every handle shares a "broken" flag
//! with its pooled connection: an I/O error or a timeout sets it, and the pool then drops the
//! connection at its next check-out (a flag check, not a PING round trip) and opens a new one.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
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
#[derive(Clone)]
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
    /// The home pool: used off the lanes.
    pool: bb8::Pool<Manager>,
    /// The lanes' pools.
    lanes: Arc<LanePools>,
    config: Arc<RedisPoolConfig>,
    metrics: Arc<CommandMetrics>,
}

/// The pools that lanes built for one [`RedisPool`], for its metrics.
struct LanePools {
    manager: Manager,
    /// The lane pools alive, by id (a lane's pool goes when its thread ends).
    live: Mutex<Vec<(u64, bb8::Pool<Manager>)>>,
}

thread_local! {
    /// On a lane: the pools built there, one per [`RedisPool`] used on it.
    static LANE_POOLS: RefCell<Vec<LanePool>> = const { RefCell::new(Vec::new()) };
}

/// A lane's pool for one [`RedisPool`]; ended with the lane's thread.
struct LanePool {
    /// Its id in the owner's `live` list.
    id: u64,
    pool: bb8::Pool<Manager>,
    /// The lane pools of the [`RedisPool`] it belongs to (while this is alive, no other can
    /// be allocated at the same address, so the address tells the owner).
    owner: Weak<LanePools>,
}

impl Drop for LanePool {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.live.lock().retain(|(id, _)| *id != self.id);
        }
    }
}

/// Ids for [`LanePool`]s.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What the metrics and readiness report of a pool: its home pool and its lanes' together.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    connections: u32,
    idle: u32,
    get_direct: u64,
    get_waited: u64,
    get_timed_out: u64,
    wait_time: Duration,
    created: u64,
    broken: u64,
}

impl Totals {
    fn add(&mut self, state: &bb8::State) {
        self.connections += state.connections;
        self.idle += state.idle_connections;
        let stats = &state.statistics;
        self.get_direct += stats.get_direct;
        self.get_waited += stats.get_waited;
        self.get_timed_out += stats.get_timed_out;
        self.wait_time += stats.get_wait_time;
        self.created += stats.connections_created;
        self.broken += stats.connections_closed_broken;
    }
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
        let manager = Manager { inner };
        let builder = builder(config);
        let pool = if config.pool_prefill {
            builder
                .min_idle(Some(config.pool_size))
                .build(manager.clone())
                .await
                .map_err(|e| PoolError::Unavailable {
                    pool: config.name.clone(),
                    message: e.to_string(),
                })?
        } else {
            builder.build_unchecked(manager.clone())
        };
        Ok(Self {
            pool,
            lanes: Arc::new(LanePools {
                manager,
                live: Mutex::default(),
            }),
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

    /// Why Redis refuses the settings of `config`, if it answers and does: a database index
    /// it does not have, a wrong user name or password. A pool only sees such a refusal as
    /// connections that never come (it keeps retrying until its timeout), so a start-up that
    /// failed asks here, with one direct connection, to report a configuration error
    /// instead of an outage. `None` when Redis cannot be reached at all, or accepts them.
    pub async fn refusal(config: &RedisPoolConfig) -> Option<String> {
        let client = redis::Client::open(config.url()).ok()?;
        let attempt = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        let err = match tokio::time::timeout(config.timeout, attempt).await {
            Ok(Err(err)) => err,
            Ok(Ok(_)) | Err(_) => return None,
        };
        let what = err.to_string();
        let name = &config.name;
        if what.contains("DB index is out of range") {
            Some(format!(
                "[redis] {name}[db_index] = {}: Redis at {}:{} has no such database (it \
                 answered \"{what}\"; its `databases` setting bounds the index)",
                config.db_index, config.host, config.port
            ))
        } else if [
            "WRONGPASS",
            "NOAUTH",
            "invalid password",
            "invalid username-password",
        ]
        .iter()
        .any(|sign| what.contains(sign))
        {
            Some(format!(
                "[redis] {name}[username] / {name}[password]: Redis at {}:{} refused them \
                 ({what})",
                config.host, config.port
            ))
        } else {
            None
        }
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
        let lane_pool = crate::lanes::on_lane().then(|| self.lane_pool());
        let pool = lane_pool.as_ref().unwrap_or(&self.pool);
        let pooled = pool.get().await.map_err(|e| PoolError::Unavailable {
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

    /// This lane's pool, built now if this is its first use here. Without `pool_prefill`
    /// it opens connections as they are needed; with it, it keeps one open.
    fn lane_pool(&self) -> bb8::Pool<Manager> {
        LANE_POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if let Some(lane) = pools
                .iter()
                .find(|p| std::ptr::eq(p.owner.as_ptr(), Arc::as_ptr(&self.lanes)))
            {
                return lane.pool.clone();
            }
            let min_idle = self.config.pool_prefill.then_some(1);
            let pool = builder(&self.config)
                .min_idle(min_idle)
                .build_unchecked(self.lanes.manager.clone());
            let id = next_id();
            self.lanes.live.lock().push((id, pool.clone()));
            pools.push(LanePool {
                id,
                pool: pool.clone(),
                owner: Arc::downgrade(&self.lanes),
            });
            pool
        })
    }

    /// The home pool's and the lanes' states added up.
    fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        totals.add(&self.pool.state());
        for (_, pool) in self.lanes.live.lock().iter() {
            totals.add(&pool.state());
        }
        totals
    }

    /// Connections open and idle (the home pool's and the lanes' together), for readiness
    /// and metrics.
    pub fn state(&self) -> (u32, u32) {
        let totals = self.totals();
        (totals.connections, totals.idle)
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

/// The settings every pool of `config` is built with (the home pool and the lanes').
fn builder(config: &RedisPoolConfig) -> bb8::Builder<Manager> {
    bb8::Pool::builder()
        .max_size(config.pool_size)
        .connection_timeout(config.timeout)
        // The broken flag replaces bb8-redis' PING on every check-out.
        .test_on_check_out(true)
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
        let states: Vec<(String, Totals)> = pools
            .iter()
            .map(|p| (p.config.name.clone(), p.totals()))
            .collect();
        let gauges = |f: fn(&Totals) -> u32| -> Vec<(String, ConstGauge)> {
            states
                .iter()
                .map(|(n, s)| (n.clone(), ConstGauge::new(i64::from(f(s)))))
                .collect()
        };
        let counters = |f: fn(&Totals) -> u64| -> Vec<(String, ConstCounter)> {
            states
                .iter()
                .map(|(n, s)| (n.clone(), ConstCounter::new(f(s))))
                .collect()
        };
        let e = &mut encoder;
        family(
            e,
            &gauges(|s| s.connections.saturating_sub(s.idle)),
            "rondo_redis_connections_in_use",
            "Pooled Redis connections checked out",
        )?;
        family(
            e,
            &gauges(|s| s.idle),
            "rondo_redis_connections_idle",
            "Pooled Redis connections idle",
        )?;
        family(
            e,
            &counters(|s| s.get_direct),
            "rondo_redis_checkouts_direct",
            "Check-outs served without waiting",
        )?;
        family(
            e,
            &counters(|s| s.get_waited),
            "rondo_redis_checkouts_waited",
            "Check-outs that had to wait for a connection",
        )?;
        family(
            e,
            &counters(|s| s.get_timed_out),
            "rondo_redis_checkout_timeouts",
            "Check-outs that timed out (the request got 503)",
        )?;
        let waited: Vec<(String, ConstCounter<f64>)> = states
            .iter()
            .map(|(n, s)| {
                let secs = s.wait_time.as_secs_f64();
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
            &counters(|s| s.created),
            "rondo_redis_connections_created",
            "Redis connections opened",
        )?;
        family(
            e,
            &counters(|s| s.broken),
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
