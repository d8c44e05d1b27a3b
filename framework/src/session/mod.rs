//! Sessions: data tied to a browser through a cookie, stored in Redis or in memory.
//!
//! The flow is Resonance's *start -> modify -> persist*, automated: a controller takes a
//! [`Session`] argument (lazy: nothing is read until the first `get`), changes it, and the
//! framework sets the cookie and persists the change after the response has been sent.
//! [`SessionManager::start`] and [`SessionManager::persist_session`] do the same steps by
//! hand, and [`SessionManager::open`] reaches a known session from background work.
//!
//! Underneath, each live session is owned by one actor on this node, which serves reads
//! from memory and commits versioned deltas to the [`store`]. Sessions know nothing of the
//! server: a request reaches them through the extractors in `request` and the narrow
//! [`AppContext`](crate::AppContext).
//!
//! # Layout
//!
//! - `manager`: [`SessionManager`], the component an app installs.
//! - `handle/`: [`Session`], what controllers and jobs use: its API, the MessagePack codec,
//!   the lazy first touch, the finish of a request (cookie, persist), flash values and CSRF
//!   tokens.
//! - `actor/`: one actor per live session on this node, and the registry that finds them.
//! - `settings`, `expiry`: `[session]` as the layer uses it; every rule about how long a
//!   session lives is in `expiry`.
//! - `cookie`, `id`: the cookie, ids and references.
//! - `tracking/`: Redis client-side caching, so that warm reads send nothing to Redis.
//! - `stats`: the counters behind the metrics.
//! - [`store`]: where records live (Redis, memory), knowing nothing of actors or HTTP.
//! - `request`: the session as a controller argument, and [`CsrfForm`].

mod actor;
mod cookie;
mod error;
mod expiry;
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod id;
mod manager;
mod request;
mod settings;
mod stats;
pub mod store;
mod tracking;

pub use error::SessionError;
pub use handle::Session;
pub use id::{SessionId, SessionRef};
pub use manager::SessionManager;
pub use request::{CsrfForm, CsrfRejection};
pub use store::{Backend, StoreKey};
