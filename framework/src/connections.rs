//! The live connections of a server: header-read deadlines and graceful shutdown.
//!
//! hyper can bound the wait for a request head itself (`header_read_timeout`), but it pays
//! for that on every request: a boxed timer armed in the timer wheel and removed again, and
//! an extra read into a freshly allocated buffer to poll it. A deadline only matters for the
//! rare client that stalls, so Rondo keeps one per connection instead, as a number: the
//! connection's [`Slot`] holds the time by which the next request head must have arrived,
//! set when the connection opens and again when a response has been sent, cleared when a
//! request arrives. One sweeper task per server looks at every slot a few times per timeout
//! and cuts the connections whose deadline has passed. A request costs two atomic stores.
//!
//! The same slots carry graceful shutdown: [`Connections::drain`] marks every slot and wakes
//! its task, which asks hyper to finish the request in flight and close, and
//! [`Connections::drained`] completes once every connection task has ended.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A connection serving normally.
const RUNNING: u8 = 0;
/// Finish the request in flight, then close (graceful shutdown).
const DRAINING: u8 = 1;
/// Close now: the request head did not arrive in time.
const CUT: u8 = 2;

/// "No deadline": a request is in flight, or the protocol multiplexes (HTTP/2).
const NONE: u64 = u64::MAX;

/// The connections of one server.
#[derive(Clone)]
pub(crate) struct Connections {
    shared: Arc<Shared>,
}

struct Shared {
    /// Every live connection's slot, by id; touched once when a connection opens and once
    /// when it closes, and by the sweeper.
    slots: Mutex<SlotTable>,
    /// Live connection tasks.
    live: AtomicUsize,
    /// Signalled when `live` drops to 0.
    idle: Notify,
    /// Coarse milliseconds since `epoch`, advanced by the sweeper: what deadlines are
    /// measured in, so arming one reads an atomic instead of the clock.
    now: AtomicU64,
    epoch: Instant,
    /// How long a client may take to send a request head, in milliseconds.
    header_timeout: u64,
    /// How often the sweeper looks, in milliseconds; deadlines add one tick so that a
    /// connection is never cut before its full timeout.
    tick: u64,
    draining: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct SlotTable {
    /// Weak: a slot lives as long as its connection task and the responses it sent.
    slots: Vec<Option<Weak<Slot>>>,
    free: Vec<usize>,
}

/// One connection's deadline and state, shared by its task, its requests and the sweeper.
pub(crate) struct Slot {
    /// Coarse time by which the next request head must have arrived ([`NONE`]: no limit).
    deadline: AtomicU64,
    state: AtomicU8,
    /// The connection task, woken when `state` changes.
    waker: AtomicWaker,
    shared: Arc<Shared>,
    index: usize,
}

impl Connections {
    /// Connections whose request heads must arrive within `header_timeout`.
    pub(crate) fn new(header_timeout: Duration) -> Self {
        let header_timeout = u64::try_from(header_timeout.as_millis())
            .unwrap_or(u64::MAX / 4)
            .clamp(1, u64::MAX / 4);
        Self {
            shared: Arc::new(Shared {
                slots: Mutex::default(),
                live: AtomicUsize::new(0),
                idle: Notify::new(),
                now: AtomicU64::new(0),
                epoch: Instant::now(),
                header_timeout,
                tick: (header_timeout / 8).clamp(5, 250),
                draining: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Runs the sweeper until `stop` is cancelled: it advances the coarse clock and cuts
    /// connections whose request head is overdue.
    pub(crate) fn sweep(&self, stop: CancellationToken) -> impl Future<Output = ()> + Send {
        let shared = self.shared.clone();
        async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(shared.tick));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = stop.cancelled() => return,
                }
                let now = u64::try_from(shared.epoch.elapsed().as_millis()).unwrap_or(NONE - 1);
                shared.now.store(now, Ordering::Relaxed);
                let overdue: Vec<Arc<Slot>> = shared
                    .slots
                    .lock()
                    .slots
                    .iter()
                    .flatten()
                    .filter_map(Weak::upgrade)
                    .filter(|slot| slot.deadline.load(Ordering::Relaxed) < now)
                    .collect();
                for slot in overdue {
                    slot.set_state(CUT);
                }
            }
        }
    }

