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

use futures_util::future::BoxFuture;

use super::{Backend, Commit, Delta, Loaded, Record, SessionStore, StoreError, StoreKey};

/// Sweep expired records every this many commits, so abandoned sessions do not pile up.
const SWEEP_EVERY: u64 = 1024;

struct Entry {
    record: Record,
    expires: Instant,
    /// Where the record went when this is the marker a rename left (then `record` is empty
    /// and its version 0, so nothing else takes it for a record).
    moved: Option<StoreKey>,
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

    /// How many unexpired records it holds (forwarding markers of renamed records aside).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.entries
            .lock()
            .values()
            .filter(|e| e.expires > now && e.moved.is_none())
            .count()
    }

    /// Whether it holds no unexpired record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` on the live record at `key` (not a forwarding marker), dropping the entry
    /// first if it has expired.
    fn with_live<T>(&self, key: &StoreKey, f: impl FnOnce(Option<&mut Entry>) -> T) -> T {
        let mut entries = self.entries.lock();
        expire(&mut entries, key);
        f(entries.get_mut(key).filter(|e| e.moved.is_none()))
    }

    fn sweep(&self) {
        let now = Instant::now();
        self.entries.lock().retain(|_, e| e.expires > now);
    }
}

/// Drops the entry at `key` if it has expired.
fn expire(entries: &mut HashMap<StoreKey, Entry>, key: &StoreKey) {
    if entries
        .get(key)
        .is_some_and(|e| e.expires <= Instant::now())
    {
        entries.remove(key);
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
        let loaded = {
            let mut entries = self.entries.lock();
            expire(&mut entries, key);
            match entries.get(key) {
                None => Loaded::Missing,
                Some(Entry {
                    moved: Some(to), ..
                }) => Loaded::Moved(to.clone()),
                Some(e) if known_version != 0 && e.record.version == known_version => {
                    Loaded::Unchanged
                }
                Some(e) => Loaded::Record(e.record.clone()),
            }
        };
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
            expire(&mut entries, key);
            let current = entries.get(key).map_or(0, |e| e.record.version);
            // A forwarding marker has version 0, yet its key is taken.
            if current != expected || entries.get(key).is_some_and(|e| e.moved.is_some()) {
                Commit::Conflict
            } else {
                let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
                    record: Record {
                        created: now,
                        ..Record::default()
                    },
                    expires: Instant::now(),
                    moved: None,
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
            expire(&mut entries, from);
            match entries.remove(from) {
                Some(entry) if entry.moved.is_none() => {
                    let marker = Entry {
                        record: Record::default(),
                        expires: entry.expires.min(Instant::now() + super::MOVED_TTL),
                        moved: Some(to.clone()),
                    };
                    entries.insert(to.clone(), entry);
                    entries.insert(from.clone(), marker);
                    true
                }
                Some(marker) => {
                    entries.insert(from.clone(), marker);
                    false
                }
                None => false,
            }
        };
        Box::pin(async move { Ok(moved) })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn backend(&self) -> Backend {
        Backend::Memory
    }
}
