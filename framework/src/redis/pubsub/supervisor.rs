//! The subscriber's actor: it owns the channels asked for, the connections (`link`s) that
//! hold them, and the map that says which node each channel belongs on, and it keeps the
//! three in agreement.
//!
//! - **Where a channel goes** (`routes`): the map is asked for lazily, on the first
//!   subscription, and again whenever something says it may be wrong:
//!   a connection lost, a channel refused with `MOVED` or dropped by Redis because its slot
//!   moved, the Sentinels announcing a failover; on a Cluster also every second while
//!   channels are subscribed (see [`REFRESH_EVERY`]). The asking runs on a task of its own, so
//!   that the actor always answers at once.
//! - **Connections**: one per node that holds at least one channel, opened when a channel is
//!   placed there, closed when its last channel leaves.
//! - **Failures** are retried with a backoff ([`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`],
//!   back to the minimum once a subscription is confirmed). Channels that lost their
//!   subscription are reported `Lost` and, once confirmed again, `Resubscribed` (by their
//!   connection, so that the announcement comes before their first message).
//! - **Time limits**: a `subscribe` is answered by its deadline (the pool's `timeout` from
//!   the call). A channel never confirmed before its last caller's deadline is dropped, so a
//!   failed `subscribe` leaves nothing behind; one confirmed before stays and is retried.
//!
//! The actor never waits on anything but its own inputs: connections and route look-ups
//! report to it through channels, and it only writes to shared maps and wakes them.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::link::{Link, Report, Settings};
use super::outbox::Outbox;
use super::routes::{resolve, Routes};
use crate::config::RedisMode;
use crate::redis::{PoolError, RedisPool};

/// First wait before retrying a failed connection or look-up.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between retries: a primary's failover takes a few seconds, and a retry is
/// one look-up and one connection attempt.
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// How often events waiting for room in the consumer's channel are tried again.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// How often a Cluster's slots are looked up again while channels are subscribed. A
/// replica accepts `SSUBSCRIBE` and receives its shard's messages, so a channel placed from
/// a map that was out of date (a node that had not yet heard of a failover) works without
/// any error to say so; the next look-up moves it to its primary.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// What a [`super::Subscriber`] asks of the actor.
#[derive(Debug)]
pub(super) enum Request {
    /// Subscribe `channel`; answer once Redis confirmed, or by `deadline` with an error.
    Subscribe {
        channel: String,
        deadline: Instant,
        reply: oneshot::Sender<Result<(), PoolError>>,
    },
    /// Stop delivering `channel` and let Redis know.
    Unsubscribe {
        channel: String,
        reply: oneshot::Sender<()>,
    },
}

/// One channel asked for.
#[derive(Debug, Default)]
struct Channel {
    /// The connection it is placed on.
    link: Option<u64>,
    /// Redis confirmed it on that connection.
    confirmed: bool,
    /// Its subscription was lost: the next confirmation is announced as `Resubscribed`.
    lost: bool,
    /// Confirmed at least once: a failure from now on is retried, not given up.
    ever: bool,
    /// Callers of `subscribe` waiting for the confirmation, with their deadlines.
    waiters: Vec<(Instant, oneshot::Sender<Result<(), PoolError>>)>,
}

/// The actor. See the module docs.
pub(super) struct Supervisor {
    pool: RedisPool,
    settings: Settings,
    outbox: Arc<Outbox>,
    requests: mpsc::Receiver<Request>,
    /// From the connections; the actor keeps a sender to clone for new ones.
    reports: mpsc::Receiver<Report>,
    report_tx: mpsc::Sender<Report>,
    /// From the route look-up task (one at a time).
    routed: mpsc::Receiver<Result<Routes, String>>,
    routed_tx: mpsc::Sender<Result<Routes, String>>,
    /// The Sentinels' failover announcements (Sentinel pools only).
    failovers: Option<watch::Receiver<u64>>,
    channels: HashMap<String, Channel>,
    links: HashMap<u64, Link>,
    next_link: u64,
    routes: Option<Routes>,
    /// The routes must be asked again before channels are placed.
    stale: bool,
    /// Bumped whenever the routes become stale, and the value when the running look-up
    /// started: a look-up that began before the last sign of change leaves them stale.
    stale_count: u64,
    asked_count: u64,
    /// A look-up is running.
    asking: bool,
    /// Channels waiting to be placed (new, or off a connection that failed).
    unplaced: BTreeSet<String>,
    /// Not before this is anything retried.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The deadlines of waiting callers, earliest first.
    deadlines: BinaryHeap<Reverse<(Instant, String)>>,
    /// When to try the consumer's channel again, while events wait for room.
    flush_at: Option<Instant>,
    /// What went wrong last, for the error a caller gets at its deadline.
    last_error: String,
    /// When a Cluster's slots are looked up again ([`REFRESH_EVERY`]).
    refresh_at: Instant,
}

