//! Middleware: code that runs before and after every controller.
//!
//! A middleware gets the request and a [`Next`] to call the rest of the chain (the next
//! middleware, then routing and the controller); what it does before `next.run(req)` runs
//! before the controller, what it does with the returned response runs after. Write one as a
//! type implementing [`Middleware`], or from a closure with [`from_fn`].

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::body::{Request, Response};

/// Code around every request.
pub trait Middleware: Send + Sync + 'static {
    /// Handles `req`, usually by calling `next.run(req)` and looking at the response.
    fn handle(&self, req: Request, next: Next) -> BoxFuture<'static, Response>;
}

/// What a chain of middleware runs through: the middleware in order, then the routing
/// behind them. The request pipeline implements it; middleware sees only [`Next`].
pub(crate) trait Chain: Send + Sync + 'static {
    /// The middleware, the first one outermost.
    fn middleware(&self) -> &[Arc<dyn Middleware>];

    /// Routing and the controller, after the last middleware.
    fn route(self: Arc<Self>, req: Request) -> BoxFuture<'static, Response>;
}

/// The rest of the chain after a middleware.
pub struct Next {
    chain: Arc<dyn Chain>,
    index: usize,
}

impl Next {
    pub(crate) fn new(chain: Arc<dyn Chain>) -> Self {
        Self { chain, index: 0 }
    }

    /// Runs the rest of the chain: later middleware, routing and the controller.
    pub async fn run(self, req: Request) -> Response {
        match self.chain.middleware().get(self.index).cloned() {
            Some(middleware) => {
                let next = Next {
                    chain: self.chain,
                    index: self.index + 1,
                };
                middleware.handle(req, next).await
            }
            None => self.chain.route(req).await,
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