    /// A slot for a new connection; its head deadline starts now.
    pub(crate) fn open(&self) -> Arc<Slot> {
        let shared = &self.shared;
        shared.live.fetch_add(1, Ordering::AcqRel);
        let mut table = shared.slots.lock();
        let index = table.free.pop().unwrap_or(table.slots.len());
        let slot = Arc::new(Slot {
            deadline: AtomicU64::new(NONE),
            state: AtomicU8::new(if shared.draining.load(Ordering::Acquire) {
                DRAINING
            } else {
                RUNNING
            }),
            waker: AtomicWaker::new(),
            shared: shared.clone(),
            index,
        });
        slot.arm();
        let weak = Some(Arc::downgrade(&slot));
        if index == table.slots.len() {
            table.slots.push(weak);
        } else {
            table.slots[index] = weak;
        }
        slot
    }

    /// Asks every connection to finish its request in flight and close.
    pub(crate) fn drain(&self) {
        self.shared.draining.store(true, Ordering::Release);
        let slots: Vec<Arc<Slot>> = self
            .shared
            .slots
            .lock()
            .slots
            .iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .collect();
        for slot in slots {
            slot.set_state(DRAINING);
        }
    }

    /// Completes once no connection task is left.
    pub(crate) async fn drained(&self) {
        loop {
            let idle = self.shared.idle.notified();
            if self.shared.live.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Slot {
    /// A request head has arrived: no deadline while it is served. Also for a connection
    /// that turned out to be HTTP/2, whose streams have no head deadline.
    pub(crate) fn busy(&self) {
        self.deadline.store(NONE, Ordering::Relaxed);
    }

    /// The connection now waits for a request head: it must arrive within the timeout.
    pub(crate) fn arm(&self) {
        let shared = &self.shared;
        let now = shared.now.load(Ordering::Relaxed);
        self.deadline
            .store(now + shared.header_timeout + shared.tick, Ordering::Relaxed);
    }

    fn set_state(&self, state: u8) {
        // CUT wins over DRAINING; nothing goes back to RUNNING.
        self.state.fetch_max(state, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Drives `conn` (a whole connection) until it ends, is cut for a late request head,
    /// or, on shutdown, has finished its request in flight: `graceful` is called once then,
    /// to ask it to close after the current request. `None` when it was cut.
    pub(crate) async fn supervise<C: Future>(
        &self,
        conn: C,
        graceful: fn(Pin<&mut C>),
    ) -> Option<C::Output> {
        self.drive(conn, Some(graceful)).await
    }

    /// Drives `work` (what precedes serving, such as protocol sniffing) unless the head
    /// deadline passes or shutdown begins first (then `None`).
    pub(crate) async fn guard<F: Future>(&self, work: F) -> Option<F::Output> {
        self.drive(work, None).await
    }

    async fn drive<C: Future>(
        &self,
        conn: C,
        graceful: Option<fn(Pin<&mut C>)>,
    ) -> Option<C::Output> {
        let mut conn = std::pin::pin!(conn);
        let mut graceful = graceful.map(Some);
        // A task's waker rarely changes: register it again only when it does (two atomic
        // read-modify-writes saved on every poll of the connection).
        let mut registered: Option<std::task::Waker> = None;
        std::future::poll_fn(|cx: &mut Context<'_>| {
            if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                self.waker.register(cx.waker());
                registered = Some(cx.waker().clone());
            }
            match self.state.load(Ordering::Acquire) {
                CUT => return Poll::Ready(None),
                DRAINING => match &mut graceful {
                    None => return Poll::Ready(None),
                    Some(once) => {
                        if let Some(graceful) = once.take() {
                            graceful(conn.as_mut());
                        }
                    }
                },
                _ => {}
            }
            conn.as_mut().poll(cx).map(Some)
        })
        .await
    }
}

/// A response body that re-arms its connection's head deadline once hyper has sent it (and
/// dropped it): the wait for the next request starts then.
pub(crate) struct Armed {
    pub(crate) body: crate::Body,
    pub(crate) slot: Option<Arc<Slot>>,
}

impl http_body::Body for Armed {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            slot.arm();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let shared = &self.shared;
        let mut table = shared.slots.lock();
        if let Some(entry) = table.slots.get_mut(self.index) {
            *entry = None;
            table.free.push(self.index);
        }
        drop(table);
        if shared.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            shared.idle.notify_waiters();
        }
    }
}
