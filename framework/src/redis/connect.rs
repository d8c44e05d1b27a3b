//! Opening connections to each deployment, within the pool's timeout (a connection that
//! does not come in time is an error, never a hang):
//!
//! - **standalone**: one multiplexed connection to `host:port`;
//! - **sentinel**: every new connection asks the Sentinels for the current primary (the
//!   look-up skips a primary they hold for down, and checks the node's `ROLE`), so a pool
//!   that retires its connections after a failover finds the new primary by itself. The
//!   Sentinels also announce a failover (`+switch-master`): [`watch_failovers`] retires every
//!   connection at once then, since the old primary may still accept writes for a while
//!   before it learns it was demoted, and those writes would be lost;
//! - **cluster**: one cluster connection, itself multiplexed per node; it follows `MOVED` and
//!   `ASK` and refreshes its slot map, so a pool of one is all a thread needs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{AsyncConnectionConfig, RedisConnectionInfo, RedisError, RedisResult};

use super::conn::AnyConn;
use crate::config::{RedisMode, RedisPoolConfig};

/// How a pool reaches its deployment.
enum Target {
    Standalone(redis::Client),
    Sentinel {
        /// `async_master_for` takes `&mut`: look-ups are serialised (they are rare: only
        /// when a pool opens a connection).
        sentinel: tokio::sync::Mutex<Sentinel>,
        master_name: String,
        node: SentinelNodeConnectionInfo,
    },
    Cluster {
        client: Box<ClusterClient>,
        /// The same nodes without a response timeout, for blocking reads.
        blocking: Box<ClusterClient>,
    },
}

/// Opens connections for one named pool (bb8's manager of its pools).
#[derive(Clone)]
pub(crate) struct Manager {
    target: Arc<Target>,
    timeout: Duration,
    /// Bumped when the Sentinels announce a failover: connections opened before are retired.
    pub(crate) generation: Arc<AtomicU64>,
    /// Where the data connections redirect their key tracking (the session layer's
    /// tracking connection), when it is up.
    pub(crate) redirect: Arc<Redirect>,
    /// The same announcement for those that wait for it rather than check a counter (the
    /// pub/sub subscriber's connection to the primary moves at once).
    pub(crate) failovers: Arc<tokio::sync::watch::Sender<u64>>,
}

/// The key-tracking redirection of a pool's data connections.
///
/// The session layer's tracking connection publishes its `CLIENT ID` here with its epoch
/// while it is up. Every connection the pool opens then starts with
/// `CLIENT TRACKING ON REDIRECT <id> OPTIN NOLOOP`, and remembers the epoch it was armed
/// for; a connection armed for another epoch (or not armed while one is published) is
/// retired at its next check-out. So a connection checked out while epoch `E` is published
/// is armed for `E`: a read made on it after `CLIENT CACHING YES` is tracked for this node.
#[derive(Debug, Default)]
pub(crate) struct Redirect {
    /// The published epoch; 0: none.
    epoch: AtomicU64,
    /// The tracking connection's id, with the epoch it belongs to.
    target: parking_lot::Mutex<Option<(u64, u64)>>,
}

impl Redirect {
    /// Publishes the tracking connection `client_id` of `epoch`.
    pub(crate) fn set(&self, epoch: u64, client_id: u64) {
        let mut target = self.target.lock();
        *target = Some((epoch, client_id));
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// Withdraws the redirection (the tracking connection is down).
    pub(crate) fn clear(&self) {
        let mut target = self.target.lock();
        *target = None;
        self.epoch.store(0, Ordering::SeqCst);
    }

    /// A data connection could not be redirected to the target of `epoch` (it is gone):
    /// withdraws it, so that the tracking connection notices and starts over.
    fn failed(&self, epoch: u64) {
        let mut target = self.target.lock();
        if matches!(*target, Some((e, _)) if e == epoch) {
            *target = None;
            self.epoch.store(0, Ordering::SeqCst);
        }
    }

    /// The published epoch; 0 when none.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn target(&self) -> Option<(u64, u64)> {
        *self.target.lock()
    }
}

