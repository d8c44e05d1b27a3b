//! Opening a subscriber connection: TCP, then `HELLO 3` with the pool's credentials and the
//! connection's name, or, on a server without `HELLO` (before Redis 6), RESP2 with `AUTH` and
//! `CLIENT SETNAME`. No database is selected: pub/sub channels are not in a database.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Addr;
use crate::config::RedisPoolConfig;
use crate::redis::resp::{self, Frame};

/// The name the connections give themselves (`CLIENT LIST` shows it).
const CLIENT_NAME: &str = "rondo-pubsub";

/// Connects to `addr` and sets the connection up: `HELLO 3` with the pool's credentials and
/// the client name, or, on a server without `HELLO`, RESP2 with `AUTH` and `CLIENT SETNAME`.
/// Answers the stream and whether it speaks RESP3. The caller bounds the time.
pub(super) async fn connect(
    addr: &Addr,
    config: &RedisPoolConfig,
) -> Result<(TcpStream, bool), String> {
    let mut stream = TcpStream::connect((addr.0.as_str(), addr.1))
        .await
        .map_err(|e| format!("connect to {}:{}: {e}", addr.0, addr.1))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut input = BytesMut::with_capacity(1024);
    let user = config.username.as_deref().unwrap_or("default");
    let mut hello: Vec<&[u8]> = vec![b"HELLO", b"3"];
    if let Some(password) = &config.password {
        hello.extend([&b"AUTH"[..], user.as_bytes(), password.as_bytes()]);
    }
    hello.extend([&b"SETNAME"[..], CLIENT_NAME.as_bytes()]);
    let reply = call(&mut stream, &mut input, &[resp::command(&hello)]).await?;
    match reply.first() {
        Some(Frame::Error(error))
            if error.starts_with("ERR unknown command") || error.starts_with("NOPROTO") =>
        {
            // Before Redis 6: RESP2.
            let mut setup = Vec::new();
            match (&config.username, &config.password) {
                (Some(user), Some(password)) => setup.push(resp::command(&[
                    b"AUTH",
                    user.as_bytes(),
                    password.as_bytes(),
                ])),
                (None, Some(password)) => {
                    setup.push(resp::command(&[b"AUTH", password.as_bytes()]));
                }
                _ => {}
            }
            setup.push(resp::command(&[
                b"CLIENT",
                b"SETNAME",
                CLIENT_NAME.as_bytes(),
            ]));
            for reply in call(&mut stream, &mut input, &setup).await? {
                if let Frame::Error(error) = reply {
                    return Err(format!("Redis refused the set-up: {error}"));
                }
            }
            Ok((stream, false))
        }
        Some(Frame::Error(error)) => Err(format!("Redis refused HELLO: {error}")),
        _ => Ok((stream, true)),
    }
}

/// Sends `commands` in one write and reads their replies (pushes skipped).
async fn call(
    stream: &mut TcpStream,
    input: &mut BytesMut,
    commands: &[Vec<u8>],
) -> Result<Vec<Frame>, String> {
    stream
        .write_all(&commands.concat())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut replies = Vec::with_capacity(commands.len());
    while replies.len() < commands.len() {
        match resp::parse(input).map_err(|e| e.to_string())? {
            Some((frame, len)) => {
                input.advance(len);
                if !matches!(frame, Frame::Push(_)) {
                    replies.push(frame);
                }
            }
            None => {
                if stream
                    .read_buf(input)
                    .await
                    .map_err(|e| format!("read: {e}"))?
                    == 0
                {
                    return Err("closed by Redis during set-up".into());
                }
            }
        }
    }
    Ok(replies)
}
