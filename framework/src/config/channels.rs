//! The `[channels]` section: real-time channels (Pusher protocol) on this server.

use std::time::Duration;

use super::error::{ConfigError, ErrorKind};
use super::value::{self, Expected, ValueResult};
use super::Config;

/// The keys `[channels]` accepts, for unknown-key errors and their did-you-mean.
pub(crate) const CHANNELS_KEYS: &[&str] = &[
    "enabled",
    "app_id",
    "key",
    "secret",
    "path",
    "auth_path",
    "allowed_origins",
    "activity_timeout",
    "presence_ttl",
    "max_connections",
    "max_channels_per_connection",
    "max_message_size",
    "send_queue",
    "client_events",
    "client_event_rate",
    "redis_connection_pool",
];

/// The `[channels]` section: WebSocket channels speaking the Pusher protocol (version 7).
///
/// `Debug` shows the secret as `"***"` so the config can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelsConfig {
    /// `enabled`: serve channels at all; default false.
    pub enabled: bool,
    /// `app_id`: the id publishers put in `/apps/{app_id}/events`; default `rondo`.
    pub app_id: String,
    /// `key`: the public app key clients connect with (`/app/{key}`); required when enabled.
    pub key: String,
    /// `secret`: signs channel authorizations and HTTP API requests; required when enabled
    /// (use `${CHANNELS_SECRET}` to keep it out of the file).
    pub secret: String,
    /// `path`: where sockets connect, followed by `/{key}`; default `/app` (Pusher's).
    pub path: String,
    /// `auth_path`: the channel authorization endpoint; default `/broadcasting/auth`
    /// (Laravel's).
    pub auth_path: String,
    /// `allowed_origins`: origins (comma-separated; `*`, `https://*.example.com`) whose pages
    /// may open a socket, besides `[app] url`'s and the request's own host; default none.
    pub allowed_origins: Vec<String>,
    /// `activity_timeout`: after this long without a message from a client, the server
    /// pings it, and closes it (4201) when 30 s more pass without an answer; it is also what
    /// clients are told to ping after. Default 120 s, 1 s to 1 h.
    pub activity_timeout: Duration,
    /// `presence_ttl`: a server that stops refreshing its presence members this long is
    /// taken for dead, and another server removes its members; default 15 s (at least 1 s).
    pub presence_ttl: Duration,
    /// `max_connections`: sockets on this server at once; one more is closed with 4100;
    /// default 10000.
    pub max_connections: usize,
    /// `max_channels_per_connection`: subscriptions one socket may hold; default 100.
    pub max_channels_per_connection: usize,
    /// `max_message_size`: the largest WebSocket message a client may send (event data is
    /// limited to 10 KB within it, as on Pusher); default 32 KiB.
    pub max_message_size: usize,
    /// `send_queue`: messages waiting to be written to one socket; a socket further behind
    /// is cut (4100, reconnect after a pause) instead of buffered; default 1024.
    pub send_queue: usize,
    /// `client_events`: relay `client-` events between subscribers of private and presence
    /// channels; default false.
    pub client_events: bool,
    /// `client_event_rate`: client events one socket may send per second (more are refused
    /// with 4301); default 10, as on Pusher.
    pub client_event_rate: u32,
    /// `redis_connection_pool`: the `[redis]` pool for cross-server fan-out and presence;
    /// default none, meaning `[session] redis_connection_pool`.
    pub redis_connection_pool: Option<String>,
}

