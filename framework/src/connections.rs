//! The live connections of a server: header-read deadlines and graceful shutdown.
//!
//! hyper can bound the wait for a request head itself (`header_read_timeout`), but it pays
//! for that on every request: a boxed timer armed in the timer wheel and removed again, and
//! an extra read into a freshly allocated buffer to poll it. A deadline only matters for the
//! rare client that stalls, so Rondo watches for progress instead. A connection's [`Slot`]
//! counts its requests in flight (a request arrives, its response body is dropped once
//! sent) and bumps a generation on each change; no clock is read. One sweeper task per
//! server looks at every slot a few times per timeout: a slot with nothing in flight whose
//! generation it has seen unchanged for a whole timeout (by its own clock) is waiting for a
//! head that does not come, and is cut. A connection is therefore cut between one and one
//! and a quarter timeouts after its wait began (the sweeper looks every eighth, at most
//! every 250 ms), never before, however late the sweeper itself runs.
//!
//! An HTTP/2 connection counts its open streams the same way: one with no stream open for a
//! whole timeout is idle, and is told so with `GOAWAY` before it is closed.
//!
//! The same slots carry graceful shutdown: [`Connections::drain`] marks every slot and wakes
//! its task, which asks hyper to finish the request in flight and close, and
//! [`Connections::drained`] completes once every connection task has ended.
//!
//! Two kinds of exchange outlive the request/response rhythm, and shutdown treats them
//! apart. A response body that streams until the server stops (server-sent events) ends
//! when the drain begins, so that its connection can close like any other. A connection
//! upgraded to another protocol (WebSocket) has left hyper, and so its connection task, but
//! is still counted here through an [`Upgraded`] guard: once every HTTP connection has
//! drained, so that the last requests could still reach it, it is told to close
//! ([`Connections::close_upgraded`]: a WebSocket sends close code 1001), and the server
//! waits for it within the shutdown deadline.

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

/// `seen` of a slot the sweeper has not looked at yet.
const UNSEEN: u64 = u64::MAX;

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
    /// How long a client may take to send a request head.
    header_timeout: Duration,
    /// How often the sweeper looks.
    tick: Duration,
    draining: std::sync::atomic::AtomicBool,
    /// Cancelled when the drain begins: streaming bodies that last until shutdown end.
    drain_started: CancellationToken,
    /// Cancelled once the HTTP connections have drained: upgraded connections close.
    closing: CancellationToken,
    /// Upgraded connections alive (each holds an [`Upgraded`] guard).
    upgraded: AtomicUsize,
    /// Signalled when `upgraded` drops to 0.
    upgraded_idle: Notify,
}

#[derive(Default)]
struct SlotTable {
    /// Weak: a slot lives as long as its connection task and the responses it sent.
    slots: Vec<Option<Weak<Slot>>>,
    free: Vec<usize>,
}

/// One connection's progress and state, shared by its task, its responses and the sweeper.
pub(crate) struct Slot {
    /// Requests in flight: arrived, their response body not yet dropped. Written only by
    /// the connection's own task (hyper calls the service and drops bodies there).
    in_flight: AtomicU64,
    /// Bumped on every change of `in_flight`.
    generation: AtomicU64,
    /// The sweeper's own: the generation it last saw, and when it first saw it
    /// (milliseconds since the sweeper started).
    seen: AtomicU64,
    seen_at: AtomicU64,
    state: AtomicU8,
    /// The connection task, woken when `state` changes.
    waker: AtomicWaker,
    shared: Arc<Shared>,
    index: usize,
}

