//! Real processes, for the tests that run a binary instead of an app in-process: the
//! example app started from its `main` (signals, descriptor limits, several processes on one
//! Redis, what it logs), and the helpers those tests share with their other children (a
//! free port to hand to a process, a child killed on drop).
//!
//! The binary is passed in by path: only the example app's own test targets know it, as
//! `env!("CARGO_BIN_EXE_example-app")`. An [`AppProcess`] is started from an [`AppCommand`]:
//! the config is written to a temporary INI file, the process logs to pipes that threads
//! of this harness drain into memory (so it never blocks on a full pipe, and a test can read
//! every line), and its address is read from the `listening` line it logs, text or JSON.
//!
//! Every process here is one this harness started, killed through its own handle when
//! dropped, also when the test panics. Waits are on the real clock: a child process does not
//! follow tokio's paused time.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::http::Client;

/// How long [`AppCommand::start`] waits for the process to log its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The resident memory of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`; 0 when it
/// cannot be read). `std::process::id()` for this process.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// A port the OS just handed out for `127.0.0.1:0`, released again for a child process to
/// bind (it may be taken by someone else meanwhile: callers that can, retry).
///
/// # Panics
///
/// When no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0 should work")
}

/// A child process that is killed (SIGKILL) and reaped when dropped: only the one this test
/// started, through its handle.
#[derive(Debug)]
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(Some(child))
    }

    /// Its process id, `None` once it has been killed or has exited and been reaped.
    pub fn id(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// Kills it with SIGKILL and reaps it; a no-op when that is done already.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            // An error means it has exited already; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its exit status if it has exited (reaping it), `None` while it runs.
    ///
    /// # Panics
    ///
    /// When the status cannot be read.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.0.as_mut()?;
        let status = child.try_wait().expect("reading a child's status")?;
        self.0 = None;
        Some(status)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The example app's config for a process: HTTP on port 0, `[session] store = redis` on
/// `redis_port` (default host, key prefix `t:`), then `extra` INI lines (later sections are
/// merged, but a key may appear once).
pub fn example_ini(redis_port: u16, extra: &str) -> String {
    format!(
        "[http]\nport = 0\n[session]\nstore = redis\n[redis]\ndefault[port] = {redis_port}\n\
         default[prefix] = t:\n{extra}\n"
    )
}

/// How to start an app binary: which one, its config, its log filter, its descriptor limit.
#[derive(Debug, Clone)]
pub struct AppCommand {
    binary: PathBuf,
    name: String,
    config: String,
    rust_log: Option<String>,
    open_files: Option<u32>,
}

impl AppCommand {
    /// `binary --config FILE`, FILE holding `config`; `RUST_LOG=info`. `name` tells this
    /// process apart in file names and failure messages.
    pub fn new(binary: impl Into<PathBuf>, name: &str, config: impl Into<String>) -> AppCommand {
        AppCommand {
            binary: binary.into(),
            name: name.to_owned(),
            config: config.into(),
            rust_log: Some("info".to_owned()),
            open_files: None,
        }
    }

    /// The example app at `binary` with [`example_ini`]`(redis_port, extra)`.
    pub fn example(binary: &str, name: &str, redis_port: u16, extra: &str) -> AppCommand {
        AppCommand::new(binary, name, example_ini(redis_port, extra))
    }

    /// Sets `RUST_LOG` to `filter`, or leaves it unset (`None`: the config's `[app]
    /// log_level` decides).
    pub fn rust_log(mut self, filter: Option<&str>) -> AppCommand {
        self.rust_log = filter.map(str::to_owned);
        self
    }

    /// Limits the process to `limit` open descriptors, through the shell's `ulimit -n`,
    /// which then `exec`s the binary: the same process.
    pub fn open_files(mut self, limit: u32) -> AppCommand {
        self.open_files = Some(limit);
        self
    }

    /// Starts the process and waits (at most [`START_TIMEOUT`]) until it logs the address it
    /// listens on.
    ///
    /// # Panics
    ///
    /// When the config cannot be written, the binary cannot be run, or it exits or stays
    /// silent instead of listening; the message shows what it logged.
    pub async fn start(self) -> AppProcess {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let config = std::env::temp_dir().join(format!(
            "rondo-{}-{}-{n}.ini",
            self.name,
            std::process::id()
        ));
        std::fs::write(&config, &self.config).expect("writing the config file");
        let mut command = match self.open_files {
            None => Command::new(&self.binary),
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(&self.binary);
                shell
            }
        };
        command.arg("--config").arg(&config).env("NO_COLOR", "1");
        match &self.rust_log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("a piped stdout");
        let stderr = child.stderr.take().expect("a piped stderr");
        drain(stdout, &log);
        drain(stderr, &log);
        let mut process = AppProcess {
            child: ChildGuard::new(child),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            log,
            name: self.name,
        };
        process.addr = process.logged_address().await;
        let _ = std::fs::remove_file(&config);
        process
    }
}

/// Reads `pipe` line by line into `log` on a thread of its own, until the process closes it.
fn drain(pipe: impl Read + Send + 'static, log: &Arc<Mutex<Vec<String>>>) {
    let log = Arc::clone(log);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
        }
    });
}

/// The address in a `listening` log line: `address=127.0.0.1:PORT` in text logs,
/// `"address":"127.0.0.1:PORT"` in JSON ones.
fn address_in(line: &str) -> Option<SocketAddr> {
    let (at, skip) = match line.find("address=") {
        Some(at) => (at, "address=".len()),
        None => (line.find("\"address\":\"")?, "\"address\":\"".len()),
    };
    let rest = &line[at + skip..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// An app binary running as a child process, listening on [`AppProcess::addr`]; killed when
/// dropped.
#[derive(Debug)]
pub struct AppProcess {
    child: ChildGuard,
    addr: SocketAddr,
    /// Every line it has written to stdout or stderr so far, in arrival order per pipe.
    log: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl AppProcess {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client for it; `Copy`, so it can move into spawned tasks.
    pub fn client(&self) -> Client {
        Client { addr: self.addr }
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Its process id, `None` once it has been killed or has exited.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Every line it has logged so far (stdout and stderr).
    pub fn log(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Kills it with SIGKILL (no shutdown at all) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Sends it SIGTERM (through `kill -TERM`, by pid) and waits, at most `within`, for it to
    /// exit; its exit status.
    ///
    /// # Panics
    ///
    /// When it is not running, `kill` fails, or it does not exit in time.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self.pid().expect("the process runs").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within {within:?} of SIGTERM",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the `listening` line, failing early if the process exits.
    async fn logged_address(&mut self) -> SocketAddr {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(addr) = self.log().iter().find_map(|line| address_in(line)) {
                return addr;
            }
            if let Some(status) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before listening; it logged:\n{}",
                    self.name,
                    self.log().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} logged no address within {START_TIMEOUT:?}; it logged:\n{}",
                self.name,
                self.log().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl From<&AppProcess> for Client {
    fn from(process: &AppProcess) -> Client {
        process.client()
    }
}
