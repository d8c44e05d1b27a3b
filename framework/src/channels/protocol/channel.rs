//! Channel names and the kind of channel a name denotes.
//!
//! Pusher has no channel registry: a channel exists while someone is subscribed, and its
//! *kind* (who may subscribe, whether members are tracked) is read from the name's prefix.
//! That makes the name the security boundary, so every name that reaches the server, from a
//! socket or from the HTTP API, is validated here first: 1 to 164 characters, each one of
//! `A-Z a-z 0-9 _ - = @ , . ;`.

use std::fmt;

/// The longest channel name Pusher accepts, prefix included.
pub const MAX_CHANNEL_NAME_LEN: usize = 164;

/// What a channel name's prefix says about who may subscribe and what they get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// No prefix: anyone who knows the name may subscribe, without authorization.
    Public,
    /// `private-`: subscribing needs an `auth` signature from the application's server.
    Private,
    /// `presence-`: like private, and the subscription carries a member (`channel_data`)
    /// that every subscriber sees join and leave.
    Presence,
    /// `private-encrypted-`: like private, but publishers encrypt `data` end to end with a
    /// per-channel key the server never sees; the server only relays ciphertext.
    Encrypted,
}

impl ChannelKind {
    /// The kind denoted by `name`'s prefix (the name itself is not validated here).
    pub fn of(name: &str) -> Self {
        if name.starts_with("private-encrypted-") {
            Self::Encrypted
        } else if name.starts_with("private-") {
            Self::Private
        } else if name.starts_with("presence-") {
            Self::Presence
        } else {
            Self::Public
        }
    }

    /// Whether subscribing needs a valid `auth` signature.
    pub fn requires_auth(self) -> bool {
        !matches!(self, Self::Public)
    }

    /// Whether clients may trigger `client-` events on it. Pusher allows them on private and
    /// presence channels only; on encrypted channels clients cannot encrypt (pusher-js
    /// refuses to trigger there), so a plaintext client event would defeat the encryption.
    pub fn allows_client_events(self) -> bool {
        matches!(self, Self::Private | Self::Presence)
    }
}

/// Why a string is not a valid channel name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// The name is the empty string.
    #[error("channel name is empty")]
    Empty,
    /// The name is longer than [`MAX_CHANNEL_NAME_LEN`] characters.
    #[error("channel name is {len} characters long, the limit is {MAX_CHANNEL_NAME_LEN}")]
    TooLong {
        /// The name's length in bytes (equal to characters for a name that is otherwise valid).
        len: usize,
    },
    /// The name holds a character outside `A-Z a-z 0-9 _ - = @ , . ;`.
    #[error("channel name contains {0:?}; only A-Z a-z 0-9 _ - = @ , . ; are allowed")]
    InvalidChar(char),
}

/// A validated channel name (1..=164 characters of `[A-Za-z0-9_\-=@,.;]`).
///
/// Deserializing validates too, so a `ChannelName` inside a parsed request is always valid.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelName(String);

