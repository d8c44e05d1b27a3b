//! Where a channel belongs: on a standalone Redis, its one node; with Sentinels, the
//! primary they name now; on a Cluster, the primary serving the channel's hash slot (sharded
//! pub/sub keeps a channel on its slot's shard; hash tags apply, as for keys).

use super::Addr;
use crate::config::RedisMode;
use crate::redis::topology::{key_slot, Topology};
use crate::redis::RedisPool;

/// Where channels belong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Routes {
    /// Every channel on one node: a standalone Redis, or the primary the Sentinels name.
    One(Addr),
    /// A Cluster: for each slot, the index in `primaries` of its primary (`u16::MAX`: none).
    Slots {
        table: Vec<u16>,
        primaries: Vec<Addr>,
    },
}

impl Routes {
    pub(super) fn cluster(topology: &Topology) -> Self {
        Self::Slots {
            table: topology.slot_table(),
            primaries: topology.shards.iter().map(|s| s.primary.clone()).collect(),
        }
    }

    /// The node `channel` belongs on; `None` while its slot is served by no one.
    pub(super) fn node_for(&self, channel: &str) -> Option<&Addr> {
        match self {
            Self::One(addr) => Some(addr),
            Self::Slots { table, primaries } => {
                let index = table.get(usize::from(key_slot(channel.as_bytes())))?;
                primaries.get(usize::from(*index))
            }
        }
    }
}

/// Asks where channels belong now, within the pool's timeout.
pub(super) async fn resolve(pool: &RedisPool) -> Result<Routes, String> {
    let config = pool.config();
    let ask = async {
        match config.mode {
            RedisMode::Standalone => Ok(Routes::One((config.host.clone(), config.port))),
            RedisMode::Sentinel => match pool.primary().await {
                Ok(Some(addr)) => Ok(Routes::One(addr)),
                Ok(None) => Err("the Sentinels named no TCP address for the primary".to_owned()),
                Err(err) => Err(err.to_string()),
            },
            RedisMode::Cluster => Topology::fetch(pool)
                .await
                .map(|topology| Routes::cluster(&topology))
                .map_err(|e| e.to_string()),
        }
    };
    match tokio::time::timeout(config.timeout, ask).await {
        Ok(routes) => routes,
        Err(_) => Err(format!("no answer within {:?}", config.timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::topology::Shard;

    #[test]
    fn channels_go_to_their_slots_primary() {
        let addr = |port| ("127.0.0.1".to_owned(), port);
        let topology = Topology {
            shards: vec![
                Shard {
                    primary: addr(7001),
                    replicas: vec![],
                    slots: vec![(0, 5460)],
                },
                Shard {
                    primary: addr(7002),
                    replicas: vec![],
                    slots: vec![(5461, 10922)],
                },
            ],
        };
        let routes = Routes::cluster(&topology);
        // "foo" is slot 12182 (no one), "{user1000}" 1649 ... computed by key_slot.
        assert_eq!(routes.node_for("foo"), None);
        let low = (0..)
            .map(|n| format!("c{n}"))
            .find(|c| key_slot(c.as_bytes()) <= 5460)
            .unwrap_or_default();
        assert_eq!(routes.node_for(&low), Some(&addr(7001)));
        let tagged = format!("x{{{low}}}y");
        assert_eq!(routes.node_for(&tagged), Some(&addr(7001)));
        assert_eq!(Routes::One(addr(6379)).node_for("foo"), Some(&addr(6379)));
    }
}
