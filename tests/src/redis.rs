//! A real `redis-server` per test.
//!
//! Rondo's Redis store is mostly Lua scripts, TTLs and connection handling: exactly what a
//! mock would get wrong. So each test starts its own `redis-server` child process on a free
//! loopback port (the shape of mini-redis' `start_server`), with persistence off, and kills
//! it when the [`RedisServer`] is dropped. A private server per test means no shared state
//! between tests, no ordering, and tests may kill, restart or stall "their" Redis freely.
//!
//! The inspection helpers ([`RedisServer::cmd`], [`RedisServer::keys`], ...) open their own
//! short-lived connection for every call, so they never share (or disturb) the pool of the
//! code under test, and they keep working across [`RedisServer::restart`].
//!
//! Requires `redis-server` on `PATH` (Debian/Ubuntu package `redis-server`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, FromRedisValue, Value};
use rondo::config::RedisPoolConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::free_port;

/// How long [`RedisServer::start`] and [`RedisServer::restart`] wait for the first `PONG`.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one inspection command ([`RedisServer::cmd`] and friends) may take, connect
/// included.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How many fresh ports [`RedisServer::start`] tries: the probed port may be taken by
/// someone else between the probe and `redis-server`'s bind.
const START_ATTEMPTS: usize = 5;

