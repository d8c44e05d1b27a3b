//! [`Channels`]: the component that serves sockets, authorizes channels and publishes, and
//! the handle through which controllers and jobs broadcast.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::bus::{Bus, Envelope};
use super::hub::Hub;
use super::memory_bus::MemoryBus;
use super::metrics::ChannelMetrics;
use super::presence::{MemoryPresence, Presence};
use super::protocol::{ChannelKind, ChannelName, Credentials, Frame, FrameLimits, SocketId};
use super::rules::{ChannelParams, IntoAllow, IntoMember, Rules};
use super::ChannelError;
use crate::config::{ChannelsConfig, Config};
use crate::redis::Redis;
use crate::session::{Backend, Session, SessionManager};

/// What every part of the channels shares.
pub(crate) struct Shared {
    pub(crate) config: ChannelsConfig,
    pub(crate) credentials: Credentials,
    pub(crate) rules: Rules,
    pub(crate) hub: Arc<Hub>,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) presence: Arc<dyn Presence>,
    pub(crate) metrics: Arc<ChannelMetrics>,
    /// `[channels] allowed_origins` and `[app] url`'s origin.
    pub(crate) origins: Vec<String>,
    pub(crate) limits: FrameLimits,
    /// Stops the background work (presence heartbeats, the Redis subscriber).
    pub(crate) stop: CancellationToken,
}

impl Shared {
    /// Publishes `frame` to `channel` on every server, leaving out `except`.
    pub(crate) async fn publish(
        &self,
        channel: &str,
        frame: Frame,
        except: Option<SocketId>,
    ) -> Result<(), ChannelError> {
        self.bus
            .publish(channel, Envelope::now(frame, except))
            .await
    }
}

/// Real-time channels: WebSocket clients speaking the Pusher protocol (pusher-js, Laravel
/// Echo), private and presence channels authorized by the application's rules on the
/// session, and events published from Rust or through Pusher's HTTP API. Cheap to clone;
/// install it with [`App::with`](crate::App::with) and take it as `State<Channels>` (or
/// hand it to jobs with `JobsBuilder::state`) to broadcast.
///
/// # Examples
///
/// ```no_run
/// use rondo::channels::{ChannelParams, Channels};
/// use rondo::{App, Config, Session, SessionManager, State};
///
/// async fn add_item(session: Session, State(channels): State<Channels>) -> Result<&'static str, rondo::SessionError> {
///     session.put("basket", &["apple"])?;
///     if let Some(reference) = session.reference() {
///         let channel = format!("private-basket.{}", reference.as_str());
///         let _ = channels.broadcast(&channel, "basket.updated", &["apple"]).await;
///     }
///     Ok("added")
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let app = App::new(Config::load("config.ini")?);
/// let sessions = SessionManager::from_config(app.config(), app.redis()).await?;
/// let channels = Channels::builder(app.config(), app.redis(), &sessions)
///     // Only the session whose reference is in the name may listen to its basket.
///     .private("basket.{id}", |session: Session, params: ChannelParams| async move {
///         let id = params.get("id").map(str::to_owned);
///         session.reference().map(|r| r.as_str().to_owned()) == id
///     })
///     .start()
///     .await?;
/// let app = app.with(sessions).with(channels).post("/basket", add_item);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Channels {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("enabled", &self.shared.config.enabled)
            .field("bus", &self.shared.bus.describe())
            .finish()
    }
}

/// Builds [`Channels`]: the rules, then [`ChannelsBuilder::start`].
#[must_use]
pub struct ChannelsBuilder {
    config: ChannelsConfig,
    app_url: String,
    pool_name: String,
    redis: Redis,
    backend: Backend,
    rules: Rules,
}

impl Channels {
    /// A builder configured by `[channels]`. Channels follow the session store: with Redis
    /// sessions, events and presence go through Redis and reach every server; with the
    /// memory store they stay within this process (and the start-up log says so).
    pub fn builder(config: &Config, redis: &Redis, sessions: &SessionManager) -> ChannelsBuilder {
        ChannelsBuilder {
            config: config.channels.clone(),
            app_url: config.app.url.clone(),
            pool_name: config.channels_pool_name().to_owned(),
            redis: redis.clone(),
            backend: sessions.backend(),
            rules: Rules::default(),
        }
    }

