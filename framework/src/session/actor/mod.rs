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
//! `oneshot` reply; the [`Registry`] spawns actors and finds them by store key. Actors never send to each other or to callers' channels, so bounded
//! channels cannot deadlock in a cycle. An actor ends after `actor_idle_timeout` without
//! messages once nothing is pending, or at shutdown after a final commit.
//!
//! - `msg`: the messages and the changes they carry.
//! - `reference`: [`ActorRef`], and the board where an actor publishes its current copy.
//! - `registry`: the live actors of this node, and spawning.
//! - `run`: an actor's loop: batches of messages, publishing, its end.
//! - `commit`: committing, conflicts and replays, a session that moved or ended.

mod commit;
mod msg;
mod reference;
mod registry;
mod run;

pub(crate) use msg::{Msg, Op, UpdateFn};
pub(crate) use reference::ActorRef;
pub(crate) use registry::{actor, send, Registry};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::msg::{Reply, UpdateWaiter};
use self::reference::Board;
use crate::session::settings::Settings;
use crate::session::stats::SessionStats;
use crate::session::store::{SessionStore, StoreKey};
use crate::session::tracking::{Stamp, Tracking};

/// What a manager's actors (and the handles that reach them) share: data only.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) settings: Settings,
    /// Shared with the tracking connection, which notes invalidations on it.
    pub(crate) registry: Arc<Registry>,
    /// Actors and deferred flushes, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Cancelled at shutdown: actors make a last commit and end.
    pub(crate) closing: CancellationToken,
    /// Redis client-side caching for reads, when the store is Redis and `read_check` asks
    /// for it.
    pub(crate) tracking: Option<Arc<Tracking>>,
    /// Counters for the metrics endpoint.
    pub(crate) stats: Arc<SessionStats>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store.backend())
            .field("live_actors", &self.registry.live())
            .finish()
    }
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

struct Actor {
    shared: Arc<Shared>,
    key: StoreKey,
    /// Shared with every [`ActorRef`]: where the current copy is published for readers.
    published: Arc<Board>,
    /// Shared with every [`ActorRef`]: the tracking state of the copy.
    stamp: Arc<Stamp>,
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
