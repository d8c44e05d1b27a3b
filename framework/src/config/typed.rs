//! Turns the raw INI items into a typed [`Config`]: known sections and keys,
//! value parsing, and the checks that span several keys.

use std::collections::{BTreeSet, HashMap};

use super::channels::CHANNELS_KEYS;
use super::error::{ConfigError, ErrorKind};
use super::files::FILES_KEYS;
use super::ini::{Entry, Item};
use super::jobs::JOBS_KEYS;
use super::key::AppKey;
use super::livekit::LIVEKIT_KEYS;
use super::validate::{
    cookie_domain, cookie_name, cookie_path, cookie_prefix_conflict, host, metrics_path, non_empty,
    optional, url,
};
use super::value::{self, Expected};
use super::{
    AppConfig, ChannelsConfig, Config, CookieSecure, Env, HttpConfig, JobsConfig, LogFormat,
    PersistMode, ReadCheck, RedisMode, RedisPoolConfig, Result, SameSite, Section, SessionConfig,
    StoreKind,
};

/// The sections every config file may have.
pub(crate) const BUILTIN_SECTIONS: [&str; 8] = [
    "app", "http", "session", "redis", "jobs", "files", "livekit", "channels",
];
const APP_KEYS: &[&str] = &[
    "env",
    "url",
    "log_level",
    "log_format",
    "metrics_path",
    "key",
];
const HTTP_KEYS: &[&str] = &[
    "host",
    "port",
    "max_header_bytes",
    "max_headers",
    "max_body_bytes",
    "header_read_timeout",
    "body_read_timeout",
    "request_timeout",
    "shutdown_timeout",
    "http2",
    "workers",
    "max_connections",
];
const SESSION_KEYS: &[&str] = &[
    "store",
    "cookie_name",
    "cookie_lifespan",
    "cookie_samesite",
    "cookie_secure",
    "cookie_path",
    "cookie_domain",
    "redis_connection_pool",
    "idle_timeout",
    "max_lifetime",
    "refresh_interval",
    "persist",
    "read_check",
    "max_size",
    "actor_idle_timeout",
    "max_actors",
];
const REDIS_KEYS: &[&str] = &[
    "mode",
    "nodes",
    "master_name",
    "wait_replicas",
    "host",
    "port",
    "username",
    "password",
    "db_index",
    "prefix",
    "pool_size",
    "pool_prefill",
    "timeout",
];
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Builds a [`Config`] from parsed items; `extra` are the registered section names.
pub(crate) fn build(items: &[Item], file: &str, extra: &BTreeSet<String>) -> Result<Config> {
    let mut config = Config {
        origin: file.to_owned(),
        ..Config::default()
    };
    let mut session_lines: HashMap<&str, usize> = HashMap::new();
    let mut jobs_pool_line = None;
    let mut files_pool_line = None;
    let mut channels_lines: Vec<(&str, usize)> = Vec::new();
    let mut redis_lines: HashMap<(String, String), usize> = HashMap::new();
    for item in items {
        let e = match item {
            Item::Header { name, line } => {
                check_section(file, name, *line, extra)?;
                if !BUILTIN_SECTIONS.contains(&name.as_str()) {
                    config
                        .extra
                        .entry(name.clone())
                        .or_insert_with(|| Section::new(name, file));
                }
                continue;
            }
            Item::Entry(e) => e,
        };
        if e.section == "redis" {
            redis(file, &mut config, e)?;
            if let Some(pool) = &e.pool {
                redis_lines.insert((pool.clone(), e.key.clone()), e.line);
            }
            continue;
        }
        if e.pool.is_some() {
            let msg =
                "`name[key]` keys are only allowed in [redis]; expected a plain `key = value`";
            return Err(located(ConfigError::new(ErrorKind::Syntax, file, msg), e));
        }
        match e.section.as_str() {
            "app" => app(&mut config.app, e),
            "http" => http(&mut config.http, e),
            "jobs" => {
                if e.key == "redis_connection_pool" {
                    jobs_pool_line = Some(e.line);
                }
                jobs(&mut config.jobs, e)
            }
            "files" => {
                if e.key == "redis_connection_pool" {
                    files_pool_line = Some(e.line);
                }
                files(&mut config.files, e)
            }
            "livekit" => livekit(&mut config.livekit, e),
            "channels" => {
                if let Some(known) = CHANNELS_KEYS.iter().find(|k| **k == e.key) {
                    channels_lines.push((known, e.line));
                }
                channels(&mut config.channels, e)
            }
            "session" => {
                if let Some(known) = SESSION_KEYS.iter().find(|k| **k == e.key) {
                    session_lines.insert(known, e.line);
                }
                session(&mut config.session, e)
            }
            other => {
                if let Some(section) = config.extra.get_mut(other) {
                    section.push(&e.key, &e.value, e.line);
                }
                Ok(())
            }
        }
        .map_err(|err| err.into_error(file, e))?;
    }
    cross_check(&config, &session_lines)?;
    super::jobs::cross_check(&config, jobs_pool_line)?;
    super::files::cross_check(&config, files_pool_line)?;
    super::channels::cross_check(&config, &channels_lines)?;
    check_redis_modes(&config, &redis_lines)?;
    config.warnings = warnings(&config, &session_lines);
    Ok(config)
}