impl std::fmt::Debug for ChannelsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelsConfig")
            .field("enabled", &self.enabled)
            .field("app_id", &self.app_id)
            .field("key", &self.key)
            .field("secret", &"***")
            .field("path", &self.path)
            .field("auth_path", &self.auth_path)
            .field("allowed_origins", &self.allowed_origins)
            .field("activity_timeout", &self.activity_timeout)
            .field("presence_ttl", &self.presence_ttl)
            .field("max_connections", &self.max_connections)
            .field(
                "max_channels_per_connection",
                &self.max_channels_per_connection,
            )
            .field("max_message_size", &self.max_message_size)
            .field("send_queue", &self.send_queue)
            .field("client_events", &self.client_events)
            .field("client_event_rate", &self.client_event_rate)
            .field("redis_connection_pool", &self.redis_connection_pool)
            .finish()
    }
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        ChannelsConfig {
            enabled: false,
            app_id: "rondo".to_owned(),
            key: String::new(),
            secret: String::new(),
            path: "/app".to_owned(),
            auth_path: "/broadcasting/auth".to_owned(),
            allowed_origins: Vec::new(),
            activity_timeout: Duration::from_secs(120),
            presence_ttl: Duration::from_secs(15),
            max_connections: 10_000,
            max_channels_per_connection: 100,
            max_message_size: 32 * 1024,
            send_queue: 1024,
            client_events: false,
            client_event_rate: 10,
            redis_connection_pool: None,
        }
    }
}

impl Config {
    /// The name of the `[redis]` pool channels use: `[channels] redis_connection_pool`, or
    /// the sessions' pool when it is not set.
    pub fn channels_pool_name(&self) -> &str {
        self.channels
            .redis_connection_pool
            .as_deref()
            .unwrap_or(&self.session.redis_connection_pool)
    }
}

