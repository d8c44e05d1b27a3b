//! Finishing a response: work that belongs to one request but must run after its controller
//! has answered.
//!
//! An extractor (the session argument, for one) can [`defer`] a [`Finisher`] while the
//! controller runs; when the controller has answered, the framework runs every finisher with
//! the response, in registration order, before the response goes to middleware and then to
//! hyper. A finisher can add headers (`Set-Cookie`) and arrange work for after the response
//! is sent with [`crate::Body::on_sent`].
//!
//! The registration point is a tokio task-local, entered only for controllers that take an
//! argument able to defer (`DEFERS` on [`crate::extract::FromRequestParts`]); others pay
//! nothing for it. A controller dropped before it answers (panic, timeout) drops its scope,
//! and what it deferred never runs. It lives with the responders, not the request pipeline,
//! so that what defers (sessions) needs to know nothing of how requests are served.

use std::cell::RefCell;
use std::future::Future;

use futures_util::future::BoxFuture;

use super::RequestHead;
use crate::body::Response;

/// Work to do once the controller has answered.
pub trait Finisher: Send + 'static {
    /// Runs with the controller's response; `head` is the request's, for error answers.
    fn finish<'a>(
        self: Box<Self>,
        head: &'a RequestHead,
        response: &'a mut Response,
    ) -> BoxFuture<'a, ()>;
}

tokio::task_local! {
    static SCOPE: RefCell<Vec<Box<dyn Finisher>>>;
}

/// Registers `finisher` with the request being handled by the current task.
///
/// Returns `false` (and drops the finisher) outside a request scope: in a background task,
/// or in a controller none of whose arguments declares `DEFERS`.
pub fn defer(finisher: impl Finisher) -> bool {
    SCOPE
        .try_with(|scope| scope.borrow_mut().push(Box::new(finisher)))
        .is_ok()
}

/// Runs `controller` inside a fresh scope, then runs what it deferred with its response.
pub(crate) async fn run<F>(head: &RequestHead, controller: F) -> Response
where
    F: Future<Output = Response> + Send,
{
    let (mut response, finishers) = SCOPE
        .scope(RefCell::new(Vec::new()), async move {
            let response = controller.await;
            let finishers = SCOPE.with(|scope| std::mem::take(&mut *scope.borrow_mut()));
            (response, finishers)
        })
        .await;
    for finisher in finishers {
        finisher.finish(head, &mut response).await;
    }
    response
}
