//! The in-process link store: a map behind a mutex, by the system clock.
//!
//! It follows the rules of the [module documentation](super) exactly, so that code (and
//! tests) written against it behave the same on [`RedisLinks`](super::RedisLinks). Links
//! live only as long as the process and are not shared between servers.

use std::collections::{HashMap, HashSet};
use std::future::ready;
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::{Mutex, MutexGuard};

use super::{
    grace_seconds, LinkError, LinkId, LinkInfo, LinkStore, NewLink, Redeemed, Redemption, Refusal,
    DEFAULT_GRACE,
};
use crate::signed::unix_now;

/// Purge expired links every this many creations, so abandoned links do not pile up.
const SWEEP_EVERY: u64 = 64;

/// One stored link.
#[derive(Debug)]
struct Entry {
    info: LinkInfo,
    /// Who has been admitted (each counts once).
    redeemers: HashSet<String>,
    /// From this second on the link is gone, as a Redis key reaching its `EXPIREAT`.
    purge_at: u64,
}

#[derive(Debug, Default)]
struct State {
    links: HashMap<String, Entry>,
    /// Creations since the last sweep.
    since_sweep: u64,
}

/// Links in process memory.
#[derive(Debug)]
pub struct MemoryLinks {
    /// A short lock: every operation is a few map lookups and never awaits.
    state: Mutex<State>,
    grace: u64,
}

impl Default for MemoryLinks {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLinks {
    /// An empty store that keeps links for [`DEFAULT_GRACE`] after they expire.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            grace: grace_seconds(DEFAULT_GRACE),
        }
    }

    /// Keeps expired links for `grace` (at least one second) instead.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace_seconds(grace);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    fn create_now(&self, link: NewLink, now: u64) -> Result<LinkId, LinkError> {
        link.validate()?;
        if link.expires_at < now {
            return Err(LinkError::InvalidLink("it has already expired"));
        }
        let id = LinkId::generate()?;
        let mut state = self.lock();
        state.since_sweep += 1;
        if state.since_sweep == SWEEP_EVERY {
            state.since_sweep = 0;
            state.links.retain(|_, entry| now < entry.purge_at);
        }
        if state.links.contains_key(id.as_str()) {
            return Err(LinkError::IdCollision);
        }
        let entry = Entry {
            purge_at: link.expires_at.saturating_add(self.grace),
            info: LinkInfo {
                id: id.clone(),
                target: link.target,
                starts_at: link.starts_at,
                expires_at: link.expires_at,
                max_uses: link.max_uses,
                uses: 0,
                participant: link.participant,
                revoked: false,
            },
            redeemers: HashSet::new(),
        };
        state.links.insert(id.as_str().to_owned(), entry);
        Ok(id)
    }

    fn redeem_now(&self, id: &str, redeemer: &str, now: u64) -> Result<Redemption, LinkError> {
        if redeemer.is_empty() {
            return Err(LinkError::InvalidRedeemer);
        }
        let mut state = self.lock();
        let Some(entry) = live(&mut state, id, now) else {
            return Ok(Err(Refusal::Unknown));
        };
        let info = &entry.info;
        if info.participant.as_deref().is_some_and(|p| p != redeemer) {
            return Ok(Err(Refusal::NotForYou));
        }
        if info.revoked {
            return Ok(Err(Refusal::Revoked));
        }
        if now < info.starts_at {
            return Ok(Err(Refusal::NotStarted {
                starts_at: info.starts_at,
            }));
        }
        if now > info.expires_at {
            return Ok(Err(Refusal::Expired));
        }
        let first_time = !entry.redeemers.contains(redeemer);
        if first_time {
            if info.uses >= info.max_uses {
                return Ok(Err(Refusal::UsedUp));
            }
            entry.redeemers.insert(redeemer.to_owned());
            entry.info.uses += 1;
        }
        Ok(Ok(Redeemed {
            target: entry.info.target.clone(),
            uses: entry.info.uses,
            first_time,
        }))
    }

    fn revoke_now(&self, id: &str, now: u64) -> bool {
        let mut state = self.lock();
        live(&mut state, id, now)
            .map(|entry| entry.info.revoked = true)
            .is_some()
    }

    fn inspect_now(&self, id: &str, now: u64) -> Option<LinkInfo> {
        let mut state = self.lock();
        live(&mut state, id, now).map(|entry| entry.info.clone())
    }
}

