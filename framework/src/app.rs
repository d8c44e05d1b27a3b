//! The application: routes, singletons (state), middleware and shutdown hooks, built once at
//! start-up and shared by every connection task through a cheap [`AppContext`] handle.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use http::{Method, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::registry::{Metric, Registry};

use crate::config::{Config, HttpConfig};
use crate::handler::{self, BoxFuture, Handler};
use crate::metrics::{HttpMetrics, RouteSeries};
use crate::middleware::{Middleware, Next};
use crate::respond::{ErrorPage, RequestHead, Responder};
use crate::routing::{Found, RouteError, Router};
use crate::{Request, Response};

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

/// An async hook run during graceful shutdown, after connections have drained.
type ShutdownHook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

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
    config: Arc<Config>,
    router: Router,
    state: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    middleware: Vec<Arc<dyn Middleware>>,
    shutdown_hooks: Vec<ShutdownHook>,
    metrics: Registry,
    http_metrics: HttpMetrics,
    /// Run before `shutdown_hooks`: work that still needs what those hooks close.
    drain_hooks: Vec<ShutdownHook>,
}

impl App {
    /// A new application configured by `config`.
    pub fn new(config: Config) -> Self {
        let mut metrics = Registry::default();
        let http_metrics = HttpMetrics::register(&mut metrics);
        Self {
            config: Arc::new(config),
            router: Router::default(),
            state: HashMap::new(),
            middleware: Vec::new(),
            shutdown_hooks: Vec::new(),
            metrics,
            http_metrics,
            drain_hooks: Vec::new(),
        }
    }

    /// The configuration the app was built with.
    pub fn config(&self) -> &Config {
        &self.config
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
    pub fn route<H: Handler<Args>, Args>(self, method: Method, pattern: &str, handler: H) -> Self {
        match self.try_route(method, pattern, handler) {
            Ok(app) => app,
            Err(err) => panic!("{err}"),
        }
    }

    /// Adds a GET route (which also answers HEAD).
    pub fn get<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::GET, pattern, handler)
    }

    /// Adds a POST route.
    pub fn post<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::POST, pattern, handler)
    }

    /// Adds a PUT route.
    pub fn put<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::PUT, pattern, handler)
    }

    /// Adds a PATCH route.
    pub fn patch<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::PATCH, pattern, handler)
    }

    /// Adds a DELETE route.
    pub fn delete<H: Handler<Args>, Args>(self, pattern: &str, handler: H) -> Self {
        self.route(Method::DELETE, pattern, handler)
    }

    /// Registers a singleton that controllers receive as [`crate::State<T>`]. One value per
    /// type; a second registration replaces the first.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(TypeId::of::<T>(), Box::new(value));
        self
    }

    /// The singleton of type `T`, if registered (for parts that register themselves once).
    pub(crate) fn state_ref<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.state.get(&TypeId::of::<T>())?.downcast_ref::<T>()
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
        self.shutdown_hooks.push(Box::new(move || Box::pin(hook())));
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
        self.metrics.register(name, help, metric);
        self
    }

    /// Adds a collector: code that reports values when the metrics are scraped (gauges read
    /// from elsewhere, counters kept by another library).
    pub fn register_collector(mut self, collector: impl Collector) -> Self {
        self.metrics.register_collector(Box::new(collector));
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
        self.drain_hooks.push(Box::new(move || Box::pin(hook())));
        self
    }

    /// Finishes building: the handle every connection task shares.
    pub fn into_context(mut self) -> (AppContext, ShutdownHooks) {
        let limits = Limits::from(&self.config.http);
        let http_metrics = match self.config.app.metrics_path.clone() {
            Some(path) => {
                let registry = Arc::new(std::mem::take(&mut self.metrics));
                let serve = move || {
                    let registry = registry.clone();
                    async move { crate::metrics::exposition(&registry) }
                };
                if let Err(err) = self.router.add(Method::GET, &path, handler::boxed(serve)) {
                    tracing::error!(error = %err, "[app] metrics_path clashes with a route; metrics are not served");
                }
                Some(self.http_metrics)
            }
            None => None,
        };
        let inner = AppInner {
            config: self.config,
            router: self.router,
            state: self.state,
            middleware: self.middleware,
            limits,
            http_metrics,
            unmatched: RouteSeries::unmatched(),
        };
        let mut hooks = self.drain_hooks;
        hooks.extend(self.shutdown_hooks);
        (AppContext(Arc::new(inner)), ShutdownHooks(hooks))
    }
}

