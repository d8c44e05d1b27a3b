//! The way out to the consumer: one bounded channel of [`SubscriberEvent`]s, fed by every
//! connection's reader and by the supervisor, that never makes a reader wait.
//!
//! A reader that waited for a slow consumer would stop reading its socket, Redis would
//! buffer for it until its `client-output-buffer-limit` cut the connection, and every
//! channel on that connection would suffer for one slow consumer. So an event that does not
//! fit is not queued behind the channel: a message is dropped and counted, and the count
//! goes out as [`SubscriberEvent::Lagged`] in the dropped messages' place as soon as there
//! is room.
//!
//! `Lost` and `Resubscribed` are not dropped (a consumer that missed them would not know it
//! must resynchronise): they wait in a short backlog, merged with their neighbours, and
//! while anything waits there every message behind it is dropped and counted too, so the
//! consumer still sees everything in the order it happened. The backlog is bounded: past
//! [`MAX_BACKLOG`] entries it collapses to what it means (these channels were lost, these
//! are back, this many messages dropped).
//!
//! The set of subscribed channels lives here too, under the same lock: a message is
//! delivered only while its channel is wanted, so once `unsubscribe` has returned no message
//! of that channel reaches the consumer, whatever the connection still had in flight.

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;
use tokio::sync::Notify;

use super::SubscriberEvent;

/// Entries the backlog may hold before it collapses (see the module docs).
const MAX_BACKLOG: usize = 8;

/// The consumer's channel, the backlog, and the wanted channels.
#[derive(Debug)]
pub(super) struct Outbox {
    events: Sender<SubscriberEvent>,
    /// A short lock, taken once per event; never held across an await.
    state: Mutex<State>,
    /// Woken when the backlog starts to fill: the supervisor then tries it again until the
    /// consumer has made room.
    pub(super) backlogged: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// The channels asked for (what `Subscriber::channels` answers).
    wanted: BTreeSet<String>,
    /// `Lost`, `Resubscribed` and `Lagged` waiting for room, oldest first.
    backlog: VecDeque<SubscriberEvent>,
}

impl Outbox {
    pub(super) fn new(events: Sender<SubscriberEvent>) -> Self {
        Self {
            events,
            state: Mutex::default(),
            backlogged: Notify::new(),
        }
    }

    /// Delivers a message of `channel`, unless the channel is no longer wanted; drops and
    /// counts it when the consumer is behind.
    pub(super) fn message(&self, channel: String, payload: Bytes) {
        let mut state = self.state.lock();
        if !state.wanted.contains(&channel) {
            return;
        }
        state.flush(&self.events);
        if !state.backlog.is_empty() {
            state.push(SubscriberEvent::Lagged(1));
            return;
        }
        match self
            .events
            .try_send(SubscriberEvent::Message { channel, payload })
        {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => {
                state.push(SubscriberEvent::Lagged(1));
                self.backlogged.notify_one();
            }
        }
    }

    /// Reports that the subscriptions of `channels` were lost (those still wanted).
    pub(super) fn lost(&self, channels: Vec<String>) {
        self.control(channels, |channels| SubscriberEvent::Lost { channels });
    }

    /// Reports that `channels` are subscribed again after a loss (those still wanted).
    pub(super) fn resubscribed(&self, channels: Vec<String>) {
        self.control(channels, |channels| SubscriberEvent::Resubscribed {
            channels,
        });
    }

    fn control(&self, mut channels: Vec<String>, event: fn(Vec<String>) -> SubscriberEvent) {
        let mut state = self.state.lock();
        channels.retain(|c| state.wanted.contains(c));
        if channels.is_empty() {
            return;
        }
        channels.sort_unstable();
        channels.dedup();
        state.flush(&self.events);
        let event = event(channels);
        if !state.backlog.is_empty() {
            state.push(event);
            return;
        }
        match self.events.try_send(event) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(event)) => {
                state.push(event);
                self.backlogged.notify_one();
            }
        }
    }

    /// Sends what the backlog holds, as far as there is room; answers whether something is
    /// still waiting (the supervisor then tries again a little later).
    pub(super) fn flush(&self) -> bool {
        let mut state = self.state.lock();
        state.flush(&self.events);
        !state.backlog.is_empty()
    }

    /// Marks `channel` wanted: its messages are delivered from now on.
    pub(super) fn want(&self, channel: &str) {
        let mut state = self.state.lock();
        if !state.wanted.contains(channel) {
            state.wanted.insert(channel.to_owned());
        }
    }

    /// Marks `channel` unwanted: none of its messages is delivered from now on.
    pub(super) fn unwant(&self, channel: &str) {
        self.state.lock().wanted.remove(channel);
    }

    /// The wanted channels, sorted.
    pub(super) fn channels(&self) -> Vec<String> {
        self.state.lock().wanted.iter().cloned().collect()
    }
}