    /// Publishes `event` with `data` (serialized as JSON) to `channel`'s subscribers on
    /// every server.
    ///
    /// # Errors
    ///
    /// An invalid channel or event name, data that cannot be serialized or is larger than
    /// 10 KB, or (with Redis) Redis unreachable.
    pub async fn broadcast<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        event: &str,
        data: &T,
    ) -> Result<(), ChannelError> {
        self.send(channel, event, data, None).await
    }

    /// [`Channels::broadcast`] to every subscriber but the socket `except` (the one whose
    /// action caused the event, as Laravel's `toOthers()`; clients send their socket id in
    /// the `X-Socket-ID` header).
    ///
    /// # Errors
    ///
    /// As [`Channels::broadcast`], and an invalid socket id.
    pub async fn broadcast_except<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        event: &str,
        data: &T,
        except: &str,
    ) -> Result<(), ChannelError> {
        let except = SocketId::parse(except).map_err(|e| ChannelError::Invalid(e.to_string()))?;
        self.send(channel, event, data, Some(except)).await
    }

    async fn send<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        event: &str,
        data: &T,
        except: Option<SocketId>,
    ) -> Result<(), ChannelError> {
        let channel =
            ChannelName::new(channel).map_err(|e| ChannelError::Invalid(e.to_string()))?;
        if event.is_empty()
            || event.len() > super::protocol::MAX_EVENT_NAME_LEN
            || event.starts_with("pusher:")
            || event.starts_with("pusher_internal:")
        {
            return Err(ChannelError::Invalid(format!(
                "invalid event name {event:?}"
            )));
        }
        let data = serde_json::to_string(data).map_err(|e| ChannelError::Invalid(e.to_string()))?;
        if data.len() > super::protocol::MAX_EVENT_DATA_BYTES {
            return Err(ChannelError::Invalid(format!(
                "event data is {} bytes, the limit is {}",
                data.len(),
                super::protocol::MAX_EVENT_DATA_BYTES
            )));
        }
        let frame = Frame::event(event, &channel, &data);
        self.shared.publish(channel.as_str(), frame, except).await
    }

    /// Takes presence user `user_id` off presence channel `channel` on every server: each of
    /// their sockets there leaves it (the other members get `member_removed` once, as when
    /// they leave by themselves), receives `pusher:subscription_error` with type `Removed`
    /// and status 403 (Laravel Echo's `.error()` callback), and may not join that channel
    /// again. The eviction travels in order with the channel's events, so nothing
    /// published after it reaches those sockets.
    ///
    /// It acts on the sockets subscribed now: take the user's right away first (so that
    /// your channel rule refuses them), then remove them, and a new socket cannot come back.
    ///
    /// # Errors
    ///
    /// An invalid channel name, a channel that is not a presence channel (only those know
    /// who is behind a socket), an empty user id, or (with Redis) Redis unreachable.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(channels: rondo::channels::Channels) -> Result<(), rondo::channels::ChannelError> {
    /// // After taking Ann's membership away in the app's own records:
    /// channels.remove_user("presence-room.42", "ann").await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_user(&self, channel: &str, user_id: &str) -> Result<(), ChannelError> {
        let name = ChannelName::new(channel).map_err(|e| ChannelError::Invalid(e.to_string()))?;
        if name.kind() != ChannelKind::Presence {
            return Err(ChannelError::Invalid(format!(
                "{channel} is not a presence channel: only those know their users"
            )));
        }
        if user_id.is_empty() {
            return Err(ChannelError::Invalid("the user id is empty".to_owned()));
        }
        let frame = Frame::removed(&name);
        self.shared
            .bus
            .publish(name.as_str(), Envelope::eviction(frame, user_id))
            .await
    }

    /// The `[channels]` settings in force.
    pub fn config(&self) -> &ChannelsConfig {
        &self.shared.config
    }

    /// The app's credentials (key and secret), for signing in tests and tools.
    pub fn credentials(&self) -> &Credentials {
        &self.shared.credentials
    }
}

impl ChannelsBuilder {
    /// Adds a rule for private channels named `private-{pattern}`; see
    /// [`super::rules`](crate::channels::rules). `check` gets the session of the request
    /// asking and the captured parameters, and returns `bool` (or
    /// `Result<bool, SessionError>`).
    pub fn private<F, Fut>(mut self, pattern: &str, check: F) -> Self
    where
        F: Fn(Session, ChannelParams) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: IntoAllow,
    {
        self.rules.private(pattern, check);
        self
    }

