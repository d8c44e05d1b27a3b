//! The one owner of Redis in an app: the named pools of `[redis]`, built the first time a
//! part asks for one, each with its timeouts, its broken-connection handling and its metrics,
//! and what else a part needs of Redis: pub/sub, a Cluster's map.
//!
//! Sessions, jobs and channels ask the app's [`Redis`] for a pool by name
//! ([`App::redis`](crate::App::redis)), so that a pool named by several of them exists once.
//! Nothing here knows about the server: a server's worker threads ask, when they start, for
//! connections of their own (see [`pool`]), and the pools follow.
//!
//! - [`pool`]: one named pool ([`RedisPool`]), home and per-thread.
//! - `connect`: opening connections to a standalone Redis, a primary named by Sentinels, or
//!   a Cluster, within the pool's timeout; following failovers.
//! - `conn`: one connection of any deployment ([`AnyConn`]) and an operation on it
//!   ([`RedisConn`]).
//! - `metrics`: the pools' Prometheus metrics.
//! - [`topology`]: a Redis Cluster's shards and hash slots, for connections of one's own per
//!   primary.
//! - [`pubsub`]: publishing ([`RedisPool::publish`]) and a [`Subscriber`] with connections of
//!   its own, that follows restarts, Sentinel failovers and a Cluster's slots.
//! - `resp`: the RESP reader and writer of the raw connections (pub/sub, the session
//!   layer's tracking).

mod conn;
mod connect;
mod metrics;
pub mod pool;
pub mod pubsub;
pub(crate) mod resp;
pub mod topology;

pub use conn::{AnyConn, RedisConn, RedisFailure};
pub use pool::{PoolError, RedisPool};
pub use pubsub::{Subscriber, SubscriberEvent};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::RedisPoolConfig;

/// The named Redis pools of an app, each built on first use. Cheap to clone (one `Arc`).
#[derive(Clone, Default)]
pub struct Redis {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    configs: BTreeMap<String, RedisPoolConfig>,
    /// The pools built so far; a short lock, never held across the build's await.
    pools: Mutex<HashMap<String, RedisPool>>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("pools", &self.inner.configs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Redis {
    /// The pools of `configs` (`[redis]` of the config file); nothing connects yet.
    pub fn new(configs: BTreeMap<String, RedisPoolConfig>) -> Self {
        Self {
            inner: Arc::new(Inner {
                configs,
                pools: Mutex::default(),
            }),
        }
    }

    /// The settings of the pool named `name`, if `[redis]` has it.
    pub fn config(&self, name: &str) -> Option<&RedisPoolConfig> {
        self.inner.configs.get(name)
    }

    /// The pool named `name`, built on first use.
    ///
    /// # Errors
    ///
    /// No such pool in `[redis]`, invalid settings, or (with `pool_prefill`) Redis down.
    pub async fn pool(&self, name: &str) -> Result<RedisPool, PoolError> {
        if let Some(pool) = self.inner.pools.lock().get(name) {
            return Ok(pool.clone());
        }
        let config = self
            .config(name)
            .ok_or_else(|| PoolError::UnknownPool(name.to_owned()))?;
        let pool = RedisPool::new(config).await?;
        // Two first uses may race: keep whichever was stored first.
        Ok(self
            .inner
            .pools
            .lock()
            .entry(name.to_owned())
            .or_insert(pool)
            .clone())
    }

    /// The pools built so far, by name.
    pub(crate) fn built(&self) -> Vec<RedisPool> {
        let mut pools: Vec<RedisPool> = self.inner.pools.lock().values().cloned().collect();
        pools.sort_by(|a, b| a.config().name.cmp(&b.config().name));
        pools
    }

    /// A collector of the pools' metrics (connections, check-outs, command latency and
    /// failures, each labelled `pool="{name}"`), for the app's registry.
    pub(crate) fn metrics(&self) -> impl prometheus_client::collector::Collector {
        metrics::PoolMetrics(self.clone())
    }
}