/// The hooks registered with [`App::on_drain`] and [`App::on_shutdown`] (in that order), run
/// by the server after it drained.
pub struct ShutdownHooks(Vec<ShutdownHook>);

impl ShutdownHooks {
    /// Runs every hook in order.
    pub async fn run(self) {
        for hook in self.0 {
            hook().await;
        }
    }
}

struct AppInner {
    config: Arc<Config>,
    router: Router,
    state: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    middleware: Vec<Arc<dyn Middleware>>,
    limits: Limits,
    /// `None` when `[app] metrics_path` is empty: nothing is recorded.
    http_metrics: Option<HttpMetrics>,
    /// The series of requests that matched no route.
    unmatched: RouteSeries,
}

/// A shared handle to the built application; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppContext(Arc<AppInner>);

impl AppContext {
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
        self.0
            .state
            .get(&TypeId::of::<T>())?
            .downcast_ref::<T>()
            .cloned()
    }

    pub(crate) fn middleware(&self) -> &[Arc<dyn Middleware>] {
        &self.0.middleware
    }

    /// Answers one request: middleware, routing, extraction, controller, finishers.
    ///
    /// A panic anywhere in there (middleware included) becomes a 500 for this request only.
    pub async fn handle(&self, req: Request) -> Response {
        self.clone().dispatch(req).await
    }
}

/// A request being answered (see [`AppContext::dispatch`]): a hand-written future, so that
/// what hyper moves into place for every request is these few fields, not the state of
/// nested `async fn`s, each holding the request and a response of its own.
pub(crate) struct Dispatch {
    app: AppContext,
    method: Method,
    uri: http::Uri,
    span: tracing::Span,
    started: Instant,
    /// The matched route's index in the router; `None` for 404 and 405.
    route: Option<usize>,
    finish: Finish,
}

impl Future for Dispatch {
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = &mut *self;
        let response = {
            let _entered = this.span.enter();
            match Pin::new(&mut this.finish).poll(cx) {
                Poll::Ready(response) => response,
                Poll::Pending => return Poll::Pending,
            }
        };
        let inner = &this.app.0;
        let route = this
            .route
            .and_then(|index| inner.router.series(index))
            .unwrap_or(&inner.unmatched);
        let took = this.started.elapsed();
        if let Some(metrics) = &inner.http_metrics {
            metrics.observe(&this.method, route, response.status(), took);
        }
        this.span.record("route", route.pattern());
        let _entered = this.span.enter();
        log_request(
            &this.method,
            &this.uri,
            route.pattern(),
            response.status(),
            took,
        );
        Poll::Ready(response)
    }
}

impl AppContext {
    /// [`AppContext::handle`] on an owned handle (the server clones one per request
    /// already): routing happens now, and the returned future runs the controller (or the
    /// middleware chain), then counts and logs the request.
    ///
    /// Every request is logged here, not in a middleware: a boxed middleware layer around
    /// every request costs more than the whole routing step.
    pub(crate) fn dispatch(self, req: Request) -> Dispatch {
        let started = Instant::now();
        let method = req.method().clone();
        let uri = req.uri().clone();
        // A span per request when debug logging is on (cheap to skip otherwise); the session
        // adds a hash of its id to it, never the id.
        let span = tracing::debug_span!(
            "request",
            method = %method,
            path = uri.path(),
            route = tracing::field::Empty,
            session = tracing::field::Empty,
        );
        let (routed, route) = if self.0.middleware.is_empty() {
            let _entered = span.enter();
            self.start(req)
        } else {
            let route = self.0.router.route_of(uri.path());
            (Routed::Chain(Box::pin(self.clone().chain(req))), route)
        };
        Dispatch {
            finish: self.finish(routed),
            app: self,
            method,
            uri,
            span,
            started,
            route,
        }
    }

    /// The middleware chain, then routing; a panic anywhere in it becomes a 500.
    async fn chain(self, req: Request) -> Response {
        let head = RequestHead::new(req.method(), req.headers());
        let chain = std::panic::AssertUnwindSafe(Next::new(self).run(req));
        match chain.catch_unwind().await {
            Ok(response) => response,
            Err(_panic) => {
                tracing::error!("middleware panicked");
                ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
                    .respond(&head)
            }
        }
    }

