//! CSRF tokens: per form, single use, compared in constant time.
//!
//! A page asks the session for a token for the form it renders
//! ([`Session::csrf_token`], the form name being the form's `action` path) and puts it in a
//! hidden `_csrf` field. The controller that receives the POST takes a [`CsrfForm<T>`]
//! argument: the token must be one the session issued for that path, and it is spent on use,
//! atomically across requests and servers (of concurrent requests with one token, one
//! passes). A missing or wrong token answers 400 before the controller runs; a form that
//! does not decode answers 422 and leaves its token unspent. Rotating the session id
//! (`regenerate`, on login) drops every token issued before.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::actor::UpdateFn;
use super::{Session, SessionError, SessionManager};
use crate::app::AppContext;
use crate::extract::{read_body, FromRequest, Rejection};
use crate::respond::{RequestHead, Responder};
use crate::{Request, Response};

/// Outstanding tokens kept per form: several open tabs each hold one.
const TOKENS_PER_FORM: usize = 8;

/// Where the tokens of a form live in the session: `_csrf:{form}`.
pub(super) const PREFIX: &str = "_csrf:";

fn slot(form: &str) -> String {
    format!("{PREFIX}{form}")
}

impl Session {
    /// A new single-use token for the form posting to `form` (its action path).
    ///
    /// # Errors
    ///
    /// The store could not be reached, or no randomness was available.
    pub async fn csrf_token(&self, form: &str) -> Result<String, SessionError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| SessionError::Random(e.to_string()))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let slot = slot(form);
        let mut tokens: Vec<String> = match self.raw_get(&slot).await? {
            Some(raw) => rmp_serde::from_slice(&raw).unwrap_or_default(),
            None => Vec::new(),
        };
        tokens.push(token.clone());
        let excess = tokens.len().saturating_sub(TOKENS_PER_FORM);
        tokens.drain(..excess);
        let raw = rmp_serde::to_vec(&tokens).map_err(|e| SessionError::Encode {
            key: slot.clone(),
            message: e.to_string(),
        })?;
        self.raw_put(&slot, raw.into())?;
        Ok(token)
    }

    /// Checks `token` against the tokens issued for `form` and spends it.
    ///
    /// Spending is atomic across requests and servers: it is an `update` of the form's
    /// token list, so of several requests carrying the same token at once (on one server
    /// or many), exactly one succeeds; the others find it gone when their commit replays.
    ///
    /// # Errors
    ///
    /// [`SessionError::Csrf`] when it was not issued (or already used); store errors.
    pub async fn verify_csrf(&self, form: &str, token: &str) -> Result<(), SessionError> {
        let slot = slot(form);
        let token = token.to_owned();
        let spend: UpdateFn = Box::new(move |issued| {
            let Some(issued) = issued else {
                return Err(SessionError::Csrf);
            };
            let mut tokens: Vec<String> = rmp_serde::from_slice(issued).unwrap_or_default();
            // Compare against every token so the time taken does not say which one matched.
            let mut found = None;
            for (i, candidate) in tokens.iter().enumerate() {
                if bool::from(candidate.as_bytes().ct_eq(token.as_bytes())) {
                    found = Some(i);
                }
            }
            let Some(i) = found else {
                return Err(SessionError::Csrf);
            };
            tokens.remove(i);
            if tokens.is_empty() {
                return Ok(None);
            }
            rmp_serde::to_vec(&tokens)
                .map(|raw| Some(raw.into()))
                .map_err(|e| SessionError::Encode {
                    key: PREFIX.to_owned(),
                    message: e.to_string(),
                })
        });
        match self.update_raw(slot, spend, false).await {
            Ok(_) => Ok(()),
            // No session, or it ended meanwhile: no token of it can be valid.
            Err(SessionError::Gone) => Err(SessionError::Csrf),
            Err(err) => Err(err),
        }
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

    async fn from_request(req: Request, app: &AppContext) -> Result<Self, CsrfRejection> {
        const FORM: &str = "application/x-www-form-urlencoded";
        let manager = app
            .state::<SessionManager>()
            .ok_or(SessionError::NoManager)?;
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
