//! One subscriber connection to one Redis node: a raw RESP3 connection (RESP2 when the
//! server predates `HELLO`), its own task, and nothing else on it.
//!
//! The supervisor says which channels the connection should hold (a shared map, and the set
//! of channels changed since the connection last looked, so that a change costs the
//! connection one look-up, not a pass over every channel); the connection sends one
//! `SUBSCRIBE` (or `SSUBSCRIBE`) or `UNSUBSCRIBE` per change, so that an error reply names
//! its channel, and tells the supervisor what Redis confirmed or refused.
//!
//! Redis answers the commands of a connection in order, so the connection keeps a queue of
//! the answers it expects, each with the time it was asked: an answer overdue by the pool's
//! `timeout` (a `PING` every [`PING_EVERY`] included), while nothing else arrives either,
//! means the node is gone, even when the socket stays open. An `unsubscribe` push that is no expected answer is Redis dropping the
//! channel: a Cluster does that when the channel's slot moves to another node.
//!
//! Messages go to the consumer without waiting (see `outbox`), so a slow consumer never
//! stops this connection from reading its socket.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::handshake;
use super::outbox::Outbox;
use super::Addr;
use crate::config::RedisPoolConfig;
use crate::redis::resp::{self, Frame};

/// How often a connection checks that its node still answers.
pub(super) const PING_EVERY: Duration = Duration::from_secs(1);

/// What a connection tells the supervisor.
#[derive(Debug)]
pub(super) enum Report {
    /// Redis confirmed the subscription of `channel`.
    Confirmed { link: u64, channel: String },
    /// Redis refused to subscribe `channel` (`MOVED` when the node does not own its slot).
    Refused {
        link: u64,
        channel: String,
        error: String,
    },
    /// Redis ended the subscriptions of `channels` by itself (their slot moved away).
    Dropped { link: u64, channels: Vec<String> },
    /// The connection ended (or never came up); every subscription on it is gone.
    Closed { link: u64, why: String },
}

/// The channels a connection should hold, written by the supervisor.
#[derive(Debug, Default)]
struct Wanted {
    /// Channel -> whether its confirmation must be announced as `Resubscribed` (it was lost).
    channels: BTreeMap<String, bool>,
    /// Channels whose entry changed since the connection last looked.
    dirty: BTreeSet<String>,
}

/// The supervisor's handle on one connection. Dropping it closes the connection.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) addr: Addr,
    /// A short lock shared with the connection's task; never held across an await.
    wanted: Arc<Mutex<Wanted>>,
    changed: Arc<Notify>,
    /// Channels the supervisor placed here (the length of `wanted.channels`).
    count: usize,
    _stop: tokio_util::sync::DropGuard,
}

/// What a connection needs to know of its pool.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) pool: RedisPoolConfig,
    /// `SSUBSCRIBE` (a Cluster's sharded pub/sub) instead of `SUBSCRIBE`.
    pub(super) sharded: bool,
}

impl Link {
    /// Starts the connection `id` to `addr`; it connects at once and reports to `reports`.
    pub(super) fn start(
        id: u64,
        addr: Addr,
        settings: Settings,
        outbox: Arc<Outbox>,
        reports: mpsc::Sender<Report>,
    ) -> Self {
        let wanted = Arc::new(Mutex::new(Wanted::default()));
        let changed = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let task = Task {
            id,
            addr: addr.clone(),
            settings,
            wanted: wanted.clone(),
            changed: changed.clone(),
            outbox,
            reports,
            requested: HashMap::new(),
            active: HashSet::new(),
            expected: VecDeque::new(),
            resubscribed: Vec::new(),
        };
        let cancelled = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = task.run() => {}
                () = cancelled.cancelled() => {}
            }
        });
        Self {
            addr,
            wanted,
            changed,
            count: 0,
            _stop: stop.drop_guard(),
        }
    }

    /// Asks the connection to hold `channel`; `announce`: report `Resubscribed` once it does.
    pub(super) fn want(&mut self, channel: &str, announce: bool) {
        let mut wanted = self.wanted.lock();
        if wanted
            .channels
            .insert(channel.to_owned(), announce)
            .is_none()
        {
            self.count += 1;
        }
        wanted.dirty.insert(channel.to_owned());
    }

    /// Asks the connection to let `channel` go.
    pub(super) fn unwant(&mut self, channel: &str) {
        let mut wanted = self.wanted.lock();
        if wanted.channels.remove(channel).is_some() {
            self.count -= 1;
            wanted.dirty.insert(channel.to_owned());
        }
    }

    /// Whether no channel is placed here any more (the connection can go).
    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Wakes the connection to act on the changes made since it last looked.
    pub(super) fn notify(&self) {
        self.changed.notify_one();
    }
}

