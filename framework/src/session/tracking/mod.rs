//! Reads without a round trip: Redis client-side caching (`CLIENT TRACKING`) tells this node
//! when a session key changes, so a warm actor's copy can be trusted until then.
//!
//! Two modes ([`Mode`]), both over raw RESP3 connections of their own that only receive
//! (the tracking connections, one per primary):
//!
//! - **Key tracking** (standalone and Sentinel; `[session] read_check = tracking`): Redis
//!   remembers which session keys this node read and tells it only about those. The pool's
//!   data connections are armed with `CLIENT TRACKING ON REDIRECT <tracking connection>
//!   OPTIN NOLOOP` (see `redis::connect::Redirect`); a read that may vouch for a copy
//!   follows `CLIENT CACHING YES`, and so do the session store's writes, whose scripts end
//!   with a read of the key, since a write ends Redis' tracking of the key and `NOLOOP`
//!   keeps this node's own writes from coming back to it. A node then hears only of writes
//!   by others to sessions it holds.
//! - **Broadcast** (`read_check = broadcast`, and on a Redis Cluster, whose nodes cannot be
//!   armed through the cluster connection): `CLIENT TRACKING ON BCAST PREFIX
//!   {prefix}session:`, so every write to a session key, by any server, is pushed to every
//!   server; on a cluster, by a connection to each primary, re-mapped when the shards change.
//!
//! Each actor has a [`Stamp`]: a count of the invalidations received for its key, and the
//! count (and the epoch of the connection that vouches for the key) at which a reader last
//! checked its copy against the stored version. A read may skip Redis while both are
//! unchanged.
//!
//! Why it stays exact:
//! - Redis queues the invalidation to the tracking connection before it answers the write
//!   that caused it. A reader first drains that connection's socket with a non-blocking
//!   `recv` ([`Tracking::current`]), so every invalidation sent before the request arrived
//!   has been counted by the time the copy is trusted (on one host that is guaranteed by
//!   loopback delivery order; across hosts it holds as far as the network delivers in
//!   order).
//! - A check's result only counts if no invalidation arrived while it was in flight (the
//!   [`Ticket`] taken before the check), so a write racing the check is never missed. With
//!   key tracking the check itself was tracked: it ran on a connection armed for the
//!   tracking connection of the ticket's epoch, since the pool hands out no other while
//!   that epoch is published.
//! - Losing a connection (Redis restarted or flushed, a network error, an unanswered check,
//!   a primary demoted by a failover) gives it a new epoch, which voids every copy it
//!   vouched for at once; until it is back, those reads check the stored version as they
//!   do without tracking.

mod channel;
mod connect;
mod run;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;

use self::channel::{Channel, Epochs};
use crate::redis::topology::key_slot;
use crate::redis::RedisPool;

/// Who holds copies of session keys on this node (the actor registry): told of every
/// invalidation Redis pushes.
pub(crate) trait Holders: Send + Sync + 'static {
    /// Notes that `key` (a store key) was written; answers whether a copy of it is held.
    fn invalidate(&self, key: &[u8]) -> bool;
}

/// How Redis tells this node of writes (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Of writes to the keys this node read, by others.
    Keys,
    /// Of every write to a session key.
    Broadcast,
}

/// Where invalidations go: the holders (weak, so that tracking ends with them), the counter
/// of invalidations that hit a held copy, and of all received.
struct Sink {
    holders: Weak<dyn Holders>,
    counted: Counter,
    received: Counter,
}

/// Per-actor tracking state, shared by the actor's handles and the tracking connection.
#[derive(Debug)]
pub(crate) struct Stamp {
    /// Invalidations received for the actor's key.
    invalidations: AtomicU64,
    /// `pack(epoch, invalidations)` as of the last successful check; 0: never checked.
    checked: AtomicU64,
    /// Only actors in the registry hear of invalidations; the others are never trusted.
    registered: bool,
    /// The key's hash slot: on a cluster, the connection to its primary vouches for it.
    slot: u16,
}

impl Stamp {
    /// A stamp for the actor of `key` that is (or is not) in the registry.
    pub(crate) fn new(registered: bool, key: &str) -> Self {
        Self {
            invalidations: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            registered,
            slot: key_slot(key.as_bytes()),
        }
    }

    /// Counts an invalidation of the actor's key.
    pub(crate) fn invalidate(&self) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
    }
}

/// What a reader noted before checking the stored version.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
    invalidations: u64,
}

fn pack(epoch: u64, invalidations: u64) -> u64 {
    (epoch << 32) | (invalidations & 0xffff_ffff)
}

