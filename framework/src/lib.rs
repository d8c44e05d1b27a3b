//! Rondo: a session-centred web framework on tokio and hyper, configured from one
//! `config.ini`.
//!
//! Every request runs in its own task, on one of the server's worker threads (each with a
//! single-threaded runtime of its own, `[http] workers`); controllers are async functions whose arguments are
//! extracted from the request and whose return value is a [`Responder`]. The session manager
//! keeps session data in Redis (or in memory), takes a pooled connection only when a session
//! is touched, serializes values with MessagePack and persists changes after the response has
//! been sent.
//!
//! # Layout
//!
//! From the bottom up: each part uses only those above it in this list.
//!
//! - [`config`]: `config.ini` (Resonance's format) into a typed [`Config`].
//! - [`body`]: the one [`Body`] type of requests and responses.
//! - [`respond`]: the [`Responder`] and [`IntoResponse`] traits, [`Json`], [`Html`],
//!   [`Redirect`], negotiated [`ErrorPage`]s, server-sent events ([`Sse`]), and work that
//!   finishes a response ([`respond::defer`]).
//! - [`context`]: what every controller sees of the app ([`AppContext`]: configuration,
//!   limits, state).
//! - [`metrics`]: the Prometheus registry and the `/metrics` endpoint.
//! - `routing`: method + path pattern to a route; 404, 405, HEAD; percent-decoding.
//! - [`middleware`]: code around every request.
//! - [`redis`]: the one owner of Redis: the named pools of `[redis]`, their metrics, pub/sub.
//! - [`extract`]: controller arguments ([`Path`], [`Query`], [`Json`], [`Form`], [`State`]).
//! - [`template`]: [`Templates`] loaded once at start-up, rendered by the [`Template`]
//!   responder.
//! - [`handler`]: async functions as controllers; `#[debug_handler]` (feature `macros`, on by
//!   default) for compile errors that name the rule a controller broke.
//! - [`routes`]: groups of routes with middleware of their own ([`App::nest`], [`App::merge`]).
//! - [`static_files`]: a directory served as a route ([`StaticFiles`]): ranges, validators,
//!   precompressed variants, confined to the directory.
//! - [`component`]: parts an app installs whole ([`App::with`]).
//! - [`session`]: the [`SessionManager`], [`Session`] handles, actors and stores.
//! - [`jobs`]: background [`Jobs`] on a durable Redis stream, reaching sessions safely.
//! - [`signed`]: signed temporary links ([`SignedUrls`], the [`Signed`](signed::Signed) guard).
//! - [`links`]: invitations with a quota, a start time and an expiry ([`Links`](links::Links)).
//! - [`files`]: [`Multipart`](files::Multipart) uploads and [`TempFiles`](files::TempFiles).
//! - `livekit` (feature `livekit`): LiveKit room tokens from `[livekit]`.
//! - [`channels`]: real-time channels speaking the Pusher protocol ([`channels::Channels`]):
//!   sockets, private and presence channels authorized by the session, events across
//!   servers through Redis.
//! - [`dispatch`]: the request pipeline of a built app ([`Service`]).
//! - [`app`]: the [`App`] builder: routes, state, middleware, components, hooks.
//! - `connections`: each connection's request-head deadline and graceful close, upgraded
//!   connections' included.
//! - [`websocket`]: HTTP/1.1 upgrades to WebSocket ([`websocket::WebSocketUpgrade`]),
//!   origin checks, limits, close 1001 at shutdown.
//! - `lanes`: the worker threads that serve connections, one runtime each.
//! - [`logging`]: logs on by default (`[app] log_level`, `log_format`, `RUST_LOG`).
//! - [`server`]: accept loop, connection tasks, limits, timeouts, graceful shutdown.
//! - [`testing`]: requests to an app in-process, with a cookie jar, for tests.

pub mod app;
pub mod body;
pub mod channels;
pub mod component;
pub mod config;
mod connections;
pub mod context;
pub mod dispatch;
pub mod extract;
pub mod files;
pub mod handler;
pub mod jobs;
mod lanes;
pub mod links;
#[cfg(feature = "livekit")]
pub mod livekit;
pub mod logging;
pub mod metrics;
pub mod middleware;
pub mod redis;
pub mod respond;
pub mod routes;
mod routing;
pub mod server;
pub mod session;
pub mod signed;
pub mod static_files;
pub mod template;
pub mod testing;
pub mod websocket;

pub use app::{App, ShutdownHooks, StartError};
pub use body::{Body, BoxError, Request, Response};
/// Re-exported: the bytes type of bodies, and what [`Body`]'s `Bytes` extractor gives.
pub use bytes::Bytes;
pub use component::Component;
pub use config::{Config, ConfigError, ConfigLoader};
pub use context::AppContext;
pub use dispatch::Service;
pub use extract::{Form, Path, Query, Rejection, State};
/// What `#[debug_handler]` expands to; not an API.
#[doc(hidden)]
pub use handler::checks as __private;
pub use handler::Handler;
pub use jobs::{Job, JobContext, JobError, Jobs};
pub use middleware::{Middleware, Next};
pub use respond::{ErrorPage, Html, IntoResponse, Json, Redirect, RequestHead, Responder, Sse};
#[cfg(feature = "macros")]
pub use rondo_macros::debug_handler;
pub use routes::Routes;
pub use routing::RouteError;
pub use server::{bind, serve, shutdown_signal};
pub use session::{CsrfForm, Session, SessionError, SessionManager, SessionRef};
pub use signed::SignedUrls;
pub use static_files::StaticFiles;
pub use template::{Template, TemplateError, Templates};

/// Re-exported so applications name the same `http` types the framework uses.
pub use http;
