//! One named Redis pool: a bb8 pool of bb8-redis multiplexed connections. A connection is
//! checked out for one operation only: the caller clones the multiplexed handle and gives
//! the pooled one back at once, so concurrent operations pipeline over few sockets instead
//! of queueing for a connection each.
//!
//! A thread that serves requests on a runtime of its own (a server's worker thread says so
//! with `keep_connections_on_this_thread`) gets a pool of its own for every named pool,
//! built there the first time a request on it needs Redis, so that the task driving each of
//! its connections runs on the thread whose requests use it: a command then goes out and its
//! answer comes back without waking another thread. Other threads (start-up, jobs, shutdown)
//! use the pool's home pool. Metrics add them all up.
//!
//! Redis connections do not notice by themselves that the server went away, and a pool that
//! kept them would fail forever after a Redis restart. So every handle shares a "broken" flag
//! with its pooled connection: an I/O error or a timeout sets it, and the pool then drops the
//! connection at its next check-out (a flag check, not a PING round trip) and opens a new one.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bb8_redis::RedisConnectionManager;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
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
pub(crate) struct CommandMetrics {
    /// Seconds per command or script call, failures included.
    pub(crate) latency: Histogram,
    /// Failed commands: the connection dropped, no answer in time, an error reply.
    pub(crate) failures: [Counter; 3],
}

/// One named pool.
#[derive(Clone)]
pub struct RedisPool {
    /// The home pool: used by threads without pools of their own.
    pool: bb8::Pool<Manager>,
    /// The pools of the threads that keep their own.
    threads: Arc<ThreadPools>,
    config: Arc<RedisPoolConfig>,
    metrics: Arc<CommandMetrics>,
}

/// The pools that threads built for one [`RedisPool`], for its metrics.
struct ThreadPools {
    manager: Manager,
    /// The thread pools alive, by id (a thread's pool goes when the thread ends).
    live: Mutex<Vec<(u64, bb8::Pool<Manager>)>>,
}

thread_local! {
    /// Whether this thread keeps connections of its own ([`keep_connections_on_this_thread`]).
    static OWN_CONNECTIONS: Cell<bool> = const { Cell::new(false) };
    /// On such a thread: the pools built there, one per [`RedisPool`] used on it.
    static THREAD_POOLS: RefCell<Vec<ThreadPool>> = const { RefCell::new(Vec::new()) };
}

/// Marks the calling thread as one that serves requests on a runtime of its own: from now
/// on every [`RedisPool`] used on it opens connections of its own, driven on this thread.
/// The server's worker threads call this when they start.
pub(crate) fn keep_connections_on_this_thread() {
    OWN_CONNECTIONS.with(|own| own.set(true));
}

/// A thread's pool for one [`RedisPool`]; ended with the thread.
struct ThreadPool {
    /// Its id in the owner's `live` list.
    id: u64,
    pool: bb8::Pool<Manager>,
    /// The thread pools of the [`RedisPool`] it belongs to (while this is alive, no other
    /// can be allocated at the same address, so the address tells the owner).
    owner: Weak<ThreadPools>,
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.live.lock().retain(|(id, _)| *id != self.id);
        }
    }
}

/// Ids for [`ThreadPool`]s.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What the metrics and readiness report of a pool: its home pool and its threads' together.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Totals {
    pub(crate) connections: u32,
    pub(crate) idle: u32,
    pub(crate) get_direct: u64,
    pub(crate) get_waited: u64,
    pub(crate) get_timed_out: u64,
    pub(crate) wait_time: Duration,
    pub(crate) created: u64,
    pub(crate) broken: u64,
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
            threads: Arc::new(ThreadPools {
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
        let thread_pool = OWN_CONNECTIONS.with(Cell::get).then(|| self.thread_pool());
        let pool = thread_pool.as_ref().unwrap_or(&self.pool);
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

    /// This thread's pool, built now if this is its first use here. Without `pool_prefill`
    /// it opens connections as they are needed; with it, it keeps one open.
    fn thread_pool(&self) -> bb8::Pool<Manager> {
        THREAD_POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if let Some(own) = pools
                .iter()
                .find(|p| std::ptr::eq(p.owner.as_ptr(), Arc::as_ptr(&self.threads)))
            {
                return own.pool.clone();
            }
            let min_idle = self.config.pool_prefill.then_some(1);
            let pool = builder(&self.config)
                .min_idle(min_idle)
                .build_unchecked(self.threads.manager.clone());
            let id = next_id();
            self.threads.live.lock().push((id, pool.clone()));
            pools.push(ThreadPool {
                id,
                pool: pool.clone(),
                owner: Arc::downgrade(&self.threads),
            });
            pool
        })
    }

    /// The home pool's and the threads' states added up.
    pub(crate) fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        totals.add(&self.pool.state());
        for (_, pool) in self.threads.live.lock().iter() {
            totals.add(&pool.state());
        }
        totals
    }

    /// The pool's command metrics, shared with its connections.
    pub(crate) fn command_metrics(&self) -> &CommandMetrics {
        &self.metrics
    }

    /// Connections open and idle (the home pool's and the threads' together), for readiness
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

/// The settings every pool of `config` is built with (the home pool and the threads').
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
                RedisFailure::Dropped(_) => 0,
                RedisFailure::Unreachable(_) => 1,
                RedisFailure::Server(_) => 2,
            };
            self.metrics.failures[kind].inc();
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