/// Parses one `[channels]` entry; `Ok(false)` for an unknown key.
pub(crate) fn parse_key(c: &mut ChannelsConfig, key: &str, v: &str) -> ValueResult<bool> {
    match key {
        "enabled" => c.enabled = value::boolean(v)?,
        "app_id" => c.app_id = token(v, "an app id of 1 to 64 letters, digits and _ - .")?,
        "key" => c.key = token(v, "an app key of 1 to 64 letters, digits and _ - .")?,
        "secret" => {
            c.secret = super::validate::non_empty(v, "the app secret (at least 8 characters)")?;
            if c.secret.len() < 8 {
                return Err(Expected::new("an app secret of at least 8 characters"));
            }
        }
        "path" => c.path = route_path(v)?,
        "auth_path" => c.auth_path = route_path(v)?,
        "allowed_origins" => {
            c.allowed_origins = v
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(origin)
                .collect::<ValueResult<_>>()?;
        }
        "activity_timeout" => {
            c.activity_timeout = value::whole_seconds(v)
                .ok()
                .filter(|d| (1..=3600).contains(&d.as_secs()))
                .ok_or_else(|| Expected::new("a whole number of seconds from 1 to 3600"))?;
        }
        "presence_ttl" => {
            c.presence_ttl = value::duration(v)
                .ok()
                .filter(|d| *d >= Duration::from_secs(1))
                .ok_or_else(|| Expected::new("a duration of at least 1s"))?;
        }
        "max_connections" => c.max_connections = value::count(v, 1, usize::MAX)?,
        "max_channels_per_connection" => {
            c.max_channels_per_connection = value::count(v, 1, 10_000)?;
        }
        "max_message_size" => c.max_message_size = value::size_in(v, 11 * 1024, 16 << 20)?,
        "send_queue" => c.send_queue = value::count(v, 8, 1 << 20)?,
        "client_events" => c.client_events = value::boolean(v)?,
        "client_event_rate" => c.client_event_rate = value::int(v, 1, 10_000)?,
        "redis_connection_pool" => {
            c.redis_connection_pool =
                Some(super::validate::non_empty(v, "the name of a [redis] pool")?);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn token(v: &str, what: &str) -> ValueResult<String> {
    let ok = (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    ok.then(|| v.to_owned()).ok_or_else(|| Expected::new(what))
}

fn route_path(v: &str) -> ValueResult<String> {
    let ok = v.starts_with('/')
        && v.len() > 1
        && !v.ends_with('/')
        && !v.contains(['{', '}', '?', '#', ' ']);
    ok.then(|| v.to_owned()).ok_or_else(|| {
        Expected::new("a path such as /app: starting with /, no trailing /, no {} ? #")
    })
}

fn origin(v: &str) -> ValueResult<String> {
    let ok = v == "*"
        || v.split_once("://").is_some_and(|(scheme, host)| {
            !scheme.is_empty() && !host.is_empty() && !host.contains('/')
        });
    ok.then(|| v.to_owned()).ok_or_else(|| {
        Expected::new(
            "origins such as https://shop.example, https://*.shop.example or *, comma-separated",
        )
    })
}

/// Enabled channels need their credentials, and (with Redis sessions) their pool.
pub(crate) fn cross_check(config: &Config, lines: &[(&str, usize)]) -> super::Result<()> {
    let line_of = |key: &str| {
        lines
            .iter()
            .find(|(k, _)| *k == key)
            .or_else(|| lines.iter().find(|(k, _)| *k == "enabled"))
            .map(|(_, line)| *line)
    };
    let refuse = |key: &str, message: String| {
        let err = ConfigError::new(ErrorKind::EmptyValue, &config.origin, message)
            .in_section("channels")
            .for_key(key);
        Err(match line_of(key) {
            Some(line) => err.at_line(line),
            None => err,
        })
    };
    let c = &config.channels;
    if !c.enabled {
        return Ok(());
    }
    if c.key.is_empty() {
        return refuse(
            "key",
            "enabled channels need the app key clients connect with, e.g. key = shop-key".into(),
        );
    }
    if c.secret.is_empty() {
        return refuse(
            "secret",
            "enabled channels need the app secret, e.g. secret = ${CHANNELS_SECRET}".into(),
        );
    }
    if c.path == c.auth_path {
        return refuse("auth_path", "auth_path must differ from path".into());
    }
    let pool = c.redis_connection_pool.as_deref();
    super::pools::check_named_pool(config, "channels", pool, line_of("redis_connection_pool"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed key parses, and bad values are refused.
    #[test]
    fn keys_parse_and_defaults() {
        let mut c = ChannelsConfig::default();
        assert_eq!(c.presence_ttl, Duration::from_secs(15));
        assert_eq!(c.path, "/app");
        for key in CHANNELS_KEYS {
            let sample = match *key {
                "enabled" | "client_events" => "yes",
                "path" | "auth_path" => "/x/y",
                "allowed_origins" => "https://a.example, https://*.b.example",
                "secret" => "a-long-secret",
                "max_message_size" => "64k",
                "send_queue" | "max_connections" => "100",
                _ => "5",
            };
            assert_eq!(parse_key(&mut c, key, sample), Ok(true), "{key}");
        }
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://*.b.example"]
        );
        assert_eq!(parse_key(&mut c, "nope", "1"), Ok(false));
        assert!(parse_key(&mut c, "path", "app").is_err());
        assert!(parse_key(&mut c, "path", "/app/").is_err());
        assert!(parse_key(&mut c, "secret", "short").is_err());
        assert!(parse_key(&mut c, "key", "a b").is_err());
        assert!(parse_key(&mut c, "activity_timeout", "0").is_err());
        assert!(parse_key(&mut c, "presence_ttl", "100ms").is_err());
        assert!(parse_key(&mut c, "allowed_origins", "shop.example").is_err());
        assert!(!format!("{c:?}").contains("a-long-secret"));
    }

    /// Enabled channels without a key or secret stop the start, naming file, line and key.
    #[test]
    fn enabled_channels_need_credentials() {
        let text = "[session]\nstore = memory\n[channels]\nenabled = true\nsecret = long-enough\n";
        let err = Config::parse_str(text, "app.ini")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "app.ini:4: [channels] key: enabled channels need the app key clients connect \
                 with, e.g. key = shop-key"
            )
        );
        let text = "[session]\nstore = memory\n[channels]\nenabled = yes\nkey = k\n";
        let err = Config::parse_str(text, "app.ini").err();
        assert_eq!(err.as_ref().and_then(ConfigError::key), Some("secret"));
        let text = "[channels]\nsecret = short\n";
        let err = Config::parse_str(text, "app.ini")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("app.ini:2: [channels] secret: expected an app secret of at least 8 characters, got \"short\"")
        );
        let text = "[channels]\nenabeld = true\n";
        let err = Config::parse_str(text, "app.ini")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("did you mean enabled?")));
        let ok = Config::parse_str("[session]\nstore = memory\n[channels]\nenabled = true\nkey = k\nsecret = long-enough\n", "x");
        assert!(ok.is_ok_and(|c| c.channels.enabled && c.channels.key == "k"));
    }
}
