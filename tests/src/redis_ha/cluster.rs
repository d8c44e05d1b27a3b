//! A local Redis Cluster: cluster-enabled `redis-server`s joined by `redis-cli --cluster
//! create`.

use std::time::{Duration, Instant};

use super::{run_tool, wait_for, RedisProcess, CLI_TIMEOUT};

/// `cluster-node-timeout` of every node, in milliseconds: how long a primary may be
/// unreachable before it is marked failed and its replica takes over. Redis' default (15 s)
/// would make every failover test wait that long.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// How long [`RedisCluster::start`] waits, after `--cluster create`, for every node to report
/// `cluster_state:ok` and the full topology.
pub const CLUSTER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`RedisCluster::kill_primary`] waits for a replica's promotion to be agreed.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u32 = 16384;

/// A Redis Cluster of `redis-server` child processes on `127.0.0.1`, private to one test.
///
/// [`RedisCluster::start`] gives three primaries with one replica each. Each node runs with
/// `--cluster-enabled yes --cluster-config-file <its dir>/nodes-<port>.conf --save ''
/// --appendonly no`, a cluster bus port of its own (`--cluster-port`, also free) and a
/// `cluster-node-timeout` of [`NODE_TIMEOUT_MS`].
///
/// Dropping it kills every node it started (SIGKILL, through their handles) and removes their
/// directories.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisProcess>,
    primaries: usize,
    replicas: usize,
}

/// One line of `CLUSTER NODES`, as some node sees the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node id (40 hex digits).
    pub id: String,
    /// The client port.
    pub port: u16,
    /// The cluster bus port.
    pub bus_port: u16,
    /// The flags: `myself`, `master`, `slave`, `fail?`, `fail`, `handshake`, `noaddr`, ...
    pub flags: Vec<String>,
    /// The id of its primary, for a replica.
    pub primary_id: Option<String>,
    /// Whether the reporting node's link to it is `connected`.
    pub connected: bool,
    /// The slot ranges it serves (inclusive); empty for a replica.
    pub slots: Vec<(u16, u16)>,
}

impl ClusterNode {
    /// Whether it is a primary (`master` flag).
    pub fn is_primary(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }

    /// Whether it is flagged failing (`fail` or `fail?`).
    pub fn is_failing(&self) -> bool {
        self.flags.iter().any(|f| f == "fail" || f == "fail?")
    }

