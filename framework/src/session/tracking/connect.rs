//! Opening a tracking connection: RESP3 (so invalidations arrive as pushes on it), named
//! `rondo-tracking`, and set up for its mode.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::channel::Link;
use super::Mode;
use crate::config::RedisPoolConfig;
use crate::redis::resp::{self, Frame};

/// Why a connection attempt failed: worth retrying, or not (Redis cannot track for us).
pub(super) enum ConnectError {
    Transient(String),
    Unsupported(String),
}

/// A connection, set up.
pub(super) struct Connected {
    pub(super) link: Link,
    /// Its `CLIENT ID`, which data connections name in `REDIRECT` (key tracking).
    pub(super) client_id: Option<u64>,
}

/// Connects to `host:port` and sets the connection up for `mode`:
///
/// - [`Mode::Keys`]: the connection only receives what the data connections' tracking
///   redirects to it. It asks for its id, and checks once that this user may turn tracking
///   on at all (`CLIENT TRACKING ON OPTIN`, then `OFF`), so that a refusal disables
///   tracking here instead of failing every data connection later.
/// - [`Mode::Broadcast`]: `CLIENT TRACKING ON BCAST PREFIX {prefix}`.
///
/// Either way the node must be a primary (`ROLE`).
pub(super) async fn connect(
    (host, port): (&str, u16),
    config: &RedisPoolConfig,
    mode: Mode,
    prefix: &str,
) -> Result<Connected, ConnectError> {
    let transient = |e: std::io::Error| ConnectError::Transient(e.to_string());
    let setup = async {
        let mut stream = TcpStream::connect((host, port)).await.map_err(transient)?;
        stream.set_nodelay(true).map_err(transient)?;
        let mut hello: Vec<&[u8]> = vec![b"HELLO", b"3"];
        if let Some(password) = &config.password {
            let user = config.username.as_deref().unwrap_or("default");
            hello.extend([&b"AUTH"[..], user.as_bytes(), password.as_bytes()]);
        }
        let mut out = resp::command(&hello);
        out.extend(resp::command(&[b"CLIENT", b"SETNAME", b"rondo-tracking"]));
        let expected = match mode {
            Mode::Keys => {
                out.extend(resp::command(&[b"CLIENT", b"ID"]));
                out.extend(resp::command(&[b"CLIENT", b"TRACKING", b"ON", b"OPTIN"]));
                out.extend(resp::command(&[b"CLIENT", b"TRACKING", b"OFF"]));
                6
            }
            Mode::Broadcast => {
                out.extend(resp::command(&[
                    b"CLIENT",
                    b"TRACKING",
                    b"ON",
                    b"BCAST",
                    b"PREFIX",
                    prefix.as_bytes(),
                ]));
                4
            }
        };
        // Last: a replica hears of writes only as they replicate, too late to vouch.
        out.extend(resp::command(&[b"ROLE"]));
        stream.write_all(&out).await.map_err(transient)?;
        let mut input = Vec::new();
        let mut replies = Vec::new();
        let mut chunk = [0u8; 4096];
        while replies.len() < expected {
            let n = stream.read(&mut chunk).await.map_err(transient)?;
            if n == 0 {
                return Err(ConnectError::Transient("closed by Redis".into()));
            }
            input.extend_from_slice(&chunk[..n]);
            while replies.len() < expected {
                match resp::parse(&input).map_err(|e| ConnectError::Transient(e.to_string()))? {
                    Some((Frame::Push(_), len)) => drop(input.drain(..len)),
                    // `ROLE` refused to this user: the check is skipped.
                    Some((Frame::Error(message), len))
                        if replies.len() == expected - 1 && message.contains("NOPERM") =>
                    {
                        input.drain(..len);
                        replies.push(Frame::Null);
                    }
                    Some((Frame::Error(message), _)) => return Err(refused(message)),
                    Some((frame, len)) => {
                        input.drain(..len);
                        replies.push(frame);
                    }
                    None => break,
                }
            }
        }
        if let Some(Frame::Array(role)) = replies.last() {
            if let Some(Frame::Text(role)) = role.first() {
                if role != b"master" {
                    return Err(ConnectError::Transient(format!(
                        "{host}:{port} is not a primary (ROLE: {})",
                        String::from_utf8_lossy(role)
                    )));
                }
            }
        }
        let client_id = match (mode, replies.get(2)) {
            (Mode::Keys, Some(Frame::Int(id))) => Some(
                u64::try_from(*id)
                    .map_err(|_| ConnectError::Transient(format!("CLIENT ID answered {id}")))?,
            ),
            (Mode::Keys, other) => {
                return Err(ConnectError::Transient(format!(
                    "CLIENT ID answered {other:?}"
                )))
            }
            (Mode::Broadcast, _) => None,
        };
        // Out of the reactor, still non-blocking.
        let socket = stream.into_std().map_err(transient)?;
        Ok(Connected {
            link: Link::new(socket, input),
            client_id,
        })
    };
    match tokio::time::timeout(config.timeout, setup).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Transient(format!(
            "no answer within {:?}",
            config.timeout
        ))),
    }
}

/// An error answer during set-up: passing states of the server are worth waiting out; the
/// rest (an unknown command, a refused permission) are not.
fn refused(message: String) -> ConnectError {
    let passing = ["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"];
    if passing.iter().any(|code| message.starts_with(code)) {
        ConnectError::Transient(message)
    } else {
        ConnectError::Unsupported(message)
    }
}