impl State {
    /// Moves backlog entries into the channel, oldest first, while there is room.
    fn flush(&mut self, events: &Sender<SubscriberEvent>) {
        while let Some(event) = self.backlog.pop_front() {
            match events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.backlog.push_front(event);
                    return;
                }
                Err(TrySendError::Closed(_)) => {
                    // Nobody listens any more: nothing to keep.
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    /// Appends `event` to the backlog, merged with the last entry when it is of its kind;
    /// collapses the backlog when it grows past [`MAX_BACKLOG`].
    fn push(&mut self, event: SubscriberEvent) {
        use SubscriberEvent::{Lagged, Lost, Resubscribed};
        match (self.backlog.back_mut(), event) {
            (Some(Lagged(count)), Lagged(more)) => *count = count.saturating_add(more),
            (Some(Lost { channels }), Lost { channels: more })
            | (Some(Resubscribed { channels }), Resubscribed { channels: more }) => {
                channels.extend(more);
                channels.sort_unstable();
                channels.dedup();
            }
            (_, event) => self.backlog.push_back(event),
        }
        if self.backlog.len() > MAX_BACKLOG {
            self.collapse();
        }
    }

    /// Rewrites the backlog as at most three entries that mean the same to a consumer:
    /// every channel lost in it, those of them back by its end, and the messages dropped.
    fn collapse(&mut self) {
        let mut lost = BTreeSet::new();
        let mut back = BTreeSet::new();
        let mut dropped = 0u64;
        for event in self.backlog.drain(..) {
            match event {
                SubscriberEvent::Lost { channels } => {
                    for channel in channels {
                        back.remove(&channel);
                        lost.insert(channel);
                    }
                }
                SubscriberEvent::Resubscribed { channels } => {
                    for channel in channels {
                        lost.insert(channel.clone());
                        back.insert(channel);
                    }
                }
                SubscriberEvent::Lagged(count) => dropped = dropped.saturating_add(count),
                // Messages never wait in the backlog.
                SubscriberEvent::Message { .. } => {}
            }
        }
        if !lost.is_empty() {
            self.backlog.push_back(SubscriberEvent::Lost {
                channels: lost.into_iter().collect(),
            });
        }
        if !back.is_empty() {
            self.backlog.push_back(SubscriberEvent::Resubscribed {
                channels: back.into_iter().collect(),
            });
        }
        if dropped > 0 {
            self.backlog.push_back(SubscriberEvent::Lagged(dropped));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn drain(rx: &mut mpsc::Receiver<SubscriberEvent>) -> Vec<SubscriberEvent> {
        let mut out = Vec::new();
        while let Ok(event) = rx.try_recv() {
            out.push(event);
        }
        out
    }

    #[test]
    fn a_full_channel_counts_what_it_drops_and_reports_it_in_place() {
        let (tx, mut rx) = mpsc::channel(2);
        let outbox = Outbox::new(tx);
        outbox.want("a");
        for n in 0..5u8 {
            outbox.message("a".into(), Bytes::from(vec![n]));
        }
        // Not wanted: neither delivered nor counted.
        outbox.message("b".into(), Bytes::new());
        assert!(outbox.flush(), "the count waits for room");
        assert_eq!(drain(&mut rx).len(), 2);
        outbox.message("a".into(), Bytes::from_static(b"late"));
        assert_eq!(
            drain(&mut rx),
            vec![
                SubscriberEvent::Lagged(3),
                SubscriberEvent::Message {
                    channel: "a".into(),
                    payload: Bytes::from_static(b"late")
                }
            ]
        );
        assert!(!outbox.flush());
    }

    #[test]
    fn control_events_wait_and_messages_behind_them_are_counted() {
        let (tx, mut rx) = mpsc::channel(1);
        let outbox = Outbox::new(tx);
        outbox.want("a");
        outbox.want("b");
        outbox.message("a".into(), Bytes::new());
        outbox.lost(names(&["b", "a", "gone"]));
        outbox.message("a".into(), Bytes::new());
        outbox.resubscribed(names(&["a"]));
        outbox.resubscribed(names(&["b"]));
        assert_eq!(drain(&mut rx).len(), 1);
        let mut seen = Vec::new();
        for _ in 0..10 {
            outbox.flush();
            seen.extend(drain(&mut rx));
        }
        assert_eq!(
            seen,
            vec![
                SubscriberEvent::Lost {
                    channels: names(&["a", "b"])
                },
                SubscriberEvent::Lagged(1),
                SubscriberEvent::Resubscribed {
                    channels: names(&["a", "b"])
                },
            ]
        );
    }

    #[test]
    fn the_backlog_stays_short_and_keeps_its_meaning() {
        let (tx, mut rx) = mpsc::channel(1);
        let outbox = Outbox::new(tx);
        outbox.want("a");
        outbox.want("b");
        outbox.message("a".into(), Bytes::new());
        for _ in 0..1000 {
            outbox.lost(names(&["a"]));
            outbox.message("a".into(), Bytes::new());
            outbox.resubscribed(names(&["a"]));
        }
        outbox.lost(names(&["b"]));
        assert!(outbox.state.lock().backlog.len() <= MAX_BACKLOG);
        let mut seen = drain(&mut rx);
        for _ in 0..20 {
            outbox.flush();
            seen.extend(drain(&mut rx));
        }
        let dropped: u64 = seen
            .iter()
            .map(|e| match e {
                SubscriberEvent::Lagged(n) => *n,
                _ => 0,
            })
            .sum();
        assert_eq!(dropped, 1000);
        // `a` ends resubscribed, `b` lost: the last control events say so.
        let last_lost = seen.iter().rev().find_map(|e| match e {
            SubscriberEvent::Lost { channels } => Some(channels.clone()),
            _ => None,
        });
        assert!(last_lost.is_some_and(|c| c.contains(&"b".to_owned())));
        let last_back = seen.iter().rev().find_map(|e| match e {
            SubscriberEvent::Resubscribed { channels } => Some(channels.clone()),
            _ => None,
        });
        assert_eq!(last_back, Some(names(&["a"])));
    }

    #[test]
    fn nobody_listening_keeps_nothing() {
        let (tx, rx) = mpsc::channel(1);
        let outbox = Outbox::new(tx);
        outbox.want("a");
        drop(rx);
        for _ in 0..100 {
            outbox.message("a".into(), Bytes::new());
            outbox.lost(names(&["a"]));
        }
        assert!(!outbox.flush());
    }
}
