//! Group writes: what arrives while one write is in flight goes out together in the next.
//!
//! A new session is stored before its first response, so every new session waits for one
//! Redis write. Sent one by one, each costs the client a command to encode, a trip through
//! the connection's driver and a reply to parse, and Redis a script call to set up. A
//! [`Batcher`] lets whichever caller arrives first *lead*: it writes its own item with
//! everything already waiting, answers the others, and hands the lead to the first caller
//! that queued up meanwhile. No task is spawned and no timer waits for a batch to fill: a lone caller
//! writes at once, as before, and under load the batches grow by themselves.
//!
//! A leader that is dropped mid-write (its client went away, its request timed out) drops
//! the replies of its batch, and each of those callers simply runs again, so no caller
//! waits for an answer that will never come. Items must therefore be safe to write twice:
//! the dropped write may have reached the store.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::StoreError;

/// What a waiting caller hears.
enum Turn {
    /// Its item was written (or not) in someone else's batch.
    Done(Result<(), StoreError>),
    /// It leads now.
    Lead,
}

type Reply = oneshot::Sender<Turn>;

/// Batches in flight at once. With two, a batch need not wait a whole round trip behind a
/// slow one; on /bench/new one, two and four leaders measured the same within the noise.
const LEADERS: usize = 2;

/// Queues items of type `T` for group writes.
pub(crate) struct Batcher<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    /// Each caller's item (shared: the caller keeps it to run again if its batch's leader
    /// is dropped) and reply.
    waiting: VecDeque<(Arc<T>, Reply)>,
    /// Callers writing a batch now, or just handed the lead: at most [`LEADERS`].
    leading: usize,
}

impl<T> Default for Batcher<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                leading: 0,
            }),
        }
    }
}

impl<T> Batcher<T> {
    /// Writes `item` with `write`, together with the items of concurrent callers, and
    /// returns the outcome of the write that carried it.
    ///
    /// # Errors
    ///
    /// That write failed.
    pub(crate) async fn run<F, Fut>(&self, item: T, write: F) -> Result<(), StoreError>
    where
        F: Fn(Vec<Arc<T>>) -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let item = Arc::new(item);
        loop {
            let answer = {
                let mut state = self.state.lock();
                if state.leading >= LEADERS {
                    let (reply, answer) = oneshot::channel();
                    state.waiting.push_back((item.clone(), reply));
                    Some(answer)
                } else {
                    state.leading += 1;
                    None
                }
            };
            if let Some(answer) = answer {
                match answer.await {
                    Ok(Turn::Done(outcome)) => return outcome,
                    Ok(Turn::Lead) => {}
                    // The leader of its batch was dropped mid-write: run again.
                    Err(_) => continue,
                }
            }
            return self.lead(item, &write).await;
        }
    }

    /// Writes `own` with everything waiting (taking their replies), answers them, and
    /// passes the lead on (also when dropped mid-write).
    async fn lead<F, Fut>(&self, own: Arc<T>, write: &F) -> Result<(), StoreError>
    where
        F: Fn(Vec<Arc<T>>) -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let lead = Leading { batcher: self };
        let mut items = vec![own];
        let mut replies = Vec::new();
        for (item, reply) in self.state.lock().waiting.drain(..) {
            items.push(item);
            replies.push(reply);
        }
        let outcome = write(items).await;
        for reply in replies {
            drop(reply.send(Turn::Done(outcome.clone())));
        }
        drop(lead);
        outcome
    }
}

/// The lead, held while a batch is written; dropping it passes the lead on.
struct Leading<'a, T> {
    batcher: &'a Batcher<T>,
}

