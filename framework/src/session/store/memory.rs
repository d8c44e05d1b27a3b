//! The in-process store: a map behind a mutex, with expiry.
//!
//! It follows the Redis store's contract exactly (versions, conditional commits, expiry) so
//! that the session layer above behaves the same on both. Sessions live only as long as the
//! process and are not shared between servers: the example app says so loudly when it falls
//! back to it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Commit, Delta, Loaded, Record, SessionStore, StoreError};
use crate::handler::BoxFuture;
use crate::session::id::StoreKey;

/// Sweep expired records every this many commits, so abandoned sessions do not pile up.
const SWEEP_EVERY: u64 = 1024;

struct Entry {
    record: Record,
    expires: Instant,
}

/// An in-process session store.
#[derive(Default)]
pub struct MemoryStore {
    /// A plain mutex: every operation is a few map lookups, never held across an await.
    entries: Mutex<HashMap<StoreKey, Entry>>,
    commits: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many unexpired records it holds.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.entries
            .lock()
            .values()
            .filter(|e| e.expires > now)
            .count()
    }

    /// Whether it holds no unexpired record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` on the live entry for `key`, dropping it first if it has expired.
    fn with_live<T>(&self, key: &StoreKey, f: impl FnOnce(Option<&mut Entry>) -> T) -> T {
        let mut entries = self.entries.lock();
        if entries
            .get(key)
            .is_some_and(|e| e.expires <= Instant::now())
        {
            entries.remove(key);
        }
        f(entries.get_mut(key))
    }

    fn sweep(&self) {
        let now = Instant::now();
        self.entries.lock().retain(|_, e| e.expires > now);
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("records", &self.len())
            .finish()
    }
}

impl SessionStore for MemoryStore {
    fn version<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        let version = self.with_live(key, |entry| entry.map(|e| e.record.version));
        Box::pin(async move { Ok(version) })
    }

    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
        known_version: u64,
    ) -> BoxFuture<'a, Result<Loaded, StoreError>> {
        let loaded = self.with_live(key, |entry| match entry {
            None => Loaded::Missing,
            Some(e) if known_version != 0 && e.record.version == known_version => Loaded::Unchanged,
            Some(e) => Loaded::Record(e.record.clone()),
        });
        Box::pin(async move { Ok(loaded) })
    }

    fn commit<'a>(
        &'a self,
        key: &'a StoreKey,
        delta: &'a Delta,
        expected: u64,
        ttl: Duration,
        now: u64,
    ) -> BoxFuture<'a, Result<Commit, StoreError>> {
        let outcome = {
            let mut entries = self.entries.lock();
            if entries
                .get(key)
                .is_some_and(|e| e.expires <= Instant::now())
            {
                entries.remove(key);
            }
            let current = entries.get(key).map_or(0, |e| e.record.version);
            if current != expected {
                Commit::Conflict
            } else {
                let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
                    record: Record {
                        created: now,
                        ..Record::default()
                    },
                    expires: Instant::now(),
                });
                for (k, v) in &delta.set {
                    entry.record.data.insert(k.clone(), v.clone());
                }
                for k in &delta.remove {
                    entry.record.data.remove(k);
                }
                entry.record.version = expected + 1;
                entry.record.refreshed = now;
                entry.expires = Instant::now() + ttl;
                Commit::Done {
                    version: expected + 1,
                }
            }
        };
        if self.commits.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        Box::pin(async move { Ok(outcome) })
    }

    fn touch<'a>(
        &'a self,
        key: &'a StoreKey,
        ttl: Duration,
        now: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let found = self.with_live(key, |entry| match entry {
            Some(e) => {
                e.expires = Instant::now() + ttl;
                e.record.refreshed = now;
                true
            }
            None => false,
        });
        Box::pin(async move { Ok(found) })
    }

    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        self.entries.lock().remove(key);
        Box::pin(async move { Ok(()) })
    }

    fn rename<'a>(
        &'a self,
        from: &'a StoreKey,
        to: &'a StoreKey,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let moved = {
            let mut entries = self.entries.lock();
            match entries.remove(from) {
                Some(entry) if entry.expires > Instant::now() => {
                    entries.insert(to.clone(), entry);
                    true
                }
                _ => false,
            }
        };
        Box::pin(async move { Ok(moved) })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
