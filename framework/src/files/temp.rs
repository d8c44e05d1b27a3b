//! [`TempFiles`]: uploads kept for a while, within a byte quota per owner, served through
//! signed links, and swept from disk once expired.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Method, Uri};
use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;

use super::multipart::{UploadedFile, STAGING};
use super::names::{disk_name, random_id};
use super::records::{owner_key, Record, Records, Reservation};
use super::FilesError;
use crate::component::{Component, Installer};
use crate::config::Config;
use crate::extract::Path as PathParam;
use crate::jobs::{Jobs, JobsBuilder};
use crate::redis::Redis;
use crate::session::{Backend, SessionManager};
use crate::signed::{unix_now, SignedUrls};

/// The subdirectory of `[files] dir` temporary files are kept in.
pub(crate) const TEMP: &str = "temp";

/// The longest a temporary file may be kept: a year.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// A file kept by [`TempFiles::store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Its id: what its link names.
    pub id: String,
    /// Who it counts against (a session reference, a room), as given to `store`.
    pub owner: String,
    /// The client's file name, safe to show ([`display_name`](super::display_name)).
    pub name: String,
    /// The media type it is served with.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The Unix second (by Redis' clock with Redis records) from which it is gone.
    pub expires_at: u64,
}

impl From<Record> for StoredFile {
    fn from(r: Record) -> Self {
        Self {
            id: r.id,
            owner: r.owner,
            name: r.name,
            content_type: r.content_type,
            size: r.size,
            expires_at: r.expires_at,
        }
    }
}

/// Temporary files: uploads kept for a while, served through signed links. Cheap to clone.
///
/// - **Where**: the bytes in `{[files] dir}/temp/`, named by expiry and a random id; the
///   record (owner, display name, type, size, expiry) in Redis with a TTL of its own when
///   the sessions are in Redis, in this process's memory otherwise.
/// - **Quota**: an owner (a session, a room: any text) holds at most `[files] owner_quota`
///   bytes at once; a file that does not fit is refused ([`FilesError::QuotaExceeded`],
///   `413`), and an expired file stops counting at once.
/// - **Serving**: installed as a component, it answers `GET {[files] route}/{id}` for links
///   made by [`TempFiles::url`] (signed with `[app] key`; refused with `403` otherwise), as
///   an attachment (`Content-Disposition: attachment`), with `X-Content-Type-Options:
///   nosniff`, the exact `Content-Length`, `Cache-Control: private, no-store`,
///   `Referrer-Policy: no-referrer` and a sandboxing `Content-Security-Policy`.
/// - **Sweeping**: [`TempFiles::sweep`] removes expired files from disk (and files whose
///   record is gone, and uploads a crash left behind). It runs as a background job on the
///   app's queue ([`TempFiles::with_sweeper`], [`TempFiles::schedule_sweeps`]): every
///   `[files] sweep_interval` and once at start-up, on one server of the group at a time,
///   so files left by a server that stopped are swept by whichever runs next.
///
/// With several servers, `[files] dir` must be a directory they share.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use std::time::Duration;
///
/// use rondo::files::{FilesError, Multipart, TempFiles};
/// use rondo::jobs::Jobs;
/// use rondo::signed::SignedUrls;
/// use rondo::{App, Config, Json, Session, SessionManager, State};
///
/// /// Keeps each uploaded file for an hour, against the session's quota; answers the links.
/// async fn share(
///     State(files): State<TempFiles>,
///     session: Session,
///     form: Multipart,
/// ) -> Result<Json<Vec<String>>, FilesError> {
///     let owner = session.reference().map(|r| r.as_str().to_owned()).unwrap_or_default();
///     let mut links = Vec::new();
///     for upload in form.into_files() {
///         let stored = files.store(upload, &owner, Duration::from_secs(3600)).await?;
///         links.push(files.url(&stored, Duration::from_secs(600))?);
///     }
///     Ok(Json(links))
/// }
///
/// let app = App::new(Config::load("config.ini")?);
/// let urls = SignedUrls::from_config(app.config())?;
/// let sessions = SessionManager::from_config(app.config(), app.redis()).await?;
/// let files = TempFiles::from_config(app.config(), app.redis(), &sessions, &urls).await?;
/// let jobs = files
///     .with_sweeper(Jobs::builder(app.config(), app.redis(), &sessions))
///     .start()
///     .await?;
/// files.schedule_sweeps(&jobs);
/// let app = app
///     .with(urls)
///     .with(sessions)
///     .with(jobs)
///     .with(files)
///     .post("/share", share);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TempFiles {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// `{dir}/temp`: the kept files.
    pub(super) temp: PathBuf,
    /// `{dir}/uploads`: where uploads are written before they are kept.
    pub(super) staging: PathBuf,
    pub(super) records: Records,
    pub(super) urls: SignedUrls,
    /// `[files] route`.
    pub(super) route: String,
    quota: u64,
    pub(super) sweep_interval: Duration,
    /// An upload older than this in `staging` was left by a crash: no request holds it.
    pub(super) staging_max_age: Duration,
    pub(super) metrics: FileMetrics,
    /// Stops the sweep ticker at shutdown.
    pub(super) stop: CancellationToken,
}

