//! The application builder: routes, singletons (state), middleware, components and
//! shutdown hooks, gathered once at start-up and turned into a [`Service`] that every
//! connection shares.

use std::sync::Arc;

use http::Method;
use prometheus_client::collector::Collector;
use prometheus_client::registry::Metric;

use crate::component::{Component, Hook, Installer, Parts};
use crate::config::Config;
use crate::context::AppContext;
use crate::dispatch::Service;
use crate::handler::{self, BoxedHandler, Handler};
use crate::metrics::HttpMetrics;
use crate::middleware::Middleware;
use crate::redis::Redis;
use crate::routes::Routes;
use crate::routing::{RouteError, Router};

/// Builds an application.
///
/// # Examples
///
/// ```
/// use rondo::{App, Config, Path};
///
/// async fn hello(Path(name): Path<String>) -> String {
///     format!("hello, {name}")
/// }
///
/// let app = App::new(Config::default())
///     .get("/", || async { "home" })
///     .get("/hello/{name}", hello);
/// ```
pub struct App {
    router: Router<BoxedHandler>,
    /// What answers a path no route matches (404 when `None`).
    fallback: Option<BoxedHandler>,
    middleware: Vec<Arc<dyn Middleware>>,
    /// The named Redis pools of `[redis]`: one owner for every part that uses Redis.
    redis: Redis,
    /// What components add besides routing.
    parts: Parts,
}

impl App {
    /// A new application configured by `config`. Nothing connects yet: the Redis pools of
    /// `[redis]` open when a part first asks for them ([`App::redis`]).
    pub fn new(config: Config) -> Self {
        let redis = Redis::new(config.redis.clone());
        Self {
            router: Router::default(),
            fallback: None,
            middleware: Vec::new(),
            redis,
            parts: Parts::new(config),
        }
    }

    /// The configuration the app was built with.
    pub fn config(&self) -> &Config {
        &self.parts.config
    }

    /// The app's Redis pools, by name (`[redis] name[...]`): sessions, jobs and channels ask
    /// here, so that each named pool exists once per app.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Installs a [`Component`]: its state, routes, metrics and hooks.
    ///
    /// # Panics
    ///
    /// When a route it adds is invalid or taken (see [`App::route`]).
    #[must_use]
    #[track_caller]
    pub fn with(mut self, component: impl Component) -> Self {
        component.install(&mut Installer {
            parts: &mut self.parts,
        });
        for (method, pattern, handler) in std::mem::take(&mut self.parts.routes) {
            if let Err(err) = self.router.add(method, &pattern, handler) {
                panic!("{err}");
            }
        }
        self
    }

    /// Adds a route, or says why it cannot be added.
    ///
    /// # Errors
    ///
    /// A pattern that `matchit` rejects, that conflicts with another one, or a second
    /// handler for the same method and pattern.
    pub fn try_route<H: Handler<Args>, Args>(
        mut self,
        method: Method,
        pattern: &str,
        handler: H,
    ) -> Result<Self, RouteError> {
        self.router.add(method, pattern, handler::boxed(handler))?;
        Ok(self)
    }

    /// Adds a route.
    ///
    /// # Panics
    ///
    /// On an invalid or duplicate route, like [`App::try_route`]'s errors: routes are fixed
    /// at start-up, so this is a programming error, reported before the server listens.
    #[track_caller]
    pub fn route<H: Handler<Args>, Args>(self, method: Method, pattern: &str, handler: H) -> Self {
        match self.try_route(method, pattern, handler) {
            Ok(app) => app,
            Err(err) => panic!("{err}"),
        }
    }

    /// Adds the routes of `routes` under `prefix` (`"/admin"`: its `/` becomes `/admin`, its
    /// `/users` `/admin/users`), each inside the group's middleware, or says why not.
    ///
    /// # Errors
    ///
    /// `prefix` does not start with `/`, ends with one or has parameters, or a route of the
    /// group is invalid or taken.
    pub fn try_nest(mut self, prefix: &str, routes: Routes) -> Result<Self, RouteError> {
        for (method, pattern, handler) in routes.resolve(prefix)? {
            self.router.add(method, &pattern, handler)?;
        }
        Ok(self)
    }

    /// [`App::try_nest`], panicking on an error (routes are fixed at start-up).
    ///
    /// # Panics
    ///
    /// As [`App::try_nest`]'s errors.
    #[must_use]
    #[track_caller]
    pub fn nest(self, prefix: &str, routes: Routes) -> Self {
        match self.try_nest(prefix, routes) {
            Ok(app) => app,
            Err(err) => panic!("{err}"),
        }
    }

    /// Adds the routes of `routes` as they are (each inside the group's middleware).
    ///
    /// # Panics
    ///
    /// A route of the group is invalid or taken.
    #[must_use]
    #[track_caller]
    pub fn merge(self, routes: Routes) -> Self {
        self.nest("", routes)
    }

    /// Answers every request whose path no route matches with `handler` (instead of the
    /// 404 page), inside the app's middleware. A path that a route has, with another
    /// method, still answers 405.
    #[must_use]
    pub fn fallback<H: Handler<Args>, Args>(mut self, handler: H) -> Self {
        self.fallback = Some(handler::boxed(handler));
        self
    }

