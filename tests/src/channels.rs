//! Channels seen from outside: an app with channel rules on the session, a small Pusher
//! protocol client over a real WebSocket, the authorization request a browser makes, and
//! events published through the HTTP API with Pusher's request signature.
//!
//! The app ([`channels_app`]): `POST /login` with a JSON user name stores it in the
//! session; `private-user.{name}` may be joined by that user only; `presence-room.{id}` by
//! any logged-in user, as `{"user_id": name, "user_info": {"name": name}}`; `POST
//! /broadcast` (JSON `{"channel", "event", "data"}`) publishes from a controller, and `POST
//! /remove` (JSON `{"channel", "user"}`) takes a user off a presence channel.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rondo::channels::protocol::{sign_request, Credentials};
use rondo::channels::{ChannelParams, Channels, PresenceMember};
use rondo::{App, Config, Json, Session, SessionError, SessionManager, State};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::app::{example_config, Jar};
use crate::http::{request, TestServer};

/// The app key, id and secret of the test apps.
pub const KEY: &str = "test-key";
/// The app id of the test apps.
pub const APP_ID: &str = "test-app";
/// The app secret of the test apps.
pub const SECRET: &str = "test-secret-123";

/// The `[channels]` section of the test apps, plus `extra` lines.
pub fn channels_section(extra: &str) -> String {
    format!(
        "[channels]\nenabled = true\napp_id = {APP_ID}\nkey = {KEY}\nsecret = {SECRET}\n\
         presence_ttl = 2s\n{extra}\n"
    )
}

/// The example config on the Redis at `redis_port` with channels on, plus `extra`.
pub fn channels_config(redis_port: u16, extra: &str) -> Config {
    example_config(redis_port, &channels_section(extra))
}

async fn log_in(session: Session, Json(user): Json<String>) -> Result<&'static str, SessionError> {
    session.regenerate().await?;
    session.put("user", &user)?;
    session.persist().await?;
    Ok("welcome")
}

#[derive(serde::Deserialize)]
struct Broadcast {
    channel: String,
    event: String,
    data: Value,
}

async fn broadcast(
    State(channels): State<Channels>,
    Json(b): Json<Broadcast>,
) -> Result<&'static str, rondo::channels::ChannelError> {
    channels.broadcast(&b.channel, &b.event, &b.data).await?;
    Ok("sent")
}

#[derive(serde::Deserialize)]
struct Removal {
    channel: String,
    user: String,
}

async fn remove(
    State(channels): State<Channels>,
    Json(r): Json<Removal>,
) -> Result<&'static str, rondo::channels::ChannelError> {
    channels.remove_user(&r.channel, &r.user).await?;
    Ok("removed")
}

/// The test app on `config` (see the module docs).
///
/// # Panics
///
/// When the sessions or the channels cannot start.
pub async fn channels_app(config: Config) -> App {
    let app = App::new(config);
    let sessions = SessionManager::from_config(app.config(), app.redis())
        .await
        .expect("sessions start");
    let channels = Channels::builder(app.config(), app.redis(), &sessions)
        .private(
            "user.{name}",
            |session: Session, params: ChannelParams| async move {
                let user: Option<String> = session.get("user").await?;
                Ok::<_, SessionError>(user.is_some() && user.as_deref() == params.get("name"))
            },
        )
        .presence(
            "room.{id}",
            |session: Session, _params: ChannelParams| async move {
                let user: Option<String> = session.get("user").await?;
                Ok::<_, SessionError>(
                    user.map(|u| PresenceMember::new(u.clone(), Some(json!({ "name": u })))),
                )
            },
        )
        .start()
        .await
        .expect("channels start");
    app.with(sessions)
        .with(channels)
        .post("/login", log_in)
        .post("/broadcast", broadcast)
        .post("/remove", remove)
}

/// Serves [`channels_app`] on `config`.
pub async fn start_channels(config: Config) -> TestServer {
    TestServer::start(channels_app(config).await).await
}

