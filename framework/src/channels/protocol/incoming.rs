//! Frames from clients: one JSON object per WebSocket text message, `{"event": …, …}`.
//!
//! What pusher-js 8 actually sends (and Laravel Echo through it):
//!
//! ```text
//! {"event":"pusher:subscribe","data":{"auth":"","channel":"orders"}}
//! {"event":"pusher:subscribe","data":{"auth":"key:sig","channel_data":"{\"user_id\":7}","channel":"presence-room"}}
//! {"event":"pusher:unsubscribe","data":{"channel":"orders"}}
//! {"event":"pusher:ping","data":{}}
//! {"event":"client-typing","data":{"name":"Ana"},"channel":"private-chat.1"}
//! ```
//!
//! The quirks this parser absorbs: pusher-js sends `data` as a plain object, while the
//! protocol's general rule is a JSON-encoded string and some clients do double-encode it, so
//! both are accepted. Public subscriptions carry `"auth":""`, which means "no auth". A client
//! event's `data` is forwarded as a string: an object as its JSON text exactly as the client
//! wrote it, a string as the string itself.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::auth::{AuthError, Credentials, PresenceMember};
use super::channel::{ChannelName, ChannelNameError};
use super::socket_id::SocketId;

/// Pusher's limit on an event name, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 200;
/// Pusher's limit on an event's `data` (10 KB), for client events and published events.
pub const MAX_EVENT_DATA_BYTES: usize = 10 * 1024;

/// Size limits applied while parsing client frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Longest WebSocket message accepted at all, checked before parsing (default 32 KiB:
    /// room for [`MAX_EVENT_DATA_BYTES`] of data even when the client escaped much of it).
    pub max_frame_bytes: usize,
    /// Longest client event `data`, measured as forwarded (default [`MAX_EVENT_DATA_BYTES`]).
    pub max_data_bytes: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 32 * 1024,
            max_data_bytes: MAX_EVENT_DATA_BYTES,
        }
    }
}

/// A message from a client, parsed and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// `pusher:subscribe`: join a channel.
    Subscribe(Subscribe),
    /// `pusher:unsubscribe`: leave a channel.
    Unsubscribe {
        /// The channel to leave.
        channel: ChannelName,
    },
    /// `pusher:ping`: answer with `pusher:pong`.
    Ping,
    /// `pusher:pong`: the answer to the server's `pusher:ping`.
    Pong,
    /// `pusher:signin`: associate the connection with a user (see [`Credentials::verify_signin`]).
    Signin {
        /// `"<key>:<signature>"` over the socket id and `user_data`.
        auth: String,
        /// The JSON-encoded user, with at least an `id`.
        user_data: String,
    },
    /// A `client-` event to relay to the channel's other subscribers.
    ClientEvent(ClientEvent),
}

/// The fields of a `pusher:subscribe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// The channel to join.
    pub channel: ChannelName,
    /// The signature from the auth endpoint (`None` when absent or empty).
    pub auth: Option<String>,
    /// The signed presence member, as the JSON string that was signed.
    pub channel_data: Option<String>,
}

impl Subscribe {
    /// Checks the subscription's signature for this connection; see
    /// [`Credentials::verify_subscription`].
    pub fn authorize(
        &self,
        credentials: &Credentials,
        socket_id: &SocketId,
    ) -> Result<Option<PresenceMember>, AuthError> {
        credentials.verify_subscription(
            socket_id,
            &self.channel,
            self.auth.as_deref(),
            self.channel_data.as_deref(),
        )
    }
}

/// A client event (`client-…`). Whether the channel allows it and whether the sender is
/// subscribed are the server's checks ([`super::ChannelKind::allows_client_events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEvent {
    /// The event name, starting with `client-`.
    pub event: String,
    /// The channel to relay on.
    pub channel: ChannelName,
    /// The payload as it will be forwarded in the outgoing `data` string.
    pub data: String,
}