    /// Adds a GET route (which also answers HEAD).
    #[track_caller]
    pub fn get<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::GET, pattern, handler)
    }

    /// Adds a POST route.
    #[track_caller]
    pub fn post<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::POST, pattern, handler)
    }

    /// Adds a PUT route.
    #[track_caller]
    pub fn put<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::PUT, pattern, handler)
    }

    /// Adds a PATCH route.
    #[track_caller]
    pub fn patch<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::PATCH, pattern, handler)
    }

    /// Adds a DELETE route.
    #[track_caller]
    pub fn delete<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::DELETE, pattern, handler)
    }

    /// Registers a singleton that controllers receive as [`crate::State<T>`]. One value per
    /// type; a second registration replaces the first.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.installer().state(value);
        self
    }

    /// Adds a middleware; the first added is the outermost.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Runs `hook` during graceful shutdown, after in-flight requests finished (flushing
    /// pending session commits, for one). Hooks run in registration order within the
    /// shutdown deadline.
    pub fn on_shutdown<F, Fut>(mut self, hook: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.installer().on_shutdown(hook);
        self
    }

    /// Runs `hook` during graceful shutdown after in-flight requests finished and *before*
    /// every [`App::on_shutdown`] hook, whatever the registration order: for work that
    /// still needs what those hooks close. Background jobs, which write sessions, stop here,
    /// before the session manager flushes its last commits.
    pub fn on_drain<F, Fut>(mut self, hook: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.installer().on_drain(hook);
        self
    }

    /// Adds a metric to the app's Prometheus registry (served at `[app] metrics_path`).
    /// Keep a clone of `metric` to update it: metrics are shared handles.
    ///
    /// # Examples
    ///
    /// ```
    /// use rondo::metrics::prometheus_client::metrics::counter::Counter;
    /// use rondo::{App, Config};
    ///
    /// let orders = Counter::<u64>::default();
    /// let app = App::new(Config::default()).register_metric("shop_orders", "Orders placed", orders.clone());
    /// orders.inc();
    /// ```
    pub fn register_metric(mut self, name: &str, help: &str, metric: impl Metric) -> Self {
        self.installer().register_metric(name, help, metric);
        self
    }

    /// Adds a collector: code that reports values when the metrics are scraped (gauges read
    /// from elsewhere, counters kept by another library).
    pub fn register_collector(mut self, collector: impl Collector) -> Self {
        self.installer().register_collector(collector);
        self
    }

    fn installer(&mut self) -> Installer<'_> {
        Installer {
            parts: &mut self.parts,
        }
    }

    /// Checks what can only be checked once the app is complete: every `State<T>` (and
    /// every session argument) a route asks for has its state registered.
    ///
    /// # Errors
    ///
    /// The routes whose arguments need state that was never registered, each named.
    pub fn check(&self) -> Result<(), StartError> {
        let fallback = self
            .fallback
            .iter()
            .map(|h| (&Method::GET, "(fallback)", h));
        let missing: Vec<String> = self
            .router
            .routes()
            .chain(fallback)
            .flat_map(|(method, pattern, handler)| {
                handler
                    .needs
                    .iter()
                    .filter(|need| !need.met_by(&self.parts.state))
                    .map(move |need| {
                        format!(
                            "{method} {pattern} asks for State<{}>, which was never registered \
                             (App::state, or App::with for a component such as the session \
                             manager)",
                            need.type_name()
                        )
                    })
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StartError(missing.join("; ")))
        }
    }

    /// Finishes building: the [`Service`] that answers requests (in-process with
    /// [`Service::handle`], or served by [`crate::serve`]), and the hooks to run once it is
    /// done with.
    ///
    /// # Panics
    ///
    /// When [`App::check`] fails: a route needs state that was never registered.
    #[track_caller]
    pub fn into_service(self) -> (Service, ShutdownHooks) {
        match self.try_into_service() {
            Ok(built) => built,
            Err(err) => panic!("{err}"),
        }
    }

    /// [`App::into_service`], or why the app cannot start.
    ///
    /// # Errors
    ///
    /// [`App::check`]'s.
    pub fn try_into_service(mut self) -> Result<(Service, ShutdownHooks), StartError> {
        self.check()?;
        let mut parts = self.parts;
        parts
            .metrics
            .register_collector(Box::new(self.redis.metrics()));
        let http_metrics = match parts.config.app.metrics_path.clone() {
            Some(path) => {
                let mut registry = std::mem::take(&mut parts.metrics);
                let http_metrics = HttpMetrics::register(&mut registry);
                let registry = Arc::new(registry);
                let serve = move || {
                    let registry = registry.clone();
                    async move { crate::metrics::exposition(&registry) }
                };
                if let Err(err) = self.router.add(Method::GET, &path, handler::boxed(serve)) {
                    tracing::error!(error = %err, "[app] metrics_path clashes with a route; metrics are not served");
                }
                Some(http_metrics)
            }
            None => None,
        };
        let context = AppContext::new(parts.config, parts.state);
        let mut hooks = parts.drain;
        hooks.extend(parts.shutdown);
        let service = Service::new(
            context,
            self.router,
            self.fallback,
            self.middleware,
            http_metrics,
        );
        Ok((service, ShutdownHooks(hooks)))
    }
}

/// Why an app cannot start: what [`App::check`] found.
#[derive(Debug, thiserror::Error)]
#[error("the app cannot start: {0}")]
pub struct StartError(String);

/// The hooks registered with [`App::on_drain`] and [`App::on_shutdown`] (and by components),
/// in that order, run by the server after it drained.
pub struct ShutdownHooks(Vec<Hook>);

impl std::fmt::Debug for ShutdownHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ShutdownHooks").field(&self.0.len()).finish()
    }
}

impl ShutdownHooks {
    /// Runs every hook in order.
    pub async fn run(self) {
        for hook in self.0 {
            hook().await;
        }
    }
}