/// The counters, shared handles.
#[derive(Clone, Default)]
pub(super) struct FileMetrics {
    pub(super) stored: Counter,
    pub(super) stored_bytes: Counter,
    pub(super) quota_refused: Counter,
    pub(super) swept: Counter,
    pub(super) swept_bytes: Counter,
}

impl std::fmt::Debug for TempFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempFiles")
            .field("dir", &self.inner.temp)
            .field("shared", &self.inner.records.shared())
            .finish_non_exhaustive()
    }
}

impl TempFiles {
    /// Temporary files as `[files]` says, with their records where the sessions are: in
    /// Redis on `[files] redis_connection_pool` (default: the sessions' pool) when
    /// `sessions` keeps them there, in this process's memory otherwise (logged: such
    /// records are neither shared nor kept across restarts, so the sweeper then removes the
    /// files of a previous run). Links are signed and checked with `urls`. Creates the
    /// directories.
    ///
    /// # Errors
    ///
    /// [`FilesError::Unavailable`] when the pool cannot be built, [`FilesError::Io`] when
    /// the directories cannot be created.
    pub async fn from_config(
        config: &Config,
        redis: &Redis,
        sessions: &SessionManager,
        urls: &SignedUrls,
    ) -> Result<Self, FilesError> {
        let records = if sessions.backend() == Backend::Redis {
            let pool = redis
                .pool(config.files_pool_name())
                .await
                .map_err(|e| FilesError::Unavailable(e.to_string()))?;
            Records::redis(pool)
        } else {
            tracing::warn!(
                "temporary files are recorded in this process's memory (the sessions are): \
                 they are not shared between servers, and a restart forgets them"
            );
            Records::memory()
        };
        let files = &config.files;
        let temp = files.dir.join(TEMP);
        let staging = files.dir.join(STAGING);
        for dir in [&temp, &staging] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(FilesError::Io)?;
        }
        let http = &config.http;
        Ok(Self {
            inner: Arc::new(Inner {
                temp,
                staging,
                records,
                urls: urls.clone(),
                route: files.route.clone(),
                quota: files.owner_quota,
                sweep_interval: files.sweep_interval,
                staging_max_age: http.body_read_timeout
                    + http.request_timeout
                    + Duration::from_secs(60),
                metrics: FileMetrics::default(),
                stop: CancellationToken::new(),
            }),
        })
    }

    /// Where the kept files are: `{[files] dir}/temp`.
    pub fn dir(&self) -> &Path {
        &self.inner.temp
    }

    /// Keeps `file` for `ttl` (whole seconds, rounded up; 1 s to [`MAX_TTL`]) against
    /// `owner`'s quota.
    ///
    /// # Errors
    ///
    /// [`FilesError::QuotaExceeded`] when it does not fit in `owner`'s quota,
    /// [`FilesError::InvalidOwner`] or [`FilesError::InvalidTtl`], or a failure of the
    /// records or the disk (the upload is then removed, and nothing is counted).
    pub async fn store(
        &self,
        file: UploadedFile,
        owner: &str,
        ttl: Duration,
    ) -> Result<StoredFile, FilesError> {
        if owner.is_empty() {
            return Err(FilesError::InvalidOwner);
        }
        let ttl_secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        if ttl_secs == 0 || ttl > MAX_TTL {
            return Err(FilesError::InvalidTtl);
        }
        let inner = &self.inner;
        let id = random_id().map_err(|e| FilesError::Io(std::io::Error::other(e.to_string())))?;
        let owner_key = owner_key(owner);
        let size = file.size();
        let expires_at = match inner
            .records
            .reserve(&owner_key, &id, size, ttl_secs, inner.quota)
            .await?
        {
            Reservation::Granted { expires_at } => expires_at,
            Reservation::OverQuota { used } => {
                inner.metrics.quota_refused.inc();
                return Err(FilesError::QuotaExceeded {
                    quota: inner.quota,
                    used,
                    size,
                });
            }
        };
        let disk = disk_name(expires_at, &id);
        let record = Record {
            id,
            owner: owner.to_owned(),
            owner_key,
            name: file.file_name().to_owned(),
            content_type: file.content_type().to_owned(),
            size,
            expires_at,
            disk,
        };
        let kept = inner.temp.join(&record.disk);
        if let Err(err) = move_in(file, &kept).await {
            self.forget(&record).await;
            return Err(FilesError::Io(err));
        }
        if let Err(err) = inner.records.put(&record).await {
            // Without a record the file could never be served: take it back.
            if let Err(io) = tokio::fs::remove_file(&kept).await {
                tracing::warn!(error = %io, "temporary file not removed; the sweeper will");
            }
            self.forget(&record).await;
            return Err(err);
        }
        inner.metrics.stored.inc();
        inner.metrics.stored_bytes.inc_by(size);
        Ok(record.into())
    }

    /// Takes a file that will not be kept off its owner's quota (best effort: an entry left
    /// behind expires with the file).
    async fn forget(&self, record: &Record) {
        if let Err(err) = self
            .inner
            .records
            .release(&record.owner_key, &record.id)
            .await
        {
            tracing::warn!(error = %err, "quota entry not released; it expires with the file");
        }
    }

    /// The file `id`, while it exists.
    ///
    /// # Errors
    ///
    /// The records cannot be reached, or hold something this did not write.
    pub async fn get(&self, id: &str) -> Result<Option<StoredFile>, FilesError> {
        if !super::names::is_id(id) {
            return Ok(None);
        }
        Ok(self.inner.records.get(id).await?.map(StoredFile::from))
    }

    /// Removes file `id` now (record, quota and bytes); whether there was one.
    ///
    /// # Errors
    ///
    /// The records cannot be reached, or the file cannot be removed from disk.
    pub async fn delete(&self, id: &str) -> Result<bool, FilesError> {
        if !super::names::is_id(id) {
            return Ok(false);
        }
        let Some(record) = self.inner.records.remove(id).await? else {
            return Ok(false);
        };
        match tokio::fs::remove_file(self.inner.temp.join(&record.disk)).await {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(err) => Err(FilesError::Io(err)),
        }
    }

    /// The bytes `owner` holds now (expired files excluded).
    ///
    /// # Errors
    ///
    /// The records cannot be reached.
    pub async fn usage(&self, owner: &str) -> Result<u64, FilesError> {
        self.inner.records.usage(&owner_key(owner)).await
    }

    /// The signed path of `file` (`{route}/{id}?expires=...&signature=...`), valid for `ttl`
    /// or until the file expires, whichever comes first.
    ///
    /// # Errors
    ///
    /// [`FilesError::Sign`] when `[files] route` cannot be signed (it holds characters a
    /// browser would rewrite).
    pub fn path(&self, file: &StoredFile, ttl: Duration) -> Result<String, FilesError> {
        let until = crate::signed::expires_after(ttl).min(file.expires_at.saturating_sub(1));
        let until = until.max(unix_now());
        Ok(self
            .inner
            .urls
            .sign_until(&format!("{}/{}", self.inner.route, file.id), until)?)
    }

    /// [`TempFiles::path`] under `[app] url`: the link to hand out.
    ///
    /// # Errors
    ///
    /// As [`TempFiles::path`].
    pub fn url(&self, file: &StoredFile, ttl: Duration) -> Result<String, FilesError> {
        let path = self.path(file, ttl)?;
        Ok(format!("{}{path}", self.inner.urls.base()))
    }

    /// Registers the sweep job ([`SweepTempFiles`](super::SweepTempFiles)) and this as its
    /// state on a job runtime being built.
    pub fn with_sweeper(&self, jobs: JobsBuilder) -> JobsBuilder {
        jobs.register::<super::SweepTempFiles>().state(self.clone())
    }

    /// Dispatches a sweep on `jobs` now and every `[files] sweep_interval` until shutdown,
    /// when this server wins the group's turn (one server per interval, by a Redis lock;
    /// always with memory records). `jobs` must have been built with
    /// [`TempFiles::with_sweeper`]. Needs a Tokio runtime.
    pub fn schedule_sweeps(&self, jobs: &Jobs) {
        super::sweep::schedule(self.clone(), jobs.clone());
    }
}

