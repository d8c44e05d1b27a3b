//! An actor's loop: it takes messages in batches (what queued up while it was busy is
//! handled together), answers reads, publishes its copy, and ends when idle or at shutdown
//! after a last commit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::msg::{apply, refuse, set, Msg, Op, Snapshot};
use super::reference::Published;
use super::registry::MAILBOX;
use super::{Actor, Base, Pending, Shared, Unapplied};
use crate::session::error::SessionError;
use crate::session::store::StoreKey;
use crate::session::tracking::Stamp;

impl Actor {
    pub(super) fn new(
        shared: Arc<Shared>,
        key: StoreKey,
        generation: u64,
        rx: mpsc::Receiver<Box<Msg>>,
        fresh: bool,
        registered: bool,
        stamp: Arc<Stamp>,
    ) -> Self {
        Self {
            shared,
            key,
            published: Arc::default(),
            stamp,
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
    pub(super) async fn run(mut self: Box<Self>) {
        let idle = if self.registered {
            self.shared.settings.session.actor_idle_timeout
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
    pub(super) fn publish(&self) {
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
    pub(super) async fn finish(&mut self) {
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

    pub(super) async fn process(&mut self, batch: Vec<Msg>) {
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
    pub(super) fn fail_batch(&mut self, batch: Vec<Msg>, err: &SessionError) {
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

    pub(super) async fn handle(&mut self, msg: Msg) {
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

    pub(super) fn apply_ops(&mut self, ops: Vec<Op>, acked: bool) {
        for op in ops {
            apply(&mut self.data, &op);
            self.pending.push(Pending::Op { op, acked });
        }
    }

    pub(super) fn tag(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle actor's task must stay small: a node holds up to `max_actors` of them.
    #[test]
    pub(super) fn idle_actor_future_is_small() {
        let manager = crate::session::SessionManager::new(
            crate::session::store::MemoryStore::new(),
            &crate::config::Config::default(),
            "",
        );
        let (_tx, rx) = mpsc::channel(1);
        let key = crate::session::SessionId::generate()
            .expect("random")
            .store_key("");
        let stamp = Arc::new(Stamp::new(false, key.as_str()));
        let actor = Actor::new(manager.shared.clone(), key, 1, rx, true, false, stamp);
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
