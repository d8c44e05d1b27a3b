//! Threads that serve connections, each on its own single-threaded tokio runtime
//! (`[http] workers`).
//!
//! On a multi-threaded runtime every wake-up may move a task to another thread, and an idle
//! worker is woken to look for work to steal; with the few, short tasks of a request that
//! adds up (on two cores, that runtime with one worker served `/bench/new` on a quarter
//! less CPU per request than with two). A lane keeps a connection, its requests and what they spawn (the actors
//! of the sessions they open first, hyper's HTTP/2 streams) on one thread, as actix-web and
//! the Swoole servers do. The accept loop hands each new connection to the lane with the
//! fewest open ones.
//!
//! A lane is a plain thread: a controller that blocks it (heavy computation, blocking I/O)
//! stalls the other connections on that lane, so such work belongs in
//! `tokio::task::spawn_blocking`. `workers = 0` serves connections on the runtime that calls
//! [`serve`](crate::serve) instead.
//!
//! Dropping the [`Lanes`] stops them: each runtime then drops what still runs on it.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A connection to start on a lane, once its socket is registered there, with its count
/// among the lane's open connections.
type Start = Box<dyn FnOnce(TcpStream, Open) + Send>;

/// The lanes of one server.
pub(crate) struct Lanes {
    lanes: Vec<Lane>,
}

struct Lane {
    /// Connections to start, with their sockets.
    starts: mpsc::UnboundedSender<(std::net::TcpStream, Open, Start)>,
    /// Connections open on the lane.
    open: Arc<AtomicUsize>,
    /// Its thread has ended (it cannot, short of a bug): no connection goes there.
    stopped: AtomicBool,
}

/// Counts a connection as open on its lane until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lanes {
    /// Starts `count` lanes (threads `rondo-http-0`, `-1`, ...).
    ///
    /// # Errors
    ///
    /// A runtime or a thread could not be created.
    pub(crate) fn start(count: usize) -> io::Result<Self> {
        let mut lanes = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (starts, mut incoming) =
                mpsc::unbounded_channel::<(std::net::TcpStream, Open, Start)>();
            std::thread::Builder::new()
                .name(format!("rondo-http-{index}"))
                .spawn(move || {
                    // The Redis connections a lane's requests use are driven here too.
                    crate::redis::pool::keep_connections_on_this_thread();
                    runtime.block_on(async move {
                        while let Some((stream, open, start)) = incoming.recv().await {
                            match TcpStream::from_std(stream) {
                                Ok(stream) => start(stream, open),
                                Err(err) => {
                                    tracing::warn!(error = %err, "cannot register a connection")
                                }
                            }
                        }
                    });
                    // The server is gone: dropping the runtime drops what still runs here.
                })?;
            lanes.push(Lane {
                starts,
                open: Arc::default(),
                stopped: AtomicBool::new(false),
            });
        }
        Ok(Self { lanes })
    }

    /// Serves `stream` with `connection` on the lane with the fewest open connections.
    pub(crate) fn spawn<F, Fut>(&self, stream: TcpStream, connection: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // Still nonblocking: `into_std` keeps the mode, and the lane registers it again.
        let mut stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "cannot hand a connection to a lane");
                return;
            }
        };
        let mut start: Start = Box::new(move |stream, open| {
            tokio::spawn(async move {
                let _open = open;
                connection(stream).await;
            });
        });
        loop {
            let Some(lane) = self
                .lanes
                .iter()
                .filter(|lane| !lane.stopped.load(Ordering::Relaxed))
                .min_by_key(|lane| lane.open.load(Ordering::Relaxed))
            else {
                tracing::error!("every worker thread has stopped: connection dropped");
                return;
            };
            lane.open.fetch_add(1, Ordering::Relaxed);
            let open = Open(lane.open.clone());
            match lane.starts.send((stream, open, start)) {
                Ok(()) => return,
                Err(mpsc::error::SendError((back, open, again))) => {
                    tracing::error!("a worker thread has stopped: no more connections go there");
                    lane.stopped.store(true, Ordering::Relaxed);
                    drop(open);
                    (stream, start) = (back, again);
                }
            }
        }
    }
}
