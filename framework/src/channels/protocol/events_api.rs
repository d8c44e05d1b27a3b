//! Bodies of the HTTP events API, after [`super::verify_request`] has authenticated them.
//!
//! `POST /apps/{app_id}/events` publishes one event to one or more channels:
//!
//! ```text
//! {"name":"order.shipped","channels":["private-orders.1"],"data":"{\"id\":5}","socket_id":"123.456"}
//! ```
//!
//! (`"channel":"…"` may replace `channels`), and `POST /apps/{app_id}/batch_events` publishes
//! up to ten, each to a single channel: `{"batch":[{"name":…,"channel":…,"data":…}, …]}`.
//! `data` is a string the server forwards verbatim; the libraries JSON-encode objects before
//! sending. An object is accepted too and forwarded as its JSON text. `socket_id` names the
//! connection that caused the event, which must not receive it (Laravel's `toOthers()`).
//!
//! Pusher's limits are enforced: data up to 10 KB (413 beyond), at most 100 channels per
//! event, at most 10 events per batch, event names up to 200 bytes, valid channel names.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::channel::{ChannelKind, ChannelName, ChannelNameError};
use super::incoming::{MAX_EVENT_DATA_BYTES, MAX_EVENT_NAME_LEN};
use super::socket_id::{SocketId, SocketIdError};

/// Pusher's limit on the channels of one published event.
pub const MAX_CHANNELS_PER_EVENT: usize = 100;
/// Pusher's limit on the events of one batch.
pub const MAX_BATCH_EVENTS: usize = 10;

/// The limits applied to published events (Pusher's by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventLimits {
    /// Longest `data`, in bytes.
    pub max_data_bytes: usize,
    /// Most channels in one event.
    pub max_channels: usize,
    /// Most events in one batch.
    pub max_batch_events: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_data_bytes: MAX_EVENT_DATA_BYTES,
            max_channels: MAX_CHANNELS_PER_EVENT,
            max_batch_events: MAX_BATCH_EVENTS,
        }
    }
}

/// One event to deliver, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedEvent {
    /// The event name.
    pub name: String,
    /// The channels to deliver to, without duplicates, in the order given.
    pub channels: Vec<ChannelName>,
    /// The `data` string to forward verbatim (see [`super::Frame::event`]).
    pub data: String,
    /// The connection to leave out, if any.
    pub socket_id: Option<SocketId>,
    /// The `info` attributes requested in the response (e.g. `user_count`), not interpreted here.
    pub info: Option<String>,
}

/// Why a published event was refused; the message is meant for the response body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventsApiError {
    /// The body is not JSON, or JSON of the wrong shape.
    #[error("invalid request body: {0}")]
    InvalidJson(String),
    /// A required field is absent or null.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// The event name is empty.
    #[error("event name is empty")]
    EmptyEventName,
    /// The event name is longer than [`MAX_EVENT_NAME_LEN`] bytes.
    #[error("event name is {len} bytes, the limit is {MAX_EVENT_NAME_LEN}")]
    EventNameTooLong {
        /// Its length.
        len: usize,
    },
    /// The event name starts with `pusher:` or `pusher_internal:`, which clients interpret as
    /// protocol events (a forged `pusher_internal:member_added` would corrupt member lists).
    #[error("event names starting with pusher: or pusher_internal: are reserved")]
    ReservedEventName,
    /// Both `channel` and `channels` were given.
    #[error("give either channel or channels, not both")]
    ChannelAndChannels,
    /// `channels` is empty.
    #[error("channels must name at least one channel")]
    NoChannels,
    /// More channels than the limit.
    #[error("{count} channels given, the limit is {max}")]
    TooManyChannels {
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A channel name breaks the naming rules.
    #[error("invalid channel {channel:?}: {error}")]
    InvalidChannel {
        /// The name (cut to 200 characters).
        channel: String,
        /// What is wrong with it.
        error: ChannelNameError,
    },
    /// An encrypted channel among several: each encrypted channel needs its own ciphertext.
    #[error("an event for an encrypted channel must be sent to that channel alone")]
    EncryptedMultiChannel,
    /// `data` is larger than the limit (413).
    #[error("event data is {len} bytes, the limit is {max}")]
    DataTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `socket_id` is not a socket id.
    #[error(transparent)]
    InvalidSocketId(#[from] SocketIdError),
    /// The batch is empty.
    #[error("batch is empty")]
    EmptyBatch,
    /// The batch has more events than the limit.
    #[error("batch has {count} events, the limit is {max}")]
    BatchTooLarge {
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// One event of a batch is invalid.
    #[error("batch event {index}: {error}")]
    InBatch {
        /// Its position, from 0.
        index: usize,
        /// What is wrong with it.
        error: Box<EventsApiError>,
    },
}

impl EventsApiError {
    /// The HTTP status to answer with: 413 for oversized data, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Self::DataTooLarge { .. } => 413,
            Self::InBatch { error, .. } => error.status(),
            _ => 400,
        }
    }
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    name: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    channels: Option<Vec<String>>,
    channel: Option<String>,
    socket_id: Option<String>,
    info: Option<String>,
}

