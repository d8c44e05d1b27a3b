//! A session's first touch: nothing is loaded until a handle is read or written, and then
//! once. A read must see every write committed before the request started, on any server,
//! so it revalidates the copy (free while client-side caching vouches for it, else one
//! version check); a writer may take the actor's warm copy, since its commit is conditional.
//! An id the store does not know is never adopted: the request's next session cookie is
//! tried, then a write creates a new session with a new id.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{CookieAction, Opened, Session, State};
use crate::session::actor::{self, ActorRef, Msg, Op};
use crate::session::error::SessionError;
use crate::session::id::SessionId;
use crate::session::store::{unix_now, Delta, StoreError, StoreKey};

impl Session {
    /// A write to a session that has no id (no cookie, or one the store refused, or after
    /// `destroy`) creates the session now, so `id()` and later writes see it. A handle opened
    /// by id never creates one: its session ended, and the write fails with `Gone`.
    pub(super) fn create_if_new(&self, state: &mut State) -> Result<(), SessionError> {
        if state.key.is_some() {
            return Ok(());
        }
        if self.inner.bound || state.moved {
            return Err(SessionError::Gone);
        }
        let id = SessionId::generate().map_err(|e| SessionError::Random(e.to_string()))?;
        let key = self.key_of(&id);
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
    pub(super) async fn store_new(&self, key: &StoreKey, ops: Vec<Op>) -> Result<(), SessionError> {
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
        let shared = &self.inner.shared;
        let now = unix_now();
        let ttl = shared
            .settings
            .expiry
            .ttl(0, now)
            .ok_or(SessionError::Gone)?;
        let delta = Delta {
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
    pub(super) async fn open(
        &self,
        revalidate: bool,
    ) -> Result<Arc<HashMap<String, Bytes>>, SessionError> {
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
            state.key = Some(self.key_of(&next));
            state.id = Some(next);
            state.opened = None;
            state.validated = false;
        }
    }

    /// [`Session::open`] for the current id: its data, or that the store does not know it.
    pub(super) async fn open_one(&self, revalidate: bool) -> Result<Opened, SessionError> {
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
        let shared = &self.inner.shared;
        // With client-side caching, a copy no write has touched since it was checked is
        // current: no round trip. Otherwise note the state before checking, so that the
        // check can vouch for the copy afterwards.
        let mut vouch = None;
        if let (true, Some(tracking)) = (revalidate, shared.tracking.as_ref()) {
            let actor = self.actor_for(&key);
            if tracking.current(&actor.stamp) {
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
            Some(shared.store.version(&key).await.or_else(|err| match err {
                StoreError::Corrupt(_) => Ok(Some(u64::MAX)),
                other => Err(SessionError::from(other)),
            })?)
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
    pub(super) fn take_published(
        &self,
        actor: &ActorRef,
        seen: Option<Option<u64>>,
    ) -> Option<Arc<HashMap<String, Bytes>>> {
        let Some(Some(seen)) = seen else { return None };
        let copy = actor.published()?;
        let settings = &self.inner.shared.settings;
        let now = unix_now();
        let fresh_enough = copy.version >= seen
            && !settings.expiry.expired(copy.created, now)
            && !settings.expiry.refresh_due(copy.refreshed, now);
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
    pub(super) async fn ensure(&self) -> Result<(StoreKey, ActorRef), SessionError> {
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
        let actor = actor::actor(&self.inner.shared, &key, fresh);
        state.actor = Some((key.clone(), actor.clone()));
        Ok((key, actor))
    }

    /// The cached actor for `key` (an existing session), or the registry's.
    pub(super) fn actor_for(&self, key: &StoreKey) -> ActorRef {
        let mut state = self.inner.state.lock();
        match &state.actor {
            Some((k, actor)) if k == key => actor.clone(),
            _ => {
                let actor = actor::actor(&self.inner.shared, key, false);
                state.actor = Some((key.clone(), actor.clone()));
                actor
            }
        }
    }

    /// Sends to the cached actor, or through the registry if that one has ended; answers
    /// the actor that took the message, which the handle keeps for what follows (a flush
    /// must reach the actor that holds the changes).
    pub(super) async fn send(
        &self,
        key: &StoreKey,
        actor: &ActorRef,
        msg: Msg,
    ) -> Result<ActorRef, SessionError> {
        match actor.send(msg).await {
            Ok(()) => Ok(actor.clone()),
            Err(msg) => {
                let actor = actor::send(&self.inner.shared, key, msg).await?;
                let mut state = self.inner.state.lock();
                if state.actor.as_ref().is_some_and(|(k, _)| k == key) {
                    state.actor = Some((key.clone(), actor.clone()));
                }
                Ok(actor)
            }
        }
    }
}

/// The actor went away before it answered.
pub(super) fn actor_ended(_: oneshot::error::RecvError) -> SessionError {
    SessionError::Unavailable("session actor ended".into())
}
