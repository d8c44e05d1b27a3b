//! LiveKit room tokens: what a page hands the browser so it can join a video room (framework
//! feature `livekit`).
//!
//! A LiveKit server admits a participant who shows a JWT signed with the project's API
//! secret (HS256), naming the participant (`sub`), the room and what they may do there.
//! The application decides who may join (a session, a [redeemed link](crate::links)), then
//! mints a short-lived token here and gives it to the browser together with
//! [`LiveKit::url`]. The project is `[livekit] url`, `api_key` and `api_secret`.
//!
//! The signing is the `livekit-api` crate's, built with only its `access-token` feature:
//! that brings the token types and an HMAC-only `jsonwebtoken` backend, and no HTTP
//! client, TLS stack or async runtime.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! use rondo::livekit::{LiveKit, LiveKitError, RoomGrants};
//! use rondo::{App, Config, Json, Path, State};
//!
//! /// A ten-minute token for `user` in `room` (a real app checks who may join first).
//! async fn token(
//!     State(livekit): State<LiveKit>,
//!     Path((room, user)): Path<(String, String)>,
//! ) -> Result<Json<serde_json::Value>, LiveKitError> {
//!     let ttl = Duration::from_secs(600);
//!     let token = livekit.token(&user, &user, &room, RoomGrants::PARTICIPANT, ttl)?;
//!     Ok(Json(serde_json::json!({ "url": livekit.url(), "token": token })))
//! }
//!
//! let text = "[session]\nstore = memory\n[livekit]\nurl = wss://meet.example\n\
//!             api_key = APIkey\napi_secret = a-secret-of-32-characters-or-more\n";
//! let config = Config::parse_str(text, "config.ini")?;
//! let livekit = LiveKit::from_config(&config)?;
//! let app = App::new(config).with(livekit).get("/rooms/{room}/token/{user}", token);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use livekit_api::access_token::{AccessToken, AccessTokenError, VideoGrants};

use crate::body::Response;
use crate::component::{Component, Installer};
use crate::config::Config;
use crate::respond::{ErrorPage, RequestHead, Responder};

/// What a participant may do in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomGrants {
    /// May join the room.
    pub room_join: bool,
    /// May publish audio and video.
    pub can_publish: bool,
    /// May receive the others' audio and video.
    pub can_subscribe: bool,
    /// May send data messages (chat, reactions).
    pub can_publish_data: bool,
}

impl RoomGrants {
    /// A full participant: joins, publishes, subscribes and sends data.
    pub const PARTICIPANT: Self = Self {
        room_join: true,
        can_publish: true,
        can_subscribe: true,
        can_publish_data: true,
    };

    /// A viewer: joins and subscribes, publishes nothing.
    pub const VIEWER: Self = Self {
        room_join: true,
        can_publish: false,
        can_subscribe: true,
        can_publish_data: false,
    };
}

/// Why no token was made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveKitError {
    /// `[livekit]` lacks a key a token needs.
    #[error("[livekit] {0} is not set; a token needs url, api_key and api_secret")]
    NotConfigured(&'static str),
    /// The server URL is not `ws://`, `wss://`, `http://` or `https://`.
    #[error("the LiveKit URL must start with ws://, wss://, http:// or https://")]
    BadUrl,
    /// The API key or secret is empty.
    #[error("the LiveKit API key and secret must not be empty")]
    MissingCredentials,
    /// The participant identity is empty.
    #[error("a LiveKit token needs a participant identity")]
    MissingIdentity,
    /// The room name is empty.
    #[error("a LiveKit token needs a room name")]
    MissingRoom,
    /// The time to live is under one second (the token would be born expired).
    #[error("a LiveKit token must live at least one second")]
    TooShort,
    /// The token library refused the claims or failed to sign.
    #[error("LiveKit token: {0}")]
    Token(#[from] AccessTokenError),
}

/// A LiveKit project: its server URL and API credentials.
#[derive(Clone)]
pub struct LiveKit {
    url: String,
    api_key: String,
    api_secret: String,
}

impl fmt::Debug for LiveKit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveKit")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .finish()
    }
}

