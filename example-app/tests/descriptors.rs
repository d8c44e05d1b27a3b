//! The example-app binary out of file descriptors: clients it cannot take are closed at
//! once instead of waiting unanswered in the listen backlog, and it serves again as soon as
//! descriptors are free.
//!
//! The clients are plain blocking sockets: the process under test is another process, so
//! blocking this test's thread holds nothing up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rondo_tests::process::AppCommand;
use rondo_tests::redis::RedisServer;

/// The example-app binary this test runs.
const APP: &str = env!("CARGO_BIN_EXE_example-app");

/// Under `ulimit -n 64` with `max_connections` set far above it, 120 idle clients: those
/// the process has no descriptor for are closed by the server within 3 s (long before the
/// 10 s header timeout would cut the accepted ones), and once the clients leave a new
/// request is served.
#[tokio::test]
async fn clients_beyond_the_descriptor_limit_are_closed_not_left_hanging() {
    let redis = RedisServer::start().await;
    let app = AppCommand::example(
        APP,
        "descriptors",
        redis.port(),
        "[http]\nmax_connections = 100000\nheader_read_timeout = 10\nworkers = 1\n",
    )
    .open_files(64)
    .start()
    .await;
    let addr = app.addr();
    let mut clients: Vec<TcpStream> = (0..120)
        .map(|_| TcpStream::connect(addr).expect("the backlog takes the connection"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut closed = 0;
    for client in &mut clients {
        let left = deadline.saturating_duration_since(Instant::now());
        client
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        let mut buf = [0u8; 16];
        match client.read(&mut buf) {
            Ok(0) => closed += 1,
            Ok(n) => panic!("an idle client got {n} bytes"),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {} // still open: accepted, waiting for its head
        }
    }
    // At most 64 descriptors: at least 120 - 64 clients cannot have been taken.
    assert!(
        closed >= 56,
        "only {closed} of 120 clients were closed within 3 s"
    );
    drop(clients);
    let served = Instant::now();
    loop {
        let answer = TcpStream::connect(addr).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        });
        if answer
            .as_deref()
            .is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
        {
            break;
        }
        assert!(
            served.elapsed() < Duration::from_secs(5),
            "not served again after the clients left: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
