//! The registry of live session actors on this node, and the handles that reach them.
//!
//! Sharded by store key so that unrelated sessions never contend on one lock; bounded by
//! `[session] max_actors` (beyond it, an actor still serves its caller but is not shared:
//! versions keep separate actors exact, as they keep servers exact).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::actor::Msg;
use super::id::StoreKey;
use super::manager::Shared;
use super::tracking::Stamp;

/// Messages queued per actor; requests on one session rarely number more than a few at a
/// time, and a full queue only makes senders wait (back-pressure), it never drops anything.
pub(super) const MAILBOX: usize = 256;
/// Shards of the registry, so that unrelated sessions do not contend on one lock.
const SHARDS: usize = 64;

/// A handle to a session actor.
///
/// Messages travel boxed: a channel allocates its slots in blocks of 32, and with 100k idle
/// actors a block of pointers instead of a block of messages is most of the memory saved.
#[derive(Clone)]
pub(crate) struct ActorRef {
    pub(super) tx: mpsc::Sender<Box<Msg>>,
    /// The actor's current copy, for readers that already know the stored version: they
    /// take it from here instead of a message round trip through the actor's task.
    pub(super) published: Arc<Board>,
    /// What Redis client-side caching said of the key since the copy was last checked.
    pub(super) stamp: Arc<Stamp>,
}

/// Where an actor publishes its copy for readers.
#[derive(Debug, Default)]
pub(crate) struct Board {
    pub(super) copy: Mutex<Option<Arc<Published>>>,
    /// Changes sent to the actor (`Apply`, which nobody waits for) that the copy may not
    /// hold yet. While there are any, readers ask the actor itself: its mailbox is in
    /// order, so they see those changes. The actor publishes first and counts down after.
    pub(super) unapplied: AtomicUsize,
    /// The session was given a new id (the actor learnt it from its own rotation or from
    /// the store): a request that still names the old id has a newer cookie elsewhere, so
    /// it must not be told to expire its cookie.
    pub(super) moved: std::sync::atomic::AtomicBool,
}

impl Board {
    /// `n` changes sent are now in the published copy (or were answered otherwise).
    pub(super) fn applied(&self, n: usize) {
        if n > 0 {
            self.unapplied.fetch_sub(n, Ordering::SeqCst);
        }
    }
}

/// A copy of a session as its actor last published it.
#[derive(Debug)]
pub(crate) struct Published {
    /// Stored data with this node's pending changes applied.
    pub(crate) data: Arc<HashMap<String, Bytes>>,
    /// The stored version the copy is based on (never 0).
    pub(crate) version: u64,
    pub(crate) created: u64,
    pub(crate) refreshed: u64,
}

impl ActorRef {
    /// The actor's last published copy, if any and if it holds every change sent to the
    /// actor so far.
    pub(crate) fn published(&self) -> Option<Arc<Published>> {
        if self.published.unapplied.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.published.copy.lock().clone()
    }

    /// Sends `msg`; gives it back if the actor has ended. Changes (`Apply`) are counted on
    /// the board from now until the actor has published them (or until the send fails or
    /// is dropped while the mailbox is full).
    pub(crate) async fn send(&self, msg: Msg) -> Result<(), Msg> {
        let counted = Counted::new(&self.published, &msg);
        self.tx.send(Box::new(msg)).await.map_err(|e| *e.0)?;
        counted.sent();
        Ok(())
    }

    /// Sends without waiting; gives the message back if the mailbox is full or closed.
    pub(crate) fn try_send(&self, msg: Msg) -> Result<(), Msg> {
        let counted = Counted::new(&self.published, &msg);
        self.tx.try_send(Box::new(msg)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => *m,
        })?;
        counted.sent();
        Ok(())
    }
}

/// An `Apply` counted as unapplied while it is being sent: the count is taken back unless
/// the message reached the mailbox.
struct Counted<'a> {
    board: &'a Board,
    n: usize,
}

