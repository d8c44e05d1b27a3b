//! Middleware: code that runs before and after every controller.
//!
//! A middleware gets the request and a [`Next`] to call the rest of the chain (the next
//! middleware, then routing and the controller); what it does before `next.run(req)` runs
//! before the controller, what it does with the returned response runs after. Write one as a
//! type implementing [`Middleware`], or from a closure with [`from_fn`].

use std::future::Future;

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
