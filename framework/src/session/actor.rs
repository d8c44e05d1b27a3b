//! Session actors: one owner per live session on this node, and the registry that finds them.
//!
//! Every operation on a session, from requests, background work and the persist path, is a
//! message to the session's actor. The actor is the only writer of its copy of the session:
//! it applies changes in arrival order, answers reads from memory, and commits pending
//! changes to the store as one versioned delta. When another server committed first, the
//! commit conflicts; the actor reloads and replays its pending changes (re-running `update`
//! closures on the fresh value) and commits again. That is what makes `update` exact across
//! servers, and coalescing is free: whatever queued up while a commit was in flight is
//! committed together by the next one.
//!
//! Shape (Alice Ryhl's "Actors with Tokio"): the private [`Actor`] owns the receiver and the
//! state; callers hold an [`ActorRef`] (a bounded `mpsc::Sender`); requests carry a
//! `oneshot` reply. Actors never send to each other or to callers' channels, so bounded
//! channels cannot deadlock in a cycle. An actor ends after `actor_idle_timeout` without
//! messages once nothing is pending, or at shutdown after a final commit.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::id::StoreKey;
use super::manager::Shared;
use super::registry::{Board, Published, MAILBOX};
use super::store::{msgpack_values, unix_now, Commit, Delta, Loaded, Record, StoreError};
use super::SessionError;

/// A commit that keeps conflicting gives up ([`SessionError::Busy`]) after this many tries
/// in a row...
const MAX_CONFLICTS: usize = 64;
/// ...or after this long, whichever comes first. Contention is not an outage: between tries
/// the actor backs off a random while (see [`contention_pause`]), so that writers on
/// several servers stop colliding, and changes keep queueing (coalesced) meanwhile.
const CONFLICT_BUDGET: Duration = Duration::from_secs(2);

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

type Reply<T> = oneshot::Sender<Result<T, SessionError>>;