/// Moves an upload to `to`, as a file this module owns, with a fresh modification time
/// (the sweeper takes a file without a record for an orphan only once it is older than a
/// grace period, and an upload may have been written long before it is kept).
async fn move_in(file: UploadedFile, to: &Path) -> std::io::Result<()> {
    let from = file.path().to_owned();
    // If the rename fails, dropping `file` removes the upload.
    tokio::fs::rename(&from, to).await?;
    let _moved = file.keep();
    let kept = tokio::fs::File::options()
        .write(true)
        .open(to)
        .await?
        .into_std()
        .await;
    if let Err(err) = kept.set_modified(SystemTime::now()) {
        tracing::debug!(error = %err, "modification time not set");
    }
    Ok(())
}

/// Installed, it is the state behind `State<TempFiles>`, the route `GET {[files]
/// route}/{id}` that serves files through signed links, the `rondo_files_*` metrics and a
/// drain hook that stops the sweep schedule.
impl Component for TempFiles {
    fn install(self, app: &mut Installer<'_>) {
        let metrics = self.inner.metrics.clone();
        app.register_metric(
            "rondo_files_stored",
            "Temporary files stored",
            metrics.stored,
        );
        app.register_metric(
            "rondo_files_stored_bytes",
            "Bytes of temporary files stored",
            metrics.stored_bytes,
        );
        app.register_metric(
            "rondo_files_quota_refused",
            "Temporary files refused because their owner's quota was full",
            metrics.quota_refused,
        );
        app.register_metric(
            "rondo_files_swept",
            "Files removed from disk by the sweeper (expired, orphaned, or abandoned uploads)",
            metrics.swept,
        );
        app.register_metric(
            "rondo_files_swept_bytes",
            "Bytes removed from disk by the sweeper",
            metrics.swept_bytes,
        );
        let pattern = format!("{}/{{id}}", self.inner.route);
        let files = self.clone();
        app.route(
            Method::GET,
            &pattern,
            move |PathParam(id): PathParam<String>, uri: Uri| {
                let files = files.clone();
                async move { super::serve::download(&files, &id, &uri).await }
            },
        );
        let stop = self.inner.stop.clone();
        app.on_drain(move || async move { stop.cancel() });
        app.state(self);
    }
}
