//! The request pipeline: a built application ([`Service`]) answering one request — the
//! middleware chain, routing, the controller within the request timeout, panics caught,
//! then the request counted and logged.
//!
//! [`Service::handle`] answers a request in-process, with no socket: the server calls the
//! same pipeline for every request it reads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http::{Method, StatusCode};

use crate::body::{Request, Response};
use crate::context::AppContext;
use crate::handler::BoxedHandler;
use crate::metrics::{HttpMetrics, RouteSeries};
use crate::middleware::{Chain, Middleware, Next};
use crate::respond::{ErrorPage, RequestHead, Responder};
use crate::routing::{Found, Router};

/// A built application: what answers requests. Cheap to clone (one `Arc`).
///
/// Made by [`App::into_service`](crate::App::into_service) (the server makes its own from
/// the app it is given).
#[derive(Clone)]
pub struct Service(Arc<Inner>);

pub(crate) struct Inner {
    context: AppContext,
    router: Router<BoxedHandler>,
    /// What answers a path no route matches; the 404 page when `None`.
    fallback: Option<BoxedHandler>,
    middleware: Vec<Arc<dyn Middleware>>,
    /// `None` when `[app] metrics_path` is empty: nothing is recorded.
    http_metrics: Option<HttpMetrics>,
    /// The series of requests that matched no route.
    unmatched: RouteSeries,
}

impl Service {
    pub(crate) fn new(
        context: AppContext,
        router: Router<BoxedHandler>,
        fallback: Option<BoxedHandler>,
        middleware: Vec<Arc<dyn Middleware>>,
        http_metrics: Option<HttpMetrics>,
    ) -> Self {
        Self(Arc::new(Inner {
            context,
            router,
            fallback,
            middleware,
            http_metrics,
            unmatched: RouteSeries::unmatched(),
        }))
    }

    /// The configuration, limits and state every controller sees.
    pub fn context(&self) -> &AppContext {
        &self.0.context
    }

    /// Answers one request: middleware, routing, extraction, controller, finishers. A panic
    /// anywhere in there (middleware included) becomes a 500 for this request only.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() {
    /// use rondo::{App, Body, Config};
    ///
    /// let (service, _hooks) = App::new(Config::default())
    ///     .get("/", || async { "home" })
    ///     .into_service();
    /// let response = service.handle(http::Request::get("/").body(Body::empty()).unwrap()).await;
    /// assert_eq!(response.status(), 200);
    /// # }
    /// ```
    pub async fn handle(&self, req: Request) -> Response {
        self.clone().dispatch(req).await
    }

    /// [`Service::handle`] on an owned handle (the server clones one per request already):
    /// routing happens now, and the returned future runs the controller (or the middleware
    /// chain), then counts and logs the request.
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
            self.0.start(req)
        } else {
            let route = self.0.router.route_of(uri.path());
            (Routed::Chain(Box::pin(self.clone().chain(req))), route)
        };
        Dispatch {
            finish: self.0.finish(routed),
            service: self,
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
        let chain = std::panic::AssertUnwindSafe(Next::new(self.0).run(req));
        match chain.catch_unwind().await {
            Ok(response) => response,
            Err(_panic) => {
                tracing::error!("middleware panicked");
                ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
                    .respond(&head)
            }
        }
    }
}

impl Chain for Inner {
    fn middleware(&self) -> &[Arc<dyn Middleware>] {
        &self.middleware
    }

    /// Routing and the controller, inside the request scope and the request timeout.
    fn route(self: Arc<Self>, req: Request) -> BoxFuture<'static, Response> {
        let (routed, _) = self.start(req);
        Box::pin(self.finish(routed))
    }
}

impl Inner {
    /// Routes `req` and starts its controller (a future, not yet polled), or answers at
    /// once (404, 405); with the matched route's index, if any. Routing is not
    /// part of the awaited future, which keeps that future small: hyper moves it into place
    /// on every request.
    fn start(&self, mut req: Request) -> (Routed, Option<usize>) {
        let head = RequestHead::new(req.method(), req.headers());
        match self.router.find(req.method(), req.uri().path()) {
            Found::Handler(handler, route, params) => {
                if !params.as_slice().is_empty() {
                    req.extensions_mut().insert(params);
                }
                let controller = handler.call(req, &self.context, head.clone());
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
            Found::NotFound => match &self.fallback {
                Some(fallback) => {
                    let controller = fallback.call(req, &self.context, head.clone());
                    (Routed::Controller(controller, head), None)
                }
                None => {
                    let response =
                        ErrorPage::new(StatusCode::NOT_FOUND, "not found").respond(&head);
                    (Routed::Answer(Box::new(response)), None)
                }
            },
        }
    }

    /// Runs a started controller within the request timeout; a panic becomes a 500.
    fn finish(&self, routed: Routed) -> Finish {
        Finish {
            routed: Some(routed),
            limit: self.context.limits().request_timeout,
            timer: None,
        }
    }
}

/// A request being answered (see [`Service::dispatch`]): a hand-written future, so that
/// what hyper moves into place for every request is these few fields, not the state of
/// nested `async fn`s, each holding the request and a response of its own.
pub(crate) struct Dispatch {
    service: Service,
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
        let inner = &this.service.0;
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

/// The future of a started controller (see [`Inner::finish`]): a hand-written future
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
