//! The benchmark routes, under `/bench`.

/// `GET /bench/plain`: no session, no Redis; the framework's own overhead.
pub async fn plain() -> &'static str {
    "ok"
}
