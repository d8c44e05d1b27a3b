//! The application builder: routes, singletons (state), middleware, components and
//! shutdown hooks, gathered once at start-up and turned into a [`Service`] that every
//! connection shares.

use std::sync::Arc;

use http::Method;
use prometheus_client::collector::Collector;
use prometheus_client::registry::Metric;

use crate::component::{Component, Hook, Installer, Parts};
use crate::config::Config;
use crate::context::{AppContext, StateNeed};
use crate::dispatch::Service;
use crate::handler::{self, BoxedHandler, Handler};
use crate::metrics::HttpMetrics;
use crate::middleware::Middleware;
use crate::redis::Redis;
use crate::routes::Routes;
use crate::routing::{RouteError, Router};
use crate::session::SessionManager;

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

    /// Adds a route, or says why it cannot be added. The pattern is written as for
    /// [`App::route`].
    ///
    /// # Errors
    ///
    /// A pattern that does not start with `/`, that uses `:name` or `*name` (axum 0.7's
    /// syntax), that `matchit` rejects, or that conflicts with another one; or a second
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

    /// Adds a route: `method` requests whose path matches `pattern` go to `handler`.
    ///
    /// A pattern starts with `/` and is matched segment by segment (`matchit`, as in axum
    /// 0.8):
    ///
    /// - `/users`: that path only (`/users/` is another path);
    /// - `/users/{id}`: one segment, given to the controller by [`Path`](crate::Path)
    ///   (`Path<u64>`; several parameters as a tuple or a struct), percent-decoded;
    /// - `/files/{*rest}`: the rest of the path, at least one character, slashes included
    ///   (`/files/` itself does not match: add a route for it if it should);
    /// - a static segment wins over a parameter where both match (`/users/new` before
    ///   `/users/{id}`).
    ///
    /// A path that another method's route has answers 405 with `Allow`; a path no route has
    /// answers 404, or the [`App::fallback`].
    ///
    /// # Panics
    ///
    /// On an invalid or duplicate route, like [`App::try_route`]'s errors: routes are fixed
    /// at start-up, so this is a programming error, reported before the server listens. A
    /// pattern in axum 0.7's syntax is refused with the one to write instead:
    ///
    /// ```text
    /// invalid route: "/users/:id": `:id` is a literal segment here; a parameter is written {id} and the rest of the path {*id}
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// use rondo::http::Method;
    /// use rondo::{App, Config, Path};
    ///
    /// async fn file(Path((user, rest)): Path<(u64, String)>) -> String {
    ///     format!("user {user}, file {rest}") // GET /users/7/files/a/b.txt: 7, "a/b.txt"
    /// }
    ///
    /// let app = App::new(Config::default())
    ///     .route(Method::GET, "/users/{id}/files/{*rest}", file)
    ///     .route(Method::OPTIONS, "/users", || async { "GET, POST" });
    /// ```
    #[track_caller]
    pub fn route<H: Handler<Args>, Args>(self, method: Method, pattern: &str, handler: H) -> Self {
        match self.try_route(method, pattern, handler) {
            Ok(app) => app,
            Err(err) => panic!("{err}"),
        }
    }

    /// Adds the routes of `routes` under `prefix` (`"/admin"`: its `/` becomes `/admin`, its
    /// `/users/{id}` `/admin/users/{id}`), each inside the group's middleware, or says why
    /// not.
    ///
    /// # Errors
    ///
    /// `prefix` does not start with `/`, ends with one or has parameters; a pattern of the
    /// group does not start with `/` (see [`App::route`]); or a route of the group is
    /// invalid or taken once prefixed.
    pub fn try_nest(mut self, prefix: &str, routes: Routes) -> Result<Self, RouteError> {
        for (method, pattern, handler) in routes.resolve(prefix)? {
            self.router.add(method, &pattern, handler)?;
        }
        Ok(self)
    }

    /// Adds the routes of a [`Routes`] group under `prefix`, each inside the group's
    /// middleware (which runs inside the app's): `"/admin"` turns the group's `/` into
    /// `/admin` and its `/users/{id}` into `/admin/users/{id}`. Patterns are written as for
    /// [`App::route`], relative to the prefix; the prefix itself has no parameters and no
    /// trailing `/`.
    ///
    /// # Panics
    ///
    /// As [`App::try_nest`]'s errors (routes are fixed at start-up), e.g.
    /// `invalid route: "/admin/": a prefix to nest under starts with / and does not end with
    /// one, and has no parameters (e.g. "/admin"; "" merges)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rondo::http::StatusCode;
    /// use rondo::middleware::from_fn;
    /// use rondo::{App, Config, IntoResponse, Routes};
    ///
    /// let admin = Routes::new()
    ///     .get("/", || async { "dashboard" }) // GET /admin
    ///     .get("/users/{id}", || async { "a user" }) // GET /admin/users/7
    ///     .middleware(from_fn(|req, next| async move {
    ///         if req.headers().contains_key("x-admin-token") {
    ///             next.run(req).await
    ///         } else {
    ///             StatusCode::UNAUTHORIZED.into_response()
    ///         }
    ///     }));
    /// let app = App::new(Config::default()).nest("/admin", admin);
    /// ```
    #[must_use]
    #[track_caller]
    pub fn nest(self, prefix: &str, routes: Routes) -> Self {
        match self.try_nest(prefix, routes) {
            Ok(app) => app,
            Err(err) => panic!("{err}"),
        }
    }

    /// Adds the routes of `routes` at their own paths (each inside the group's middleware):
    /// [`App::nest`] without a prefix, for a group built elsewhere (a module's routes).
    ///
    /// # Panics
    ///
    /// A route of the group is invalid or taken (see [`App::route`]).
    #[must_use]
    #[track_caller]
    pub fn merge(self, routes: Routes) -> Self {
        self.nest("", routes)
    }

    /// Answers every request whose path no route matches with `handler` (instead of the
    /// 404 page), inside the app's middleware. A path that a route has, with another
    /// method, still answers 405. The handler is a controller like any other; it sees the
    /// whole path through [`Uri`](crate::http::Uri), and has no path parameters.
    ///
    /// # Examples
    ///
    /// ```
    /// use rondo::http::{StatusCode, Uri};
    /// use rondo::{App, Config};
    ///
    /// async fn not_found(uri: Uri) -> (StatusCode, String) {
    ///     (StatusCode::NOT_FOUND, format!("nothing at {}", uri.path()))
    /// }
    ///
    /// let app = App::new(Config::default()).fallback(not_found);
    /// ```
    #[must_use]
    pub fn fallback<H: Handler<Args>, Args>(mut self, handler: H) -> Self {
        self.fallback = Some(handler::boxed(handler));
        self
    }

    /// Adds a GET route (which also answers HEAD): `pattern` as for [`App::route`] (`/items`,
    /// `/items/{id}`, `/files/{*rest}`).
    ///
    /// # Panics
    ///
    /// As [`App::route`]: an invalid or duplicate route.
    #[track_caller]
    pub fn get<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::GET, pattern, handler)
    }

    /// Adds a POST route: `pattern` as for [`App::route`] (`/items`,
    /// `/items/{id}`, `/files/{*rest}`).
    ///
    /// # Panics
    ///
    /// As [`App::route`]: an invalid or duplicate route.
    #[track_caller]
    pub fn post<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::POST, pattern, handler)
    }

    /// Adds a PUT route: `pattern` as for [`App::route`] (`/items`,
    /// `/items/{id}`, `/files/{*rest}`).
    ///
    /// # Panics
    ///
    /// As [`App::route`]: an invalid or duplicate route.
    #[track_caller]
    pub fn put<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::PUT, pattern, handler)
    }

    /// Adds a PATCH route: `pattern` as for [`App::route`] (`/items`,
    /// `/items/{id}`, `/files/{*rest}`).
    ///
    /// # Panics
    ///
    /// As [`App::route`]: an invalid or duplicate route.
    #[track_caller]
    pub fn patch<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::PATCH, pattern, handler)
    }

    /// Adds a DELETE route: `pattern` as for [`App::route`] (`/items`,
    /// `/items/{id}`, `/files/{*rest}`).
    ///
    /// # Panics
    ///
    /// As [`App::route`]: an invalid or duplicate route.
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
                    .map(move |need| unmet(method, pattern, need))
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

/// What a route whose arguments need `need` says when it is not registered. A session
/// argument needs the session manager, which an app installs whole rather than as state.
fn unmet(method: &Method, pattern: &str, need: &StateNeed) -> String {
    if *need == StateNeed::of::<SessionManager>() {
        format!(
            "{method} {pattern} takes a Session (or CsrfForm), but no SessionManager was \
             installed (App::with(sessions))"
        )
    } else {
        format!(
            "{method} {pattern} asks for State<{}>, which was never registered (App::state, \
             or App::with for a component that provides it)",
            need.type_name()
        )
    }
}

/// Why an app cannot start: what [`App::check`] found.
///
/// `Debug` prints the same line as `Display`: a `main` returning `Result<(), Box<dyn
/// Error>>` prints its error with `Debug`, and the routes at fault should read as a sentence
/// there.
#[derive(thiserror::Error)]
#[error("the app cannot start: {0}")]
pub struct StartError(String);

impl std::fmt::Debug for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

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