/// A `redis-server` child process on `127.0.0.1`, private to one test.
///
/// Started with `--save '' --appendonly no` (nothing ever touches the disk), `--bind
/// 127.0.0.1`, `--protected-mode yes` and, on Redis 7 or newer, `--enable-debug-command
/// local` so that [`RedisServer::debug_sleep`] works. Its output goes to a log file in the
/// system temp directory, whose tail is shown when it fails to start; the file is removed on
/// drop unless the test is panicking.
///
/// Dropping it kills the process (the one it started, through its handle), also when the
/// test panics.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl RedisServer {
    /// Starts a server on a free port and waits (at most [`START_TIMEOUT`]) until it answers
    /// `PING` with `PONG`.
    ///
    /// # Panics
    ///
    /// When `redis-server` cannot be run or does not answer in time; the message says
    /// whether `redis-server` is on `PATH` and shows the end of its log.
    pub async fn start() -> RedisServer {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut server = RedisServer {
                port,
                child: None,
                log: std::env::temp_dir()
                    .join(format!("rondo-redis-{}-{port}.log", std::process::id())),
            };
            match server.spawn_and_wait().await {
                Ok(()) => return server,
                // `server` is dropped here: its child (if any) is killed.
                Err(why) => failures.push(format!("port {port}: {why}")),
            }
        }
        panic!(
            "could not start redis-server after {START_ATTEMPTS} attempts:\n{}\n{}",
            failures.join("\n"),
            path_hint()
        );
    }

    /// The TCP port it listens on (also across [`RedisServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The process id of the running server, `None` after [`RedisServer::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Settings for a Rondo pool on this server: host `127.0.0.1`, this port, db 0, the
    /// given key `prefix`, 8 connections, no prefill, a 1 s timeout.
    pub fn pool_config(&self, prefix: &str) -> RedisPoolConfig {
        let mut config = RedisPoolConfig::named("default");
        config.host = "127.0.0.1".to_owned();
        config.port = self.port;
        config.db_index = 0;
        config.prefix = prefix.to_owned();
        config.pool_size = 8;
        config.pool_prefill = false;
        config.timeout = Duration::from_secs(1);
        config
    }

    /// Kills the server with SIGKILL (no shutdown, no save) and reaps it; a no-op when it is
    /// not running. Clients see their connections reset and new connections refused.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means it has already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts a new one on the same port, with empty data,
    /// and waits for its `PONG` (at most [`START_TIMEOUT`] per attempt).
    ///
    /// # Panics
    ///
    /// When the new server does not come up (for instance because the port was taken
    /// meanwhile).
    pub async fn restart(&mut self) {
        self.kill();
        let mut failures = Vec::new();
        for _ in 0..3 {
            match self.spawn_and_wait().await {
                Ok(()) => return,
                Err(why) => {
                    failures.push(why);
                    self.kill();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!(
            "could not restart redis-server on port {}:\n{}\n{}",
            self.port,
            failures.join("\n"),
            path_hint()
        );
    }

    /// `CLIENT PAUSE ms ALL`: the server stops answering every client (this helper's
    /// included) for `ms` milliseconds, like a stalled Redis; connections stay open.
    ///
    /// # Panics
    ///
    /// When the command fails.
    pub async fn pause(&self, ms: u64) {
        let ms = ms.to_string();
        self.cmd(&["CLIENT", "PAUSE", &ms, "ALL"]).await;
    }

    /// Sends `DEBUG SLEEP secs` on a connection of its own and returns without waiting for
    /// the answer (after the command is written, plus 50 ms so the server is asleep): the
    /// whole server then blocks for `secs` seconds, like a Redis stuck in a slow command.
    ///
    /// A background task waits for the reply and closes that connection.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    pub async fn debug_sleep(&self, secs: f64) {
        let mut stream = tokio::time::timeout(COMMAND_TIMEOUT, TcpStream::connect(self.addr()))
            .await
            .expect("connecting to redis-server for DEBUG SLEEP timed out")
            .expect("connecting to redis-server for DEBUG SLEEP");
        stream
            .write_all(&resp_command(&["DEBUG", "SLEEP", &secs.to_string()]))
            .await
            .expect("writing DEBUG SLEEP");
        let wait = COMMAND_TIMEOUT + Duration::from_secs_f64(secs.max(0.0));
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            // The reply (or its absence) does not matter; this only keeps the socket open.
            let _ = tokio::time::timeout(wait, stream.read(&mut buf)).await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Runs one command on a fresh connection of its own and returns the raw answer.
    ///
    /// # Errors
    ///
    /// The server is unreachable, answered an error, or did not answer within
    /// [`COMMAND_TIMEOUT`]; the text says which.
    pub async fn try_cmd(&self, args: &[&str]) -> Result<Value, String> {
        self.query(args).await
    }

    /// Runs one command on a fresh connection of its own and returns the raw answer.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::try_cmd`] fails.
    pub async fn cmd(&self, args: &[&str]) -> Value {
        self.query(args)
            .await
            .unwrap_or_else(|why| panic!("redis command {args:?} failed: {why}"))
    }

    /// `KEYS pattern`, sorted.
    ///
    /// # Panics
    ///
    /// When the command fails.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.typed(&["KEYS", pattern]).await;
        keys.sort();
        keys
    }

    /// `PTTL key`: milliseconds left, -1 for a key without expiry, -2 for no such key.
    ///
    /// # Panics
    ///
    /// When the command fails.
    pub async fn ttl_ms(&self, key: &str) -> i64 {
        self.typed(&["PTTL", key]).await
    }

    /// `HGETALL key` as (field, value) pairs sorted by field; empty for no such key.
    ///
    /// # Panics
    ///
    /// When the command fails (for instance `WRONGTYPE`).
    pub async fn hgetall(&self, key: &str) -> Vec<(String, Vec<u8>)> {
        let map: HashMap<String, Vec<u8>> = self.typed(&["HGETALL", key]).await;
        let mut pairs: Vec<(String, Vec<u8>)> = map.into_iter().collect();
        pairs.sort();
        pairs
    }

    /// `FLUSHALL`: deletes every key of every database (loaded scripts stay).
    ///
    /// # Panics
    ///
    /// When the command fails.
    pub async fn flushall(&self) {
        self.cmd(&["FLUSHALL"]).await;
    }

    /// `DBSIZE`: the number of keys in database 0.
    ///
    /// # Panics
    ///
    /// When the command fails.
    pub async fn dbsize(&self) -> u64 {
        self.typed(&["DBSIZE"]).await
    }

    /// Calls per command since start or [`RedisServer::reset_stats`], from `INFO
    /// commandstats`: `{"evalsha": 3, "client|setinfo": 2, ...}` (lowercase; subcommands as
    /// `command|sub`). Commands run inside Lua scripts are counted too (`hget`, `hset`, ...),
    /// and so are this helper's own commands (its `info`, and the `client|setinfo` each of its
    /// connections sends).
    ///
    /// # Panics
    ///
    /// When the command fails.
    pub async fn command_stats(&self) -> HashMap<String, u64> {
        let info: String = self.typed(&["INFO", "commandstats"]).await;
        parse_command_stats(&info)
    }

    /// The commands counted since the last reset that a request could have caused: the
    /// harness' and the clients' housekeeping (`info`, `ping`, `hello`, `config|*`,
    /// `client|*`, `command|*`) and zero counts left out.
    ///
    /// # Panics
    ///
    /// When the command fails.
    pub async fn data_commands(&self) -> std::collections::BTreeMap<String, u64> {
        fn housekeeping(command: &str) -> bool {
            matches!(command, "info" | "ping" | "hello" | "role")
                || ["config", "client", "command"]
                    .iter()
                    .any(|prefix| command.starts_with(prefix))
        }
        self.command_stats()
            .await
            .into_iter()
            .map(|(name, calls)| (name.to_ascii_lowercase(), calls))
            .filter(|(name, calls)| !housekeeping(name) && *calls > 0)
            .collect()
    }

    /// [`data_commands`](Self::data_commands) without the job queue's upkeep, which an app
    /// with jobs sends every second whatever its requests do: `XAUTOCLAIM`, `XCLAIM`,
    /// `XREADGROUP` and the retry-promotion script (one `EVALSHA` and the `ZRANGEBYSCORE` it
    /// runs, so one `EVALSHA` less per `ZRANGEBYSCORE`).
    ///
    /// # Panics
    ///
    /// When the command fails.
    pub async fn session_commands(&self) -> std::collections::BTreeMap<String, u64> {
        let mut commands = self.data_commands().await;
        let promotions = commands.remove("zrangebyscore").unwrap_or(0);
        if let Some(evalsha) = commands.get_mut("evalsha") {
            *evalsha = evalsha.saturating_sub(promotions);
        }
        commands.retain(|name, calls| {
            *calls > 0 && !["xautoclaim", "xclaim", "xreadgroup"].contains(&name.as_str())
        });
        commands
    }

    /// `CONFIG RESETSTAT`: zeroes the counters behind [`RedisServer::command_stats`].
    ///
    /// # Panics
    ///
    /// When the command fails.
    pub async fn reset_stats(&self) {
        self.cmd(&["CONFIG", "RESETSTAT"]).await;
    }

    /// Runs `args` and converts the answer, panicking with the command on failure.
    async fn typed<T: FromRedisValue>(&self, args: &[&str]) -> T {
        let value = self.cmd(args).await;
        redis::from_redis_value(value)
            .unwrap_or_else(|why| panic!("unexpected answer to {args:?}: {why}"))
    }

    async fn query(&self, args: &[&str]) -> Result<Value, String> {
        let (name, rest) = args
            .split_first()
            .ok_or_else(|| "empty command".to_owned())?;
        let mut cmd = redis::cmd(name);
        for arg in rest {
            cmd.arg(*arg);
        }
        let client = redis::Client::open(self.url()).map_err(|e| e.to_string())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let run = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            cmd.query_async::<Value>(&mut conn).await
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, run).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no answer within {COMMAND_TIMEOUT:?}")),
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Spawns `redis-server` on `self.port` and waits for `PONG`; on failure the child is
    /// left in `self.child` (if it still runs) for the caller or `Drop` to kill.
    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open log file {}: {e}", self.log.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot clone log file handle: {e}"))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--protected-mode", "yes"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()]);
        if redis_major_version() >= 7 {
            command.args(["--enable-debug-command", "local"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server: {e}\n{}", path_hint()));
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "redis-server exited with {status}; its log ends with:\n{}",
                        log_tail(&self.log, log_start)
                    ));
                }
            }
            match ping(self.addr()).await {
                Ok(()) => return Ok(()),
                Err(why) if Instant::now() >= deadline => {
                    return Err(format!(
                        "no PONG within {START_TIMEOUT:?} (last: {why}); its log ends with:\n{}",
                        log_tail(&self.log, log_start)
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// One `PING` on a fresh connection, each step bounded by 250 ms.
async fn ping(addr: SocketAddr) -> Result<(), String> {
    let step = Duration::from_millis(250);
    let mut stream = tokio::time::timeout(step, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(&resp_command(&["PING"]))
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 64];
    while !answer.ends_with(b"\r\n") {
        let n = tokio::time::timeout(step, stream.read(&mut buf))
            .await
            .map_err(|_| "no answer".to_owned())?
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed".to_owned());
        }
        answer.extend_from_slice(&buf[..n]);
    }
    if answer == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(format!("answered {:?}", String::from_utf8_lossy(&answer)))
    }
}

/// `args` as a RESP array of bulk strings.
fn resp_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `cmdstat_get:calls=3,usec=...` lines into `{"get": 3}`.
fn parse_command_stats(info: &str) -> HashMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_ascii_lowercase(), calls))
        })
        .collect()
}