impl Connections {
    /// Connections whose request heads must arrive within `header_timeout`.
    pub(crate) fn new(header_timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                slots: Mutex::default(),
                live: AtomicUsize::new(0),
                idle: Notify::new(),
                header_timeout,
                tick: (header_timeout / 8)
                    .clamp(Duration::from_millis(5), Duration::from_millis(250)),
                draining: std::sync::atomic::AtomicBool::new(false),
                drain_started: CancellationToken::new(),
                closing: CancellationToken::new(),
                upgraded: AtomicUsize::new(0),
                upgraded_idle: Notify::new(),
            }),
        }
    }

    /// What a request that asks for a protocol upgrade carries (as an extension), so that
    /// the connection it becomes is counted and told when to close.
    pub(crate) fn upgrade_ticket(&self) -> UpgradeTicket {
        UpgradeTicket {
            shared: self.shared.clone(),
        }
    }

    /// Tells every upgraded connection to close (after the HTTP connections drained).
    pub(crate) fn close_upgraded(&self) {
        self.shared.closing.cancel();
    }

    /// Completes once no upgraded connection is left.
    pub(crate) async fn upgraded_closed(&self) {
        loop {
            let idle = self.shared.upgraded_idle.notified();
            if self.shared.upgraded.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Runs the sweeper until `stop` is cancelled: it cuts the connections that have waited
    /// a whole timeout for a request head.
    pub(crate) fn sweep(&self, stop: CancellationToken) -> impl Future<Output = ()> + Send {
        let shared = self.shared.clone();
        async move {
            let started = Instant::now();
            let timeout = u64::try_from(shared.header_timeout.as_millis()).unwrap_or(u64::MAX);
            let mut ticks = tokio::time::interval(shared.tick);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = stop.cancelled() => return,
                }
                let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
                for slot in shared.live_slots() {
                    if slot.stalled(now, timeout) {
                        slot.set_state(CUT);
                    }
                }
            }
        }
    }

    /// A slot for a new connection, which waits for its first request head from now.
    pub(crate) fn open(&self) -> Arc<Slot> {
        let shared = &self.shared;
        shared.live.fetch_add(1, Ordering::AcqRel);
        let mut table = shared.slots.lock();
        let index = table.free.pop().unwrap_or(table.slots.len());
        let slot = Arc::new(Slot {
            in_flight: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            seen: AtomicU64::new(UNSEEN),
            seen_at: AtomicU64::new(0),
            state: AtomicU8::new(if shared.draining.load(Ordering::Acquire) {
                DRAINING
            } else {
                RUNNING
            }),
            waker: AtomicWaker::new(),
            shared: shared.clone(),
            index,
        });
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
        self.shared.drain_started.cancel();
        for slot in self.shared.live_slots() {
            slot.set_state(DRAINING);
        }
    }

    /// Connections open now (accepted and not yet closed).
    pub(crate) fn live(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
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

impl Shared {
    /// The slots of the connections still alive.
    fn live_slots(&self) -> Vec<Arc<Slot>> {
        self.slots
            .lock()
            .slots
            .iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .collect()
    }
}

impl Slot {
    /// A request head has arrived: the connection is not waiting while it is served, until
    /// the returned guard is dropped (with the response body, once sent, or with the
    /// request if it is abandoned). `concurrent`: requests of this connection may start
    /// and end on other tasks than the connection's own (HTTP/2 streams, which hyper runs
    /// as tasks of their own), so the count needs atomic read-modify-writes; an HTTP/1
    /// connection serves its requests one at a time on its own task.
    pub(crate) fn request(self: &Arc<Self>, concurrent: bool) -> InFlight {
        self.step(1, concurrent);
        InFlight {
            slot: self.clone(),
            concurrent,
        }
    }

    /// Moves `in_flight` by `delta` and bumps the generation. On the connection's own task
    /// plain loads and stores suffice; `concurrent` callers need read-modify-writes.
    fn step(&self, delta: u64, concurrent: bool) {
        if concurrent {
            self.in_flight.fetch_add(delta, Ordering::AcqRel);
            self.generation.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let in_flight = self.in_flight.load(Ordering::Relaxed).wrapping_add(delta);
        self.in_flight.store(in_flight, Ordering::Relaxed);
        let generation = self.generation.load(Ordering::Relaxed).wrapping_add(1);
        self.generation.store(generation, Ordering::Release);
    }

    /// For the sweeper at `now`: nothing in flight, and no change for `timeout` since it
    /// first saw this state.
    fn stalled(&self, now: u64, timeout: u64) -> bool {
        let generation = self.generation.load(Ordering::Acquire);
        if self.in_flight.load(Ordering::Relaxed) != 0 {
            self.seen.store(UNSEEN, Ordering::Relaxed);
            return false;
        }
        if self.seen.load(Ordering::Relaxed) != generation {
            self.seen.store(generation, Ordering::Relaxed);
            self.seen_at.store(now, Ordering::Relaxed);
            return false;
        }
        now.saturating_sub(self.seen_at.load(Ordering::Relaxed)) >= timeout
    }

    fn set_state(&self, state: u8) {
        // CUT wins over DRAINING; nothing goes back to RUNNING.
        self.state.fetch_max(state, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Drives `conn` (a whole connection) until it ends, is cut for a late request head,
    /// or, on shutdown, has finished its request in flight: `graceful` is called once then,
    /// to ask it to close after the current request. `None` when it was cut.
    ///
    /// With `goaway` (HTTP/2), a cut is graceful too: the client is told (`GOAWAY`) which
    /// streams were not processed, so it can retry them on a new connection, and the
    /// connection is dropped [`GOAWAY_GRACE`] later if it has not closed by then.
    pub(crate) async fn supervise<C: Future>(
        &self,
        conn: C,
        graceful: fn(Pin<&mut C>),
        goaway: bool,
    ) -> Option<C::Output> {
        self.drive(conn, Some(graceful), goaway).await
    }

    /// Drives `work` (what precedes serving, such as protocol sniffing) unless the head
    /// deadline passes or shutdown begins first (then `None`).
    pub(crate) async fn guard<F: Future>(&self, work: F) -> Option<F::Output> {
        self.drive(work, None, false).await
    }

    async fn drive<C: Future>(
        &self,
        conn: C,
        graceful: Option<fn(Pin<&mut C>)>,
        goaway: bool,
    ) -> Option<C::Output> {
        let mut conn = std::pin::pin!(conn);
        let mut graceful = graceful.map(Some);
        // Armed once a cut has asked the connection to close: it is dropped when this fires.
        let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
        // A task's waker rarely changes: register it again only when it does (two atomic
        // read-modify-writes saved on every poll of the connection).
        let mut registered: Option<std::task::Waker> = None;
        std::future::poll_fn(|cx: &mut Context<'_>| {
            if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                self.waker.register(cx.waker());
                registered = Some(cx.waker().clone());
            }
            match (self.state.load(Ordering::Acquire), &mut graceful) {
                (CUT, Some(once)) if goaway => {
                    if let Some(graceful) = once.take() {
                        graceful(conn.as_mut());
                    }
                    let timer =
                        grace.get_or_insert_with(|| Box::pin(tokio::time::sleep(GOAWAY_GRACE)));
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                }
                (CUT, _) | (DRAINING, None) => return Poll::Ready(None),
                (DRAINING, Some(once)) => {
                    if let Some(graceful) = once.take() {
                        graceful(conn.as_mut());
                    }
                }
                _ => {}
            }
            conn.as_mut().poll(cx).map(Some)
        })
        .await
    }
}

/// How long an idle HTTP/2 connection that was sent `GOAWAY` may take to close before it is
/// dropped.
pub(crate) const GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// One request of a connection in flight (see [`Slot::request`]): the connection does not
/// count as waiting for a request head until this is dropped.
pub(crate) struct InFlight {
    slot: Arc<Slot>,
    concurrent: bool,
}

impl InFlight {
    /// Completes when the server begins to drain: for a response body that would otherwise
    /// stream until its client leaves.
    pub(crate) fn drain_started(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.slot.shared.drain_started.clone().cancelled_owned()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.slot.step(u64::MAX, self.concurrent); // -1, wrapping
    }
}

/// A response body that tells its connection's slot, when hyper drops it once sent, that
/// the request is done: the wait for the next request head starts then.
pub(crate) struct Armed {
    pub(crate) body: crate::body::Body,
    /// Held for its `Drop`: the request ends when its body is gone.
    pub(crate) _request: Option<InFlight>,
    /// For a body that streams until shutdown ([`EndsAtShutdown`]): completes when the
    /// drain begins, which ends the body.
    pub(crate) until: Option<Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>>,
}

/// A response extension: its body streams until the server shuts down (server-sent
/// events), so the drain ends it instead of waiting for it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EndsAtShutdown;

/// Carried by a request that asks for a protocol upgrade: see [`Connections::upgrade_ticket`].
#[derive(Clone)]
pub(crate) struct UpgradeTicket {
    shared: Arc<Shared>,
}

impl UpgradeTicket {
    /// Counts an upgraded connection until the guard is dropped.
    pub(crate) fn admit(&self) -> Upgraded {
        self.shared.upgraded.fetch_add(1, Ordering::AcqRel);
        Upgraded {
            shared: self.shared.clone(),
        }
    }
}

/// One upgraded connection alive; see [`UpgradeTicket::admit`].
pub(crate) struct Upgraded {
    shared: Arc<Shared>,
}

impl Upgraded {
    /// Cancelled when upgraded connections must close: the HTTP connections have drained.
    pub(crate) fn closing(&self) -> CancellationToken {
        self.shared.closing.clone()
    }
}

impl Drop for Upgraded {
    fn drop(&mut self) {
        if self.shared.upgraded.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.upgraded_idle.notify_waiters();
        }
    }
}

impl http_body::Body for Armed {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Some(until) = &mut self.until {
            if until.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
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
