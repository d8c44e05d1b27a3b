//! Real-time channels: WebSocket clients speaking the Pusher Channels protocol (version 7),
//! so that pusher-js 8 and Laravel Echo 2 connect unchanged, with private and presence
//! channels authorized by the session on the server that owns it, and events published
//! from controllers, jobs, or Pusher's HTTP API, on any number of servers.
//!
//! Install [`Channels`] ([`Channels::builder`], then [`App::with`](crate::App::with)); it
//! serves, under `[channels]`:
//!
//! - `GET {path}/{key}` (`/app/{key}`): the sockets;
//! - `POST {auth_path}` (`/broadcasting/auth`): channel authorization by the app's rules,
//!   from the request's session;
//! - `POST /apps/{app_id}/events` and `/batch_events`: Pusher's HTTP events API.
//!
//! # Layout
//!
//! - [`protocol`]: the wire format, signatures and error codes, as pure functions.
//! - `socket`: one connection's loop (subscriptions, pings, client events, limits).
//! - `hub`: this server's sockets by channel; each event is serialized once and shared.
//! - `bus`: how events reach every server's hub: in memory (`memory_bus`), or through Redis pub/sub
//!   (`redis_bus`), behind one trait so both share the fan-out code.
//! - `presence`: who is on each presence channel, in memory or in Redis with heartbeats
//!   (`redis_presence`).
//! - [`rules`]: the app's channel rules; `auth`: the authorization endpoint.
//! - `http_api`: the HTTP events API.
//! - `handle`: [`Channels`] itself, its builder, and broadcasting from Rust; `component`:
//!   how it joins an app (state, metrics, routes).
//! - `metrics`: what `/metrics` shows of them.

mod auth;
mod bus;
mod component;
mod handle;
mod http_api;
mod hub;
mod memory_bus;
mod metrics;
mod presence;
pub mod protocol;
mod redis_bus;
mod redis_presence;
pub mod rules;
mod socket;

pub use handle::{Channels, ChannelsBuilder};
pub use protocol::PresenceMember;
pub use rules::{ChannelParams, Decision, IntoAllow, IntoMember};

use http::StatusCode;

use crate::body::Response;
use crate::respond::{ErrorPage, RequestHead, Responder};

/// Why a broadcast (or the channels' start) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// An invalid channel or event name, socket id, or data (400).
    #[error("{0}")]
    Invalid(String),
    /// Redis could not be reached (503).
    #[error("channels unavailable: {0}")]
    Unavailable(String),
}

impl Responder for ChannelError {
    fn respond(self, head: &RequestHead) -> Response {
        let status = match self {
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ErrorPage::new(status, self.to_string()).respond(head)
    }
}