/// Why a client frame was refused. None of these needs to close the connection: answer with
/// [`ClientFrameError::error_frame`] and carry on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientFrameError {
    /// The message is longer than [`FrameLimits::max_frame_bytes`].
    #[error("message is {len} bytes, the limit is {max}")]
    TooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message is not JSON.
    #[error("message is not valid JSON: {0}")]
    NotJson(String),
    /// The message is JSON of the wrong shape (not an object, a duplicate key, `data` that is
    /// neither an object nor a string holding one).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A required field is missing (`event`, `channel`, `data`, `data.channel`, …).
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("field {field} must be {expected}")]
    InvalidField {
        /// The field's path.
        field: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
    /// A `pusher:` event the protocol does not define for clients, or an event that is
    /// neither `pusher:` nor `client-`.
    #[error("unsupported event {0:?}")]
    UnknownEvent(String),
    /// A client event name longer than [`MAX_EVENT_NAME_LEN`].
    #[error("event name is {len} bytes, the limit is {MAX_EVENT_NAME_LEN}")]
    EventNameTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The channel name breaks the naming rules.
    #[error(transparent)]
    InvalidChannel(#[from] ChannelNameError),
    /// A client event's `data` is longer than [`FrameLimits::max_data_bytes`].
    #[error("event data is {len} bytes, the limit is {max}")]
    DataTooLarge {
        /// Its length in bytes, as it would be forwarded.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl ClientFrameError {
    /// The `pusher:error` to send back (with a null code: these are not connection errors).
    pub fn error_frame(&self) -> super::Frame {
        super::Frame::error(&self.to_string(), None)
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    channel: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

impl ClientFrame {
    /// Parses one WebSocket text message.
    pub fn parse(text: &str, limits: &FrameLimits) -> Result<Self, ClientFrameError> {
        if text.len() > limits.max_frame_bytes {
            return Err(ClientFrameError::TooLarge {
                len: text.len(),
                max: limits.max_frame_bytes,
            });
        }
        let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
            if e.is_data() {
                ClientFrameError::Malformed(e.to_string())
            } else {
                ClientFrameError::NotJson(e.to_string())
            }
        })?;
        // Derived struct deserializers also accept arrays (`["pusher:ping"]`): refuse them.
        if !text.trim_start().starts_with('{') {
            return Err(ClientFrameError::Malformed(
                "expected a JSON object".to_owned(),
            ));
        }
        let event = envelope
            .event
            .ok_or(ClientFrameError::MissingField("event"))?;
        let event = decode_string(event, "event")?;
        match event.as_str() {
            "pusher:subscribe" => {
                let mut data = data_object(envelope.data)?;
                let channel = take_channel(&mut data, "data.channel")?;
                let auth = take_string(&mut data, "auth", "data.auth")?.filter(|a| !a.is_empty());
                let channel_data = take_string(&mut data, "channel_data", "data.channel_data")?
                    .filter(|d| !d.is_empty());
                Ok(Self::Subscribe(Subscribe {
                    channel,
                    auth,
                    channel_data,
                }))
            }
            "pusher:unsubscribe" => {
                let channel = take_channel(&mut data_object(envelope.data)?, "data.channel")?;
                Ok(Self::Unsubscribe { channel })
            }
            "pusher:ping" => Ok(Self::Ping),
            "pusher:pong" => Ok(Self::Pong),
            "pusher:signin" => {
                let mut data = data_object(envelope.data)?;
                let auth = take_string(&mut data, "auth", "data.auth")?;
                let user_data = take_string(&mut data, "user_data", "data.user_data")?;
                Ok(Self::Signin {
                    auth: auth.ok_or(ClientFrameError::MissingField("data.auth"))?,
                    user_data: user_data.ok_or(ClientFrameError::MissingField("data.user_data"))?,
                })
            }
            name if name.starts_with("client-") => {
                if name.len() > MAX_EVENT_NAME_LEN {
                    return Err(ClientFrameError::EventNameTooLong { len: name.len() });
                }
                let channel = envelope
                    .channel
                    .ok_or(ClientFrameError::MissingField("channel"))?;
                let channel = ChannelName::new(decode_string(channel, "channel")?)?;
                let data = forwarded_data(envelope.data)?;
                if data.len() > limits.max_data_bytes {
                    return Err(ClientFrameError::DataTooLarge {
                        len: data.len(),
                        max: limits.max_data_bytes,
                    });
                }
                Ok(Self::ClientEvent(ClientEvent {
                    event,
                    channel,
                    data,
                }))
            }
            _ => {
                let mut shown = event;
                if let Some((cut, _)) = shown.char_indices().nth(MAX_EVENT_NAME_LEN) {
                    shown.truncate(cut);
                }
                Err(ClientFrameError::UnknownEvent(shown))
            }
        }
    }
}

fn decode_string(raw: &RawValue, field: &'static str) -> Result<String, ClientFrameError> {
    serde_json::from_str(raw.get()).map_err(|_| ClientFrameError::InvalidField {
        field,
        expected: "a string",
    })
}

/// `data` as an object, whether sent as one or as a JSON string encoding one.
fn data_object(raw: Option<&RawValue>) -> Result<Map<String, Value>, ClientFrameError> {
    let raw = raw.ok_or(ClientFrameError::MissingField("data"))?;
    let not_object = || ClientFrameError::InvalidField {
        field: "data",
        expected: "an object",
    };
    let value: Value = serde_json::from_str(raw.get()).map_err(|_| not_object())?;
    let value = match value {
        Value::String(encoded) => serde_json::from_str(&encoded).map_err(|_| not_object())?,
        other => other,
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(not_object()),
    }
}

/// An optional string member of `data` (`null` counts as absent).
fn take_string(
    data: &mut Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<String>, ClientFrameError> {
    match data.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ClientFrameError::InvalidField {
            field,
            expected: "a string",
        }),
    }
}

fn take_channel(
    data: &mut Map<String, Value>,
    field: &'static str,
) -> Result<ChannelName, ClientFrameError> {
    let name = take_string(data, "channel", field)?.ok_or(ClientFrameError::MissingField(field))?;
    Ok(ChannelName::new(name)?)
}

/// The text a client event's `data` is forwarded as: a string as itself, anything else as the
/// client's own JSON text; absent or `null` data is forwarded as `null`, which pusher-js
/// decodes back to `null` (pusher-js omits `data` when `trigger` is called without it).
fn forwarded_data(raw: Option<&RawValue>) -> Result<String, ClientFrameError> {
    match raw {
        None => Ok("null".to_owned()),
        Some(raw) if raw.get().starts_with('"') => decode_string(raw, "data"),
        Some(raw) => Ok(raw.get().to_owned()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