    /// Routing and the controller, inside the request scope and the request timeout.
    pub(crate) async fn route(&self, req: Request) -> Response {
        let (routed, _) = self.start(req);
        self.finish(routed).await
    }

    /// Routes `req` and starts its controller (a future, not yet polled), or answers at
    /// once (404, 405); with the matched route's index, if any. Routing is not
    /// part of the awaited future, which keeps that future small: hyper moves it into place
    /// on every request.
    fn start(&self, mut req: Request) -> (Routed, Option<usize>) {
        let head = RequestHead::new(req.method(), req.headers());
        match self.0.router.find(req.method(), req.uri().path()) {
            Found::Handler(handler, route, params) => {
                if !params.as_slice().is_empty() {
                    req.extensions_mut().insert(params);
                }
                let controller = handler(req, self, head.clone());
                (Routed::Controller(controller, head), Some(route))
            }
            Found::MethodNotAllowed(allow) => {
                let allow = http::HeaderValue::from_str(allow)
                    .unwrap_or(http::HeaderValue::from_static(""));
                let response = ErrorPage::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                    .header(http::header::ALLOW, allow)
                    .respond(&head);
                (Routed::Answer(Box::new(response)), None)
            }
            Found::NotFound => {
                let response = ErrorPage::new(StatusCode::NOT_FOUND, "not found").respond(&head);
                (Routed::Answer(Box::new(response)), None)
            }
        }
    }

    /// Runs a started controller within the request timeout; a panic becomes a 500.
    fn finish(&self, routed: Routed) -> Finish {
        Finish {
            routed: Some(routed),
            limit: self.0.limits.request_timeout,
            timer: None,
        }
    }
}

/// The future of a started controller (see [`AppContext::finish`]): a hand-written future
/// rather than an `async fn`, so that its state is a few pointers instead of several copies
/// of a response, and the timer is armed (and boxed) only for a controller that does not
/// answer on its first poll.
struct Finish {
    /// `None` once it has answered.
    routed: Option<Routed>,
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Future for Finish {
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = &mut *self;
        let (controller, head) = match &mut this.routed {
            Some(Routed::Controller(controller, head)) => (controller, head),
            Some(Routed::Chain(chain)) => {
                let response = std::task::ready!(chain.as_mut().poll(cx));
                this.routed = None;
                return Poll::Ready(response);
            }
            answered => {
                return match answered.take() {
                    Some(Routed::Answer(response)) => Poll::Ready(*response),
                    // Polled again after it answered: nothing more will come.
                    _ => Poll::Pending,
                };
            }
        };
        // A controller that panicked or ran out of time is dropped with its request scope:
        // what it deferred (a session's half-made changes) is discarded, not persisted.
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            controller.as_mut().poll(cx)
        }));
        let answer = match polled {
            Ok(Poll::Ready(response)) => response,
            Ok(Poll::Pending) => {
                let limit = this.limit;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                ErrorPage::new(StatusCode::SERVICE_UNAVAILABLE, "request timed out")
                    .retry_after(1)
                    .respond(head)
            }
            Err(_panic) => {
                tracing::error!("controller panicked");
                ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
                    .respond(head)
            }
        };
        this.routed = None;
        Poll::Ready(answer)
    }
}

/// A routed request: its controller's future (with the head for error answers), the
/// middleware chain (which routes by itself, within the timeout), or the answer when no
/// controller runs.
enum Routed {
    Controller(BoxFuture<'static, Response>, RequestHead),
    Chain(BoxFuture<'static, Response>),
    /// Boxed: rare (404, 405), and inline it would double the size of every request's
    /// future.
    Answer(Box<Response>),
}

/// Logs one request through `tracing`: method, path, route pattern, status and latency.
///
/// Successful requests are logged at `debug` (a log line per request would cost more than
/// the request at benchmark rates), client errors at `info`, server errors at `warn`.
fn log_request(method: &Method, uri: &http::Uri, route: &str, status: StatusCode, took: Duration) {
    let status = status.as_u16();
    let path = uri.path();
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    if status >= 500 {
        tracing::warn!(%method, path, route, status, micros, "request");
    } else if status >= 400 {
        tracing::info!(%method, path, route, status, micros, "request");
    } else {
        tracing::debug!(%method, path, route, status, micros, "request");
    }
}
