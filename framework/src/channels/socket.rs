//! One client connection: the Pusher protocol over a WebSocket.
//!
//! The connection runs as one task that waits on four things at once: a message from the
//! client, the socket's queue of events (written in batches, then flushed once), the
//! activity timer, and the two reasons to close (the server shutting down, 1001; the queue
//! overflowing, 4100). Replies to the client's own messages (subscription results, pongs,
//! errors) are written at once; events from channels go through the queue, so a slow
//! client costs a bounded queue and is then cut.
//!
//! The activity timer runs from the client's last message: after `activity_timeout` of
//! silence the server sends `pusher:ping`, and a client that has not answered 30 s later
//! is closed with 4201, as the protocol says.
//!
//! An eviction (`Channels::remove_user`) arrives through the same queue, in order with the
//! channel's events: the socket of that user leaves the channel before anything published
//! after the eviction could reach it, is told so, and may not join that channel again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use http::Uri;
use tokio::sync::mpsc;

use super::handle::{Channels, Shared};
use super::hub::{Outbox, Outgoing};
use super::protocol::{
    ChannelKind, ChannelName, ClientEvent, ClientFrame, ConnectParams, ErrorCode, Frame,
    PresenceMember, SocketId, Subscribe,
};
use crate::body::Response;
use crate::extract::{Path, State};
use crate::respond::ErrorPage;
use crate::websocket::{CloseCode, Message, WebSocket, WebSocketUpgrade};

/// How long a client may take to answer the server's `pusher:ping`.
const PONG_WAIT: Duration = Duration::from_secs(30);
/// At most this many queued events are written before one flush.
const BATCH: usize = 64;
/// How long a subscription waits for the bus to deliver the channel here.
const READY_WAIT: Duration = Duration::from_secs(5);

