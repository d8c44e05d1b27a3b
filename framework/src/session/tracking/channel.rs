//! One tracking connection: to the primary of a standalone or Sentinel deployment, or to one
//! primary of a cluster. It has an epoch of its own, odd while it is up and tracking, drawn
//! from one counter for all of them, so that a copy vouched for by one connection never
//! passes for one vouched for by another.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use socket2::SockRef;
use tokio::time::Instant;

use super::Sink;
use crate::redis::resp::{self, Frame};

/// Hands out epochs: unique across the connections of a node, odd for "up", even for "down".
#[derive(Debug, Default)]
pub(super) struct Epochs(AtomicU64);

impl Epochs {
    /// The next epoch with the parity of `up`.
    pub(super) fn next(&self, up: bool) -> u64 {
        loop {
            let epoch = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            if (epoch % 2 == 1) == up {
                return epoch;
            }
        }
    }
}

/// One tracking connection and what it has received.
pub(super) struct Channel {
    /// The primary it connects to, when fixed (a cluster's shard); otherwise the pool's
    /// primary, looked up at every connection.
    pub(super) address: Option<(String, u16)>,
    /// Odd while the connection is up and tracking; replaced on every change and on
    /// "invalidate everything", which voids every stamp it vouched for at once.
    epoch: AtomicU64,
    /// The epoch the current connection was installed with (its id is published to the
    /// pool under it, with key tracking); unlike `epoch`, a flush does not change it.
    installed: AtomicU64,
    epochs: Arc<Epochs>,
    /// The connection and its unparsed input; a short lock, never held across an await.
    link: Mutex<Option<Link>>,
    /// The link's socket, for the lock-free look that almost every read ends with: nothing
    /// has arrived (see [`Channel::drain`]).
    socket: RwLock<Option<Arc<std::net::TcpStream>>>,
    /// A drain has read input it has not applied yet: a reader that finds the socket empty
    /// must wait for it (through the lock) before trusting a copy.
    draining: AtomicBool,
}

pub(super) struct Link {
    /// Non-blocking, and read and written with plain system calls, outside tokio's reactor:
    /// a reader must see what has arrived by now, not what tokio last polled.
    pub(super) socket: Arc<std::net::TcpStream>,
    pub(super) input: Vec<u8>,
    /// When the unanswered check (`ROLE`, or `PING`) was sent.
    check_sent: Option<Instant>,
    /// `ROLE` is refused to this user: checks are `PING`s (a demotion then goes unnoticed
    /// until the connection drops).
    ping_only: bool,
}

impl Link {
    pub(super) fn new(socket: std::net::TcpStream, input: Vec<u8>) -> Self {
        Self {
            socket: Arc::new(socket),
            input,
            check_sent: None,
            ping_only: false,
        }
    }
}

impl Channel {
    pub(super) fn new(address: Option<(String, u16)>, epochs: Arc<Epochs>) -> Self {
        Self {
            address,
            epoch: AtomicU64::new(epochs.next(false)),
            installed: AtomicU64::new(0),
            epochs,
            link: Mutex::new(None),
            socket: RwLock::new(None),
            draining: AtomicBool::new(false),
        }
    }

    /// The current epoch (odd: up and tracking).
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Reads and applies whatever the connection has received, without waiting.
    ///
    /// Every read calls this, so the usual case takes no lock: a non-blocking peek finds the
    /// socket empty, and no other drain holds input it has read but not applied yet (such a
    /// drain set `draining` before its read, so a reader that peeks after that read sees the
    /// flag). Only then may the reader skip the lock; otherwise it drains (or waits for the
    /// drain in progress) under the lock.
    pub(super) fn drain(&self, sink: &Sink) {
        {
            let socket = self.socket.read();
            let Some(socket) = socket.as_ref() else {
                return;
            };
            let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
            let empty = matches!(
                SockRef::from(&**socket).peek(&mut probe),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock
            );
            if empty && !self.draining.load(Ordering::SeqCst) {
                return;
            }
        }
        let mut link = self.link.lock();
        let Some(current) = link.as_mut() else { return };
        self.draining.store(true, Ordering::SeqCst);
        let drained = current.drain(sink, self);
        self.draining.store(false, Ordering::SeqCst);
        if let Err(why) = drained {
            // Nothing installs a new link while this one is still up.
            drop(link);
            self.lose(&why);
        }
    }

