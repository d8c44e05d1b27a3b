//! Shared helpers for the process-level tests: a redis-server and example-app processes on
//! free loopback ports, and a minimal HTTP/1.1 client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed on drop (only the one this test started).
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

pub(crate) fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli runs (Debian package redis-tools / redis-server)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One HTTP/1.1 request on its own connection: (status, Set-Cookie session value).
pub(crate) fn get(addr: &str, path: &str, cookie: Option<&str>) -> (u16, Option<String>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let cookie = cookie
        .map(|c| format!("Cookie: dmsession={c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let set = response.lines().find_map(|line| {
        let value = line.strip_prefix("set-cookie: dmsession=")?;
        value.split(';').next().map(str::to_owned)
    });
    (status, set)
}

/// A redis-server on a free port, and its port.
pub(crate) fn start_redis() -> (Guard, u16) {
    let port = free_port();
    let redis = Guard(
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian package redis-server)"),
    );
    let started = Instant::now();
    while redis_cli(port, &["ping"]) != "PONG" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (redis, port)
}

/// The example-app binary on a free port with `store = redis` on `redis_port`; returns the
/// process and the address it listens on (read from its log).
pub(crate) fn start_app(redis_port: u16, name: &str) -> (Guard, String) {
    start_app_with(redis_port, name, "")
}

/// [`start_app`] with `extra` INI lines appended (new sections such as `[jobs]`).
pub(crate) fn start_app_with(redis_port: u16, name: &str, extra: &str) -> (Guard, String) {
    start_app_limited(redis_port, name, extra, None)
}

/// [`start_app_with`], the process limited to `open_files` descriptors when given (through
/// the shell's `ulimit -n`, which then `exec`s the app: same process).
pub(crate) fn start_app_limited(
    redis_port: u16,
    name: &str,
    extra: &str,
    open_files: Option<u32>,
) -> (Guard, String) {
    let config = std::env::temp_dir().join(format!("rondo-{name}-{redis_port}.ini"));
    std::fs::write(
        &config,
        format!(
            "[http]\nport = 0\n[session]\nstore = redis\n[redis]\ndefault[port] = {redis_port}\n\
             default[prefix] = t:\n{extra}\n"
        ),
    )
    .expect("write config");
    let binary = env!("CARGO_BIN_EXE_example-app");
    let mut command = match open_files {
        None => Command::new(binary),
        Some(limit) => {
            let mut shell = Command::new("sh");
            shell
                .arg("-c")
                .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                .arg(binary);
            shell
        }
    };
    let mut app = command
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("example-app starts");
    let stdout = app.stdout.take().expect("stdout");
    let app = Guard(app);
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("a log line").expect("text");
        if let Some(at) = line.find("address=") {
            break line[at + 8..]
                .split_whitespace()
                .next()
                .expect("an address")
                .to_owned();
        }
    };
    // Keep draining the log so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let _ = std::fs::remove_file(&config);
    (app, addr)
}

/// `POST path` with a JSON body and the session cookie: (status, body).
pub(crate) fn post_json(addr: &str, path: &str, cookie: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: dmsession={cookie}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    split(&response)
}

/// `GET path` with the session cookie: (status, body).
pub(crate) fn get_body(addr: &str, path: &str, cookie: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: dmsession={cookie}\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    split(&response)
}

/// `method path` with an optional cookie and JSON body: (status, body, the session cookie the
/// response sets, if any).
pub(crate) fn send(
    addr: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> (u16, String, Option<String>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let cookie = cookie
        .map(|c| format!("Cookie: dmsession={c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let set = response.lines().find_map(|line| {
        let value = line.strip_prefix("set-cookie: dmsession=")?;
        value.split(';').next().map(str::to_owned)
    });
    let (status, body) = split(&response);
    (status, body, set)
}

fn split(response: &str) -> (u16, String) {
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