/// Logs `user` in on `server`; the jar then holds their session cookie.
///
/// # Panics
///
/// When the login is not answered 200.
pub async fn log_in_as(server: &TestServer, user: &str) -> Jar {
    let mut jar = Jar::default();
    let response = jar
        .post_json(server, "/login", &format!("\"{user}\""))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    jar
}

/// Asks `server`'s `/broadcasting/auth` for `channel` on `socket_id` with the jar's cookie:
/// the status and the JSON answer.
pub async fn authorize(
    server: &TestServer,
    jar: &mut Jar,
    socket_id: &str,
    channel: &str,
) -> (u16, Value) {
    let body = format!("socket_id={socket_id}&channel_name={channel}");
    let response = jar.post_form(server, "/broadcasting/auth", &body).await;
    let json = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status.as_u16(), json)
}

/// [`authorize`] on any server (a process's [`Client`](crate::http::Client)) with the
/// session cookie `cookie` (`name=value`).
pub async fn authorize_with(
    client: crate::http::Client,
    cookie: &str,
    socket_id: &str,
    channel: &str,
) -> (u16, Value) {
    let body = format!("socket_id={socket_id}&channel_name={channel}");
    let response = client
        .send(request(
            "POST",
            "/broadcasting/auth",
            &[
                ("cookie", cookie),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body,
        ))
        .await;
    let json = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status.as_u16(), json)
}

/// Publishes through the HTTP events API of `server`, signed with `secret`: the status and
/// the body.
pub async fn publish_signed(server: &TestServer, secret: &str, body: &Value) -> (u16, String) {
    let credentials = Credentials::new(KEY, secret);
    let body = body.to_string();
    let path = format!("/apps/{APP_ID}/events");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let query = sign_request(&credentials, "POST", &path, &[], body.as_bytes(), now);
    publish_raw(server, &format!("{path}?{query}"), body).await
}

/// POSTs `body` to `path_and_query` as JSON: the status and the body.
pub async fn publish_raw(server: &TestServer, path_and_query: &str, body: String) -> (u16, String) {
    let response = server
        .send(request(
            "POST",
            path_and_query,
            &[("content-type", "application/json")],
            body,
        ))
        .await;
    (response.status.as_u16(), response.body)
}

/// Publishes `event` with `data` to `channel` through `server`'s HTTP API, expecting 200.
///
/// # Panics
///
/// When the API does not answer 200.
pub async fn publish(server: &TestServer, channel: &str, event: &str, data: &Value) {
    let body = json!({ "name": event, "channels": [channel], "data": data.to_string() });
    let (status, answer) = publish_signed(server, SECRET, &body).await;
    assert_eq!(status, 200, "{answer}");
}

/// A Pusher protocol client: what pusher-js does, over a real WebSocket.
pub struct PusherClient {
    ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    /// The socket id from `pusher:connection_established`.
    pub socket_id: String,
    /// The activity timeout the server announced, in seconds.
    pub activity_timeout: u64,
}

/// A frame received, `data` decoded when it is JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// `event`.
    pub event: String,
    /// `channel`, if any.
    pub channel: Option<String>,
    /// `data`, parsed when it is JSON text, else the string.
    pub data: Value,
    /// The whole frame.
    pub raw: Value,
}

/// How a connection attempt ended before `connection_established`.
#[derive(Debug)]
pub enum Refused {
    /// The HTTP handshake was refused with this status.
    Http(u16),
    /// The socket was closed with this code (after the upgrade).
    Closed(u16),
    /// Something else.
    Other(String),
}

