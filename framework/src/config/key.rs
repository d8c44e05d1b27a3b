//! `[app] key`: the application key, the one secret every signed link hangs on.
//!
//! It is 32 random bytes, written in `config.ini` as base64, optionally behind the
//! `base64:` prefix that Laravel's `php artisan key:generate` writes, so an existing
//! `APP_KEY` line can be pasted as it is. The key never shows up in logs or error messages:
//! its `Debug` prints a placeholder, it has no `Display`, a malformed value is reported
//! without being repeated, and the only way to get the bytes back out as text is the
//! explicitly named [`AppKey::to_config_value`].
//!
//! It lives with the configuration because it is a configuration value; what is signed with
//! it is in [`crate::signed`].

use std::fmt;
use std::str::FromStr;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// The prefix Laravel writes in front of a base64 key; optional when parsing.
const PREFIX: &str = "base64:";

/// Standard base64 that accepts keys with or without their `=` padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a configured key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppKeyError {
    /// The text is not standard base64.
    #[error("the application key is not valid base64 (expected `base64:` and 44 characters)")]
    NotBase64,
    /// The text decodes, but not to exactly [`AppKey::LEN`] bytes.
    #[error("the application key is {got} bytes long; it must be exactly 32 random bytes")]
    WrongLength {
        /// How many bytes it decoded to.
        got: usize,
    },
}

/// A 32-byte secret key for HMAC-SHA256 signatures (`[app] key`).
///
/// Parse it from configuration with [`AppKey::parse`] (or [`str::parse`]), or make a new
/// one with [`AppKey::generate`]. Signing and verifying links is in [`crate::signed`].
///
/// # Examples
///
/// ```
/// use rondo::signed::AppKey;
///
/// let key = AppKey::generate()?;
/// let line = key.to_config_value(); // "base64:...", for `[app] key = ...`
/// assert_eq!(AppKey::parse(&line)?, key);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AppKey {
    bytes: [u8; AppKey::LEN],
}

impl AppKey {
    /// The key length in bytes.
    pub const LEN: usize = 32;

    /// A new key from the operating system's random source.
    ///
    /// # Errors
    ///
    /// When the operating system cannot provide randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; Self::LEN];
        getrandom::fill(&mut bytes)?;
        Ok(Self { bytes })
    }

    /// A key from raw bytes (for tests, and for keys kept in a secret store as bytes).
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self { bytes }
    }

    /// Parses a configured key: standard base64 of 32 bytes, padded or not, with or without
    /// the `base64:` prefix; surrounding whitespace is ignored.
    ///
    /// # Errors
    ///
    /// [`AppKeyError::NotBase64`] or [`AppKeyError::WrongLength`].
    pub fn parse(text: &str) -> Result<Self, AppKeyError> {
        let text = text.trim();
        let encoded = text.strip_prefix(PREFIX).unwrap_or(text);
        let decoded = LENIENT
            .decode(encoded)
            .map_err(|_| AppKeyError::NotBase64)?;
        let bytes: [u8; Self::LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| AppKeyError::WrongLength { got: decoded.len() })?;
        Ok(Self { bytes })
    }

    /// The key as a configuration value, `base64:` and padded standard base64, which
    /// [`AppKey::parse`] reads back. This is the secret itself: write it to a config file
    /// or a secret store, never to a log.
    pub fn to_config_value(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(self.bytes))
    }

    /// The raw bytes, for the HMAC.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl FromStr for AppKey {
    type Err = AppKeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppKey(<redacted>)")
    }
}

/// Compares in constant time, so that comparing keys (a key rotation check, say) leaks
/// nothing about them through timing.
impl PartialEq for AppKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for AppKey {}

#[cfg(test)]
mod tests {
    use super::*;

    /// `base64.b64encode(bytes(range(32)))` in Python.
    const KEY_0_TO_31: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn counting() -> AppKey {
        let mut bytes = [0u8; 32];
        for (b, value) in bytes.iter_mut().zip(0u8..) {
            *b = value;
        }
        AppKey::from_bytes(bytes)
    }

    #[test]
    fn parses_laravel_style_plain_and_unpadded() -> Result<(), AppKeyError> {
        let want = counting();
        assert_eq!(AppKey::parse(&format!("base64:{KEY_0_TO_31}"))?, want);
        assert_eq!(AppKey::parse(KEY_0_TO_31)?, want);
        assert_eq!(AppKey::parse(KEY_0_TO_31.trim_end_matches('='))?, want);
        assert_eq!(format!(" base64:{KEY_0_TO_31}\n").parse::<AppKey>()?, want);
        Ok(())
    }

    #[test]
    fn config_value_round_trips() -> Result<(), Box<dyn std::error::Error>> {
        let key = counting();
        assert_eq!(key.to_config_value(), format!("base64:{KEY_0_TO_31}"));
        let fresh = AppKey::generate()?;
        assert_eq!(AppKey::parse(&fresh.to_config_value())?, fresh);
        assert_ne!(fresh, AppKey::generate()?);
        Ok(())
    }

    #[test]
    fn refuses_bad_text_and_lengths() {
        assert_eq!(
            AppKey::parse("base64:not base64!"),
            Err(AppKeyError::NotBase64)
        );
        assert_eq!(AppKey::parse(""), Err(AppKeyError::WrongLength { got: 0 }));
        // 16 bytes: an AES-128 key from an old config is not enough.
        assert_eq!(
            AppKey::parse("base64:AAECAwQFBgcICQoLDA0ODw=="),
            Err(AppKeyError::WrongLength { got: 16 })
        );
    }

    #[test]
    fn debug_never_prints_the_key() {
        let key = counting();
        let shown = format!("{key:?} {key:#?}");
        assert_eq!(format!("{key:?}"), "AppKey(<redacted>)");
        assert!(!shown.contains("AAEC"), "{shown}");
        assert!(!shown.contains('['), "{shown}");
    }
}
