//! Group writes: the items that are ready together go out together.
//!
//! A new session is stored before its first response, so every new session waits for one
//! Redis write. Sent one by one, each costs the client a command to encode, a trip through
//! the connection's driver and a reply to parse. A [`Batcher`] lets whichever caller comes
//! first *open* a batch and yield once to the scheduler (after the runtime has polled for
//! I/O), so that the requests that are ready at that moment, each about to store its own
//! new session, join it; then it writes them all, answers the others, and the next caller
//! opens the next batch. Batches never wait for one another: one is gathered while earlier
//! ones are still in flight, and they pipeline on the connection. No task is spawned and no
//! timer waits for a batch to fill: a lone caller writes after one yield, and under load the
//! batches grow by themselves.
//!
//! A leader that is dropped while gathering hands its batch to the first caller that joined
//! it. One dropped mid-write (its client went away, its request timed out) drops the replies
//! of its batch, and each of those callers simply runs again, so no caller waits for an
//! answer that will never come. Items must therefore be safe to write twice: the dropped
//! write may have reached the store.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::session::store::StoreError;

/// What a caller that joined a batch hears.
enum Turn {
    /// Its item was written (or not) with the batch.
    Done(Result<(), StoreError>),
    /// It leads the open batch now (its leader went away, or the batch overflowed).
    Lead,
}

type Reply = oneshot::Sender<Turn>;

/// The most items one write carries; the rest form the next batch at once.
const MAX_BATCH: usize = 128;

/// Gathers items of type `T` for group writes.
pub(crate) struct Batcher<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    /// A batch is gathering: callers join it instead of opening their own.
    open: bool,
    /// The items that joined the open batch (shared: a caller keeps its item to run again
    /// if its batch's leader is dropped mid-write), with their replies.
    joined: VecDeque<(Arc<T>, Reply)>,
}

impl<T> Default for Batcher<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                open: false,
                joined: VecDeque::new(),
            }),
        }
    }
}

impl<T> Batcher<T> {
    /// Writes `item` with `write`, together with the items of the callers that are ready
    /// at the same moment, and returns the outcome of the write that carried it.
    ///
    /// # Errors
    ///
    /// That write failed.
    pub(crate) async fn run<F, Fut>(&self, item: T, write: F) -> Result<(), StoreError>
    where
        F: Fn(Vec<Arc<T>>) -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        self.run_gathering(item, write, tokio::task::yield_now)
            .await
    }

    /// [`run`](Self::run), with `gather` as the leader's wait for others to join.
    async fn run_gathering<F, Fut, G, GFut>(
        &self,
        item: T,
        write: F,
        gather: G,
    ) -> Result<(), StoreError>
    where
        F: Fn(Vec<Arc<T>>) -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
        G: Fn() -> GFut,
        GFut: Future<Output = ()>,
    {
        let item = Arc::new(item);
        loop {
            let answer = {
                let mut state = self.state.lock();
                if state.open {
                    let (reply, answer) = oneshot::channel();
                    state.joined.push_back((item.clone(), reply));
                    Some(answer)
                } else {
                    state.open = true;
                    None
                }
            };
            let opened = match answer {
                None => {
                    let opened = Opened { batcher: self };
                    gather().await;
                    opened
                }
                Some(answer) => match answer.await {
                    Ok(Turn::Done(outcome)) => return outcome,
                    // Gathered already: write at once.
                    Ok(Turn::Lead) => Opened { batcher: self },
                    // The leader of its batch was dropped mid-write: run again.
                    Err(_) => continue,
                },
            };
            return self.write(item, opened, &write).await;
        }
    }

    /// Closes the open batch, writes `own` with what joined it (taking their replies), and
    /// answers them.
    async fn write<F, Fut>(
        &self,
        own: Arc<T>,
        opened: Opened<'_, T>,
        write: &F,
    ) -> Result<(), StoreError>
    where
        F: Fn(Vec<Arc<T>>) -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let mut items = vec![own];
        let mut replies = Vec::new();
        {
            let mut state = self.state.lock();
            let take = state.joined.len().min(MAX_BATCH - 1);
            for (item, reply) in state.joined.drain(..take) {
                items.push(item);
                replies.push(reply);
            }
            // What did not fit stays open, led by its first caller; otherwise it closes.
            hand_on(&mut state);
        }
        opened.closed();
        let outcome = write(items).await;
        for reply in replies {
            drop(reply.send(Turn::Done(outcome.clone())));
        }
        outcome
    }
}

