//! Dedicated pub/sub connections: a subscriber's connection is in subscribe mode and can
//! carry nothing else, so it is never a pooled one. The owner hands one out per asker.

use super::pool::{PoolError, RedisPool};

impl RedisPool {
    /// A new pub/sub connection to the pool's primary (standalone or named by the
    /// Sentinels), nobody else's. Redis Cluster's sharded pub/sub is not offered here yet.
    ///
    /// # Errors
    ///
    /// The pool is a cluster's, the Sentinels cannot be asked, or Redis cannot be reached
    /// within the pool's timeout.
    pub async fn pubsub_connection(&self) -> Result<redis::aio::PubSub, PoolError> {
        let unavailable = |message: String| PoolError::Unavailable {
            pool: self.config().name.clone(),
            message,
        };
        let Some((host, port)) = self.primary().await? else {
            return Err(unavailable(
                "pub/sub on a Redis Cluster (sharded pub/sub) is not supported by this pool yet"
                    .into(),
            ));
        };
        let url = self.config().url_for(&host, port);
        let client = redis::Client::open(url).map_err(|e| PoolError::Config {
            pool: self.config().name.clone(),
            source: e,
        })?;
        match tokio::time::timeout(self.config().timeout, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(err)) => Err(unavailable(err.to_string())),
            Err(_) => Err(unavailable(format!(
                "no pub/sub connection within {:?}",
                self.config().timeout
            ))),
        }
    }
}
