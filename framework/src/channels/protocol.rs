//! The Pusher Channels protocol (version 7), as pure functions: no sockets, no storage.
//!
//! Rondo speaks Pusher's protocol so that the clients people already use (pusher-js 8, and
//! Laravel Echo 2 on top of it) connect unchanged, and so that the official server libraries
//! can publish through the HTTP events API. This module is the whole wire format and its
//! security checks; the socket loop, the channel registry and Redis fan-out build on it.
//!
//! # The protocol in brief
//!
//! - A client opens a WebSocket to `/app/{key}?protocol=7&client=js&version=…`
//!   ([`ConnectParams`]) and receives `pusher:connection_established` with its socket id
//!   ([`SocketId`]) and an activity timeout ([`Frame::connection_established`]).
//! - Every message is a JSON object with an `event` name ([`ClientFrame`] parses what clients
//!   send, [`Frame`] builds what the server sends). Server-sent `data` is always a string,
//!   JSON-encoded for the protocol's own events ("double encoding").
//! - Channels are named, and the name's prefix is the access policy ([`ChannelKind`]): public,
//!   `private-`, `presence-` (with a member list) and `private-encrypted-`.
//! - Joining a non-public channel needs an `auth` signature that the *application* issues
//!   from its auth endpoint (HMAC-SHA256 over the socket id and channel name with the app
//!   secret, [`Credentials::authorize_channel`]); the server only verifies it
//!   ([`Credentials::verify_subscription`]).
//! - Liveness is `pusher:ping` / `pusher:pong` both ways; errors carry the codes of
//!   [`ErrorCode`], whose range tells clients whether to reconnect.
//! - Publishers POST events to `/apps/{app_id}/events`, authenticated by a signed query string
//!   ([`verify_request`]), with bodies parsed by [`parse_trigger`] and [`parse_batch`].
//!
//! # A subscription, end to end
//!
//! ```
//! use rondo::channels::protocol::*;
//!
//! let app = Credentials::new("app-key", "app-secret");
//! let socket_id = SocketId::from_parts(1, 42);
//! let hello = Frame::connection_established(&socket_id, DEFAULT_ACTIVITY_TIMEOUT_SECS);
//! assert!(hello.as_bytes().starts_with(br#"{"event":"pusher:connection_established""#));
//!
//! // The application's auth endpoint signs the subscription…
//! let channel = ChannelName::new("private-orders.7")?;
//! let signed = app.authorize_channel(&socket_id, &channel);
//!
//! // …the client sends it in pusher:subscribe, and the server checks it.
//! let text = format!(
//!     r#"{{"event":"pusher:subscribe","data":{{"auth":"{}","channel":"private-orders.7"}}}}"#,
//!     signed.auth
//! );
//! let ClientFrame::Subscribe(subscribe) = ClientFrame::parse(&text, &FrameLimits::default())? else {
//!     unreachable!()
//! };
//! assert_eq!(subscribe.authorize(&app, &socket_id), Ok(None));
//! let reply = Frame::subscription_succeeded(&subscribe.channel);
//! assert_eq!(
//!     reply.as_bytes(),
//!     br#"{"event":"pusher_internal:subscription_succeeded","channel":"private-orders.7","data":"{}"}"#
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! - `channel`: [`ChannelName`] and [`ChannelKind`].
//! - `socket_id`: [`SocketId`].
//! - `codes`: [`ErrorCode`] and the connection URL's [`ConnectParams`].
//! - `incoming`: [`ClientFrame`], frames from clients.
//! - `outgoing`: [`Frame`], frames to clients.
//! - `auth`: [`Credentials`], channel authorization and user sign-in signatures, presence
//!   [`PresenceMember`]s.
//! - `rest`: HTTP API request signatures.
//! - `events_api`: HTTP events API bodies.
//! - `query`: the query-string decoding the signatures depend on.

mod auth;
mod channel;
mod codes;
mod events_api;
mod incoming;
mod outgoing;
mod query;
mod rest;
mod socket_id;

pub use auth::{
    encryption_shared_secret, AuthError, ChannelAuthorization, ChannelDataError, Credentials,
    PresenceMember, MAX_CHANNEL_DATA_BYTES, MAX_USER_ID_LEN,
};
pub use channel::{
    validate_channel_name, ChannelKind, ChannelName, ChannelNameError, MAX_CHANNEL_NAME_LEN,
};
pub use codes::{ConnectParams, ErrorClass, ErrorCode, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
pub use events_api::{
    parse_batch, parse_trigger, EventLimits, EventsApiError, PublishedEvent, MAX_BATCH_EVENTS,
    MAX_CHANNELS_PER_EVENT,
};
pub use incoming::{
    ClientEvent, ClientFrame, ClientFrameError, FrameLimits, Subscribe, MAX_EVENT_DATA_BYTES,
    MAX_EVENT_NAME_LEN,
};
pub use outgoing::{Frame, DEFAULT_ACTIVITY_TIMEOUT_SECS};
pub use query::{form_decode, parse_query, percent_encode, QueryError};
pub use rest::{
    body_md5, sign_request, verify_request, RequestAuthError, SignedRequest, AUTH_VERSION,
    MAX_TIMESTAMP_SKEW_SECS,
};
pub use socket_id::{is_valid_socket_id, SocketId, SocketIdError};
