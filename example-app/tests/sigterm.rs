//! The example-app binary stopped by SIGTERM right after a burst of acknowledged writes loses
//! none of them: the real process, a real redis-server, real HTTP. (The in-process test
//! `shutdown_right_after_a_burst_loses_no_acknowledged_write` holds commits back in Redis to
//! prove that shutdown waits for them; this one checks the signal path end to end.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed on drop (only the one this test started).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli runs (Debian package redis-tools / redis-server)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One HTTP/1.1 request on its own connection: (status, Set-Cookie session value).
fn get(addr: &str, path: &str, cookie: Option<&str>) -> (u16, Option<String>) {
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

/// SIGTERM right after 30 acknowledged logins (each a write-behind `put`) exits cleanly with
/// all 30 users stored.
#[test]
fn sigterm_after_a_burst_keeps_every_acknowledged_write() {
    let redis_port = free_port();
    let redis = Guard(
        Command::new("redis-server")
            .args([
                "--port",
                &redis_port.to_string(),
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
    while redis_cli(redis_port, &["ping"]) != "PONG" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let config = std::env::temp_dir().join(format!("rondo-sigterm-{redis_port}.ini"));
    std::fs::write(
        &config,
        format!(
            "[http]\nport = 0\n[session]\nstore = redis\n[redis]\ndefault[port] = {redis_port}\n\
             default[prefix] = t:\n"
        ),
    )
    .expect("write config");
    let mut app = Command::new(env!("CARGO_BIN_EXE_example-app"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("example-app starts");
    let stdout = app.stdout.take().expect("stdout");
    let mut app = Guard(app);
    // The log says where it listens (port 0 picks one).
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
    std::thread::spawn(move || for _ in lines {});

    let (status, cookie) = get(&addr, "/api/basket", None);
    assert_eq!(status, 200);
    assert!(cookie.is_none(), "a read-only request set a cookie");
    let cookies: Vec<String> = (0..30)
        .map(|_| get(&addr, "/bench/new", None).1.expect("a session cookie"))
        .collect();

    // 30 logins at once: each rotates its session id and puts the user, which is written
    // after its response (persist = after_response).
    let burst: Vec<_> = cookies
        .into_iter()
        .enumerate()
        .map(|(i, cookie)| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let body = format!(r#"{{"user":"user{i:02}"}}"#);
                let mut stream = TcpStream::connect(&addr).expect("connect");
                stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
                write!(
                    stream,
                    "POST /api/login HTTP/1.1\r\nHost: {addr}\r\nCookie: dmsession={cookie}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .expect("send");
                let mut response = String::new();
                stream.read_to_string(&mut response).expect("read");
                response.get(9..12) == Some("200")
            })
        })
        .collect();
    let acknowledged = burst
        .into_iter()
        .map(|t| t.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    assert_eq!(acknowledged, 30);

    // SIGTERM by PID, at once.
    let pid = app.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs")
        .success());
    let exited = Instant::now();
    let status = loop {
        if let Some(status) = app.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            exited.elapsed() < Duration::from_secs(15),
            "example-app did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");

    // Every acknowledged login is stored: 30 sessions, each with its user.
    let keys = redis_cli(redis_port, &["--scan", "--pattern", "t:session:*"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 30, "{keys:?}");
    let mut users: Vec<String> = keys
        .iter()
        .map(|key| redis_cli(redis_port, &["HGET", key, "d:user"]))
        .collect();
    users.sort();
    for (i, user) in users.iter().enumerate() {
        assert!(user.ends_with(&format!("user{i:02}")), "{users:?}");
    }
    let _ = std::fs::remove_file(&config);
    drop(redis);
}
