//! Channel authorization and user authentication signatures.
//!
//! The WebSocket server never talks to the application about who may subscribe. Instead the
//! client asks the application's auth endpoint (Laravel's `/broadcasting/auth`) with its
//! socket id and the channel name; the application, holding the app secret, answers with
//! `auth = "<key>:<hex HMAC-SHA256(secret, "<socket_id>:<channel>[:<channel_data>]")>"`. The
//! client puts that string in `pusher:subscribe`, and the server recomputes the HMAC. Binding
//! the socket id into the signature means a leaked `auth` is useless on any other connection.
//!
//! Presence channels also sign `channel_data`, a JSON string naming the member
//! (`{"user_id":"7","user_info":{"name":"Ana"}}`); the server trusts it only because it is
//! signed. User sign-in (`pusher:signin`) works the same way over
//! `"<socket_id>::user::<user_data>"`.
//!
//! Signatures are compared in constant time (`hmac`'s `verify_slice`, built on `subtle`), so a
//! client cannot learn a valid signature byte by byte from response timing.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::channel::{ChannelKind, ChannelName};
use super::query::hex_value;
use super::socket_id::SocketId;

type HmacSha256 = Hmac<Sha256>;

/// Pusher's limit on a presence member's `channel_data` (its "user object"), in bytes.
pub const MAX_CHANNEL_DATA_BYTES: usize = 1024;
/// Pusher's limit on a presence `user_id`, in bytes.
pub const MAX_USER_ID_LEN: usize = 128;

/// An application's key (public, sent by clients) and secret (signs everything).
#[derive(Clone)]
pub struct Credentials {
    key: String,
    /// HMAC state already keyed with the secret: each signature clones it instead of
    /// re-deriving the padded key.
    mac: HmacSha256,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Credentials for the app with this key and secret.
    pub fn new(key: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        // HMAC hashes long keys and pads short ones: every length is accepted.
        let Ok(mac) = HmacSha256::new_from_slice(secret.as_ref()) else {
            unreachable!("HMAC-SHA256 accepts keys of any length")
        };
        Self {
            key: key.into(),
            mac,
        }
    }

    /// The app key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Lower-case hex HMAC-SHA256 of the concatenated `parts`.
    pub(super) fn sign(&self, parts: &[&[u8]]) -> String {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        hex_encode(&mac.finalize().into_bytes())
    }

    /// Whether `hex_signature` is the HMAC of the concatenated `parts`, in constant time.
    pub(super) fn signature_matches(&self, parts: &[&[u8]], hex_signature: &str) -> bool {
        let Some(signature) = hex_decode(hex_signature) else {
            return false;
        };
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(&signature).is_ok()
    }

    /// The auth endpoint's answer for a private, encrypted or public channel.
    pub fn authorize_channel(
        &self,
        socket_id: &SocketId,
        channel: &ChannelName,
    ) -> ChannelAuthorization {
        let signature = self.sign(&[
            socket_id.as_str().as_bytes(),
            b":",
            channel.as_str().as_bytes(),
        ]);
        ChannelAuthorization {
            auth: format!("{}:{signature}", self.key),
            channel_data: None,
        }
    }

    /// The auth endpoint's answer for a presence channel: `member` is encoded once into
    /// `channel_data`, and that exact string is signed and returned.
    pub fn authorize_presence(
        &self,
        socket_id: &SocketId,
        channel: &ChannelName,
        member: &PresenceMember,
    ) -> ChannelAuthorization {
        let channel_data = member.to_channel_data();
        let signature = self.sign(&[
            socket_id.as_str().as_bytes(),
            b":",
            channel.as_str().as_bytes(),
            b":",
            channel_data.as_bytes(),
        ]);
        ChannelAuthorization {
            auth: format!("{}:{signature}", self.key),
            channel_data: Some(channel_data),
        }
    }