/// A pooled connection, its broken flag, and the failover generation it was opened in.
pub(crate) struct Pooled {
    pub(crate) conn: AnyConn,
    pub(crate) broken: Arc<AtomicBool>,
    generation: u64,
    /// The [`Redirect`] epoch its key tracking was armed for; 0: not armed.
    pub(crate) armed: u64,
}

fn invalid(message: String) -> RedisError {
    RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "invalid Redis settings",
        message,
    ))
}

impl Manager {
    /// The manager of `config`'s deployment; nothing connects yet.
    pub(crate) fn new(config: &RedisPoolConfig) -> RedisResult<Self> {
        let target = match config.mode {
            RedisMode::Standalone => Target::Standalone(redis::Client::open(config.url())?),
            RedisMode::Sentinel => {
                let sentinels: Vec<String> = config
                    .nodes
                    .iter()
                    .map(|(host, port)| format!("redis://{}:{port}", bracket(host)))
                    .collect();
                let master_name = config
                    .master_name
                    .clone()
                    .ok_or_else(|| invalid("mode = sentinel needs master_name".into()))?;
                let mut redis = RedisConnectionInfo::default().set_db(config.db_index);
                if let Some(username) = &config.username {
                    redis = redis.set_username(username);
                }
                if let Some(password) = &config.password {
                    redis = redis.set_password(password);
                }
                Target::Sentinel {
                    sentinel: tokio::sync::Mutex::new(Sentinel::build(sentinels)?),
                    master_name,
                    node: SentinelNodeConnectionInfo::default().set_redis_connection_info(redis),
                }
            }
            RedisMode::Cluster => {
                let nodes: Vec<String> = config
                    .addresses()
                    .iter()
                    .map(|(host, port)| {
                        let mut url = config.url_for(host, *port);
                        // A cluster has only database 0: no `/db` path.
                        if let Some(slash) = url.rfind('/') {
                            url.truncate(slash);
                        }
                        url
                    })
                    .collect();
                let builder = || {
                    ClusterClientBuilder::new(nodes.clone())
                        .connection_timeout(config.timeout)
                        // redis-rs waits at least 1.28 s before its first retry by default.
                        .min_retry_wait(50)
                        .max_retry_wait(500)
                };
                Target::Cluster {
                    client: Box::new(builder().response_timeout(config.timeout).build()?),
                    blocking: Box::new(builder().build()?),
                }
            }
        };
        Ok(Self {
            target: Arc::new(target),
            timeout: config.timeout,
            generation: Arc::default(),
            redirect: Arc::default(),
            failovers: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// Whether connections are a cluster's.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(*self.target, Target::Cluster { .. })
    }

    fn single_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
    }

    /// Opens a connection of the deployment, within the timeout.
    pub(crate) async fn open(&self) -> RedisResult<AnyConn> {
        self.open_with(self.single_config(), false).await
    }

    /// Opens a connection that is nobody else's (a blocking read must not hold up the
    /// commands multiplexed on a shared one); without a response timeout, since it blocks.
    pub(crate) async fn open_dedicated(&self) -> RedisResult<AnyConn> {
        // redis-rs times responses out after 500 ms unless told otherwise.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None);
        self.open_with(config, true).await
    }

    async fn open_with(
        &self,
        single: AsyncConnectionConfig,
        blocking: bool,
    ) -> RedisResult<AnyConn> {
        let open = async {
            match &*self.target {
                Target::Standalone(client) => Ok(AnyConn::Single(
                    client
                        .get_multiplexed_async_connection_with_config(&single)
                        .await?,
                )),
                Target::Sentinel {
                    sentinel,
                    master_name,
                    node,
                } => {
                    let client = sentinel
                        .lock()
                        .await
                        .async_master_for(master_name, Some(node))
                        .await?;
                    Ok(AnyConn::Single(
                        client
                            .get_multiplexed_async_connection_with_config(&single)
                            .await?,
                    ))
                }
                Target::Cluster {
                    client,
                    blocking: for_blocking,
                } => {
                    let client = if blocking { for_blocking } else { client };
                    Ok(AnyConn::Cluster(client.get_async_connection().await?))
                }
            }
        };
        match tokio::time::timeout(self.timeout, open).await {
            Ok(conn) => conn,
            Err(_) => Err(RedisError::from((
                redis::ErrorKind::Io,
                "no connection within the timeout",
            ))),
        }
    }

    /// The primary's address for a raw connection (client-side caching, pub/sub): the
    /// configured one, or the one the Sentinels name now. `None` for a cluster, which has
    /// one primary per shard.
    pub(crate) async fn primary(
        &self,
        config: &RedisPoolConfig,
    ) -> RedisResult<Option<(String, u16)>> {
        match &*self.target {
            Target::Standalone(_) => Ok(Some((config.host.clone(), config.port))),
            Target::Sentinel {
                sentinel,
                master_name,
                node,
            } => {
                let client = sentinel
                    .lock()
                    .await
                    .async_master_for(master_name, Some(node))
                    .await?;
                Ok(match client.get_connection_info().addr() {
                    redis::ConnectionAddr::Tcp(host, port) => Some((host.clone(), *port)),
                    _ => None,
                })
            }
            Target::Cluster { .. } => Ok(None),
        }
    }
}

/// `host` as it goes in a URL: IPv6 addresses bracketed.
fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = RedisError;

