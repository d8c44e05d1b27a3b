//! The benchmark routes, under `/bench` (see `bench/README.md`).

use rondo::{Session, SessionError, SessionManager, State};

/// `GET /bench/plain`: no session, no Redis; the framework's own overhead.
pub async fn plain() -> &'static str {
    "ok"
}

/// `GET /bench/counter`: increments `count` exactly once per request; the body is the new
/// value.
pub async fn counter(session: Session) -> Result<String, SessionError> {
    let n = session
        .update("count", |n: Option<u64>| n.unwrap_or(0) + 1)
        .await?;
    Ok(n.to_string())
}

/// `GET /bench/read`: the body is `count` (0 when absent); nothing is written.
pub async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session.get::<u64>("count").await?.unwrap_or(0).to_string())
}

/// `GET /bench/new`: ignores any cookie and creates a fresh session holding one small value.
pub async fn new(State(sessions): State<SessionManager>) -> Result<&'static str, SessionError> {
    sessions.fresh().put("user", "bench")?;
    Ok("ok")
}