/// An `update` waiting for its commit: its reply (taken once answered) and its current value.
type UpdateWaiter = (
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

/// A change waiting for its commit.
enum Pending {
    /// A blind change; `acked` as in [`Msg::Apply`].
    Op { op: Op, acked: bool },
    Update {
        key: String,
        f: UpdateFn,
        waiter: usize,
    },
}

/// The `Apply` messages of a batch not yet in the published copy: counted down on the
/// board when they are, or when the batch ends without them.
struct Unapplied {
    board: Arc<Board>,
    count: usize,
}

impl Unapplied {
    fn done(&mut self) {
        self.board.applied(std::mem::take(&mut self.count));
    }
}

impl Drop for Unapplied {
    fn drop(&mut self) {
        self.done();
    }
}

/// The stored record as the actor last saw it.
#[derive(Default)]
struct Base {
    data: Arc<HashMap<String, Bytes>>,
    version: u64,
    created: u64,
    refreshed: u64,
}

/// Starts the actor for `key` on the manager's task tracker.
pub(super) fn spawn(
    shared: &Arc<Shared>,
    key: StoreKey,
    generation: u64,
    rx: mpsc::Receiver<Box<Msg>>,
    fresh: bool,
    registered: bool,
    published: Arc<Board>,
) {
    let mut actor = Actor::new(shared.clone(), key, generation, rx, fresh, registered);
    actor.published = published;
    shared.tracker.spawn(Box::new(actor).run());
}

struct Actor {
    shared: Arc<Shared>,
    key: StoreKey,
    /// Shared with every [`ActorRef`]: where the current copy is published for readers.
    published: Arc<Board>,
    generation: u64,
    registered: bool,
    rx: mpsc::Receiver<Box<Msg>>,
    /// `None` until the first load.
    base: Option<Base>,
    /// `base` with `pending` applied: what this node's requests see.
    data: Arc<HashMap<String, Bytes>>,
    pending: Vec<Pending>,
    /// Created on this node and not committed yet: a store miss is expected, not "gone".
    fresh: bool,
    /// Destroyed, rotated away, expired or never existed: every later message is refused.
    gone: bool,
    /// Where the session went when it is gone because its id was rotated: acknowledged
    /// changes that still arrive here follow it.
    moved_to: Option<StoreKey>,
    touch_due: bool,
    /// Results of the `update`s in `pending`, by waiter index.
    updates: Vec<UpdateWaiter>,
    flushes: Vec<Reply<()>>,
    flush_requested: bool,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Actor {
    fn new(
        shared: Arc<Shared>,
        key: StoreKey,
        generation: u64,
        rx: mpsc::Receiver<Box<Msg>>,
        fresh: bool,
        registered: bool,
    ) -> Self {
        Self {
            shared,
            key,
            published: Arc::default(),
            generation,
            registered,
            rx,
            base: fresh.then(Base::default),
            data: Arc::default(),
            pending: Vec::new(),
            fresh,
            gone: false,
            moved_to: None,
            touch_due: false,
            updates: Vec::new(),
            flushes: Vec::new(),
            flush_requested: false,
            retry_at: None,
            backoff: Duration::from_millis(50),
        }
    }

    /// The actor's life. It runs boxed: the task then holds the loop's small state and a
    /// pointer, not a second copy of the actor (an `async fn` keeps its arguments apart from
    /// its locals), and a node holds up to `max_actors` idle ones.
    async fn run(mut self: Box<Self>) {
        let idle = if self.registered {
            self.shared.settings.actor_idle_timeout
        } else {
            Duration::from_millis(1)
        };
        let closing = self.shared.closing.clone();
        // One timer, re-armed each round: the retry deadline while changes wait for a failed
        // commit, the idle deadline when nothing is pending.
        let timer = tokio::time::sleep(idle);
        tokio::pin!(timer);
        loop {
            let deadline = match (self.pending.is_empty(), self.retry_at) {
                (true, _) => Some(Instant::now() + idle),
                (false, retry) => retry,
            };
            if let Some(deadline) = deadline {
                timer.as_mut().reset(deadline);
            }
            let first = tokio::select! {
                msg = self.rx.recv() => msg,
                () = &mut timer, if deadline.is_some() => {
                    if self.pending.is_empty() {
                        None
                    } else {
                        self.flush_requested = true;
                        Box::pin(self.commit_pending()).await;
                        continue;
                    }
                }
                () = closing.cancelled() => None,
            };
            let Some(first) = first else { break };
            let mut batch = vec![*first];
            while batch.len() < MAILBOX {
                match self.rx.try_recv() {
                    Ok(msg) => batch.push(*msg),
                    Err(_) => break,
                }
            }
            // Boxed so that an idle actor's task holds only this loop's small state, not the
            // largest state of a load or commit (100k idle actors are the normal case).
            Box::pin(self.process(batch)).await;
            if self.gone {
                break;
            }
        }
        Box::pin(self.finish()).await;
    }

    /// Publishes the current copy for readers (or withdraws it once the session is gone).
    fn publish(&self) {
        let copy = match &self.base {
            Some(base) if !self.gone && base.version > 0 => Some(base),
            _ => None,
        };
        let mut slot = self.published.copy.lock();
        match (copy, slot.as_ref()) {
            (None, _) => *slot = None,
            (Some(base), Some(p))
                if p.version == base.version
                    && Arc::ptr_eq(&p.data, &self.data)
                    && p.refreshed == base.refreshed => {}
            (Some(base), _) => {
                *slot = Some(Arc::new(Published {
                    data: self.data.clone(),
                    version: base.version,
                    created: base.created,
                    refreshed: base.refreshed,
                }));
            }
        }
    }

    /// Leaves the registry, serves what is still queued, and makes a last commit.
    async fn finish(&mut self) {
        *self.published.copy.lock() = None;
        if self.registered {
            self.shared.registry.remove(&self.key, self.generation);
        }
        self.rx.close();
        let mut rest = Vec::new();
        while let Ok(msg) = self.rx.try_recv() {
            rest.push(*msg);
        }
        if !rest.is_empty() {
            self.process(rest).await;
        }
        // Shutdown or idle end with changes still pending: keep trying until they are stored
        // or the server's shutdown deadline drops this task (then `Drop` logs what was lost).
        while !self.gone && !self.pending.is_empty() {
            self.flush_requested = true;
            self.commit_pending().await;
            if !self.pending.is_empty() {
                tokio::time::sleep(self.backoff).await;
            }
        }
    }

    async fn process(&mut self, batch: Vec<Msg>) {
        // Counted down however the batch ends: a failed one answers its readers itself.
        let applies = batch
            .iter()
            .filter(|m| matches!(m, Msg::Apply { .. }))
            .count();
        let mut unapplied = Unapplied {
            board: self.published.clone(),
            count: applies,
        };
        let held = self.base.as_ref().map(|b| b.version);
        let stale = batch.iter().any(|m| match m {
            Msg::Open {
                seen: Some(seen), ..
            } => match (seen, held) {
                // The store has a newer version, or none while this copy thinks it exists.
                (Some(seen), Some(held)) => *seen > held,
                (None, Some(held)) => held > 0,
                _ => true,
            },
            _ => false,
        });
        let needs_data = batch.iter().any(|m| !matches!(m, Msg::Destroy { .. }));
        // A request that reads must see every write committed before it started, on any
        // server: it read the stored version itself, and a copy at least that new will do.
        // Writers need no check: their commit is conditional on the version and replays on
        // a conflict, so a warm copy saves them the round trip.
        if !self.gone && needs_data && (self.base.is_none() || stale) {
            if let Err(err) = self.reload().await {
                self.fail_batch(batch, &err);
                return;
            }
        } else if !self.gone && batch.iter().any(|m| matches!(m, Msg::Open { .. })) {
            if let Err(err) = self.check_expiry().await {
                self.fail_batch(batch, &err);
                return;
            }
        }
        for msg in batch {
            self.handle(msg).await;
        }
        if applies > 0 {
            // A request's changes are visible to every later request on this node at once,
            // also while their commit is in flight: a reader that sees the old stored version
            // takes the published copy, so it must already hold them.
            self.publish();
            unapplied.done();
        }
        if self.flush_requested || self.updates.iter().any(|(w, _)| w.is_some()) {
            self.commit_pending().await;
        }
        self.publish();
    }

    /// Answers a whole batch with `err` when the store could not even be read; blind changes
    /// are kept for a later commit.
    fn fail_batch(&mut self, batch: Vec<Msg>, err: &SessionError) {
        for msg in batch {
            match msg {
                Msg::Open { reply, .. } => drop(reply.send(Err(err.clone()))),
                Msg::Apply { ops, acked } => self
                    .pending
                    .extend(ops.into_iter().map(|op| Pending::Op { op, acked })),
                Msg::Flush { reply } => {
                    if let Some(reply) = reply {
                        drop(reply.send(Err(err.clone())));
                    }
                }
                Msg::Update { reply, .. } => drop(reply.send(Err(err.clone()))),
                Msg::Regenerate { reply, .. } | Msg::Destroy { reply } => {
                    drop(reply.send(Err(err.clone())))
                }
            }
        }
        if !self.pending.is_empty() {
            self.schedule_retry();
        }
    }

    async fn handle(&mut self, msg: Msg) {
        if self.gone {
            if let (Msg::Apply { ops, acked: true }, Some(to)) = (&msg, &self.moved_to) {
                return self.forward(to, ops.clone());
            }
            return refuse(msg);
        }
        match msg {
            Msg::Open { reply, .. } => {
                let exists = self.fresh || self.base.as_ref().is_some_and(|b| b.version > 0);
                let snapshot = exists.then(|| Snapshot {
                    data: self.data.clone(),
                    refresh_due: self.touch_due,
                    created: self.base.as_ref().map_or(0, |b| b.created),
                });
                drop(reply.send(Ok(snapshot)));
            }
            Msg::Apply { ops, acked } => self.apply_ops(ops, acked),
            Msg::Flush { reply } => {
                self.flush_requested = true;
                if let Some(reply) = reply {
                    self.flushes.push(reply);
                }
            }
            Msg::Update {
                ops,
                key,
                mut f,
                reply,
            } => {
                self.apply_ops(ops, false);
                match f(self.data.get(&key)) {
                    Ok(value) => {
                        set(&mut self.data, &key, value.clone());
                        let waiter = self.updates.len();
                        self.updates.push((Some(reply), Ok(value)));
                        self.pending.push(Pending::Update { key, f, waiter });
                    }
                    Err(err) => drop(reply.send(Err(err))),
                }
            }
            Msg::Regenerate { ops, to, reply } => {
                self.apply_ops(ops, false);
                self.flush_requested = true;
                self.commit_pending().await;
                if !self.pending.is_empty() {
                    drop(reply.send(Err(SessionError::Unavailable(
                        "session could not be saved".into(),
                    ))));
                    return;
                }
                let moved = self.shared.store.rename(&self.key, &to).await;
                drop(reply.send(match moved {
                    Ok(true) => {
                        self.gone = true;
                        // Changes acknowledged before the rename that reach this actor only
                        // now follow the session.
                        self.moved_to = Some(to);
                        self.published.moved.store(true, Ordering::SeqCst);
                        *self.published.copy.lock() = None;
                        Ok(())
                    }
                    Ok(false) => Err(SessionError::Gone),
                    Err(err) => Err(err.into()),
                }));
            }
            Msg::Destroy { reply } => {
                let result = self
                    .shared
                    .store
                    .delete(&self.key)
                    .await
                    .map_err(SessionError::from);
                if result.is_ok() {
                    self.mark_gone();
                }
                drop(reply.send(result));
            }
        }
    }

    fn apply_ops(&mut self, ops: Vec<Op>, acked: bool) {
        for op in ops {
            apply(&mut self.data, &op);
            self.pending.push(Pending::Op { op, acked });
        }
    }

    /// Reads the store and rebuilds `data` as the stored record plus pending changes.
    async fn reload(&mut self) -> Result<(), SessionError> {
        let known = self.base.as_ref().map_or(0, |b| b.version);
        let loaded = self.shared.store.load(&self.key, known).await;
        let loaded = match loaded.and_then(msgpack_values) {
            Ok(loaded) => loaded,
            Err(StoreError::Corrupt(why)) => {
                tracing::warn!(session = %self.tag(), reason = %why, "corrupt session record dropped; the client gets a fresh session");
                self.shared.store.delete(&self.key).await?;
                Loaded::Missing
            }
            Err(err) => return Err(err.into()),
        };
        match loaded {
            Loaded::Unchanged => {}
            Loaded::Missing if self.fresh && known == 0 => {}
            Loaded::Missing => self.mark_gone(),
            Loaded::Moved(to) => self.follow(to),
            Loaded::Record(record) => {
                self.shared.stats.loads.inc();
                self.rebase(record);
            }
        }
        self.check_expiry().await
    }

    /// Ends a session past its absolute lifetime and notes when its expiry needs refreshing;
    /// runs whenever requests open the session, whether or not the copy was reloaded.
    async fn check_expiry(&mut self) -> Result<(), SessionError> {
        if let Some(base) = &self.base {
            let now = unix_now();
            if base.version > 0 {
                if self.shared.settings.expired(base.created, now) {
                    tracing::debug!(session = %self.tag(), "session reached its maximum lifetime");
                    self.shared.store.delete(&self.key).await?;
                    self.mark_gone();
                } else if now.saturating_sub(base.refreshed)
                    >= self.shared.settings.refresh_interval.as_secs()
                {
                    self.touch_due = true;
                }
            }
        }
        Ok(())
    }

    fn rebase(&mut self, record: Record) {
        let Record {
            data,
            version,
            created,
            refreshed,
        } = record;
        let base = Base {
            data: Arc::new(data),
            version,
            created,
            refreshed,
        };
        self.data = base.data.clone();
        self.base = Some(base);
        self.fresh = false;
        self.replay();
    }

    /// Re-applies pending changes on top of `base`, re-running update closures.
    fn replay(&mut self) {
        self.data = self
            .base
            .as_ref()
            .map(|b| b.data.clone())
            .unwrap_or_default();
        let mut kept = Vec::with_capacity(self.pending.len());
        for pending in std::mem::take(&mut self.pending) {
            match pending {
                Pending::Op { op, acked } => {
                    apply(&mut self.data, &op);
                    kept.push(Pending::Op { op, acked });
                }
                Pending::Update { key, mut f, waiter } => match f(self.data.get(&key)) {
                    Ok(value) => {
                        set(&mut self.data, &key, value.clone());
                        self.updates[waiter].1 = Ok(value);
                        kept.push(Pending::Update { key, f, waiter });
                    }
                    Err(err) => {
                        if let Some(reply) = self.updates[waiter].0.take() {
                            drop(reply.send(Err(err)));
                        }
                    }
                },
            }
        }
        self.pending = kept;
    }

    /// The session moved to `to` (its id was rotated, on this server or another) before
    /// the pending changes were committed. Changes whose response already said they were
    /// applied follow it to the new key; the others (an `update`, a flush that is waited
    /// for) were not acknowledged and are answered `Gone` instead.
    ///
    /// Only acknowledged changes follow, and a change is acknowledged only after its request
    /// confirmed that the session still existed under this key: so they are changes made
    /// before the rotation, not after it by whoever kept the old id.
    fn follow(&mut self, to: StoreKey) {
        let mut carried = Vec::new();
        self.pending.retain(|pending| match pending {
            Pending::Op { op, acked: true } => {
                carried.push(op.clone());
                false
            }
            _ => true,
        });
        self.forward(&to, carried);
        self.moved_to = Some(to);
        self.published.moved.store(true, Ordering::SeqCst);
        self.mark_gone();
    }

    /// Hands acknowledged changes to the session's new key (see [`Actor::follow`]): also
    /// those that reach this actor after it learnt of the move.
    fn forward(&self, to: &StoreKey, carried: Vec<Op>) {
        if !carried.is_empty() {
            tracing::debug!(session = %self.tag(), changes = carried.len(), "session moved to a new id; its acknowledged changes follow it");
            let to = to.clone();
            let shared = self.shared.clone();
            // From a task of its own: an actor never waits on another actor's mailbox.
            self.shared.tracker.spawn(async move {
                let apply = Msg::Apply {
                    ops: carried,
                    acked: true,
                };
                // The changes and their flush go to one actor: past `max_actors` each lookup
                // of a key may give a new one.
                let handed = match shared.send(&to, apply).await {
                    Ok(actor) => actor.send(Msg::Flush { reply: None }).await.is_ok(),
                    Err(_) => false,
                };
                if !handed {
                    tracing::error!(session = %to.log_tag(), "changes for a moved session could not be handed over");
                }
            });
        }
    }

    fn mark_gone(&mut self) {
        self.gone = true;
        *self.published.copy.lock() = None;
        let dropped = self
            .pending
            .iter()
            .filter(|p| matches!(p, Pending::Op { .. }))
            .count();
        if dropped > 0 {
            tracing::info!(session = %self.tag(), changes = dropped, "session ended elsewhere; its pending changes are dropped");
        }
        self.pending.clear();
        self.answer(Err(SessionError::Gone));
    }

    /// Commits pending changes (or refreshes the expiry), resolving conflicts by reloading.
    async fn commit_pending(&mut self) {
        self.flush_requested = false;
        self.retry_at = None;
        let started = Instant::now();
        for attempt in 0..MAX_CONFLICTS {
            if self.gone {
                return;
            }
            if attempt > 0 {
                if started.elapsed() >= CONFLICT_BUDGET {
                    break;
                }
                if let Some(pause) = contention_pause(attempt) {
                    tokio::time::sleep(pause).await;
                }
            }
            let Some(base) = &self.base else {
                return self.answer(Ok(()));
            };
            let delta = self.delta(base);
            let now = unix_now();
            let Some(ttl) = self.shared.settings.ttl(base.created, now) else {
                self.shared.store.delete(&self.key).await.ok();
                return self.mark_gone();
            };
            if delta.is_empty() {
                self.pending.clear();
                if self.touch_due && base.version > 0 {
                    match self.shared.store.touch(&self.key, ttl, now).await {
                        Ok(true) => {
                            self.touch_due = false;
                            if let Some(base) = &mut self.base {
                                base.refreshed = now;
                            }
                        }
                        Ok(false) => return self.mark_gone(),
                        Err(err) => {
                            tracing::debug!(session = %self.tag(), error = %err, "expiry refresh failed")
                        }
                    }
                }
                return self.answer(Ok(()));
            }
            match self
                .shared
                .store
                .commit(&self.key, &delta, base.version, ttl, now)
                .await
            {
                Ok(Commit::Done { version }) => {
                    let stats = &self.shared.stats;
                    stats.commits.inc();
                    stats.changes_per_commit.observe(self.pending.len() as f64);
                    stats
                        .commit_seconds
                        .observe(started.elapsed().as_secs_f64());
                    let created = if base.created == 0 { now } else { base.created };
                    self.base = Some(Base {
                        data: self.data.clone(),
                        version,
                        created,
                        refreshed: now,
                    });
                    self.pending.clear();
                    self.fresh = false;
                    self.touch_due = false;
                    self.backoff = Duration::from_millis(50);
                    return self.answer(Ok(()));
                }
                Ok(Commit::Conflict) => {
                    self.shared.stats.conflicts.inc();
                    self.shared.stats.replays.inc_by(self.pending.len() as u64);
                    if let Err(err) = self.reload().await {
                        return self.fail_commit(err);
                    }
                }
                Err(err) => return self.fail_commit(err.into()),
            }
        }
        self.fail_commit(SessionError::Busy);
    }

    /// The changed keys between `base` and `data`, among those pending changes touched.
    fn delta(&self, base: &Base) -> Delta {
        let mut touched: HashSet<&str> = HashSet::new();
        for pending in &self.pending {
            match pending {
                Pending::Op {
                    op: Op::Set(k, _) | Op::Remove(k),
                    ..
                }
                | Pending::Update { key: k, .. } => {
                    touched.insert(k);
                }
                Pending::Op {
                    op: Op::RemovePrefix(prefix),
                    ..
                } => touched.extend(
                    base.data
                        .keys()
                        .filter(|k| k.starts_with(prefix.as_str()))
                        .map(String::as_str),
                ),
                Pending::Op { op: Op::Clear, .. } => {
                    touched.extend(base.data.keys().map(String::as_str))
                }
            }
        }
        let mut delta = Delta::default();
        for key in touched {
            match (base.data.get(key), self.data.get(key)) {
                (old, Some(new)) if old != Some(new) => {
                    delta.set.push((key.to_owned(), new.clone()))
                }
                (Some(_), None) => delta.remove.push(key.to_owned()),
                _ => {}
            }
        }
        delta
    }

    /// The commit failed: waiters hear why, unacknowledged updates are dropped, blind changes
    /// (already acknowledged to their clients) stay pending and are retried with backoff.
    fn fail_commit(&mut self, err: SessionError) {
        self.shared.stats.commit_failures.inc();
        if matches!(err, SessionError::Busy) {
            tracing::info!(session = %self.tag(), "session commit gave up under contention; blind changes retry later");
        } else {
            tracing::warn!(session = %self.tag(), error = %err, "session commit failed");
        }
        self.pending.retain(|p| matches!(p, Pending::Op { .. }));
        self.answer(Err(err));
        self.replay();
        if !self.pending.is_empty() {
            self.schedule_retry();
        }
    }

    fn schedule_retry(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
    }

    /// Answers every waiting flush and update.
    fn answer(&mut self, outcome: Result<(), SessionError>) {
        for reply in self.flushes.drain(..) {
            drop(reply.send(outcome.clone()));
        }
        for (reply, value) in self.updates.drain(..) {
            if let Some(reply) = reply {
                drop(reply.send(outcome.clone().and(value)));
            }
        }
    }

    fn tag(&self) -> String {
        self.key.log_tag()
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        self.shared.registry.live.fetch_sub(1, Ordering::Relaxed);
        let lost = self
            .pending
            .iter()
            .filter(|p| matches!(p, Pending::Op { .. }))
            .count();
        if lost > 0 {
            tracing::error!(session = %self.tag(), changes = lost, "session changes could not be written before exit");
        }
    }
}

/// How long to wait before the `attempt`-th try of a commit that keeps conflicting: nothing
/// before the second, then a random pause of up to 1, 2, 4... ms (at most 32): writers on
/// several servers that keep colliding drift apart, as in Ethernet's backoff.
fn contention_pause(attempt: usize) -> Option<Duration> {
    if attempt < 2 {
        return None;
    }
    let ceiling_us = 1_000u64 << (attempt - 2).min(5);
    Some(Duration::from_micros(random_below(ceiling_us)))
}

/// A number in `0..bound`: jitter only, so a per-thread xorshift seeded from the clock will
/// do.
fn random_below(bound: u64) -> u64 {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
                | 1,
        );
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x % bound.max(1)
    })
}

fn refuse(msg: Msg) {
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

fn apply(data: &mut Arc<HashMap<String, Bytes>>, op: &Op) {
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

fn set(data: &mut Arc<HashMap<String, Bytes>>, key: &str, value: Option<Bytes>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle actor's task must stay small: a node holds up to `max_actors` of them.
    #[test]
    fn idle_actor_future_is_small() {
        let manager = crate::session::SessionManager::new(
            crate::session::store::MemoryStore::new(),
            &crate::Config::default(),
            "",
        );
        let (_tx, rx) = mpsc::channel(1);
        let key = crate::session::SessionId::generate()
            .expect("random")
            .store_key("");
        let actor = Actor::new(manager.shared.clone(), key, 1, rx, true, false);
        let state = std::mem::size_of_val(&actor);
        let future = std::mem::size_of_val(&Box::new(actor).run());
        // The task holds the loop's state and a pointer to the boxed actor: an idle actor
        // costs its state once, plus this.
        assert!(
            future <= 512,
            "actor future is {future} bytes (and {state} bytes of boxed state)"
        );
        assert!(state <= 320, "actor state is {state} bytes");
    }
}
