//! Frames to clients, serialized once into shareable bytes.
//!
//! Every frame is `{"event":…,"channel":…,"data":…}` where `data` is always a *string*: for
//! the server's own events a JSON object encoded as text (the protocol's "double encoding"),
//! for published events the publisher's string verbatim. pusher-js tries `JSON.parse` on
//! every string `data` and keeps the string when that fails, so both kinds arrive right.
//!
//! A [`Frame`] holds its finished JSON text in shared bytes already known to be UTF-8 (the
//! WebSocket text type): an event published to a channel with ten thousand subscribers is
//! serialized once, each socket gets a reference-counted clone, not a copy, and no socket
//! checks the text again.

use std::fmt::Write as _;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::auth::PresenceMember;
use super::channel::ChannelName;
use super::codes::ErrorCode;
use super::incoming::ClientEvent;
use super::socket_id::SocketId;

/// The activity timeout pusher-js uses by default, and the protocol's recommendation, in
/// seconds: a client pings after this long without hearing from the server.
pub const DEFAULT_ACTIVITY_TIMEOUT_SECS: u32 = 120;

/// One finished message for clients: UTF-8 JSON text, cheap to clone and share.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame(Utf8Bytes);

impl Frame {
    /// `pusher:connection_established`, the first frame on every connection. pusher-js rejects
    /// the handshake when `activity_timeout` is 0, so it is sent as at least 1.
    pub fn connection_established(socket_id: &SocketId, activity_timeout_secs: u32) -> Self {
        let mut data = String::from("{\"socket_id\":");
        push_json_str(&mut data, socket_id.as_str());
        let _ = write!(
            data,
            ",\"activity_timeout\":{}}}",
            activity_timeout_secs.max(1)
        );
        Self::build("pusher:connection_established", None, &data, None)
    }

    /// `pusher:error` with `{"message":…,"code":…}`; `code` is `null` for errors outside the
    /// protocol's table (a malformed frame, a refused client event).
    pub fn error(message: &str, code: Option<ErrorCode>) -> Self {
        let mut data = String::from("{\"message\":");
        push_json_str(&mut data, message);
        match code {
            Some(code) => {
                let _ = write!(data, ",\"code\":{}}}", code.code());
            }
            None => data.push_str(",\"code\":null}"),
        }
        Self::build("pusher:error", None, &data, None)
    }

    /// `pusher:error` for a protocol error code, with the protocol's message. Since protocol
    /// 6 a closing error is told by the WebSocket close code (same number, message as reason);
    /// send this frame for the codes that do not close, such as 4301.
    pub fn error_code(code: ErrorCode) -> Self {
        Self::error(code.message(), Some(code))
    }

    /// `pusher:ping`, the server's liveness check; the client answers `pusher:pong`.
    pub fn ping() -> Self {
        Self::build("pusher:ping", None, "{}", None)
    }

    /// `pusher:pong`, the answer to a client's `pusher:ping`.
    pub fn pong() -> Self {
        Self::build("pusher:pong", None, "{}", None)
    }

    /// `pusher_internal:subscription_succeeded` for a public, private or encrypted channel.
    pub fn subscription_succeeded(channel: &ChannelName) -> Self {
        Self::build(
            "pusher_internal:subscription_succeeded",
            Some(channel),
            "{}",
            None,
        )
    }

