//! The worker threads that serve connections (`[http] workers`): as many as configured,
//! serving every request, gone with the server; none with `workers = 0`.
//!
//! Its own test binary, so that no other test's server adds threads to the count.

use std::time::{Duration, Instant};

use rondo::{App, Config};
use rondo_tests::http::TestServer;

/// Threads of this process named like a server's workers.
fn worker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc is mounted")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("rondo-http-"))
        .count()
}

/// Waits (up to 5 s) until [`worker_threads`] is `n`.
async fn workers_become(n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if worker_threads() == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// An app that answers with the name of the thread serving the request.
fn app(workers: usize) -> App {
    let mut config = Config::default();
    config.http.port = 0;
    config.http.workers = workers;
    App::new(config).get("/thread", || async {
        std::thread::current().name().unwrap_or("?").to_owned()
    })
}

#[tokio::test]
async fn workers_serve_every_request_and_stop_with_the_server() {
    assert_eq!(worker_threads(), 0);
    let server = TestServer::start(app(3)).await;
    for _ in 0..9 {
        let res = server.get("/thread").await;
        assert!(res.body.starts_with("rondo-http-"), "{}", res.body);
    }
    assert_eq!(worker_threads(), 3);
    server.shutdown().await.expect("a clean shutdown");
    assert!(
        workers_become(0).await,
        "{} still running",
        worker_threads()
    );

    // Dropping `serve`'s future, without a graceful shutdown, stops them as well.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let task = tokio::spawn(rondo::serve(listener, app(2), std::future::pending()));
    assert!(workers_become(2).await, "{} running", worker_threads());
    task.abort();
    assert!(task.await.expect_err("aborted").is_cancelled());
    assert!(
        workers_become(0).await,
        "{} still running",
        worker_threads()
    );
}

/// `workers = 0`: connections are tasks of the runtime that calls `serve` (this test's own
/// single-threaded one, on this test's thread).
#[tokio::test]
async fn zero_workers_serve_on_the_callers_runtime() {
    let server = TestServer::start(app(0)).await;
    let here = std::thread::current().name().unwrap_or("?").to_owned();
    for _ in 0..3 {
        assert_eq!(server.get("/thread").await.body, here);
    }
    server.shutdown().await.expect("a clean shutdown");
}
