//! The sweeper: removes from disk what no request can reach any more, as a background job
//! on the app's queue.
//!
//! What it removes, in `{[files] dir}`:
//!
//! - `temp/<expires>-<id>` once `expires` has passed by the records' clock (Redis' with
//!   Redis records). The expiry is in the name, so a file is swept whatever became of its
//!   record, its server or Redis' data;
//! - `temp/<expires>-<id>` whose record is gone (deleted, or Redis restarted empty), once
//!   the file is a minute old (a file is renamed into place just before its record is
//!   written);
//! - `uploads/<id>.part` older than `body_read_timeout + request_timeout` and a minute: no
//!   request holds it any more, so a crash left it.
//!
//! Other names are left alone. Each sweep is one job ([`SweepTempFiles`]); which server runs
//! it does not matter, since they all share the directory.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::multipart::PART;
use super::names::parse_disk_name;
use super::{FilesError, TempFiles};
use crate::jobs::{Job, JobContext, JobError, Jobs};

/// How old a file without a record must be before it counts as an orphan.
const ORPHAN_GRACE: Duration = Duration::from_secs(60);

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired files removed.
    pub expired: u64,
    /// Files removed because their record was gone.
    pub orphaned: u64,
    /// Uploads left behind by a crash, removed.
    pub abandoned: u64,
    /// Bytes freed, all three together.
    pub bytes: u64,
}

/// The sweep job: runs [`TempFiles::sweep`] on the [`TempFiles`] registered with
/// [`TempFiles::with_sweeper`]. Idempotent, as jobs should be.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SweepTempFiles {}

impl Job for SweepTempFiles {
    const NAME: &'static str = "rondo.files.sweep";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let files = ctx.state::<TempFiles>().ok_or_else(|| {
            JobError::failed(
                "no TempFiles on the job runtime (build it with TempFiles::with_sweeper)",
            )
        })?;
        let report = files
            .sweep()
            .await
            .map_err(|e| JobError::failed(e.to_string()))?;
        if report != SweepReport::default() {
            tracing::info!(
                expired = report.expired,
                orphaned = report.orphaned,
                abandoned = report.abandoned,
                bytes = report.bytes,
                "temporary files swept"
            );
        }
        Ok(())
    }
}

impl TempFiles {
    /// Removes from disk every temporary file that has expired or lost its record, and
    /// every upload a crash left behind; see the module documentation of `files::sweep`.
    /// Usually run by the sweep job; safe to run at any time, on any server, concurrently.
    ///
    /// # Errors
    ///
    /// The records cannot be reached (for their clock, or an orphan check) or a directory
    /// cannot be read. A file that cannot be removed is logged and left for the next sweep.
    pub async fn sweep(&self) -> Result<SweepReport, FilesError> {
        let inner = &self.inner;
        let mut report = SweepReport::default();
        let now = inner.records.now().await?;
        let mut entries = tokio::fs::read_dir(&inner.temp)
            .await
            .map_err(FilesError::Io)?;
        while let Some(entry) = entries.next_entry().await.map_err(FilesError::Io)? {
            let name = entry.file_name();
            let Some((expires, id)) = name.to_str().and_then(parse_disk_name) else {
                continue;
            };
            let Ok(meta) = entry.metadata().await else {
                continue; // removed meanwhile
            };
            let expired = expires <= now;
            let orphaned =
                !expired && age(&meta) >= ORPHAN_GRACE && !inner.records.exists(id).await?;
            if (expired || orphaned) && remove(&entry.path()).await {
                report.bytes += meta.len();
                if expired {
                    report.expired += 1;
                } else {
                    report.orphaned += 1;
                }
            }
        }
        let mut uploads = match tokio::fs::read_dir(&inner.staging).await {
            Ok(uploads) => uploads,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(self.count(report)),
            Err(err) => return Err(FilesError::Io(err)),
        };
        while let Some(entry) = uploads.next_entry().await.map_err(FilesError::Io)? {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(PART) {
                continue;
            }
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if age(&meta) >= inner.staging_max_age && remove(&path).await {
                report.abandoned += 1;
                report.bytes += meta.len();
            }
        }
        Ok(self.count(report))
    }

    fn count(&self, report: SweepReport) -> SweepReport {
        let metrics = &self.inner.metrics;
        metrics
            .swept
            .inc_by(report.expired + report.orphaned + report.abandoned);
        metrics.swept_bytes.inc_by(report.bytes);
        report
    }
}

/// How long ago the file was last modified (zero for a time in the future).
fn age(meta: &std::fs::Metadata) -> Duration {
    meta.modified()
        .ok()
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .unwrap_or_default()
}

/// Removes one file; whether it was this call that removed it.
async fn remove(path: &std::path::Path) -> bool {
    match tokio::fs::remove_file(path).await {
        Ok(()) => true,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "not swept; tried again next time");
            false
        }
    }
}

/// The schedule: a sweep now, then every interval, dispatched by the server that takes the
/// group's turn, until the app drains.
pub(super) fn schedule(files: TempFiles, jobs: Jobs) {
    let every = files.inner.sweep_interval;
    let stop = files.inner.stop.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => break,
            }
            match files.inner.records.claim_sweep(every).await {
                Ok(true) => {
                    if let Err(err) = jobs.dispatch(&SweepTempFiles {}).await {
                        tracing::warn!(error = %err, "sweep of temporary files not queued");
                    }
                }
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "sweep of temporary files not scheduled"),
            }
        }
    });
}