/// The entry for `id` unless it is past its purge time (then it is dropped).
fn live<'s>(state: &'s mut State, id: &str, now: u64) -> Option<&'s mut Entry> {
    if state.links.get(id).is_some_and(|e| now >= e.purge_at) {
        state.links.remove(id);
    }
    state.links.get_mut(id)
}

impl LinkStore for MemoryLinks {
    fn create(&self, link: NewLink) -> BoxFuture<'_, Result<LinkId, LinkError>> {
        Box::pin(ready(self.create_now(link, unix_now())))
    }

    fn redeem<'a>(
        &'a self,
        id: &'a str,
        redeemer: &'a str,
    ) -> BoxFuture<'a, Result<Redemption, LinkError>> {
        Box::pin(ready(self.redeem_now(id, redeemer, unix_now())))
    }

    fn revoke<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, LinkError>> {
        Box::pin(ready(Ok(self.revoke_now(id, unix_now()))))
    }

    fn inspect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<LinkInfo>, LinkError>> {
        Box::pin(ready(Ok(self.inspect_now(id, unix_now()))))
    }
}

#[cfg(test)]
mod tests {
    //! Clock-driven cases, with the clock passed in; the shared suite in
    //! `tests/tests/links.rs` covers the rest against both stores.
    use super::*;

    const T: u64 = 1_700_000_000;

    #[test]
    fn purged_after_the_grace_period() -> Result<(), LinkError> {
        let store = MemoryLinks::new().with_grace(Duration::from_secs(10));
        let id = store.create_now(NewLink::new("/room/a", T, T + 5, 1), T)?;
        let id = id.as_str();
        assert_eq!(store.redeem_now(id, "ann", T + 6)?, Err(Refusal::Expired));
        assert!(store.inspect_now(id, T + 14).is_some());
        assert_eq!(store.inspect_now(id, T + 15), None);
        assert_eq!(store.redeem_now(id, "ann", T + 15)?, Err(Refusal::Unknown));
        Ok(())
    }

    #[test]
    fn window_bounds_are_inclusive() -> Result<(), LinkError> {
        let store = MemoryLinks::new();
        let id = store.create_now(NewLink::new("/room/a", T + 10, T + 20, 3), T)?;
        let at = |now, who| store.redeem_now(id.as_str(), who, now);
        assert_eq!(
            at(T + 9, "a")?,
            Err(Refusal::NotStarted { starts_at: T + 10 })
        );
        assert!(at(T + 10, "a")?.is_ok());
        assert!(at(T + 20, "b")?.is_ok());
        assert_eq!(at(T + 21, "c")?, Err(Refusal::Expired));
        // Expiry applies to earlier redeemers as well.
        assert_eq!(at(T + 21, "a")?, Err(Refusal::Expired));
        Ok(())
    }

    #[test]
    fn sweeps_purged_links_while_creating() -> Result<(), LinkError> {
        let store = MemoryLinks::new().with_grace(Duration::from_secs(1));
        let mut made = 0;
        while made + 1 < SWEEP_EVERY {
            store.create_now(NewLink::new("/x", T, T, 1), T)?;
            made += 1;
        }
        assert_eq!(store.lock().links.len(), 63);
        // Creation number 64 sweeps: the 63 links above are past their purge time.
        store.create_now(NewLink::new("/x", T + 5, T + 5, 1), T + 5)?;
        assert_eq!(store.lock().links.len(), 1);
        Ok(())
    }
}
