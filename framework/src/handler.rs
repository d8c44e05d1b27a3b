//! Controllers: async functions whose arguments are extracted from the request.
//!
//! [`Handler`] is implemented for every `async fn` of up to eight arguments where each
//! argument but the last implements [`FromRequestParts`], the last implements
//! [`FromRequest`], and the output is a [`Responder`]. So the body is read last, and once:
//! a body extractor (`Json`, `Form`, `CsrfForm`, `String`, `Bytes`, `Request`) can only be
//! the last argument. The future must be `Send`, as a multi-threaded runtime asks (requests
//! run on one with `[http] workers = 0`).
//!
//! When a controller breaks one of these rules the compiler can only say that the function
//! is not a [`Handler`]; put `#[rondo::debug_handler]` on it (the `macros` feature, on by
//! default) and the error points at the argument or the return type at fault instead.
//!
//! When an argument declares that it may defer work (`DEFERS`, e.g. a session that persists
//! after the response), the controller runs inside a finishing scope
//! ([`crate::respond::defer`]) and what was deferred runs once it has answered. The router
//! stores handlers type-erased as a boxed closure, one allocation per route at start-up.

use std::future::Future;
use std::sync::Arc;

use crate::body::{Request, Response};
use crate::context::{AppContext, StateNeed};
use crate::extract::{FromRequest, FromRequestParts};
use crate::respond::{RequestHead, Responder};

/// A boxed, sendable future, as the framework passes them around (`futures-util`'s).
pub use futures_util::future::BoxFuture;

#[doc(hidden)]
pub mod checks;

/// Something that answers a request: usually an `async fn` controller.
///
/// `Args` only tells the implementations for different arities apart.
///
/// A function that is not a `Handler` gets one error whatever the cause; the notes list the
/// rules, and `#[rondo::debug_handler]` on the function names the one broken.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Rondo controller",
    label = "not a controller: see the rules below",
    note = "a controller is an `async fn`; every argument but the last implements `FromRequestParts` (`Path`, `Query`, `State`, `Session`, `HeaderMap`, ...), the last may read the body (`FromRequest`): `Json`, `Form`, `CsrfForm`, `String`, `Bytes` or `Request` come last, and only one of them",
    note = "its future must be `Send` (no `Rc`, `RefCell` borrow or `MutexGuard` held across an `.await`) and its output a `Responder`: `String`, `Json(value)`, `Html`, `Redirect`, `StatusCode`, `ErrorPage`, or `Result<T, E>` of responders",
    note = "`State<T>` needs `T: Clone + Send + Sync + 'static`, registered with `App::state`",
    note = "put `#[rondo::debug_handler]` on the controller for an error that names the argument at fault"
)]
pub trait Handler<Args>: Clone + Send + Sync + 'static {
    /// What the handler's arguments need from the app's state (checked at start-up).
    fn state_needs() -> Vec<StateNeed> {
        Vec::new()
    }

    /// Extracts the arguments, runs the controller and turns its answer into a response.
    fn call(
        &self,
        req: Request,
        app: &AppContext,
        head: RequestHead,
    ) -> BoxFuture<'static, Response>;
}

/// A handler's work, type-erased: extract, run, respond.
type Call = dyn Fn(Request, &AppContext, RequestHead) -> BoxFuture<'static, Response> + Send + Sync;

/// A type-erased handler, as the router stores it, with the state its arguments need.
#[derive(Clone)]
pub(crate) struct BoxedHandler {
    call: Arc<Call>,
    /// What the handler's arguments need from the app's state, checked at start-up.
    pub(crate) needs: Vec<StateNeed>,
}

impl BoxedHandler {
    /// Starts the handler on `req`.
    pub(crate) fn call(
        &self,
        req: Request,
        app: &AppContext,
        head: RequestHead,
    ) -> BoxFuture<'static, Response> {
        (self.call)(req, app, head)
    }

    /// A handler of this type from a closure (middleware around a group of routes).
    pub(crate) fn from_fn(
        call: impl Fn(Request, &AppContext, RequestHead) -> BoxFuture<'static, Response>
            + Send
            + Sync
            + 'static,
        needs: Vec<StateNeed>,
    ) -> Self {
        Self {
            call: Arc::new(call),
            needs,
        }
    }
}

pub(crate) fn boxed<H: Handler<Args>, Args>(handler: H) -> BoxedHandler {
    let needs = H::state_needs();
    BoxedHandler {
        call: Arc::new(move |req, app, head| handler.call(req, app, head)),
        needs,
    }
}

impl<F, Fut, R> Handler<()> for F
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Responder,
{
    fn call(
        &self,
        _req: Request,
        _app: &AppContext,
        head: RequestHead,
    ) -> BoxFuture<'static, Response> {
        let future = self();
        Box::pin(async move { future.await.respond(&head) })
    }
}

macro_rules! handler_arity {
    ($($part:ident),* ; $last:ident) => {
        #[allow(non_snake_case)]
        impl<F, Fut, R, $($part,)* $last> Handler<($($part,)* $last,)> for F
        where
            F: Fn($($part,)* $last) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: Responder,
            $($part: FromRequestParts + 'static,)*
            $last: FromRequest + 'static,
        {
            fn state_needs() -> Vec<StateNeed> {
                [$($part::state_need(),)* $last::state_need()].into_iter().flatten().collect()
            }

            fn call(&self, req: Request, app: &AppContext, head: RequestHead) -> BoxFuture<'static, Response> {
                let handler = self.clone();
                let app = app.clone();
                let defers = $($part::DEFERS ||)* $last::DEFERS;
                let scope_head = defers.then(|| head.clone());
                let work: BoxFuture<'static, Response> = Box::pin(async move {
                    #[allow(unused_mut)]
                    let (mut parts, body) = req.into_parts();
                    $(
                        let $part = match $part::from_request_parts(&mut parts, &app).await {
                            Ok(value) => value,
                            Err(rejection) => return rejection.respond(&head),
                        };
                    )*
                    let req = Request::from_parts(parts, body);
                    let $last = match $last::from_request(req, &app).await {
                        Ok(value) => value,
                        Err(rejection) => return rejection.respond(&head),
                    };
                    handler($($part,)* $last).await.respond(&head)
                });
                // Only controllers whose arguments may defer work (a session) pay for a
                // scope. The controller's future is boxed first, so that the scope holds a
                // pointer to it rather than a copy moved through every layer.
                match scope_head {
                    Some(head) => {
                        Box::pin(async move { crate::respond::run_finishing(&head, work).await })
                    }
                    None => work,
                }
            }
        }
    };
}

handler_arity!(; T1);
handler_arity!(T1; T2);
handler_arity!(T1, T2; T3);
handler_arity!(T1, T2, T3; T4);
handler_arity!(T1, T2, T3, T4; T5);
handler_arity!(T1, T2, T3, T4, T5; T6);
handler_arity!(T1, T2, T3, T4, T5, T6; T7);
handler_arity!(T1, T2, T3, T4, T5, T6, T7; T8);
