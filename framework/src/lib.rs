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
//! - [`config`]: `config.ini` (Resonance's format) into a typed [`Config`].
//! - [`server`]: accept loop, connection tasks, limits, timeouts, graceful shutdown.
//! - `lanes`: the worker threads that serve connections, one runtime each.
//! - `connections`: each connection's request-head deadline and graceful close.
//! - [`app`]: the [`App`] builder: routes, state, middleware, shutdown hooks.
//! - `routing`: method + path pattern to controller; 404, 405, HEAD.
//! - [`handler`]: async functions as controllers.
//! - [`extract`]: controller arguments ([`Path`], [`Query`], [`Json`], [`Form`], [`State`]).
//! - [`respond`]: the [`Responder`] and [`IntoResponse`] traits, [`Json`], [`Html`],
//!   [`Redirect`], negotiated [`ErrorPage`]s.
//! - [`middleware`]: code around every request.
//! - [`metrics`]: the Prometheus registry and the `/metrics` endpoint.
//! - [`scope`]: work deferred until the controller has answered.
//! - [`body`]: the one [`Body`] type of requests and responses.
//! - [`redis_pool`]: named bb8-redis pools from `[redis]`, created lazily (and one per
//!   worker thread, on that thread).
//! - [`session`]: the [`SessionManager`], [`Session`] handles, actors and stores.
//! - [`jobs`]: background [`Jobs`] on a durable Redis stream, reaching sessions safely.
//! - [`template`]: [`Templates`] loaded once at start-up, rendered by the [`Template`]
//!   responder.

pub mod app;
pub mod body;
pub mod config;
mod connections;
pub mod extract;
pub mod handler;
pub mod jobs;
mod lanes;
pub mod metrics;
pub mod middleware;
pub mod redis_pool;
pub mod respond;
mod routing;
pub mod scope;
pub mod server;
pub mod session;
pub mod template;

pub use app::{App, AppContext};
pub use body::Body;
pub use config::{Config, ConfigError, ConfigLoader};
pub use extract::{Form, Path, Query, Rejection, State};
pub use handler::Handler;
pub use jobs::{Job, JobContext, JobError, Jobs};
pub use middleware::{Middleware, Next};
pub use respond::{ErrorPage, Html, IntoResponse, Json, Redirect, RequestHead, Responder};
pub use routing::RouteError;
pub use server::{bind, serve, shutdown_signal};
pub use session::{CsrfForm, Session, SessionError, SessionManager, SessionRef};
pub use template::{Template, TemplateError, Templates};

/// Re-exported so applications name the same `http` types the framework uses.
pub use http;

/// A request as controllers and middleware see it.
pub type Request = http::Request<Body>;

/// A response as controllers and middleware build it.
pub type Response = http::Response<Body>;
