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

use std::sync::Arc;

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
    /// For an eviction, the presence user whose sockets must leave the channel: only those
    /// sockets receive the frame (and leave), every other socket ignores the envelope.
    pub(crate) evict: Option<Arc<str>>,
}

impl Envelope {
    /// An envelope published now.
    pub(crate) fn now(frame: Frame, except: Option<SocketId>) -> Self {
        Self {
            frame,
            except,
            at_micros: now_micros(),
            evict: None,
        }
    }

    /// An eviction published now: every socket of presence user `user_id` on the channel
    /// leaves it and receives `frame`.
    pub(crate) fn eviction(frame: Frame, user_id: &str) -> Self {
        Self {
            frame,
            except: None,
            at_micros: now_micros(),
            evict: Some(Arc::from(user_id)),
        }
    }

    /// The wire form between servers: `"{at_micros} {except or -}\n{frame}"`, and for an
    /// eviction `"{at_micros} - !{user id in hex}\n{frame}"`. A server that does not know
    /// evictions fails to read the second form (no socket id is `- !…`) and ignores it,
    /// rather than handing the frame to every socket.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let except = self.except.as_ref().map_or("-", SocketId::as_str);
        let mut head = format!("{} {except}", self.at_micros);
        if let Some(user) = &self.evict {
            head.push_str(" !");
            for byte in user.as_bytes() {
                head.push(char::from(HEX[usize::from(byte >> 4)]));
                head.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
        head.push('\n');
        let mut out = Vec::with_capacity(head.len() + self.frame.as_bytes().len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(self.frame.as_bytes());
        out
    }

    /// Reads [`Envelope::encode`]'s form; `None` for anything else.
    pub(crate) fn decode(bytes: Bytes) -> Option<Self> {
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let head = std::str::from_utf8(&bytes[..newline]).ok()?;
        let mut parts = head.split(' ');
        let at_micros = parts.next()?.parse().ok()?;
        let except = match parts.next()? {
            "-" => None,
            id => Some(SocketId::parse(id).ok()?),
        };
        let evict = match parts.next() {
            None => None,
            Some(user) => Some(Arc::from(unhex(user.strip_prefix('!')?)?.as_str())),
        };
        if parts.next().is_some() {
            return None;
        }
        let frame = Frame::from_wire(bytes.slice(newline + 1..))?;
        Some(Self {
            frame,
            except,
            at_micros,
            evict,
        })
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex back to UTF-8 text; `None` for anything else.
fn unhex(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let bytes = text
        .as_bytes()
        .chunks(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
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
                evict: None,
            };
            let back = Envelope::decode(Bytes::from(envelope.encode()));
            let back = back.unwrap_or_else(|| unreachable!("decodes"));
            assert_eq!(back.frame, frame);
            assert_eq!(back.except, except);
            assert_eq!(back.at_micros, 1_700_000_000_000_000);
            assert_eq!(back.evict, None);
        }
        for user in ["u-41", "Ann Smith", "ünïcode {x}", ""] {
            let envelope = Envelope::eviction(frame.clone(), user);
            let wire = envelope.encode();
            let back = Envelope::decode(Bytes::from(wire));
            let back = back.unwrap_or_else(|| unreachable!("decodes"));
            assert_eq!(back.evict.as_deref(), Some(user));
            assert_eq!(back.except, None);
            assert_eq!(back.frame, frame);
        }
        assert!(Envelope::decode(Bytes::from_static(b"junk")).is_none());
        assert!(Envelope::decode(Bytes::from_static(b"1 x.y\n{}")).is_none());
        assert!(Envelope::decode(Bytes::from_static(b"1 - !4\n{}")).is_none());
        assert!(Envelope::decode(Bytes::from_static(b"1 - 41\n{}")).is_none());
        assert!(Envelope::decode(Bytes::from_static(b"1 - !41 x\n{}")).is_none());
    }
}
