//! WebSocket upgrades over real HTTP/1.1: the handshake, messages both ways, the origin
//! check, the message-size limit, a request that is not a handshake, and close code 1001
//! at shutdown, after in-flight requests finished.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use rondo::websocket::{Message, WebSocket, WebSocketUpgrade};
use rondo::{App, ErrorPage, Response};
use rondo_tests::http::TestServer;
use rondo_tests::plain_app::test_config;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Echoes text messages, upper-cased, until the client leaves or the server shuts down.
async fn echo(upgrade: WebSocketUpgrade) -> Result<Response, ErrorPage> {
    if !upgrade.origin_allowed(&["https://shop.example".to_owned()]) {
        return Err(ErrorPage::new(StatusCode::FORBIDDEN, "origin not allowed"));
    }
    Ok(upgrade
        .max_message_size(1024)
        .on_upgrade(|mut socket: WebSocket| async move {
            let closing = socket.closing();
            tokio::pin!(closing);
            loop {
                tokio::select! {
                    message = socket.recv() => match message {
                        Some(Ok(Message::Text(text))) => {
                            let upper = text.as_str().to_uppercase();
                            if socket.send(Message::text(upper)).await.is_err() {
                                return;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => return,
                    },
                    () = &mut closing => {
                        socket.close_going_away().await;
                        return;
                    }
                }
            }
        }))
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(600)).await;
    "done"
}

async fn server() -> TestServer {
    let app = App::new(test_config()).get("/ws", echo).get("/slow", slow);
    TestServer::start(app).await
}

type Client = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(server: &TestServer, origin: Option<&str>) -> Result<Client, String> {
    let mut request = format!("ws://{}/ws", server.addr)
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let handshake = tokio_tungstenite::client_async(request, stream);
    match tokio::time::timeout(Duration::from_secs(3), handshake).await {
        Ok(Ok((client, _response))) => Ok(client),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("handshake timed out".into()),
    }
}

async fn next(client: &mut Client) -> Option<Message> {
    match tokio::time::timeout(Duration::from_secs(3), client.next()).await {
        Ok(Some(Ok(message))) => Some(message),
        _ => None,
    }
}

/// The handshake succeeds and text goes both ways.
#[tokio::test]
async fn messages_go_both_ways() {
    let server = server().await;
    let mut client = connect(&server, None).await.unwrap();
    client.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut client).await, Some(Message::text("HELLO")));
    client.send(Message::text("again")).await.unwrap();
    assert_eq!(next(&mut client).await, Some(Message::text("AGAIN")));
}

/// A page of another site cannot open the socket (403); the allowed origin and the
/// server's own origin can.
#[tokio::test]
async fn foreign_origins_are_refused() {
    let server = server().await;
    let refused = connect(&server, Some("https://evil.example"))
        .await
        .unwrap_err();
    assert!(refused.contains("403"), "{refused}");
    assert!(connect(&server, Some("https://shop.example")).await.is_ok());
    let own = format!("http://{}", server.addr);
    assert!(connect(&server, Some(&own)).await.is_ok());
}

/// A message over the limit closes the socket with 1009 (message too big).
#[tokio::test]
async fn oversize_messages_close_with_1009() {
    let server = server().await;
    let mut client = connect(&server, None).await.unwrap();
    client.send(Message::text("x".repeat(2000))).await.unwrap();
    match next(&mut client).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a close with 1009, got {other:?}"),
    }
}

/// A plain GET on the socket's route is refused with 400, a wrong version with 426.
#[tokio::test]
async fn non_handshakes_are_refused() {
    let server = server().await;
    assert_eq!(server.get("/ws").await.status, StatusCode::BAD_REQUEST);
    let wrong = server
        .get_with(
            "/ws",
            &[
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "8"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(wrong.header("sec-websocket-version"), Some("13"));
}

/// At shutdown an open socket stays open while a request is in flight, then receives close
/// code 1001, and `serve` returns once it has closed.
#[tokio::test]
async fn shutdown_closes_sockets_with_1001_after_requests() {
    let mut server = server().await;
    let mut client = connect(&server, None).await.unwrap();
    let http = server.client();
    let in_flight = tokio::spawn(async move { http.get("/slow").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    server.trigger_shutdown();
    // While the request is in flight, the socket still answers.
    client.send(Message::text("still")).await.unwrap();
    assert_eq!(next(&mut client).await, Some(Message::text("STILL")));
    match next(&mut client).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a close with 1001, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let response = in_flight.await.unwrap();
    assert_eq!(response.body, "done");
    server.shutdown().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
}
