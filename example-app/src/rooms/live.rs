//! A room's presence channel, `presence-room.{id}`: who is here, and everything that
//! happens in the room on its way to every open page, on whichever server.
//!
//! Only the room's members may join it (the rule reads the membership in Redis, so a
//! removed member is refused at once); they join as their member id, with their name and
//! whether they host as `user_info`. The server broadcasts the chat ([`CHAT`]), shared
//! files ([`FILE`]), removals ([`REMOVED`]) and the room's closing ([`CLOSED`]); members'
//! pages send their pointer positions themselves, as client events (`client-pointer`),
//! which the channel relays to the others with the sender's `user_id`.

use rondo::channels::{ChannelParams, Channels, ChannelsBuilder, PresenceMember};
use rondo::{Session, SessionError};
use serde::Serialize;

use super::error::RoomError;
use super::model::is_room_id;
use super::store::RoomStore;
use super::visitor::member_id;

/// A chat message; its data is the [`ChatMessage`](super::model::ChatMessage).
pub const CHAT: &str = "chat.message";
/// A file was shared; its data is the [`SharedFile`](super::model::SharedFile) and its
/// room-checked download path.
pub const FILE: &str = "file.shared";
/// The host removed a member: `{"member": id, "name": name}`.
pub const REMOVED: &str = "member.removed";
/// The host closed the room: `{"room": id}`.
pub const CLOSED: &str = "room.closed";

/// The presence channel of room `id`.
pub fn channel(id: &str) -> String {
    format!("presence-room.{id}")
}

/// Adds the rooms' channel rule to `builder`.
pub fn channels(builder: ChannelsBuilder, store: RoomStore) -> ChannelsBuilder {
    builder.presence(
        "room.{id}",
        move |session: Session, params: ChannelParams| {
            let store = store.clone();
            let id = params.get("id").map(str::to_owned);
            async move { member_of(&store, &session, id.as_deref()).await }
        },
    )
}

/// The presence member `session` joins room `id`'s channel as, if it is a member of an
/// open room.
async fn member_of(
    store: &RoomStore,
    session: &Session,
    id: Option<&str>,
) -> Result<Option<PresenceMember>, SessionError> {
    let Some(id) = id.filter(|id| is_room_id(id)) else {
        return Ok(None);
    };
    let Some(me) = member_id(session).await? else {
        return Ok(None);
    };
    let found = async {
        let Some(room) = store.get(id).await? else {
            return Ok::<_, RoomError>(None);
        };
        if room.closed {
            return Ok(None);
        }
        store.member(id, &me).await
    };
    match found.await {
        Ok(member) => Ok(member.map(|m| {
            let info = serde_json::json!({ "name": m.name, "host": m.host });
            PresenceMember::new(m.id, Some(info))
        })),
        Err(RoomError::Unavailable(why)) => Err(SessionError::Unavailable(why)),
        Err(err) => {
            tracing::warn!(error = %err, room = id, "room channel refused");
            Ok(None)
        }
    }
}

/// Broadcasts `event` with `data` to room `id`'s page (logged, never fatal: what happened
/// stands, and pages catch up when reloaded).
pub async fn tell<T: Serialize + ?Sized>(channels: &Channels, id: &str, event: &str, data: &T) {
    if let Err(err) = channels.broadcast(&channel(id), event, data).await {
        tracing::warn!(error = %err, event, room = id, "room event not sent");
    }
}
