//! Pub/sub seen from its consumer: a `Subscriber`'s events read with time limits, and the
//! subscriber connections a Redis node reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rondo::redis::{RedisPool, SubscriberEvent};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

/// The name the subscriber's connections give themselves (`CLIENT LIST` shows it).
pub const CLIENT_NAME: &str = "rondo-pubsub";

/// The next event, waiting at most `limit`; `None` when none came.
pub async fn next_event(
    events: &mut Receiver<SubscriberEvent>,
    limit: Duration,
) -> Option<SubscriberEvent> {
    tokio::time::timeout(limit, events.recv())
        .await
        .ok()
        .flatten()
}

/// Reads events until one satisfies `wanted`, waiting at most `limit` in all; answers the
/// events before it, and it.
///
/// # Panics
///
/// When `limit` passes first (naming `what` and showing what came).
pub async fn until(
    events: &mut Receiver<SubscriberEvent>,
    limit: Duration,
    what: &str,
    wanted: impl Fn(&SubscriberEvent) -> bool,
) -> (Vec<SubscriberEvent>, SubscriberEvent) {
    let deadline = Instant::now() + limit;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_event(events, left).await {
            Some(event) if wanted(&event) => return (before, event),
            Some(event) => before.push(event),
            None => panic!(
                "no {what} within {limit:?}; {} events came: {:?}",
                before.len(),
                summary(&before)
            ),
        }
    }
}

/// Every event that comes until none has for `quiet` (at most 100 000 of them).
pub async fn drain(
    events: &mut Receiver<SubscriberEvent>,
    quiet: Duration,
) -> Vec<SubscriberEvent> {
    let mut out = Vec::new();
    while out.len() < 100_000 {
        match next_event(events, quiet).await {
            Some(event) => out.push(event),
            None => break,
        }
    }
    out
}

/// The messages among `events`, as (channel, payload as text).
pub fn messages(events: &[SubscriberEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|event| match event {
            SubscriberEvent::Message { channel, payload } => Some((
                channel.clone(),
                String::from_utf8_lossy(payload).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

/// Messages per channel among `events`.
pub fn counts(events: &[SubscriberEvent]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (channel, _) in messages(events) {
        *counts.entry(channel).or_insert(0) += 1;
    }
    counts
}

/// The control events among `events` (messages left out), for assertion messages.
pub fn summary(events: &[SubscriberEvent]) -> Vec<String> {
    let mut out = Vec::new();
    let mut messages = 0;
    for event in events {
        if let SubscriberEvent::Message { .. } = event {
            messages += 1;
            continue;
        }
        if messages > 0 {
            out.push(format!("{messages} messages"));
            messages = 0;
        }
        out.push(format!("{event:?}"));
    }
    if messages > 0 {
        out.push(format!("{messages} messages"));
    }
    out
}

/// The `CLIENT LIST` lines of the subscriber's connections, from a `CLIENT LIST` answer.
pub fn subscriber_clients(client_list: &str) -> Vec<String> {
    let name = format!("name={CLIENT_NAME} ");
    client_list
        .lines()
        .filter(|line| line.contains(&name))
        .map(str::to_owned)
        .collect()
}

/// The value of `field` (`omem`, `sub`, `ssub`...) in one `CLIENT LIST` line.
pub fn client_field(line: &str, field: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(field)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}

/// Events as they arrive, each with the time it was read, by a task of its own: a test can
/// block on a failover while the events keep their real arrival times.
#[derive(Debug)]
pub struct Recorder {
    log: Arc<Mutex<Vec<(Instant, SubscriberEvent)>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Starts reading `events`.
    pub fn start(mut events: Receiver<SubscriberEvent>) -> Recorder {
        let log = Arc::new(Mutex::new(Vec::new()));
        let into = log.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                into.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((Instant::now(), event));
            }
        });
        Recorder { log, task }
    }

    /// Everything read so far, with arrival times.
    pub fn events(&self) -> Vec<(Instant, SubscriberEvent)> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Polls `probe` over the events read so far, every 20 ms, until it answers, for at most
    /// `limit`.
    ///
    /// # Panics
    ///
    /// When `limit` passes first (naming `what` and showing the control events read).
    pub async fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        probe: impl Fn(&[(Instant, SubscriberEvent)]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let events = self.events();
            if let Some(found) = probe(&events) {
                return found;
            }
            if Instant::now() >= deadline {
                let events: Vec<SubscriberEvent> = events.into_iter().map(|(_, e)| e).collect();
                panic!("no {what} within {limit:?}; read: {:?}", summary(&events));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One `publish` made by a [`Publisher`].
#[derive(Debug, Clone)]
pub struct Published {
    /// The channel.
    pub channel: String,
    /// Its number on the channel (the payload, as text).
    pub seq: u64,
    /// When the publish returned.
    pub at: Instant,
    /// How many subscribers Redis counted; `None` when the publish failed.
    pub heard: Option<u64>,
}

/// Publishes numbered messages on channels, one task per channel (so a channel whose node
/// is down holds up no other), until stopped.
#[derive(Debug)]
pub struct Publisher {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Vec<Published>>>,
}

impl Publisher {
    /// Starts publishing `0, 1, 2...` on each of `channels`, one every `every`, for at most
    /// `limit` (or 100 000 messages a channel).
    pub fn start(pool: &RedisPool, channels: &[String], every: Duration, limit: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = channels
            .iter()
            .map(|channel| {
                let (pool, channel, stop) = (pool.clone(), channel.clone(), stop.clone());
                tokio::spawn(async move {
                    let until = Instant::now() + limit;
                    let mut done = Vec::new();
                    for seq in 0..100_000u64 {
                        if stop.load(Ordering::Relaxed) || Instant::now() >= until {
                            break;
                        }
                        let heard = pool.publish(&channel, seq.to_string().as_bytes()).await;
                        done.push(Published {
                            channel: channel.clone(),
                            seq,
                            at: Instant::now(),
                            heard: heard.ok(),
                        });
                        tokio::time::sleep(every).await;
                    }
                    done
                })
            })
            .collect();
        Publisher { stop, tasks }
    }

    /// Stops, and answers every publish made, channel by channel.
    ///
    /// # Panics
    ///
    /// When a publishing task panicked.
    pub async fn stop(self) -> Vec<Published> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.expect("publisher task"));
        }
        all
    }
}

/// The numbered messages of `channel` among `events`, with their arrival times, in arrival
/// order.
pub fn numbered(events: &[(Instant, SubscriberEvent)], channel: &str) -> Vec<(Instant, u64)> {
    events
        .iter()
        .filter_map(|(at, event)| match event {
            SubscriberEvent::Message {
                channel: c,
                payload,
            } if c == channel => {
                let seq = std::str::from_utf8(payload).ok()?.parse().ok()?;
                Some((*at, seq))
            }
            _ => None,
        })
        .collect()
}

/// The longest wait between two consecutive arrivals in `arrivals`.
pub fn longest_gap(arrivals: &[(Instant, u64)]) -> Duration {
    arrivals
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_list_lines_are_read() {
        let list = "id=3 addr=127.0.0.1:5 name= omem=0 sub=0\n\
                    id=4 addr=127.0.0.1:6 name=rondo-pubsub omem=20504 sub=0 ssub=3\n";
        let ours = subscriber_clients(list);
        assert_eq!(ours.len(), 1);
        assert_eq!(client_field(&ours[0], "omem"), Some(20504));
        assert_eq!(client_field(&ours[0], "ssub"), Some(3));
        assert_eq!(client_field(&ours[0], "sub"), Some(0));
    }
}
