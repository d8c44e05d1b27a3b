//! [`Session`]: what controllers and background jobs use.
//!
//! A handle is lazy: until the first read nothing is loaded and no store connection is
//! taken, and a request that never reads or writes sends nothing to the store. Reads are
//! answered from the handle's own changes first, then from the snapshot the session's actor
//! gave it. `put`/`remove`/`clear` are recorded locally and handed to the actor when the
//! controller has answered; `update` goes to the actor at once and returns the committed
//! value.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, SET_COOKIE};
use http::request::Parts;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use super::actor::{Msg, Op, UpdateFn};
use super::id::{SessionId, SessionRef, StoreKey};
use super::manager::SessionManager;
use super::registry::ActorRef;
use super::store::StoreError;
use super::SessionError;
use crate::app::AppContext;
use crate::config::PersistMode;
use crate::extract::FromRequestParts;
use crate::handler::BoxFuture;
use crate::respond::{RequestHead, Responder};
use crate::scope::Finisher;
use crate::Response;

/// What the first touch of a session found under one id.
enum Opened {
    /// The session's data.
    Data(Arc<HashMap<String, Bytes>>),
    /// The store does not know the id; `moved`: because the session was given a new id.
    Unknown { moved: bool },
}

/// What the response must say about the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CookieAction {
    Set,
    Expire,
}

#[derive(Default)]
struct State {
    /// The current id; `None` for a session that does not exist (yet), or one opened by
    /// reference (background work knows its record, not its id).
    id: Option<SessionId>,
    /// The request's other session cookies, tried in order when `id` is unknown to the
    /// store: a cookie planted for a longer path comes first, and must not hide (or expire)
    /// the real one.
    candidates: Vec<SessionId>,
    /// How many session cookies the request sent: an unknown one is expired only when it
    /// was the only one (expiring it would delete whichever the browser holds for our path).
    sent: usize,
    /// The request's session got a new id while it was on its way: every operation fails
    /// with `Gone`, and nothing about the cookie is said.
    moved: bool,
    /// Where the session lives in the store: derived from `id`, or given by a reference.
    key: Option<StoreKey>,
    /// The id names a live session (stored, or created on this node).
    exists: bool,
    /// The actor's data as of the first touch; `None` until then.
    opened: Option<Arc<HashMap<String, Bytes>>>,
    /// `opened` was checked against the store (a read); a writer's first touch may skip that.
    validated: bool,
    refresh_due: bool,
    /// When the session was first stored (0: not yet), for the cookie's `Max-Age`.
    created: u64,
    actor: Option<(StoreKey, ActorRef)>,
    /// A session this handle created and has not stored yet (and gave to no actor): its
    /// first commit goes straight to the store, before the response.
    unstored: Option<StoreKey>,
    /// This handle's changes, for its own reads: `None` is a removal.
    local: HashMap<String, Option<Bytes>>,
    cleared: bool,
    /// Changes not yet handed to the actor, in order.
    ops: Vec<Op>,
    cookie: Option<CookieAction>,
    /// Keys flashed by this request.
    flashed: Vec<String>,
}

struct Inner {
    manager: SessionManager,
    state: Mutex<State>,
    /// Opened by id from outside a request ([`SessionManager::open`]): bound to that one
    /// session for good. It never creates a session, so a background job can never bring
    /// back (or replace) a session that was logged out or rotated away.
    bound: bool,
}

/// A session, as a controller argument (lazy) or from [`SessionManager::open`].
///
/// Values are anything serde can handle; they are stored as MessagePack. Keys starting with
/// `_` are reserved for the framework (flash values, CSRF tokens).
///
/// # Examples
///
/// ```
/// use rondo::{Json, Session, SessionError};
///
/// async fn me(session: Session) -> Result<Json<Option<String>>, SessionError> {
///     Ok(Json(session.get::<String>("user").await?))
/// }
///
/// async fn log_in(session: Session, Json(user): Json<String>) -> Result<&'static str, SessionError> {
///     session.regenerate().await?; // a new id on privilege change
///     session.put("user", &user)?; // persisted after the response
///     Ok("welcome")
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.lock();
        f.debug_struct("Session")
            .field("id", &state.id)
            .field("exists", &state.exists)
            .finish()
    }
}

pub(super) fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Bytes, SessionError> {
    rmp_serde::to_vec_named(value)
        .map(Bytes::from)
        .map_err(|e| SessionError::Encode {
            key: key.to_owned(),
            message: e.to_string(),
        })
}

