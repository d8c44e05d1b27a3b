//! `[redis]`: named pools, `name[key] = value`, for a standalone Redis, a Redis Cluster or
//! a primary watched by Sentinels.

use std::fmt;
use std::time::Duration;

use super::value::{self, ValueResult};

config_enum! {
    /// `[redis] name[mode]`: which deployment the pool talks to.
    RedisMode {
        /// `standalone`: one Redis at `host:port` (the default).
        #[default]
        Standalone = "standalone",
        /// `cluster`: a Redis Cluster, found from the seed `nodes`.
        Cluster = "cluster",
        /// `sentinel`: the primary the Sentinels at `nodes` name `master_name`, followed
        /// through failovers.
        Sentinel = "sentinel",
    }
}

/// One named Redis pool from `[redis] name[key] = value`.
///
/// `Debug` shows the password as `"***"` so the config can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisPoolConfig {
    /// The pool name (`default` for `default[host]`).
    pub name: String,
    /// `mode`: `standalone` (the default), `cluster` or `sentinel`.
    pub mode: RedisMode,
    /// `host`: default `127.0.0.1` (standalone; a cluster's seed when `nodes` is empty).
    pub host: String,
    /// `port`: 1..=65535; default 6379.
    pub port: u16,
    /// `username`: for Redis 6 ACLs; default none (an empty value is none).
    pub username: Option<String>,
    /// `password`: default none (an empty value is none).
    pub password: Option<String>,
    /// `db_index`: 0..=1000000 (the server configures the count); default 0.
    pub db_index: i64,
    /// `prefix`: prepended to every key; may be empty; default empty.
    pub prefix: String,
    /// `pool_size`: 1..=1024; default 8.
    pub pool_size: u32,
    /// `pool_prefill`: open `pool_size` connections at start-up; default false.
    pub pool_prefill: bool,
    /// `timeout`: connect, checkout and command timeout, > 0; default 1 s.
    pub timeout: Duration,
    /// `nodes`: `host:port, host:port, ...`: a cluster's seed nodes (any of them will do,
    /// the others are found), or the Sentinels that watch the primary.
    pub nodes: Vec<(String, u16)>,
    /// `master_name`: the primary's name as the Sentinels know it (`sentinel monitor NAME`).
    pub master_name: Option<String>,
    /// `wait_replicas`: 0 (the default) or the replicas a commit must have reached (Redis
    /// `WAIT`) before it is acknowledged; see the README on what each setting may lose.
    pub wait_replicas: u32,
}

impl Default for RedisPoolConfig {
    fn default() -> Self {
        RedisPoolConfig::named("default")
    }
}

impl fmt::Debug for RedisPoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPoolConfig")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db_index", &self.db_index)
            .field("prefix", &self.prefix)
            .field("pool_size", &self.pool_size)
            .field("pool_prefill", &self.pool_prefill)
            .field("timeout", &self.timeout)
            .field("nodes", &self.nodes)
            .field("master_name", &self.master_name)
            .field("wait_replicas", &self.wait_replicas)
            .finish()
    }
}

impl RedisPoolConfig {
    /// A pool called `name` with every other setting at its default.
    pub fn named(name: &str) -> Self {
        RedisPoolConfig {
            name: name.to_owned(),
            mode: RedisMode::Standalone,
            host: "127.0.0.1".to_owned(),
            port: 6379,
            username: None,
            password: None,
            db_index: 0,
            prefix: String::new(),
            pool_size: 8,
            pool_prefill: false,
            timeout: Duration::from_secs(1),
            nodes: Vec::new(),
            master_name: None,
            wait_replicas: 0,
        }
    }

    /// The addresses to reach: `nodes` when given, else `host:port`.
    pub fn addresses(&self) -> Vec<(String, u16)> {
        if self.nodes.is_empty() {
            vec![(self.host.clone(), self.port)]
        } else {
            self.nodes.clone()
        }
    }

    /// `redis://[user:pass@]host:port/db`, with user and password
    /// percent-encoded and IPv6 hosts bracketed.
    ///
    /// The result contains the password: do not log it.
    pub fn url(&self) -> String {
        self.url_for(&self.host, self.port)
    }

    /// [`RedisPoolConfig::url`] for another node of the deployment (a cluster's node, the
    /// primary the Sentinels named), with this pool's credentials and database.
    ///
    /// The result contains the password: do not log it.
    pub fn url_for(&self, host: &str, port: u16) -> String {
        let mut url = String::from("redis://");
        match (&self.username, &self.password) {
            (Some(user), Some(pass)) => {
                url.push_str(&percent_encode(user));
                url.push(':');
                url.push_str(&percent_encode(pass));
                url.push('@');
            }
            (Some(user), None) => {
                url.push_str(&percent_encode(user));
                url.push('@');
            }
            (None, Some(pass)) => {
                url.push(':');
                url.push_str(&percent_encode(pass));
                url.push('@');
            }
            (None, None) => {}
        }
        if host.contains(':') && !host.starts_with('[') {
            url.push('[');
            url.push_str(host);
            url.push(']');
        } else {
            url.push_str(host);
        }
        format!("{url}:{port}/{}", self.db_index)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// `host:port, host:port, ...` (`[::1]:6379` for IPv6).
pub(crate) fn parse_nodes(raw: &str) -> Result<Vec<(String, u16)>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|node| {
            let (host, port) = node
                .rsplit_once(':')
                .ok_or_else(|| format!("{node:?} has no port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{node:?} has no valid port"))?;
            if host.is_empty() {
                return Err(format!("{node:?} has no host"));
            }
            Ok((host.to_owned(), port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        let mut pool = RedisPoolConfig::named("x");
        assert_eq!(pool.url(), "redis://127.0.0.1:6379/0");
        pool.password = Some("p@ss:w/rd é".into());
        assert_eq!(
            pool.url(),
            "redis://:p%40ss%3Aw%2Frd%20%C3%A9@127.0.0.1:6379/0"
        );
        pool.username = Some("me".into());
        pool.host = "::1".into();
        pool.db_index = 3;
        assert_eq!(
            pool.url(),
            "redis://me:p%40ss%3Aw%2Frd%20%C3%A9@[::1]:6379/3"
        );
        pool.password = None;
        assert_eq!(pool.url(), "redis://me@[::1]:6379/3");
        pool.password = Some("secret".into());
        assert!(!format!("{pool:?}").contains("secret"));
    }

    #[test]
    fn nodes_parse() {
        assert_eq!(
            parse_nodes("127.0.0.1:7000, redis-2:7001,[::1]:7002"),
            Ok(vec![
                ("127.0.0.1".to_owned(), 7000),
                ("redis-2".to_owned(), 7001),
                ("::1".to_owned(), 7002)
            ])
        );
        assert!(parse_nodes("host").is_err());
        assert!(parse_nodes("host:0").is_err());
        assert!(parse_nodes(":6379").is_err());
    }
}
