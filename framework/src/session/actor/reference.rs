//! The handle that reaches a session actor ([`ActorRef`]), and the board where the actor
//! publishes its current copy for readers that need not wait for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::msg::Msg;
use crate::session::tracking::Stamp;

/// A handle to a session actor.
///
/// Messages travel boxed: a channel allocates its slots in blocks of 32, and with 100k idle
/// actors a block of pointers instead of a block of messages is most of the memory saved.
#[derive(Clone)]
pub(crate) struct ActorRef {
    pub(crate) tx: mpsc::Sender<Box<Msg>>,
    /// The actor's current copy, for readers that already know the stored version: they
    /// take it from here instead of a message round trip through the actor's task.
    pub(crate) published: Arc<Board>,
    /// What Redis client-side caching said of the key since the copy was last checked.
    pub(crate) stamp: Arc<Stamp>,
}

/// Where an actor publishes its copy for readers.
#[derive(Debug, Default)]
pub(crate) struct Board {
    pub(crate) copy: Mutex<Option<Arc<Published>>>,
    /// Changes sent to the actor (`Apply`, which nobody waits for) that the copy may not
    /// hold yet. While there are any, readers ask the actor itself: its mailbox is in
    /// order, so they see those changes. The actor publishes first and counts down after.
    pub(crate) unapplied: AtomicUsize,
    /// The session was given a new id (the actor learnt it from its own rotation or from
    /// the store): a request that still names the old id has a newer cookie elsewhere, so
    /// it must not be told to expire its cookie.
    pub(crate) moved: AtomicBool,
}

impl Board {
    /// `n` changes sent are now in the published copy (or were answered otherwise).
    pub(crate) fn applied(&self, n: usize) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn actor(mailbox: usize) -> (ActorRef, mpsc::Receiver<Box<Msg>>) {
        let (tx, rx) = mpsc::channel(mailbox);
        let actor = ActorRef {
            tx,
            published: Arc::default(),
            stamp: Arc::new(Stamp::new(false, "test")),
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
