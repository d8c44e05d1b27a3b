//! Loading `config.ini` into a typed [`Config`].
//!
//! Rondo is configured from one INI file in the style of Resonance:
//!
//! ```ini
//! ; comment    # also a comment
//! [app]
//! env = development
//! url = http://127.0.0.1:8080
//!
//! [http]
//! host = 127.0.0.1
//! port = 8080
//!
//! [session]
//! cookie_name = dmsession
//! cookie_lifespan = 86400
//! cookie_samesite = lax
//! redis_connection_pool = default
//!
//! [redis]
//! default[host] = 127.0.0.1
//! default[port] = 6379
//! default[password] = ${REDIS_PASSWORD}
//! ```
//!
//! # Syntax
//!
//! - Lines are `[section]` headers, `key = value` pairs, comments starting
//!   with `;` or `#`, or blank. A UTF-8 BOM and `\r\n` line endings are fine.
//! - Whitespace around keys and values is trimmed. A value may be wrapped in
//!   double quotes (taken literally inside, except `\"` and `\\`) or single
//!   quotes (taken literally, no escapes). An empty value is written `key =`.
//! - In an *unquoted* value, a `;` or `#` starts a comment only when it
//!   follows whitespace: `port = 8080 ; note` is `8080`, but
//!   `url = http://host/#top` and `prefix = a;b` keep their `#` and `;`.
//!   Quote a value to keep ` ;` or ` #` in it.
//! - `${VAR}` anywhere in an unquoted or double-quoted value is replaced by
//!   the environment variable `VAR`; `${VAR:-fallback}` uses `fallback` when
//!   `VAR` is unset or empty. An unset variable without a fallback is an
//!   error. Single-quoted values are not expanded, which is how to write a
//!   literal `${`. Expanded text is not expanded again nor comment-stripped.
//! - A section may appear more than once (its keys are merged), but a key may
//!   be set only once per section.
//!
//! # Sections
//!
//! `[app]` ([`AppConfig`]), `[http]` ([`HttpConfig`]), `[session]`
//! ([`SessionConfig`]), `[jobs]` ([`JobsConfig`]), `[files]` ([`FilesConfig`]),
//! `[livekit]` ([`LiveKitConfig`]), `[channels]` ([`ChannelsConfig`]) and `[redis]` are
//! built in. `[redis]` holds named
//! connection pools written `name[key] = value` (for example
//! `default[host]`), giving one [`RedisPoolConfig`] per name; `name[key]` is
//! an error in every other section. Applications add sections of their own
//! with [`ConfigLoader::section`]; their keys are free-form and read through
//! [`Section`]. Any other section, and any unknown key in a built-in section,
//! is an error with a did-you-mean suggestion when a known name is close.
//!
//! # Values
//!
//! - integers are decimal and range-checked per key;
//! - booleans are `true/false`, `yes/no`, `on/off`, `1/0`, any case;
//! - durations are a number of seconds (`30`, `0.25`) or a number with
//!   `ms`, `s`, `m`, `h` or `d` (`500ms`, `1.5s`, `10m`);
//! - sizes are a number of bytes or a number with `k`/`kb`/`kib`,
//!   `m`/`mb`/`mib`, `g`/`gb`/`gib` or `t`/`tb`/`tib`, all multiples of 1024;
//! - enumerations are single words, any case.
//!
//! # Errors
//!
//! A configuration mistake should be fixable without reading Rondo's source,
//! so every [`ConfigError`] carries the file, the 1-based line, the section
//! and the key it is about, and says what was expected and what was found:
//!
//! ```text
//! config.ini:12: [session] cookie_samesite: expected one of lax, strict, none, got "loose"
//! config.ini:7: [sesion]: unknown section (did you mean [session]?)
//! ```
//!
//! Problems not tied to one line (a missing file, a defaulted
//! `redis_connection_pool` with no such pool) have no line number. Loading
//! stops at the first error.

mod channels;
mod error;
mod files;
mod ini;
mod jobs;
mod key;
mod livekit;
mod pools;
mod section;
#[macro_use]
mod settings;
mod redis;
mod typed;
mod validate;
mod value;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use channels::ChannelsConfig;
pub use error::{ConfigError, ErrorKind};
pub use files::{FilesConfig, DEFAULT_ALLOWED_TYPES};
pub use jobs::JobsConfig;
pub use key::{AppKey, AppKeyError};
pub use livekit::LiveKitConfig;
pub use redis::{RedisMode, RedisPoolConfig};
pub use section::Section;
pub use settings::{
    AppConfig, CookieSecure, Env, HttpConfig, LogFormat, PersistMode, ReadCheck, SameSite,
    SessionConfig, StoreKind, RESERVED_FILES,
};

