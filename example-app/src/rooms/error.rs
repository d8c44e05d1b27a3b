//! [`RoomError`]: every way a rooms request can fail, each answering with its status on
//! purpose (an HTML page for browsers, `{"error", "status"}` for everybody else).

use http::StatusCode;
use rondo::channels::ChannelError;
use rondo::files::FilesError;
use rondo::links::LinkError;
use rondo::livekit::LiveKitError;
use rondo::{ErrorPage, RequestHead, Responder, Response, SessionError};

/// Why a rooms request failed.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// Hosting needs a logged-in user (401).
    #[error("log in to host a room")]
    NotLoggedIn,
    /// No such room, or not one this visitor may know of (404).
    #[error("there is no such room")]
    NotFound,
    /// The visitor is not a member of the room (403).
    #[error("only the room's members may do this")]
    NotMember,
    /// A member asked for what only the host may do (403).
    #[error("only the room's host may do this")]
    HostOnly,
    /// The host closed the room (410).
    #[error("this room has been closed")]
    Closed,
    /// The request was not valid; the message says why (400).
    #[error("{0}")]
    Invalid(String),
    /// A form post from another site: no `X-Requested-With` header (403).
    #[error("this request must come from the room's page (X-Requested-With)")]
    CrossSite,
    /// No `[livekit]` project is configured (503).
    #[error("audio and video are not configured on this server ([livekit])")]
    NoLiveKit,
    /// Redis (rooms, links, files or channels) could not be reached (503).
    #[error("rooms unavailable: {0}")]
    Unavailable(String),
    /// Redis holds something the rooms did not write (500, logged).
    #[error("unexpected room data: {0}")]
    Corrupt(String),
    /// The session failed (its own status: 503, 409, 413).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The links failed (their own status).
    #[error(transparent)]
    Links(#[from] LinkError),
    /// The temporary files failed (their own status: 413 over the room's quota, ...).
    #[error(transparent)]
    Files(#[from] FilesError),
    /// A token could not be made (its own status).
    #[error(transparent)]
    LiveKit(#[from] LiveKitError),
}

impl From<ChannelError> for RoomError {
    fn from(err: ChannelError) -> Self {
        match err {
            ChannelError::Unavailable(why) => Self::Unavailable(why),
            ChannelError::Invalid(why) => Self::Corrupt(why),
        }
    }
}

impl From<getrandom::Error> for RoomError {
    fn from(err: getrandom::Error) -> Self {
        Self::Corrupt(format!("no randomness: {err}"))
    }
}

impl Responder for RoomError {
    fn respond(self, head: &RequestHead) -> Response {
        let message = self.to_string();
        let status = match self {
            Self::Session(err) => return err.respond(head),
            Self::Links(err) => return err.respond(head),
            Self::Files(err) => return err.respond(head),
            Self::LiveKit(err) => return err.respond(head),
            Self::Unavailable(why) => {
                tracing::warn!(error = %why, "rooms: Redis unavailable");
                return ErrorPage::new(StatusCode::SERVICE_UNAVAILABLE, "rooms are unavailable")
                    .retry_after(1)
                    .respond(head);
            }
            Self::Corrupt(why) => {
                tracing::error!(error = %why, "rooms: unexpected data");
                return ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
                    .respond(head);
            }
            Self::NotLoggedIn => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::NotMember | Self::HostOnly | Self::CrossSite => StatusCode::FORBIDDEN,
            Self::Closed => StatusCode::GONE,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::NoLiveKit => StatusCode::SERVICE_UNAVAILABLE,
        };
        ErrorPage::new(status, message).respond(head)
    }
}