/// The tracking connections of one node and which vouches for which key.
pub(crate) struct Tracking {
    sink: Sink,
    mode: Mode,
    map: RwLock<Arc<Map>>,
    epochs: Arc<Epochs>,
    /// The pool's data connections' redirection (key tracking).
    pool: RedisPool,
    /// The connections open on the first read that could use them, not at start-up, as
    /// the pool's connections do.
    wanted: tokio::sync::Notify,
    asked: AtomicBool,
}

/// The connections, and on a cluster, which serves each slot.
struct Map {
    channels: Vec<Arc<Channel>>,
    /// For each slot, the index of the connection to its primary (`u16::MAX`: none);
    /// `None` outside a cluster, where the one connection vouches for every key.
    slots: Option<Vec<u16>>,
}

impl Map {
    fn channel(&self, slot: u16) -> Option<&Arc<Channel>> {
        match &self.slots {
            None => self.channels.first(),
            Some(slots) => self.channels.get(usize::from(slots[usize::from(slot)])),
        }
    }
}

impl std::fmt::Debug for Tracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracking")
            .field("mode", &self.mode)
            .field("tracking", &self.is_tracking())
            .finish()
    }
}

impl Tracking {
    /// Starts tracking for keys starting with `prefix` on the Redis of `pool`, in `mode`
    /// (broadcast on a cluster, whatever is asked); copies are trusted only once a
    /// connection is up, and never when Redis cannot track.
    pub(crate) fn start(
        pool: RedisPool,
        mode: Mode,
        prefix: String,
        holders: Weak<dyn Holders>,
        counters: (Counter, Counter),
        closing: CancellationToken,
    ) -> Arc<Self> {
        let mode = if pool.is_cluster() {
            Mode::Broadcast
        } else {
            mode
        };
        let epochs = Arc::new(Epochs::default());
        let map = Map {
            channels: if pool.is_cluster() {
                Vec::new()
            } else {
                vec![Arc::new(Channel::new(None, epochs.clone()))]
            },
            slots: pool.is_cluster().then(|| vec![u16::MAX; 16384]),
        };
        let tracking = Arc::new(Self {
            sink: Sink {
                holders,
                counted: counters.0,
                received: counters.1,
            },
            mode,
            map: RwLock::new(Arc::new(map)),
            epochs,
            pool,
            wanted: tokio::sync::Notify::new(),
            asked: AtomicBool::new(false),
        });
        tokio::spawn(run::run(tracking.clone(), prefix, closing));
        tracking
    }

    /// The connection that vouches for keys of `slot`.
    fn channel(&self, slot: u16) -> Option<Arc<Channel>> {
        self.map.read().channel(slot).cloned()
    }

    /// Whether copies vouched for by `channel` at `epoch` may be trusted: it is up and
    /// tracking, and with key tracking, the data connections redirect to it.
    fn trusted(&self, channel: &Channel, epoch: u64) -> bool {
        epoch % 2 == 1
            && (self.mode == Mode::Broadcast || self.pool.redirect().epoch() == channel.installed())
    }

    /// Whether the actor with `stamp` holds a copy no write has touched since it was last
    /// checked. Drains pending invalidations first.
    pub(crate) fn current(&self, stamp: &Stamp) -> bool {
        let Some(channel) = self.channel(stamp.slot) else {
            return false;
        };
        channel.drain(&self.sink);
        let epoch = channel.epoch();
        self.trusted(&channel, epoch)
            && stamp.checked.load(Ordering::SeqCst)
                == pack(epoch, stamp.invalidations.load(Ordering::SeqCst))
    }

    /// Notes the state before a check of the stored version, or before a commit whose
    /// result will stand for the stored record (and opens the connections, the first time).
    pub(crate) fn ticket(&self, stamp: &Stamp) -> Ticket {
        if !self.asked.swap(true, Ordering::Relaxed) {
            self.wanted.notify_one();
        }
        Ticket {
            epoch: self.channel(stamp.slot).map_or(0, |c| c.epoch()),
            invalidations: stamp.invalidations.load(Ordering::SeqCst),
        }
    }

    /// Records a successful check begun at `ticket`, unless the key was written or the
    /// connection changed meanwhile.
    pub(crate) fn confirm(&self, stamp: &Stamp, ticket: Ticket) {
        let unchanged = stamp.registered
            && self.channel(stamp.slot).is_some_and(|channel| {
                channel.epoch() == ticket.epoch && self.trusted(&channel, ticket.epoch)
            })
            && stamp.invalidations.load(Ordering::SeqCst) == ticket.invalidations;
        if unchanged {
            stamp
                .checked
                .store(pack(ticket.epoch, ticket.invalidations), Ordering::SeqCst);
        }
    }

    /// Whether copies can currently be trusted: every connection is up and tracking.
    pub(crate) fn is_tracking(&self) -> bool {
        let map = self.map.read();
        !map.channels.is_empty() && map.channels.iter().all(|c| self.trusted(c, c.epoch()))
    }
}
