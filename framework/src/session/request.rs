//! The session as a controller argument, and forms checked against its CSRF tokens: the
//! only place where sessions meet requests. They see the app through the narrow
//! [`AppContext`] (the [`SessionManager`] is its state), and the end of the request through
//! a finisher ([`crate::respond::defer`]), never the router or the server.

use http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::SessionError;
use super::handle::Session;
use super::manager::SessionManager;
use crate::body::{Request, Response};
use crate::context::{AppContext, StateNeed};
use crate::extract::{read_body, FromRequest, FromRequestParts, Rejection};
use crate::respond::{RequestHead, Responder};

/// The manager registered with the app, or [`SessionError::NoManager`].
fn manager(app: &AppContext) -> Result<&SessionManager, SessionError> {
    app.state_ref::<SessionManager>()
        .ok_or(SessionError::NoManager)
}

impl FromRequestParts for Session {
    type Rejection = SessionError;
    const DEFERS: bool = true;

    fn state_need() -> Option<StateNeed> {
        Some(StateNeed::of::<SessionManager>())
    }

    async fn from_request_parts(parts: &mut Parts, app: &AppContext) -> Result<Self, SessionError> {
        Ok(manager(app)?.start_parts(parts))
    }
}

/// A URL-encoded form whose `_csrf` field must hold a token the session issued for this
/// request's path. Other fields deserialize into `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CsrfForm<T>(pub T);

/// Why a [`CsrfForm`] was refused.
#[derive(Debug, thiserror::Error)]
pub enum CsrfRejection {
    /// The form itself could not be read (415, 413, 422...).
    #[error(transparent)]
    Form(#[from] Rejection),
    /// The token is missing or invalid (400), or the session store failed (503).
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl Responder for CsrfRejection {
    fn respond(self, head: &RequestHead) -> Response {
        match self {
            Self::Form(rejection) => rejection.respond(head),
            Self::Session(err) => err.respond(head),
        }
    }
}

#[derive(Deserialize)]
struct TokenField {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

impl<T: DeserializeOwned + Send> FromRequest for CsrfForm<T> {
    type Rejection = CsrfRejection;
    const DEFERS: bool = true;

    fn state_need() -> Option<StateNeed> {
        Some(StateNeed::of::<SessionManager>())
    }

    async fn from_request(req: Request, app: &AppContext) -> Result<Self, CsrfRejection> {
        const FORM: &str = "application/x-www-form-urlencoded";
        let manager = manager(app)?;
        let (mut parts, body) = req.into_parts();
        let session = manager.start_parts(&mut parts);
        let form_name = parts.uri.path().to_owned();
        let is_form = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case(FORM)
            });
        if !is_form {
            return Err(Rejection::UnsupportedMediaType { expected: FORM }.into());
        }
        let bytes = read_body(Request::from_parts(parts, body), app.limits()).await?;
        let token: TokenField = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| Rejection::InvalidForm(e.to_string()))?;
        // The form is decoded before the token is spent: a form that fails to decode (422)
        // leaves its token valid, so the corrected form can be sent again.
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| Rejection::InvalidForm(e.to_string()))?;
        session
            .verify_csrf(&form_name, token.csrf.as_deref().unwrap_or(""))
            .await?;
        Ok(CsrfForm(form))
    }
}
