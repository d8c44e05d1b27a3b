//! The typed settings structs and enums, with their defaults.

use std::fmt;
use std::time::Duration;

use super::key::AppKey;
use super::value::{self, ValueResult};

macro_rules! config_enum {
    (
        $(#[$meta:meta])* $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $word:literal $(| $alias:literal)*),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The word used for this value in `config.ini`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            /// Parses the config word (or an alias), case-insensitively.
            pub(crate) fn parse_word(raw: &str) -> ValueResult<Self> {
                value::word(
                    raw,
                    &[$(($word, $name::$variant), $(($alias, $name::$variant),)*)+],
                    &[$($word),+],
                )
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

config_enum! {
    /// `[app] env`: which kind of deployment this is.
    Env {
        /// `development` (the default).
        #[default]
        Development = "development",
        /// `production`.
        Production = "production",
        /// `testing`.
        Testing = "testing",
    }
}

config_enum! {
    /// `[app] log_format`: how log lines are written.
    LogFormat {
        /// `text`: human-readable lines (the default).
        #[default]
        Text = "text",
        /// `json`: one JSON object per line.
        Json = "json",
    }
}

config_enum! {
    /// `[session] store`: where session data lives.
    StoreKind {
        /// `redis`: the pool named by `redis_connection_pool` (the default).
        #[default]
        Redis = "redis",
        /// `memory`: in-process only; sessions are lost on restart.
        Memory = "memory",
        /// `auto`: Redis when the pool is defined and reachable, memory otherwise.
        Auto = "auto",
    }
}

config_enum! {
    /// `[session] cookie_samesite`: the cookie's `SameSite` attribute.
    SameSite {
        /// `lax` (the default).
        #[default]
        Lax = "lax",
        /// `strict`.
        Strict = "strict",
        /// `none`: requires a `Secure` cookie.
        None = "none",
    }
}

config_enum! {
    /// `[session] cookie_secure`: whether the cookie gets the `Secure` attribute.
    CookieSecure {
        /// `auto`: secure when `[app] url` is `https://` (the default).
        #[default]
        Auto = "auto",
        /// `true` (also `yes`, `on`, `1`).
        Always = "true" | "yes" | "on" | "1",
        /// `false` (also `no`, `off`, `0`).
        Never = "false" | "no" | "off" | "0",
    }
}

config_enum! {
    /// `[session] persist`: when a changed session is written to the store.
    PersistMode {
        /// `after_response`: the response is sent first (the default; lowest latency).
        #[default]
        AfterResponse = "after_response",
        /// `before_response`: the write completes before the response is sent.
        BeforeResponse = "before_response",
    }
}

config_enum! {
    /// `[session] read_check`: how a read knows its copy of a session is current.
    ReadCheck {
        /// `tracking`: Redis client-side caching invalidates copies, so a warm read sends
        /// nothing to Redis (the default; falls back to `version` while unavailable). Redis
        /// remembers which sessions each server read and tells a server only about those
        /// (key tracking); on a Redis Cluster, where that is not available, it is
        /// `broadcast`, one connection per primary.
        #[default]
        Tracking = "tracking",
        /// `broadcast`: as `tracking`, but every server hears of every session write (its
        /// own included), whether or not it holds a copy: Redis keeps no table of who read
        /// what.
        Broadcast = "broadcast",
        /// `version`: every read asks Redis for the stored version (one `HGET`).
        Version = "version",
    }
}

/// The `[app]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// `env`: `development` | `production` | `testing`; default `development`.
    pub env: Env,
    /// `url`: the public base URL, `http://` or `https://`; default `http://127.0.0.1:8080`.
    pub url: String,
    /// `log_level`: a tracing filter such as `info` or `rondo=debug,info`; default `info`.
    pub log_level: String,
    /// `log_format`: `text` | `json`; default `text`.
    pub log_format: LogFormat,
    /// `metrics_path`: where Prometheus metrics are served; empty turns them off; default
    /// `/metrics`.
    pub metrics_path: Option<String>,
    /// `key`: the application key that signs links ([`crate::signed`]), base64 of 32 random
    /// bytes (`base64:` prefix optional); default none. Required in production by whatever
    /// signs ([`SignedUrls::from_config`](crate::signed::SignedUrls::from_config)); in
    /// development a key is generated at start-up, with a warning.
    pub key: Option<AppKey>,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            env: Env::Development,
            url: "http://127.0.0.1:8080".to_owned(),
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            metrics_path: Some("/metrics".to_owned()),
            key: None,
        }
    }
}

impl AppConfig {
    /// Whether [`url`](Self::url) starts with `https://` (case-insensitive).
    pub fn is_https(&self) -> bool {
        self.url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }
}

/// The `[http]` section: the listener and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `host`: the address to bind, an IP or host name; default `127.0.0.1`.
    pub host: String,
    /// `port`: default 8080; `0` picks a free port.
    pub port: u16,
    /// `max_header_bytes`: a size, 1 KiB..=1 MiB; default 16 KiB.
    pub max_header_bytes: usize,
    /// `max_headers`: 1..=1000; default 100.
    pub max_headers: usize,
    /// `max_body_bytes`: a size, 0..=1 GiB; default 1 MiB.
    pub max_body_bytes: usize,
    /// `header_read_timeout`: > 0; default 10 s.
    pub header_read_timeout: Duration,
    /// `body_read_timeout`: the longest an extractor waits for the whole request body, > 0;
    /// default 10 s. A client that trickles its body gets 408 instead of holding a task.
    pub body_read_timeout: Duration,
    /// `request_timeout`: the whole handler, > 0; default 30 s.
    pub request_timeout: Duration,
    /// `shutdown_timeout`: how long in-flight requests get on shutdown; default 10 s.
    pub shutdown_timeout: Duration,
    /// `http2`: also serve HTTP/2; default true.
    pub http2: bool,
    /// `workers`: threads that serve connections, each with a single-threaded runtime of
    /// its own (a connection stays on the thread that took it), 0..=1024, or `auto`: one
    /// per CPU (the default). `0` serves connections on the runtime that calls
    /// [`serve`](crate::serve).
    pub workers: usize,
    /// `max_connections`: connections served at once, 1..=10,000,000, or `auto` (the
    /// default): the process's open-file limit less a reserve of
    /// [`RESERVED_FILES`] for Redis connections and files (10,000 where the limit cannot be
    /// read). A connection beyond it is answered `503` and closed at once, so it costs no
    /// more than the time to say so.
    pub max_connections: usize,
}

