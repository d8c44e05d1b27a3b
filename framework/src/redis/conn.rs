//! A connection for one operation: any deployment's connection behind one type, the pool's
//! command timeout around every operation, and the failures sorted into those that retire
//! the connection and those that do not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

/// A connection to any of the three deployments; cheap to clone (each kind is a handle to a
/// shared, multiplexed connection). It implements `ConnectionLike`, so commands, pipelines
/// and scripts run on it unchanged.
#[derive(Clone)]
pub enum AnyConn {
    /// A standalone Redis, or the primary the Sentinels named.
    Single(MultiplexedConnection),
    /// A Redis Cluster: routes each command to the node that owns its key, follows `MOVED`
    /// and `ASK`, and keeps its map of the slots current by itself.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for AnyConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "AnyConn::Single",
            Self::Cluster(_) => "AnyConn::Cluster",
        })
    }
}

impl ConnectionLike for AnyConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl AnyConn {
    /// Runs the first `count` commands of `pipeline` in one round trip and answers every
    /// reply, errors included as values. On a cluster the whole pipeline goes to the primary
    /// of `key`, so it may carry keyless commands that are about that key's node (`WAIT`,
    /// `CLIENT CACHING`).
    ///
    /// # Errors
    ///
    /// The connection failed.
    pub(crate) async fn pipeline_on_node_of(
        &mut self,
        key: &str,
        pipeline: &Pipeline,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, 0, count).await,
            Self::Cluster(c) => {
                let route = redis::cluster_routing::SingleNodeRoutingInfo::SpecificNode(
                    redis::cluster_routing::Route::with_key(
                        key,
                        redis::cluster_routing::SlotAddr::Master,
                    ),
                );
                c.route_pipeline(pipeline.clone(), 0, count, route).await
            }
        }
    }
}

/// Whether `err` means the connection is of no more use and must be replaced.
///
/// A single connection is replaced on any sign that it no longer reaches a usable primary:
/// an I/O error, a timeout, or `READONLY` / `MASTERDOWN` (a primary demoted by a failover,
/// or a replica that lost its primary: only a new look-up finds the new primary). A cluster
/// connection reconnects to its nodes by itself; only its background task gone is beyond
/// repair.
pub(crate) fn retires(conn: &AnyConn, err: &RedisError) -> bool {
    match conn {
        AnyConn::Single(_) => {
            err.is_io_error()
                || err.is_connection_dropped()
                || err.is_timeout()
                || err.is_unrecoverable_error()
                || matches!(err.code(), Some("READONLY" | "MASTERDOWN"))
        }
        AnyConn::Cluster(_) => {
            let text = err.to_string();
            text.contains("Unable to send command") || text.contains("Unable to receive command")
        }
    }
}

/// Command metrics of one pool, shared with its connections.
pub(crate) struct CommandMetrics {
    /// Seconds per command or script call, failures included.
    pub(crate) latency: Histogram,
    /// Failed commands: the connection dropped, no answer in time, an error reply.
    pub(crate) failures: [Counter; 3],
}

impl Default for CommandMetrics {
    fn default() -> Self {
        Self {
            latency: crate::metrics::seconds_histogram(),
            failures: Default::default(),
        }
    }
}

/// Why a command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisFailure {
    /// The connection was closed under the command (Redis restarted or failed over, or
    /// closed an idle connection): the connection is replaced and a retry on another one
    /// may well succeed.
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
    pub(crate) conn: AnyConn,
    /// Shared with the pooled connection: set, it retires it at the next check-out.
    pub(crate) broken: Arc<AtomicBool>,
    pub(crate) timeout: Duration,
    pub(crate) metrics: Arc<CommandMetrics>,
    /// Its key tracking redirects to this node's tracking connection: a read after
    /// `CLIENT CACHING YES` is tracked.
    pub(crate) tracked: bool,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn")
            .field("conn", &self.conn)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisConn {
    /// Whether this is a Redis Cluster's connection (multi-key commands must then stay in
    /// one hash slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, AnyConn::Cluster(_))
    }

    /// Whether reads on it can be tracked for this node's client-side caching (see the
    /// session layer's key tracking): they must then follow `CLIENT CACHING YES`.
    pub(crate) fn is_tracked(&self) -> bool {
        self.tracked
    }

    /// Runs one command, pipeline or script invocation built by `op`, bounded by the pool's
    /// timeout. A failure that means the connection is of no more use retires it.
    ///
    /// # Errors
    ///
    /// The command failed, or did not answer in time.
    pub async fn run<T, F, Fut>(&mut self, op: F) -> Result<T, RedisFailure>
    where
        F: FnOnce(AnyConn) -> Fut,
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
        F: FnOnce(AnyConn) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let err = match tokio::time::timeout(self.timeout, op(self.conn.clone())).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => err,
            Err(_elapsed) => {
                self.broken.store(true, Ordering::Relaxed);
                return Err(RedisFailure::Unreachable(format!(
                    "no answer within {:?}",
                    self.timeout
                )));
            }
        };
        let retired = retires(&self.conn, &err);
        if retired {
            self.broken.store(true, Ordering::Relaxed);
        }
        Err(if err.is_timeout() {
            RedisFailure::Unreachable(err.to_string())
        } else if retired || err.is_io_error() || err.is_connection_dropped() {
            RedisFailure::Dropped(err.to_string())
        } else {
            RedisFailure::Server(err.to_string())
        })
    }
}
