//! The rooms' JSON API: every action of the pages, for programs (and for the room page's
//! own script). Bodies are JSON (`Content-Type: application/json`, which a form on another
//! site cannot send); the upload is multipart and must carry `X-Requested-With`, which a
//! form on another site cannot add either. Errors are `{"error": ..., "status": ...}`.

use http::{HeaderMap, StatusCode};
use rondo::files::Multipart;
use rondo::{Json, Path, Redirect, Session, State};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::content::{AvToken, FileView};
use super::error::RoomError;
use super::hosting::NewRoom;
use super::invites::{NewRoomLink, RoomLink};
use super::model::{ChatMessage, Member, Room};
use super::{live, Rooms};

/// `POST /api/rooms`'s body.
#[derive(Debug, Deserialize)]
pub struct CreateRoom {
    /// 1 to 100 printable characters.
    pub title: String,
    /// Places besides the host: 1 to 1000.
    pub capacity: u64,
    /// Unix seconds; now when absent.
    #[serde(default)]
    pub starts_at: Option<u64>,
}

/// A room as its members see it.
#[derive(Debug, Serialize)]
pub struct RoomView {
    /// The room.
    pub room: Room,
    /// Its members, host first.
    pub members: Vec<Member>,
    /// The member asking.
    pub me: Member,
    /// Its presence channel.
    pub channel: String,
    /// Its page.
    pub path: String,
}

/// `POST /api/rooms`: a new room, hosted by the logged-in user (401 otherwise). Answers
/// 201 with the room and its page's path.
///
/// # Errors
///
/// 401 without a login, 400 for a bad title, capacity or start.
pub async fn create(
    State(rooms): State<Rooms>,
    session: Session,
    Json(body): Json<CreateRoom>,
) -> Result<(StatusCode, Json<Value>), RoomError> {
    let new = NewRoom {
        title: body.title,
        capacity: body.capacity,
        starts_at: body.starts_at,
    };
    let room = rooms.create_room(&session, new).await?;
    let path = format!("/rooms/{}", room.id);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "room": room, "path": path })),
    ))
}

/// `GET /api/rooms`: the rooms the logged-in user hosts.
///
/// # Errors
///
/// 401 without a login.
pub async fn list(
    State(rooms): State<Rooms>,
    session: Session,
) -> Result<Json<Vec<Room>>, RoomError> {
    Ok(Json(rooms.hosted(&session).await?))
}

