//! `POST /broadcasting/auth` (`[channels] auth_path`): the server that owns the session
//! authorizes the channel.
//!
//! pusher-js (and Laravel Echo) asks here before joining a private or presence channel,
//! with the session cookie and a form body `socket_id=…&channel_name=…` (JSON is accepted
//! too). The app's rule for the channel decides from the session; the answer is the
//! protocol's signature over the socket id and channel (and the presence member), which
//! the client then presents when it subscribes. Without a session, without a matching
//! rule, or when the rule refuses: 403. Nothing about the session reaches the socket: it
//! holds the signed grant, not a session handle.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};

use super::handle::Channels;
use super::protocol::{ChannelName, SocketId};
use super::rules::Decision;
use crate::extract::State;
use crate::respond::{ErrorPage, Json};
use crate::session::Session;

#[derive(serde::Deserialize)]
struct AuthRequest {
    socket_id: Option<String>,
    channel_name: Option<String>,
}

/// The handler of `[channels] auth_path`.
pub(crate) async fn authorize(
    State(channels): State<Channels>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<super::protocol::ChannelAuthorization>, ErrorPage> {
    let bad = |message: &str| ErrorPage::new(StatusCode::BAD_REQUEST, message.to_owned());
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let request: AuthRequest = if is_json {
        serde_json::from_slice(&body).map_err(|_| bad("expected a JSON body"))?
    } else {
        serde_urlencoded::from_bytes(&body).map_err(|_| bad("expected a form body"))?
    };
    let Some(Ok(socket_id)) = request.socket_id.as_deref().map(SocketId::parse) else {
        return Err(bad("missing or invalid socket_id"));
    };
    let Some(Ok(channel)) = request.channel_name.as_deref().map(ChannelName::new) else {
        return Err(bad("missing or invalid channel_name"));
    };
    let forbidden = || ErrorPage::new(StatusCode::FORBIDDEN, "not allowed on this channel");
    match session.exists().await {
        Ok(true) => {}
        Ok(false) => return Err(forbidden()),
        Err(err) => {
            return Err(ErrorPage::new(
                StatusCode::SERVICE_UNAVAILABLE,
                err.to_string(),
            ))
        }
    }
    let shared = &channels.shared;
    match shared.rules.decide(session, channel.as_str()).await {
        Decision::Allow => Ok(Json(
            shared.credentials.authorize_channel(&socket_id, &channel),
        )),
        Decision::Member(member) => Ok(Json(
            shared
                .credentials
                .authorize_presence(&socket_id, &channel, &member),
        )),
        Decision::Deny => {
            tracing::info!(channel = %channel, "channel authorization refused");
            Err(forbidden())
        }
        Decision::Unavailable(why) => Err(ErrorPage::new(StatusCode::SERVICE_UNAVAILABLE, why)),
    }
}