/// Each pool's keys fit its `mode`: a cluster has only database 0; Sentinel needs the
/// primary's name and the Sentinels' addresses; `nodes` means nothing to a standalone Redis.
fn check_redis_modes(config: &Config, lines: &HashMap<(String, String), usize>) -> Result<()> {
    for (name, pool) in &config.redis {
        let refuse = |key: &str, message: String| {
            let full = format!("{name}[{key}]");
            let err = ConfigError::new(ErrorKind::Conflict, &config.origin, message)
                .in_section("redis")
                .for_key(&full);
            let line = lines
                .get(&(name.clone(), key.to_owned()))
                .or_else(|| lines.get(&(name.clone(), "mode".to_owned())));
            Err(match line {
                Some(line) => err.at_line(*line),
                None => err,
            })
        };
        match pool.mode {
            RedisMode::Cluster if pool.db_index != 0 => {
                return refuse(
                    "db_index",
                    format!(
                        "a Redis Cluster has only database 0; expected {name}[db_index] = 0, got {}",
                        pool.db_index
                    ),
                );
            }
            RedisMode::Cluster if pool.prefix.contains(['{', '}']) => {
                return refuse(
                    "prefix",
                    format!(
                        "on a Redis Cluster {name}[prefix] must not contain braces: a hash tag \
                         in the prefix would put every key in one slot (and on one node); \
                         got {:?}",
                        pool.prefix
                    ),
                );
            }
            RedisMode::Sentinel if pool.master_name.is_none() => {
                return refuse(
                    "mode",
                    format!(
                        "mode = sentinel needs {name}[master_name], the primary's name as the \
                         Sentinels know it (sentinel monitor NAME ...)"
                    ),
                );
            }
            RedisMode::Sentinel if pool.nodes.is_empty() => {
                return refuse(
                    "mode",
                    format!(
                        "mode = sentinel needs {name}[nodes], the Sentinels' host:port pairs \
                         (e.g. 10.0.0.1:26379, 10.0.0.2:26379)"
                    ),
                );
            }
            RedisMode::Standalone if !pool.nodes.is_empty() => {
                return refuse(
                    "nodes",
                    format!(
                        "{name}[nodes] is read with mode = cluster or sentinel; a standalone \
                         Redis is {name}[host] and {name}[port]"
                    ),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// Settings that are allowed but probably not meant: each with its file and line.
fn warnings(config: &Config, session_lines: &HashMap<&str, usize>) -> Vec<String> {
    let mut out = Vec::new();
    let at = |key: &str| match session_lines.get(key) {
        Some(line) => format!("{}:{line}: [session] {key}", config.origin),
        None => format!("{}: [session] {key}", config.origin),
    };
    if config.app.env == Env::Production {
        match config.session.store {
            StoreKind::Memory => out.push(format!(
                "{}: memory in production: sessions are neither shared between servers nor \
                 kept across restarts",
                at("store")
            )),
            StoreKind::Auto => out.push(format!(
                "{}: auto in production: when Redis does not answer at start-up, sessions \
                 fall back to this process's memory (use store = redis to refuse to start)",
                at("store")
            )),
            StoreKind::Redis => {}
        }
        if !config.session.secure(&config.app) {
            out.push(format!(
                "{}: [app] url {:?} is not https in production: session cookies are sent \
                 without Secure",
                config.origin, config.app.url
            ));
        }
    }
    if let Some(limit) = super::settings::open_file_limit() {
        if config.http.max_connections > limit {
            out.push(format!(
                "{}: [http] max_connections = {} is above this process's open-file limit \
                 ({limit}): past it, clients are closed unanswered (raise the limit, e.g. \
                 `ulimit -n`)",
                config.origin, config.http.max_connections
            ));
        }
    }
    out
}

fn located(err: ConfigError, e: &Entry) -> ConfigError {
    err.at_line(e.line)
        .in_section(&e.section)
        .for_key(&e.full_key())
}

fn check_section(file: &str, name: &str, line: usize, extra: &BTreeSet<String>) -> Result<()> {
    if BUILTIN_SECTIONS.contains(&name) || extra.contains(name) {
        return Ok(());
    }
    let known = BUILTIN_SECTIONS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str));
    let message = match value::did_you_mean(name, known.clone()) {
        Some(s) => format!("unknown section (did you mean [{s}]?)"),
        None => {
            let list: Vec<String> = known.map(|s| format!("[{s}]")).collect();
            format!(
                "unknown section; expected one of {}, or a section the application declares \
                 with ConfigLoader::new().section(\"{name}\")",
                list.join(", ")
            )
        }
    };
    Err(ConfigError::new(ErrorKind::UnknownSection, file, message)
        .at_line(line)
        .in_section(name))
}

/// Why a single entry was rejected, before it gets its location.
enum EntryError {
    Value(Expected),
    /// A secret that does not parse: reported without its value, which may well be the
    /// real secret with a typo.
    Secret(Expected),
    UnknownKey(&'static [&'static str]),
}

impl From<Expected> for EntryError {
    fn from(e: Expected) -> Self {
        EntryError::Value(e)
    }
}

impl EntryError {
    fn into_error(self, file: &str, e: &Entry) -> ConfigError {
        let err = match self {
            EntryError::Value(expected) if e.value.trim().is_empty() => ConfigError::new(
                ErrorKind::EmptyValue,
                file,
                format!("expected {}, got an empty value", expected.0),
            ),
            EntryError::Value(expected) => ConfigError::new(
                ErrorKind::InvalidValue,
                file,
                format!("expected {}, got {:?}", expected.0, e.value),
            ),
            EntryError::Secret(expected) => ConfigError::new(
                ErrorKind::InvalidValue,
                file,
                format!(
                    "expected {} (the value is not shown: it is a secret)",
                    expected.0
                ),
            ),
            EntryError::UnknownKey(known) => {
                let shown = |k: &str| match &e.pool {
                    Some(pool) => format!("{pool}[{k}]"),
                    None => k.to_owned(),
                };
                let message = match value::did_you_mean(&e.key, known.iter().copied()) {
                    Some(k) => format!("unknown key (did you mean {}?)", shown(k)),
                    None => format!("unknown key; expected one of {}", known.join(", ")),
                };
                ConfigError::new(ErrorKind::UnknownKey, file, message)
            }
        };
        located(err, e)
    }
}

type EntryResult = std::result::Result<(), EntryError>;

fn app(app: &mut AppConfig, e: &Entry) -> EntryResult {
    let v = e.value.as_str();
    match e.key.as_str() {
        "env" => app.env = Env::parse_word(v)?,
        "url" => app.url = url(v)?,
        "log_level" => app.log_level = value::log_filter(v)?,
        "log_format" => app.log_format = LogFormat::parse_word(v)?,
        "metrics_path" => app.metrics_path = metrics_path(v)?,
        "key" => app.key = Some(app_key(v)?),
        _ => return Err(EntryError::UnknownKey(APP_KEYS)),
    }
    Ok(())
}

fn http(http: &mut HttpConfig, e: &Entry) -> EntryResult {
    let v = e.value.as_str();
    match e.key.as_str() {
        "host" => http.host = host(v)?,
        "port" => http.port = value::int(v, 0, u16::MAX)?,
        "max_header_bytes" => http.max_header_bytes = value::size_in(v, KIB, MIB)?,
        "max_headers" => http.max_headers = value::count(v, 1, 1000)?,
        "max_body_bytes" => http.max_body_bytes = value::size_in(v, 0, GIB)?,
        "header_read_timeout" => http.header_read_timeout = value::positive_duration(v)?,
        "body_read_timeout" => http.body_read_timeout = value::positive_duration(v)?,
        "request_timeout" => http.request_timeout = value::positive_duration(v)?,
        "shutdown_timeout" => http.shutdown_timeout = value::duration(v)?,
        "http2" => http.http2 = value::boolean(v)?,
        "workers" => {
            http.workers = if v.eq_ignore_ascii_case("auto") {
                super::settings::available_cpus()
            } else {
                value::count(v, 0, 1024)
                    .map_err(|_| Expected::new("auto or a number of threads in 0..=1024"))?
            }
        }
        "max_connections" => {
            http.max_connections = if v.eq_ignore_ascii_case("auto") {
                super::settings::default_max_connections()
            } else {
                value::count(v, 1, 10_000_000)
                    .map_err(|_| Expected::new("auto or a number of connections in 1..=10000000"))?
            }
        }
        _ => return Err(EntryError::UnknownKey(HTTP_KEYS)),
    }
    Ok(())
}

/// `[app] key`: an empty value is an error of its own (no value to hide); anything else that
/// is not a key is reported without its text.
fn app_key(v: &str) -> std::result::Result<AppKey, EntryError> {
    const WHAT: &str = "base64 of 32 random bytes (`example-app --generate-key` prints a key)";
    if v.trim().is_empty() {
        return Err(EntryError::Value(Expected::new(WHAT)));
    }
    AppKey::parse(v).map_err(|err| EntryError::Secret(Expected::new(format!("{WHAT}; {err}"))))
}

fn files(files: &mut super::FilesConfig, e: &Entry) -> EntryResult {
    if super::files::parse_key(files, &e.key, &e.value)? {
        Ok(())
    } else {
        Err(EntryError::UnknownKey(FILES_KEYS))
    }
}

fn livekit(livekit: &mut super::LiveKitConfig, e: &Entry) -> EntryResult {
    match super::livekit::parse_key(livekit, &e.key, &e.value) {
        Ok(true) => Ok(()),
        Ok(false) => Err(EntryError::UnknownKey(LIVEKIT_KEYS)),
        Err(expected) if e.key == "api_secret" && !e.value.trim().is_empty() => {
            Err(EntryError::Secret(expected))
        }
        Err(expected) => Err(EntryError::Value(expected)),
    }
}

fn jobs(jobs: &mut JobsConfig, e: &Entry) -> EntryResult {
    if super::jobs::parse_key(jobs, &e.key, &e.value)? {
        Ok(())
    } else {
        Err(EntryError::UnknownKey(JOBS_KEYS))
    }
}

fn channels(channels: &mut ChannelsConfig, e: &Entry) -> EntryResult {
    if super::channels::parse_key(channels, &e.key, &e.value)? {
        Ok(())
    } else {
        Err(EntryError::UnknownKey(CHANNELS_KEYS))
    }
}

fn session(s: &mut SessionConfig, e: &Entry) -> EntryResult {
    let v = e.value.as_str();
    match e.key.as_str() {
        "store" => s.store = StoreKind::parse_word(v)?,
        "cookie_name" => s.cookie_name = cookie_name(v)?,
        "cookie_lifespan" => s.cookie_lifespan = value::positive_duration(v)?,
        "cookie_samesite" => s.cookie_samesite = SameSite::parse_word(v)?,
        "cookie_secure" => s.cookie_secure = CookieSecure::parse_word(v)?,
        "cookie_path" => s.cookie_path = cookie_path(v)?,
        "cookie_domain" => s.cookie_domain = cookie_domain(v)?,
        "redis_connection_pool" => {
            s.redis_connection_pool = non_empty(v, "the name of a [redis] pool")?
        }
        "idle_timeout" => s.idle_timeout = value::optional_duration(v)?,
        "max_lifetime" => s.max_lifetime = value::optional_duration(v)?,
        "refresh_interval" => s.refresh_interval = value::whole_seconds(v)?,
        "persist" => s.persist = PersistMode::parse_word(v)?,
        "read_check" => s.read_check = ReadCheck::parse_word(v)?,
        "max_size" => s.max_size = value::size_in(v, KIB, u64::MAX)?,
        "actor_idle_timeout" => s.actor_idle_timeout = value::positive_duration(v)?,
        "max_actors" => s.max_actors = value::count(v, 1, usize::MAX)?,
        _ => return Err(EntryError::UnknownKey(SESSION_KEYS)),
    }
    Ok(())
}

fn redis(file: &str, config: &mut Config, e: &Entry) -> Result<()> {
    let Some(name) = &e.pool else {
        let msg = "expected `pool[key] = value` in [redis], such as default[host] = 127.0.0.1";
        return Err(located(ConfigError::new(ErrorKind::Syntax, file, msg), e));
    };
    let pool = config
        .redis
        .entry(name.clone())
        .or_insert_with(|| RedisPoolConfig::named(name));
    redis_key(pool, e).map_err(|err| err.into_error(file, e))
}

fn redis_key(pool: &mut RedisPoolConfig, e: &Entry) -> EntryResult {
    let v = e.value.as_str();
    match e.key.as_str() {
        "host" => pool.host = host(v)?,
        "port" => pool.port = value::int(v, 1, u16::MAX)?,
        "username" => pool.username = optional(v),
        "password" => pool.password = optional(v),
        "db_index" => pool.db_index = value::int(v, 0, 1_000_000)?,
        "prefix" => pool.prefix = v.to_owned(),
        "pool_size" => pool.pool_size = value::int(v, 1, 1024)?,
        "pool_prefill" => pool.pool_prefill = value::boolean(v)?,
        "timeout" => pool.timeout = value::positive_duration(v)?,
        "mode" => pool.mode = RedisMode::parse_word(v)?,
        "nodes" => {
            pool.nodes = super::redis::parse_nodes(v).map_err(|why| {
                Expected::new(format!("host:port pairs separated by commas ({why})"))
            })?
        }
        "master_name" => pool.master_name = optional(v),
        "wait_replicas" => pool.wait_replicas = value::int(v, 0, 64)?,
        _ => return Err(EntryError::UnknownKey(REDIS_KEYS)),
    }
    Ok(())
}

fn cross_check(config: &Config, lines: &HashMap<&str, usize>) -> Result<()> {
    let s = &config.session;
    let at = |err: ConfigError, key: &str| {
        let err = err.in_section("session").for_key(key);
        match lines.get(key) {
            Some(line) => err.at_line(*line),
            None => err,
        }
    };
    if s.store == StoreKind::Redis && !config.redis.contains_key(&s.redis_connection_pool) {
        let pool = &s.redis_connection_pool;
        let message = format!(
            "no Redis pool named {pool:?} in [redis]; expected a pool such as \
             {pool}[host] = 127.0.0.1 (or set store = memory)"
        );
        let err = ConfigError::new(ErrorKind::MissingPool, &config.origin, message);
        return Err(at(err, "redis_connection_pool"));
    }
    if s.cookie_samesite == SameSite::None && s.cookie_secure == CookieSecure::Never {
        let message = "cookie_samesite = none requires a Secure cookie (browsers reject it \
                       otherwise); expected cookie_secure = true or auto, got false";
        let err = ConfigError::new(ErrorKind::Conflict, &config.origin, message);
        return Err(at(err, "cookie_samesite"));
    }
    if let Some((key, message)) = cookie_prefix_conflict(s) {
        let err = ConfigError::new(ErrorKind::Conflict, &config.origin, message);
        // A key left at its default has no line: point at the prefixed name instead.
        let key = if lines.contains_key(key) {
            key
        } else {
            "cookie_name"
        };
        return Err(at(err, key));
    }
    if s.cookie_samesite == SameSite::None && !s.secure(&config.app) {
        let message = format!(
            "cookie_samesite = none requires a Secure cookie (browsers reject it otherwise), \
             but cookie_secure = auto gives none for the plain http:// [app] url {:?}; \
             expected an https:// url, cookie_secure = true, or cookie_samesite = lax",
            config.app.url
        );
        let err = ConfigError::new(ErrorKind::Conflict, &config.origin, message);
        return Err(at(err, "cookie_samesite"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(section: &str, pool: Option<&str>, key: &str, value: &str) -> Entry {
        let pool = pool.map(str::to_owned);
        Entry {
            line: 1,
            section: section.into(),
            pool,
            key: key.into(),
            value: value.into(),
        }
    }

    /// Every listed key is accepted by its section (no drift between the
    /// lists used for did-you-mean and the match arms).
    #[test]
    fn key_lists_match_parsers() {
        let sample = |key: &str| match key {
            "env" => "production",
            "url" => "https://x",
            "log_format" => "json",
            "log_level" => "rondo=debug,info",
            "store" => "memory",
            "cookie_samesite" => "strict",
            "cookie_secure" => "true",
            "persist" => "before_response",
            "read_check" => "version",
            "cookie_path" | "metrics_path" => "/",
            "key" => "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "http2" | "pool_prefill" => "yes",
            "max_header_bytes" | "max_size" => "2k",
            "host" | "cookie_domain" => "localhost",
            "mode" => "cluster",
            "nodes" => "127.0.0.1:7000",
            "master_name" => "main",
            _ => "5",
        };
        let mut config = Config::default();
        for k in APP_KEYS {
            assert!(
                app(&mut config.app, &entry("app", None, k, sample(k))).is_ok(),
                "{k}"
            );
        }
        for k in HTTP_KEYS {
            assert!(
                http(&mut config.http, &entry("http", None, k, sample(k))).is_ok(),
                "{k}"
            );
        }
        for k in SESSION_KEYS {
            assert!(
                session(&mut config.session, &entry("session", None, k, sample(k))).is_ok(),
                "{k}"
            );
        }
        for k in REDIS_KEYS {
            assert!(
                redis("f", &mut config, &entry("redis", Some("p"), k, sample(k))).is_ok(),
                "{k}"
            );
        }
    }
}
