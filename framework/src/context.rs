//! The request context: what the built application offers every extractor and controller —
//! its configuration, the request limits and the singletons registered as state — and
//! nothing of how requests are routed or served.
//!
//! Parts below the HTTP layer (sessions, jobs, channels) see the application only through
//! this type: an extractor receives an [`AppContext`], so a session argument can find the
//! [`SessionManager`](crate::SessionManager) without knowing the router or the server.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, HttpConfig};

/// Singletons by type, as [`crate::App::state`] registers them.
pub(crate) type StateMap = HashMap<TypeId, Box<dyn Any + Send + Sync>>;

/// Request limits the extractors and the server enforce, from `[http]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body an extractor reads (`[http] max_body_bytes`).
    pub max_body_bytes: usize,
    /// Longest an extractor waits for the whole body before answering 408
    /// (`[http] body_read_timeout`).
    pub body_read_timeout: Duration,
    /// Longest a controller may take before the client gets 503 (`[http] request_timeout`).
    pub request_timeout: Duration,
}

impl From<&HttpConfig> for Limits {
    fn from(http: &HttpConfig) -> Self {
        Self {
            max_body_bytes: http.max_body_bytes,
            body_read_timeout: http.body_read_timeout,
            request_timeout: http.request_timeout,
        }
    }
}

/// A singleton a controller argument needs from the app's state (`State<T>` needs a `T`, a
/// session its manager): checked when the app starts, so that a route asking for state that
/// was never registered is a start-up error naming the route, not a 500 at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateNeed {
    type_id: TypeId,
    type_name: &'static str,
}

impl StateNeed {
    /// The need of a `T`.
    pub fn of<T: 'static>() -> Self {
        Self {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
        }
    }

    /// The type's name, for messages.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Whether `state` holds it.
    pub(crate) fn met_by(&self, state: &StateMap) -> bool {
        state.contains_key(&self.type_id)
    }
}

/// A shared handle to the built application's configuration, limits and state; cheap to
/// clone (one `Arc`).
#[derive(Clone)]
pub struct AppContext(Arc<Inner>);

struct Inner {
    config: Arc<Config>,
    state: StateMap,
    limits: Limits,
}

impl std::fmt::Debug for AppContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppContext")
            .field("limits", &self.0.limits)
            .field("state", &self.0.state.len())
            .finish()
    }
}

impl AppContext {
    pub(crate) fn new(config: Arc<Config>, state: StateMap) -> Self {
        let limits = Limits::from(&config.http);
        Self(Arc::new(Inner {
            config,
            state,
            limits,
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The request limits.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// A clone of the singleton of type `T`, if registered.
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.state_ref::<T>().cloned()
    }

    /// The singleton of type `T`, if registered, without cloning it.
    pub fn state_ref<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.state.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }
}
