//! Who a visitor is to the rooms.
//!
//! A logged-in user (the shop's login) is the member `u-<hash of the user name>`: the same
//! in every browser they log in from, so two tabs or two devices are one member, once in
//! the presence list. A visitor who is not logged in gets `g-<random>` the first time a link
//! admits them, kept in their session (`rooms.visitor`); a session id rotation keeps it,
//! a logout or an expired session loses it (and with it the membership). The member id is
//! the presence `user_id`; names are what pages show.

use rondo::{Session, SessionError};
use sha2::{Digest, Sha256};

use super::error::RoomError;
use super::model::{hex, random_hex};

/// The session key of an anonymous visitor's member id.
pub const VISITOR: &str = "rooms.visitor";
/// The session key of the rooms a link admitted this session to (ids, latest last): the
/// rooms bound to the session, which `/rooms` lists.
pub const JOINED: &str = "rooms.joined";
/// At most this many rooms are remembered in [`JOINED`].
const JOINED_KEEP: usize = 20;

/// Binds room `id` to the session (kept in [`JOINED`], the oldest dropped past 20).
///
/// # Errors
///
/// The session store failed.
pub async fn bind_room(session: &Session, id: &str) -> Result<(), SessionError> {
    let id = id.to_owned();
    session
        .update(JOINED, move |rooms: Option<Vec<String>>| {
            let mut rooms = rooms.unwrap_or_default();
            rooms.retain(|r| *r != id);
            rooms.push(id.clone());
            while rooms.len() > JOINED_KEEP {
                rooms.remove(0);
            }
            rooms
        })
        .await?;
    Ok(())
}

/// The logged-in user (the shop's `user`), if any.
///
/// # Errors
///
/// The session store failed.
pub async fn user(session: &Session) -> Result<Option<String>, SessionError> {
    session.get("user").await
}

/// A user name's hash: 16 bytes of its SHA-256, in hex. Names reach Redis keys and
/// channel members only this way.
pub fn user_hash(user: &str) -> String {
    hex(&Sha256::digest(user.as_bytes())[..16])
}

/// The member id of a logged-in user.
pub fn user_member_id(user: &str) -> String {
    format!("u-{}", user_hash(user))
}

/// The member id this session has, if any (a logged-in user's, else the visitor id a link
/// gave it).
///
/// # Errors
///
/// The session store failed.
pub async fn member_id(session: &Session) -> Result<Option<String>, SessionError> {
    if let Some(user) = user(session).await? {
        return Ok(Some(user_member_id(&user)));
    }
    session.get(VISITOR).await
}

/// [`member_id`], giving an anonymous visitor a new id (kept in the session) when it has
/// none yet.
///
/// # Errors
///
/// The session store failed, or there was no randomness.
pub async fn member_id_or_new(session: &Session) -> Result<String, RoomError> {
    if let Some(id) = member_id(session).await? {
        return Ok(id);
    }
    let id = format!("g-{}", random_hex(12)?);
    session.put(VISITOR, &id)?;
    Ok(id)
}

/// The name a member gets when nothing names them: `Guest` and the first digits of their id.
pub fn guest_name(member_id: &str) -> String {
    let digits: String = member_id.chars().skip(2).take(4).collect();
    format!("Guest {digits}")
}
