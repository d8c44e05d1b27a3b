//! Presence shared by every server, in Redis, with heartbeats.
//!
//! A presence channel is four keys that share a hash slot (the channel name is the hash
//! tag), so each change is one script, the same on one Redis and on a Cluster:
//!
//! - `{prefix}presence:{<channel>}:conns`, hash: `<server>|<socket>` → user id;
//! - `…:users`, hash: user id → number of sockets (the user joins with the first and
//!   leaves with the last, wherever they are);
//! - `…:info`, hash: user id → `user_info` JSON;
//! - `…:nodes`, sorted set: server → the time (Redis's clock, ms) its claim expires.
//!
//! Every server renews its claim on the channels it has members of a few times per
//! `presence_ttl`, and removes, in the same script, the sockets of servers whose claim has
//! expired: a server killed with its members still joined loses them within `presence_ttl`
//! (and a little), and the server whose script removed them sends `member_removed`. The
//! keys expire by themselves once no server renews them.

use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::Script;

use super::presence::{Joined, Presence};
use super::protocol::{PresenceMember, SocketId};
use super::ChannelError;
use crate::redis::RedisPool;

/// `KEYS`: conns, users, info, nodes. `ARGV`: conn field, user id, user info, server,
/// ttl ms, key ttl ms. Returns `{first, info hash as a flat list}`.
const JOIN: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local first = 0
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
    first = 1
  end
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[4])
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
return {first, redis.call('HGETALL', KEYS[3])}
";

/// `KEYS`: conns, users, info. `ARGV`: conn field. Returns the user id when it was their
/// last socket, else an empty string.
const LEAVE: &str = r"
local uid = redis.call('HGET', KEYS[1], ARGV[1])
if not uid then return '' end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HINCRBY', KEYS[2], uid, -1) <= 0 then
  redis.call('HDEL', KEYS[2], uid)
  redis.call('HDEL', KEYS[3], uid)
  return uid
end
return ''
";

/// `KEYS`: conns, users, info, nodes. `ARGV`: server, ttl ms, key ttl ms. Renews the
/// server's claim, removes the sockets of expired servers; returns the users who left.
const BEAT: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), ARGV[1])
local removed = {}
local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
if #dead > 0 then
  local gone = {}
  for _, node in ipairs(dead) do gone[node] = true end
  local conns = redis.call('HGETALL', KEYS[1])
  for i = 1, #conns, 2 do
    local node = string.match(conns[i], '^([^|]*)|')
    if gone[node] then
      redis.call('HDEL', KEYS[1], conns[i])
      local uid = conns[i + 1]
      if redis.call('HINCRBY', KEYS[2], uid, -1) <= 0 then
        redis.call('HDEL', KEYS[2], uid)
        redis.call('HDEL', KEYS[3], uid)
        table.insert(removed, uid)
      end
    end
  end
  redis.call('ZREM', KEYS[4], unpack(dead))
end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return removed
";

/// Presence in Redis.
pub(crate) struct RedisPresence {
    pool: RedisPool,
    prefix: String,
    node: String,
    ttl_ms: u64,
    key_ttl_ms: u64,
    join: Script,
    leave: Script,
    beat: Script,
}

impl RedisPresence {
    pub(crate) fn new(pool: RedisPool, node: String, ttl: Duration) -> Self {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 4);
        Self {
            prefix: pool.config().prefix.clone(),
            pool,
            node,
            ttl_ms,
            // Long enough that a live server always renews in time; short enough that a
            // channel every server forgot goes away by itself.
            key_ttl_ms: ttl_ms.saturating_mul(2).saturating_add(60_000),
            join: Script::new(JOIN),
            leave: Script::new(LEAVE),
            beat: Script::new(BEAT),
        }
    }

    fn keys(&self, channel: &str) -> [String; 4] {
        let base = format!("{}presence:{{{channel}}}", self.prefix);
        [
            format!("{base}:conns"),
            format!("{base}:users"),
            format!("{base}:info"),
            format!("{base}:nodes"),
        ]
    }

    fn field(&self, socket: &SocketId) -> String {
        format!("{}|{}", self.node, socket.as_str())
    }

    async fn run<T, F, Fut>(&self, op: F) -> Result<T, ChannelError>
    where
        F: FnOnce(crate::redis::AnyConn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let mut conn = self
            .pool
            .conn()
            .await
            .map_err(|e| ChannelError::Unavailable(e.to_string()))?;
        conn.run(op)
            .await
            .map_err(|e| ChannelError::Unavailable(e.to_string()))
    }
}

impl Presence for RedisPresence {
    fn join<'a>(
        &'a self,
        channel: &'a str,
        socket: &'a SocketId,
        member: &'a PresenceMember,
    ) -> BoxFuture<'a, Result<Joined, ChannelError>> {
        Box::pin(async move {
            let keys = self.keys(channel);
            let info = member
                .user_info
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let mut invocation = self.join.prepare_invoke();
            invocation
                .key(&keys[0])
                .key(&keys[1])
                .key(&keys[2])
                .key(&keys[3])
                .arg(self.field(socket))
                .arg(&member.user_id)
                .arg(info)
                .arg(&self.node)
                .arg(self.ttl_ms)
                .arg(self.key_ttl_ms);
            let (first, flat): (i64, Vec<String>) = self
                .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await?;
            let members = flat
                .chunks_exact(2)
                .map(|pair| {
                    let info = (!pair[1].is_empty())
                        .then(|| serde_json::from_str(&pair[1]).ok())
                        .flatten();
                    PresenceMember::new(pair[0].clone(), info)
                })
                .collect();
            Ok(Joined {
                first: first == 1,
                members,
            })
        })
    }

    fn leave<'a>(
        &'a self,
        channel: &'a str,
        socket: &'a SocketId,
    ) -> BoxFuture<'a, Result<Option<String>, ChannelError>> {
        Box::pin(async move {
            let keys = self.keys(channel);
            let mut invocation = self.leave.prepare_invoke();
            invocation
                .key(&keys[0])
                .key(&keys[1])
                .key(&keys[2])
                .arg(self.field(socket));
            let left: String = self
                .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await?;
            Ok((!left.is_empty()).then_some(left))
        })
    }

    fn beat<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<String>, ChannelError>> {
        Box::pin(async move {
            let keys = self.keys(channel);
            let mut invocation = self.beat.prepare_invoke();
            invocation
                .key(&keys[0])
                .key(&keys[1])
                .key(&keys[2])
                .key(&keys[3])
                .arg(&self.node)
                .arg(self.ttl_ms)
                .arg(self.key_ttl_ms);
            self.run(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await
        })
    }
}
