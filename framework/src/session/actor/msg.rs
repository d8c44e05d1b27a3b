//! The messages a session actor takes, and the changes they carry.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::session::error::SessionError;
use crate::session::store::StoreKey;

/// A closure for `update`: old value in, new value out (`None` removes the key). It may run
/// more than once (again after a conflict), so it must not have side effects.
pub(crate) type UpdateFn =
    Box<dyn FnMut(Option<&Bytes>) -> Result<Option<Bytes>, SessionError> + Send>;

/// A blind change to session data.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Set(String, Bytes),
    Remove(String),
    /// Removes every key starting with this (a rotation drops the CSRF tokens issued
    /// before it).
    RemovePrefix(String),
    Clear,
}

/// What a request sees when it first touches a session.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) data: Arc<HashMap<String, Bytes>>,
    /// The cookie's expiry should be refreshed (and the store's TTL with it).
    pub(crate) refresh_due: bool,
    /// When the session was first stored (Unix seconds; 0 while it is not), for the cookie's
    /// `Max-Age` near the absolute lifetime.
    pub(crate) created: u64,
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, SessionError>>;

/// An `update` waiting for its commit: its reply (taken once answered) and its current value.
pub(super) type UpdateWaiter = (
    Option<Reply<Option<Bytes>>>,
    Result<Option<Bytes>, SessionError>,
);

pub(crate) enum Msg {
    /// A request's first touch: the current data, or `None` when the session does not exist.
    /// `seen` is the stored version the request read after it started (`Some(None)`: no
    /// record); the actor reloads only if its copy is older. `None`: a writer, whose commit
    /// checks the version anyway.
    Open {
        reply: Reply<Option<Snapshot>>,
        seen: Option<Option<u64>>,
    },
    /// Changes from a request, applied in memory now, committed at the next flush.
    /// `acked`: the client was already told they are applied (a response sent before the
    /// commit, after the session was confirmed to exist): should the session move to a new
    /// id before they are committed, they follow it.
    Apply { ops: Vec<Op>, acked: bool },
    /// Commit what is pending; reply (if asked) once it is stored.
    Flush { reply: Option<Reply<()>> },
    /// Read-modify-write of one key, answered with the committed value.
    Update {
        ops: Vec<Op>,
        key: String,
        f: UpdateFn,
        reply: Reply<Option<Bytes>>,
    },
    /// Commit, then move the record to a new key; this actor's session is then gone.
    Regenerate {
        ops: Vec<Op>,
        to: StoreKey,
        reply: Reply<()>,
    },
    /// Delete the record; this actor's session is then gone.
    Destroy { reply: Reply<()> },
}

/// Applies a blind change to `data`.
pub(super) fn apply(data: &mut Arc<HashMap<String, Bytes>>, op: &Op) {
    match op {
        Op::Set(k, v) => set(data, k, Some(v.clone())),
        Op::Remove(k) => set(data, k, None),
        Op::RemovePrefix(prefix) => {
            if data.keys().any(|k| k.starts_with(prefix.as_str())) {
                Arc::make_mut(data).retain(|k, _| !k.starts_with(prefix.as_str()));
            }
        }
        Op::Clear => {
            if !data.is_empty() {
                *data = Arc::default();
            }
        }
    }
}

/// Sets (or with `None` removes) one key of `data`, copying it only when it is shared.
pub(super) fn set(data: &mut Arc<HashMap<String, Bytes>>, key: &str, value: Option<Bytes>) {
    match value {
        Some(v) => {
            Arc::make_mut(data).insert(key.to_owned(), v);
        }
        None => {
            if data.contains_key(key) {
                Arc::make_mut(data).remove(key);
            }
        }
    }
}

/// Answers a message for a session that is gone.
pub(super) fn refuse(msg: Msg) {
    match msg {
        Msg::Open { reply, .. } => drop(reply.send(Ok(None))),
        Msg::Apply { .. } | Msg::Flush { reply: None } => {}
        // Like `mark_gone` answers a flush that was waiting: what was to be flushed is
        // dropped, and the caller (a background job's `persist`) learns it.
        Msg::Flush { reply: Some(reply) } => drop(reply.send(Err(SessionError::Gone))),
        Msg::Update { reply, .. } => drop(reply.send(Err(SessionError::Gone))),
        Msg::Regenerate { reply, .. } => drop(reply.send(Err(SessionError::Gone))),
        Msg::Destroy { reply } => drop(reply.send(Ok(()))),
    }
}
