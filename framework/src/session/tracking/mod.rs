//! Reads without a round trip: Redis client-side caching (`CLIENT TRACKING`) tells this node
//! when a session key changes, so a warm actor's copy can be trusted until then.
//!
//! One connection per node speaks RESP3 and asks for `CLIENT TRACKING ON BCAST PREFIX
//! {prefix}session:`: from then on, every write to a session key, by any server, by expiry
//! or by hand, makes Redis push an `invalidate` naming the key to this connection. Each actor
//! has a [`Stamp`]: a count of the invalidations received for its key, and the count (and
//! connection epoch) at which a reader last checked its copy against the stored version. A
//! read may skip Redis while both are unchanged.
//!
//! Why it stays exact:
//! - Redis queues the invalidation to this connection before it answers the write that
//!   caused it. A reader first drains this connection's socket with a non-blocking `recv`
//!   ([`Tracking::current`]), so every invalidation sent before the request arrived has been
//!   counted by the time the copy is trusted (on one host that is guaranteed by loopback
//!   delivery order; across hosts it holds as far as the network delivers in order).
//! - A check's result only counts if no invalidation arrived while it was in flight (the
//!   [`Ticket`] taken before the check), so a write racing the check is never missed.
//! - Losing the connection (Redis restarted or flushed, a network error, an unanswered
//!   `PING`) bumps the epoch, which voids every copy at once; until the connection is back,
//!   reads check the stored version as they do without tracking.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::redis::resp::{self, Frame};
use prometheus_client::metrics::counter::Counter;

use crate::config::RedisPoolConfig;

/// Who holds copies of session keys on this node (the actor registry): told of every
/// invalidation Redis pushes.
pub(crate) trait Holders: Send + Sync + 'static {
    /// Notes that `key` (a store key) was written; answers whether a copy of it is held.
    fn invalidate(&self, key: &[u8]) -> bool;
}

/// Where invalidations go: the holders (weak, so that tracking ends with them) and the
/// counter of invalidations that hit a held copy.
struct Sink {
    holders: Weak<dyn Holders>,
    counted: Counter,
}

/// How often the connection is checked with a `PING`: a connection that silently stopped
/// delivering (a network partition) must not keep copies trusted for long.
const PING_EVERY: Duration = Duration::from_millis(500);
/// How often the background task drains what readers have not. Readers drain before they
/// trust a copy, so this only keeps the input small (and notices a closed connection while
/// nobody reads). The socket is not watched for input: with `BCAST` every session write of
/// every server sends an `invalidate` (each new session too), and waking a thread for each
/// would cost more than the writes themselves.
const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// Reconnection backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Per-actor tracking state, shared by the actor's handles and the tracking connection.
#[derive(Debug, Default)]
pub(crate) struct Stamp {
    /// Invalidations received for the actor's key.
    invalidations: AtomicU64,
    /// `pack(epoch, invalidations)` as of the last successful check; 0: never checked.
    checked: AtomicU64,
    /// Only actors in the registry hear of invalidations; the others are never trusted.
    registered: bool,
}

impl Stamp {
    /// A stamp for an actor that is (or is not) in the registry.
    pub(crate) fn new(registered: bool) -> Self {
        Self {
            registered,
            ..Self::default()
        }
    }

    /// Counts an invalidation of the actor's key.
    pub(crate) fn invalidate(&self) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
    }
}

/// What a reader noted before checking the stored version.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
    invalidations: u64,
}

fn pack(epoch: u64, invalidations: u64) -> u64 {
    (epoch << 32) | (invalidations & 0xffff_ffff)
}

/// The tracking connection of one node.
pub(crate) struct Tracking {
    sink: Sink,
    /// Odd while the connection is up and tracking; even while it is not. Bumped on every
    /// change and on "invalidate everything", which voids every stamp at once.
    epoch: AtomicU64,
    /// The connection and its unparsed input; a short lock, never held across an await.
    link: Mutex<Option<Link>>,
    /// The link's socket, for the lock-free look that almost every read ends with: nothing
    /// has arrived (see [`Tracking::drain`]).
    socket: RwLock<Option<Arc<std::net::TcpStream>>>,
    /// A drain has read input it has not applied yet: a reader that finds the socket empty
    /// must wait for it (through the lock) before trusting a copy.
    draining: AtomicBool,
    /// The connection opens on the first read that could use it, not at start-up, as the
    /// pool's connections do.
    wanted: tokio::sync::Notify,
    asked: AtomicBool,
}

struct Link {
    /// Non-blocking, and read and written with plain system calls, outside tokio's reactor:
    /// a reader must see what has arrived by now, not what tokio last polled, and nothing
    /// waits for its input (see [`DRAIN_EVERY`]).
    socket: Arc<std::net::TcpStream>,
    input: Vec<u8>,
    /// When the unanswered `PING` was sent.
    ping_sent: Option<Instant>,
}

