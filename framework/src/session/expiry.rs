//! How long a session lives: every rule in one place.
//!
//! - **Lifespan** (`[session] cookie_lifespan`): a stored session expires this long after
//!   its last refresh. It is both the Redis TTL of the record and the cookie's `Max-Age`,
//!   so the browser forgets the cookie when the store forgets the session.
//! - **Idle timeout** (`idle_timeout`): a session unused this long ends; it shortens the TTL
//!   (and `Max-Age`), so the store enforces it.
//! - **Maximum lifetime** (`max_lifetime`): a session ends this long after it was created,
//!   used or not; the TTL never reaches past it, and a session found past it is deleted.
//! - **Refresh** (`refresh_interval`): a session in use has its TTL and cookie renewed at
//!   most this often, without its data being rewritten (sliding expiry).
//!
//! Times are Unix seconds: `created` and `refreshed` are stored with the record.

use std::time::Duration;

use crate::config::SessionConfig;

/// The expiry rules of `[session]`.
#[derive(Debug, Clone)]
pub(crate) struct Expiry {
    lifespan: Duration,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    refresh_interval: Duration,
}

impl Expiry {
    pub(crate) fn from_config(session: &SessionConfig) -> Self {
        Self {
            lifespan: session.cookie_lifespan,
            idle_timeout: session.idle_timeout,
            max_lifetime: session.max_lifetime,
            refresh_interval: session.refresh_interval,
        }
    }

    /// How long the store should keep the record from `now`, and the cookie's `Max-Age`:
    /// the lifespan, shortened by the idle timeout and by what is left of the maximum
    /// lifetime; `None` once that is used up. `created == 0` is a session not stored yet.
    pub(crate) fn ttl(&self, created: u64, now: u64) -> Option<Duration> {
        let mut ttl = self.lifespan;
        if let Some(idle) = self.idle_timeout {
            ttl = ttl.min(idle);
        }
        if let Some(max) = self.max_lifetime {
            let age = if created == 0 {
                0
            } else {
                now.saturating_sub(created)
            };
            let left = max.as_secs().checked_sub(age).filter(|left| *left > 0)?;
            ttl = ttl.min(Duration::from_secs(left));
        }
        Some(ttl)
    }

    /// Whether a session created at `created` has passed its maximum lifetime.
    pub(crate) fn expired(&self, created: u64, now: u64) -> bool {
        self.ttl(created, now).is_none()
    }

    /// Whether a session last refreshed at `refreshed` is due for a refresh at `now`.
    pub(crate) fn refresh_due(&self, refreshed: u64, now: u64) -> bool {
        now.saturating_sub(refreshed) >= self.refresh_interval.as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiry(ini: &str) -> Expiry {
        let config =
            crate::config::Config::parse_str(&format!("[session]\nstore = memory\n{ini}"), "t.ini")
                .expect("valid config");
        Expiry::from_config(&config.session)
    }

    /// The TTL is the lifespan, shortened by the idle timeout and by what is left of the
    /// maximum lifetime; past the maximum lifetime there is none.
    #[test]
    fn ttl_is_the_shortest_rule() {
        let plain = expiry("cookie_lifespan = 100\n");
        assert_eq!(plain.ttl(0, 1_000), Some(Duration::from_secs(100)));
        let idle = expiry("cookie_lifespan = 100\nidle_timeout = 30\n");
        assert_eq!(idle.ttl(500, 1_000), Some(Duration::from_secs(30)));
        let capped = expiry("cookie_lifespan = 100\nmax_lifetime = 60\n");
        assert_eq!(capped.ttl(0, 1_000), Some(Duration::from_secs(60)));
        assert_eq!(capped.ttl(980, 1_000), Some(Duration::from_secs(40)));
        assert_eq!(capped.ttl(940, 1_000), None);
        assert!(capped.expired(940, 1_000));
        assert!(!capped.expired(941, 1_000));
    }

    /// A refresh is due once `refresh_interval` has passed since the last one.
    #[test]
    fn refresh_is_due_after_the_interval() {
        let e = expiry("refresh_interval = 60\n");
        assert!(!e.refresh_due(1_000, 1_059));
        assert!(e.refresh_due(1_000, 1_060));
    }
}
