//! Session ids: 256 bits from the OS CSPRNG, URL-safe base64 in the cookie, and a SHA-256
//! hash of the id as the store key, so a store dump or `MONITOR` never shows a live cookie.
//!
//! Logs name a session by a *salted* hash ([`SessionId::log_tag`], also what `Display` and
//! `Debug` print): a per-process random salt, so a log line can neither be turned back into
//! the cookie nor matched against a Redis key by someone who reads both.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::store::StoreKey;

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
        random_id_bytes(&mut bytes)?;
        let id = Self(URL_SAFE_NO_PAD.encode(bytes));
        bytes.fill(0);
        Ok(id)
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
        StoreKey::from_digest(prefix, &Sha256::digest(self.0.as_bytes()))
    }

    /// A short tag for logs: 8 hex digits of a salted hash of the id's store hash. The same
    /// session gets the same tag from [`StoreKey::log_tag`] within one process.
    pub fn log_tag(&self) -> String {
        self.store_key("").log_tag()
    }
}

/// Ids' worth of random bytes read from the OS at a time: one `getrandom` call per this
/// many new sessions instead of one each (a new session is otherwise one system call
/// dearer than any other request).
const IDS_PER_READ: usize = 32;

/// Random bytes read from the OS CSPRNG and not handed out yet, per thread (so taking some
/// needs no lock). Each byte is used for one id only and wiped as it is taken.
///
/// A process that forks would leave a copy of the unused bytes to its child; Rondo never
/// forks (a multi-threaded tokio process cannot), and an application that forks before
/// starting its runtime has drawn nothing yet.
struct RandomBytes {
    bytes: [u8; ID_BYTES * IDS_PER_READ],
    /// Where the unused bytes start; `bytes.len()` when there are none.
    next: usize,
}

thread_local! {
    static RANDOM: std::cell::RefCell<RandomBytes> = const {
        std::cell::RefCell::new(RandomBytes {
            bytes: [0; ID_BYTES * IDS_PER_READ],
            next: ID_BYTES * IDS_PER_READ,
        })
    };
}

/// Fills `out` with bytes from the OS CSPRNG (read ahead, see [`RandomBytes`]).
fn random_id_bytes(out: &mut [u8; ID_BYTES]) -> Result<(), getrandom::Error> {
    RANDOM.with(|random| {
        let mut random = random.borrow_mut();
        if random.next == random.bytes.len() {
            getrandom::fill(&mut random.bytes)?;
            random.next = 0;
        }
        let start = random.next;
        let taken = &mut random.bytes[start..start + ID_BYTES];
        out.copy_from_slice(taken);
        taken.fill(0);
        random.next += ID_BYTES;
        Ok(())
    })
}

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

/// A session named by its stored record instead of its id, for background work: a job
/// queued in Redis carries this, never the id (which is the client's credential).
///
/// It serializes as the 64 hex digits of the id's SHA-256, the same hash the store key ends
/// in; it cannot be turned back into an id, so it cannot be used as a cookie.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SessionRef(String);

impl SessionRef {
    /// The reference of the session stored at `key`.
    pub(crate) fn of(key: &StoreKey) -> Self {
        Self(key.hash().to_owned())
    }

    /// The reference as text (64 hex digits): an identity for a session that is not its
    /// credential, safe to show the client, log or put in a channel name, since it cannot be
    /// turned back into the id; also the owner of [temporary files](crate::files::TempFiles)
    /// or the redeemer of a [link](crate::links::Links).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The store key under `prefix`, if this is a well-formed reference (64 lowercase hex
    /// digits; anything else came from outside and names nothing).
    pub(crate) fn store_key(&self, prefix: &str) -> Option<StoreKey> {
        StoreKey::from_hash(prefix, &self.0)
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

    /// Ids drawn across several reads of the OS source are all distinct, and every byte
    /// handed out is wiped from the read-ahead buffer.
    #[test]
    fn read_ahead_ids_are_distinct_and_wiped() {
        let ids: std::collections::HashSet<SessionId> = (0..IDS_PER_READ * 3 + 5)
            .map(|_| SessionId::generate().expect("random"))
            .collect();
        assert_eq!(ids.len(), IDS_PER_READ * 3 + 5);
        RANDOM.with(|random| {
            let random = random.borrow();
            assert!(random.bytes[..random.next].iter().all(|&b| b == 0));
            assert!(random.bytes[random.next..].iter().any(|&b| b != 0));
        });
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

    /// The log tag is salted: it is not a piece of the store key's hash, and the id and its
    /// store key (under any prefix) give the same tag.
    #[test]
    fn log_tag_is_a_salted_hash() {
        let id = SessionId::generate().expect("random");
        let key = id.store_key("app:");
        let tag = id.log_tag();
        assert_eq!(tag.len(), 8);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()), "{tag}");
        assert_eq!(key.log_tag(), tag);
        assert_eq!(format!("{id}"), tag);
        assert_eq!(format!("{id:?}"), format!("SessionId({tag})"));
        let hash = &key.as_str()["app:session:".len()..];
        assert!(!hash.contains(&tag), "{tag} is part of {hash}");
        assert!(!hash.contains(&tag.chars().rev().collect::<String>()));
        let other = SessionId::generate().expect("random");
        assert_ne!(other.log_tag(), tag);
    }
}
