//! The `[livekit]` section: the LiveKit project that room tokens are for
//! (`rondo::livekit`, framework feature `livekit`).
//!
//! The section is read whether or not the feature is built, so one `config.ini` serves
//! every build of an app; only issuing tokens needs the feature.

use std::fmt;

use super::value::{Expected, ValueResult};

/// The keys `[livekit]` accepts.
pub(crate) const LIVEKIT_KEYS: &[&str] = &["url", "api_key", "api_secret"];

/// The `[livekit]` section. Every key is optional here; issuing a token needs all three.
///
/// `Debug` shows the secret as `"***"`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LiveKitConfig {
    /// `url`: the LiveKit server browsers connect to, `ws://`, `wss://`, `http://` or
    /// `https://`; default none.
    pub url: Option<String>,
    /// `api_key`: the project's API key (the tokens' issuer); default none.
    pub api_key: Option<String>,
    /// `api_secret`: the project's API secret, which signs the tokens; default none. Keep it
    /// out of the file with `${LIVEKIT_API_SECRET}`.
    pub api_secret: Option<String>,
}

impl fmt::Debug for LiveKitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveKitConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("api_secret", &self.api_secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Parses one `[livekit]` entry; `Ok(false)` for an unknown key. Values are never echoed in
/// errors by the caller for `api_secret` (see `typed.rs`).
pub(crate) fn parse_key(livekit: &mut LiveKitConfig, key: &str, v: &str) -> ValueResult<bool> {
    let v = v.trim();
    match key {
        "url" => {
            let lower = v.to_ascii_lowercase();
            let rest = ["ws://", "wss://", "http://", "https://"]
                .iter()
                .find_map(|scheme| lower.strip_prefix(scheme));
            let valid = rest.is_some_and(|rest| !rest.is_empty())
                && !v.chars().any(|c| c.is_whitespace() || c.is_control());
            if !valid {
                return Err(Expected::new(
                    "a URL starting with ws://, wss://, http:// or https://",
                ));
            }
            livekit.url = Some(v.to_owned());
        }
        "api_key" => livekit.api_key = Some(non_empty(v, "the project's API key")?),
        "api_secret" => livekit.api_secret = Some(non_empty(v, "the project's API secret")?),
        _ => return Ok(false),
    }
    Ok(true)
}

fn non_empty(v: &str, what: &str) -> ValueResult<String> {
    if v.is_empty() || v.chars().any(char::is_control) {
        return Err(Expected::new(what));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_the_secret_is_hidden() {
        let mut lk = LiveKitConfig::default();
        assert_eq!(parse_key(&mut lk, "url", "wss://meet.example"), Ok(true));
        assert_eq!(parse_key(&mut lk, "api_key", "APIkey"), Ok(true));
        assert_eq!(parse_key(&mut lk, "api_secret", "s3cr3t"), Ok(true));
        assert_eq!(parse_key(&mut lk, "nope", "x"), Ok(false));
        assert!(!format!("{lk:?}").contains("s3cr3t"));
        for bad in ["meet.example", "wss://", "ftp://x", "wss://a b"] {
            assert!(parse_key(&mut lk, "url", bad).is_err(), "{bad}");
        }
        assert!(parse_key(&mut lk, "api_secret", "").is_err());
    }
}
