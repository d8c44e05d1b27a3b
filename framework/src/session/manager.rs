//! The session manager: one per app, holding the store, the settings and the actor registry.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::request::Parts;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::actor::Msg;
use super::cookie::CookieSettings;
use super::handle::Session;
use super::id::{SessionId, SessionRef, StoreKey};
use super::registry::{ActorRef, Registry};
use super::stats::SessionStats;
use super::store::{MemoryStore, RedisStore, SessionStore};
use super::tracking::Tracking;
use super::SessionError;
use crate::config::{Config, PersistMode, ReadCheck, RedisPoolConfig, StoreKind};
use crate::redis_pool::RedisPool;
use crate::App;

/// Session settings derived from `[session]`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) cookie: CookieSettings,
    pub(crate) prefix: String,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) refresh_interval: Duration,
    pub(crate) persist: PersistMode,
    pub(crate) max_size: usize,
    pub(crate) actor_idle_timeout: Duration,
    pub(crate) max_actors: usize,
}

impl Settings {
    fn from_config(config: &Config, prefix: String) -> Self {
        let s = &config.session;
        Self {
            cookie: CookieSettings::from_config(config),
            prefix,
            idle_timeout: s.idle_timeout,
            max_lifetime: s.max_lifetime,
            refresh_interval: s.refresh_interval,
            persist: s.persist,
            max_size: s.max_size,
            actor_idle_timeout: s.actor_idle_timeout,
            max_actors: s.max_actors,
        }
    }

    /// Whether a session created at `created` has passed its absolute lifetime.
    pub(crate) fn expired(&self, created: u64, now: u64) -> bool {
        self.ttl(created, now).is_none()
    }

    /// How long the store should keep the record from `now`: the cookie lifespan, shortened
    /// by the idle timeout and by what is left of the absolute lifetime; `None` once that is
    /// used up. `created == 0` is a session not stored yet.
    pub(crate) fn ttl(&self, created: u64, now: u64) -> Option<Duration> {
        let mut ttl = self.cookie.lifespan;
        if let Some(idle) = self.idle_timeout {
            ttl = ttl.min(idle);
        }
        if let Some(max) = self.max_lifetime {
            let age = if created == 0 {
                0
            } else {
                now.saturating_sub(created)
            };
            let left = max.as_secs().checked_sub(age).filter(|left| *left > 0)?;
            ttl = ttl.min(Duration::from_secs(left));
        }
        Some(ttl)
    }
}

/// What the actors share.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) settings: Settings,
    pub(crate) registry: Registry,
    /// Actors and deferred flushes, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Cancelled at shutdown: actors make a last commit and end.
    pub(crate) closing: CancellationToken,
    /// Redis client-side caching for reads, when the store is Redis and `read_check` asks
    /// for it; set once, after the manager exists (its connection task holds a weak link).
    pub(crate) tracking: OnceLock<Arc<Tracking>>,
    /// Counters for the metrics endpoint.
    pub(crate) stats: SessionStats,
}

impl Shared {
    pub(crate) fn actor(self: &Arc<Self>, key: &StoreKey, fresh: bool) -> ActorRef {
        self.registry.get_or_spawn(self, key, fresh)
    }

    /// Sends `msg` to the actor for `key`, respawning it if it ended meanwhile; answers the
    /// actor that took it (later messages that belong with it must go to the same one: past
    /// `max_actors`, each lookup may spawn another).
    pub(crate) async fn send(
        self: &Arc<Self>,
        key: &StoreKey,
        mut msg: Msg,
    ) -> Result<ActorRef, SessionError> {
        for _ in 0..3 {
            let actor = self.actor(key, false);
            match actor.send(msg).await {
                Ok(()) => return Ok(actor),
                Err(back) => msg = back,
            }
        }
        Err(SessionError::Unavailable(
            "session actor unavailable".into(),
        ))
    }
}

/// The app's session manager: start sessions from requests, open them from background work,
/// persist and shut down cleanly. Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use rondo::{App, Config, Session, SessionManager};
///
/// async fn visits(session: Session) -> Result<String, rondo::SessionError> {
///     let n = session.update("visits", |n: Option<u64>| n.unwrap_or(0) + 1).await?;
///     Ok(format!("visit number {n}"))
/// }
///
/// let config = Config::load("config.ini")?;
/// let sessions = SessionManager::from_config(&config).await?;
/// let app = sessions.install(App::new(config)).get("/", visits);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionManager {
    pub(crate) shared: Arc<Shared>,
    /// The Redis pool of the store, when [`SessionManager::from_config`] built one: other
    /// parts of the app (the job queue) share it instead of opening their own.
    pool: Option<RedisPool>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("store", &self.shared.store.kind())
            .field("live_actors", &self.shared.registry.live())
            .finish()
    }
}

