//! What goes to the session's actor and waits for its answer: `update` (exact under any
//! concurrency), `regenerate`, `destroy` and `persist`.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use super::codec::{decode, encode, user_key};
use super::open::actor_ended;
use super::{CookieAction, Session};
use crate::session::actor::{self, Msg, UpdateFn};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

impl Session {
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

    pub(super) async fn update_once<T, F>(&self, key: &str, mut f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnMut(Option<T>) -> T + Send + 'static,
    {
        let key = user_key(key)?.to_owned();
        let name = key.clone();
        let limit = self.inner.shared.settings.session.max_size;
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
    pub(crate) async fn update_raw(
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
        let new_key = self.key_of(&new_id);
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
                let shared = &self.inner.shared;
                state.actor = Some((new_key.clone(), actor::actor(shared, &new_key, false)));
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
}
