//! Components: parts of an application that bring their own state, routes, metrics and
//! shutdown work — the session manager, the job runtime, channels — installed with one call,
//! [`App::with`](crate::App::with).
//!
//! A component sees the app through an [`Installer`], never the [`App`](crate::App) itself:
//! what it may add is listed there, and it cannot reach the router, the middleware chain or
//! the server. That keeps the parts below the HTTP layer free of it.

use std::any::TypeId;
use std::future::Future;

use futures_util::future::BoxFuture;
use http::Method;
use prometheus_client::collector::Collector;
use prometheus_client::registry::{Metric, Registry};

use crate::config::Config;
use crate::context::StateMap;
use crate::handler::{self, BoxedHandler, Handler};

/// Something an application installs as a whole: see [`App::with`](crate::App::with).
///
/// # Examples
///
/// ```
/// use rondo::component::{Component, Installer};
/// use rondo::{App, Config};
///
/// /// Counts the orders of a shop.
/// #[derive(Clone, Default)]
/// struct Orders(std::sync::Arc<std::sync::atomic::AtomicU64>);
///
/// impl Component for Orders {
///     fn install(self, app: &mut Installer<'_>) {
///         app.state(self.clone());
///         app.on_shutdown(|| async { /* flush what is pending */ });
///     }
/// }
///
/// let app = App::new(Config::default()).with(Orders::default());
/// ```
pub trait Component {
    /// Registers the component's state, routes, metrics and hooks.
    fn install(self, app: &mut Installer<'_>);
}

/// An async hook run during graceful shutdown, after connections have drained.
pub(crate) type Hook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// What components (and the app's own builder methods) have added that is not routing:
/// held by the app until it is built.
pub(crate) struct Parts {
    pub(crate) config: std::sync::Arc<Config>,
    pub(crate) state: StateMap,
    pub(crate) metrics: Registry,
    /// Run before `shutdown`: work that still needs what those hooks close.
    pub(crate) drain: Vec<Hook>,
    pub(crate) shutdown: Vec<Hook>,
    /// Routes added through an [`Installer`], for the app to add to its router.
    pub(crate) routes: Vec<(Method, String, BoxedHandler)>,
}

impl Parts {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            config: std::sync::Arc::new(config),
            state: StateMap::new(),
            metrics: Registry::default(),
            drain: Vec::new(),
            shutdown: Vec::new(),
            routes: Vec::new(),
        }
    }
}

/// What a [`Component`] may add to the app it is installed in.
pub struct Installer<'a> {
    pub(crate) parts: &'a mut Parts,
}

impl Installer<'_> {
    /// The app's configuration.
    pub fn config(&self) -> &Config {
        &self.parts.config
    }

    /// Registers a singleton that controllers receive as [`crate::State<T>`] (one per type;
    /// a second registration replaces the first).
    pub fn state<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.parts.state.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// The singleton of type `T`, if one is registered (for a part installed once per app).
    pub fn state_ref<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.parts
            .state
            .get(&TypeId::of::<T>())?
            .downcast_ref::<T>()
    }

    /// Adds a route (checked when the app adds it to its router, like
    /// [`App::route`](crate::App::route)).
    pub fn route<H: Handler<Args>, Args>(&mut self, method: Method, pattern: &str, handler: H) {
        self.parts
            .routes
            .push((method, pattern.to_owned(), handler::boxed(handler)));
    }

    /// Adds a metric to the app's Prometheus registry.
    pub fn register_metric(&mut self, name: &str, help: &str, metric: impl Metric) {
        self.parts.metrics.register(name, help, metric);
    }

    /// Adds a collector: code that reports values when the metrics are scraped.
    pub fn register_collector(&mut self, collector: impl Collector) {
        self.parts.metrics.register_collector(Box::new(collector));
    }

    /// Runs `hook` during graceful shutdown, after in-flight requests finished and before
    /// every [`Installer::on_shutdown`] hook: for work that still needs what those close
    /// (background jobs, which write sessions, stop here).
    pub fn on_drain<F, Fut>(&mut self, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.parts.drain.push(Box::new(move || Box::pin(hook())));
    }

    /// Runs `hook` during graceful shutdown, after in-flight requests finished and the drain
    /// hooks ran (flushing pending session commits, for one), in registration order.
    pub fn on_shutdown<F, Fut>(&mut self, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.parts.shutdown.push(Box::new(move || Box::pin(hook())));
    }
}