/// An answer the connection waits for, in the order the commands were sent.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Subscribe(String),
    Unsubscribe(String),
    Pong,
}

/// The connection's task and its view of the subscriptions on its socket.
struct Task {
    id: u64,
    addr: Addr,
    settings: Settings,
    wanted: Arc<Mutex<Wanted>>,
    changed: Arc<Notify>,
    outbox: Arc<Outbox>,
    reports: mpsc::Sender<Report>,
    /// Channels a subscribe was sent for and no unsubscribe since -> announce when confirmed.
    requested: HashMap<String, bool>,
    /// Channels Redis confirmed, whose messages are delivered.
    active: HashSet<String>,
    /// Answers awaited, oldest first, with when their command was sent.
    expected: VecDeque<(Expected, Instant)>,
    /// Confirmations to announce as one `Resubscribed`, before the next message.
    resubscribed: Vec<String>,
}

/// Why a connection ends.
type Ended = String;

impl Task {
    async fn run(mut self) {
        let timeout = self.settings.pool.timeout;
        let connected =
            tokio::time::timeout(timeout, handshake::connect(&self.addr, &self.settings.pool));
        let (stream, resp3) = match connected.await {
            Ok(Ok(connected)) => connected,
            Ok(Err(why)) => return self.report(Report::Closed { link: self.id, why }).await,
            Err(_) => {
                let why = format!("no connection within {timeout:?}");
                return self.report(Report::Closed { link: self.id, why }).await;
            }
        };
        let why = self.serve(stream, resp3).await;
        // Every subscription on this connection is gone with it.
        let lost: Vec<String> = self.active.drain().collect();
        if !lost.is_empty() {
            self.outbox.lost(lost);
        }
        self.report(Report::Closed { link: self.id, why }).await;
    }

    async fn report(&self, report: Report) {
        // The supervisor gone means the subscriber is being dropped: nothing to tell.
        let _ = self.reports.send(report).await;
    }

    /// Reads, subscribes and pings until the connection fails; answers why it did.
    async fn serve(&mut self, mut stream: TcpStream, resp3: bool) -> Ended {
        let timeout = self.settings.pool.timeout;
        let mut input = BytesMut::with_capacity(16 * 1024);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let changed = self.changed.clone();
        let mut last_read = Instant::now();
        // The channels placed before the connection came up.
        let mut out = self.commands(true);
        loop {
            if !out.is_empty() {
                match tokio::time::timeout(timeout, stream.write_all(&out)).await {
                    Ok(Ok(())) => out.clear(),
                    Ok(Err(err)) => return format!("write: {err}"),
                    Err(_) => return format!("write blocked for {timeout:?}"),
                }
            }
            tokio::select! {
                read = stream.read_buf(&mut input) => {
                    match read {
                        Ok(0) => return "closed by Redis".into(),
                        Ok(_) => {
                            last_read = Instant::now();
                            if let Err(why) = self.consume(&mut input, resp3).await {
                                return why;
                            }
                        }
                        Err(err) => return format!("read: {err}"),
                    }
                    if input.capacity() - input.len() < 4096 {
                        input.reserve(16 * 1024);
                    }
                }
                () = changed.notified() => out = self.commands(false),
                _ = ping.tick() => {
                    // Overdue, and nothing else came either (a flood of messages may hold an
                    // answer up without the node being gone).
                    if let Some((what, sent)) = self.expected.front() {
                        if sent.elapsed() > timeout && last_read.elapsed() > timeout {
                            return format!("no answer to {what:?} within {timeout:?}");
                        }
                    }
                    if !self.expected.iter().any(|(e, _)| *e == Expected::Pong) {
                        out = resp::command(&[b"PING"]);
                        self.expected.push_back((Expected::Pong, Instant::now()));
                    }
                }
            }
        }
    }

