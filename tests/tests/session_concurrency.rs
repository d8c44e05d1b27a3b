//! Many requests on one session at once: concurrent increments are exact, and a read on one
//! worker thread sees a write made on another even while the thread running the session's
//! actor is blocked. Real `redis-server`, real HTTP.
//!
//! Every test starts its own Redis and server; every wait is bounded.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use http::StatusCode;
use rondo_tests::app::{basket, example, set_cookie_header, Jar};
use rondo_tests::http::TestServer;
use rondo_tests::session::{eventually, hash, redis, store_key};
use rondo_tests::session_app::custom_app;

/// After a rotation keeps the data, 50 concurrent `/bench/counter` requests on one cookie
/// (each its own connection) answer exactly 1..=50, and `/bench/read` then says 50.
#[tokio::test]
async fn concurrent_updates_on_one_session_are_exact() {
    let (redis, server) = example("").await;
    let mut jar = Jar::default();
    jar.post_json(&server, "/api/basket/items", r#"{"sku":"Z","qty":5}"#)
        .await;
    let before = jar.value.clone().unwrap();
    jar.post_json(&server, "/api/login", r#"{"user":"cy"}"#)
        .await;
    let cookie = jar.value.clone().unwrap();
    assert_ne!(cookie, before);
    assert_eq!(basket(&mut jar, &server).await["total_qty"], 5);

    let header = format!("dmsession={cookie}");
    let client = server.client();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let header = header.clone();
            tokio::spawn(async move {
                client
                    .get_with("/bench/counter", &[("cookie", header.as_str())])
                    .await
            })
        })
        .collect();
    let mut values = Vec::new();
    for task in tasks {
        let res = tokio::time::timeout(Duration::from_secs(8), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(set_cookie_header(&res, "dmsession"), None);
        values.push(res.body.parse::<u64>().unwrap());
    }
    values.sort_unstable();
    assert_eq!(values, (1..=50).collect::<Vec<u64>>());
    assert_eq!(jar.get(&server, "/bench/read").await.body, "50");

    let key = store_key(&cookie);
    assert!(
        eventually(|| async {
            hash(&redis, &key)
                .await
                .get("d:count")
                .is_some_and(|b| rmp_serde::from_slice::<u64>(b).ok() == Some(50))
        })
        .await
    );
}

/// One keep-alive HTTP/1.1 connection: `GET path` with a cookie, the body back.
struct KeepAlive(tokio::io::BufReader<tokio::net::TcpStream>);

impl KeepAlive {
    async fn open(server: &TestServer) -> Self {
        Self(tokio::io::BufReader::new(
            tokio::net::TcpStream::connect(server.addr).await.unwrap(),
        ))
    }

    async fn get(&mut self, path: &str, cookie: &str) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let head = format!("GET {path} HTTP/1.1\r\nhost: t\r\ncookie: dmsession={cookie}\r\n\r\n");
        self.0.get_mut().write_all(head.as_bytes()).await.unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.0.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.0.read_exact(&mut body).await.unwrap();
        String::from_utf8(body).unwrap()
    }
}

/// A read on one worker thread right after a write on another sees the write, even while
/// the thread that runs the session's actor is too busy to have applied it: the reader then
/// asks the actor and waits, instead of taking the copy the actor published before.
#[tokio::test]
async fn reads_see_the_last_write_while_the_actors_thread_is_busy() {
    let redis = redis().await;
    let (_manager, server) = custom_app(&redis, "[http]\nworkers = 2").await;
    let mut jar = Jar::default();
    assert_eq!(jar.get(&server, "/put-n/0").await.status, StatusCode::OK);
    let cookie = jar.value.clone().unwrap();
    // Keep-alive connections until two are on each worker thread.
    let mut by_lane: HashMap<String, Vec<KeepAlive>> = HashMap::new();
    for _ in 0..20 {
        let mut conn = KeepAlive::open(&server).await;
        let lane = conn.get("/lane", &cookie).await;
        by_lane.entry(lane).or_default().push(conn);
        if by_lane.len() == 2 && by_lane.values().all(|c| c.len() >= 2) {
            break;
        }
    }
    let mut lanes: Vec<Vec<KeepAlive>> = by_lane.into_values().collect();
    assert!(
        lanes.len() == 2 && lanes.iter().all(|c| c.len() >= 2),
        "two connections on each of two threads"
    );
    let (mut busy, mut other) = (lanes.remove(0), lanes.remove(0));
    // The session's actor starts on the first thread, and its copy is checked there.
    assert_eq!(busy[0].get("/get-n", &cookie).await, "Some(0)");
    // Block that thread for a while.
    let mut staller = busy.remove(1);
    let stall = tokio::spawn(async move { staller.get("/stall", "").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Write and read on the other thread while the actor cannot run.
    assert_eq!(other[0].get("/put-n/1", &cookie).await, "ok");
    assert_eq!(other[1].get("/get-n", &cookie).await, "Some(1)");
    assert!(stall.is_finished(), "the read waited for the busy thread");
    assert_eq!(stall.await.unwrap(), "stalled");
}
