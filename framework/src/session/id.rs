//! Session ids: 256 bits from the OS CSPRNG, URL-safe base64 in the cookie, and a SHA-256
//! hash of the id as the store key, so a store dump or `MONITOR` never shows a live cookie.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Bytes of randomness in an id.
const ID_BYTES: usize = 32;
/// Length of an id in the cookie: base64 of 32 bytes without padding.
const ID_CHARS: usize = 43;

/// A session id as it appears in the cookie.
///
/// `Debug` and `Display` print a short hash of the id, never the id: ids end up in logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random id.
    ///
    /// # Errors
    ///
    /// The operating system's random source failed (practically never; the request then
    /// gets a 503 rather than a guessable id).
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Parses an id from a cookie value; `None` unless it has exactly the shape Rondo
    /// generates (43 URL-safe base64 characters), so garbage never reaches the store.
    pub fn parse(value: &str) -> Option<Self> {
        let ok = value.len() == ID_CHARS
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(value.to_owned()))
    }

    /// The id as sent in the cookie.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The store key for this id under `prefix`: `{prefix}session:{sha256(id) in hex}`.
    pub fn store_key(&self, prefix: &str) -> StoreKey {
        let digest = Sha256::digest(self.0.as_bytes());
        let mut key = String::with_capacity(prefix.len() + 8 + 64);
        key.push_str(prefix);
        key.push_str("session:");
        for byte in digest {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        StoreKey(key)
    }

    /// A short, non-reversible tag for logs (first 8 hex digits of the id's hash).
    pub fn log_tag(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        digest[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.log_tag())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.log_tag())
    }
}

/// Where a session lives in the store: derived from the id, never the id itself.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct StoreKey(String);

impl StoreKey {
    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by store key be searched with the key text Redis reports.
impl std::borrow::Borrow<str> for StoreKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = SessionId::generate().expect("random");
        let b = SessionId::generate().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 43);
        assert_eq!(SessionId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn foreign_shapes_are_refused() {
        assert_eq!(SessionId::parse(""), None);
        assert_eq!(SessionId::parse("abc"), None);
        assert_eq!(SessionId::parse(&"a".repeat(44)), None);
        assert_eq!(SessionId::parse(&format!("{}=", "a".repeat(42))), None);
        assert_eq!(SessionId::parse(&"é".repeat(21)), None);
    }

    #[test]
    fn store_key_is_a_hash_not_the_id() {
        let id = SessionId::parse(&"A".repeat(43)).expect("valid");
        let key = id.store_key("dm:");
        assert!(key.as_str().starts_with("dm:session:"));
        assert_eq!(key.as_str().len(), "dm:session:".len() + 64);
        assert!(!key.as_str().contains(id.as_str()));
        assert!(!format!("{id:?} {id}").contains(id.as_str()));
    }
}