/// `GET /api/rooms/{id}`: the room, its members and who asks (members only).
///
/// # Errors
///
/// 404 for no such room, 403 for a visitor who is not a member.
pub async fn show(
    State(rooms): State<Rooms>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<RoomView>, RoomError> {
    let (_, me) = rooms.as_member(&session, &id).await?;
    let (room, members) = rooms
        .store
        .with_members(&id)
        .await?
        .ok_or(RoomError::NotFound)?;
    Ok(Json(RoomView {
        channel: live::channel(&room.id),
        path: format!("/rooms/{}", room.id),
        room,
        members,
        me,
    }))
}

/// `POST /api/rooms/{id}/close` with `{}`: the host closes the room.
///
/// # Errors
///
/// 403 for anyone but the host.
pub async fn close(
    State(rooms): State<Rooms>,
    session: Session,
    Path(id): Path<String>,
    Json(_): Json<Value>,
) -> Result<Json<Value>, RoomError> {
    let closed = rooms.close(&session, &id).await?;
    Ok(Json(json!({ "closed": true, "changed": closed })))
}

/// `POST /api/rooms/{id}/links`'s body; every field is optional.
#[derive(Debug, Default, Deserialize)]
pub struct CreateLink {
    /// How many people it admits (1 to the room's capacity; default the capacity).
    #[serde(default)]
    pub max_uses: Option<u64>,
    /// When it opens (Unix seconds; default the room's start).
    #[serde(default)]
    pub starts_at: Option<u64>,
    /// How long it is valid once open, in seconds (60 to 86400; default 3600).
    #[serde(default)]
    pub valid_for: Option<u64>,
    /// For a personal invitation, the participant's name.
    #[serde(default)]
    pub participant: Option<String>,
}

/// `POST /api/rooms/{id}/links`: a join link (host only); 201 with the link.
///
/// # Errors
///
/// 403 for anyone but the host, 410 for a closed room, 400 for bad numbers.
pub async fn create_link(
    State(rooms): State<Rooms>,
    session: Session,
    Path(id): Path<String>,
    Json(body): Json<CreateLink>,
) -> Result<(StatusCode, Json<RoomLink>), RoomError> {
    let new = NewRoomLink {
        max_uses: body.max_uses,
        starts_at: body.starts_at,
        valid_for: body.valid_for,
        participant: body.participant,
    };
    let link = rooms.create_link(&session, &id, new).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// `GET /api/rooms/{id}/links`: the room's links (host only).
///
/// # Errors
///
/// 403 for anyone but the host.
pub async fn links(
    State(rooms): State<Rooms>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<Vec<RoomLink>>, RoomError> {
    Ok(Json(rooms.room_links(&session, &id).await?))
}

/// `DELETE /api/rooms/{id}/links/{link}`: withdraws a link (host only).
///
/// # Errors
///
/// 403 for anyone but the host, 404 for a link that is not the room's.
pub async fn revoke_link(
    State(rooms): State<Rooms>,
    session: Session,
    Path((id, link)): Path<(String, String)>,
) -> Result<Json<Value>, RoomError> {
    if !rooms.revoke_link(&session, &id, &link).await? {
        return Err(RoomError::NotFound);
    }
    Ok(Json(json!({ "revoked": true })))
}

/// `DELETE /api/rooms/{id}/members/{member}`: the host removes a member.
///
/// # Errors
///
/// 403 for anyone but the host, 400 for the host themself, 404 for someone who is not a
/// member.
pub async fn remove(
    State(rooms): State<Rooms>,
    session: Session,
    Path((id, member)): Path<(String, String)>,
) -> Result<Json<Value>, RoomError> {
    if !rooms.remove(&session, &id, &member).await? {
        return Err(RoomError::NotFound);
    }
    Ok(Json(json!({ "removed": true })))
}

/// `GET /api/rooms/{id}/chat`: the last 50 messages, oldest first (members only).
///
/// # Errors
///
/// 403 for a visitor who is not a member.
pub async fn chat(
    State(rooms): State<Rooms>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<Vec<ChatMessage>>, RoomError> {
    let (room, _) = rooms.as_member(&session, &id).await?;
    Ok(Json(rooms.store.chat(&room.id).await?))
}

/// `POST /api/rooms/{id}/chat`'s body.
#[derive(Debug, Deserialize)]
pub struct Say {
    /// 1 to 500 characters.
    pub text: String,
}

/// `POST /api/rooms/{id}/chat`: a message, broadcast to the room; 201 with it.
///
/// # Errors
///
/// 403 for a visitor who is not a member, 410 for a closed room, 400 for an empty or too
/// long message.
pub async fn say(
    State(rooms): State<Rooms>,
    session: Session,
    Path(id): Path<String>,
    Json(body): Json<Say>,
) -> Result<(StatusCode, Json<ChatMessage>), RoomError> {
    let message = rooms.say(&session, &id, &body.text).await?;
    Ok((StatusCode::CREATED, Json(message)))
}

/// `GET /api/rooms/{id}/files`: the shared files with links that expire (members only).
///
/// # Errors
///
/// 403 for a visitor who is not a member.
pub async fn files(
    State(rooms): State<Rooms>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<Vec<FileView>>, RoomError> {
    Ok(Json(rooms.room_files(&session, &id).await?))
}

/// `POST /api/rooms/{id}/files`: multipart with a `file` part and an `X-Requested-With`
/// header; the file is kept until the room ends, against the room's quota, and the room is
/// told. 201 with the file.
///
/// # Errors
///
/// 403 without `X-Requested-With` or for a visitor who is not a member, 410 for a closed
/// room, 400 without a `file` part, 413 past the limits or the room's quota, 415 for a
/// type `[files] allowed_types` does not list.
pub async fn upload(
    State(rooms): State<Rooms>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<(StatusCode, Json<FileView>), RoomError> {
    if !headers.contains_key("x-requested-with") {
        return Err(RoomError::CrossSite);
    }
    // Checked before the part is looked at: a stranger learns nothing of the form.
    rooms.as_member_of_open(&session, &id).await?;
    let upload = form
        .take_file("file")
        .ok_or_else(|| RoomError::Invalid("no file part named \"file\"".to_owned()))?;
    let view = rooms.share(&session, &id, upload).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /rooms/{id}/files/{file}`: for a member, a redirect (303) to a signed link to the
/// file, valid for a minute; 403 for anyone else.
///
/// # Errors
///
/// 403 for a visitor who is not a member, 404 for a file the room does not have.
pub async fn download(
    State(rooms): State<Rooms>,
    session: Session,
    Path((id, file)): Path<(String, String)>,
) -> Result<Redirect, RoomError> {
    let link = rooms.file_link(&session, &id, &file).await?;
    Ok(Redirect::to(&link))
}

/// `GET /api/rooms/{id}/token`: a LiveKit token for the member asking, in the room's
/// LiveKit room (`room-{id}`), valid for ten minutes.
///
/// # Errors
///
/// 403 for a visitor who is not a member, 410 for a closed room, 503 without `[livekit]`.
pub async fn token(
    State(rooms): State<Rooms>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<AvToken>, RoomError> {
    Ok(Json(rooms.token(&session, &id).await?))
}
