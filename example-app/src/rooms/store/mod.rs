//! Rooms in Redis: one hash tag per room, so every script runs on Redis Cluster as on one
//! Redis.
//!
//! Layout, for room `ID` under the pool's key prefix `P`:
//!
//! - `P rooms:{ID}`: a hash with `title`, `starts`, `capacity`, `host` (a member id),
//!   `host_name`, `closed` (`0`/`1`), `expires` and `created` (Unix seconds);
//! - `P rooms:{ID}:members`: member id → the member as JSON (the host included);
//! - `P rooms:{ID}:removed`: the set of member ids the host removed (they may not rejoin);
//! - `P rooms:{ID}:chat`: the last [`CHAT_KEEP`](crate::rooms::model::CHAT_KEEP)
//!   messages, oldest first, as JSON;
//! - `P rooms:{ID}:links`: the set of the room's link ids (the links themselves are
//!   [`rondo::links`]' records);
//! - `P rooms:{ID}:files`: temporary file id → the shared file as JSON;
//! - `P rooms:host:<hash of the user>`: the ids of the rooms a user hosts (a key of its own,
//!   read and written alone).
//!
//! Every key expires with its room (`EXPIREAT` at `expires`). Whatever reads and then
//! writes (creating a room, joining, removing, closing, adding a chat line) is one Lua
//! script over the keys of one room, so two servers admitting the last place at once admit
//! one visitor, and a removed member cannot slip back in between the check and the write.

use std::collections::HashMap;
use std::sync::Arc;

use redis::{FromRedisValue, Script, ScriptInvocation};
use rondo::config::Config;
use rondo::redis::{Redis, RedisFailure, RedisPool};
use rondo::session::Backend;
use rondo::SessionManager;

mod records;
mod scripts;

use crate::rooms::error::RoomError;
use crate::rooms::model::{Member, Room};

/// What [`RoomStore::join`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// A new member.
    Joined,
    /// A member already (nothing changed).
    Again,
    /// Every place is taken.
    Full,
    /// The host closed the room.
    Closed,
    /// The host removed this visitor; they stay out.
    Removed,
    /// No such room (never made, or gone).
    Unknown,
}

/// The keys of one room.
struct Keys {
    room: String,
    members: String,
    removed: String,
    chat: String,
    links: String,
    files: String,
}

struct Scripts {
    create: Script,
    join: Script,
    remove: Script,
    close: Script,
    chat: Script,
    index: Script,
}

/// Rooms in Redis, on the sessions' pool. Cheap to clone. Without Redis (sessions in this
/// process's memory) every operation answers [`RoomError::Unavailable`]: rooms are shared
/// between servers by nature, and the example app keeps no in-process copy of them.
#[derive(Clone)]
pub struct RoomStore {
    pool: Option<RedisPool>,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RoomStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomStore")
            .field("redis", &self.pool.is_some())
            .finish_non_exhaustive()
    }
}

impl RoomStore {
    /// The store on the sessions' pool when the sessions are in Redis; otherwise one that
    /// refuses every operation (logged).
    ///
    /// # Errors
    ///
    /// The pool cannot be built.
    pub async fn from_config(
        config: &Config,
        redis: &Redis,
        sessions: &SessionManager,
    ) -> Result<Self, RoomError> {
        let pool = if sessions.backend() == Backend::Redis {
            let pool = redis
                .pool(&config.session.redis_connection_pool)
                .await
                .map_err(|e| RoomError::Unavailable(e.to_string()))?;
            Some(pool)
        } else {
            tracing::warn!(
                "meeting rooms keep their state in Redis, and the sessions are in this \
                 process's memory: the rooms' pages and API answer 503"
            );
            None
        };
        Ok(Self {
            pool,
            scripts: Arc::new(Scripts {
                create: Script::new(scripts::CREATE),
                join: Script::new(scripts::JOIN),
                remove: Script::new(scripts::REMOVE),
                close: Script::new(scripts::CLOSE),
                chat: Script::new(scripts::CHAT),
                index: Script::new(scripts::INDEX),
            }),
        })
    }

    fn pool(&self) -> Result<&RedisPool, RoomError> {
        self.pool.as_ref().ok_or_else(|| {
            RoomError::Unavailable(
                "rooms need Redis: start it and set [session] store = redis".to_owned(),
            )
        })
    }