    /// The commands that bring the socket's subscriptions to what the supervisor wants:
    /// for every channel when `all`, else for those changed since the last look.
    fn commands(&mut self, all: bool) -> Vec<u8> {
        let changes: Vec<(String, Option<bool>)> = {
            let mut wanted = self.wanted.lock();
            if all {
                wanted.dirty.clear();
                wanted
                    .channels
                    .iter()
                    .map(|(c, announce)| (c.clone(), Some(*announce)))
                    .collect()
            } else {
                let dirty = std::mem::take(&mut wanted.dirty);
                dirty
                    .into_iter()
                    .map(|c| {
                        let announce = wanted.channels.get(&c).copied();
                        (c, announce)
                    })
                    .collect()
            }
        };
        let (subscribe, unsubscribe): (&[u8], &[u8]) = if self.settings.sharded {
            (b"SSUBSCRIBE", b"SUNSUBSCRIBE")
        } else {
            (b"SUBSCRIBE", b"UNSUBSCRIBE")
        };
        let mut out = Vec::new();
        let now = Instant::now();
        for (channel, wanted) in changes {
            match (wanted, self.requested.contains_key(&channel)) {
                (Some(announce), false) => {
                    out.extend(resp::command(&[subscribe, channel.as_bytes()]));
                    self.requested.insert(channel.clone(), announce);
                    self.expected.push_back((Expected::Subscribe(channel), now));
                }
                (None, true) => {
                    out.extend(resp::command(&[unsubscribe, channel.as_bytes()]));
                    self.requested.remove(&channel);
                    self.active.remove(&channel);
                    self.expected
                        .push_back((Expected::Unsubscribe(channel), now));
                }
                _ => {}
            }
        }
        out
    }

    /// Handles every whole frame in `input` and removes it.
    async fn consume(&mut self, input: &mut BytesMut, resp3: bool) -> Result<(), Ended> {
        let mut used = 0;
        let parsed = loop {
            match resp::parse(&input[used..]) {
                Ok(Some((frame, len))) => {
                    used += len;
                    if let Err(why) = self.handle(frame, resp3).await {
                        break Err(why);
                    }
                }
                Ok(None) => break Ok(()),
                Err(err) => break Err(err.to_string()),
            }
        };
        input.advance(used);
        self.announce();
        parsed
    }

    /// One frame from Redis.
    async fn handle(&mut self, frame: Frame, resp3: bool) -> Result<(), Ended> {
        let items = match frame {
            Frame::Push(items) => items,
            // RESP2 has no pushes: in subscribed mode everything is an array.
            Frame::Array(items) if !resp3 => items,
            Frame::Text(text) if text.eq_ignore_ascii_case(b"PONG") => {
                self.answered(&Expected::Pong);
                return Ok(());
            }
            Frame::Error(error) => return self.refused(error).await,
            _ => return Ok(()),
        };
        let mut items = items.into_iter();
        let (Some(Frame::Text(kind)), channel, third) = (items.next(), items.next(), items.next())
        else {
            return Ok(());
        };
        let channel = match channel {
            Some(Frame::Text(channel)) => String::from_utf8(channel).ok(),
            _ => None,
        };
        match (kind.as_slice(), channel) {
            (b"message" | b"smessage", Some(channel)) if self.active.contains(&channel) => {
                self.announce();
                let payload = match third {
                    Some(Frame::Text(payload)) => Bytes::from(payload),
                    _ => Bytes::new(),
                };
                self.outbox.message(channel, payload);
            }
            (b"subscribe" | b"ssubscribe", Some(channel)) => {
                let expected = Expected::Subscribe(channel.clone());
                self.answered(&expected);
                if let Some(announce) = self.requested.get(&channel).copied() {
                    self.active.insert(channel.clone());
                    if announce {
                        self.resubscribed.push(channel.clone());
                    }
                    self.report(Report::Confirmed {
                        link: self.id,
                        channel,
                    })
                    .await;
                }
            }
            (b"unsubscribe" | b"sunsubscribe", Some(channel)) => {
                let expected = Expected::Unsubscribe(channel.clone());
                if matches!(self.expected.front(), Some((e, _)) if *e == expected) {
                    self.expected.pop_front();
                } else if self.requested.remove(&channel).is_some() {
                    // Not an answer: Redis dropped the channel (its slot moved away).
                    self.announce();
                    if self.active.remove(&channel) {
                        self.outbox.lost(vec![channel.clone()]);
                    }
                    self.report(Report::Dropped {
                        link: self.id,
                        channels: vec![channel],
                    })
                    .await;
                }
            }
            (b"pong", _) => self.answered(&Expected::Pong),
            _ => {}
        }
        Ok(())
    }

