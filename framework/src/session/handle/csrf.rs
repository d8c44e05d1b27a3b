//! CSRF tokens: per form, single use, compared in constant time.
//!
//! A page asks the session for a token for the form it renders
//! ([`Session::csrf_token`], the form name being the form's `action` path) and puts it in a
//! hidden `_csrf` field. The controller that receives the POST takes a
//! [`CsrfForm<T>`](crate::CsrfForm) argument: the token must be one the session issued for that path, and it is spent on use,
//! atomically across requests and servers (of concurrent requests with one token, one
//! passes). A missing or wrong token answers 400 before the controller runs; a form that
//! does not decode answers 422 and leaves its token unspent. Rotating the session id
//! (`regenerate`, on login) drops every token issued before.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::Session;
use crate::session::actor::UpdateFn;
use crate::session::error::SessionError;

/// Outstanding tokens kept per form: several open tabs each hold one.
const TOKENS_PER_FORM: usize = 8;

/// Where the tokens of a form live in the session: `_csrf:{form}`.
pub(crate) const PREFIX: &str = "_csrf:";

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