/// The major version of the installed `redis-server` (0 when it cannot be told).
fn redis_major_version() -> u32 {
    static MAJOR: OnceLock<u32> = OnceLock::new();
    *MAJOR.get_or_init(|| {
        // "Redis server v=7.0.15 sha=..."
        Command::new("redis-server")
            .arg("--version")
            .output()
            .ok()
            .and_then(|out| {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let version = text.split_whitespace().find_map(|w| w.strip_prefix("v="))?;
                version.split('.').next()?.parse().ok()
            })
            .unwrap_or(0)
    })
}

/// Where `redis-server` is on `PATH`, and how to install it when it is not.
fn path_hint() -> String {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => format!("redis-server is on PATH at {}", path.display()),
        None => "redis-server is NOT on PATH: install the Debian package redis-server \
                 (apt-get install redis-server)"
            .to_owned(),
    }
}

/// The last 20 lines the server wrote to `log` after byte `from`.
fn log_tail(log: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(log) {
        if file.seek(SeekFrom::Start(from)).is_ok() {
            let _ = file.read_to_string(&mut text);
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.is_empty() {
        "(empty log)".to_owned()
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_stats_are_parsed() {
        let info = "# Commandstats\r\n\
            cmdstat_get:calls=3,usec=10,usec_per_call=3.33,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_client|setname:calls=12,usec=5,usec_per_call=0.42\r\n\
            cmdstat_EVALSHA:calls=7,usec=70\r\n\
            cmdstat_broken:usec=1\r\n\
            other:calls=1\r\n";
        let stats = parse_command_stats(info);
        assert_eq!(stats.get("get"), Some(&3));
        assert_eq!(stats.get("client|setname"), Some(&12));
        assert_eq!(stats.get("evalsha"), Some(&7));
        assert_eq!(stats.len(), 3);
    }

    #[test]
    fn resp_commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            resp_command(&["DEBUG", "SLEEP", "0.5"]),
            b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$3\r\n0.5\r\n".to_vec()
        );
    }
}
