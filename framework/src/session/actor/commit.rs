//! Committing an actor's pending changes: a versioned delta, and when another writer
//! committed first, a reload and a replay of the pending changes (re-running `update`
//! closures) before the next try; contention backs off instead of failing. Also what
//! happens when the session turns out to be gone or moved to a new id.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::msg::{apply, set, Msg, Op};
use super::{Actor, Base, Pending};
use crate::session::error::SessionError;
use crate::session::store::{
    msgpack_values, unix_now, Commit, Delta, Loaded, Record, StoreError, StoreKey,
};

/// A commit that keeps conflicting gives up ([`SessionError::Busy`]) after this many tries
/// in a row...
const MAX_CONFLICTS: usize = 64;
/// ...or after this long, whichever comes first. Contention is not an outage: between tries
/// the actor backs off a random while (see [`contention_pause`]), so that writers on
/// several servers stop colliding, and changes keep queueing (coalesced) meanwhile.
const CONFLICT_BUDGET: Duration = Duration::from_secs(2);

impl Actor {
    /// Reads the store and rebuilds `data` as the stored record plus pending changes.
    pub(super) async fn reload(&mut self) -> Result<(), SessionError> {
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
    pub(super) async fn check_expiry(&mut self) -> Result<(), SessionError> {
        if let Some(base) = &self.base {
            let now = unix_now();
            if base.version > 0 {
                if self.shared.settings.expiry.expired(base.created, now) {
                    tracing::debug!(session = %self.tag(), "session reached its maximum lifetime");
                    self.shared.store.delete(&self.key).await?;
                    self.mark_gone();
                } else if self.shared.settings.expiry.refresh_due(base.refreshed, now) {
                    self.touch_due = true;
                }
            }
        }
        Ok(())
    }

    pub(super) fn rebase(&mut self, record: Record) {
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
    pub(super) fn replay(&mut self) {
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
    pub(super) fn follow(&mut self, to: StoreKey) {
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
    pub(super) fn forward(&self, to: &StoreKey, carried: Vec<Op>) {
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
                let handed = match super::registry::send(&shared, &to, apply).await {
                    Ok(actor) => actor.send(Msg::Flush { reply: None }).await.is_ok(),
                    Err(_) => false,
                };
                if !handed {
                    tracing::error!(session = %to.log_tag(), "changes for a moved session could not be handed over");
                }
            });
        }
    }

    pub(super) fn mark_gone(&mut self) {
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
    pub(super) async fn commit_pending(&mut self) {
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
            let Some(ttl) = self.shared.settings.expiry.ttl(base.created, now) else {
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
            // A commit that lands leaves the stored record equal to this actor's copy; with
            // key tracking it also left the key tracked for this node (the store's scripts
            // end with a read), so the copy can vouch for itself until someone else writes.
            let tracking = self.shared.tracking.as_ref();
            let ticket = tracking.map(|t| t.ticket(&self.stamp));
            match self
                .shared
                .store
                .commit(&self.key, &delta, base.version, ttl, now)
                .await
            {
                Ok(Commit::Done { version }) => {
                    if let (Some(tracking), Some(ticket)) = (tracking, ticket) {
                        tracking.confirm(&self.stamp, ticket);
                    }
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
    pub(super) fn delta(&self, base: &Base) -> Delta {
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
    pub(super) fn fail_commit(&mut self, err: SessionError) {
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

    pub(super) fn schedule_retry(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
    }

    /// Answers every waiting flush and update.
    pub(super) fn answer(&mut self, outcome: Result<(), SessionError>) {
        for reply in self.flushes.drain(..) {
            drop(reply.send(outcome.clone()));
        }
        for (reply, value) in self.updates.drain(..) {
            if let Some(reply) = reply {
                drop(reply.send(outcome.clone().and(value)));
            }
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