    fn keys(&self, id: &str) -> Result<Keys, RoomError> {
        let prefix = &self.pool()?.config().prefix;
        let room = format!("{prefix}rooms:{{{id}}}");
        Ok(Keys {
            members: format!("{room}:members"),
            removed: format!("{room}:removed"),
            chat: format!("{room}:chat"),
            links: format!("{room}:links"),
            files: format!("{room}:files"),
            room,
        })
    }

    fn host_key(&self, user_hash: &str) -> Result<String, RoomError> {
        Ok(format!(
            "{}rooms:host:{user_hash}",
            self.pool()?.config().prefix
        ))
    }

    /// Runs one command, pipeline or script built by `op` on a pooled connection.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, RoomError>
    where
        F: FnOnce(rondo::redis::AnyConn) -> Fut,
        Fut: std::future::Future<Output = Result<T, redis::RedisError>>,
    {
        let mut conn = self
            .pool()?
            .conn()
            .await
            .map_err(|e| RoomError::Unavailable(e.to_string()))?;
        conn.run(op).await.map_err(|err| match err {
            RedisFailure::Dropped(why) | RedisFailure::Unreachable(why) => {
                RoomError::Unavailable(why)
            }
            RedisFailure::Server(why) => RoomError::Corrupt(why),
        })
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        invocation: ScriptInvocation<'_>,
    ) -> Result<T, RoomError> {
        self.run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await
    }

    /// Stores a new room with its host as its first member, and lists it under the host's
    /// user (`user_hash`). Returns `false` when the id is taken.
    ///
    /// # Errors
    ///
    /// Redis unreachable.
    pub async fn create(
        &self,
        room: &Room,
        host: &Member,
        user_hash: &str,
    ) -> Result<bool, RoomError> {
        let keys = self.keys(&room.id)?;
        let host_json = to_json(host)?;
        let mut invocation = self.scripts.create.prepare_invoke();
        invocation
            .key(&keys.room)
            .key(&keys.members)
            .arg(&room.title)
            .arg(room.starts_at)
            .arg(room.capacity)
            .arg(&room.host)
            .arg(&room.host_name)
            .arg(room.expires_at)
            .arg(room.created_at)
            .arg(host_json);
        let created: i64 = self.invoke(invocation).await?;
        if created != 1 {
            return Ok(false);
        }
        let index = self.host_key(user_hash)?;
        let mut invocation = self.scripts.index.prepare_invoke();
        invocation
            .key(&index)
            .arg(room.expires_at)
            .arg(&room.id)
            .arg(room.created_at);
        let _: i64 = self.invoke(invocation).await?;
        Ok(true)
    }

    /// The rooms `user_hash` hosts that have not expired, latest first.
    ///
    /// # Errors
    ///
    /// Redis unreachable.
    pub async fn hosted_by(&self, user_hash: &str, now: u64) -> Result<Vec<String>, RoomError> {
        let index = self.host_key(user_hash)?;
        self.run(|mut c| async move {
            redis::cmd("ZREVRANGEBYSCORE")
                .arg(&index)
                .arg("+inf")
                .arg(format!("({now}"))
                .arg("LIMIT")
                .arg(0)
                .arg(50)
                .query_async::<Vec<String>>(&mut c)
                .await
        })
        .await
    }

