//! Redis Cluster and Redis Sentinel set-ups of real `redis-server` child processes, private to
//! one test.
//!
//! The `redis` module (`crate::redis`) starts one standalone server per test; this one starts
//! the two highly available deployments Rondo must also run on, from the same parts:
//!
//! - [`RedisCluster`]: six cluster nodes (three primaries, one replica each) joined with
//!   `redis-cli --cluster create`, with helpers to find the primary of a key and to kill a
//!   primary and wait for its replica's promotion.
//! - [`RedisSentinelSet`]: a primary, a replica and three sentinels, with a helper to kill the
//!   primary and wait for the sentinels' failover.
//!
//! Every process is a [`RedisProcess`]: `redis-server` on a free loopback port, in a temp
//! directory of its own (its config, `nodes.conf` and log), with persistence off. Dropping a
//! set-up kills the processes it started (by their handles, with SIGKILL) and removes their
//! directories; when the test is panicking the directories are kept, and their paths printed,
//! so the logs can be read.
//!
//! Every wait is bounded (the `*_TIMEOUT` constants) and panics with a message saying what was
//! awaited and what was seen last.
//!
//! Requires `redis-server` and `redis-cli` on `PATH`, version 7.0 or newer (Debian/Ubuntu
//! packages `redis-server` and `redis-tools`).

pub mod cluster;
pub mod sentinel;

pub use cluster::{ClusterFailover, ClusterNode, RedisCluster};
pub use sentinel::{RedisSentinelSet, SentinelFailover};

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, FromRedisValue, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one `redis-server` (node or sentinel) may take to answer its first `PING`.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one inspection command ([`RedisProcess::cmd`] and friends) may take, connect
/// included.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one run of `redis-cli` ([`RedisCluster::cli`], `--cluster create`) may take.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// How many fresh ports [`RedisProcess`] tries: a probed port may be taken by someone else
/// between the probe and `redis-server`'s bind.
const START_ATTEMPTS: usize = 5;

/// How often the waits poll.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// One `redis-server` child process on `127.0.0.1` (a cluster node, a standalone primary or
/// replica, or a sentinel), with a temp directory of its own.
///
/// Its output goes to `redis.log` in that directory. Dropping it kills the process (the one
/// it started, through its handle) and removes the directory, unless the test is panicking.
#[derive(Debug)]
pub struct RedisProcess {
    role: &'static str,
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl RedisProcess {
    /// Starts `redis-server` with the arguments `args(port, dir)` gives for a free `port` and
    /// a new empty `dir`, and waits (at most [`START_TIMEOUT`]) for its `PONG`; tries
    /// [`START_ATTEMPTS`] ports. `args` may write files into `dir` (a sentinel's config).
    ///
    /// # Panics
    ///
    /// When no attempt comes up; the message shows the end of each attempt's log.
    pub(crate) async fn start(
        role: &'static str,
        args: impl Fn(u16, &Path) -> Result<Vec<String>, String>,
    ) -> RedisProcess {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let dir = new_temp_dir(role, port);
            let mut process = RedisProcess {
                role,
                port,
                child: None,
                dir,
            };
            match process.spawn_and_wait(&args).await {
                Ok(()) => return process,
                Err(why) => {
                    failures.push(format!("port {port}: {why}"));
                    process.kill();
                    // A failed attempt's directory goes; its log tail is in `failures`.
                    let _ = std::fs::remove_dir_all(&process.dir);
                }
            }
        }
        panic!(
            "could not start a redis-server ({role}) after {START_ATTEMPTS} attempts:\n{}\n{}",
            failures.join("\n"),
            path_hint("redis-server")
        );
    }

