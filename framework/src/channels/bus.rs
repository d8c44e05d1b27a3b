//! The bus: how an event published on any server reaches the subscribers on every server.
//!
//! Publishing never writes to sockets directly. It hands an [`Envelope`] (the frame,
//! serialized once, the socket to leave out, the time of publication) to the bus, and the
//! bus hands it to the hub (`hub.rs`) of every server that has subscribers for the channel, which
//! writes it to its local sockets. Two buses implement [`Bus`] and share that fan-out
//! code: the memory bus (`memory_bus.rs`) hands the envelope straight to this process's hub (channels within
//! one process), and the Redis bus (`redis_bus.rs`) carries it through Redis pub/sub, once
//! per server subscribed to the channel, this one included. Delivery only ever goes
//! through the bus, so on Redis an event reaches each socket exactly once, and in the
//! order its publisher published.

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::protocol::{Frame, SocketId};
use super::ChannelError;

/// An event on its way to a channel's subscribers.
#[derive(Clone, Debug)]
pub(crate) struct Envelope {
    /// What the sockets receive.
    pub(crate) frame: Frame,
    /// The socket that caused the event, which must not receive it.
    pub(crate) except: Option<SocketId>,
    /// When it was published, in microseconds of the Unix epoch (for the latency metric).
    pub(crate) at_micros: u64,
}

impl Envelope {
    /// An envelope published now.
    pub(crate) fn now(frame: Frame, except: Option<SocketId>) -> Self {
        Self {
            frame,
            except,
            at_micros: now_micros(),
        }
    }

    /// The wire form between servers: `"{at_micros} {except or -}\n{frame}"`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let except = self.except.as_ref().map_or("-", SocketId::as_str);
        let head = format!("{} {except}\n", self.at_micros);
        let mut out = Vec::with_capacity(head.len() + self.frame.as_bytes().len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(self.frame.as_bytes());
        out
    }

    /// Reads [`Envelope::encode`]'s form; `None` for anything else.
    pub(crate) fn decode(bytes: Bytes) -> Option<Self> {
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let head = std::str::from_utf8(&bytes[..newline]).ok()?;
        let (at, except) = head.split_once(' ')?;
        let at_micros = at.parse().ok()?;
        let except = match except {
            "-" => None,
            id => Some(SocketId::parse(id).ok()?),
        };
        let frame = Frame::from_wire(bytes.slice(newline + 1..))?;
        Some(Self {
            frame,
            except,
            at_micros,
        })
    }
}

/// Microseconds since the Unix epoch, by this server's clock.
pub(crate) fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Carries envelopes to the hubs of the servers that have subscribers.
pub(crate) trait Bus: Send + Sync + 'static {
    /// Delivers `envelope` to `channel`'s subscribers on every server.
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        envelope: Envelope,
    ) -> BoxFuture<'a, Result<(), ChannelError>>;

    /// This server now has subscribers for `channel` (`on`), or no longer has any. Called
    /// by the hub in the order of those changes; `ready` is told once deliveries for the
    /// channel reach this server (at once in memory; once Redis confirmed the
    /// subscription).
    fn interest(&self, channel: &str, on: bool, ready: tokio::sync::watch::Sender<bool>);

    /// What the start-up log says about it.
    fn describe(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::protocol::ChannelName;

    #[test]
    fn envelopes_round_trip() {
        let channel = ChannelName::new("private-a").unwrap_or_else(|_| unreachable!());
        let frame = Frame::event("e", &channel, "{\"x\":\"a\\nb\"}");
        for except in [None, Some(SocketId::from_parts(12, 34))] {
            let envelope = Envelope {
                frame: frame.clone(),
                except: except.clone(),
                at_micros: 1_700_000_000_000_000,
            };
            let back = Envelope::decode(Bytes::from(envelope.encode()));
            let back = back.unwrap_or_else(|| unreachable!("decodes"));
            assert_eq!(back.frame, frame);
            assert_eq!(back.except, except);
            assert_eq!(back.at_micros, 1_700_000_000_000_000);
        }
        assert!(Envelope::decode(Bytes::from_static(b"junk")).is_none());
        assert!(Envelope::decode(Bytes::from_static(b"1 x.y\n{}")).is_none());
    }
}