    /// Room `id`, if it exists.
    ///
    /// # Errors
    ///
    /// Redis unreachable, or a record this store did not write.
    pub async fn get(&self, id: &str) -> Result<Option<Room>, RoomError> {
        let keys = self.keys(id)?;
        let fields: HashMap<String, String> = self
            .run(|mut c| async move {
                redis::cmd("HGETALL")
                    .arg(&keys.room)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse_room(id, &fields).map(Some)
    }

    /// Room `id` and its members (host first, then by arrival), in one round trip.
    ///
    /// # Errors
    ///
    /// Redis unreachable, or records this store did not write.
    pub async fn with_members(&self, id: &str) -> Result<Option<(Room, Vec<Member>)>, RoomError> {
        let keys = self.keys(id)?;
        let (fields, members): (HashMap<String, String>, HashMap<String, String>) = self
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("HGETALL")
                    .arg(&keys.room)
                    .cmd("HGETALL")
                    .arg(&keys.members)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let room = parse_room(id, &fields)?;
        let mut members = members
            .values()
            .map(|json| from_json::<Member>(json))
            .collect::<Result<Vec<_>, _>>()?;
        members.sort_by(|a, b| {
            b.host
                .cmp(&a.host)
                .then(a.joined_at.cmp(&b.joined_at))
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(Some((room, members)))
    }

    /// Member `member` of room `id`, if they are one.
    ///
    /// # Errors
    ///
    /// Redis unreachable, or a record this store did not write.
    pub async fn member(&self, id: &str, member: &str) -> Result<Option<Member>, RoomError> {
        let keys = self.keys(id)?;
        let member = member.to_owned();
        let json: Option<String> = self
            .run(|mut c| async move {
                redis::cmd("HGET")
                    .arg(&keys.members)
                    .arg(&member)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        json.as_deref().map(from_json).transpose()
    }

    /// Admits `member` to room `id` if it is open, has a place, and did not remove them.
    ///
    /// # Errors
    ///
    /// Redis unreachable.
    pub async fn join(&self, id: &str, member: &Member) -> Result<Joined, RoomError> {
        let keys = self.keys(id)?;
        let mut invocation = self.scripts.join.prepare_invoke();
        invocation
            .key(&keys.room)
            .key(&keys.members)
            .key(&keys.removed)
            .arg(&member.id)
            .arg(to_json(member)?);
        let outcome: String = self.invoke(invocation).await?;
        Ok(match outcome.as_str() {
            "joined" => Joined::Joined,
            "again" => Joined::Again,
            "full" => Joined::Full,
            "closed" => Joined::Closed,
            "removed" => Joined::Removed,
            "unknown" => Joined::Unknown,
            other => return Err(RoomError::Corrupt(format!("join answered {other:?}"))),
        })
    }

    /// Takes `member` out of room `id` for good; whether they were a member.
    ///
    /// # Errors
    ///
    /// [`RoomError::NotFound`] for no such room, [`RoomError::Invalid`] for the host, or
    /// Redis unreachable.
    pub async fn remove(&self, id: &str, member: &str) -> Result<bool, RoomError> {
        let keys = self.keys(id)?;
        let mut invocation = self.scripts.remove.prepare_invoke();
        invocation
            .key(&keys.room)
            .key(&keys.members)
            .key(&keys.removed)
            .arg(member);
        let outcome: i64 = self.invoke(invocation).await?;
        match outcome {
            1 => Ok(true),
            0 => Ok(false),
            -1 => Err(RoomError::Invalid(
                "the host cannot be removed from their own room".to_owned(),
            )),
            _ => Err(RoomError::NotFound),
        }
    }

    /// Closes room `id`; whether it existed.
    ///
    /// # Errors
    ///
    /// Redis unreachable.
    pub async fn close(&self, id: &str) -> Result<bool, RoomError> {
        let keys = self.keys(id)?;
        let mut invocation = self.scripts.close.prepare_invoke();
        invocation.key(&keys.room);
        let closed: i64 = self.invoke(invocation).await?;
        Ok(closed == 1)
    }
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, RoomError> {
    serde_json::to_string(value).map_err(|e| RoomError::Corrupt(e.to_string()))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, RoomError> {
    serde_json::from_str(json).map_err(|e| RoomError::Corrupt(format!("a room record: {e}")))
}

fn parse_room(id: &str, fields: &HashMap<String, String>) -> Result<Room, RoomError> {
    let text = |name: &str| {
        fields
            .get(name)
            .cloned()
            .ok_or_else(|| RoomError::Corrupt(format!("room {id} has no `{name}`")))
    };
    let number = |name: &str| -> Result<u64, RoomError> {
        text(name)?
            .parse()
            .map_err(|_| RoomError::Corrupt(format!("room {id}: `{name}` is not a number")))
    };
    Ok(Room {
        id: id.to_owned(),
        title: text("title")?,
        starts_at: number("starts")?,
        capacity: u32::try_from(number("capacity")?)
            .map_err(|_| RoomError::Corrupt(format!("room {id}: capacity out of range")))?,
        host: text("host")?,
        host_name: text("host_name")?,
        closed: text("closed")? == "1",
        expires_at: number("expires")?,
        created_at: number("created")?,
    })
}
