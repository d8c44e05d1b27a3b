//! [`Session`]: what controllers and background jobs use.
//!
//! A handle is lazy: until the first read nothing is loaded and no store connection is
//! taken, and a request that never reads or writes sends nothing to the store. Reads are
//! answered from the handle's own changes first, then from the snapshot the session's actor
//! gave it. `put`/`remove`/`clear` are recorded locally and handed to the actor when the
//! controller has answered; `update` goes to the actor at once and returns the committed
//! value.
//!
//! - `codec`: values as MessagePack, and the keys an app may use.
//! - `open`: the first touch (lazy, revalidated when read), creating a session, the actor.
//! - `update`: what goes to the actor and waits: `update`, `regenerate`, `destroy`, `persist`.
//! - `finish`: the end of a request: changes handed over, the cookie, the commit.
//! - `flash`, `csrf`: flash values and CSRF tokens, kept under reserved keys.

mod codec;
mod csrf;
mod finish;
mod flash;
mod open;
mod update;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) use self::codec::decode;
use self::codec::{encode, user_key};
use self::finish::SessionFinisher;
use super::actor::{ActorRef, Op, Shared};
use super::error::SessionError;
use super::id::{SessionId, SessionRef};
use super::store::StoreKey;

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
    shared: Arc<Shared>,
    state: Mutex<State>,
    /// Opened by id from outside a request ([`SessionManager::open`](crate::SessionManager::open)): bound to that one
    /// session for good. It never creates a session, so a background job can never bring
    /// back (or replace) a session that was logged out or rotated away.
    bound: bool,
}

/// A session, as a controller argument (lazy) or from [`SessionManager::open`](crate::SessionManager::open).
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

impl Session {
    /// The store key of `id` under this manager's prefix.
    fn key_of(&self, id: &SessionId) -> StoreKey {
        id.store_key(&self.inner.shared.settings.prefix)
    }

    /// A handle on the first of `ids` that the store knows (the request's session cookies,
    /// in the order sent), or on no session.
    pub(crate) fn new(shared: Arc<Shared>, ids: Vec<SessionId>, in_request: bool) -> Self {
        let sent = ids.len();
        let mut ids = ids.into_iter();
        let id = ids.next();
        let key = id.as_ref().map(|id| id.store_key(&shared.settings.prefix));
        let session = Self {
            inner: Arc::new(Inner {
                shared,
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
            crate::respond::defer(SessionFinisher(session.clone()));
        }
        session
    }

    /// A handle on the session stored at `key`, for work outside requests: it knows the
    /// record, not the id, and never creates a session.
    pub(crate) fn by_key(shared: Arc<Shared>, key: StoreKey) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                state: Mutex::new(State {
                    key: Some(key),
                    ..State::default()
                }),
                bound: true,
            }),
        }
    }

    /// A reference to this session for background work ([`SessionManager::open_ref`](crate::SessionManager::open_ref)): it
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

    /// Notes that this request flashed `key` (see `flash.rs`).
    fn mark_flashed(&self, key: &str) {
        self.inner.state.lock().flashed.push(key.to_owned());
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
        let limit = self.inner.shared.settings.session.max_size;
        let mut state = self.inner.state.lock();
        let size = state.size_with(key, bytes.len());
        if size > limit {
            return Err(SessionError::TooLarge { size, limit });
        }
        state.local.insert(key.to_owned(), Some(bytes.clone()));
        state.ops.push(Op::Set(key.to_owned(), bytes));
        self.create_if_new(&mut state)
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