    /// `pusher_internal:subscription_succeeded` for a presence channel, listing its members:
    /// `{"presence":{"ids":[…],"hash":{id: info},"count":n}}`. A user present through several
    /// connections appears once (the first occurrence's info wins).
    pub fn presence_subscription_succeeded<'a>(
        channel: &ChannelName,
        members: impl IntoIterator<Item = &'a PresenceMember>,
    ) -> Self {
        let mut ids = Vec::new();
        let mut hash = Map::new();
        for member in members {
            if !hash.contains_key(&member.user_id) {
                ids.push(Value::String(member.user_id.clone()));
                hash.insert(
                    member.user_id.clone(),
                    member.user_info.clone().unwrap_or(Value::Null),
                );
            }
        }
        let mut presence = Map::new();
        presence.insert("count".into(), Value::from(ids.len()));
        presence.insert("ids".into(), Value::Array(ids));
        presence.insert("hash".into(), Value::Object(hash));
        let mut data = Map::new();
        data.insert("presence".into(), Value::Object(presence));
        Self::build(
            "pusher_internal:subscription_succeeded",
            Some(channel),
            &Value::Object(data).to_string(),
            None,
        )
    }

    /// `pusher_internal:member_added`, to the other subscribers when a user first joins.
    pub fn member_added(channel: &ChannelName, member: &PresenceMember) -> Self {
        Self::build(
            "pusher_internal:member_added",
            Some(channel),
            &member.to_channel_data(),
            None,
        )
    }

    /// `pusher_internal:member_removed`, when a user's last connection leaves the channel.
    pub fn member_removed(channel: &ChannelName, user_id: &str) -> Self {
        let mut data = String::from("{\"user_id\":");
        push_json_str(&mut data, user_id);
        data.push('}');
        Self::build("pusher_internal:member_removed", Some(channel), &data, None)
    }

    /// What a socket removed from a channel (`Channels::remove_user`) is told, then and at
    /// any later try to join it: `pusher:subscription_error` with type `Removed` and status
    /// 403.
    pub fn removed(channel: &ChannelName) -> Self {
        Self::subscription_error(
            channel,
            "Removed",
            "you were removed from this channel",
            403,
        )
    }

    /// `pusher:subscription_error` on a channel, the shape pusher-js emits itself when its
    /// auth request fails: `{"type":…,"error":…,"status":…}`. Laravel Echo's `.error()`
    /// callback receives it. Use type `"AuthError"` and status 401 for refused signatures.
    pub fn subscription_error(
        channel: &ChannelName,
        error_type: &str,
        error: &str,
        status: u16,
    ) -> Self {
        let mut data = String::from("{\"type\":");
        push_json_str(&mut data, error_type);
        data.push_str(",\"error\":");
        push_json_str(&mut data, error);
        let _ = write!(data, ",\"status\":{status}}}");
        Self::build("pusher:subscription_error", Some(channel), &data, None)
    }

    /// `pusher_internal:subscription_count`, the channel's number of connections (pusher-js
    /// emits `pusher:subscription_count`).
    pub fn subscription_count(channel: &ChannelName, count: u64) -> Self {
        let data = format!("{{\"subscription_count\":{count}}}");
        Self::build(
            "pusher_internal:subscription_count",
            Some(channel),
            &data,
            None,
        )
    }

    /// `pusher:signin_success`, echoing the signed `user_data`.
    pub fn signin_success(user_data: &str) -> Self {
        let mut data = String::from("{\"user_data\":");
        push_json_str(&mut data, user_data);
        data.push('}');
        Self::build("pusher:signin_success", None, &data, None)
    }

    /// A channel event carrying `data` verbatim (the publisher's string).
    pub fn event(event: &str, channel: &ChannelName, data: &str) -> Self {
        Self::build(event, Some(channel), data, None)
    }

    /// A client event relayed to the channel's other subscribers; on presence channels pass
    /// the sender's `user_id`, which Pusher adds so receivers know who sent it.
    pub fn client_event(event: &ClientEvent, user_id: Option<&str>) -> Self {
        Self::build(&event.event, Some(&event.channel), &event.data, user_id)
    }

    /// The JSON text as bytes (always valid UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The JSON text as shareable bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0.into()
    }

    /// The JSON text as a WebSocket text payload (shared, not copied).
    pub fn into_text(self) -> Utf8Bytes {
        self.0
    }

    /// A frame built elsewhere (another server, through Redis), checked to be UTF-8. The
    /// JSON itself is trusted: it was built by [`Frame`] on a server of this app.
    pub fn from_wire(bytes: Bytes) -> Option<Self> {
        Utf8Bytes::try_from(bytes).ok().map(Self)
    }

    fn build(
        event: &str,
        channel: Option<&ChannelName>,
        data: &str,
        user_id: Option<&str>,
    ) -> Self {
        let mut out = String::with_capacity(40 + event.len() + data.len() + data.len() / 8);
        out.push_str("{\"event\":");
        push_json_str(&mut out, event);
        if let Some(channel) = channel {
            out.push_str(",\"channel\":");
            push_json_str(&mut out, channel.as_str());
        }
        out.push_str(",\"data\":");
        push_json_str(&mut out, data);
        if let Some(user_id) = user_id {
            out.push_str(",\"user_id\":");
            push_json_str(&mut out, user_id);
        }
        out.push('}');
        Self(Utf8Bytes::from(out))
    }
}

impl From<Frame> for Bytes {
    fn from(frame: Frame) -> Self {
        frame.0.into()
    }
}

/// Appends `s` as a JSON string literal: quotes, backslashes and control characters escaped,
/// everything else (including non-ASCII) copied as is.
pub(super) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{08}' => "\\b",
            '\u{0c}' => "\\f",
            c if c < ' ' => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push_str(escape);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