/// Passes the open batch to the first caller still waiting in it, or closes it when there
/// is none.
fn hand_on<T>(state: &mut State<T>) {
    while let Some((_, reply)) = state.joined.pop_front() {
        // A caller that gave up waiting is skipped.
        if reply.send(Turn::Lead).is_ok() {
            return;
        }
    }
    state.open = false;
}

/// The lead of the open batch, held until the batch is closed; dropped before that (the
/// leader went away while gathering), it hands the batch on.
struct Opened<'a, T> {
    batcher: &'a Batcher<T>,
}

impl<T> Opened<'_, T> {
    /// The batch was closed (and handed on if it overflowed): nothing left to do.
    fn closed(self) {
        std::mem::forget(self);
    }
}

impl<T> Drop for Opened<'_, T> {
    fn drop(&mut self) {
        hand_on(&mut self.batcher.state.lock());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use futures_util::future::BoxFuture;

    type Write =
        Arc<dyn Fn(Vec<Arc<u32>>) -> BoxFuture<'static, Result<(), StoreError>> + Send + Sync>;

    /// A write that takes a little while and records each batch; it never finishes a batch
    /// that holds an item in `hang`, and fails every batch when `fail`.
    fn recording(batches: &Batches, fail: bool, hang: &'static [u32]) -> Write {
        let batches = batches.clone();
        Arc::new(move |items: Vec<Arc<u32>>| {
            let batches = batches.clone();
            let items: Vec<u32> = items.iter().map(|i| **i).collect();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if items.iter().any(|i| hang.contains(i)) {
                    std::future::pending::<()>().await;
                }
                batches.lock().push(items);
                if fail {
                    Err(StoreError::Unavailable("down".into()))
                } else {
                    Ok(())
                }
            })
        })
    }

    fn spawn(
        batcher: &Arc<Batcher<u32>>,
        write: &Write,
        item: u32,
        gather: Option<Arc<tokio::sync::Notify>>,
    ) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let (batcher, write) = (batcher.clone(), write.clone());
        tokio::spawn(async move {
            let gather = move || {
                let gather = gather.clone();
                async move {
                    match gather {
                        Some(release) => release.notified().await,
                        None => tokio::task::yield_now().await,
                    }
                }
            };
            batcher
                .run_gathering(item, |items| write(items), gather)
                .await
        })
    }

    type Batches = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A batcher, the batches its writes record, and a [`recording`] write.
    fn setup(fail: bool, hang: &'static [u32]) -> (Arc<Batcher<u32>>, Batches, Write) {
        let batches = Batches::default();
        let write = recording(&batches, fail, hang);
        (Arc::new(Batcher::default()), batches, write)
    }

    /// Waits (up to 5 s) for `caller`, which must have written.
    async fn written(caller: tokio::task::JoinHandle<Result<(), StoreError>>, what: &str) {
        tokio::time::timeout(Duration::from_secs(5), caller)
            .await
            .unwrap_or_else(|_| panic!("{what}"))
            .expect("no panic")
            .expect("written");
    }

    fn closed(batcher: &Batcher<u32>) -> bool {
        let state = batcher.state.lock();
        !state.open && state.joined.is_empty()
    }

    fn pause() -> tokio::time::Sleep {
        tokio::time::sleep(Duration::from_millis(20))
    }

    /// 100 concurrent callers are all answered, every item is written exactly once, and
    /// they share far fewer than 100 writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_items_share_writes() {
        let (batcher, batches, write) = setup(false, &[]);
        let callers: Vec<_> = (0..100)
            .map(|i| {
                let (batcher, write) = (batcher.clone(), write.clone());
                tokio::spawn(async move { batcher.run(i, |items| write(items)).await })
            })
            .collect();
        for caller in callers {
            written(caller, "answered").await;
        }
        let batches = batches.lock();
        let mut written: Vec<u32> = batches.iter().flatten().copied().collect();
        written.sort_unstable();
        assert_eq!(written, (0..100).collect::<Vec<_>>());
        assert!(batches.len() < 50, "{batches:?}");
        assert!(closed(&batcher));
    }

    /// A lone caller writes on its own and is answered.
    #[tokio::test]
    async fn a_lone_caller_writes_alone() {
        let (batcher, batches, write) = setup(false, &[]);
        batcher.run(7, |items| write(items)).await.expect("written");
        batcher.run(8, |items| write(items)).await.expect("written");
        assert_eq!(*batches.lock(), vec![vec![7], vec![8]]);
        assert!(closed(&batcher));
    }

    /// A batch in flight does not hold up the next one: it is gathered and written while
    /// the first is still unanswered.
    #[tokio::test]
    async fn batches_do_not_wait_for_one_another() {
        let (batcher, batches, write) = setup(false, &[1]);
        let first = spawn(&batcher, &write, 1, None);
        pause().await;
        let second = spawn(&batcher, &write, 2, None);
        written(second, "not held up by the batch in flight").await;
        assert!(!first.is_finished());
        assert_eq!(*batches.lock(), vec![vec![2]]);
        first.abort();
    }

    /// A failed write fails every caller of its batch, and the next caller opens afresh.
    #[tokio::test]
    async fn a_failed_write_fails_its_whole_batch() {
        let (batcher, batches, write) = setup(true, &[]);
        let callers: Vec<_> = (0..5).map(|i| spawn(&batcher, &write, i, None)).collect();
        for caller in callers {
            let outcome = caller.await.expect("no panic");
            assert!(
                matches!(outcome, Err(StoreError::Unavailable(_))),
                "{outcome:?}"
            );
        }
        assert_eq!(*batches.lock(), vec![vec![0, 1, 2, 3, 4]]);
        let write = recording(&Batches::default(), false, &[]);
        batcher
            .run(9, |items| write(items))
            .await
            .expect("a later write succeeds");
        assert!(closed(&batcher));
    }

    /// When a leader is dropped mid-write, the other callers of its batch run again: they
    /// are written and answered, none is lost.
    #[tokio::test]
    async fn a_leader_dropped_mid_write_lets_its_batch_run_again() {
        // Batches holding 1 never finish.
        let (batcher, batches, write) = setup(false, &[1]);
        let first = spawn(&batcher, &write, 1, None);
        let second = spawn(&batcher, &write, 2, None);
        pause().await;
        assert!(closed(&batcher), "the batch of 1 and 2 is being written");
        first.abort();
        assert!(first.await.expect_err("aborted").is_cancelled());
        written(second, "answered after its leader was dropped").await;
        assert_eq!(*batches.lock(), vec![vec![2]]);
        assert!(closed(&batcher));
    }

    /// A leader dropped while its batch is still gathering hands the batch to the first
    /// caller that joined, which writes it with the rest.
    #[tokio::test]
    async fn a_leader_dropped_while_gathering_hands_its_batch_on() {
        let (batcher, batches, write) = setup(false, &[]);
        let never = Arc::new(tokio::sync::Notify::new());
        let first = spawn(&batcher, &write, 1, Some(never));
        pause().await;
        let others: Vec<_> = (2..5).map(|i| spawn(&batcher, &write, i, None)).collect();
        pause().await;
        assert!(batches.lock().is_empty(), "still gathering");
        first.abort();
        assert!(first.await.expect_err("aborted").is_cancelled());
        for other in others {
            written(other, "answered").await;
        }
        assert_eq!(*batches.lock(), vec![vec![2, 3, 4]]);
        assert!(closed(&batcher));
    }

    /// More callers than one write carries are split into full batches, each item once.
    #[tokio::test]
    async fn an_overflowing_batch_is_split() {
        let (batcher, batches, write) = setup(false, &[]);
        let release = Arc::new(tokio::sync::Notify::new());
        let first = spawn(&batcher, &write, 0, Some(release.clone()));
        pause().await;
        let mut callers: Vec<_> = (1..300).map(|i| spawn(&batcher, &write, i, None)).collect();
        pause().await;
        release.notify_one();
        callers.push(first);
        for caller in callers {
            written(caller, "answered").await;
        }
        let batches = batches.lock();
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![MAX_BATCH, MAX_BATCH, 300 - 2 * MAX_BATCH]);
        let mut written: Vec<u32> = batches.iter().flatten().copied().collect();
        written.sort_unstable();
        assert_eq!(written, (0..300).collect::<Vec<_>>());
        assert!(closed(&batcher));
    }
}
