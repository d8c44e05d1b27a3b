//! Hostile input against the example app on a real Redis: malformed and oversized cookies,
//! heads and bodies, slow clients and crowds of idle connections. Every answer must be a 4xx
//! or a closed connection, never a 5xx, the stored session must stay untouched, and the
//! server must keep serving everybody else.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use http::StatusCode;
use rondo_tests::app::{example_config, start_example, Jar};
use rondo_tests::http::{RawEnd, RawExchange, TestServer};
use rondo_tests::redis::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The read timeout of raw exchanges.
const RAW_WAIT: Duration = Duration::from_secs(3);

/// Short timeouts so the slow-client tests stay fast.
const SHORT_TIMEOUTS: &str = "[http]\nheader_read_timeout = 300ms\nbody_read_timeout = 300ms\n";

/// The example app on a fresh Redis with short client timeouts, and a session whose counter
/// is at 3 (its cookie in the jar).
async fn shop_with_session() -> (RedisServer, TestServer, Jar) {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), SHORT_TIMEOUTS)).await;
    let mut jar = Jar::default();
    for expected in ["1", "2", "3"] {
        assert_eq!(jar.get(&shop, "/bench/counter").await.body, expected);
    }
    (redis, shop, jar)
}

/// Asserts that a raw exchange ended in a 4xx or a closed connection without a response.
fn refused(what: &str, raw: &RawExchange) {
    match raw.status() {
        Some(status) => assert!((400..500).contains(&status), "{what}: {raw:?}"),
        None => assert!(
            raw.end.server_closed(),
            "{what}: no answer, still open: {raw:?}"
        ),
    }
}

/// The session's counter is still 3 and the same id still names it.
async fn session_untouched(shop: &TestServer, jar: &mut Jar) {
    let id = jar.value.clone();
    let read = jar.get(shop, "/bench/read").await;
    assert_eq!((read.status, read.body.as_str()), (StatusCode::OK, "3"));
    assert_eq!(jar.value, id, "the session id must not change");
}

/// Malformed, huge, repeated and non-UTF-8 session cookies never give a 5xx: each request is
/// served with a fresh session (or 431 when the head is too large), and the real session,
/// sent among 50 cookies in one header, is found and left intact.
#[tokio::test]
async fn hostile_cookies_get_a_fresh_session_or_a_4xx() {
    let (_redis, shop, mut jar) = shop_with_session().await;
    let real = jar.value.clone().unwrap();
    let unknown = "A".repeat(43);
    let cookies = [
        "dmsession".to_owned(),
        "dmsession=".to_owned(),
        "=;=;;;".to_owned(),
        "dmsession=\"unterminated".to_owned(),
        format!("dmsession={}", "x".repeat(42)),
        format!("dmsession={}", "x".repeat(44)),
        format!("dmsession={}+/", "x".repeat(41)),
        format!("dmsession={unknown}"),
        format!("dmsession={}", "z".repeat(7 * 1024)),
        format!("dmsession=%{}", &real[1..]),
    ];
    for cookie in &cookies {
        let response = shop.get_with("/bench/counter", &[("cookie", cookie)]).await;
        let what = &cookie[..cookie.len().min(40)];
        assert_eq!(
            (response.status, response.body.as_str()),
            (StatusCode::OK, "1"),
            "{what}"
        );
        let fresh = rondo_tests::app::set_cookie_value(&response, "dmsession").unwrap();
        assert!(fresh != real && fresh != unknown, "{what}");
    }

    // 50 cookies in one header, the real one last: it is found.
    let mut many: Vec<String> = (0..49).map(|i| format!("c{i}=v{i}")).collect();
    many[10] = "dmsession=bogus".to_owned();
    many.push(format!("dmsession={real}"));
    let response = shop
        .get_with("/bench/read", &[("cookie", &many.join("; "))])
        .await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (StatusCode::OK, "3")
    );

    // Bytes that are no UTF-8, a cookie header over the 16 KiB head limit, CR and LF in the
    // value, NUL: refused by the parser or ignored, never a 5xx.
    let raw_cookies: [&[u8]; 5] = [
        b"dmsession=\xff\xfe\xfd",
        b"dmsession=a\rb",
        b"dmsession=a\nX-Injected: 1",
        b"dmsession=a\x00b",
        b"dmsession=abc\r\n continued",
    ];
    for cookie in raw_cookies {
        let mut head = b"GET /bench/counter HTTP/1.1\r\nHost: t\r\nCookie: ".to_vec();
        head.extend_from_slice(cookie);
        head.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        let raw = shop.raw_exchange(&head, RAW_WAIT).await;
        let what = String::from_utf8_lossy(cookie);
        match raw.status() {
            Some(200) => assert!(raw.text.ends_with("\r\n\r\n1"), "{what}: {raw:?}"),
            _ => refused(&what, &raw),
        }
        assert!(!raw.text.contains("X-Injected"), "{what}: {raw:?}");
    }
    let huge = format!("dmsession={real}; pad={}", "p".repeat(20 * 1024));
    let raw = shop
        .raw_exchange(
            format!("GET /bench/counter HTTP/1.1\r\nHost: t\r\nCookie: {huge}\r\n\r\n").as_bytes(),
            RAW_WAIT,
        )
        .await;
    assert_eq!(raw.status(), Some(431), "{raw:?}");

    session_untouched(&shop, &mut jar).await;
}