impl PusherClient {
    /// Connects to `{addr}/app/{key}?protocol=7` (with `origin`, if given) and waits for
    /// `pusher:connection_established`.
    ///
    /// # Errors
    ///
    /// How the server refused.
    pub async fn try_connect(
        addr: SocketAddr,
        key: &str,
        query: &str,
        origin: Option<&str>,
    ) -> Result<Self, Refused> {
        let url = format!("ws://{addr}/app/{key}?{query}");
        let mut req = url
            .into_client_request()
            .map_err(|e| Refused::Other(e.to_string()))?;
        if let Some(origin) = origin {
            req.headers_mut().insert(
                "origin",
                origin
                    .parse()
                    .map_err(|_| Refused::Other("origin".into()))?,
            );
        }
        let stream = Self::tcp(addr, None)
            .await
            .map_err(|e| Refused::Other(e.to_string()))?;
        let handshake = tokio_tungstenite::client_async(req, stream);
        let (ws, _) = match tokio::time::timeout(Duration::from_secs(5), handshake).await {
            Ok(Ok(done)) => done,
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                return Err(Refused::Http(response.status().as_u16()))
            }
            Ok(Err(err)) => return Err(Refused::Other(err.to_string())),
            Err(_) => return Err(Refused::Other("handshake timed out".into())),
        };
        let mut client = Self {
            ws,
            socket_id: String::new(),
            activity_timeout: 0,
        };
        match client.next_raw(Duration::from_secs(5)).await {
            Some(Message::Text(text)) => {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                if frame["event"] != "pusher:connection_established" {
                    // A refusal sends pusher:error first; the close code follows.
                    return Err(match client.closed_with(Duration::from_secs(3)).await {
                        Some(code) => Refused::Closed(code),
                        None => Refused::Other(text.to_string()),
                    });
                }
                let data: Value = frame["data"]
                    .as_str()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or(Value::Null);
                client.socket_id = data["socket_id"].as_str().unwrap_or_default().to_owned();
                client.activity_timeout = data["activity_timeout"].as_u64().unwrap_or(0);
                Ok(client)
            }
            Some(Message::Close(Some(frame))) => Err(Refused::Closed(frame.code.into())),
            other => Err(Refused::Other(format!("{other:?}"))),
        }
    }

    async fn tcp(addr: SocketAddr, recv_buffer: Option<u32>) -> std::io::Result<TcpStream> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        socket.connect(addr).await
    }

    /// A connection whose kernel receive buffer is tiny: a client that stops reading makes
    /// the server's writes block after little data.
    ///
    /// # Panics
    ///
    /// When the connection is refused.
    pub async fn connect_small_buffer(addr: SocketAddr) -> Self {
        let url = format!("ws://{addr}/app/{KEY}?protocol=7");
        let req = url.into_client_request().expect("a valid URL");
        let stream = Self::tcp(addr, Some(4096)).await.expect("connects");
        let (ws, _) = tokio_tungstenite::client_async(req, stream)
            .await
            .expect("handshake");
        let mut client = Self {
            ws,
            socket_id: String::new(),
            activity_timeout: 0,
        };
        let hello = client.next(Duration::from_secs(5)).await.expect("hello");
        client.socket_id = hello.data["socket_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        client
    }

    /// [`PusherClient::try_connect`] with the test key and protocol 7.
    ///
    /// # Panics
    ///
    /// When the connection is refused.
    pub async fn connect(addr: SocketAddr) -> Self {
        match Self::try_connect(addr, KEY, "protocol=7&client=js&version=8.4.0", None).await {
            Ok(client) => client,
            Err(refused) => panic!("connection refused: {refused:?}"),
        }
    }

    async fn next_raw(&mut self, wait: Duration) -> Option<Message> {
        match tokio::time::timeout(wait, self.ws.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            _ => None,
        }
    }

    /// Sends a raw text message.
    ///
    /// # Panics
    ///
    /// When the socket is closed.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("the socket is open");
    }

    /// Sends `{"event": event, "data": data}` (and `channel`, if given).
    pub async fn send_event(&mut self, event: &str, channel: Option<&str>, data: Value) {
        let mut frame = json!({ "event": event, "data": data });
        if let Some(channel) = channel {
            frame["channel"] = json!(channel);
        }
        self.send_text(&frame.to_string()).await;
    }

    /// The next text frame within `wait` (pings from the server are answered and skipped).
    pub async fn next(&mut self, wait: Duration) -> Option<Received> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Message::Text(text) = self.next_raw(left).await? else {
                continue;
            };
            let raw: Value = serde_json::from_str(text.as_str()).ok()?;
            let event = raw["event"].as_str().unwrap_or_default().to_owned();
            if event == "pusher:ping" {
                self.send_event("pusher:pong", None, json!({})).await;
                continue;
            }
            let data = match &raw["data"] {
                Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
                other => other.clone(),
            };
            return Some(Received {
                event,
                channel: raw["channel"].as_str().map(str::to_owned),
                data,
                raw,
            });
        }
    }

    /// Waits for the server's `pusher:ping` (without answering it), skipping other frames.
    pub async fn server_ping(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(Message::Text(text)) = self.next_raw(left).await else {
                return false;
            };
            if text.as_str().contains("\"pusher:ping\"") {
                return true;
            }
        }
    }

    /// The next frame named `event` within `wait`, skipping others.
    pub async fn expect(&mut self, event: &str, wait: Duration) -> Option<Received> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let received = self.next(left).await?;
            if received.event == event {
                return Some(received);
            }
        }
    }

    /// Subscribes with an optional `auth` and `channel_data` and returns the answer
    /// (`pusher_internal:subscription_succeeded` or an error).
    pub async fn subscribe_with(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Option<Received> {
        let mut data = json!({ "channel": channel, "auth": auth.unwrap_or("") });
        if let Some(channel_data) = channel_data {
            data["channel_data"] = json!(channel_data);
        }
        self.send_event("pusher:subscribe", None, data).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let received = self.next(left).await?;
            if received.channel.as_deref() == Some(channel)
                && (received.event == "pusher_internal:subscription_succeeded"
                    || received.event == "pusher:subscription_error")
            {
                return Some(received);
            }
        }
    }

    /// Authorizes `channel` with `server` and the jar's session, then subscribes.
    ///
    /// # Panics
    ///
    /// When the authorization is refused.
    pub async fn join(&mut self, server: &TestServer, jar: &mut Jar, channel: &str) -> Received {
        let (status, grant) = authorize(server, jar, &self.socket_id, channel).await;
        self.subscribe_granted(channel, status, &grant).await
    }

    /// [`PusherClient::join`] through any server's client and a session cookie.
    ///
    /// # Panics
    ///
    /// When the authorization or the subscription is refused.
    pub async fn join_with(
        &mut self,
        client: crate::http::Client,
        cookie: &str,
        channel: &str,
    ) -> Received {
        let (status, grant) = authorize_with(client, cookie, &self.socket_id, channel).await;
        self.subscribe_granted(channel, status, &grant).await
    }

    /// Subscribes `channel` with the answer of `/broadcasting/auth` (`status`, `grant`).
    ///
    /// # Panics
    ///
    /// When the authorization or the subscription was refused.
    async fn subscribe_granted(&mut self, channel: &str, status: u16, grant: &Value) -> Received {
        assert_eq!(status, 200, "auth for {channel}: {grant}");
        let reply = self
            .subscribe_with(
                channel,
                grant["auth"].as_str(),
                grant["channel_data"].as_str(),
            )
            .await
            .expect("a subscription answer");
        assert_eq!(
            reply.event, "pusher_internal:subscription_succeeded",
            "{reply:?}"
        );
        reply
    }

    /// Waits for the server to close the socket; its close code.
    pub async fn closed_with(&mut self, wait: Duration) -> Option<u16> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_raw(left).await? {
                Message::Close(Some(frame)) => return Some(frame.code.into()),
                Message::Close(None) => return Some(1005),
                _ => {}
            }
        }
    }

    /// Stops reading without closing (a client that does not keep up); the raw stream.
    pub fn into_inner(self) -> tokio_tungstenite::WebSocketStream<TcpStream> {
        self.ws
    }
}