    /// Checks the `auth` (and `channel_data`) of a `pusher:subscribe` on this connection.
    ///
    /// Public channels need nothing (any `auth` is ignored). Private and encrypted channels
    /// need a valid signature; when the client sent `channel_data` anyway it is part of the
    /// signed string, as the signer included it. Presence channels need `channel_data`, which
    /// is returned as the new member once the signature over it checks out.
    pub fn verify_subscription(
        &self,
        socket_id: &SocketId,
        channel: &ChannelName,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Result<Option<PresenceMember>, AuthError> {
        let kind = channel.kind();
        if !kind.requires_auth() {
            return Ok(None);
        }
        let signature = self.signature_of(auth.ok_or(AuthError::MissingAuth)?)?;
        if kind == ChannelKind::Presence && channel_data.is_none() {
            return Err(AuthError::MissingChannelData);
        }
        let mut parts = vec![
            socket_id.as_str().as_bytes(),
            b":",
            channel.as_str().as_bytes(),
        ];
        if let Some(data) = channel_data {
            parts.extend([b":".as_slice(), data.as_bytes()]);
        }
        if !self.signature_matches(&parts, signature) {
            return Err(AuthError::InvalidSignature);
        }
        match (kind, channel_data) {
            (ChannelKind::Presence, Some(data)) => Ok(Some(PresenceMember::from_channel_data(
                data,
                MAX_CHANNEL_DATA_BYTES,
            )?)),
            _ => Ok(None),
        }
    }

    /// The auth endpoint's answer to a user sign-in (`pusher:signin`): signs `user_data`, a
    /// JSON string with at least an `"id"`.
    pub fn authenticate_user(&self, socket_id: &SocketId, user_data: &str) -> String {
        let signature = self.sign(&[
            socket_id.as_str().as_bytes(),
            b"::user::",
            user_data.as_bytes(),
        ]);
        format!("{}:{signature}", self.key)
    }

    /// Checks a `pusher:signin` and returns the signed-in user's id (`user_data.id`).
    pub fn verify_signin(
        &self,
        socket_id: &SocketId,
        auth: &str,
        user_data: &str,
    ) -> Result<String, AuthError> {
        let signature = self.signature_of(auth)?;
        let parts = [
            socket_id.as_str().as_bytes(),
            b"::user::",
            user_data.as_bytes(),
        ];
        if !self.signature_matches(&parts, signature) {
            return Err(AuthError::InvalidSignature);
        }
        match serde_json::from_str::<Value>(user_data) {
            Ok(Value::Object(map)) => match map.get("id") {
                Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
                _ => Err(AuthError::InvalidUserData),
            },
            _ => Err(AuthError::InvalidUserData),
        }
    }

    /// Splits `"<key>:<signature>"` and checks the key (public, so compared normally).
    fn signature_of<'a>(&self, auth: &'a str) -> Result<&'a str, AuthError> {
        let (key, signature) = auth.rsplit_once(':').ok_or(AuthError::MalformedAuth)?;
        if key != self.key {
            return Err(AuthError::WrongKey);
        }
        Ok(signature)
    }
}

/// What the application's auth endpoint answers (`{"auth":"key:sig"}`, plus `channel_data` for
/// presence channels); serialize it as the JSON response body.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChannelAuthorization {
    /// `"<key>:<hex signature>"`, to be sent back in `pusher:subscribe`.
    pub auth: String,
    /// The signed presence member, for presence channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<String>,
}

/// The per-channel key of an encrypted channel: SHA-256 of the channel name followed by the
/// app's 32-byte encryption master key. The auth endpoint adds it base64-encoded as
/// `shared_secret`; publishers derive the same key to encrypt. The server never needs it.
pub fn encryption_shared_secret(channel: &ChannelName, master_key: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(channel.as_str())
        .chain_update(master_key)
        .finalize()
        .into()
}