impl<'a> Counted<'a> {
    fn new(board: &'a Board, msg: &Msg) -> Self {
        let n = usize::from(matches!(msg, Msg::Apply { .. }));
        if n > 0 {
            board.unapplied.fetch_add(n, Ordering::SeqCst);
        }
        Self { board, n }
    }

    /// In the mailbox: the actor counts it down once it has published it.
    fn sent(mut self) {
        self.n = 0;
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.board.applied(self.n);
    }
}

/// The live actors of this node, by store key.
pub(crate) struct Registry {
    shards: Vec<Mutex<HashMap<StoreKey, (u64, ActorRef)>>>,
    pub(super) live: AtomicUsize,
    next_generation: AtomicU64,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            live: AtomicUsize::new(0),
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

    /// The actor for `key`, spawned if there is none. `fresh` marks a session created by
    /// this request, which the store cannot know yet.
    pub(crate) fn get_or_spawn(
        &self,
        shared: &Arc<Shared>,
        key: &StoreKey,
        fresh: bool,
    ) -> ActorRef {
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
        let registered = self.live.load(Ordering::Relaxed) < shared.settings.max_actors;
        let actor = ActorRef {
            tx,
            published: Arc::default(),
            stamp: Arc::new(Stamp::new(registered)),
        };
        if registered {
            shard.insert(key.clone(), (generation, actor.clone()));
        }
        drop(shard);
        self.live.fetch_add(1, Ordering::Relaxed);
        let published = actor.published.clone();
        super::actor::spawn(
            shared,
            key.clone(),
            generation,
            rx,
            fresh,
            registered,
            published,
        );
        actor
    }

    /// Notes that Redis reported a write to `key` (a store key), for the actor that holds
    /// it; answers whether there is one.
    pub(crate) fn invalidate(&self, key: &[u8]) -> bool {
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

    /// Forgets the actor for `key` if it is still the one of `generation`.
    pub(super) fn remove(&self, key: &StoreKey, generation: u64) {
        let mut shard = self.shard(key.as_str()).lock();
        if shard.get(key).is_some_and(|(g, _)| *g == generation) {
            shard.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn actor(mailbox: usize) -> (ActorRef, mpsc::Receiver<Box<Msg>>) {
        let (tx, rx) = mpsc::channel(mailbox);
        let actor = ActorRef {
            tx,
            published: Arc::default(),
            stamp: Arc::new(Stamp::new(false)),
        };
        (actor, rx)
    }

    fn apply() -> Msg {
        Msg::Apply {
            ops: Vec::new(),
            acked: false,
        }
    }

    /// A change counts as unapplied once it is in the mailbox, and only then: a send that
    /// fails, or that is dropped while it waits for room, takes its count back.
    #[tokio::test]
    async fn only_changes_in_the_mailbox_count_as_unapplied() {
        let (actor, mut rx) = actor(1);
        let unapplied = || actor.published.unapplied.load(Ordering::SeqCst);
        assert!(actor.try_send(Msg::Flush { reply: None }).is_ok());
        assert_eq!(unapplied(), 0, "only changes count");

        // The mailbox is full: the send waits, and is dropped.
        let waiting = tokio::time::timeout(Duration::from_millis(20), actor.send(apply()));
        assert!(waiting.await.is_err(), "still waiting for room");
        assert_eq!(unapplied(), 0);
        assert!(actor.try_send(apply()).is_err(), "full");
        assert_eq!(unapplied(), 0);

        drop(rx.recv().await);
        assert!(actor.send(apply()).await.is_ok());
        assert_eq!(unapplied(), 1);
        *actor.published.copy.lock() = Some(Arc::new(Published {
            data: Arc::default(),
            version: 1,
            created: 0,
            refreshed: 0,
        }));
        assert!(actor.published().is_none(), "the copy lacks a change sent");
        actor.published.applied(1);
        assert!(actor.published().is_some());

        drop(rx);
        assert!(actor.send(apply()).await.is_err(), "the actor has ended");
        assert_eq!(unapplied(), 0);
    }
}