impl SessionManager {
    /// A manager on `store`, with `[session]` settings from `config`; `prefix` goes before
    /// every store key.
    pub fn new(store: impl SessionStore, config: &Config, prefix: &str) -> Self {
        let shared = Shared {
            store: Arc::new(store),
            settings: Settings::from_config(config, prefix.to_owned()),
            registry: Registry::new(),
            tracker: TaskTracker::new(),
            closing: CancellationToken::new(),
            tracking: OnceLock::new(),
            stats: SessionStats::default(),
        };
        Self {
            shared: Arc::new(shared),
            pool: None,
        }
    }

    /// The manager `[session] store` asks for.
    ///
    /// - `redis`: the pool named by `redis_connection_pool`; Redis must answer now, or this
    ///   fails (no silent fallback).
    /// - `memory`: the in-process store.
    /// - `auto`: Redis if it answers, otherwise the in-process store with a loud warning on
    ///   stderr, since sessions are then neither shared between servers nor durable.
    ///
    /// # Errors
    ///
    /// `store = redis` with the pool missing from `[redis]` or Redis unreachable; with any
    /// store but `memory`, Redis refusing the pool's settings (a database it does not have,
    /// wrong credentials: [`SessionError::Misconfigured`]).
    pub async fn from_config(config: &Config) -> Result<Self, SessionError> {
        let kind = config.session.store;
        if kind == StoreKind::Memory {
            return Ok(Self::new(MemoryStore::new(), config, ""));
        }
        let pool_config = match config.session_pool() {
            Ok(pool) => pool,
            Err(err) if kind == StoreKind::Auto => {
                warn_memory_fallback(&err.to_string());
                return Ok(Self::new(MemoryStore::new(), config, ""));
            }
            Err(err) => return Err(SessionError::Unavailable(err.to_string())),
        };
        let where_ = format!("{}:{}", pool_config.host, pool_config.port);
        let redis = match RedisPool::new(pool_config).await {
            Ok(pool) => {
                let store = RedisStore::new(pool.clone());
                store
                    .ping()
                    .await
                    .map(|()| (store, pool))
                    .map_err(|e| e.to_string())
            }
            Err(err) => Err(err.to_string()),
        };
        if redis.is_err() {
            if let Some(refusal) = RedisPool::refusal(pool_config).await {
                // A misconfiguration, not an outage: no fallback to memory, even with `auto`.
                return Err(SessionError::Misconfigured(format!(
                    "{}: {refusal}",
                    config.origin
                )));
            }
        }
        match redis {
            Ok((store, pool)) => {
                tracing::info!(redis = %where_, pool = %pool_config.name, "sessions stored in Redis");
                let mut manager = Self::new(store, config, &pool_config.prefix);
                manager.pool = Some(pool);
                if config.session.read_check == ReadCheck::Tracking {
                    manager.track(pool_config);
                }
                Ok(manager)
            }
            Err(why) if kind == StoreKind::Auto => {
                warn_memory_fallback(&format!("Redis at {where_} is unreachable ({why})"));
                Ok(Self::new(MemoryStore::new(), config, ""))
            }
            Err(why) => Err(SessionError::Unavailable(format!(
                "[session] store = redis, but Redis at {where_} is unreachable: {why}"
            ))),
        }
    }

    /// Starts Redis client-side caching of reads for this manager's keys.
    fn track(&self, pool: &RedisPoolConfig) {
        let prefix = format!("{}session:", self.shared.settings.prefix);
        let tracking = Tracking::start(
            pool.clone(),
            prefix,
            Arc::downgrade(&self.shared),
            self.shared.closing.clone(),
        );
        // A new manager: the cell is empty.
        drop(self.shared.tracking.set(tracking));
    }

    /// Registers the manager with `app`: as state (for [`Session`] arguments and
    /// `State<SessionManager>`) and as a shutdown hook that flushes pending commits.
    pub fn install(&self, app: App) -> App {
        let manager = self.clone();
        let app = app
            .state(self.clone())
            .on_shutdown(move || async move { manager.shutdown().await });
        let app = match self.shared.store.redis_pool() {
            Some(pool) => pool.register_metrics(app),
            None => app,
        };
        self.shared
            .stats
            .register(app, Arc::downgrade(&self.shared))
    }

