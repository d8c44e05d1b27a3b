//! Why a session operation failed, and the status code each failure answers with.

use http::StatusCode;

use super::store::StoreError;
use crate::body::Response;
use crate::respond::{ErrorPage, RequestHead, Responder};

/// Why a session operation failed. Each variant answers with a deliberate status code.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store could not be reached in time (503, with `Retry-After`).
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// A value could not be encoded as MessagePack (500).
    #[error("session value for {key:?} could not be encoded: {message}")]
    Encode {
        /// The session key.
        key: String,
        /// What the encoder said.
        message: String,
    },
    /// A stored value is not of the requested type (500).
    #[error("session value for {key:?} could not be decoded: {message}")]
    Decode {
        /// The session key.
        key: String,
        /// What the decoder said.
        message: String,
    },
    /// The session would grow past `[session] max_size` (413).
    #[error("session data would be {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The size it would have.
        size: usize,
        /// `[session] max_size`.
        limit: usize,
    },
    /// The session was destroyed or rotated by another request meanwhile (409).
    #[error("the session has ended")]
    Gone,
    /// Too many requests (on this server and others) changed the session at the same moment
    /// for this change to be committed in time (503 with `Retry-After`: retrying will do;
    /// the store itself is fine).
    #[error("the session is busy with concurrent changes; retry shortly")]
    Busy,
    /// The session store refused the configuration it was given (a database index it does
    /// not have, a wrong password): a start-up error, not an outage.
    #[error("{0}")]
    Misconfigured(String),
    /// The form's CSRF token is missing or not valid (400).
    #[error("invalid or missing CSRF token")]
    Csrf,
    /// A key starting with `_` is reserved for the framework (500: a bug in the app).
    #[error("session key {0:?} is reserved (keys starting with '_' belong to the framework)")]
    ReservedKey(String),
    /// No [`SessionManager`](crate::SessionManager) was registered with the app (500: a bug in the app).
    #[error("no SessionManager registered with the app")]
    NoManager,
    /// The operating system's random source failed (503).
    #[error("no randomness for a session id: {0}")]
    Random(String),
}

impl SessionError {
    /// The status code this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unavailable(_) | Self::Random(_) | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Encode { .. }
            | Self::Decode { .. }
            | Self::ReservedKey(_)
            | Self::NoManager
            | Self::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Gone => StatusCode::CONFLICT,
            Self::Csrf => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<StoreError> for SessionError {
    fn from(err: StoreError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

/// The error page a session error answers with: its status, a message fit for the client
/// (internal details stay in the log), and `Retry-After` on a 503. So an app's own error
/// type can hold an `ErrorPage` and take session errors with `?`.
impl From<SessionError> for ErrorPage {
    fn from(err: SessionError) -> Self {
        let status = err.status();
        if status.is_server_error() {
            tracing::warn!(error = %err, "session error");
        }
        let message = match err {
            // Internal details stay in the log.
            SessionError::Encode { .. }
            | SessionError::Decode { .. }
            | SessionError::ReservedKey(_)
            | SessionError::NoManager
            | SessionError::Misconfigured(_) => "internal server error".to_owned(),
            SessionError::Unavailable(_) | SessionError::Random(_) => {
                "session store unavailable, try again shortly".to_owned()
            }
            other => other.to_string(),
        };
        let page = ErrorPage::new(status, message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            page.retry_after(1)
        } else {
            page
        }
    }
}

impl Responder for SessionError {
    fn respond(self, head: &RequestHead) -> Response {
        ErrorPage::from(self).respond(head)
    }
}
