//! The check every section that names a `[redis]` pool of its own shares (`[jobs]`,
//! `[files]`, `[channels]`): with Redis sessions, the pool must exist. Sessions on `auto`
//! or `memory` keep those parts in process, so a missing pool is no error then.

use super::error::{ConfigError, ErrorKind};
use super::{Config, StoreKind};

/// Refuses `[section] redis_connection_pool = pool` (written on `line`) when the sessions
/// are in Redis and `[redis]` has no such pool.
pub(crate) fn check_named_pool(
    config: &Config,
    section: &str,
    pool: Option<&str>,
    line: Option<usize>,
) -> super::Result<()> {
    let Some(pool) = pool else {
        return Ok(());
    };
    if config.session.store != StoreKind::Redis || config.redis.contains_key(pool) {
        return Ok(());
    }
    let message = format!(
        "no Redis pool named {pool:?} in [redis]; expected a pool such as {pool}[host] = \
         127.0.0.1 (or leave the key out to use the sessions' pool)"
    );
    let err = ConfigError::new(ErrorKind::MissingPool, &config.origin, message)
        .in_section(section)
        .for_key("redis_connection_pool");
    Err(match line {
        Some(line) => err.at_line(line),
        None => err,
    })
}
