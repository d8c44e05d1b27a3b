//! Files: uploads and temporary files, under `[files] dir`.
//!
//! - [`Multipart`]: the controller argument for `multipart/form-data` bodies. Files stream
//!   to disk under random names as they arrive, every `[files]` limit is enforced on the way
//!   (`413` past a size or count, `415` for a type `allowed_types` does not list), and
//!   nothing is left on disk by a refused, abandoned or ignored upload.
//! - [`TempFiles`]: an upload kept for a while against its owner's byte quota, served
//!   through signed links ([`crate::signed`]) as an attachment, and removed from disk by a
//!   sweeper that runs as a background job ([`SweepTempFiles`] on [`crate::Jobs`]).
//!
//! # Layout
//!
//! - `multipart`: the extractor, [`UploadedFile`], [`UploadError`].
//! - `names`: random ids, the client's name made safe ([`display_name`]), media types and
//!   the allow-list, `Content-Disposition`.
//! - `records`: where temporary files are recorded (Redis or memory) and the quota script.
//! - `temp`: [`TempFiles`] itself, a component; `serve`: the download route;
//!   `sweep`: the sweeper and its job.

mod multipart;
mod names;
mod records;
mod serve;
mod sweep;
mod temp;

pub use multipart::{Multipart, TextField, UploadError, UploadedFile};
pub use names::display_name;
pub use sweep::{SweepReport, SweepTempFiles};
pub use temp::{StoredFile, TempFiles, MAX_TTL};

use http::StatusCode;

use crate::body::Response;
use crate::respond::{ErrorPage, RequestHead, Responder};
use crate::signed::SignError;

/// Why a temporary file could not be stored, found, linked or swept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// The file does not fit in its owner's quota (`413`).
    #[error("this file ({size} bytes) does not fit in the quota of {quota} bytes ({used} in use)")]
    QuotaExceeded {
        /// `[files] owner_quota`.
        quota: u64,
        /// The bytes the owner holds already.
        used: u64,
        /// The file's size.
        size: u64,
    },
    /// The owner is empty (`400`).
    #[error("a temporary file needs an owner")]
    InvalidOwner,
    /// The time to keep it is under a second or over [`MAX_TTL`] (`400`).
    #[error("a temporary file is kept from one second to a year")]
    InvalidTtl,
    /// The records' store (Redis) could not be reached in time (`503`).
    #[error("file records unavailable: {0}")]
    Unavailable(String),
    /// The records hold something this module did not write (`500`).
    #[error("unexpected file record: {0}")]
    Corrupt(String),
    /// The disk failed (`500`, or `507` when it is full).
    #[error("file storage: {0}")]
    Io(#[source] std::io::Error),
    /// The link could not be signed (`500`: `[files] route` is not a signable path).
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl FilesError {
    /// The status code this answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::QuotaExceeded { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidOwner | Self::InvalidTtl => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Io(err) if err.raw_os_error() == Some(28) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Corrupt(_) | Self::Io(_) | Self::Sign(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Responder for FilesError {
    fn respond(self, head: &RequestHead) -> Response {
        let status = self.status();
        let page = match &self {
            Self::QuotaExceeded { .. } | Self::InvalidOwner | Self::InvalidTtl => {
                ErrorPage::new(status, self.to_string())
            }
            Self::Unavailable(_) => {
                tracing::warn!(error = %self, "temporary files unavailable");
                ErrorPage::new(status, "files are unavailable").retry_after(1)
            }
            _ => {
                tracing::error!(error = %self, "temporary files failed");
                ErrorPage::new(status, "internal server error")
            }
        };
        page.respond(head)
    }
}