/// Why a subscription or sign-in was refused. All of them are answered the same way (the
/// subscription fails with status 401); the variants are for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A private, presence or encrypted channel without `auth`.
    #[error("this channel requires an auth signature")]
    MissingAuth,
    /// `auth` is not `"<key>:<signature>"`.
    #[error("auth is not of the form key:signature")]
    MalformedAuth,
    /// `auth` was signed for another app key.
    #[error("auth was signed for another app key")]
    WrongKey,
    /// The signature does not match this socket, channel and channel data.
    #[error("invalid signature")]
    InvalidSignature,
    /// A presence subscription without `channel_data`.
    #[error("presence channels require channel_data")]
    MissingChannelData,
    /// The presence `channel_data` is invalid.
    #[error(transparent)]
    ChannelData(#[from] ChannelDataError),
    /// Sign-in `user_data` is not a JSON object with a non-empty string `id`.
    #[error("user_data must be a JSON object with a non-empty string id")]
    InvalidUserData,
}

impl AuthError {
    /// The `pusher:subscription_error` answering a refused subscription to `channel`
    /// (type `AuthError`, status 401), which Laravel Echo hands to the channel's `.error()`.
    pub fn subscription_error_frame(&self, channel: &ChannelName) -> super::Frame {
        super::Frame::subscription_error(channel, "AuthError", &self.to_string(), 401)
    }
}

/// A presence channel member: who they are and what others see about them.
#[derive(Clone, Debug, PartialEq)]
pub struct PresenceMember {
    /// The user's id; numbers in `channel_data` are normalised to their decimal text.
    pub user_id: String,
    /// Anything the application shares about the user (a name, an avatar), if given.
    pub user_info: Option<Value>,
}

/// Why a presence `channel_data` string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelDataError {
    /// Longer than the limit.
    #[error("channel_data is {len} bytes, the limit is {max}")]
    TooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a JSON object.
    #[error("channel_data must be a JSON object")]
    NotAnObject,
    /// No `user_id`.
    #[error("channel_data has no user_id")]
    MissingUserId,
    /// `user_id` is not a non-empty string or an integer, or is too long.
    #[error(
        "user_id must be a non-empty string or an integer of at most {MAX_USER_ID_LEN} characters"
    )]
    InvalidUserId,
}

impl PresenceMember {
    /// A member with this id and info.
    pub fn new(user_id: impl Into<String>, user_info: Option<Value>) -> Self {
        Self {
            user_id: user_id.into(),
            user_info,
        }
    }

    /// Parses the `channel_data` of a presence subscription, refusing strings over
    /// `max_bytes` (Pusher: [`MAX_CHANNEL_DATA_BYTES`]) before parsing them.
    pub fn from_channel_data(
        channel_data: &str,
        max_bytes: usize,
    ) -> Result<Self, ChannelDataError> {
        if channel_data.len() > max_bytes {
            return Err(ChannelDataError::TooLarge {
                len: channel_data.len(),
                max: max_bytes,
            });
        }
        let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(channel_data) else {
            return Err(ChannelDataError::NotAnObject);
        };
        let user_id = match map.remove("user_id") {
            None | Some(Value::Null) => return Err(ChannelDataError::MissingUserId),
            Some(Value::String(id)) => id,
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            Some(_) => return Err(ChannelDataError::InvalidUserId),
        };
        if user_id.is_empty() || user_id.len() > MAX_USER_ID_LEN {
            return Err(ChannelDataError::InvalidUserId);
        }
        let user_info = map.remove("user_info").filter(|info| !info.is_null());
        Ok(Self { user_id, user_info })
    }

    /// Encodes the member as `channel_data`: `{"user_id":"…","user_info":…}`.
    pub fn to_channel_data(&self) -> String {
        let mut map = serde_json::Map::new();
        map.insert("user_id".into(), Value::String(self.user_id.clone()));
        if let Some(info) = &self.user_info {
            map.insert("user_info".into(), info.clone());
        }
        Value::Object(map).to_string()
    }
}

/// Lower-case hexadecimal.
pub(super) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes hexadecimal of either case; `None` for odd lengths or other characters.
pub(super) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
