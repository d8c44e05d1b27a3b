//! The records of what happens in a room: its chat (the last [`CHAT_KEEP`] messages), its
//! links and its shared files, each a key of the room's own (`rooms:{<id>}:chat`,
//! `:links`, `:files`) that expires with it.

use std::collections::HashMap;

use super::{from_json, to_json, RoomStore};
use crate::rooms::error::RoomError;
use crate::rooms::model::{ChatMessage, Room, SharedFile, CHAT_KEEP};

impl RoomStore {
    /// Appends `message` to room `id`'s chat, keeping the last [`CHAT_KEEP`].
    ///
    /// # Errors
    ///
    /// Redis unreachable.
    pub async fn add_chat(&self, room: &Room, message: &ChatMessage) -> Result<(), RoomError> {
        let keys = self.keys(&room.id)?;
        let mut invocation = self.scripts.chat.prepare_invoke();
        invocation
            .key(&keys.chat)
            .arg(to_json(message)?)
            .arg(CHAT_KEEP)
            .arg(room.expires_at);
        let _: i64 = self.invoke(invocation).await?;
        Ok(())
    }

    /// Room `id`'s kept chat, oldest first.
    ///
    /// # Errors
    ///
    /// Redis unreachable, or records this store did not write.
    pub async fn chat(&self, id: &str) -> Result<Vec<ChatMessage>, RoomError> {
        let keys = self.keys(id)?;
        let lines: Vec<String> = self
            .run(|mut c| async move {
                redis::cmd("LRANGE")
                    .arg(&keys.chat)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        lines.iter().map(|json| from_json(json)).collect()
    }

    /// Records link `link` as one of room `id`'s.
    ///
    /// # Errors
    ///
    /// Redis unreachable.
    pub async fn add_link(&self, room: &Room, link: &str) -> Result<(), RoomError> {
        let keys = self.keys(&room.id)?;
        let (link, expires) = (link.to_owned(), room.expires_at);
        self.run(|mut c| async move {
            redis::pipe()
                .cmd("SADD")
                .arg(&keys.links)
                .arg(&link)
                .ignore()
                .cmd("EXPIREAT")
                .arg(&keys.links)
                .arg(expires)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// The ids of room `id`'s links.
    ///
    /// # Errors
    ///
    /// Redis unreachable.
    pub async fn links(&self, id: &str) -> Result<Vec<String>, RoomError> {
        let keys = self.keys(id)?;
        self.run(|mut c| async move {
            redis::cmd("SMEMBERS")
                .arg(&keys.links)
                .query_async::<Vec<String>>(&mut c)
                .await
        })
        .await
    }

    /// Records `file` as shared in room `id`.
    ///
    /// # Errors
    ///
    /// Redis unreachable.
    pub async fn add_file(&self, room: &Room, file: &SharedFile) -> Result<(), RoomError> {
        let keys = self.keys(&room.id)?;
        let (id, json, expires) = (file.id.clone(), to_json(file)?, room.expires_at);
        self.run(|mut c| async move {
            redis::pipe()
                .cmd("HSET")
                .arg(&keys.files)
                .arg(&id)
                .arg(&json)
                .ignore()
                .cmd("EXPIREAT")
                .arg(&keys.files)
                .arg(expires)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// The files shared in room `id` that have not expired by `now`, oldest first.
    ///
    /// # Errors
    ///
    /// Redis unreachable, or records this store did not write.
    pub async fn files(&self, id: &str, now: u64) -> Result<Vec<SharedFile>, RoomError> {
        let keys = self.keys(id)?;
        let records: HashMap<String, String> = self
            .run(|mut c| async move {
                redis::cmd("HGETALL")
                    .arg(&keys.files)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut files = records
            .values()
            .map(|json| from_json::<SharedFile>(json))
            .collect::<Result<Vec<_>, _>>()?;
        files.retain(|f| f.expires_at > now);
        files.sort_by(|a, b| {
            a.shared_at_ms
                .cmp(&b.shared_at_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(files)
    }

    /// File `file` of room `id`, if it was shared there.
    ///
    /// # Errors
    ///
    /// Redis unreachable, or a record this store did not write.
    pub async fn file(&self, id: &str, file: &str) -> Result<Option<SharedFile>, RoomError> {
        let keys = self.keys(id)?;
        let file = file.to_owned();
        let json: Option<String> = self
            .run(|mut c| async move {
                redis::cmd("HGET")
                    .arg(&keys.files)
                    .arg(&file)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        json.as_deref().map(from_json).transpose()
    }
}
