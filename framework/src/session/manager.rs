//! The session manager: one per app, built from `[session]` and the app's Redis, installed
//! as a component (state, metrics, a shutdown hook that flushes pending commits).

use std::sync::Arc;

use http::request::Parts;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::actor::{Registry, Shared};
use super::error::SessionError;
use super::handle::Session;
use super::id::{SessionId, SessionRef};
use super::settings::Settings;
use super::stats::{Gauges, SessionStats};
use super::store::{Backend, MemoryStore, RedisStore, SessionStore, StoreError};
use super::tracking::{Holders, Mode, Tracking};
use crate::component::{Component, Installer};
use crate::config::{Config, ReadCheck, StoreKind};
use crate::redis::{Redis, RedisPool};

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
/// let app = App::new(Config::load("config.ini")?);
/// let sessions = SessionManager::from_config(app.config(), app.redis()).await?;
/// let app = app.with(sessions).get("/", visits);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionManager {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("store", &self.shared.store.backend())
            .field("live_actors", &self.shared.registry.live())
            .finish()
    }
}

impl SessionManager {
    /// A manager on `store`, with `[session]` settings from `config`; `prefix` goes before
    /// every store key.
    pub fn new(store: impl SessionStore, config: &Config, prefix: &str) -> Self {
        Self::build(Arc::new(store), config, prefix, None)
    }

    /// The manager, with Redis client-side caching on `tracked` (a pool and a mode) if given.
    fn build(
        store: Arc<dyn SessionStore>,
        config: &Config,
        prefix: &str,
        tracked: Option<(RedisPool, Mode)>,
    ) -> Self {
        let settings = Settings::from_config(config, prefix.to_owned());
        let registry = Arc::new(Registry::new());
        let stats = Arc::new(SessionStats::default());
        let closing = CancellationToken::new();
        let tracking = tracked.map(|(pool, mode)| {
            let holders: std::sync::Weak<dyn Holders> = Arc::downgrade(&registry) as _;
            Tracking::start(
                pool,
                mode,
                format!("{prefix}session:"),
                holders,
                (
                    stats.invalidations.clone(),
                    stats.invalidations_received.clone(),
                ),
                closing.clone(),
            )
        });
        let shared = Shared {
            store,
            settings,
            registry,
            tracker: TaskTracker::new(),
            closing,
            tracking,
            stats,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The manager `[session] store` asks for, on the pool of `redis` named by
    /// `redis_connection_pool` (the app's, `App::redis`).
    ///
    /// - `redis`: Redis must answer now, or this fails (no silent fallback).
    /// - `memory`: the in-process store.
    /// - `auto`: Redis if it answers (and `[redis]` has the pool), otherwise the in-process
    ///   store with a loud warning on stderr, since sessions are then neither shared between
    ///   servers nor durable.
    ///
    /// # Errors
    ///
    /// `store = redis` with the pool missing from `[redis]` or Redis unreachable; with any
    /// store but `memory`, Redis refusing the pool's settings (a database it does not have,
    /// wrong credentials: [`SessionError::Misconfigured`]).
    pub async fn from_config(config: &Config, redis: &Redis) -> Result<Self, SessionError> {
        let kind = config.session.store;
        if kind == StoreKind::Memory {
            return Ok(Self::new(MemoryStore::new(), config, ""));
        }
        let name = &config.session.redis_connection_pool;
        let Some(pool_config) = redis.config(name) else {
            let why = format!("no Redis pool named {name:?} in [redis]");
            if kind == StoreKind::Auto {
                warn_memory_fallback(&why);
                return Ok(Self::new(MemoryStore::new(), config, ""));
            }
            return Err(SessionError::Unavailable(why));
        };
        let where_ = format!("{}:{}", pool_config.host, pool_config.port);
        let store = match redis.pool(name).await {
            Ok(pool) => {
                let store = RedisStore::new(pool);
                // The pool's own words ("Redis pool "default" unavailable: ..."), not the
                // store's "session store unavailable" around them: the message says that.
                store.ping().await.map(|()| store).map_err(|e| match e {
                    StoreError::Unavailable(why) => why,
                    other => other.to_string(),
                })
            }
            Err(err) => Err(err.to_string()),
        };
        if store.is_err() {
            if let Some(refusal) = RedisPool::refusal(pool_config).await {
                // A misconfiguration, not an outage: no fallback to memory, even with `auto`.
                return Err(SessionError::Misconfigured(format!(
                    "{}: {refusal}",
                    config.origin
                )));
            }
        }
        match store {
            Ok(store) => {
                tracing::info!(redis = %where_, pool = %pool_config.name, "sessions stored in Redis");
                let mode = match config.session.read_check {
                    ReadCheck::Tracking => Some(Mode::Keys),
                    ReadCheck::Broadcast => Some(Mode::Broadcast),
                    ReadCheck::Version => None,
                };
                let tracked = mode.map(|mode| (store.pool().clone(), mode));
                Ok(Self::build(
                    Arc::new(store),
                    config,
                    &pool_config.prefix,
                    tracked,
                ))
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

    /// What keeps the sessions: the job queue, which must share their fate, follows it.
    pub fn backend(&self) -> Backend {
        self.shared.store.backend()
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
            self.shared.clone(),
            self.shared.settings.cookie.read(headers),
            true,
        );
        request.extensions_mut().insert(session.clone());
        session
    }

    /// A brand-new session for the request being handled, ignoring any cookie it carried;
    /// it gets its id and cookie on its first write.
    pub fn fresh(&self) -> Session {
        Session::new(self.shared.clone(), Vec::new(), true)
    }

    pub(crate) fn start_parts(&self, parts: &mut Parts) -> Session {
        if let Some(session) = parts.extensions.get::<Session>() {
            return session.clone();
        }
        let ids = self.shared.settings.cookie.read(&parts.headers);
        let session = Session::new(self.shared.clone(), ids, true);
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
        let session = Session::new(self.shared.clone(), vec![id], false);
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
        let session = Session::by_key(self.shared.clone(), key);
        Ok(session.exists().await?.then_some(session))
    }

    /// Flushes every pending commit and stops the actors; the server calls it during
    /// graceful shutdown (a hook of the installed component).
    pub async fn shutdown(&self) {
        self.shared.closing.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }
}

/// Installed in an app, the manager is the state that [`Session`] arguments and
/// `State<SessionManager>` find, registers the session metrics, and flushes every pending
/// commit at shutdown.
impl Component for SessionManager {
    fn install(self, app: &mut Installer<'_>) {
        let gauges = Gauges {
            live: self.shared.registry.live_count(),
            tracking: self.shared.tracking.clone(),
        };
        self.shared.stats.register(app, gauges);
        let manager = self.clone();
        app.state(self);
        app.on_shutdown(move || async move { manager.shutdown().await });
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