    async fn connect(&self) -> Result<Pooled, RedisError> {
        let generation = self.generation.load(Ordering::Acquire);
        let mut conn = self.open().await?;
        let armed = match self.redirect.target() {
            Some((epoch, client_id)) if !self.is_cluster() => {
                let mut command = redis::cmd("CLIENT");
                command
                    .arg("TRACKING")
                    .arg("ON")
                    .arg("REDIRECT")
                    .arg(client_id)
                    .arg("OPTIN")
                    .arg("NOLOOP");
                let arm = command.query_async::<()>(&mut conn);
                match tokio::time::timeout(self.timeout, arm).await {
                    Ok(Ok(())) => epoch,
                    Ok(Err(err)) if err.code().is_some() => {
                        tracing::debug!(error = %err, "key tracking could not be redirected; the tracking connection starts over");
                        self.redirect.failed(epoch);
                        0
                    }
                    Ok(Err(err)) => return Err(err),
                    Err(_) => {
                        return Err(RedisError::from((
                            redis::ErrorKind::Io,
                            "no answer to CLIENT TRACKING within the timeout",
                        )))
                    }
                }
            }
            _ => 0,
        };
        Ok(Pooled {
            conn,
            broken: Arc::default(),
            generation,
            armed,
        })
    }

    async fn is_valid(&self, conn: &mut Pooled) -> Result<(), RedisError> {
        if self.has_broken(conn) {
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
            || conn.generation != self.generation.load(Ordering::Acquire)
            || (conn.armed != self.redirect.epoch() && !self.is_cluster())
    }
}

/// Listens to the Sentinels of `config` for `+switch-master` of its primary and bumps
/// `manager`'s generation on each, which retires every connection opened before; until
/// `stop` fires. A lost Sentinel connection is reopened (on the next Sentinel) with a pause.
pub(crate) async fn watch_failovers(
    config: RedisPoolConfig,
    manager: Manager,
    stop: tokio_util::sync::CancellationToken,
) {
    let Some(master_name) = config.master_name.clone() else {
        return;
    };
    let mut next = 0usize;
    loop {
        let (host, port) = &config.nodes[next % config.nodes.len().max(1)];
        next += 1;
        let watched = async {
            let url = format!("redis://{}:{port}", bracket(host));
            let client = redis::Client::open(url)?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            let mut messages = pubsub.on_message();
            while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
                let text: String = message.get_payload().unwrap_or_default();
                // "<master name> <old ip> <old port> <new ip> <new port>"
                if text.split_whitespace().next() == Some(master_name.as_str()) {
                    let generation = manager.generation.fetch_add(1, Ordering::AcqRel) + 1;
                    manager.failovers.send_replace(generation);
                    tracing::warn!(pool = %config.name, switch = %text, "Redis failed over: connections to the old primary retired");
                }
            }
            RedisResult::Ok(())
        };
        tokio::select! {
            result = watched => {
                if let Err(err) = result {
                    tracing::debug!(pool = %config.name, error = %err, "Sentinel watch lost; retrying");
                }
            }
            () = stop.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = stop.cancelled() => return,
        }
    }
}