    /// The store's kind: `"redis"` or `"memory"`.
    pub fn store_kind(&self) -> &'static str {
        self.shared.store.kind()
    }

    /// The Redis pool of the store, when it was built by [`SessionManager::from_config`].
    pub fn redis_pool(&self) -> Option<&RedisPool> {
        self.pool.as_ref()
    }

    /// Session actors live on this node.
    pub fn live_actors(&self) -> usize {
        self.shared.registry.live()
    }

    /// Checks that the store answers (for a readiness probe).
    ///
    /// # Errors
    ///
    /// The store is unreachable.
    pub async fn ready(&self) -> Result<(), SessionError> {
        self.shared.store.ping().await.map_err(SessionError::from)
    }

    /// Starts (lazily) the session of a request: Resonance's `$sessionManager->start()`.
    /// Calling it again for the same request returns the same session. When called while the
    /// request is being handled, the cookie is set on its response and changes are persisted
    /// after it is sent, exactly as for a `Session` controller argument.
    pub fn start<B>(&self, request: &mut http::Request<B>) -> Session {
        let (headers, extensions) = (request.headers(), request.extensions());
        if let Some(session) = extensions.get::<Session>() {
            return session.clone();
        }
        let session = Session::new(
            self.clone(),
            self.shared.settings.cookie.read(headers),
            true,
        );
        request.extensions_mut().insert(session.clone());
        session
    }

    /// A brand-new session for the request being handled, ignoring any cookie it carried;
    /// it gets its id and cookie on its first write.
    pub fn fresh(&self) -> Session {
        Session::new(self.clone(), Vec::new(), true)
    }

    pub(crate) fn start_parts(&self, parts: &mut Parts) -> Session {
        if let Some(session) = parts.extensions.get::<Session>() {
            return session.clone();
        }
        let ids = self.shared.settings.cookie.read(&parts.headers);
        let session = Session::new(self.clone(), ids, true);
        parts.extensions.insert(session.clone());
        session
    }

    /// Persists the request's session now (before the response), like Resonance's
    /// `persistSession()`. A no-op when the request has no started session.
    ///
    /// # Errors
    ///
    /// The store could not be written.
    pub fn persist_session<B>(
        &self,
        request: &http::Request<B>,
    ) -> impl std::future::Future<Output = Result<(), SessionError>> + Send + 'static {
        // Taken now, so the future does not borrow the request (request bodies are not Sync).
        let session = request.extensions().get::<Session>().cloned();
        async move {
            match session {
                Some(session) => session.persist().await,
                None => Ok(()),
            }
        }
    }

    /// Opens a known session from outside a request (a background job). It goes through
    /// the same actor as requests, so its writes and theirs never clobber each other.
    /// Returns `None` when the session does not exist (anymore): a job never resurrects a
    /// session that was logged out or rotated away.
    ///
    /// Changes made through the returned handle are not persisted automatically (there is no
    /// response to wait for): `update` commits by itself, and `persist` commits `put`s.
    ///
    /// The handle is bound to this one session and never creates another: when the session
    /// ends while the handle is in use (a logout between `open` and a write), `update` and
    /// `persist` fail with [`SessionError::Gone`] and nothing is written. Every commit is
    /// conditional on the version the actor read, and a missing record conflicts, so no
    /// write through this handle can recreate the record.
    ///
    /// # Errors
    ///
    /// The store could not be reached.
    pub async fn open(&self, id: &str) -> Result<Option<Session>, SessionError> {
        let Some(id) = SessionId::parse(id) else {
            return Ok(None);
        };
        let session = Session::new(self.clone(), vec![id], false);
        Ok(session.exists().await?.then_some(session))
    }

    /// Opens a session from a [`SessionRef`] ([`Session::reference`]), like
    /// [`SessionManager::open`] but without the id: the way background jobs reach a
    /// session, since a queued job must not carry the client's credential. `None` when the
    /// session no longer exists (or the reference is malformed).
    ///
    /// # Errors
    ///
    /// The store could not be reached.
    pub async fn open_ref(&self, reference: &SessionRef) -> Result<Option<Session>, SessionError> {
        let Some(key) = reference.store_key(&self.shared.settings.prefix) else {
            return Ok(None);
        };
        let session = Session::by_key(self.clone(), key);
        Ok(session.exists().await?.then_some(session))
    }

    /// Flushes every pending commit and stops the actors; the server calls it during
    /// graceful shutdown (through [`SessionManager::install`]).
    pub async fn shutdown(&self) {
        self.shared.closing.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }

    pub(crate) fn key(&self, id: &SessionId) -> StoreKey {
        id.store_key(&self.shared.settings.prefix)
    }
}

fn warn_memory_fallback(why: &str) {
    let lines = [
        format!("{why}."),
        "SESSIONS USE THE IN-PROCESS MEMORY STORE: they are NOT shared between servers".to_owned(),
        "and are LOST when this process stops. Start Redis, or set [session] store = redis"
            .to_owned(),
        "to refuse to start without it, or store = memory to silence this warning.".to_owned(),
    ];
    eprintln!();
    for line in &lines {
        eprintln!("!!! WARNING: {line}");
    }
    eprintln!();
    tracing::warn!(
        reason = why,
        "sessions fall back to the in-process memory store"
    );
}