impl ChannelName {
    /// Validates `name` and wraps it.
    pub fn new(name: impl Into<String>) -> Result<Self, ChannelNameError> {
        let name = name.into();
        validate_channel_name(&name)?;
        Ok(Self(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind of channel the prefix denotes.
    pub fn kind(&self) -> ChannelKind {
        ChannelKind::of(&self.0)
    }

    /// Whether this is a cache channel (`cache-`, `private-cache-`, `private-encrypted-cache-`,
    /// `presence-cache-`), which remembers its last event for new subscribers. The kind is
    /// still given by [`ChannelName::kind`]; caching is an extra property.
    pub fn is_cache(&self) -> bool {
        let rest = match self.kind() {
            ChannelKind::Public => self.as_str(),
            ChannelKind::Private => &self.0["private-".len()..],
            ChannelKind::Presence => &self.0["presence-".len()..],
            ChannelKind::Encrypted => &self.0["private-encrypted-".len()..],
        };
        rest.starts_with("cache-")
    }
}

/// Checks the Pusher channel naming rules without allocating.
pub fn validate_channel_name(name: &str) -> Result<(), ChannelNameError> {
    if name.is_empty() {
        return Err(ChannelNameError::Empty);
    }
    if let Some(bad) = name.chars().find(|&c| !is_channel_char(c)) {
        return Err(ChannelNameError::InvalidChar(bad));
    }
    // Checked after the characters: a valid name is ASCII, so bytes are characters.
    if name.len() > MAX_CHANNEL_NAME_LEN {
        return Err(ChannelNameError::TooLong { len: name.len() });
    }
    Ok(())
}

fn is_channel_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '@' | ',' | '.' | ';')
}

impl TryFrom<String> for ChannelName {
    type Error = ChannelNameError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

impl From<ChannelName> for String {
    fn from(name: ChannelName) -> Self {
        name.0
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_prefixes() {
        assert_eq!(ChannelKind::of("orders"), ChannelKind::Public);
        assert_eq!(
            ChannelKind::of("private-App.Models.User.1"),
            ChannelKind::Private
        );
        assert_eq!(ChannelKind::of("presence-chat.7"), ChannelKind::Presence);
        assert_eq!(
            ChannelKind::of("private-encrypted-dm.1.2"),
            ChannelKind::Encrypted
        );
        // Prefixes are case-sensitive and must be complete.
        assert_eq!(ChannelKind::of("Private-x"), ChannelKind::Public);
        assert_eq!(ChannelKind::of("private"), ChannelKind::Public);
        assert_eq!(ChannelKind::of("presencex"), ChannelKind::Public);
    }

    #[test]
    fn kind_properties() {
        assert!(!ChannelKind::Public.requires_auth());
        assert!(ChannelKind::Private.requires_auth());
        assert!(ChannelKind::Presence.requires_auth());
        assert!(ChannelKind::Encrypted.requires_auth());
        assert!(!ChannelKind::Public.allows_client_events());
        assert!(ChannelKind::Private.allows_client_events());
        assert!(ChannelKind::Presence.allows_client_events());
        assert!(!ChannelKind::Encrypted.allows_client_events());
    }

    #[test]
    fn accepts_every_allowed_character() {
        let name = "private-azAZ09_-=@,.;";
        let channel = ChannelName::new(name).unwrap();
        assert_eq!(channel.as_str(), name);
        assert_eq!(channel.kind(), ChannelKind::Private);
        assert_eq!(channel.to_string(), name);
    }

    #[test]
    fn length_limit_is_164_inclusive() {
        let ok = format!("presence-{}", "a".repeat(MAX_CHANNEL_NAME_LEN - 9));
        assert_eq!(ok.len(), 164);
        assert!(ChannelName::new(ok).is_ok());
        let long = "a".repeat(165);
        assert_eq!(
            ChannelName::new(long),
            Err(ChannelNameError::TooLong { len: 165 })
        );
    }

    #[test]
    fn rejects_empty_and_bad_characters() {
        assert_eq!(ChannelName::new(""), Err(ChannelNameError::Empty));
        for (name, bad) in [
            ("my channel", ' '),
            ("a/b", '/'),
            ("a:b", ':'),
            ("#server-to-user-1", '#'),
            ("caf\u{e9}", '\u{e9}'),
            ("a*", '*'),
        ] {
            assert_eq!(
                ChannelName::new(name),
                Err(ChannelNameError::InvalidChar(bad)),
                "{name}"
            );
        }
    }

    #[test]
    fn cache_channels_are_recognised_under_every_kind() {
        for name in [
            "cache-x",
            "private-cache-x",
            "presence-cache-x",
            "private-encrypted-cache-x",
        ] {
            assert!(ChannelName::new(name).unwrap().is_cache(), "{name}");
        }
        for name in ["x-cache-", "private-x", "presence-cachex", "cachex"] {
            assert!(!ChannelName::new(name).unwrap().is_cache(), "{name}");
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let channel: ChannelName = serde_json::from_str(r#""private-a""#).unwrap();
        assert_eq!(channel.as_str(), "private-a");
        assert_eq!(serde_json::to_string(&channel).unwrap(), r#""private-a""#);
        let err = serde_json::from_str::<ChannelName>(r#""a b""#).unwrap_err();
        assert!(err.to_string().contains("only A-Z"), "{err}");
    }
}
