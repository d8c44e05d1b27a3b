//! Middleware: code that runs before and after every controller.
//!
//! A middleware gets the request and a [`Next`] to call the rest of the chain (the next
//! middleware, then routing and the controller); what it does before `next.run(req)` runs
//! before the controller, what it does with the returned response runs after. Write one as a
//! type implementing [`Middleware`], or from a closure with [`from_fn`].

use std::future::Future;
use std::time::Instant;

use crate::app::AppContext;
use crate::handler::BoxFuture;
use crate::{Request, Response};

/// Code around every request.
pub trait Middleware: Send + Sync + 'static {
    /// Handles `req`, usually by calling `next.run(req)` and looking at the response.
    fn handle(&self, req: Request, next: Next) -> BoxFuture<'static, Response>;
}

/// The rest of the chain after a middleware.
pub struct Next {
    app: AppContext,
    index: usize,
}

impl Next {
    pub(crate) fn new(app: AppContext) -> Self {
        Self { app, index: 0 }
    }

    /// Runs the rest of the chain: later middleware, routing and the controller.
    pub async fn run(self, req: Request) -> Response {
        let app = self.app;
        match app.middleware().get(self.index).cloned() {
            Some(middleware) => {
                let next = Next {
                    app,
                    index: self.index + 1,
                };
                middleware.handle(req, next).await
            }
            None => app.route(req).await,
        }
    }
}

/// A middleware from an async closure `|req, next| async move { next.run(req).await }`.
pub fn from_fn<F, Fut>(f: F) -> impl Middleware
where
    F: Fn(Request, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    FromFn(f)
}

struct FromFn<F>(F);

impl<F, Fut> Middleware for FromFn<F>
where
    F: Fn(Request, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    fn handle(&self, req: Request, next: Next) -> BoxFuture<'static, Response> {
        Box::pin((self.0)(req, next))
    }
}

/// Logs every request through `tracing`: method, path, status and latency.
///
/// Successful requests are logged at `debug` (a log line per request would cost more than
/// the request at benchmark rates), client errors at `info`, server errors at `warn`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLog;

impl Middleware for RequestLog {
    fn handle(&self, req: Request, next: Next) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            let started = Instant::now();
            let method = req.method().clone();
            let uri = req.uri().clone();
            let response = next.run(req).await;
            let status = response.status().as_u16();
            let path = uri.path();
            let micros = started.elapsed().as_micros() as u64;
            if status >= 500 {
                tracing::warn!(%method, %path, status, micros, "request");
            } else if status >= 400 {
                tracing::info!(%method, %path, status, micros, "request");
            } else {
                tracing::debug!(%method, %path, status, micros, "request");
            }
            response
        })
    }
}
