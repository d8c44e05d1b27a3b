//! Store keys: where a session lives in the store, derived from (never equal to) its id —
//! `{prefix}session:{sha256(id) in hex}` — and the salted tag that names a session in logs.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// Length of the hex SHA-256 at the end of every store key.
pub(crate) const HASH_HEX: usize = 64;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Where a session lives in the store: derived from the id, never the id itself.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct StoreKey(String);

impl StoreKey {
    /// The key of the session whose id hashes to `digest` (a SHA-256), under `prefix`:
    /// `{prefix}session:{digest in hex}`.
    pub fn from_digest(prefix: &str, digest: &[u8]) -> Self {
        let mut key = String::with_capacity(prefix.len() + 8 + HASH_HEX);
        key.push_str(prefix);
        key.push_str("session:");
        push_hex(&mut key, digest);
        StoreKey(key)
    }

    /// The key `{prefix}session:{hash}`, if `hash` is one (64 lowercase hex digits); anything
    /// else came from outside and names nothing.
    pub fn from_hash(prefix: &str, hash: &str) -> Option<Self> {
        is_hash(hash).then(|| StoreKey(format!("{prefix}session:{hash}")))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hash of the id this key ends in (64 hex digits).
    pub fn hash(&self) -> &str {
        let start = self.0.len().saturating_sub(HASH_HEX);
        self.0.get(start..).unwrap_or_default()
    }

    /// The key of another session under the same prefix: this key with its hash replaced
    /// by `hash`, if that is one (64 lowercase hex digits); anything else names nothing.
    pub fn with_hash(&self, hash: &str) -> Option<StoreKey> {
        let start = self.0.len().checked_sub(HASH_HEX)?;
        let prefix = self.0.get(..start)?;
        is_hash(hash).then(|| StoreKey(format!("{prefix}{hash}")))
    }

    /// The session's tag for logs: a salted hash of the key's id hash, so the tag can be
    /// matched neither against keys in Redis nor against cookies. The salt is drawn once per
    /// process.
    pub fn log_tag(&self) -> String {
        let start = self.0.len().saturating_sub(HASH_HEX);
        let hash = self.0.get(start..).unwrap_or(&self.0);
        let mut hasher = Sha256::new();
        hasher.update(log_salt());
        hasher.update(hash.as_bytes());
        let mut tag = String::with_capacity(8);
        push_hex(&mut tag, &hasher.finalize()[..4]);
        tag
    }
}

/// Lets maps keyed by store key be searched with the key text Redis reports.
impl std::borrow::Borrow<str> for StoreKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Whether `hash` has the shape of the hash a key ends in: 64 lowercase hex digits.
fn is_hash(hash: &str) -> bool {
    hash.len() == HASH_HEX
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

/// This process's log salt: random, drawn once. Without randomness the clock serves, since
/// the salt only has to be unknown to whoever reads the logs, not unguessable forever.
fn log_salt() -> &'static [u8; 16] {
    static SALT: OnceLock<[u8; 16]> = OnceLock::new();
    SALT.get_or_init(|| {
        let mut salt = [0u8; 16];
        if getrandom::fill(&mut salt).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            salt = nanos.to_le_bytes();
        }
        salt
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key made from a hash is that hash under the prefix; a sibling key keeps the
    /// prefix; anything but 64 lowercase hex digits names no key.
    #[test]
    fn keys_from_hashes() {
        let hash = "ab".repeat(32);
        let key = StoreKey::from_hash("dm:", &hash).expect("a hash");
        assert_eq!(key.as_str(), format!("dm:session:{hash}"));
        assert_eq!(key.hash(), hash);
        let other = "01".repeat(32);
        assert_eq!(
            key.with_hash(&other).map(|k| k.as_str().to_owned()),
            Some(format!("dm:session:{other}"))
        );
        for bad in ["", "AB".repeat(32).as_str(), "zz".repeat(32).as_str(), "ab"] {
            assert!(StoreKey::from_hash("dm:", bad).is_none(), "{bad}");
            assert!(key.with_hash(bad).is_none(), "{bad}");
        }
        assert_eq!(key.log_tag().len(), 8);
    }
}
