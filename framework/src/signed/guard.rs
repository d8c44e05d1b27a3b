//! Checking signed links on requests: the [`Signed`] extractor for one route, the
//! [`RequireSignature`] middleware for a group.

use futures_util::future::BoxFuture;
use http::request::Parts;
use http::StatusCode;

use super::{SignatureError, SignedUrls};
use crate::body::{Request, Response};
use crate::context::{AppContext, StateNeed};
use crate::extract::FromRequestParts;
use crate::middleware::{Middleware, Next};
use crate::respond::{ErrorPage, RequestHead, Responder};

/// Proof that the request came through a valid, unexpired signed link: a controller that
/// takes it runs only then. The link is checked against the app's [`SignedUrls`] (which
/// must be installed: the app refuses to start otherwise).
///
/// A refused link answers `403` with the reason ([`SignatureError`]).
#[derive(Debug, Clone, Copy)]
pub struct Signed;

/// Why a [`Signed`] argument was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignedRejection {
    /// The link is not signed, altered, or expired: `403` with the reason.
    #[error(transparent)]
    Refused(#[from] SignatureError),
    /// No [`SignedUrls`] is installed (`500`; the start-up check normally catches it).
    #[error("internal server error")]
    NotInstalled,
}

impl Responder for SignedRejection {
    fn respond(self, head: &RequestHead) -> Response {
        match self {
            Self::Refused(why) => why.respond(head),
            Self::NotInstalled => {
                tracing::error!("Signed used without SignedUrls installed (App::with)");
                ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
                    .respond(head)
            }
        }
    }
}

impl FromRequestParts for Signed {
    type Rejection = SignedRejection;

    fn state_need() -> Option<StateNeed> {
        Some(StateNeed::of::<SignedUrls>())
    }

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        let urls = app
            .state_ref::<SignedUrls>()
            .ok_or(SignedRejection::NotInstalled)?;
        urls.verify(&parts.uri)?;
        Ok(Signed)
    }
}

/// A middleware refusing (`403`, with the reason) every request whose target is not a
/// valid, unexpired signed link; made by [`SignedUrls::guard`].
#[derive(Debug, Clone)]
pub struct RequireSignature {
    urls: SignedUrls,
}

impl RequireSignature {
    pub(super) fn new(urls: SignedUrls) -> Self {
        Self { urls }
    }
}

impl Middleware for RequireSignature {
    fn handle(&self, req: Request, next: Next) -> BoxFuture<'static, Response> {
        match self.urls.verify(req.uri()) {
            Ok(()) => Box::pin(next.run(req)),
            Err(why) => {
                let response = why.respond(&RequestHead::new(req.method(), req.headers()));
                Box::pin(std::future::ready(response))
            }
        }
    }
}