/// `GET {path}/{key}`: the WebSocket handshake. A page of a foreign origin is refused with
/// 403 before upgrading; every other refusal (unknown key, bad protocol version, too many
/// connections) upgrades and closes with the protocol's code, which is what pusher-js reads.
pub(crate) async fn connect(
    State(channels): State<Channels>,
    Path(key): Path<String>,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ErrorPage> {
    let shared = channels.shared;
    if !upgrade.origin_allowed(&shared.origins) {
        tracing::info!(origin = ?upgrade.origin(), "channel socket from a foreign origin refused");
        return Err(ErrorPage::new(
            http::StatusCode::FORBIDDEN,
            "this origin may not open a channel socket ([channels] allowed_origins)",
        ));
    }
    let refusal = if key != shared.config.key {
        Some(ErrorCode::AppDoesNotExist)
    } else {
        ConnectParams::from_query(uri.query().unwrap_or("")).err()
    };
    let size = shared.config.max_message_size;
    let upgrade = upgrade.max_message_size(size).max_frame_size(size);
    Ok(upgrade.on_upgrade(move |socket| run(shared, socket, refusal)))
}

/// Serves one socket until it closes.
async fn run(shared: Arc<Shared>, mut ws: WebSocket, refusal: Option<ErrorCode>) {
    if let Some(code) = refusal {
        return refuse(&mut ws, code).await;
    }
    let count = shared.metrics.connection();
    if usize::try_from(count.current()).unwrap_or(usize::MAX) > shared.config.max_connections {
        shared.metrics.refused.inc();
        return refuse(&mut ws, ErrorCode::OverCapacity).await;
    }
    let Ok(id) = SocketId::random() else {
        return refuse(&mut ws, ErrorCode::GenericReconnect).await;
    };
    let (outbox, mut queue) = Outbox::new(id.clone(), shared.config.send_queue);
    let mut conn = Conn {
        shared,
        id,
        outbox,
        subscriptions: HashMap::new(),
        evicted: HashSet::new(),
        rate: Rate::default(),
    };
    let activity = conn.shared.config.activity_timeout;
    let hello = Frame::connection_established(
        &conn.id,
        u32::try_from(activity.as_secs()).unwrap_or(u32::MAX),
    );
    let mut end = if send(&mut ws, hello).await.is_ok() {
        conn.serve(&mut ws, &mut queue).await
    } else {
        End::Gone
    };
    if let End::Close(code, reason) = end {
        ws.close(code, reason).await;
        end = End::Gone;
    }
    let _ = end;
    conn.leave_all().await;
}

/// Why the loop ended.
enum End {
    /// The client is gone (closed, or the connection broke).
    Gone,
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
}

fn close_for(code: ErrorCode) -> End {
    End::Close(CloseCode::from(code.code()), code.message())
}

async fn refuse(ws: &mut WebSocket, code: ErrorCode) {
    let _ = send(ws, Frame::error_code(code)).await;
    ws.close(CloseCode::from(code.code()), code.message()).await;
}

async fn send(ws: &mut WebSocket, frame: Frame) -> Result<(), ()> {
    ws.send(Message::Text(frame.into_text()))
        .await
        .map_err(|_| ())
}

/// One connection's state.
struct Conn {
    shared: Arc<Shared>,
    id: SocketId,
    outbox: Arc<Outbox>,
    /// The channels subscribed to, with the member joined as on presence channels.
    subscriptions: HashMap<ChannelName, Option<PresenceMember>>,
    /// Channels this socket was removed from: its old authorization would still verify
    /// (it signs the socket id, not a time), so the socket itself refuses them.
    evicted: HashSet<ChannelName>,
    rate: Rate,
}

impl Conn {
    async fn serve(&mut self, ws: &mut WebSocket, queue: &mut mpsc::Receiver<Outgoing>) -> End {
        let activity = self.shared.config.activity_timeout;
        let closing = ws.closing();
        tokio::pin!(closing);
        let timer = tokio::time::sleep(activity);
        tokio::pin!(timer);
        let mut pinged = false;
        let outbox = self.outbox.clone();
        loop {
            tokio::select! {
                biased;
                () = &mut closing => {
                    return End::Close(CloseCode::Away, "server shutting down");
                }
                () = outbox.cut() => {
                    self.shared.metrics.slow_consumers.inc();
                    tracing::debug!(socket = %self.id, "slow consumer cut");
                    return close_for(ErrorCode::OverCapacity);
                }
                message = ws.recv() => {
                    timer.as_mut().reset(tokio::time::Instant::now() + activity);
                    pinged = false;
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            self.shared.metrics.messages_in.inc();
                            if let Err(end) = self.handle(ws, text.as_str()).await {
                                return end;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let error = Frame::error("binary messages are not part of the protocol", None);
                            if send(ws, error).await.is_err() {
                                return End::Gone;
                            }
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::Gone,
                        Some(Ok(_)) => {}
                    }
                }
                Some(first) = queue.recv() => {
                    // A client that stops reading blocks the write once the kernel's
                    // buffers are full: the cut must still get through.
                    let eviction = tokio::select! {
                        written = self.write_batch(ws, first, queue) => match written {
                            Ok(eviction) => eviction,
                            Err(()) => return End::Gone,
                        },
                        () = outbox.cut() => {
                            self.shared.metrics.slow_consumers.inc();
                            tracing::debug!(socket = %self.id, "slow consumer cut while writing");
                            return close_for(ErrorCode::OverCapacity);
                        }
                    };
                    if let Some(item) = eviction {
                        if self.on_eviction(ws, item).await.is_err() {
                            return End::Gone;
                        }
                    }
                }
                () = &mut timer => {
                    if pinged {
                        return close_for(ErrorCode::PongNotReceived);
                    }
                    if send(ws, Frame::ping()).await.is_err() {
                        return End::Gone;
                    }
                    pinged = true;
                    timer.as_mut().reset(tokio::time::Instant::now() + PONG_WAIT);
                }
            }
        }
    }

    /// Writes `first` and whatever else is queued (up to [`BATCH`]), then flushes once. An
    /// eviction ends the batch unwritten and is returned, for [`Conn::on_eviction`].
    async fn write_batch(
        &self,
        ws: &mut WebSocket,
        first: Outgoing,
        queue: &mut mpsc::Receiver<Outgoing>,
    ) -> Result<Option<Outgoing>, ()> {
        let metrics = &self.shared.metrics;
        let stream = ws.get_mut();
        let mut next = Some(first);
        let mut written = 0;
        let mut eviction = None;
        while let Some(item) = next.take() {
            if item.evict.is_some() {
                eviction = Some(item);
                break;
            }
            metrics.sent(item.at_micros);
            stream
                .feed(Message::Text(item.frame.into_text()))
                .await
                .map_err(|_| ())?;
            written += 1;
            if written < BATCH {
                next = queue.try_recv().ok();
            }
        }
        if written > 0 {
            stream.flush().await.map_err(|_| ())?;
        }
        Ok(eviction)
    }

    /// Acts on an eviction: a socket on its channel as its user leaves the channel (the
    /// others get `member_removed` once the user's last socket has left), is sent the
    /// eviction's frame, and may not join the channel again. Other sockets ignore it.
    async fn on_eviction(&mut self, ws: &mut WebSocket, item: Outgoing) -> Result<(), ()> {
        let Some(eviction) = item.evict else {
            return Ok(());
        };
        let found = self.subscriptions.iter().find_map(|(name, member)| {
            let theirs = *name.as_str() == *eviction.channel
                && member
                    .as_ref()
                    .is_some_and(|m| *m.user_id == *eviction.user_id);
            theirs.then(|| name.clone())
        });
        let Some(channel) = found else {
            return Ok(());
        };
        self.unsubscribe(&channel).await;
        tracing::debug!(socket = %self.id, channel = %channel, "removed from a presence channel");
        self.evicted.insert(channel);
        self.shared.metrics.sent(item.at_micros);
        send(ws, item.frame).await
    }

    /// Answers one client message; `Err` when the connection must end.
    async fn handle(&mut self, ws: &mut WebSocket, text: &str) -> Result<(), End> {
        let frame = match ClientFrame::parse(text, &self.shared.limits) {
            Ok(frame) => frame,
            Err(err) => {
                tracing::debug!(socket = %self.id, error = %err, "client message refused");
                return send(ws, err.error_frame()).await.map_err(|()| End::Gone);
            }
        };
        let reply = match frame {
            ClientFrame::Ping => Some(Frame::pong()),
            ClientFrame::Pong => None,
            ClientFrame::Subscribe(subscribe) => self.subscribe(subscribe).await,
            ClientFrame::Unsubscribe { channel } => {
                self.unsubscribe(&channel).await;
                None
            }
            ClientFrame::Signin { auth, user_data } => Some(
                match self
                    .shared
                    .credentials
                    .verify_signin(&self.id, &auth, &user_data)
                {
                    Ok(_) => Frame::signin_success(&user_data),
                    Err(err) => Frame::error(&err.to_string(), Some(ErrorCode::Unauthorized)),
                },
            ),
            ClientFrame::ClientEvent(event) => self.client_event(event).await,
        };
        match reply {
            Some(frame) => send(ws, frame).await.map_err(|()| End::Gone),
            None => Ok(()),
        }
    }

    /// Joins a channel; the frame answering the client.
    async fn subscribe(&mut self, subscribe: Subscribe) -> Option<Frame> {
        let channel = subscribe.channel.clone();
        if self.subscriptions.contains_key(&channel) {
            return (channel.kind() != ChannelKind::Presence)
                .then(|| Frame::subscription_succeeded(&channel));
        }
        if self.evicted.contains(&channel) {
            return Some(Frame::removed(&channel));
        }
        if self.subscriptions.len() >= self.shared.config.max_channels_per_connection {
            let message = format!(
                "a connection may subscribe to at most {} channels",
                self.shared.config.max_channels_per_connection
            );
            return Some(Frame::subscription_error(
                &channel,
                "LimitReached",
                &message,
                429,
            ));
        }
        let member = match subscribe.authorize(&self.shared.credentials, &self.id) {
            Ok(member) => member,
            Err(err) => {
                tracing::debug!(socket = %self.id, channel = %channel, error = %err, "subscription refused");
                return Some(err.subscription_error_frame(&channel));
            }
        };
        let shared = self.shared.clone();
        let mut ready = shared
            .hub
            .subscribe(channel.as_str(), &self.outbox, shared.bus.as_ref());
        let delivered = matches!(
            tokio::time::timeout(READY_WAIT, ready.wait_for(|ready| *ready)).await,
            Ok(Ok(_))
        );
        if !delivered {
            shared
                .hub
                .unsubscribe(channel.as_str(), &self.id, shared.bus.as_ref());
            return Some(Frame::subscription_error(
                &channel,
                "Unavailable",
                "the channel cannot be joined now; retry",
                503,
            ));
        }
        let reply = match &member {
            Some(member) => {
                match shared
                    .presence
                    .join(channel.as_str(), &self.id, member)
                    .await
                {
                    Ok(joined) => {
                        if joined.first {
                            let added = Frame::member_added(&channel, member);
                            if let Err(err) = shared
                                .publish(channel.as_str(), added, Some(self.id.clone()))
                                .await
                            {
                                tracing::warn!(error = %err, "member_added not published");
                            }
                        }
                        shared.metrics.presence_members.inc();
                        Frame::presence_subscription_succeeded(&channel, joined.members.iter())
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, channel = %channel, "presence join failed");
                        shared
                            .hub
                            .unsubscribe(channel.as_str(), &self.id, shared.bus.as_ref());
                        return Some(Frame::subscription_error(
                            &channel,
                            "Unavailable",
                            "presence is unavailable now; retry",
                            503,
                        ));
                    }
                }
            }
            None => Frame::subscription_succeeded(&channel),
        };
        shared.metrics.subscriptions.inc();
        self.subscriptions.insert(channel, member);
        Some(reply)
    }

    /// Leaves a channel (nothing if not subscribed).
    async fn unsubscribe(&mut self, channel: &ChannelName) {
        let Some(member) = self.subscriptions.remove(channel) else {
            return;
        };
        let shared = &self.shared;
        shared
            .hub
            .unsubscribe(channel.as_str(), &self.id, shared.bus.as_ref());
        shared.metrics.subscriptions.dec();
        if member.is_some() {
            shared.metrics.presence_members.dec();
            match shared.presence.leave(channel.as_str(), &self.id).await {
                Ok(Some(user)) => {
                    let removed = Frame::member_removed(channel, &user);
                    if let Err(err) = shared.publish(channel.as_str(), removed, None).await {
                        tracing::warn!(error = %err, "member_removed not published");
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    // The heartbeat stops renewing it, and another server removes it later.
                    tracing::warn!(error = %err, channel = %channel, "presence leave failed");
                }
            }
        }
    }

    /// Leaves every channel (the socket is closing).
    async fn leave_all(&mut self) {
        let channels: Vec<ChannelName> = self.subscriptions.keys().cloned().collect();
        for channel in channels {
            self.unsubscribe(&channel).await;
        }
    }

    /// Relays a client event to the channel's other subscribers, if allowed.
    async fn client_event(&mut self, event: ClientEvent) -> Option<Frame> {
        if !self.shared.config.client_events {
            return Some(Frame::error(
                "client events are not enabled on this server ([channels] client_events)",
                None,
            ));
        }
        if !event.channel.kind().allows_client_events() {
            return Some(Frame::error(
                "client events are allowed on private and presence channels only",
                None,
            ));
        }
        let Some(member) = self.subscriptions.get(&event.channel) else {
            return Some(Frame::error(
                "subscribe to the channel before sending client events on it",
                None,
            ));
        };
        if !self.rate.allow(self.shared.config.client_event_rate) {
            return Some(Frame::error_code(ErrorCode::ClientEventRateLimit));
        }
        let user = member.as_ref().map(|m| m.user_id.as_str());
        let frame = Frame::client_event(&event, user);
        if let Err(err) = self
            .shared
            .publish(event.channel.as_str(), frame, Some(self.id.clone()))
            .await
        {
            tracing::warn!(error = %err, "client event not published");
        }
        None
    }
}

/// A per-second budget of client events (a token bucket refilled continuously).
#[derive(Default)]
struct Rate {
    tokens: f64,
    last: Option<Instant>,
}

impl Rate {
    fn allow(&mut self, per_second: u32) -> bool {
        let now = Instant::now();
        let max = f64::from(per_second);
        self.tokens = match self.last {
            None => max,
            Some(last) => (self.tokens + now.duration_since(last).as_secs_f64() * max).min(max),
        };
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