    /// Takes `expected` off the queue of awaited answers (it should be first).
    fn answered(&mut self, expected: &Expected) {
        if let Some(at) = self.expected.iter().position(|(e, _)| e == expected) {
            self.expected.remove(at);
        }
    }

    /// An error reply: the answer to the oldest command awaiting one.
    async fn refused(&mut self, error: String) -> Result<(), Ended> {
        match self.expected.pop_front() {
            Some((Expected::Subscribe(channel), _)) => {
                self.requested.remove(&channel);
                self.report(Report::Refused {
                    link: self.id,
                    channel,
                    error,
                })
                .await;
                Ok(())
            }
            Some((Expected::Unsubscribe(_), _)) => Ok(()),
            Some((Expected::Pong, _)) | None => Err(format!("Redis answered {error}")),
        }
    }

    /// Reports the confirmations gathered since the last message as one `Resubscribed`.
    fn announce(&mut self) {
        if !self.resubscribed.is_empty() {
            self.outbox
                .resubscribed(std::mem::take(&mut self.resubscribed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::SubscriberEvent;

    fn text(s: &str) -> Frame {
        Frame::Text(s.as_bytes().to_vec())
    }

    /// A connection's task without a socket, holding `channels`, and what it reports.
    fn task(
        sharded: bool,
        channels: &[&str],
    ) -> (
        Task,
        mpsc::Receiver<Report>,
        mpsc::Receiver<SubscriberEvent>,
    ) {
        let (events, consumer) = mpsc::channel(64);
        let outbox = Arc::new(Outbox::new(events));
        let (reports, reported) = mpsc::channel(64);
        let mut wanted = Wanted::default();
        for channel in channels {
            outbox.want(channel);
            wanted.channels.insert((*channel).to_owned(), false);
        }
        let task = Task {
            id: 7,
            addr: ("127.0.0.1".into(), 6379),
            settings: Settings {
                pool: RedisPoolConfig::default(),
                sharded,
            },
            wanted: Arc::new(Mutex::new(wanted)),
            changed: Arc::new(Notify::new()),
            outbox,
            reports,
            requested: HashMap::new(),
            active: HashSet::new(),
            expected: VecDeque::new(),
            resubscribed: Vec::new(),
        };
        (task, reported, consumer)
    }

    #[tokio::test]
    async fn subscribes_each_channel_and_reads_resp3_pushes() {
        let (mut task, mut reported, mut consumer) = task(true, &["a", "b"]);
        let out = task.commands(true);
        assert_eq!(
            out,
            [
                resp::command(&[b"SSUBSCRIBE", b"a"]),
                resp::command(&[b"SSUBSCRIBE", b"b"])
            ]
            .concat()
        );
        let push = |items: &[&str]| Frame::Push(items.iter().map(|s| text(s)).collect());
        task.handle(push(&["ssubscribe", "a", "1"]), true)
            .await
            .expect("confirmed");
        task.handle(Frame::Error("MOVED 15495 127.0.0.1:7002".into()), true)
            .await
            .expect("refused");
        task.handle(push(&["smessage", "a", "hello"]), true)
            .await
            .expect("message");
        // A channel not confirmed here, and nonsense, are ignored.
        task.handle(push(&["smessage", "b", "not yet"]), true)
            .await
            .expect("ignored");
        for odd in [
            Frame::Push(vec![]),
            Frame::Push(vec![Frame::Int(1), text("a")]),
            push(&["smessage"]),
            Frame::Array(vec![text("message"), text("a"), text("x")]),
            Frame::Map(vec![]),
            Frame::Null,
        ] {
            task.handle(odd, true).await.expect("ignored");
        }
        // Redis dropping `a` (its slot moved) is no answer to anything.
        task.handle(push(&["sunsubscribe", "a", "0"]), true)
            .await
            .expect("dropped");
        assert!(matches!(
            reported.try_recv(),
            Ok(Report::Confirmed { link: 7, channel }) if channel == "a"
        ));
        assert!(matches!(
            reported.try_recv(),
            Ok(Report::Refused { channel, error, .. }) if channel == "b" && error.starts_with("MOVED")
        ));
        assert!(matches!(
            reported.try_recv(),
            Ok(Report::Dropped { channels, .. }) if channels == ["a"]
        ));
        assert_eq!(
            consumer.try_recv().ok(),
            Some(SubscriberEvent::Message {
                channel: "a".into(),
                payload: Bytes::from_static(b"hello")
            })
        );
        assert_eq!(
            consumer.try_recv().ok(),
            Some(SubscriberEvent::Lost {
                channels: vec!["a".into()]
            })
        );
        assert!(consumer.try_recv().is_err());
        // An error that answers nothing ends the connection.
        assert!(task.handle(Frame::Error("ERR".into()), true).await.is_err());
    }

    #[tokio::test]
    async fn reads_resp2_arrays_and_announces_resubscriptions_before_messages() {
        let (mut task, _reported, mut consumer) = task(false, &[]);
        {
            let mut wanted = task.wanted.lock();
            wanted.channels.insert("a".into(), true);
            wanted.dirty.insert("a".into());
        }
        task.outbox.want("a");
        assert_eq!(task.commands(false), resp::command(&[b"SUBSCRIBE", b"a"]));
        let array = |items: &[&str]| Frame::Array(items.iter().map(|s| text(s)).collect());
        task.handle(array(&["subscribe", "a", "1"]), false)
            .await
            .expect("confirmed");
        task.handle(array(&["message", "a", "1"]), false)
            .await
            .expect("message");
        task.handle(array(&["pong", ""]), false)
            .await
            .expect("pong");
        assert_eq!(
            consumer.try_recv().ok(),
            Some(SubscriberEvent::Resubscribed {
                channels: vec!["a".into()]
            })
        );
        assert!(matches!(
            consumer.try_recv(),
            Ok(SubscriberEvent::Message { channel, .. }) if channel == "a"
        ));
        // Unwanted: unsubscribed at once, and its late messages no longer delivered.
        {
            let mut wanted = task.wanted.lock();
            wanted.channels.remove("a");
            wanted.dirty.insert("a".into());
        }
        assert_eq!(task.commands(false), resp::command(&[b"UNSUBSCRIBE", b"a"]));
        task.handle(array(&["message", "a", "late"]), false)
            .await
            .expect("ignored");
        task.handle(array(&["unsubscribe", "a", "0"]), false)
            .await
            .expect("answer");
        assert!(consumer.try_recv().is_err());
        assert!(task.expected.is_empty());
    }

    #[tokio::test]
    async fn garbage_from_the_server_ends_the_connection_without_a_panic() {
        let (mut task, _reported, _consumer) = task(false, &["a"]);
        for garbage in [
            &b"?what\r\n"[..],
            b"$-7\r\n",
            b"*1\r\n$3\r\nabcdef\r\n",
            b":9999999999999999999999\r\n",
        ] {
            let mut input = BytesMut::from(garbage);
            assert!(task.consume(&mut input, true).await.is_err());
        }
        // Half a frame waits for the rest.
        let half = &b">3\r\n$7\r\nmessage\r\n$1\r\na"[..];
        let mut input = BytesMut::from(half);
        assert!(task.consume(&mut input, true).await.is_ok());
        assert_eq!(&input[..], half);
    }
}
