//! The file system as [`StaticFiles`](super::StaticFiles) sees it: only what lies inside
//! its directory once every symlink is resolved.
//!
//! `ServeDir` refuses `..`, roots and drive prefixes in the request path, but it follows
//! symlinks wherever they lead: a link `static/data -> /var/lib/app` would publish that
//! directory. This backend resolves each path it is asked for (`realpath`) and answers
//! `NotFound` for one that ends outside the served directory, so an escaping link reads as
//! a missing file: a 404, the same as for a file that is not there, and no hint of what
//! lies behind it. Links whose target stays inside are followed.
//!
//! The check and the open are two steps: someone who can write into the served directory
//! could swap a checked file for a link in between. Whoever can write there can publish
//! anything anyway, so the check guards against links an operator left, not against them.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tower_http::services::fs::{Backend, TokioBackend, TokioFile};

/// A `ServeDir` backend confined to one directory.
#[derive(Debug, Clone)]
pub(super) struct Confined {
    root: Arc<Path>,
    /// Whether a missing directory was logged already: every request would find it missing,
    /// and one line says it.
    warned: Arc<AtomicBool>,
}

impl Confined {
    /// Confines to `root` (as `ServeDir` names it: relative to the working directory).
    pub(super) fn new(root: PathBuf) -> Self {
        let warned = Arc::new(AtomicBool::new(false));
        if !root.is_dir() {
            warn_missing(&root, &warned);
        }
        Self {
            root: root.into(),
            warned,
        }
    }

    /// `path` with every link resolved, if that lies inside the root.
    async fn resolve(&self, path: PathBuf) -> io::Result<PathBuf> {
        let (root, warned) = (self.root.clone(), self.warned.clone());
        let resolved = tokio::task::spawn_blocking(move || {
            // The root is resolved on every request, not once: a deployment that swaps a
            // `current -> release-N` link under a running server is served the new release.
            let root =
                std::fs::canonicalize(&root).inspect_err(|_| warn_missing(&root, &warned))?;
            let real = std::fs::canonicalize(&path)?;
            if real.starts_with(&root) {
                Ok(real)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "resolves outside the served directory",
                ))
            }
        })
        .await
        .map_err(io::Error::other)?;
        resolved.map_err(not_found_if_clients)
    }
}

impl Backend for Confined {
    type File = TokioFile;
    type Metadata = std::fs::Metadata;
    type OpenFuture = BoxFuture<'static, io::Result<TokioFile>>;
    type MetadataFuture = BoxFuture<'static, io::Result<std::fs::Metadata>>;

    fn open(&self, path: PathBuf) -> Self::OpenFuture {
        let this = self.clone();
        Box::pin(async move { TokioBackend.open(this.resolve(path).await?).await })
    }

    fn metadata(&self, path: PathBuf) -> Self::MetadataFuture {
        let this = self.clone();
        Box::pin(async move { tokio::fs::metadata(this.resolve(path).await?).await })
    }
}

fn warn_missing(root: &Path, warned: &AtomicBool) {
    if !warned.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            dir = %root.display(),
            "static files: the directory is missing (or not a directory); \
             its requests answer 404 until it exists"
        );
    }
}

/// Errors a client provokes by the path it asks for (`file.css/x`, a very long name) become
/// `NotFound`: `ServeDir` treats other errors as the server's (a 500), and its precompressed
/// fallback moves on to the next variant only past a `NotFound`.
fn not_found_if_clients(err: io::Error) -> io::Error {
    #[cfg(unix)]
    let clients = matches!(
        err.raw_os_error(),
        Some(libc::ENOTDIR | libc::ENAMETOOLONG | libc::ELOOP)
    );
    #[cfg(not(unix))]
    let clients = false;
    if clients {
        io::Error::new(io::ErrorKind::NotFound, err)
    } else {
        err
    }
}