impl std::fmt::Debug for Tracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracking")
            .field("tracking", &self.is_tracking())
            .finish()
    }
}

impl Tracking {
    /// Starts tracking for keys starting with `prefix` on the Redis of `config`; copies are
    /// trusted only once the connection is up, and never when Redis cannot track.
    pub(crate) fn start(
        config: RedisPoolConfig,
        prefix: String,
        holders: Weak<dyn Holders>,
        invalidations: Counter,
        closing: CancellationToken,
    ) -> Arc<Self> {
        let tracking = Arc::new(Self {
            sink: Sink {
                holders,
                counted: invalidations,
            },
            epoch: AtomicU64::new(0),
            link: Mutex::new(None),
            socket: RwLock::new(None),
            draining: AtomicBool::new(false),
            wanted: tokio::sync::Notify::new(),
            asked: AtomicBool::new(false),
        });
        tokio::spawn(run(tracking.clone(), config, prefix, closing));
        tracking
    }

    /// Whether the actor with `stamp` holds a copy no write has touched since it was last
    /// checked. Drains pending invalidations first.
    pub(crate) fn current(&self, stamp: &Stamp) -> bool {
        self.drain();
        let epoch = self.epoch.load(Ordering::SeqCst);
        epoch % 2 == 1
            && stamp.checked.load(Ordering::SeqCst)
                == pack(epoch, stamp.invalidations.load(Ordering::SeqCst))
    }

    /// Notes the state before a check of the stored version (and opens the connection, the
    /// first time).
    pub(crate) fn ticket(&self, stamp: &Stamp) -> Ticket {
        if !self.asked.swap(true, Ordering::Relaxed) {
            self.wanted.notify_one();
        }
        Ticket {
            epoch: self.epoch.load(Ordering::SeqCst),
            invalidations: stamp.invalidations.load(Ordering::SeqCst),
        }
    }

    /// Records a successful check begun at `ticket`, unless the key was written or the
    /// connection changed meanwhile.
    pub(crate) fn confirm(&self, stamp: &Stamp, ticket: Ticket) {
        let unchanged = stamp.registered
            && ticket.epoch % 2 == 1
            && self.epoch.load(Ordering::SeqCst) == ticket.epoch
            && stamp.invalidations.load(Ordering::SeqCst) == ticket.invalidations;
        if unchanged {
            stamp
                .checked
                .store(pack(ticket.epoch, ticket.invalidations), Ordering::SeqCst);
        }
    }

    /// Reads and applies whatever the connection has received, without waiting.
    ///
    /// Every read calls this, so the usual case takes no lock: a non-blocking peek finds the
    /// socket empty, and no other drain holds input it has read but not applied yet (such a
    /// drain set `draining` before its read, so a reader that peeks after that read sees the
    /// flag). Only then may the reader skip the lock; otherwise it drains (or waits for the
    /// drain in progress) under the lock, as before.
    fn drain(&self) {
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
        let drained = current.drain(&self.sink, &self.epoch);
        self.draining.store(false, Ordering::SeqCst);
        if let Err(why) = drained {
            // Nothing installs a new link while this one is still up.
            drop(link);
            self.lose(&why);
        }
    }