    /// Puts a new connection in place; answers its epoch.
    pub(super) fn install(&self, link: Link) -> u64 {
        *self.socket.write() = Some(link.socket.clone());
        *self.link.lock() = Some(link);
        let epoch = self.epochs.next(true);
        self.installed.store(epoch, Ordering::SeqCst);
        self.epoch.store(epoch, Ordering::SeqCst);
        epoch
    }

    /// The epoch the current connection was installed with.
    pub(super) fn installed(&self) -> u64 {
        self.installed.load(Ordering::SeqCst)
    }

    /// Drops the connection (if up), which voids every copy it vouched for.
    pub(super) fn lose(&self, why: &str) {
        let mut link = self.link.lock();
        *self.socket.write() = None;
        if link.take().is_some() {
            tracing::warn!(reason = %why, redis = ?self.address, "Redis tracking connection lost; reads check the stored version until it is back");
            self.epoch.store(self.epochs.next(false), Ordering::SeqCst);
        }
    }

    /// "Every key may have changed" (`FLUSHALL`, `FLUSHDB`): a new epoch, still up.
    fn void_all(&self) {
        self.epoch.store(self.epochs.next(true), Ordering::SeqCst);
    }

    pub(super) fn is_up(&self) -> bool {
        self.link.lock().is_some()
    }

    /// Sends a check (`ROLE`: a primary that was demoted no longer hears of the writes,
    /// which go to the new one) unless one is unanswered; an answer overdue by `timeout`
    /// loses the connection.
    pub(super) fn check(&self, timeout: Duration) {
        let mut link = self.link.lock();
        let Some(current) = link.as_mut() else { return };
        let failed = match current.check_sent {
            Some(sent) if sent.elapsed() > timeout => Some("no answer to ROLE".to_owned()),
            Some(_) => None,
            None => {
                let check = if current.ping_only {
                    resp::command(&[b"PING"])
                } else {
                    resp::command(&[b"ROLE"])
                };
                match (&*SockRef::from(&*current.socket)).write(&check) {
                    Ok(n) if n == check.len() => {
                        current.check_sent = Some(Instant::now());
                        None
                    }
                    Ok(_) => Some("check not written whole".to_owned()),
                    Err(err) => Some(err.to_string()),
                }
            }
        };
        if let Some(why) = failed {
            drop(link);
            self.lose(&why);
        }
    }
}

impl Link {
    /// Non-blocking reads until the socket is empty, then applies every whole frame.
    fn drain(&mut self, sink: &Sink, channel: &Channel) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        loop {
            match (&*SockRef::from(&*self.socket)).read(&mut chunk) {
                Ok(0) => return Err("closed by Redis".into()),
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.to_string()),
            }
        }
        let mut used = 0;
        while let Some((frame, len)) =
            resp::parse(&self.input[used..]).map_err(|e| e.to_string())?
        {
            used += len;
            self.apply(frame, sink, channel)?;
        }
        self.input.drain(..used);
        Ok(())
    }

    fn apply(&mut self, frame: Frame, sink: &Sink, channel: &Channel) -> Result<(), String> {
        match frame {
            Frame::Push(items) if items.first() == Some(&Frame::Text(b"invalidate".to_vec())) => {
                match items.get(1) {
                    Some(Frame::Array(keys)) => {
                        sink.received.inc_by(keys.len() as u64);
                        let Some(holders) = sink.holders.upgrade() else {
                            return Ok(());
                        };
                        for key in keys {
                            if let Frame::Text(key) = key {
                                if holders.invalidate(key) {
                                    sink.counted.inc();
                                }
                            }
                        }
                    }
                    // FLUSHALL / FLUSHDB: every key may have changed.
                    _ => channel.void_all(),
                }
                Ok(())
            }
            Frame::Push(_) => Ok(()),
            Frame::Text(text) if text == b"PONG" => {
                self.check_sent = None;
                Ok(())
            }
            // ROLE: `master`, or the role of a node that no longer takes the writes.
            Frame::Array(items) => match items.first() {
                Some(Frame::Text(role)) if role == b"master" => {
                    self.check_sent = None;
                    Ok(())
                }
                Some(Frame::Text(role)) => Err(format!(
                    "the node is no longer a primary (ROLE: {})",
                    String::from_utf8_lossy(role)
                )),
                _ => Err("unexpected answer to ROLE".into()),
            },
            Frame::Error(message) if self.check_sent.is_some() && message.contains("NOPERM") => {
                self.ping_only = true;
                self.check_sent = None;
                Ok(())
            }
            Frame::Error(message) => Err(format!("Redis answered {message}")),
            _ => Ok(()),
        }
    }
}