/// Descriptors `max_connections = auto` leaves to everything but client connections.
pub const RESERVED_FILES: usize = 256;

/// `max_connections = auto`: the soft open-file limit (Linux: `/proc/self/limits`) less
/// [`RESERVED_FILES`], at least 64; 10,000 where it cannot be read.
pub(crate) fn default_max_connections() -> usize {
    open_file_limit().map_or(10_000, |limit| limit.saturating_sub(RESERVED_FILES).max(64))
}

/// The soft limit on open files of this process, where the system tells it.
pub(crate) fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(usize::MAX),
        n => n.parse().ok(),
    }
}

/// The number of CPUs this process may run on (1 when that cannot be told).
pub(crate) fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            host: "127.0.0.1".to_owned(),
            port: 8080,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            http2: true,
            workers: available_cpus(),
            max_connections: default_max_connections(),
        }
    }
}

/// The `[session]` section: the session cookie and store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// `store`: `redis` | `memory` | `auto`; default `redis`.
    pub store: StoreKind,
    /// `cookie_name`: an RFC 6265 token; default `dmsession`.
    pub cookie_name: String,
    /// `cookie_lifespan`: a duration (bare number = seconds), > 0; default 86400 s.
    pub cookie_lifespan: Duration,
    /// `cookie_samesite`: `lax` | `strict` | `none`; default `lax`.
    pub cookie_samesite: SameSite,
    /// `cookie_secure`: `auto` | `true` | `false`; default `auto`.
    pub cookie_secure: CookieSecure,
    /// `cookie_path`: starts with `/`; default `/`.
    pub cookie_path: String,
    /// `cookie_domain`: default none (an empty value is none).
    pub cookie_domain: Option<String>,
    /// `redis_connection_pool`: the `[redis]` pool used when `store = redis`; default `default`.
    pub redis_connection_pool: String,
    /// `idle_timeout`: end a session unused this long; `0` or empty = never; default never.
    pub idle_timeout: Option<Duration>,
    /// `max_lifetime`: end a session this long after creation; `0` or empty = never; default never.
    pub max_lifetime: Option<Duration>,
    /// `refresh_interval`: sliding expiry is refreshed at most this often; default 60 s.
    pub refresh_interval: Duration,
    /// `persist`: `after_response` | `before_response`; default `after_response`.
    pub persist: PersistMode,
    /// `read_check`: `tracking` | `broadcast` | `version`; default `tracking`.
    pub read_check: ReadCheck,
    /// `max_size`: the largest serialized session, a size >= 1 KiB; default 256 KiB.
    pub max_size: usize,
    /// `actor_idle_timeout`: an idle session actor stops after this long, > 0; default 30 s.
    pub actor_idle_timeout: Duration,
    /// `max_actors`: the most live session actors, >= 1; default 100000.
    pub max_actors: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            store: StoreKind::Redis,
            cookie_name: "dmsession".to_owned(),
            cookie_lifespan: Duration::from_secs(86400),
            cookie_samesite: SameSite::Lax,
            cookie_secure: CookieSecure::Auto,
            cookie_path: "/".to_owned(),
            cookie_domain: None,
            redis_connection_pool: "default".to_owned(),
            idle_timeout: None,
            max_lifetime: None,
            refresh_interval: Duration::from_secs(60),
            persist: PersistMode::AfterResponse,
            read_check: ReadCheck::Tracking,
            max_size: 256 * 1024,
            actor_idle_timeout: Duration::from_secs(30),
            max_actors: 100_000,
        }
    }
}

impl SessionConfig {
    /// Whether the cookie gets `Secure`: `cookie_secure`, where `auto`
    /// follows [`AppConfig::is_https`].
    pub fn secure(&self, app: &AppConfig) -> bool {
        match self.cookie_secure {
            CookieSecure::Auto => app.is_https(),
            CookieSecure::Always => true,
            CookieSecure::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_secure() {
        let mut app = AppConfig::default();
        let mut session = SessionConfig::default();
        assert!(!app.is_https());
        assert!(!session.secure(&app));
        app.url = "HTTPS://example.com".into();
        assert!(app.is_https());
        assert!(session.secure(&app));
        session.cookie_secure = CookieSecure::Never;
        assert!(!session.secure(&app));
        app.url = "é".into();
        assert!(!app.is_https());
        assert_eq!(SameSite::None.as_str(), "none");
        assert_eq!(PersistMode::BeforeResponse.to_string(), "before_response");
        assert_eq!(CookieSecure::parse_word("ON"), Ok(CookieSecure::Always));
        assert_eq!(CookieSecure::parse_word("0"), Ok(CookieSecure::Never));
        assert_eq!(Env::parse_word("Testing"), Ok(Env::Testing));
        let err = SameSite::parse_word("loose").err().map(|e| e.0);
        assert_eq!(err.as_deref(), Some("one of lax, strict, none"));
    }
}
