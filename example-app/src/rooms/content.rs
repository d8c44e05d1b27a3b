//! What members do in a room: chat, share files (kept as temporary files owned by the
//! room), list and fetch them, and get a LiveKit token. Each action checks the membership,
//! changes the records, and tells the room's open pages.

use std::time::Duration;

use rondo::files::{StoredFile, UploadedFile};
use rondo::livekit::RoomGrants;
use rondo::signed::unix_now;
use rondo::Session;
use serde::Serialize;

use super::error::RoomError;
use super::live::{self, tell};
use super::model::{parse_chat, ChatMessage, Room, SharedFile};
use super::Rooms;

/// How long a file link in a listing works (each listing makes new ones).
pub const FILE_LINK_TTL: Duration = Duration::from_secs(600);
/// How long a LiveKit token lets its holder join.
pub const TOKEN_TTL: Duration = Duration::from_secs(600);

/// A file as a member sees it listed: the record, a fresh signed link (expiring), and the
/// room's own download path (checked against the membership at each use).
#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    /// The record.
    #[serde(flatten)]
    pub file: SharedFile,
    /// `/rooms/{room}/files/{id}`.
    pub path: String,
    /// A signed link to the bytes, valid for [`FILE_LINK_TTL`] (or until the file goes).
    pub url: String,
}

/// A LiveKit token for a member.
#[derive(Debug, Clone, Serialize)]
pub struct AvToken {
    /// The LiveKit server URL.
    pub url: String,
    /// The room name in LiveKit: `room-{id}`.
    pub room: String,
    /// The member's identity there (their member id).
    pub identity: String,
    /// The JWT.
    pub token: String,
    /// When the token stops admitting (Unix seconds).
    pub expires_at: u64,
}

impl Rooms {
    /// Posts a chat message in room `id` as the member `session` is, and tells the room.
    ///
    /// # Errors
    ///
    /// As [`Rooms::as_member_of_open`], [`RoomError::Invalid`] for an empty or too long
    /// message, or a store failure.
    pub async fn say(
        &self,
        session: &Session,
        id: &str,
        text: &str,
    ) -> Result<ChatMessage, RoomError> {
        let (room, me) = self.as_member_of_open(session, id).await?;
        let text = parse_chat(text).map_err(RoomError::Invalid)?;
        let message = ChatMessage {
            at_ms: now_ms(),
            from: me.id,
            name: me.name,
            text,
        };
        self.store.add_chat(&room, &message).await?;
        tell(&self.channels, &room.id, live::CHAT, &message).await;
        Ok(message)
    }

    /// Keeps `upload` as a file of room `id`, shared by the member `session` is, and tells
    /// the room.
    ///
    /// # Errors
    ///
    /// As [`Rooms::as_member_of_open`], [`rondo::files::FilesError::QuotaExceeded`] past
    /// the room's quota, or a store failure.
    pub async fn share(
        &self,
        session: &Session,
        id: &str,
        upload: UploadedFile,
    ) -> Result<FileView, RoomError> {
        let (room, me) = self.as_member_of_open(session, id).await?;
        let now = unix_now();
        let ttl = Duration::from_secs(room.expires_at.saturating_sub(now).max(1));
        let stored = self
            .files
            .store(upload, &format!("room:{}", room.id), ttl)
            .await?;
        let file = SharedFile {
            id: stored.id.clone(),
            name: stored.name.clone(),
            size: stored.size,
            content_type: stored.content_type.clone(),
            by: me.name,
            expires_at: stored.expires_at,
            shared_at_ms: now_ms(),
        };
        if let Err(err) = self.store.add_file(&room, &file).await {
            // Not listed, so never reachable: take it back now rather than at its expiry.
            let _ = self.files.delete(&stored.id).await;
            return Err(err);
        }
        let view = self.view(&room, file)?;
        tell(&self.channels, &room.id, live::FILE, &view.for_broadcast()).await;
        Ok(view)
    }

    /// The files shared in room `id`, with fresh links (members only).
    ///
    /// # Errors
    ///
    /// As [`Rooms::as_member`], or a store failure.
    pub async fn room_files(
        &self,
        session: &Session,
        id: &str,
    ) -> Result<Vec<FileView>, RoomError> {
        let (room, _) = self.as_member(session, id).await?;
        self.files_of(&room).await
    }

    /// Room `room`'s files, with fresh links, whoever asks.
    pub(crate) async fn files_of(&self, room: &Room) -> Result<Vec<FileView>, RoomError> {
        let files = self.store.files(&room.id, unix_now()).await?;
        files.into_iter().map(|f| self.view(room, f)).collect()
    }

    /// The signed link to file `file` of room `id`, for a member: what the room's download
    /// path redirects to.
    ///
    /// # Errors
    ///
    /// As [`Rooms::as_member`], [`RoomError::NotFound`] for a file the room does not have.
    pub async fn file_link(
        &self,
        session: &Session,
        id: &str,
        file: &str,
    ) -> Result<String, RoomError> {
        let (room, _) = self.as_member(session, id).await?;
        let file = self
            .store
            .file(&room.id, file)
            .await?
            .filter(|f| f.expires_at > unix_now())
            .ok_or(RoomError::NotFound)?;
        Ok(self
            .files
            .path(&stored(&room, &file), Duration::from_secs(60))?)
    }

    fn view(&self, room: &Room, file: SharedFile) -> Result<FileView, RoomError> {
        let url = self.files.path(&stored(room, &file), FILE_LINK_TTL)?;
        Ok(FileView {
            path: format!("/rooms/{}/files/{}", room.id, file.id),
            url,
            file,
        })
    }

    /// A LiveKit token for the member `session` is, in room `id`.
    ///
    /// # Errors
    ///
    /// As [`Rooms::as_member_of_open`], [`RoomError::NoLiveKit`] without `[livekit]`.
    pub async fn token(&self, session: &Session, id: &str) -> Result<AvToken, RoomError> {
        let (room, me) = self.as_member_of_open(session, id).await?;
        let livekit = self.livekit.as_ref().ok_or(RoomError::NoLiveKit)?;
        let name = format!("room-{}", room.id);
        let token = livekit.token(&me.id, &me.name, &name, RoomGrants::PARTICIPANT, TOKEN_TTL)?;
        Ok(AvToken {
            url: livekit.url().to_owned(),
            room: name,
            identity: me.id,
            token,
            expires_at: unix_now() + TOKEN_TTL.as_secs(),
        })
    }
}

impl FileView {
    /// What the room's pages are told of a new file: the record and the room's download
    /// path, not the signed link (the path makes a fresh one for each member who uses it).
    fn for_broadcast(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.file.id,
            "name": self.file.name,
            "size": self.file.size,
            "content_type": self.file.content_type,
            "by": self.file.by,
            "expires_at": self.file.expires_at,
            "path": self.path,
        })
    }
}

/// The temporary file behind a shared one, as [`rondo::files::TempFiles::path`] needs it.
fn stored(room: &Room, file: &SharedFile) -> StoredFile {
    StoredFile {
        id: file.id.clone(),
        owner: format!("room:{}", room.id),
        name: file.name.clone(),
        content_type: file.content_type.clone(),
        size: file.size,
        expires_at: file.expires_at,
    }
}

/// Unix milliseconds by this server's clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