#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow)]
    batch: Option<Vec<RawEvent<'a>>>,
}

/// Parses and validates the body of `POST /apps/{app_id}/events`.
pub fn parse_trigger(body: &[u8], limits: &EventLimits) -> Result<PublishedEvent, EventsApiError> {
    let raw: RawEvent<'_> =
        serde_json::from_slice(body).map_err(|e| EventsApiError::InvalidJson(e.to_string()))?;
    validate(raw, limits, true)
}

/// Parses and validates the body of `POST /apps/{app_id}/batch_events`. Each event has exactly
/// one channel; any invalid event refuses the whole batch, naming its index.
pub fn parse_batch(
    body: &[u8],
    limits: &EventLimits,
) -> Result<Vec<PublishedEvent>, EventsApiError> {
    let raw: RawBatch<'_> =
        serde_json::from_slice(body).map_err(|e| EventsApiError::InvalidJson(e.to_string()))?;
    let batch = raw.batch.ok_or(EventsApiError::MissingField("batch"))?;
    if batch.is_empty() {
        return Err(EventsApiError::EmptyBatch);
    }
    if batch.len() > limits.max_batch_events {
        return Err(EventsApiError::BatchTooLarge {
            count: batch.len(),
            max: limits.max_batch_events,
        });
    }
    batch
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            validate(raw, limits, false).map_err(|error| EventsApiError::InBatch {
                index,
                error: Box::new(error),
            })
        })
        .collect()
}

fn validate(
    raw: RawEvent<'_>,
    limits: &EventLimits,
    many_channels: bool,
) -> Result<PublishedEvent, EventsApiError> {
    let name = raw.name.ok_or(EventsApiError::MissingField("name"))?;
    if name.is_empty() {
        return Err(EventsApiError::EmptyEventName);
    }
    if name.len() > MAX_EVENT_NAME_LEN {
        return Err(EventsApiError::EventNameTooLong { len: name.len() });
    }
    if name.starts_with("pusher:") || name.starts_with("pusher_internal:") {
        return Err(EventsApiError::ReservedEventName);
    }
    let names = match (raw.channel, raw.channels) {
        (Some(_), Some(_)) if many_channels => return Err(EventsApiError::ChannelAndChannels),
        (Some(channel), _) => vec![channel],
        (None, Some(channels)) if many_channels => channels,
        (None, _) => {
            return Err(EventsApiError::MissingField(if many_channels {
                "channels"
            } else {
                "channel"
            }))
        }
    };
    if names.is_empty() {
        return Err(EventsApiError::NoChannels);
    }
    if names.len() > limits.max_channels {
        return Err(EventsApiError::TooManyChannels {
            count: names.len(),
            max: limits.max_channels,
        });
    }
    let mut channels: Vec<ChannelName> = Vec::with_capacity(names.len());
    for name in names {
        let channel =
            ChannelName::new(name.as_str()).map_err(|error| EventsApiError::InvalidChannel {
                channel: name.chars().take(200).collect(),
                error,
            })?;
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    if channels.len() > 1 && channels.iter().any(|c| c.kind() == ChannelKind::Encrypted) {
        return Err(EventsApiError::EncryptedMultiChannel);
    }
    let data = match raw.data {
        None => return Err(EventsApiError::MissingField("data")),
        Some(raw) if raw.get().starts_with('"') => serde_json::from_str::<String>(raw.get())
            .map_err(|e| EventsApiError::InvalidJson(e.to_string()))?,
        Some(raw) => raw.get().to_owned(),
    };
    if data.len() > limits.max_data_bytes {
        return Err(EventsApiError::DataTooLarge {
            len: data.len(),
            max: limits.max_data_bytes,
        });
    }
    let socket_id = raw.socket_id.map(SocketId::try_from).transpose()?;
    Ok(PublishedEvent {
        name,
        channels,
        data,
        socket_id,
        info: raw.info,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