    fn install(&self, link: Link) {
        *self.socket.write() = Some(link.socket.clone());
        *self.link.lock() = Some(link);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn lose(&self, why: &str) {
        let mut link = self.link.lock();
        *self.socket.write() = None;
        if link.take().is_some() {
            tracing::warn!(reason = %why, "Redis tracking connection lost; reads check the stored version until it is back");
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether copies can currently be trusted (the connection is up and tracking).
    pub(crate) fn is_tracking(&self) -> bool {
        self.epoch.load(Ordering::SeqCst) % 2 == 1
    }

    fn is_up(&self) -> bool {
        self.link.lock().is_some()
    }

    /// Sends a `PING` unless one is unanswered; an answer overdue by `timeout` loses the
    /// connection.
    fn ping(&self, timeout: Duration) {
        let mut link = self.link.lock();
        let Some(current) = link.as_mut() else { return };
        let failed = match current.ping_sent {
            Some(sent) if sent.elapsed() > timeout => Some("no answer to PING".to_owned()),
            Some(_) => None,
            None => {
                let ping = resp::command(&[b"PING"]);
                match (&*SockRef::from(&*current.socket)).write(&ping) {
                    Ok(n) if n == ping.len() => {
                        current.ping_sent = Some(Instant::now());
                        None
                    }
                    Ok(_) => Some("PING not written whole".to_owned()),
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
    fn drain(&mut self, sink: &Sink, epoch: &AtomicU64) -> Result<(), String> {
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
            self.apply(frame, sink, epoch)?;
        }
        self.input.drain(..used);
        Ok(())
    }

    fn apply(&mut self, frame: Frame, sink: &Sink, epoch: &AtomicU64) -> Result<(), String> {
        match frame {
            Frame::Push(items) if items.first() == Some(&Frame::Text(b"invalidate".to_vec())) => {
                match items.get(1) {
                    Some(Frame::Array(keys)) => {
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
                    // FLUSHALL / FLUSHDB: every key may have changed. Keep the parity.
                    _ => {
                        epoch.fetch_add(2, Ordering::SeqCst);
                    }
                }
                Ok(())
            }
            Frame::Push(_) => Ok(()),
            Frame::Text(text) if text == b"PONG" => {
                self.ping_sent = None;
                Ok(())
            }
            Frame::Error(message) => Err(format!("Redis answered {message}")),
            _ => Ok(()),
        }
    }
}

/// Why a connection attempt failed: worth retrying, or not (Redis cannot track).
enum ConnectError {
    Transient(String),
    Unsupported(String),
}

/// Connects and turns tracking on; answers the link, with any bytes that followed the
/// set-up replies.
async fn connect(config: &RedisPoolConfig, prefix: &str) -> Result<Link, ConnectError> {
    let transient = |e: std::io::Error| ConnectError::Transient(e.to_string());
    let setup = async {
        let mut stream = TcpStream::connect((config.host.as_str(), config.port))
            .await
            .map_err(transient)?;
        stream.set_nodelay(true).map_err(transient)?;
        let mut hello: Vec<&[u8]> = vec![b"HELLO", b"3"];
        if let Some(password) = &config.password {
            let user = config.username.as_deref().unwrap_or("default");
            hello.extend([&b"AUTH"[..], user.as_bytes(), password.as_bytes()]);
        }
        let mut out = resp::command(&hello);
        out.extend(resp::command(&[b"CLIENT", b"SETNAME", b"rondo-tracking"]));
        out.extend(resp::command(&[
            b"CLIENT",
            b"TRACKING",
            b"ON",
            b"BCAST",
            b"PREFIX",
            prefix.as_bytes(),
        ]));
        stream.write_all(&out).await.map_err(transient)?;
        let mut input = Vec::new();
        let mut replies = 0;
        let mut chunk = [0u8; 4096];
        while replies < 3 {
            let n = stream.read(&mut chunk).await.map_err(transient)?;
            if n == 0 {
                return Err(ConnectError::Transient("closed by Redis".into()));
            }
            input.extend_from_slice(&chunk[..n]);
            while replies < 3 {
                match resp::parse(&input).map_err(|e| ConnectError::Transient(e.to_string()))? {
                    Some((Frame::Push(_), len)) => drop(input.drain(..len)),
                    Some((Frame::Error(message), _)) => {
                        return Err(ConnectError::Unsupported(message))
                    }
                    Some((_, len)) => {
                        input.drain(..len);
                        replies += 1;
                    }
                    None => break,
                }
            }
        }
        // Out of the reactor, still non-blocking.
        let socket = stream.into_std().map_err(transient)?;
        Ok(Link {
            socket: Arc::new(socket),
            input,
            ping_sent: None,
        })
    };
    match tokio::time::timeout(config.timeout, setup).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Transient(format!(
            "no answer within {:?}",
            config.timeout
        ))),
    }
}

/// Keeps the connection up: connects (with backoff), drains every [`DRAIN_EVERY`], pings,
/// and ends with the manager.
async fn run(
    tracking: Arc<Tracking>,
    config: RedisPoolConfig,
    prefix: String,
    closing: CancellationToken,
) {
    tokio::select! {
        () = tracking.wanted.notified() => {}
        () = closing.cancelled() => return,
    }
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u32;
    loop {
        if closing.is_cancelled() || tracking.sink.holders.strong_count() == 0 {
            return;
        }
        match connect(&config, &prefix).await {
            Ok(link) => {
                tracking.install(link);
                tracing::info!(prefix = %prefix, "reads served from memory, kept current by Redis client-side caching");
                backoff = BACKOFF_MIN;
                failures = 0;
            }
            Err(ConnectError::Unsupported(why)) => {
                tracing::warn!(reason = %why, "Redis cannot track keys for this client; every read checks the stored version");
                return;
            }
            Err(ConnectError::Transient(why)) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(reason = %why, attempts = failures, "Redis tracking connection unavailable; reads check the stored version");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = closing.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drain = tokio::time::interval(DRAIN_EVERY);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while tracking.is_up() {
            tokio::select! {
                _ = drain.tick() => {
                    if tracking.sink.holders.strong_count() == 0 {
                        return;
                    }
                    tracking.drain();
                }
                _ = ping.tick() => tracking.ping(config.timeout.max(PING_EVERY)),
                () = closing.cancelled() => return,
            }
        }
    }
}
