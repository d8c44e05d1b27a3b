//! The Redis link store: one hash and one set per link, decided by Lua scripts.
//!
//! It runs on one of the app's named pools ([`RedisPool`]): standalone, Sentinel or
//! Cluster alike, since a script touches only the two keys of one link, which share a hash
//! slot. Every operation checks a connection out for one command and gives it back at once,
//! so many redemptions are in flight together while Redis runs each script atomically. The
//! layout and the scripts are in [`scripts`](super::scripts).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::{FromRedisValue, Script, ScriptInvocation};

use super::{
    grace_seconds, scripts, LinkError, LinkId, LinkInfo, LinkStore, NewLink, Redeemed, Redemption,
    Refusal, DEFAULT_GRACE,
};
use crate::redis::{RedisFailure, RedisPool};

/// Links in Redis, on one of the app's pools.
pub struct RedisLinks {
    pool: RedisPool,
    grace: u64,
    create: Script,
    redeem: Script,
    revoke: Script,
}

impl fmt::Debug for RedisLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLinks")
            .field("pool", &self.pool.config().name)
            .field("prefix", &self.pool.config().prefix)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl RedisLinks {
    /// A store on `pool`, its keys under the pool's prefix, keeping links for
    /// [`DEFAULT_GRACE`] after they expire.
    pub fn new(pool: RedisPool) -> Self {
        Self {
            pool,
            grace: grace_seconds(DEFAULT_GRACE),
            create: Script::new(scripts::CREATE),
            redeem: Script::new(scripts::REDEEM),
            revoke: Script::new(scripts::REVOKE),
        }
    }

    /// Keeps expired links for `grace` (at least one second) instead.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace_seconds(grace);
        self
    }

    /// The two keys of link `id`: its hash, `{prefix}links:{<id>}`, and the set of its
    /// redeemers, `{prefix}links:{<id>}:uses`. Both carry the hash tag `{<id>}`.
    pub fn keys(&self, id: &str) -> (String, String) {
        let link = format!("{}links:{{{id}}}", self.pool.config().prefix);
        let uses = format!("{link}:uses");
        (link, uses)
    }

    /// Runs one script invocation on a pooled connection, within the pool's timeout.
    async fn invoke<T: FromRedisValue>(
        &self,
        invocation: ScriptInvocation<'_>,
    ) -> Result<T, LinkError> {
        let mut conn = self
            .pool
            .conn()
            .await
            .map_err(|e| LinkError::Unavailable(e.to_string()))?;
        conn.run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await
            .map_err(failure)
    }

    async fn create_link(&self, link: NewLink) -> Result<LinkId, LinkError> {
        link.validate()?;
        let id = LinkId::generate()?;
        let (hash, uses) = self.keys(id.as_str());
        let mut invocation = self.create.prepare_invoke();
        invocation
            .key(&hash)
            .key(&uses)
            .arg(&link.target)
            .arg(link.starts_at)
            .arg(link.expires_at)
            .arg(link.max_uses)
            .arg(link.expires_at.saturating_add(self.grace));
        if let Some(participant) = &link.participant {
            invocation.arg(participant);
        }
        let reply: Vec<String> = self.invoke(invocation).await?;
        match first(&reply) {
            "ok" => Ok(id),
            "past" => Err(LinkError::InvalidLink("it has already expired")),
            "exists" => Err(LinkError::IdCollision),
            _ => Err(unexpected("create", &reply)),
        }
    }

    async fn redeem_link(&self, id: &str, redeemer: &str) -> Result<Redemption, LinkError> {
        if redeemer.is_empty() {
            return Err(LinkError::InvalidRedeemer);
        }
        if !LinkId::is_well_formed(id) {
            return Ok(Err(Refusal::Unknown));
        }
        let (hash, uses) = self.keys(id);
        let mut invocation = self.redeem.prepare_invoke();
        invocation.key(&hash).key(&uses).arg(redeemer);
        let reply: Vec<String> = self.invoke(invocation).await?;
        parse_redemption(&reply)
    }

    async fn revoke_link(&self, id: &str) -> Result<bool, LinkError> {
        if !LinkId::is_well_formed(id) {
            return Ok(false);
        }
        let (hash, _) = self.keys(id);
        let mut invocation = self.revoke.prepare_invoke();
        invocation.key(&hash);
        let reply: Vec<String> = self.invoke(invocation).await?;
        match first(&reply) {
            "revoked" => Ok(true),
            "unknown" => Ok(false),
            _ => Err(unexpected("revoke", &reply)),
        }
    }

    async fn inspect_link(&self, id: &str) -> Result<Option<LinkInfo>, LinkError> {
        let Some(link_id) = LinkId::parse(id) else {
            return Ok(None);
        };
        let (hash, _) = self.keys(id);
        let mut conn = self
            .pool
            .conn()
            .await
            .map_err(|e| LinkError::Unavailable(e.to_string()))?;
        let fields: HashMap<String, String> = conn
            .run(|mut c| async move { redis::cmd("HGETALL").arg(&hash).query_async(&mut c).await })
            .await
            .map_err(failure)?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse_info(link_id, &fields).map(Some)
    }
}

