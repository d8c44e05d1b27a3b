//! The end of a request: the handle's changes go to the actor, the response gets its cookie
//! (`Set-Cookie` when the session is new, rotated, ended or due for a refresh, with
//! `Cache-Control: no-store`), and the commit happens after the response is sent
//! (`persist = after_response`) or before it (`before_response`).

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{HeaderValue, CACHE_CONTROL, SET_COOKIE};
use tokio::sync::oneshot;

use super::open::actor_ended;
use super::{CookieAction, Session};
use crate::body::Response;
use crate::config::PersistMode;
use crate::respond::{Finisher, RequestHead, Responder};
use crate::session::actor::{self, ActorRef, Msg};
use crate::session::error::SessionError;
use crate::session::store::{unix_now, StoreError, StoreKey};

impl Session {
    /// Hands unsent changes (and flash ageing) to the actor. Returns the actor when there is
    /// something to commit or an expiry to refresh.
    ///
    /// `acknowledge`: the response will say the changes are applied before they are
    /// committed (`persist = after_response`). They are handed over only once the session
    /// is confirmed to still exist under this id (for free while client-side caching vouches
    /// for the copy, else one `HGET`): if it was rotated or ended meanwhile, the change is
    /// refused ([`SessionError::Gone`]) rather than answered as applied and then dropped;
    /// if it rotates after this check, the change follows it to the new id.
    pub(super) async fn hand_over(
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
    pub(super) async fn confirm_live(
        &self,
        key: &StoreKey,
        actor: &ActorRef,
    ) -> Result<bool, SessionError> {
        let shared = &self.inner.shared;
        let tracking = shared.tracking.as_ref();
        if let Some(tracking) = tracking {
            if tracking.current(&actor.stamp) {
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
    pub(super) fn cookie_header(&self) -> Option<String> {
        let state = self.inner.state.lock();
        let cookie = &self.inner.shared.settings.cookie;
        match (state.cookie?, &state.id) {
            (CookieAction::Set, Some(id)) if state.exists => {
                let settings = &self.inner.shared.settings;
                let max_age = settings
                    .expiry
                    .ttl(state.created, unix_now())
                    .unwrap_or_default();
                Some(cookie.set(id, max_age))
            }
            (CookieAction::Expire, _) | (CookieAction::Set, None) => Some(cookie.expire()),
            _ => None,
        }
    }

    /// Runs after the controller answered: hands changes over, sets the cookie, arranges
    /// the commit.
    pub(crate) async fn finish(self, head: &RequestHead, response: &mut Response) {
        let span = tracing::Span::current();
        if !span.is_disabled() {
            if let Some(id) = self.id() {
                // `Display` of an id is a salted hash of it, never the id.
                span.record("session", tracing::field::display(&id));
            }
        }
        let acknowledge = self.inner.shared.settings.session.persist == PersistMode::AfterResponse;
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
        let shared = self.inner.shared.clone();
        match shared.settings.session.persist {
            PersistMode::AfterResponse => response.body_mut().on_sent(move || {
                if let Err(msg) = actor.try_send(Msg::Flush { reply: None }) {
                    // The mailbox is full: wait for room in the same actor, which holds the
                    // changes (past `max_actors`, the registry may hand out another one).
                    let tracker = shared.tracker.clone();
                    tracker.spawn(async move {
                        if let Err(msg) = actor.send(msg).await {
                            drop(actor::send(&shared, &key, msg).await);
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

/// Runs after the controller: hands changes over, sets the cookie, arranges the commit.
pub(super) struct SessionFinisher(pub(super) Session);

impl Finisher for SessionFinisher {
    fn finish<'a>(
        self: Box<Self>,
        head: &'a RequestHead,
        response: &'a mut Response,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.0.finish(head, response))
    }
}