    /// What it is in its set-up: `"cluster-node"`, `"primary"`, `"replica"`, `"sentinel"`.
    pub fn role(&self) -> &'static str {
        self.role
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:{port}`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its temp directory (config, `nodes.conf`, `redis.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id while it runs, `None` after [`RedisProcess::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it was started and not killed by the harness (it may still have crashed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills it with SIGKILL (no shutdown, no save) and reaps it; a no-op when it is not
    /// running. Only ever the process this handle started.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means it has already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs one command on a fresh connection of its own and returns the raw answer.
    ///
    /// # Errors
    ///
    /// The server is unreachable, answered an error, or did not answer within
    /// [`COMMAND_TIMEOUT`]; the text says which.
    pub async fn try_cmd(&self, args: &[&str]) -> Result<Value, String> {
        query(self.port, args).await
    }

    /// Runs one command on a fresh connection of its own and returns the raw answer.
    ///
    /// # Panics
    ///
    /// As [`RedisProcess::try_cmd`] fails.
    pub async fn cmd(&self, args: &[&str]) -> Value {
        self.try_cmd(args).await.unwrap_or_else(|why| {
            panic!(
                "{} on port {}: {args:?} failed: {why}",
                self.role, self.port
            )
        })
    }

    /// Runs one command and converts its answer.
    ///
    /// # Panics
    ///
    /// When the command fails or the answer does not convert.
    pub async fn typed<T: FromRedisValue>(&self, args: &[&str]) -> T {
        let value = self.cmd(args).await;
        redis::from_redis_value(value).unwrap_or_else(|why| {
            panic!(
                "unexpected answer to {args:?} from port {}: {why}",
                self.port
            )
        })
    }

    /// `INFO section` as `field -> value`.
    ///
    /// # Errors
    ///
    /// As [`RedisProcess::try_cmd`].
    pub async fn try_info(&self, section: &str) -> Result<HashMap<String, String>, String> {
        let value = self.try_cmd(&["INFO", section]).await?;
        let text: String = redis::from_redis_value(value).map_err(|e| e.to_string())?;
        Ok(parse_info(&text))
    }

    /// The last 20 lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.join("redis.log"))
    }

    async fn spawn_and_wait(
        &mut self,
        args: &impl Fn(u16, &Path) -> Result<Vec<String>, String>,
    ) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let args = args(self.port, &self.dir)?;
        let log_path = self.dir.join("redis.log");
        let log = File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot clone log file handle: {e}"))?;
        let child = Command::new("redis-server")
            .args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run redis-server: {e}; {}",
                    path_hint("redis-server")
                )
            })?;
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "redis-server {args:?} exited with {status}; its log ends with:\n{}",
                        self.log_tail()
                    ));
                }
            }
            match ping(self.addr()).await {
                Ok(()) => return Ok(()),
                Err(why) if Instant::now() >= deadline => {
                    return Err(format!(
                        "no PONG within {START_TIMEOUT:?} (last: {why}); its log ends with:\n{}",
                        self.log_tail()
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "kept the directory of the {} on port {} for inspection: {}",
                self.role,
                self.port,
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `program args`, output to a file in `dir`, for at most `limit`; returns its standard
/// output and error. A run still going at `limit` is killed (this child only).
///
/// # Errors
///
/// It cannot be started, exits unsuccessfully, or overruns `limit`; the text says which and
/// shows its output.
pub(crate) async fn run_tool(
    program: &str,
    args: &[String],
    dir: &Path,
    limit: Duration,
) -> Result<String, String> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let out_path = dir.join(format!(
        "{program}-{}.out",
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let out = File::create(&out_path)
        .map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot clone a file handle: {e}"))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}; {}", path_hint(program)))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("{program} did not finish within {limit:?}"));
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => break Err(format!("waiting for {program}: {e}")),
        }
    };
    let mut output = String::new();
    if let Ok(mut file) = File::open(&out_path) {
        let _ = file.read_to_string(&mut output);
    }
    let _ = std::fs::remove_file(&out_path);
    match status {
        Ok(status) if status.success() => Ok(output),
        Ok(status) => Err(format!(
            "{program} {args:?} exited with {status}:\n{output}"
        )),
        Err(why) => Err(format!("{why}; {program} {args:?} printed:\n{output}")),
    }
}

/// Polls `probe` every [`POLL_EVERY`] until it gives a value, for at most `limit`.
///
/// # Panics
///
/// When `limit` passes without a value; the message names `what` and shows what the last
/// probe said.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {limit:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

/// One command on a fresh connection to `127.0.0.1:port`, bounded by [`COMMAND_TIMEOUT`].
async fn query(port: u16, args: &[&str]) -> Result<Value, String> {
    let (name, rest) = args
        .split_first()
        .ok_or_else(|| "empty command".to_owned())?;
    let mut cmd = redis::cmd(name);
    for arg in rest {
        cmd.arg(*arg);
    }
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
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

/// A port the OS just handed out for `127.0.0.1:0`, released again.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0 should work")
}

/// A directory name under the system temp directory, unique in this machine's run.
fn new_temp_dir(role: &str, port: u16) -> PathBuf {
    static DIRS: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "rondo-{role}-{}-{port}-{}",
        std::process::id(),
        DIRS.fetch_add(1, Ordering::Relaxed)
    ))
}

/// One `PING` on a fresh connection, each step bounded by 250 ms.
async fn ping(addr: SocketAddr) -> Result<(), String> {
    let step = Duration::from_millis(250);
    let mut stream = tokio::time::timeout(step, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(b"*1\r\n$4\r\nPING\r\n")
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

/// `INFO` text into `field -> value` (section headers and blank lines skipped).
pub(crate) fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Where `program` is on `PATH`, and how to install it when it is not.
fn path_hint(program: &str) -> String {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => format!("{program} is on PATH at {}", path.display()),
        None => format!(
            "{program} is NOT on PATH: install the Debian package redis-server \
             (apt-get install redis-server redis-tools)"
        ),
    }
}

/// The last 20 lines of `log`.
fn log_tail(log: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(log) {
        let _ = file.read_to_string(&mut text);
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
    fn info_is_parsed() {
        let info = parse_info("# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n\r\n");
        assert_eq!(info.get("role").map(String::as_str), Some("slave"));
        assert_eq!(
            info.get("master_link_status").map(String::as_str),
            Some("up")
        );
        assert_eq!(info.len(), 2);
    }
}
