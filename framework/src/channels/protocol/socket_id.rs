//! Socket ids: the server's name for one WebSocket connection.
//!
//! The server hands each connection a socket id in `pusher:connection_established`. The
//! client sends it to the application's auth endpoint (which signs it into every channel
//! authorization, so a signature cannot be replayed on another connection), and publishers
//! pass it back as `socket_id` to exclude the originating connection from an event.
//!
//! The format is two decimal numbers joined by a dot (`"123.456"`); server libraries check it
//! with `^\d+\.\d+$`. Here each part is also capped at 20 digits (a `u64`), which bounds the
//! work done on hostile input and still accepts every id this server generates.

use std::fmt;

/// The most digits accepted on either side of the dot (`u64::MAX` has 20).
const MAX_PART_DIGITS: usize = 20;

/// Why a string is not a valid socket id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid socket id {0:?}: expected two groups of 1 to 20 digits joined by a dot")]
pub struct SocketIdError(pub String);

/// A validated socket id such as `"1234.5678"`.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct SocketId(String);

impl SocketId {
    /// Builds an id from its two parts. Use a per-process or per-node number for one part and
    /// a random or counter value for the other; uniqueness is the caller's design.
    pub fn from_parts(high: u64, low: u64) -> Self {
        Self(format!("{high}.{low}"))
    }

    /// A fresh id from two random numbers of the operating system's generator. Random parts
    /// make ids unguessable and unique across nodes without coordination.
    pub fn random() -> Result<Self, getrandom::Error> {
        Ok(Self::from_parts(getrandom::u64()?, getrandom::u64()?))
    }

    /// Validates an id that came from outside (an auth request, the events API).
    pub fn parse(id: &str) -> Result<Self, SocketIdError> {
        if is_valid_socket_id(id) {
            Ok(Self(id.to_owned()))
        } else {
            Err(SocketIdError(truncated(id)))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `id` matches `^\d{1,20}\.\d{1,20}$` (ASCII digits only).
pub fn is_valid_socket_id(id: &str) -> bool {
    let Some((high, low)) = id.split_once('.') else {
        return false;
    };
    let part_ok = |p: &str| {
        !p.is_empty() && p.len() <= MAX_PART_DIGITS && p.bytes().all(|b| b.is_ascii_digit())
    };
    part_ok(high) && part_ok(low)
}

/// Keeps error messages (which may be logged or echoed) short when the input is huge.
fn truncated(id: &str) -> String {
    match id.char_indices().nth(48) {
        Some((cut, _)) => format!("{}...", &id[..cut]),
        None => id.to_owned(),
    }
}

impl TryFrom<String> for SocketId {
    type Error = SocketIdError;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        if is_valid_socket_id(&id) {
            Ok(Self(id))
        } else {
            Err(SocketIdError(truncated(&id)))
        }
    }
}

impl From<SocketId> for String {
    fn from(id: SocketId) -> Self {
        id.0
    }
}

impl AsRef<str> for SocketId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn from_parts_formats_two_numbers() {
        assert_eq!(SocketId::from_parts(123, 456).as_str(), "123.456");
        let max = SocketId::from_parts(u64::MAX, 0);
        assert_eq!(max.as_str(), "18446744073709551615.0");
        assert!(is_valid_socket_id(max.as_str()));
    }

    #[test]
    fn random_ids_are_valid_and_distinct() {
        let a = SocketId::random().unwrap();
        let b = SocketId::random().unwrap();
        assert!(is_valid_socket_id(a.as_str()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn parses_valid_ids() {
        for id in ["1.2", "1234.1234", "0.0", "12345678901234567890.1"] {
            assert_eq!(SocketId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_invalid_ids() {
        for id in [
            "",
            ".",
            "1.",
            ".1",
            "1",
            "1.2.3",
            "a.1",
            "1.b",
            "-1.2",
            "1 .2",
            "1.2\n",
            "+1.2",
            "\u{661}.1", // Arabic-Indic digit one: a Unicode digit, not an ASCII one
            "123456789012345678901.1",
        ] {
            assert_eq!(
                SocketId::parse(id),
                Err(SocketIdError(id.to_owned())),
                "{id:?}"
            );
        }
    }

    #[test]
    fn error_message_is_truncated_for_huge_input() {
        let huge = "9".repeat(10_000);
        let err = SocketId::parse(&huge).unwrap_err();
        assert_eq!(err.0.len(), 51);
        assert!(err.0.ends_with("..."));
    }

    #[test]
    fn serde_validates() {
        let id: SocketId = serde_json::from_str(r#""1.2""#).unwrap();
        assert_eq!(id.as_str(), "1.2");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""1.2""#);
        assert!(serde_json::from_str::<SocketId>(r#""x""#).is_err());
    }
}