/// A token that cannot be made answers `400` for a request the caller got wrong (no
/// identity or room, a TTL under a second), `500` (logged) for the rest.
impl Responder for LiveKitError {
    fn respond(self, head: &RequestHead) -> Response {
        let page = match &self {
            Self::MissingIdentity | Self::MissingRoom | Self::TooShort => {
                ErrorPage::new(StatusCode::BAD_REQUEST, self.to_string())
            }
            _ => {
                tracing::error!(error = %self, "no LiveKit token");
                ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        };
        page.respond(head)
    }
}

impl LiveKit {
    /// The project of `[livekit]`.
    ///
    /// # Errors
    ///
    /// [`LiveKitError::NotConfigured`] naming the first of `url`, `api_key` and
    /// `api_secret` that is not set.
    pub fn from_config(config: &Config) -> Result<Self, LiveKitError> {
        let lk = &config.livekit;
        let url = lk
            .url
            .as_deref()
            .ok_or(LiveKitError::NotConfigured("url"))?;
        let api_key = lk
            .api_key
            .as_deref()
            .ok_or(LiveKitError::NotConfigured("api_key"))?;
        let api_secret = lk
            .api_secret
            .as_deref()
            .ok_or(LiveKitError::NotConfigured("api_secret"))?;
        Self::new(url, api_key, api_secret)
    }

    /// A project at `url` (what browsers connect to, such as `wss://meet.example.com`) with
    /// the API key and secret from its configuration.
    ///
    /// # Errors
    ///
    /// [`LiveKitError::BadUrl`] or [`LiveKitError::MissingCredentials`].
    pub fn new(
        url: impl Into<String>,
        api_key: impl Into<String>,
        api_secret: impl Into<String>,
    ) -> Result<Self, LiveKitError> {
        let (url, api_key, api_secret) = (url.into(), api_key.into(), api_secret.into());
        let schemes = ["ws://", "wss://", "http://", "https://"];
        if !schemes
            .iter()
            .any(|s| url.len() > s.len() && url.starts_with(s))
        {
            return Err(LiveKitError::BadUrl);
        }
        if api_key.is_empty() || api_secret.is_empty() {
            return Err(LiveKitError::MissingCredentials);
        }
        Ok(Self {
            url,
            api_key,
            api_secret,
        })
    }

    /// The server URL, for the browser.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The API key (the token's issuer); not a secret.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// A token letting `identity` (unique within the room; shown to others as `name`) into
    /// `room` with `grants`, valid from now for `ttl` (whole seconds).
    ///
    /// Keep `ttl` short (minutes): it only bounds how long the token can be used to
    /// *join*; a participant who joined stays until they leave or are removed.
    ///
    /// # Errors
    ///
    /// [`LiveKitError::MissingIdentity`], [`LiveKitError::MissingRoom`],
    /// [`LiveKitError::TooShort`], or [`LiveKitError::Token`] when signing fails.
    pub fn token(
        &self,
        identity: &str,
        name: &str,
        room: &str,
        grants: RoomGrants,
        ttl: Duration,
    ) -> Result<String, LiveKitError> {
        if identity.is_empty() {
            return Err(LiveKitError::MissingIdentity);
        }
        if room.is_empty() {
            return Err(LiveKitError::MissingRoom);
        }
        if ttl.as_secs() == 0 {
            return Err(LiveKitError::TooShort);
        }
        let video = VideoGrants {
            room_join: grants.room_join,
            room: room.to_owned(),
            can_publish: Some(grants.can_publish),
            can_subscribe: Some(grants.can_subscribe),
            can_publish_data: Some(grants.can_publish_data),
            ..VideoGrants::default()
        };
        let jwt = AccessToken::with_api_key(&self.api_key, &self.api_secret)
            .with_identity(identity)
            .with_name(name)
            .with_grants(video)
            .with_ttl(Duration::from_secs(ttl.as_secs()))
            .to_jwt()?;
        Ok(jwt)
    }
}

/// Installed, it is the state behind `State<LiveKit>`.
impl Component for LiveKit {
    fn install(self, app: &mut Installer<'_>) {
        app.state(self);
    }
}