pub(super) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, SessionError> {
    rmp_serde::from_slice(bytes).map_err(|e| SessionError::Decode {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

fn user_key(key: &str) -> Result<&str, SessionError> {
    if key.starts_with('_') {
        Err(SessionError::ReservedKey(key.to_owned()))
    } else {
        Ok(key)
    }
}

fn actor_ended(_: oneshot::error::RecvError) -> SessionError {
    SessionError::Unavailable("session actor ended".into())
}

impl Session {
    /// A handle on the first of `ids` that the store knows (the request's session cookies,
    /// in the order sent), or on no session.
    pub(crate) fn new(manager: SessionManager, ids: Vec<SessionId>, in_request: bool) -> Self {
        let sent = ids.len();
        let mut ids = ids.into_iter();
        let id = ids.next();
        let key = id.as_ref().map(|id| manager.key(id));
        let session = Self {
            inner: Arc::new(Inner {
                manager,
                state: Mutex::new(State {
                    id,
                    key,
                    candidates: ids.collect(),
                    sent,
                    ..State::default()
                }),
                bound: !in_request,
            }),
        };
        if in_request {
            crate::scope::defer(SessionFinisher(session.clone()));
        }
        session
    }

    /// A handle on the session stored at `key`, for work outside requests: it knows the
    /// record, not the id, and never creates a session.
    pub(crate) fn by_key(manager: SessionManager, key: StoreKey) -> Self {
        Self {
            inner: Arc::new(Inner {
                manager,
                state: Mutex::new(State {
                    key: Some(key),
                    ..State::default()
                }),
                bound: true,
            }),
        }
    }

    /// A reference to this session for background work ([`SessionManager::open_ref`]): it
    /// names the stored record, not the id, so it can be queued or logged without handing
    /// out the client's credential. `None` while the session does not exist.
    pub fn reference(&self) -> Option<SessionRef> {
        let state = self.inner.state.lock();
        if !state.exists {
            return None;
        }
        state.key.as_ref().map(SessionRef::of)
    }

    /// The session id, once the session is known to exist: after its first read, or after
    /// the first write to a new session. Never log it: it is the client's credential. Its
    /// `Display` is a safe hash.
    pub fn id(&self) -> Option<SessionId> {
        let state = self.inner.state.lock();
        state.exists.then(|| state.id.clone()).flatten()
    }

    /// Whether the session exists in the store (loading it if needed).
    ///
    /// # Errors
    ///
    /// The store could not be reached.
    pub async fn exists(&self) -> Result<bool, SessionError> {
        self.open(true).await?;
        Ok(self.inner.state.lock().exists)
    }

    /// The value at `key`, if any.
    ///
    /// # Errors
    ///
    /// The store could not be reached, or the stored value is not a `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let key = user_key(key)?;
        self.raw_get(key)
            .await?
            .map(|bytes| decode(key, &bytes))
            .transpose()
    }

    /// Sets `key` to `value`; visible to this request at once, to later requests on this node
    /// once the controller has answered, and stored after the response is sent.
    ///
    /// # Errors
    ///
    /// The value cannot be encoded, the key is reserved, or the session would exceed
    /// `[session] max_size`.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), SessionError> {
        let key = user_key(key)?;
        let bytes = encode(key, value)?;
        self.raw_put(key, bytes)
    }

    /// Removes `key`.
    ///
    /// # Errors
    ///
    /// The key is reserved.
    pub fn remove(&self, key: &str) -> Result<(), SessionError> {
        let key = user_key(key)?;
        let mut state = self.inner.state.lock();
        if state.key.is_none() && state.opened.is_some() {
            // Removing from a session that does not exist changes nothing.
            return Ok(());
        }
        state.local.insert(key.to_owned(), None);
        state.ops.push(Op::Remove(key.to_owned()));
        Ok(())
    }

    /// Removes every key, the framework's own included. The session (and its id) stays.
    pub fn clear(&self) {
        let mut state = self.inner.state.lock();
        state.local.clear();
        state.cleared = true;
        state.ops.push(Op::Clear);
    }

    /// Whether `key` has a value.
    ///
    /// # Errors
    ///
    /// The store could not be reached.
    pub async fn contains(&self, key: &str) -> Result<bool, SessionError> {
        Ok(self.raw_get(user_key(key)?).await?.is_some())
    }

    /// The keys with values, sorted; the framework's own (`_`...) are left out.
    ///
    /// # Errors
    ///
    /// The store could not be reached.
    pub async fn keys(&self) -> Result<Vec<String>, SessionError> {
        let data = self.open(true).await?;
        let state = self.inner.state.lock();
        let mut keys: Vec<String> = if state.cleared {
            Vec::new()
        } else {
            data.keys().cloned().collect()
        };
        for (k, v) in &state.local {
            match v {
                Some(_) if !keys.contains(k) => keys.push(k.clone()),
                None => keys.retain(|x| x != k),
                Some(_) => {}
            }
        }
        keys.retain(|k| !k.starts_with('_'));
        keys.sort();
        Ok(keys)
    }

    /// Atomically replaces the value at `key` with `f(old)` and returns the committed value.
    ///
    /// Exact under any concurrency, on one server or many: two requests adding to a basket
    /// at once both land. `f` may run more than once (again after another server's write),
    /// so it must only compute.
    ///
    /// # Errors
    ///
    /// The store could not be reached or written, a value could not be encoded or decoded,
    /// or the session ended meanwhile.
    pub async fn update<T, F>(&self, key: &str, f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnMut(Option<T>) -> T + Clone + Send + 'static,
    {
        match self.update_once(key, f.clone()).await {
            // The session ended under us (logged out elsewhere, expired, or its record was
            // unreadable): like an unknown id, the client continues in a fresh session. A
            // session opened by id has no client to continue: it stays ended.
            Err(SessionError::Gone) if !self.inner.bound && !self.inner.state.lock().moved => {
                self.inner.state.lock().reset();
                self.update_once(key, f).await
            }
            other => other,
        }
    }

    async fn update_once<T, F>(&self, key: &str, mut f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnMut(Option<T>) -> T + Send + 'static,
    {
        let key = user_key(key)?.to_owned();
        let name = key.clone();
        let limit = self.inner.manager.shared.settings.max_size;
        let update: UpdateFn = Box::new(move |old| {
            let old = old.map(|bytes| decode::<T>(&name, bytes)).transpose()?;
            let new = encode(&name, &f(old))?;
            if new.len() > limit {
                return Err(SessionError::TooLarge {
                    size: new.len(),
                    limit,
                });
            }
            Ok(Some(new))
        });
        match self.update_raw(key.clone(), update, true).await? {
            Some(bytes) => decode(&key, &bytes),
            None => Err(SessionError::Gone),
        }
    }

    /// Atomically replaces the value at `key` (any key, the framework's own included) with
    /// what `update` makes of it, and answers the committed value. `update` may refuse with
    /// an error, which is returned and changes nothing. A session that does not exist is
    /// created first when `create` is set; otherwise the answer is [`SessionError::Gone`].
    pub(super) async fn update_raw(
        &self,
        key: String,
        mut update: UpdateFn,
        create: bool,
    ) -> Result<Option<Bytes>, SessionError> {
        self.open(false).await?;
        let unstored = {
            let mut state = self.inner.state.lock();
            if !state.exists {
                if !create {
                    return Err(SessionError::Gone);
                }
                state.forget_id();
                self.create_if_new(&mut state)?;
            }
            state.unstored.clone()
        };
        if let Some(store_key) = unstored {
            // A session nobody else can know yet: compute here and create it in one commit.
            let old = self.inner.state.lock().local.get(&key).cloned().flatten();
            let value = update(old.as_ref())?.ok_or(SessionError::Gone)?;
            self.raw_put(&key, value.clone())?;
            let ops = std::mem::take(&mut self.inner.state.lock().ops);
            self.store_new(&store_key, ops).await?;
            return Ok(Some(value));
        }
        let (key_in_store, actor) = self.ensure().await?;
        let ops = std::mem::take(&mut self.inner.state.lock().ops);
        let (reply, answer) = oneshot::channel();
        let msg = Msg::Update {
            ops,
            key: key.clone(),
            f: update,
            reply,
        };
        self.send(&key_in_store, &actor, msg).await?;
        let value = answer.await.map_err(actor_ended)??;
        self.inner.state.lock().local.insert(key, value.clone());
        Ok(value)
    }

    /// Gives the session a new id, keeping its data; the old id stops working at once. Call
    /// it when privileges change (log in) so a planted id is worthless.
    ///
    /// # Errors
    ///
    /// The store could not be reached or written.
    pub async fn regenerate(&self) -> Result<(), SessionError> {
        self.open(false).await?;
        let (key, actor, ops) = {
            let mut state = self.inner.state.lock();
            match (&state.actor, state.exists) {
                (Some((key, actor)), true) => {
                    let (key, actor) = (key.clone(), actor.clone());
                    // Tokens issued to the old id (to whoever held it) die with it.
                    state.drop_prefix(super::csrf::PREFIX);
                    (key, actor, std::mem::take(&mut state.ops))
                }
                // Nothing stored yet: the first write creates a new id anyway.
                _ => return Ok(()),
            }
        };
        let new_id = SessionId::generate().map_err(|e| SessionError::Random(e.to_string()))?;
        let new_key = self.inner.manager.key(&new_id);
        let (reply, answer) = oneshot::channel();
        self.send(
            &key,
            &actor,
            Msg::Regenerate {
                ops,
                to: new_key.clone(),
                reply,
            },
        )
        .await?;
        let result = answer.await.map_err(actor_ended)?;
        let mut state = self.inner.state.lock();
        match result {
            Ok(()) => {
                let shared = &self.inner.manager.shared;
                state.actor = Some((new_key.clone(), shared.actor(&new_key, false)));
                state.id = Some(new_id);
                state.key = Some(new_key);
                state.cookie = Some(CookieAction::Set);
                Ok(())
            }
            Err(SessionError::Gone) => {
                state.reset();
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Ends the session (log out): the record is deleted and the cookie expired. Later writes
    /// in the same request start a new session with a new id.
    ///
    /// # Errors
    ///
    /// The store could not be reached.
    pub async fn destroy(&self) -> Result<(), SessionError> {
        let key = self.inner.state.lock().key.clone();
        if let Some(key) = key {
            let actor = self.actor_for(&key);
            let (reply, answer) = oneshot::channel();
            self.send(&key, &actor, Msg::Destroy { reply }).await?;
            answer.await.map_err(actor_ended)??;
        }
        let mut state = self.inner.state.lock();
        state.reset();
        state.cookie = Some(CookieAction::Expire);
        Ok(())
    }

    /// Notes that this request flashed `key` (see `flash.rs`).
    pub(super) fn mark_flashed(&self, key: &str) {
        self.inner.state.lock().flashed.push(key.to_owned());
    }

    /// Stores the changes made through this handle now and waits for the commit: Resonance's
    /// `persistSession()`. Requests do this by themselves after the response.
    ///
    /// # Errors
    ///
    /// The store could not be written, or [`SessionError::Gone`] when the session ended
    /// (logged out, rotated away, expired) before the changes were stored: they were dropped.
    pub async fn persist(&self) -> Result<(), SessionError> {
        if let Some((key, actor)) = self.hand_over(false).await? {
            let (reply, answer) = oneshot::channel();
            self.send(&key, &actor, Msg::Flush { reply: Some(reply) })
                .await?;
            answer.await.map_err(actor_ended)??;
        }
        Ok(())
    }

    pub(crate) async fn raw_get(&self, key: &str) -> Result<Option<Bytes>, SessionError> {
        {
            let state = self.inner.state.lock();
            if let Some(value) = state.local.get(key) {
                return Ok(value.clone());
            }
            if state.cleared {
                return Ok(None);
            }
        }
        Ok(self.open(true).await?.get(key).cloned())
    }

    pub(crate) fn raw_put(&self, key: &str, bytes: Bytes) -> Result<(), SessionError> {
        let limit = self.inner.manager.shared.settings.max_size;
        let mut state = self.inner.state.lock();
        let size = state.size_with(key, bytes.len());
        if size > limit {
            return Err(SessionError::TooLarge { size, limit });
        }
        state.local.insert(key.to_owned(), Some(bytes.clone()));
        state.ops.push(Op::Set(key.to_owned(), bytes));
        self.create_if_new(&mut state)
    }

    /// A write to a session that has no id (no cookie, or one the store refused, or after
    /// `destroy`) creates the session now, so `id()` and later writes see it. A handle opened
    /// by id never creates one: its session ended, and the write fails with `Gone`.
    fn create_if_new(&self, state: &mut State) -> Result<(), SessionError> {
        if state.key.is_some() {
            return Ok(());
        }
        if self.inner.bound || state.moved {
            return Err(SessionError::Gone);
        }
        let id = SessionId::generate().map_err(|e| SessionError::Random(e.to_string()))?;
        let key = self.inner.manager.key(&id);
        state.unstored = Some(key.clone());
        state.key = Some(key);
        state.id = Some(id);
        state.exists = true;
        state.opened.get_or_insert_with(Arc::default);
        state.validated = true;
        state.cookie = Some(CookieAction::Set);
        state.actor = None;
        Ok(())
    }

    /// Stores a session created by this handle, with `ops` as its data, in one commit that
    /// succeeds only if no record exists. This happens before the response: the cookie it
    /// sets must name a stored session on every server, not only on this one.
    async fn store_new(&self, key: &StoreKey, ops: Vec<Op>) -> Result<(), SessionError> {
        let mut data = HashMap::new();
        for op in ops {
            match op {
                Op::Set(k, v) => drop(data.insert(k, v)),
                Op::Remove(k) => drop(data.remove(&k)),
                Op::RemovePrefix(prefix) => data.retain(|k, _| !k.starts_with(&prefix)),
                Op::Clear => data.clear(),
            }
        }
        if data.is_empty() {
            // Nothing to keep: no session after all, and no cookie for one.
            let mut state = self.inner.state.lock();
            state.reset();
            state.cookie = None;
            return Ok(());
        }
        let shared = &self.inner.manager.shared;
        let now = super::store::unix_now();
        let ttl = shared.settings.ttl(0, now).ok_or(SessionError::Gone)?;
        let delta = super::store::Delta {
            set: data.into_iter().collect(),
            remove: Vec::new(),
        };
        shared.store.create(key, &delta, ttl, now).await?;
        shared.stats.created.inc();
        self.inner.state.lock().unstored = None;
        Ok(())
    }

    /// The first touch: asks the actor for the session's data (once per handle). An id the
    /// store does not know is dropped here, so it is never adopted.
    /// `revalidate`: the caller reads, so the data must be current on every server (the actor
    /// checks the stored version); writers pass `false` and may get the actor's warm copy.
    async fn open(&self, revalidate: bool) -> Result<Arc<HashMap<String, Bytes>>, SessionError> {
        if self.inner.state.lock().moved {
            return Err(SessionError::Gone);
        }
        loop {
            let moved = match self.open_one(revalidate).await? {
                Opened::Data(data) => return Ok(data),
                Opened::Unknown { moved } => moved,
            };
            let mut state = self.inner.state.lock();
            state.actor = None;
            state.exists = false;
            if moved && state.candidates.is_empty() && !self.inner.bound {
                // The session got a new id while this request, which names the old one, was
                // on its way (a second tab during a login): its client holds the new cookie
                // already, or is about to. Answering as a fresh session would expire that
                // cookie or replace it with an empty session's; the request is refused
                // instead (409), and a retry carries the new cookie.
                state.forget_id();
                state.moved = true;
                return Err(SessionError::Gone);
            }
            if state.candidates.is_empty() {
                // No cookie of the request names a stored session: its cookie is expired
                // when it was the only one.
                state.forget_id();
                state.validated = true;
                if state.sent == 1 {
                    state.cookie.get_or_insert(CookieAction::Expire);
                }
                let empty = Arc::new(HashMap::new());
                state.opened = Some(empty.clone());
                return Ok(empty);
            }
            let next = state.candidates.remove(0);
            state.key = Some(self.inner.manager.key(&next));
            state.id = Some(next);
            state.opened = None;
            state.validated = false;
        }
    }

    /// [`Session::open`] for the current id: its data, or that the store does not know it.
    async fn open_one(&self, revalidate: bool) -> Result<Opened, SessionError> {
        let key = {
            let mut state = self.inner.state.lock();
            if let Some(data) = &state.opened {
                if state.validated || !revalidate {
                    return Ok(Opened::Data(data.clone()));
                }
            }
            match state.key.clone() {
                Some(key) if state.unstored.is_none() => key,
                _ => {
                    // No session, or one created by this handle: nothing to load.
                    let data = state.opened.get_or_insert_with(Arc::default).clone();
                    state.validated = true;
                    return Ok(Opened::Data(data));
                }
            }
        };
        let shared = &self.inner.manager.shared;
        // With client-side caching, a copy no write has touched since it was checked is
        // current: no round trip. Otherwise note the state before checking, so that the
        // check can vouch for the copy afterwards.
        let mut vouch = None;
        if let (true, Some(tracking)) = (revalidate, shared.tracking.get()) {
            let actor = self.actor_for(&key);
            if tracking.current(shared, &actor.stamp) {
                if let Some(data) = self.take_published(&actor, Some(Some(0))) {
                    shared.stats.memory_reads.inc();
                    return Ok(Opened::Data(data));
                }
            }
            vouch = Some((tracking, actor.stamp.clone(), tracking.ticket(&actor.stamp)));
        }
        let vouch = move || {
            if let Some((tracking, stamp, ticket)) = vouch {
                tracking.confirm(&stamp, ticket);
            }
        };
        // A reader asks the store for the version itself, concurrently with other requests
        // (pipelined), so the actor only compares versions instead of queueing reloads.
        let seen = if revalidate {
            shared.stats.version_checks.inc();
            Some(
                self.inner
                    .manager
                    .shared
                    .store
                    .version(&key)
                    .await
                    .or_else(|err| match err {
                        StoreError::Corrupt(_) => Ok(Some(u64::MAX)),
                        other => Err(SessionError::from(other)),
                    })?,
            )
        } else {
            None
        };
        let actor = self.actor_for(&key);
        if let Some(data) = self.take_published(&actor, seen) {
            vouch();
            return Ok(Opened::Data(data));
        }
        let (reply, answer) = oneshot::channel();
        let actor = self.send(&key, &actor, Msg::Open { reply, seen }).await?;
        let snapshot = answer.await.map_err(actor_ended)??;
        let mut state = self.inner.state.lock();
        if let Some(data) = &state.opened {
            if state.validated || !revalidate {
                return Ok(Opened::Data(data.clone()));
            }
        }
        state.validated = revalidate;
        match snapshot {
            Some(snapshot) => {
                if revalidate {
                    vouch();
                }
                state.exists = true;
                state.refresh_due = snapshot.refresh_due;
                state.created = snapshot.created;
                state.opened = Some(snapshot.data.clone());
                Ok(Opened::Data(snapshot.data))
            }
            None => {
                tracing::debug!(session = %key.log_tag(), "unknown session id refused");
                let moved = actor
                    .published
                    .moved
                    .load(std::sync::atomic::Ordering::SeqCst);
                Ok(Opened::Unknown { moved })
            }
        }
    }

    /// Opens from the actor's published copy when it is at least as new as the stored
    /// version this request read, and nothing (expiry, refresh) needs the actor's attention.
    fn take_published(
        &self,
        actor: &ActorRef,
        seen: Option<Option<u64>>,
    ) -> Option<Arc<HashMap<String, Bytes>>> {
        let Some(Some(seen)) = seen else { return None };
        let copy = actor.published()?;
        let settings = &self.inner.manager.shared.settings;
        let now = super::store::unix_now();
        let fresh_enough = copy.version >= seen
            && !settings.expired(copy.created, now)
            && now.saturating_sub(copy.refreshed) < settings.refresh_interval.as_secs();
        if !fresh_enough {
            return None;
        }
        let mut state = self.inner.state.lock();
        if let Some(data) = &state.opened {
            if state.validated {
                return Some(data.clone());
            }
        }
        state.exists = true;
        state.validated = true;
        state.created = copy.created;
        state.opened = Some(copy.data.clone());
        Some(copy.data.clone())
    }

    /// The session's actor, creating the session (new id, new actor) if it does not exist.
    async fn ensure(&self) -> Result<(StoreKey, ActorRef), SessionError> {
        self.open(false).await?;
        let mut state = self.inner.state.lock();
        if !state.exists {
            state.forget_id();
            self.create_if_new(&mut state)?;
        }
        if let Some(actor) = &state.actor {
            return Ok(actor.clone());
        }
        // A session created here and not stored yet starts its actor from an empty record.
        let (key, fresh) = match state.unstored.take() {
            Some(key) => (key, true),
            None => (state.key.clone().ok_or(SessionError::Gone)?, false),
        };
        let actor = self.inner.manager.shared.actor(&key, fresh);
        state.actor = Some((key.clone(), actor.clone()));
        Ok((key, actor))
    }

    /// The cached actor for `key` (an existing session), or the registry's.
    fn actor_for(&self, key: &StoreKey) -> ActorRef {
        let mut state = self.inner.state.lock();
        match &state.actor {
            Some((k, actor)) if k == key => actor.clone(),
            _ => {
                let actor = self.inner.manager.shared.actor(key, false);
                state.actor = Some((key.clone(), actor.clone()));
                actor
            }
        }
    }

    /// Sends to the cached actor, or through the registry if that one has ended; answers
    /// the actor that took the message, which the handle keeps for what follows (a flush
    /// must reach the actor that holds the changes).
    async fn send(
        &self,
        key: &StoreKey,
        actor: &ActorRef,
        msg: Msg,
    ) -> Result<ActorRef, SessionError> {
        match actor.send(msg).await {
            Ok(()) => Ok(actor.clone()),
            Err(msg) => {
                let actor = self.inner.manager.shared.send(key, msg).await?;
                let mut state = self.inner.state.lock();
                if state.actor.as_ref().is_some_and(|(k, _)| k == key) {
                    state.actor = Some((key.clone(), actor.clone()));
                }
                Ok(actor)
            }
        }
    }

    /// Hands unsent changes (and flash ageing) to the actor. Returns the actor when there is
    /// something to commit or an expiry to refresh.
    ///
    /// `acknowledge`: the response will say the changes are applied before they are
    /// committed (`persist = after_response`). They are handed over only once the session
    /// is confirmed to still exist under this id (for free while client-side caching vouches
    /// for the copy, else one `HGET`): if it was rotated or ended meanwhile, the change is
    /// refused ([`SessionError::Gone`]) rather than answered as applied and then dropped;
    /// if it rotates after this check, the change follows it to the new id.
    async fn hand_over(
        &self,
        acknowledge: bool,
    ) -> Result<Option<(StoreKey, ActorRef)>, SessionError> {
        let (mut ops, flashed, opened, refresh_due) = {
            let mut state = self.inner.state.lock();
            let ops = std::mem::take(&mut state.ops);
            let flashed = std::mem::take(&mut state.flashed);
            (
                ops,
                flashed,
                state.opened.clone(),
                state.refresh_due && state.exists,
            )
        };
        super::flash::age(opened.as_deref(), &flashed, &mut ops)?;
        if ops.is_empty() && !refresh_due {
            return Ok(None);
        }
        let unstored = self.inner.state.lock().unstored.clone();
        if let Some(key) = unstored {
            self.store_new(&key, ops).await?;
            return Ok(None);
        }
        let (key, actor) = self.ensure().await?;
        if refresh_due {
            self.inner
                .state
                .lock()
                .cookie
                .get_or_insert(CookieAction::Set);
        }
        if !ops.is_empty() {
            if acknowledge && !self.confirm_live(&key, &actor).await? {
                tracing::debug!(session = %key.log_tag(), "session ended before this request's changes could be applied");
                self.inner.state.lock().reset();
                return Err(SessionError::Gone);
            }
            let acked = acknowledge;
            let actor = self.send(&key, &actor, Msg::Apply { ops, acked }).await?;
            return Ok(Some((key, actor)));
        }
        Ok(Some((key, actor)))
    }

    /// Whether the session still exists at `key` now, as far as every server's writes
    /// before this moment go: the tracking connection vouches for the actor's copy (no
    /// round trip), or the store is asked for the stored version.
    async fn confirm_live(&self, key: &StoreKey, actor: &ActorRef) -> Result<bool, SessionError> {
        let shared = &self.inner.manager.shared;
        let tracking = shared.tracking.get();
        if let Some(tracking) = tracking {
            if tracking.current(shared, &actor.stamp) {
                return Ok(true);
            }
        }
        let ticket = tracking.map(|tracking| (tracking, tracking.ticket(&actor.stamp)));
        let live = match shared.store.version(key).await {
            Ok(version) => version.is_some(),
            Err(StoreError::Corrupt(_)) => false,
            Err(err) => return Err(err.into()),
        };
        if let (true, Some((tracking, ticket))) = (live, ticket) {
            tracking.confirm(&actor.stamp, ticket);
        }
        Ok(live)
    }

    /// The response's cookie headers.
    fn cookie_header(&self) -> Option<String> {
        let state = self.inner.state.lock();
        let cookie = &self.inner.manager.shared.settings.cookie;
        match (state.cookie?, &state.id) {
            (CookieAction::Set, Some(id)) if state.exists => {
                let settings = &self.inner.manager.shared.settings;
                let max_age = settings
                    .ttl(state.created, super::store::unix_now())
                    .unwrap_or_default();
                Some(cookie.set(id, max_age))
            }
            (CookieAction::Expire, _) | (CookieAction::Set, None) => Some(cookie.expire()),
            _ => None,
        }
    }

    async fn finish(self, head: &RequestHead, response: &mut Response) {
        let span = tracing::Span::current();
        if !span.is_disabled() {
            if let Some(id) = self.id() {
                // `Display` of an id is a salted hash of it, never the id.
                span.record("session", tracing::field::display(&id));
            }
        }
        let acknowledge = self.inner.manager.shared.settings.persist == PersistMode::AfterResponse;
        let handed = match self.hand_over(acknowledge).await {
            Ok(handed) => handed,
            Err(err) => {
                *response = err.respond(head);
                return;
            }
        };
        if let Some(header) = self
            .cookie_header()
            .and_then(|h| HeaderValue::from_maybe_shared(Bytes::from(h)).ok())
        {
            response.headers_mut().append(SET_COOKIE, header);
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        let Some((key, actor)) = handed else { return };
        let shared = self.inner.manager.shared.clone();
        match shared.settings.persist {
            PersistMode::AfterResponse => response.body_mut().on_sent(move || {
                if let Err(msg) = actor.try_send(Msg::Flush { reply: None }) {
                    // The mailbox is full: wait for room in the same actor, which holds the
                    // changes (past `max_actors`, the registry may hand out another one).
                    let tracker = shared.tracker.clone();
                    tracker.spawn(async move {
                        if let Err(msg) = actor.send(msg).await {
                            drop(shared.send(&key, msg).await);
                        }
                    });
                }
            }),
            PersistMode::BeforeResponse => {
                let (reply, answer) = oneshot::channel();
                let result = match self
                    .send(&key, &actor, Msg::Flush { reply: Some(reply) })
                    .await
                {
                    Ok(_) => answer.await.map_err(actor_ended).and_then(|r| r),
                    Err(err) => Err(err),
                };
                if let Err(err) = result {
                    *response = err.respond(head);
                }
            }
        }
    }
}

impl State {
    /// Back to "no session": after destroy, or when the session ended elsewhere.
    /// The session has no identity any more (it does not exist).
    fn forget_id(&mut self) {
        self.candidates.clear();
        self.id = None;
        self.key = None;
    }

    fn reset(&mut self) {
        let (cookie, moved) = (self.cookie, self.moved);
        *self = State {
            opened: Some(Arc::default()),
            cookie,
            moved,
            ..State::default()
        };
    }

    /// Removes every key starting with `prefix`, for this handle's reads and for the store.
    fn drop_prefix(&mut self, prefix: &str) {
        let stored = self
            .opened
            .iter()
            .flat_map(|data| data.keys())
            .filter(|k| k.starts_with(prefix))
            .cloned();
        let removed: Vec<String> = stored.collect();
        for key in removed {
            self.local.insert(key, None);
        }
        for value in self
            .local
            .iter_mut()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
        {
            *value = None;
        }
        self.ops.push(Op::RemovePrefix(prefix.to_owned()));
    }

    /// The session's size in bytes if `key` had a value of `len` bytes.
    fn size_with(&self, key: &str, len: usize) -> usize {
        let mut size = key.len() + len;
        if !self.cleared {
            if let Some(data) = &self.opened {
                size += data
                    .iter()
                    .filter(|(k, _)| k.as_str() != key && !self.local.contains_key(k.as_str()))
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>();
            }
        }
        size + self
            .local
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .filter_map(|(k, v)| v.as_ref().map(|v| k.len() + v.len()))
            .sum::<usize>()
    }
}

/// Runs after the controller: hands changes over, sets the cookie, arranges the commit.
struct SessionFinisher(Session);

impl Finisher for SessionFinisher {
    fn finish<'a>(
        self: Box<Self>,
        head: &'a RequestHead,
        response: &'a mut Response,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.0.finish(head, response))
    }
}

impl FromRequestParts for Session {
    type Rejection = SessionError;
    const DEFERS: bool = true;

    async fn from_request_parts(parts: &mut Parts, app: &AppContext) -> Result<Self, SessionError> {
        let manager = app
            .state::<SessionManager>()
            .ok_or(SessionError::NoManager)?;
        Ok(manager.start_parts(parts))
    }
}