    /// Whether it serves `slot`.
    pub fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&slot))
    }

    /// The number of slots it serves.
    pub fn slot_count(&self) -> u32 {
        self.slots
            .iter()
            .map(|(lo, hi)| u32::from(*hi) - u32::from(*lo) + 1)
            .sum()
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// What [`RedisCluster::kill_primary`] did and saw.
#[derive(Debug, Clone)]
pub struct ClusterFailover {
    /// The port of the primary killed.
    pub killed: u16,
    /// The port of the replica promoted in its place.
    pub promoted: u16,
    /// The first slot of the killed primary, now served by `promoted`.
    pub slot: u16,
    /// From the kill until every surviving node agreed on the promotion and said
    /// `cluster_state:ok`.
    pub elapsed: Duration,
}

impl RedisCluster {
    /// Starts three primaries with one replica each, and waits (at most
    /// [`CLUSTER_START_TIMEOUT`]) until every node reports `cluster_state:ok`, sees the whole
    /// topology, and every replica's link to its primary is up.
    ///
    /// # Panics
    ///
    /// When a node does not start, `redis-cli --cluster create` fails, or the cluster does not
    /// become healthy in time.
    pub async fn start() -> RedisCluster {
        RedisCluster::start_with(3, 1).await
    }

    /// As [`RedisCluster::start`], with `primaries` primaries (at least 3, as `redis-cli`
    /// requires) and `replicas` replicas each.
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::start`]; also for fewer than three primaries.
    pub async fn start_with(primaries: usize, replicas: usize) -> RedisCluster {
        assert!(
            primaries >= 3,
            "redis-cli --cluster create needs at least 3 primaries, not {primaries}"
        );
        let count = primaries * (1 + replicas);
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(RedisProcess::start("cluster-node", node_args).await);
        }
        let cluster = RedisCluster {
            nodes,
            primaries,
            replicas,
        };
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port())),
        );
        args.extend([
            "--cluster-replicas".into(),
            replicas.to_string(),
            "--cluster-yes".into(),
        ]);
        if let Err(why) = run_tool("redis-cli", &args, cluster.nodes[0].dir(), CLI_TIMEOUT).await {
            panic!("redis-cli --cluster create failed: {why}");
        }
        cluster.wait_healthy(CLUSTER_START_TIMEOUT).await;
        cluster
    }

    /// The ports of every node started, killed or not.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisProcess::port).collect()
    }

    /// `redis://127.0.0.1:{port}` of every node not killed: the initial nodes for a cluster
    /// client.
    pub fn urls(&self) -> Vec<String> {
        self.live().map(RedisProcess::url).collect()
    }

    /// The node process on `port`, killed or not.
    pub fn process(&self, port: u16) -> Option<&RedisProcess> {
        self.nodes.iter().find(|n| n.port() == port)
    }

    /// The process ids of the nodes not killed.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(RedisProcess::pid).collect()
    }

    /// The directories of every node (removed on drop).
    pub fn dirs(&self) -> Vec<std::path::PathBuf> {
        self.nodes.iter().map(|n| n.dir().to_path_buf()).collect()
    }

    /// `CLUSTER NODES` as the first node not killed sees it.
    ///
    /// # Panics
    ///
    /// When no node answers.
    pub async fn topology(&self) -> Vec<ClusterNode> {
        let mut failures = Vec::new();
        for node in self.live() {
            match node_view(node).await {
                Ok(view) => return view,
                Err(why) => failures.push(format!("port {}: {why}", node.port())),
            }
        }
        panic!("no cluster node answered CLUSTER NODES: {failures:?}");
    }

    /// The primaries serving slots, sorted by their first slot.
    ///
    /// # Panics
    ///
    /// When no node answers.
    pub async fn primaries(&self) -> Vec<ClusterNode> {
        let mut primaries: Vec<ClusterNode> = self
            .topology()
            .await
            .into_iter()
            .filter(|n| n.is_primary() && !n.slots.is_empty())
            .collect();
        primaries.sort_by_key(|n| n.slots.first().map_or(0, |s| s.0));
        primaries
    }

    /// The replicas of the primary with id `primary_id`.
    ///
    /// # Panics
    ///
    /// When no node answers.
    pub async fn replicas_of(&self, primary_id: &str) -> Vec<ClusterNode> {
        self.topology()
            .await
            .into_iter()
            .filter(|n| n.primary_id.as_deref() == Some(primary_id))
            .collect()
    }

    /// `CLUSTER KEYSLOT key`.
    ///
    /// # Panics
    ///
    /// When no node answers.
    pub async fn keyslot(&self, key: &str) -> u16 {
        for node in self.live() {
            if let Ok(value) = node.try_cmd(&["CLUSTER", "KEYSLOT", key]).await {
                if let Ok(slot) = redis::from_redis_value::<u16>(value) {
                    return slot;
                }
            }
        }
        panic!("no cluster node answered CLUSTER KEYSLOT {key}");
    }

    /// The primary currently serving `key`'s slot.
    ///
    /// # Panics
    ///
    /// When no node answers, or none serves the slot.
    pub async fn primary_for(&self, key: &str) -> ClusterNode {
        let slot = self.keyslot(key).await;
        self.primaries()
            .await
            .into_iter()
            .find(|n| n.serves(slot))
            .unwrap_or_else(|| panic!("no primary serves slot {slot} (key {key:?})"))
    }

    /// Runs `redis-cli -c -p <a live node> args...` (cluster mode: it follows `MOVED`) and
    /// returns its output, trimmed.
    ///
    /// # Panics
    ///
    /// When `redis-cli` fails or overruns [`CLI_TIMEOUT`].
    pub async fn cli(&self, args: &[&str]) -> String {
        let node = self
            .live()
            .next()
            .unwrap_or_else(|| panic!("every cluster node has been killed"));
        let mut full: Vec<String> = ["-c", "-h", "127.0.0.1", "-p"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        full.push(node.port().to_string());
        full.extend(args.iter().map(|s| (*s).to_owned()));
        match run_tool("redis-cli", &full, node.dir(), CLI_TIMEOUT).await {
            Ok(out) => out.trim().to_owned(),
            Err(why) => panic!("redis-cli {args:?} failed: {why}"),
        }
    }

    /// `CONFIG SET parameter value` on every live node (for instance
    /// `cluster-require-full-coverage no`).
    ///
    /// # Panics
    ///
    /// When a node refuses it or does not answer.
    pub async fn config_set(&self, parameter: &str, value: &str) {
        for node in self.live() {
            node.cmd(&["CONFIG", "SET", parameter, value]).await;
        }
    }

    /// Kills the node on `port` with SIGKILL (no failover is awaited); `false` when the harness
    /// did not start it or it was killed before.
    pub fn kill(&mut self, port: u16) -> bool {
        match self.nodes.iter_mut().find(|n| n.port() == port) {
            Some(node) if node.is_running() => {
                node.kill();
                true
            }
            _ => false,
        }
    }

    /// Kills the primary serving `key` and waits for its replica's promotion, as
    /// [`RedisCluster::kill_primary`].
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::kill_primary`].
    pub async fn kill_primary_for(&mut self, key: &str) -> ClusterFailover {
        let primary = self.primary_for(key).await;
        self.kill_primary(primary.port).await
    }

    /// Kills the primary on `port` with SIGKILL and waits (at most [`FAILOVER_TIMEOUT`]) until
    /// every surviving node sees one of its former replicas as the primary of its slots and
    /// reports `cluster_state:ok`.
    ///
    /// # Panics
    ///
    /// When `port` is not a primary serving slots, it has no replica, or the promotion is not
    /// agreed in time.
    pub async fn kill_primary(&mut self, port: u16) -> ClusterFailover {
        let topology = self.topology().await;
        let primary = topology
            .iter()
            .find(|n| n.port == port && n.is_primary() && !n.slots.is_empty())
            .unwrap_or_else(|| panic!("port {port} is not a primary serving slots"))
            .clone();
        let replicas: Vec<u16> = topology
            .iter()
            .filter(|n| n.primary_id.as_deref() == Some(primary.id.as_str()))
            .map(|n| n.port)
            .collect();
        assert!(
            !replicas.is_empty(),
            "the primary on port {port} has no replica to promote"
        );
        let slot = primary.slots[0].0;
        assert!(
            self.kill(port),
            "port {port} is not a running node of this cluster"
        );
        let killed_at = Instant::now();
        let promoted = self.wait_new_owner(slot, port, &replicas).await;
        ClusterFailover {
            killed: port,
            promoted,
            slot,
            elapsed: killed_at.elapsed(),
        }
    }

    /// A failover without a failure: `CLUSTER FAILOVER` on the replica on `replica_port`,
    /// which takes over its primary's slots while the old primary, still running, becomes its
    /// replica. Waits (at most [`FAILOVER_TIMEOUT`]) until every live node sees the replica
    /// serving those slots and reports `cluster_state:ok`.
    ///
    /// [`ClusterFailover::killed`] is then the demoted primary (still running).
    ///
    /// # Panics
    ///
    /// When `replica_port` is not a replica of a primary serving slots, or the failover does
    /// not happen in time.
    pub async fn failover_to(&self, replica_port: u16) -> ClusterFailover {
        let topology = self.topology().await;
        let replica = topology
            .iter()
            .find(|n| n.port == replica_port && !n.is_primary())
            .unwrap_or_else(|| panic!("port {replica_port} is not a replica"));
        let primary = topology
            .iter()
            .find(|n| Some(&n.id) == replica.primary_id.as_ref() && !n.slots.is_empty())
            .unwrap_or_else(|| panic!("the primary of port {replica_port} serves no slots"));
        let slot = primary.slots[0].0;
        let node = self
            .process(replica_port)
            .filter(|p| p.is_running())
            .unwrap_or_else(|| panic!("port {replica_port} is not a running node"));
        let started = Instant::now();
        node.cmd(&["CLUSTER", "FAILOVER"]).await;
        let promoted = self
            .wait_new_owner(slot, primary.port, &[replica_port])
            .await;
        ClusterFailover {
            killed: primary.port,
            promoted,
            slot,
            elapsed: started.elapsed(),
        }
    }

    /// Waits until every live node reports `cluster_state:ok` and sees one of `candidates`,
    /// not `old`, as the healthy primary serving `slot`.
    async fn wait_new_owner(&self, slot: u16, old: u16, candidates: &[u16]) -> u16 {
        let what = format!("one of {candidates:?} to take over slot {slot} from port {old}");
        wait_for(&what, FAILOVER_TIMEOUT, || async {
            let mut agreed = None;
            for node in self.live() {
                let state = cluster_state(node).await?;
                if state != "ok" {
                    return Err(format!("port {}: cluster_state:{state}", node.port()));
                }
                let view = node_view(node).await?;
                let owner = view
                    .iter()
                    .find(|n| n.is_primary() && !n.is_failing() && n.serves(slot))
                    .map(|n| n.port);
                match owner {
                    Some(owner)
                        if owner != old
                            && candidates.contains(&owner)
                            && agreed.is_none_or(|a| a == owner) =>
                    {
                        agreed = Some(owner);
                    }
                    other => {
                        return Err(format!(
                            "port {} sees slot {slot} served by {other:?}",
                            node.port()
                        ))
                    }
                }
            }
            agreed.ok_or_else(|| "no live node".to_owned())
        })
        .await
    }

    /// Waits, at most `limit`, until every live node reports `cluster_state:ok`, sees the
    /// expected number of primaries covering all slots and of replicas, none failing, and
    /// every live replica's link to its primary is up.
    ///
    /// # Panics
    ///
    /// When that does not happen in time.
    pub async fn wait_healthy(&self, limit: Duration) {
        let (primaries, replicas) = (self.primaries, self.primaries * self.replicas);
        let what = format!("a healthy cluster of {primaries} primaries and {replicas} replicas");
        wait_for(&what, limit, || async {
            for node in self.live() {
                let state = cluster_state(node).await?;
                if state != "ok" {
                    return Err(format!("port {}: cluster_state:{state}", node.port()));
                }
                let view = node_view(node).await?;
                let serving: Vec<&ClusterNode> = view
                    .iter()
                    .filter(|n| n.is_primary() && !n.slots.is_empty())
                    .collect();
                let slots: u32 = serving.iter().map(|n| n.slot_count()).sum();
                let replica_count = view.iter().filter(|n| n.primary_id.is_some()).count();
                let failing = view.iter().filter(|n| n.is_failing()).count();
                if serving.len() != primaries
                    || slots != SLOTS
                    || replica_count != replicas
                    || failing != 0
                {
                    return Err(format!(
                        "port {} sees {} primaries serving {slots} slots, {replica_count} \
                         replicas, {failing} failing",
                        node.port(),
                        serving.len()
                    ));
                }
                let info = node.try_info("replication").await?;
                if info.get("role").map(String::as_str) == Some("slave")
                    && info.get("master_link_status").map(String::as_str) != Some("up")
                {
                    return Err(format!("replica on port {} is not in sync", node.port()));
                }
            }
            Ok(())
        })
        .await;
    }

    fn live(&self) -> impl Iterator<Item = &RedisProcess> {
        self.nodes.iter().filter(|n| n.is_running())
    }
}

/// The arguments of a cluster node on `port`, in `dir`, with a free bus port of its own
/// (`port + 10000`, Redis' default, may be over 65535 for an ephemeral port).
fn node_args(port: u16, dir: &std::path::Path) -> Result<Vec<String>, String> {
    let bus_port = super::free_port();
    let conf = dir.join(format!("nodes-{port}.conf"));
    Ok([
        "--port",
        &port.to_string(),
        "--cluster-port",
        &bus_port.to_string(),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        &conf.to_string_lossy(),
        "--cluster-node-timeout",
        &NODE_TIMEOUT_MS.to_string(),
        // A shard that fails over does not stop the others (as Rondo's docs recommend).
        "--cluster-require-full-coverage",
        "no",
        "--dir",
        &dir.to_string_lossy(),
        "--save",
        "",
        "--appendonly",
        "no",
        // Replicas sync at once (Redis 7.0 waits 5 s for more replicas by default).
        "--repl-diskless-sync-delay",
        "0",
        "--daemonize",
        "no",
        "--enable-debug-command",
        "local",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect())
}

/// `cluster_state` from `CLUSTER INFO` of `node`.
async fn cluster_state(node: &RedisProcess) -> Result<String, String> {
    let value = node.try_cmd(&["CLUSTER", "INFO"]).await?;
    let text: String = redis::from_redis_value(value).map_err(|e| e.to_string())?;
    super::parse_info(&text)
        .remove("cluster_state")
        .ok_or_else(|| format!("no cluster_state in {text:?}"))
}

/// `CLUSTER NODES` of `node`, parsed.
async fn node_view(node: &RedisProcess) -> Result<Vec<ClusterNode>, String> {
    let value = node.try_cmd(&["CLUSTER", "NODES"]).await?;
    let text: String = redis::from_redis_value(value).map_err(|e| e.to_string())?;
    parse_cluster_nodes(&text)
}

/// `CLUSTER NODES` text into nodes. A line: `<id> <ip:port@cport[,hostname]> <flags> <master>
/// <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...`; slots being imported or
/// migrated (`[...]`) are skipped.
pub(crate) fn parse_cluster_nodes(text: &str) -> Result<Vec<ClusterNode>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return Err(format!("short CLUSTER NODES line {line:?}"));
            }
            let (addr, bus) = fields[1]
                .split_once('@')
                .ok_or_else(|| format!("no @ in address {:?}", fields[1]))?;
            let port = addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .ok_or_else(|| format!("bad address {addr:?}"))?;
            let bus_port = bus
                .split(',')
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("bad bus port {bus:?}"))?;
            let slots = fields[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .map(|s| {
                    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
                    match (lo.parse(), hi.parse()) {
                        (Ok(lo), Ok(hi)) => Ok((lo, hi)),
                        _ => Err(format!("bad slot range {s:?}")),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ClusterNode {
                id: fields[0].to_owned(),
                port,
                bus_port,
                flags: fields[2].split(',').map(str::to_owned).collect(),
                primary_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                connected: fields[7] == "connected",
                slots,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_are_parsed() {
        let text = "\
a4d3 127.0.0.1:47105@48105 slave b6a5 0 1796157864596 1 connected\n\
0602 127.0.0.1:47102@48102,host master - 0 1796157864596 3 connected 10923-16383\n\
b6a5 127.0.0.1:47100@48100 myself,master - 0 0 1 connected 0-5460 5461 [5462->-0602]\n\
dead 127.0.0.1:47101@48101 master,fail - 0 0 2 disconnected\n";
        let nodes = parse_cluster_nodes(text).expect("parses");
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[0].primary_id.as_deref(), Some("b6a5"));
        assert!(!nodes[0].is_primary());
        assert_eq!(nodes[1].bus_port, 48102);
        assert_eq!(nodes[1].slots, vec![(10923, 16383)]);
        assert_eq!(nodes[2].slots, vec![(0, 5460), (5461, 5461)]);
        assert_eq!(nodes[2].slot_count(), 5462);
        assert!(nodes[2].serves(5461) && !nodes[2].serves(5462));
        assert!(nodes[3].is_failing() && !nodes[3].connected);
    }
}