impl<T> Drop for Leading<'_, T> {
    fn drop(&mut self) {
        let mut state = self.batcher.state.lock();
        while let Some((_, reply)) = state.waiting.pop_front() {
            // A caller that gave up waiting is skipped.
            if reply.send(Turn::Lead).is_ok() {
                return;
            }
        }
        state.leading -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::handler::BoxFuture;

    /// A write that takes a little while and records the size of every batch.
    fn recording(
        sizes: &Arc<Mutex<Vec<usize>>>,
        fail: bool,
    ) -> impl Fn(Vec<Arc<u32>>) -> BoxFuture<'static, Result<(), StoreError>> + Clone {
        let sizes = sizes.clone();
        move |items: Vec<Arc<u32>>| {
            let sizes = sizes.clone();
            let n = items.len();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                sizes.lock().push(n);
                if fail {
                    Err(StoreError::Unavailable("down".into()))
                } else {
                    Ok(())
                }
            })
        }
    }

    /// 100 concurrent callers are all answered, every item is written exactly once, and
    /// they share far fewer than 100 writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_items_share_writes() {
        let batcher = Arc::new(Batcher::<u32>::default());
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let callers: Vec<_> = (0..100)
            .map(|i| {
                let (batcher, write) = (batcher.clone(), recording(&sizes, false));
                tokio::spawn(async move { batcher.run(i, write).await })
            })
            .collect();
        for caller in callers {
            caller.await.expect("no panic").expect("written");
        }
        let sizes = sizes.lock();
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert!(sizes.len() < 50, "{sizes:?}");
        assert_eq!(batcher.state.lock().leading, 0);
    }

    /// A failed write fails every caller of its batch, and the next caller leads afresh.
    #[tokio::test]
    async fn a_failed_write_fails_its_whole_batch() {
        let batcher = Arc::new(Batcher::<u32>::default());
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let callers: Vec<_> = (0..5)
            .map(|i| {
                let (batcher, write) = (batcher.clone(), recording(&sizes, true));
                tokio::spawn(async move { batcher.run(i, write).await })
            })
            .collect();
        for caller in callers {
            let outcome = caller.await.expect("no panic");
            assert!(
                matches!(outcome, Err(StoreError::Unavailable(_))),
                "{outcome:?}"
            );
        }
        assert_eq!(sizes.lock().iter().sum::<usize>(), 5);
        let sizes = Arc::new(Mutex::new(Vec::new()));
        batcher
            .run(9, recording(&sizes, false))
            .await
            .expect("a later write succeeds");
    }

    /// When a leader is dropped mid-write, the other callers of its batch run again: they
    /// are written and answered, none is lost.
    #[tokio::test]
    async fn a_dropped_leader_passes_its_batch_on() {
        let batcher = Arc::new(Batcher::<u32>::default());
        let written = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(tokio::sync::Notify::new());
        // Item 100 waits for `release`; 1 and 101.. never finish (their leaders are dropped).
        let write = {
            let (written, release) = (written.clone(), release.clone());
            move |items: Vec<Arc<u32>>| {
                let (written, release) = (written.clone(), release.clone());
                let items: Vec<u32> = items.iter().map(|i| **i).collect();
                Box::pin(async move {
                    if items.contains(&100) {
                        release.notified().await;
                    }
                    if items.iter().any(|&i| i == 1 || i > 100) {
                        std::future::pending::<()>().await;
                    }
                    written.lock().extend(items);
                    Ok(())
                }) as BoxFuture<'static, _>
            }
        };
        let spawn = |item: u32| {
            let (batcher, write) = (batcher.clone(), write.clone());
            tokio::spawn(async move { batcher.run(item, write).await })
        };
        let pause = || tokio::time::sleep(Duration::from_millis(20));
        // Every lead taken: by 100, and by writes that never end.
        let first = spawn(100);
        pause().await;
        let stuck: Vec<_> = (1..LEADERS).map(|i| spawn(100 + i as u32)).collect();
        pause().await;
        let (second, third) = (spawn(1), spawn(2));
        pause().await;
        // 100's write ends; the lead goes to the second caller, whose batch (with the
        // third's item) never finishes: drop that leader.
        release.notify_one();
        first.await.expect("no panic").expect("written");
        pause().await;
        second.abort();
        assert!(second.await.expect_err("aborted").is_cancelled());
        tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("answered after its leader was dropped")
            .expect("no panic")
            .expect("written");
        // The third item went out with the second (dropped), then again on its own.
        assert_eq!(*written.lock(), vec![100, 2]);
        for task in stuck {
            task.abort();
            assert!(task.await.expect_err("aborted").is_cancelled());
        }
        assert_eq!(batcher.state.lock().leading, 0);
    }
}
