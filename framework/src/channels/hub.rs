//! The hub: this server's sockets by channel, and the local half of every delivery.
//!
//! Each socket has an [`Outbox`]: the sending end of its bounded queue. Subscribing puts
//! the outbox in the channel's list; a delivery clones the envelope's frame (a reference
//! count, not a copy) into every outbox of the channel but the excluded one, without
//! waiting: a queue that is full belongs to a client that does not read fast enough, and
//! that client is cut (told to reconnect) rather than buffered without bound or allowed to
//! hold up everyone else's delivery.
//!
//! The hub also tells the bus when this server gains its first subscriber of a channel or
//! loses its last one, under its own lock, so the bus sees those changes in order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::{mpsc, watch, Notify};

use super::bus::{Bus, Envelope};
use super::protocol::{Frame, SocketId};

/// One message waiting for a socket.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) frame: Frame,
    /// When it was published (microseconds of the Unix epoch).
    pub(crate) at_micros: u64,
    /// Set for an eviction: the socket acts on it instead of writing the frame blindly.
    pub(crate) evict: Option<Arc<Eviction>>,
}

/// A presence user to take off a channel (`Channels::remove_user`), as a socket receives
/// it: only a socket subscribed to `channel` as `user_id` leaves it and gets the frame.
#[derive(Debug)]
pub(crate) struct Eviction {
    pub(crate) channel: Box<str>,
    pub(crate) user_id: Arc<str>,
}

/// The sending side of one socket.
pub(crate) struct Outbox {
    pub(crate) id: SocketId,
    queue: mpsc::Sender<Outgoing>,
    /// Woken once when the queue overflowed: the socket closes.
    cut: Notify,
    is_cut: AtomicBool,
}

impl Outbox {
    /// An outbox and the socket's end of its queue, which holds at most `capacity`.
    pub(crate) fn new(id: SocketId, capacity: usize) -> (Arc<Self>, mpsc::Receiver<Outgoing>) {
        let (queue, receiver) = mpsc::channel(capacity);
        let outbox = Arc::new(Self {
            id,
            queue,
            cut: Notify::new(),
            is_cut: AtomicBool::new(false),
        });
        (outbox, receiver)
    }

    /// Queues `item` without waiting; a full queue cuts the socket.
    pub(crate) fn push(&self, item: Outgoing) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(item) {
            if !self.is_cut.swap(true, Ordering::AcqRel) {
                self.cut.notify_one();
            }
        }
    }

    /// Completes once the socket has been cut for falling behind.
    pub(crate) async fn cut(&self) {
        self.cut.notified().await;
    }
}

/// The local subscribers of one channel.
struct Local {
    subscribers: RwLock<Vec<Arc<Outbox>>>,
    /// True once deliveries for the channel reach this server.
    ready: watch::Receiver<bool>,
}

/// This server's channels and their sockets.
#[derive(Default)]
pub(crate) struct Hub {
    /// A write lock only when a channel gains or loses a socket; deliveries read.
    channels: RwLock<HashMap<Box<str>, Arc<Local>>>,
}

impl Hub {
    /// Adds `outbox` to `channel`'s subscribers; the returned flag turns true once the bus
    /// delivers the channel's events here.
    pub(crate) fn subscribe(
        &self,
        channel: &str,
        outbox: &Arc<Outbox>,
        bus: &dyn Bus,
    ) -> watch::Receiver<bool> {
        let mut channels = self.channels.write();
        let local = match channels.get(channel) {
            Some(local) => local.clone(),
            None => {
                let (ready_tx, ready) = watch::channel(false);
                let local = Arc::new(Local {
                    subscribers: RwLock::new(Vec::new()),
                    ready,
                });
                channels.insert(channel.into(), local.clone());
                bus.interest(channel, true, ready_tx);
                local
            }
        };
        local.subscribers.write().push(outbox.clone());
        local.ready.clone()
    }

    /// Removes socket `id` from `channel`'s subscribers.
    pub(crate) fn unsubscribe(&self, channel: &str, id: &SocketId, bus: &dyn Bus) {
        let mut channels = self.channels.write();
        let Some(local) = channels.get(channel) else {
            return;
        };
        let mut subscribers = local.subscribers.write();
        subscribers.retain(|outbox| outbox.id != *id);
        if subscribers.is_empty() {
            drop(subscribers);
            channels.remove(channel);
            let (ready_tx, _) = watch::channel(false);
            bus.interest(channel, false, ready_tx);
        }
    }

    /// Queues `envelope` for every local subscriber of `channel` but the excluded socket;
    /// how many it was queued for.
    pub(crate) fn deliver(&self, channel: &str, envelope: &Envelope) -> usize {
        let Some(local) = self.channels.read().get(channel).cloned() else {
            return 0;
        };
        // One eviction shared by every socket of the channel; each checks whether it is
        // the user's (the hub does not know who is behind a socket).
        let evict = envelope.evict.as_ref().map(|user_id| {
            Arc::new(Eviction {
                channel: channel.into(),
                user_id: user_id.clone(),
            })
        });
        let subscribers = local.subscribers.read();
        let mut queued = 0;
        for outbox in subscribers.iter() {
            if envelope.except.as_ref() == Some(&outbox.id) {
                continue;
            }
            outbox.push(Outgoing {
                frame: envelope.frame.clone(),
                at_micros: envelope.at_micros,
                evict: evict.clone(),
            });
            queued += 1;
        }
        queued
    }

    /// The channels with local subscribers whose names start with `prefix`.
    pub(crate) fn channels_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.channels
            .read()
            .keys()
            .filter(|name| name.starts_with(prefix))
            .map(|name| name.to_string())
            .collect()
    }
}