/// Malformed request heads (bad request line, bad header syntax, bad or conflicting
/// lengths, bad chunking, invalid UTF-8 in the target, a 100 KiB target, 2000 headers) each
/// get a 4xx or a closed connection, and the server keeps serving the real session.
#[tokio::test]
async fn malformed_heads_and_bodies_get_a_4xx_or_a_close() {
    let (_redis, shop, mut jar) = shop_with_session().await;
    let cookie = format!("Cookie: dmsession={}\r\n", jar.value.clone().unwrap());
    let json = "Content-Type: application/json\r\n";
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let many_headers = format!(
        "GET /bench/read HTTP/1.1\r\nHost: t\r\n{}\r\n",
        (0..2000)
            .map(|i| format!("X-{i}: {i}\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec()),
        ("bad method", b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
        ("bad version", b"GET / HTTP/9.9\r\nHost: t\r\n\r\n".to_vec()),
        ("space in header name", b"GET / HTTP/1.1\r\nHo st: t\r\n\r\n".to_vec()),
        ("non-UTF-8 target", b"GET /api/basket\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
        ("long target", long_target.into_bytes()),
        ("2000 headers", many_headers.into_bytes()),
        (
            "negative length",
            format!("POST /api/basket/items HTTP/1.1\r\nHost: t\r\n{cookie}{json}Content-Length: -5\r\n\r\n")
                .into_bytes(),
        ),
        (
            "conflicting lengths",
            format!("POST /api/basket/items HTTP/1.1\r\nHost: t\r\n{cookie}{json}Content-Length: 5\r\nContent-Length: 7\r\n\r\n{{}}")
                .into_bytes(),
        ),
        (
            "bad chunk size",
            format!("POST /api/basket/items HTTP/1.1\r\nHost: t\r\n{cookie}{json}Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n")
                .into_bytes(),
        ),
        (
            "declared 1 EB body",
            format!("POST /api/basket/items HTTP/1.1\r\nHost: t\r\n{cookie}{json}Content-Length: 1000000000000000000\r\n\r\n{{")
                .into_bytes(),
        ),
        (
            "invalid UTF-8 JSON",
            [
                format!("POST /api/basket/items HTTP/1.1\r\nHost: t\r\n{cookie}{json}Content-Length: 4\r\nConnection: close\r\n\r\n").as_bytes(),
                b"\"\xff\xfe\"",
            ]
            .concat(),
        ),
    ];
    for (what, bytes) in &cases {
        let raw = shop.raw_exchange(bytes, RAW_WAIT).await;
        refused(what, &raw);
    }

    // A 2 MiB body over the 1 MiB limit: 413 on its `Content-Length`, session untouched.
    // The server answers without reading the body and closes, so the client may still be
    // writing it then: the 413 can be lost to the reset, but never may it be accepted.
    let big = format!("{{\"sku\":\"{}\",\"qty\":1}}", "a".repeat(2 << 20));
    let request = format!(
        "POST /api/basket/items HTTP/1.1\r\nHost: t\r\n{cookie}{json}Content-Length: {}\r\n\r\n{big}",
        big.len()
    );
    let raw = shop.raw_exchange(request.as_bytes(), RAW_WAIT).await;
    match raw.status() {
        Some(status) => assert_eq!(status, 413, "{raw:?}"),
        None => assert!(raw.end.server_closed(), "no answer, still open: {raw:?}"),
    }
    session_untouched(&shop, &mut jar).await;
}

/// A client that sends its head but trickles its body gets 408 after `body_read_timeout`
/// (300 ms) and its connection closed, while other clients are served; the session it named
/// is untouched.
#[tokio::test]
async fn slow_body_gets_408_and_the_connection_closed() {
    let (_redis, shop, mut jar) = shop_with_session().await;
    let head = format!(
        "POST /api/basket/items HTTP/1.1\r\nHost: t\r\nCookie: dmsession={}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"sku\":",
        jar.value.clone().unwrap()
    );
    let mut stream = TcpStream::connect(shop.addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    // One more byte every 100 ms: each arrives within any per-read timeout, the whole does not.
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + RAW_WAIT;
    let end = loop {
        let _ = stream.write_all(b" ").await;
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) => break RawEnd::Closed,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Ok(Err(err)) => break RawEnd::Error(err.kind()),
            Err(_) if Instant::now() > deadline => break RawEnd::TimedOut,
            Err(_) => {}
        }
    };
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?} {end:?}");
    assert!(end.server_closed(), "{end:?}");
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    session_untouched(&shop, &mut jar).await;
}

/// The soft limit on open files of this process, from `/proc/self/limits`.
fn open_file_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// This process's resident set size in KiB, from `/proc/self/status`.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 2000 idle connections (fewer if the open-file limit is low) do not stop the server from
/// answering another client at once; all of them, and 100 keep-alive connections gone quiet
/// after a request, are cut at the header-read timeout, and
/// the process's memory grows by less than 64 MiB.
#[tokio::test]
async fn thousands_of_idle_connections_are_cut_and_memory_stays_bounded() {
    let (_redis, shop, mut jar) = shop_with_session().await;
    // Each connection costs two descriptors here: the client's and the server's.
    let count = 2000.min(open_file_limit().saturating_sub(256) / 2);
    assert!(
        count >= 200,
        "open-file limit too low: {}",
        open_file_limit()
    );
    let before = rss_kib();

    let mut idle = Vec::with_capacity(count);
    let opening = Instant::now();
    for _ in 0..count {
        let stream = tokio::time::timeout(RAW_WAIT, TcpStream::connect(shop.addr))
            .await
            .unwrap()
            .unwrap();
        idle.push(stream);
    }
    let started = Instant::now();
    session_untouched(&shop, &mut jar).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Keep-alive connections that finished a request and then went quiet are idle too.
    for _ in 0..100 {
        let mut stream = TcpStream::connect(shop.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(RAW_WAIT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            buf[..n].ends_with(b"\r\n\r\nok"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        idle.push(stream);
    }
    let peak = rss_kib();

    // Every idle connection is closed by the server, without a response, by the timeout
    // (300 ms) plus scheduling slack.
    let deadline = opening + Duration::from_secs(10);
    let mut cut = 0;
    for stream in &mut idle {
        let mut buf = [0u8; 16];
        let wait = tokio::time::Instant::from(deadline);
        match tokio::time::timeout_at(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => cut += 1,
            Ok(Ok(n)) => panic!("an idle connection got {n} bytes"),
            Err(_) => break,
        }
    }
    assert_eq!(cut, count + 100, "idle connections still open after 10 s");
    drop(idle);
    session_untouched(&shop, &mut jar).await;
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "RSS grew by {grown} KiB for {count} connections"
    );
}

/// Responses that set the session cookie carry `Cache-Control: no-store` (a shared cache
/// must not hand one client's cookie to another); responses that set none do not need to.
#[tokio::test]
async fn set_cookie_responses_are_not_cacheable() {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "")).await;
    let mut jar = Jar::default();
    let first = jar.get(&shop, "/bench/counter").await;
    assert!(first.header("set-cookie").is_some());
    assert_eq!(first.header("cache-control"), Some("no-store"));
    let login = jar
        .post_json(&shop, "/api/login", r#"{"user":"ann"}"#)
        .await;
    assert!(login.header("set-cookie").is_some());
    assert_eq!(login.header("cache-control"), Some("no-store"));
    let logout = jar.post_json(&shop, "/api/logout", "{}").await;
    assert!(logout.header("set-cookie").is_some());
    assert_eq!(logout.header("cache-control"), Some("no-store"));
    let plain = shop.get("/bench/plain").await;
    assert_eq!(plain.header("set-cookie"), None);
}

/// With `cookie_name = __Host-sid` on a plain http:// app URL, the session cookie is still
/// `Secure`, with `Path=/` and no `Domain` (what browsers require of the prefix), and the
/// cookie is read back under that name.
#[tokio::test]
async fn host_prefixed_cookie_is_secure_with_root_path() {
    let redis = RedisServer::start().await;
    let config = example_config(redis.port(), "[session]\ncookie_name = __Host-sid\n");
    let shop = start_example(config).await;
    let first = shop.get("/bench/counter").await;
    let header = first.header("set-cookie").unwrap().to_owned();
    assert!(header.starts_with("__Host-sid="), "{header}");
    let attributes: Vec<&str> = header.split(';').map(str::trim).collect();
    assert!(attributes.contains(&"Secure"), "{header}");
    assert!(attributes.contains(&"Path=/"), "{header}");
    assert!(attributes.contains(&"HttpOnly"), "{header}");
    assert!(!header.contains("Domain"), "{header}");
    let cookie = attributes[0];
    let second = shop.get_with("/bench/counter", &[("cookie", cookie)]).await;
    assert_eq!((second.status, second.body.as_str()), (StatusCode::OK, "2"));
}

/// With `max_size = 1k`, a client that keeps adding items gets 413 with a message naming the
/// limit once its basket would pass 1 KiB; the session keeps what it had before (the refused
/// change is not stored) and keeps working.
#[tokio::test]
async fn a_session_cannot_grow_past_max_size() {
    let redis = RedisServer::start().await;
    let shop = start_example(example_config(redis.port(), "[session]\nmax_size = 1k\n")).await;
    let mut jar = Jar::default();
    let mut accepted = 0;
    let refused = loop {
        assert!(accepted < 100, "max_size never enforced");
        let sku = format!("{accepted:02}{}", "s".repeat(60));
        let item = format!(r#"{{"sku":"{sku}","qty":1}}"#);
        let response = jar.post_json(&shop, "/api/basket/items", &item).await;
        if response.status != StatusCode::OK {
            break response;
        }
        accepted += 1;
    };
    assert!(accepted >= 5, "only {accepted} items fitted in 1 KiB");
    assert_eq!(
        refused.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        refused.body
    );
    let message = refused.json()["error"].as_str().unwrap().to_owned();
    assert!(message.contains("1024"), "{message}");
    let basket = jar.get(&shop, "/api/basket").await;
    assert_eq!(basket.json()["total_qty"], accepted);
    let counter = jar.get(&shop, "/bench/counter").await;
    assert_eq!(
        (counter.status, counter.body.as_str()),
        (StatusCode::OK, "1")
    );
}
