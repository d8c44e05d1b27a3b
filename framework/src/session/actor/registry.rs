//! The registry of live session actors on this node: it finds a session's actor, and
//! spawns one when there is none.
//!
//! Sharded by store key so that unrelated sessions never contend on one lock; bounded by
//! `[session] max_actors` (beyond it, an actor still serves its caller but is not shared:
//! versions keep separate actors exact, as they keep servers exact).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::msg::Msg;
use super::reference::ActorRef;
use super::{Actor, Shared};
use crate::session::error::SessionError;
use crate::session::store::StoreKey;
use crate::session::tracking::{Holders, Stamp};

/// Messages queued per actor; requests on one session rarely number more than a few at a
/// time, and a full queue only makes senders wait (back-pressure), it never drops anything.
pub(super) const MAILBOX: usize = 256;
/// Shards of the registry, so that unrelated sessions do not contend on one lock.
const SHARDS: usize = 64;

/// The live actors of this node, by store key.
pub(crate) struct Registry {
    shards: Vec<Mutex<HashMap<StoreKey, (u64, ActorRef)>>>,
    /// Actors running on this node, registered or not; shared with the metrics.
    pub(super) live: Arc<AtomicUsize>,
    next_generation: AtomicU64,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            live: Arc::default(),
            next_generation: AtomicU64::new(1),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<StoreKey, (u64, ActorRef)>> {
        // Store keys end in hex digits of a hash: already uniformly spread.
        let tail = key.as_bytes().iter().rev().take(4);
        let n = tail.fold(0usize, |acc, b| {
            acc.wrapping_mul(31).wrapping_add(usize::from(*b))
        });
        &self.shards[n % SHARDS]
    }

    /// Live actors on this node.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The count of live actors, for a metrics collector to read when it is scraped.
    pub(crate) fn live_count(&self) -> Arc<AtomicUsize> {
        self.live.clone()
    }

    /// The actor for `key`, spawned (on the manager's task tracker) if there is none.
    /// `fresh` marks a session created by this request, which the store cannot know yet.
    fn get_or_spawn(&self, shared: &Arc<Shared>, key: &StoreKey, fresh: bool) -> ActorRef {
        let mut shard = self.shard(key.as_str()).lock();
        if let Some((_, actor)) = shard.get(key) {
            if !actor.tx.is_closed() {
                return actor.clone();
            }
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(MAILBOX);
        // Over the bound, the actor still serves its caller but is not shared; correctness
        // does not depend on sharing (versions keep separate actors exact, as across servers).
        let registered = self.live.load(Ordering::Relaxed) < shared.settings.session.max_actors;
        let actor = ActorRef {
            tx,
            published: Arc::default(),
            stamp: Arc::new(Stamp::new(registered, key.as_str())),
        };
        if registered {
            shard.insert(key.clone(), (generation, actor.clone()));
        }
        drop(shard);
        self.live.fetch_add(1, Ordering::Relaxed);
        let mut task = Actor::new(
            shared.clone(),
            key.clone(),
            generation,
            rx,
            fresh,
            registered,
            actor.stamp.clone(),
        );
        task.published = actor.published.clone();
        shared.tracker.spawn(Box::new(task).run());
        actor
    }
}

impl Holders for Registry {
    /// Notes that Redis reported a write to `key` (a store key), for the actor that holds
    /// it; answers whether there is one.
    fn invalidate(&self, key: &[u8]) -> bool {
        let Ok(key) = std::str::from_utf8(key) else {
            return false;
        };
        match self.shard(key).lock().get(key) {
            Some((_, actor)) => {
                actor.stamp.invalidate();
                true
            }
            None => false,
        }
    }
}

impl Registry {
    /// Forgets the actor for `key` if it is still the one of `generation`.
    pub(super) fn remove(&self, key: &StoreKey, generation: u64) {
        let mut shard = self.shard(key.as_str()).lock();
        if shard.get(key).is_some_and(|(g, _)| *g == generation) {
            shard.remove(key);
        }
    }
}

/// The actor for `key` in `shared`'s registry (spawned if there is none).
pub(crate) fn actor(shared: &Arc<Shared>, key: &StoreKey, fresh: bool) -> ActorRef {
    shared.registry.get_or_spawn(shared, key, fresh)
}

/// Sends `msg` to the actor for `key`, respawning it if it ended meanwhile; answers the actor
/// that took it (later messages that belong with it must go to the same one: past
/// `max_actors`, each lookup may spawn another).
pub(crate) async fn send(
    shared: &Arc<Shared>,
    key: &StoreKey,
    mut msg: Msg,
) -> Result<ActorRef, SessionError> {
    for _ in 0..3 {
        let actor = actor(shared, key, false);
        match actor.send(msg).await {
            Ok(()) => return Ok(actor),
            Err(back) => msg = back,
        }
    }
    Err(SessionError::Unavailable(
        "session actor unavailable".into(),
    ))
}
