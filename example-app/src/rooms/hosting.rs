//! Hosting: opening a room, listing the rooms one hosts, removing a member and closing a
//! room. Each action checks who asks, changes the records, and tells the room's open pages.

use rondo::signed::unix_now;
use rondo::Session;

use super::error::RoomError;
use super::live::{self, tell};
use super::model::{
    is_member_id, parse_capacity, parse_title, random_hex, Member, Room, ROOM_LIFETIME_SECS,
};
use super::visitor::{self, user_hash, user_member_id};
use super::Rooms;

/// How far ahead a room may be scheduled.
const MAX_LEAD_SECS: u64 = 366 * 24 * 3600;

/// A new room, as the form or the API gives it.
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// Its title.
    pub title: String,
    /// Its places (its host not counted).
    pub capacity: u64,
    /// When it starts (Unix seconds); now when absent.
    pub starts_at: Option<u64>,
}

impl Rooms {
    /// Creates a room hosted by the logged-in user of `session`.
    ///
    /// # Errors
    ///
    /// [`RoomError::NotLoggedIn`], [`RoomError::Invalid`] for a bad title, capacity or
    /// start, or a store failure.
    pub async fn create_room(&self, session: &Session, new: NewRoom) -> Result<Room, RoomError> {
        let user = visitor::user(session)
            .await?
            .ok_or(RoomError::NotLoggedIn)?;
        let title = parse_title(&new.title).map_err(RoomError::Invalid)?;
        let capacity = parse_capacity(new.capacity).map_err(RoomError::Invalid)?;
        let now = unix_now();
        let starts_at = new.starts_at.unwrap_or(now);
        if starts_at > now + MAX_LEAD_SECS {
            return Err(RoomError::Invalid("a room starts within a year".to_owned()));
        }
        let host = Member {
            id: user_member_id(&user),
            name: user.clone(),
            host: true,
            joined_at: now,
        };
        // The room lives a day past its start, or past now for a start in the past.
        let expires_at = starts_at.max(now) + ROOM_LIFETIME_SECS;
        for _ in 0..3 {
            let room = Room {
                id: random_hex(12)?,
                title: title.clone(),
                starts_at,
                capacity,
                host: host.id.clone(),
                host_name: user.clone(),
                closed: false,
                expires_at,
                created_at: now,
            };
            if self.store.create(&room, &host, &user_hash(&user)).await? {
                tracing::info!(room = %room.id, "room created");
                return Ok(room);
            }
        }
        Err(RoomError::Corrupt(
            "three random room ids were taken".to_owned(),
        ))
    }

    /// The open rooms the logged-in user of `session` hosts, latest start first.
    ///
    /// # Errors
    ///
    /// [`RoomError::NotLoggedIn`], or a store failure.
    pub async fn hosted(&self, session: &Session) -> Result<Vec<Room>, RoomError> {
        let user = visitor::user(session)
            .await?
            .ok_or(RoomError::NotLoggedIn)?;
        let ids = self.store.hosted_by(&user_hash(&user), unix_now()).await?;
        let mut rooms = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(room) = self.store.get(&id).await? {
                rooms.push(room);
            }
        }
        Ok(rooms)
    }

    /// Removes member `member` from room `id` (host only): they lose the membership, their
    /// sockets leave the room's channel, and the room is told. Whether they were a member.
    ///
    /// # Errors
    ///
    /// As [`Rooms::as_host`], [`RoomError::Invalid`] for the host themself, or a store
    /// failure.
    pub async fn remove(
        &self,
        session: &Session,
        id: &str,
        member: &str,
    ) -> Result<bool, RoomError> {
        let (room, _) = self.as_host(session, id).await?;
        if !is_member_id(member) {
            return Err(RoomError::NotFound);
        }
        let name = self.store.member(&room.id, member).await?.map(|m| m.name);
        let was = self.store.remove(&room.id, member).await?;
        // The membership is gone first, so the socket cannot come back once removed.
        self.channels
            .remove_user(&live::channel(&room.id), member)
            .await?;
        if was {
            let event = serde_json::json!({ "member": member, "name": name });
            tell(&self.channels, &room.id, live::REMOVED, &event).await;
            tracing::info!(room = %room.id, "a member was removed");
        }
        Ok(was)
    }

    /// Closes room `id` (host only): nobody joins any more, its links are withdrawn, every
    /// open page is told, and every socket leaves its channel. Whether it was open.
    ///
    /// # Errors
    ///
    /// As [`Rooms::as_host`], or a store failure.
    pub async fn close(&self, session: &Session, id: &str) -> Result<bool, RoomError> {
        let (room, _) = self.as_host(session, id).await?;
        if room.closed {
            return Ok(false);
        }
        self.store.close(&room.id).await?;
        for link in self.store.links(&room.id).await? {
            self.links.revoke(&link).await?;
        }
        tell(
            &self.channels,
            &room.id,
            live::CLOSED,
            &serde_json::json!({ "room": room.id }),
        )
        .await;
        let channel = live::channel(&room.id);
        if let Some((_, members)) = self.store.with_members(&room.id).await? {
            for member in members {
                self.channels.remove_user(&channel, &member.id).await?;
            }
        }
        tracing::info!(room = %room.id, "room closed");
        Ok(true)
    }
}
