//! One named Redis pool: a bb8 pool of multiplexed connections to the pool's deployment
//! (standalone, Sentinel or Cluster: see `connect`). A connection is checked out for one
//! operation only: the caller clones the multiplexed handle and gives the pooled one back at
//! once, so concurrent operations pipeline over few sockets instead of queueing for a
//! connection each. A cluster's pool holds one connection, which multiplexes every node.
//!
//! A thread that serves requests on a runtime of its own (a server's worker thread says so
//! with `keep_connections_on_this_thread`) gets a pool of its own for every named pool,
//! built there the first time a request on it needs Redis, so that the task driving each of
//! its connections runs on the thread whose requests use it: a command then goes out and its
//! answer comes back without waking another thread. Other threads (start-up, jobs, shutdown)
//! use the pool's home pool. Metrics add them all up.
//!
//! Redis connections do not notice by themselves that the server went away, and a pool that
//! kept them would fail forever after a Redis restart or a failover. So every handle shares a
//! "broken" flag with its pooled connection: an I/O error, a timeout or a demoted primary's
//! answer sets it, and the pool then drops the connection at its next check-out (a flag
//! check, not a PING round trip) and opens a new one.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use redis::RedisError;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::conn::{CommandMetrics, RedisConn};
use super::connect::Manager;
use crate::config::{RedisMode, RedisPoolConfig};

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
    /// Redis answered with an error (an ACL denial, a command the server does not have).
    #[error("Redis pool {pool:?}: Redis refused: {message}")]
    Refused {
        /// The pool's name.
        pool: String,
        /// What Redis answered.
        message: String,
    },
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
    /// Stops the Sentinel watch (`connect::watch_failovers`) with the last clone.
    _watch: Option<Arc<DropGuard>>,
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
        let manager = Manager::new(config).map_err(|source| PoolError::Config {
            pool: config.name.clone(),
            source,
        })?;
        let builder = builder(config, &manager);
        let pool = if config.pool_prefill {
            let size = builder_size(config, &manager);
            builder
                .min_idle(Some(size))
                .build(manager.clone())
                .await
                .map_err(|e| PoolError::Unavailable {
                    pool: config.name.clone(),
                    message: e.to_string(),
                })?
        } else {
            builder.build_unchecked(manager.clone())
        };
        let watch = (config.mode == RedisMode::Sentinel).then(|| {
            let stop = CancellationToken::new();
            let watch =
                super::connect::watch_failovers(config.clone(), manager.clone(), stop.clone());
            tokio::spawn(watch);
            Arc::new(stop.drop_guard())
        });
        Ok(Self {
            pool,
            threads: Arc::new(ThreadPools {
                manager,
                live: Mutex::default(),
            }),
            config: Arc::new(config.clone()),
            metrics: Arc::default(),
            _watch: watch,
        })
    }

    /// Why Redis refuses the settings of `config`, if it answers and does: a database index
    /// it does not have, a wrong user name or password. A pool only sees such a refusal as
    /// connections that never come (it keeps retrying until its timeout), so a start-up that
    /// failed asks here, with one direct connection, to report a configuration error
    /// instead of an outage. `None` when Redis cannot be reached at all, or accepts them.
    pub async fn refusal(config: &RedisPoolConfig) -> Option<String> {
        let manager = Manager::new(config).ok()?;
        let attempt = async {
            let mut conn = manager.open().await?;
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
            tracked: pooled.armed != 0,
        })
    }

    /// Where the pool's data connections redirect their key tracking.
    pub(crate) fn redirect(&self) -> &Arc<super::connect::Redirect> {
        &self.threads.manager.redirect
    }

    /// How many failovers the Sentinels have announced so far (0 for other deployments):
    /// a raw connection to the primary opened before the last one reaches a demoted node.
    pub(crate) fn failovers(&self) -> u64 {
        self.threads.manager.generation.load(Ordering::Acquire)
    }

    /// A connection of the pool's deployment that is nobody else's and not pooled, without
    /// a response timeout: for a blocking read (`XREADGROUP BLOCK`), which would hold up the
    /// commands multiplexed on a shared connection.
    ///
    /// # Errors
    ///
    /// No connection within the pool's timeout.
    pub async fn dedicated(&self) -> Result<super::AnyConn, PoolError> {
        self.threads
            .manager
            .open_dedicated()
            .await
            .map_err(|e| PoolError::Unavailable {
                pool: self.config.name.clone(),
                message: e.to_string(),
            })
    }

    /// Whether the pool talks to a Redis Cluster (multi-key commands must then stay in one
    /// hash slot).
    pub fn is_cluster(&self) -> bool {
        self.threads.manager.is_cluster()
    }

    /// The primary's address, for a raw connection of its own (client-side caching,
    /// pub/sub): the configured one, or the one the Sentinels name now; `None` for a
    /// cluster (one primary per shard).
    ///
    /// # Errors
    ///
    /// The Sentinels could not be asked.
    pub async fn primary(&self) -> Result<Option<(String, u16)>, PoolError> {
        self.threads
            .manager
            .primary(&self.config)
            .await
            .map_err(|e| PoolError::Unavailable {
                pool: self.config.name.clone(),
                message: e.to_string(),
            })
    }

    /// The Sentinels' failover announcements (the generation after each), for connections
    /// of one's own that must move to the new primary at once; `None` unless the pool is a
    /// Sentinel one.
    pub(crate) fn failover_watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        (self.config.mode == RedisMode::Sentinel)
            .then(|| self.threads.manager.failovers.subscribe())
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
            let pool = builder(&self.config, &self.threads.manager)
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

/// Connections per pool: `pool_size`, or one for a cluster, whose connection multiplexes
/// every node.
fn builder_size(config: &RedisPoolConfig, manager: &Manager) -> u32 {
    if manager.is_cluster() {
        1
    } else {
        config.pool_size
    }
}

/// The settings every pool of `config` is built with (the home pool and the threads').
fn builder(config: &RedisPoolConfig, manager: &Manager) -> bb8::Builder<Manager> {
    bb8::Pool::builder()
        .max_size(builder_size(config, manager))
        .connection_timeout(config.timeout)
        // The broken flag replaces a PING on every check-out.
        .test_on_check_out(true)
}
