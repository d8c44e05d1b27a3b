//! `[session]` as the session layer uses it: the section itself, and what is derived from it
//! once (the cookie's attributes, the expiry rules, the store's key prefix).

use super::cookie::CookieSettings;
use super::expiry::Expiry;
use crate::config::{Config, SessionConfig};

/// The session settings of one manager.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `[session]` as configured.
    pub(crate) session: SessionConfig,
    pub(crate) cookie: CookieSettings,
    pub(crate) expiry: Expiry,
    /// Goes before every store key (the Redis pool's `prefix`).
    pub(crate) prefix: String,
}

impl Settings {
    pub(crate) fn from_config(config: &Config, prefix: String) -> Self {
        Self {
            session: config.session.clone(),
            cookie: CookieSettings::from_config(config),
            expiry: Expiry::from_config(&config.session),
            prefix,
        }
    }
}
