//! The live basket: every open tab of a session shows its basket as it changes, on
//! whichever server the change happened, without a reload.
//!
//! Each session has a private channel, `private-basket.{reference}` (the session's
//! [`SessionRef`](rondo::SessionRef): a hash of its id, safe to show). Only that session
//! may join it ([`channels`]'s rule); every controller that changes the basket broadcasts
//! the new basket there (`api::basket_changed`), and the login's background job announces the
//! recommendations it stored. The page's own small protocol client (`static/live.js`)
//! subscribes and redraws. Logged-in users also join `presence-shop`, who is in the shop.

use rondo::channels::{ChannelParams, Channels, ChannelsBuilder, PresenceMember};
use rondo::{Session, SessionError};
use serde::Serialize;

/// The event a basket change is broadcast as; its data is the basket (`api::Basket`).
pub const BASKET_UPDATED: &str = "basket.updated";
/// The event the hydration job broadcasts; its data is the list of recommendations.
pub const RECOMMENDATIONS_READY: &str = "recommendations.ready";

/// The basket channel of `session`, once it exists.
pub fn basket_channel(session: &Session) -> Option<String> {
    session
        .reference()
        .map(|r| format!("private-basket.{}", r.as_str()))
}

/// The shop's channel rules: a session's own basket channel, and the shop's presence
/// channel for logged-in users.
pub fn channels(builder: ChannelsBuilder) -> ChannelsBuilder {
    builder
        .private(
            "basket.{session}",
            |session: Session, params: ChannelParams| async move {
                let own = session.reference().map(|r| r.as_str().to_owned());
                own.is_some() && own.as_deref() == params.get("session")
            },
        )
        .presence(
            "shop",
            |session: Session, _params: ChannelParams| async move {
                let user: Option<String> = session.get("user").await?;
                Ok::<_, SessionError>(user.map(|name| {
                    PresenceMember::new(name.clone(), Some(serde_json::json!({ "name": name })))
                }))
            },
        )
}

/// Broadcasts `event` with `data` on `session`'s basket channel.
pub async fn publish<T: Serialize + ?Sized>(
    channels: &Channels,
    session: &Session,
    event: &str,
    data: &T,
) {
    let Some(channel) = basket_channel(session) else {
        return;
    };
    if let Err(err) = channels.broadcast(&channel, event, data).await {
        tracing::warn!(error = %err, event, "live update not sent");
    }
}

/// What the page needs to go live: `None` when channels are off.
#[derive(Debug, Serialize)]
pub struct LivePage {
    /// The app key.
    pub key: String,
    /// Where sockets connect (`[channels] path`).
    pub path: String,
    /// The authorization endpoint.
    pub auth: String,
    /// This session's basket channel.
    pub channel: String,
}

impl LivePage {
    /// The page's settings for `session`.
    pub fn of(channels: &Channels, session: &Session) -> Option<Self> {
        let channels = channels.config();
        if !channels.enabled {
            return None;
        }
        Some(Self {
            key: channels.key.clone(),
            path: channels.path.clone(),
            auth: channels.auth_path.clone(),
            channel: basket_channel(session)?,
        })
    }
}
