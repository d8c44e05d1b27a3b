//! Link ids: 128 random bits, written in 22 URL-safe base64 characters.
//!
//! 128 bits cannot be guessed or enumerated, so knowing an id is what grants the chance to
//! redeem it; the URL-safe alphabet (`A-Z a-z 0-9 - _`) needs no escaping in a path and
//! contains no `{` or `}`, so an id can sit inside a Redis hash tag. Ids are checked for
//! this shape before any store is asked, so odd input never reaches a Redis key.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::LinkError;

/// Random bytes per id.
const BYTES: usize = 16;
/// Characters per id: `ceil(16 * 8 / 6)`.
const CHARS: usize = 22;

/// The id of a link: what goes into its URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(String);

impl LinkId {
    /// A fresh random id.
    ///
    /// # Errors
    ///
    /// [`LinkError::Random`] when the operating system has no randomness to give.
    pub(crate) fn generate() -> Result<Self, LinkError> {
        let mut bytes = [0u8; BYTES];
        getrandom::fill(&mut bytes).map_err(|e| LinkError::Random(e.to_string()))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// `text` as an id, or `None` when it is not 22 URL-safe base64 characters (so it
    /// cannot be an id this module made).
    pub fn parse(text: &str) -> Option<Self> {
        Self::is_well_formed(text).then(|| Self(text.to_owned()))
    }

    /// Whether `text` has the shape of an id.
    pub fn is_well_formed(text: &str) -> bool {
        text.len() == CHARS
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for LinkId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_well_formed_and_distinct() -> Result<(), LinkError> {
        let a = LinkId::generate()?;
        let b = LinkId::generate()?;
        assert_eq!(a.as_str().len(), 22);
        assert!(LinkId::is_well_formed(a.as_str()), "{a}");
        assert_ne!(a, b);
        assert_eq!(LinkId::parse(a.as_str()), Some(a));
        Ok(())
    }

    #[test]
    fn malformed_ids() {
        assert!(LinkId::parse("AAAAAAAAAAAAAAAAAAAAAA").is_some());
        assert!(LinkId::parse("AAAAAAAAAAAAAAAAAAAAA").is_none());
        assert!(LinkId::parse("AAAAAAAAAAAAAAAAAAAAAAA").is_none());
        assert!(LinkId::parse("AAAAAAAAAAAAAAAAAAAA}{").is_none());
        assert!(LinkId::parse("AAAAAAAAAAAAAAAAAAAA+/").is_none());
        assert!(LinkId::parse("").is_none());
    }
}