impl LinkStore for RedisLinks {
    fn create(&self, link: NewLink) -> BoxFuture<'_, Result<LinkId, LinkError>> {
        Box::pin(self.create_link(link))
    }

    fn redeem<'a>(
        &'a self,
        id: &'a str,
        redeemer: &'a str,
    ) -> BoxFuture<'a, Result<Redemption, LinkError>> {
        Box::pin(self.redeem_link(id, redeemer))
    }

    fn revoke<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, LinkError>> {
        Box::pin(self.revoke_link(id))
    }

    fn inspect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<LinkInfo>, LinkError>> {
        Box::pin(self.inspect_link(id))
    }
}

/// A failed command: Redis gone or slow is an outage; an error reply means the keys hold
/// something this store did not write (a wrong type), or the script is broken.
fn failure(err: RedisFailure) -> LinkError {
    match err {
        RedisFailure::Dropped(why) | RedisFailure::Unreachable(why) => LinkError::Unavailable(why),
        RedisFailure::Server(why) => LinkError::Corrupt(why),
    }
}

/// The outcome name of a script reply (empty for an empty reply).
fn first(reply: &[String]) -> &str {
    reply.first().map_or("", String::as_str)
}

fn parse_redemption(reply: &[String]) -> Result<Redemption, LinkError> {
    let refusal = match reply {
        [outcome] => match outcome.as_str() {
            "unknown" => Refusal::Unknown,
            "not_for_you" => Refusal::NotForYou,
            "revoked" => Refusal::Revoked,
            "expired" => Refusal::Expired,
            "used_up" => Refusal::UsedUp,
            _ => return Err(unexpected("redeem", reply)),
        },
        [outcome, starts] if outcome == "not_started" => Refusal::NotStarted {
            starts_at: number(starts, "starts")?,
        },
        [outcome, target, uses, first_time] if outcome == "redeemed" => {
            return Ok(Ok(Redeemed {
                target: target.clone(),
                uses: number(uses, "uses")?,
                first_time: first_time == "1",
            }))
        }
        _ => return Err(unexpected("redeem", reply)),
    };
    Ok(Err(refusal))
}

fn parse_info(id: LinkId, fields: &HashMap<String, String>) -> Result<LinkInfo, LinkError> {
    let field = |name: &'static str| {
        fields
            .get(name)
            .ok_or_else(|| LinkError::Corrupt(format!("link {id} has no `{name}` field")))
    };
    Ok(LinkInfo {
        target: field("target")?.clone(),
        starts_at: number(field("starts")?, "starts")?,
        expires_at: number(field("expires")?, "expires")?,
        max_uses: number(field("max")?, "max")?,
        uses: number(field("uses")?, "uses")?,
        participant: fields.get("participant").cloned(),
        revoked: field("revoked")? == "1",
        id,
    })
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, LinkError> {
    text.parse()
        .map_err(|_| LinkError::Corrupt(format!("`{what}` is not a number: {text:?}")))
}

fn unexpected(operation: &str, reply: &[String]) -> LinkError {
    LinkError::Corrupt(format!("unexpected {operation} reply {reply:?}"))
}