/// The result type of this module.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// The whole configuration: the built-in sections, the Redis pools and any
/// application sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[app]`.
    pub app: AppConfig,
    /// `[http]`.
    pub http: HttpConfig,
    /// `[session]`.
    pub session: SessionConfig,
    /// `[jobs]`.
    pub jobs: JobsConfig,
    /// `[files]`.
    pub files: FilesConfig,
    /// `[livekit]`.
    pub livekit: LiveKitConfig,
    /// `[channels]`.
    pub channels: ChannelsConfig,
    /// Named Redis pools from `[redis] name[key] = value`, in name order.
    pub redis: BTreeMap<String, RedisPoolConfig>,
    /// Application-defined sections (registered through [`ConfigLoader::section`]), raw.
    pub extra: BTreeMap<String, Section>,
    /// The file it came from (`"<string>"` when parsed from a string).
    pub origin: String,
    /// What loading found suspicious but allowed (`file:line: [section] key: why`). They are
    /// logged when logging starts ([`crate::logging`]), since they come before any log
    /// could show them.
    pub warnings: Vec<String>,
}

impl Default for Config {
    /// Every default, no Redis pools, origin `"<defaults>"`.
    fn default() -> Self {
        Config {
            app: AppConfig::default(),
            http: HttpConfig::default(),
            session: SessionConfig::default(),
            jobs: JobsConfig::default(),
            files: FilesConfig::default(),
            livekit: LiveKitConfig::default(),
            channels: ChannelsConfig::default(),
            redis: BTreeMap::new(),
            extra: BTreeMap::new(),
            origin: "<defaults>".to_owned(),
            warnings: Vec::new(),
        }
    }
}

impl Config {
    /// Reads and validates the file at `path` with no application sections;
    /// the same as `ConfigLoader::new().load(path)`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the file cannot be read or is invalid; see
    /// [`ConfigLoader::load`].
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        ConfigLoader::new().load(path)
    }

    /// Parses and validates `text`; `origin` names it in errors (use
    /// `"<string>"` when there is no file). The same as
    /// `ConfigLoader::new().parse_str(text, origin)`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for the first problem in `text`.
    pub fn parse_str(text: &str, origin: &str) -> Result<Config> {
        ConfigLoader::new().parse_str(text, origin)
    }

    /// The pool the sessions use (`[session] redis_connection_pool`).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] of kind [`ErrorKind::MissingPool`] naming
    /// `[session] redis_connection_pool` when `[redis]` does not define that
    /// pool (possible when `store` is `memory` or `auto`).
    pub fn session_pool(&self) -> Result<&RedisPoolConfig> {
        let name = &self.session.redis_connection_pool;
        self.redis.get(name).ok_or_else(|| {
            ConfigError::new(
                ErrorKind::MissingPool,
                &self.origin,
                format!("no Redis pool named {name:?} in [redis]"),
            )
            .in_section("session")
            .for_key("redis_connection_pool")
        })
    }

    /// An application section registered with [`ConfigLoader::section`];
    /// `None` if the file did not have it.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.extra.get(name)
    }
}

/// Loads a [`Config`], optionally allowing application-defined sections.
///
/// ```
/// use rondo::ConfigLoader;
///
/// let text = "[session]\nstore = memory\n[mail]\nrelay = smtp.example:25\n";
/// let config = ConfigLoader::new().section("mail").parse_str(text, "app.ini")?;
/// let relay: Option<String> = config.section("mail").map(|s| s.get("relay")).transpose()?.flatten();
/// assert_eq!(relay.as_deref(), Some("smtp.example:25"));
/// # Ok::<(), rondo::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConfigLoader {
    sections: BTreeSet<String>,
}

impl ConfigLoader {
    /// A loader that knows only the built-in sections.
    #[must_use]
    pub fn new() -> Self {
        ConfigLoader::default()
    }

    /// Allows an application-defined section `[name]` whose keys are
    /// free-form. Registering a built-in name (`app`, `http`, `session`, `channels`,
    /// `jobs`, `files`, `livekit`, `redis`) has no effect.
    #[must_use]
    pub fn section(mut self, name: &str) -> Self {
        if !typed::BUILTIN_SECTIONS.contains(&name) {
            self.sections.insert(name.to_owned());
        }
        self
    }

    /// Reads and validates the file at `path`. Errors name the path as
    /// given (`path.display()`).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] of kind [`ErrorKind::Io`] when the file cannot be
    /// read, [`ErrorKind::Syntax`] when it is not UTF-8, otherwise as
    /// [`parse_str`](Self::parse_str).
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ConfigError::io(&file, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let line = 1 + e.as_bytes()[..valid]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            ConfigError::new(ErrorKind::Syntax, &file, "the file is not valid UTF-8").at_line(line)
        })?;
        let config = self.parse_str(&text, &file)?;
        tracing::debug!(file = %file, redis_pools = config.redis.len(), "configuration loaded");
        Ok(config)
    }

    /// Parses and validates `text`; `origin` names it in errors (use
    /// `"<string>"` when there is no file).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for the first problem: a syntax error, an unknown
    /// section or key, a duplicate key, an unset `${VAR}`, a value that does
    /// not parse or is out of range, an empty required value, a missing
    /// session pool when `store = redis`, or `cookie_samesite = none` with
    /// `cookie_secure = false`.
    pub fn parse_str(&self, text: &str, origin: &str) -> Result<Config> {
        let items = ini::parse(text, origin, &ini::process_env)?;
        typed::build(&items, origin, &self.sections)
    }
}

#[cfg(test)]
mod tests;