    /// Adds a rule for presence channels named `presence-{pattern}`: `check` returns the
    /// member the session joins as (`Some(PresenceMember)`), or `None` to refuse.
    pub fn presence<F, Fut>(mut self, pattern: &str, check: F) -> Self
    where
        F: Fn(Session, ChannelParams) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: IntoMember,
    {
        self.rules.presence(pattern, check);
        self
    }

    /// Starts the channels: on Redis (a dedicated pub/sub connection, presence with
    /// heartbeats) when the sessions are in Redis, in memory otherwise.
    ///
    /// # Errors
    ///
    /// The channels' `[redis]` pool is missing or invalid, or Redis is unreachable.
    pub async fn start(self) -> Result<Channels, ChannelError> {
        let hub = Arc::new(Hub::default());
        let stop = CancellationToken::new();
        let metrics = Arc::new(ChannelMetrics::default());
        let (bus, presence): (Arc<dyn Bus>, Arc<dyn Presence>) = if self.backend == Backend::Redis
            && self.config.enabled
        {
            let pool = self
                .redis
                .pool(&self.pool_name)
                .await
                .map_err(|e| ChannelError::Unavailable(e.to_string()))?;
            let node = node_id()?;
            let bus =
                super::redis_bus::RedisBus::start(pool.clone(), hub.clone(), stop.clone()).await?;
            let presence =
                super::redis_presence::RedisPresence::new(pool, node, self.config.presence_ttl);
            (Arc::new(bus), Arc::new(presence))
        } else {
            if self.config.enabled {
                warn_in_process();
            }
            (
                Arc::new(MemoryBus::new(hub.clone())),
                Arc::new(MemoryPresence::default()),
            )
        };
        let mut origins = self.config.allowed_origins.clone();
        origins.push(crate::websocket::origin_of(&self.app_url));
        let limits = FrameLimits {
            max_frame_bytes: self.config.max_message_size,
            ..FrameLimits::default()
        };
        let shared = Arc::new(Shared {
            credentials: Credentials::new(self.config.key.clone(), self.config.secret.as_bytes()),
            config: self.config,
            rules: self.rules,
            hub,
            bus,
            presence,
            metrics,
            origins,
            limits,
            stop,
        });
        if shared.config.enabled {
            tokio::spawn(heartbeats(shared.clone()));
            tracing::info!(
                path = %shared.config.path,
                auth_path = %shared.config.auth_path,
                bus = shared.bus.describe(),
                "channels ready"
            );
        }
        Ok(Channels { shared })
    }
}

/// Renews this server's presence members and removes those of servers that died, sending
/// `member_removed` for them.
async fn heartbeats(shared: Arc<Shared>) {
    let period =
        (shared.config.presence_ttl / 5).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shared.stop.cancelled() => return,
        }
        for channel in shared.hub.channels_with_prefix("presence-") {
            let removed = match shared.presence.beat(&channel).await {
                Ok(removed) => removed,
                Err(err) => {
                    tracing::warn!(error = %err, channel = %channel, "presence heartbeat failed");
                    continue;
                }
            };
            let Ok(name) = ChannelName::new(channel.as_str()) else {
                continue;
            };
            for user in removed {
                tracing::info!(channel = %channel, user = %user, "member of a server that stopped answering removed");
                let frame = Frame::member_removed(&name, &user);
                if let Err(err) = shared.publish(&channel, frame, None).await {
                    tracing::warn!(error = %err, "member_removed not published");
                }
            }
        }
    }
}

/// A name for this server in presence records: random, so a restarted server is a new one.
fn node_id() -> Result<String, ChannelError> {
    let n =
        getrandom::u64().map_err(|e| ChannelError::Unavailable(format!("no randomness: {e}")))?;
    Ok(format!("{n:016x}"))
}

fn warn_in_process() {
    let lines = [
        "CHANNELS WORK WITHIN THIS PROCESS ONLY (the sessions use the memory store): an",
        "event published on another server does NOT reach this server's sockets, and",
        "presence lists only this server's members. Use Redis sessions to share them.",
    ];
    eprintln!();
    for line in lines {
        eprintln!("!!! WARNING: {line}");
    }
    eprintln!();
    tracing::warn!("channels use the in-process bus: not shared between servers");
}