impl Supervisor {
    pub(super) fn new(
        pool: RedisPool,
        outbox: Arc<Outbox>,
        requests: mpsc::Receiver<Request>,
    ) -> Self {
        let (report_tx, reports) = mpsc::channel(256);
        let (routed_tx, routed) = mpsc::channel(1);
        let settings = Settings {
            pool: pool.config().clone(),
            sharded: pool.config().mode == RedisMode::Cluster,
        };
        Self {
            failovers: pool.failover_watch(),
            pool,
            settings,
            outbox,
            requests,
            reports,
            report_tx,
            routed,
            routed_tx,
            channels: HashMap::new(),
            links: HashMap::new(),
            next_link: 1,
            routes: None,
            stale: true,
            stale_count: 1,
            asked_count: 0,
            asking: false,
            unplaced: BTreeSet::new(),
            retry_at: None,
            backoff: BACKOFF_MIN,
            deadlines: BinaryHeap::new(),
            flush_at: None,
            last_error: "no answer from Redis yet".to_owned(),
            refresh_at: Instant::now() + REFRESH_EVERY,
        }
    }

    /// Runs until every [`super::Subscriber`] handle is gone; the connections close then.
    pub(super) async fn run(mut self) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                request = self.requests.recv() => match request {
                    Some(request) => self.request(request),
                    None => return,
                },
                Some(report) = self.reports.recv() => self.report(report),
                Some(routes) = self.routed.recv() => self.routed(routes),
                // Events wait for room: `tick` tries them, and again every FLUSH_EVERY.
                () = self.outbox.backlogged.notified() => {}
                () = failover(&mut self.failovers) => {
                    // The primary changed: ask the Sentinels at once.
                    self.mark_stale();
                    self.retry_at = None;
                }
                () = tokio::time::sleep_until(wake) => {}
            }
            // Whatever else the connections said meanwhile, in one go.
            while let Ok(report) = self.reports.try_recv() {
                self.report(report);
            }
            self.tick();
        }
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let retry = (self.stale && !self.asking && !self.channels.is_empty())
            .then_some(self.retry_at)
            .flatten();
        let refresh =
            (self.settings.sharded && !self.channels.is_empty()).then_some(self.refresh_at);
        [
            retry,
            self.deadlines.peek().map(|Reverse((at, _))| *at),
            self.flush_at,
            refresh,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(far)
    }

    /// Expires deadlines, asks for routes when due, places channels, flushes the outbox.
    fn tick(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, channel))) = self.deadlines.pop() {
                self.expire(&channel, now);
            }
        }
        if self.settings.sharded && self.refresh_at <= now {
            self.refresh_at = now + REFRESH_EVERY;
            if !self.channels.is_empty() && !self.stale {
                self.mark_stale();
            }
        }
        let due = self.retry_at.is_none_or(|at| at <= now);
        if self.stale && !self.asking && due && !self.channels.is_empty() {
            self.ask();
        }
        if !self.stale && !self.unplaced.is_empty() {
            self.place();
        }
        self.flush_at = self.outbox.flush().then(|| now + FLUSH_EVERY);
    }

    fn request(&mut self, request: Request) {
        match request {
            Request::Subscribe {
                channel,
                deadline,
                reply,
            } => {
                self.outbox.want(&channel);
                let entry = self.channels.entry(channel.clone()).or_default();
                if entry.confirmed {
                    let _ = reply.send(Ok(()));
                    return;
                }
                if entry.link.is_none() {
                    self.unplaced.insert(channel.clone());
                }
                entry.waiters.push((deadline, reply));
                self.deadlines.push(Reverse((deadline, channel)));
            }
            Request::Unsubscribe { channel, reply } => {
                self.drop_channel(&channel, "unsubscribed before Redis confirmed it");
                let _ = reply.send(());
            }
        }
    }

    /// Forgets `channel`: no more deliveries, its connection lets it go (or closes when it
    /// was its last), and callers still waiting for it get `why`.
    fn drop_channel(&mut self, channel: &str, why: &str) {
        self.outbox.unwant(channel);
        self.unplaced.remove(channel);
        let Some(entry) = self.channels.remove(channel) else {
            return;
        };
        for (_, waiter) in entry.waiters {
            let _ = waiter.send(Err(self.unavailable(format!("{channel:?}: {why}"))));
        }
        if let Some(id) = entry.link {
            self.leave(id, channel);
        }
    }

    /// Takes `channel` off connection `id`, closing the connection if it was its last.
    fn leave(&mut self, id: u64, channel: &str) {
        if let Some(link) = self.links.get_mut(&id) {
            link.unwant(channel);
            if link.is_empty() {
                self.links.remove(&id);
            } else {
                link.notify();
            }
        }
    }

    fn unavailable(&self, message: String) -> PoolError {
        PoolError::Unavailable {
            pool: self.settings.pool.name.clone(),
            message,
        }
    }

    /// Answers the callers of `channel` whose deadline passed; a channel never confirmed
    /// and no longer awaited is given up.
    fn expire(&mut self, channel: &str, now: Instant) {
        let timeout = self.settings.pool.timeout;
        let Some(entry) = self.channels.get_mut(channel) else {
            return;
        };
        let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut entry.waiters)
            .into_iter()
            .partition(|(deadline, _)| *deadline <= now);
        entry.waiters = waiting;
        let give_up = !entry.ever && entry.waiters.is_empty();
        let message = format!(
            "channel {channel:?} not subscribed within {timeout:?}: {}",
            self.last_error
        );
        for (_, waiter) in expired {
            let _ = waiter.send(Err(self.unavailable(message.clone())));
        }
        if give_up {
            self.drop_channel(channel, "not subscribed in time");
        }
    }

    /// Starts a look-up of the routes on a task of its own.
    fn ask(&mut self) {
        self.asking = true;
        self.asked_count = self.stale_count;
        let pool = self.pool.clone();
        let routed = self.routed_tx.clone();
        tokio::spawn(async move {
            let routes = resolve(&pool).await;
            let _ = routed.send(routes).await;
        });
    }

    fn routed(&mut self, routes: Result<Routes, String>) {
        self.asking = false;
        match routes {
            Ok(routes) => {
                self.stale = self.asked_count != self.stale_count;
                if self.routes.as_ref() != Some(&routes) {
                    // Every channel may belong elsewhere now.
                    self.unplaced = self.channels.keys().cloned().collect();
                    self.routes = Some(routes);
                }
            }
            Err(why) => {
                tracing::debug!(pool = %self.settings.pool.name, error = %why, "pub/sub: where channels belong is unknown; retrying");
                self.last_error = why;
                self.retry_later();
            }
        }
    }

    /// Places every unplaced channel on the connection of its node (opening it when
    /// needed), moving it off the one it was on; closes connections left without channels.
    fn place(&mut self) {
        let Some(routes) = &self.routes else {
            return;
        };
        let mut moved = Vec::new();
        let mut nowhere = Vec::new();
        let mut touched = BTreeSet::new();
        for name in std::mem::take(&mut self.unplaced) {
            let Some(channel) = self.channels.get_mut(&name) else {
                continue;
            };
            let target = routes.node_for(&name);
            let current = channel
                .link
                .and_then(|id| self.links.get(&id))
                .map(|link| &link.addr);
            if target.is_some() && current == target {
                continue;
            }
            if let Some(id) = channel.link.take() {
                if let Some(link) = self.links.get_mut(&id) {
                    link.unwant(&name);
                    touched.insert(id);
                }
                if channel.confirmed {
                    channel.confirmed = false;
                    channel.lost = true;
                    moved.push(name.clone());
                }
            }
            let Some(target) = target else {
                nowhere.push(name);
                continue;
            };
            let id = match self.links.iter().find(|(_, link)| link.addr == *target) {
                Some((id, _)) => *id,
                None => {
                    let id = self.next_link;
                    self.next_link += 1;
                    let link = Link::start(
                        id,
                        target.clone(),
                        self.settings.clone(),
                        self.outbox.clone(),
                        self.report_tx.clone(),
                    );
                    self.links.insert(id, link);
                    id
                }
            };
            if let Some(link) = self.links.get_mut(&id) {
                link.want(&name, channel.lost);
                channel.link = Some(id);
                touched.insert(id);
            }
        }
        if !moved.is_empty() {
            self.outbox.lost(moved);
        }
        self.links.retain(|_, link| !link.is_empty());
        for id in touched {
            if let Some(link) = self.links.get(&id) {
                link.notify();
            }
        }
        if !nowhere.is_empty() {
            self.last_error = format!("no node serves the slot of {:?}", nowhere[0]);
            self.unplaced.extend(nowhere);
            self.mark_stale();
            self.retry_later();
        }
    }

    fn report(&mut self, report: Report) {
        match report {
            Report::Confirmed { link, channel } => {
                let Some(entry) = self.channels.get_mut(&channel) else {
                    return;
                };
                if entry.link != Some(link) {
                    return;
                }
                entry.confirmed = true;
                entry.lost = false;
                entry.ever = true;
                for (_, waiter) in entry.waiters.drain(..) {
                    let _ = waiter.send(Ok(()));
                }
                self.backoff = BACKOFF_MIN;
            }
            Report::Refused {
                link,
                channel,
                error,
            } => self.refused(link, channel, error),
            Report::Dropped { link, channels } => {
                for channel in channels {
                    self.unplace(link, &channel);
                }
                self.mark_stale();
                // A slot moved: look again at once (then with backoff, if it keeps moving).
                self.retry_at = None;
            }
            Report::Closed { link, why } => {
                if self.links.remove(&link).is_none() {
                    return;
                }
                tracing::debug!(pool = %self.settings.pool.name, reason = %why, "pub/sub connection lost; re-subscribing");
                let on_it: Vec<String> = self
                    .channels
                    .iter()
                    .filter(|(_, c)| c.link == Some(link))
                    .map(|(name, _)| name.clone())
                    .collect();
                for channel in on_it {
                    self.unplace(link, &channel);
                }
                self.last_error = why;
                self.mark_stale();
                self.retry_later();
            }
        }
    }

    /// Marks `channel`, which was on connection `link`, for placing again.
    fn unplace(&mut self, link: u64, channel: &str) {
        let Some(entry) = self.channels.get_mut(channel) else {
            return;
        };
        if entry.link != Some(link) {
            return;
        }
        entry.link = None;
        if entry.confirmed {
            entry.confirmed = false;
            entry.lost = true;
        }
        self.unplaced.insert(channel.to_owned());
        self.leave(link, channel);
    }

    fn refused(&mut self, link: u64, channel: String, error: String) {
        if self.channels.get(&channel).map(|c| c.link) != Some(Some(link)) {
            return;
        }
        self.unplace(link, &channel);
        // The node is not (or no longer) the channel's: the map is out of date.
        let misplaced = [
            "MOVED",
            "ASK",
            "TRYAGAIN",
            "CLUSTERDOWN",
            "LOADING",
            "READONLY",
            "MASTERDOWN",
        ]
        .iter()
        .any(|code| error.starts_with(code));
        self.last_error = format!("Redis refused {channel:?}: {error}");
        if misplaced {
            self.mark_stale();
        } else if !self.channels.get(&channel).is_some_and(|c| c.ever) {
            // Refused for good (an ACL, a server without sharded pub/sub): tell the callers.
            let pool = self.settings.pool.name.clone();
            if let Some(entry) = self.channels.get_mut(&channel) {
                for (_, waiter) in entry.waiters.drain(..) {
                    let _ = waiter.send(Err(PoolError::Refused {
                        pool: pool.clone(),
                        message: format!("subscribing {channel:?}: {error}"),
                    }));
                }
            }
            self.drop_channel(&channel, "refused by Redis");
            return;
        }
        self.retry_later();
    }

    /// Notes that the routes may be wrong: they are asked again before the next placing.
    fn mark_stale(&mut self) {
        self.stale = true;
        self.stale_count += 1;
    }

    /// Schedules the next attempt after the current backoff, and lengthens it.
    fn retry_later(&mut self) {
        let at = Instant::now() + self.backoff;
        self.retry_at = Some(self.retry_at.map_or(at, |t| t.max(at)));
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

/// The next failover the Sentinels announce; never, for other deployments.
async fn failover(failovers: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = failovers {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}
