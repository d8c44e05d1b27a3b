//! The [`Multipart`] extractor: a `multipart/form-data` body read by `multer`, its files
//! streamed to disk under `[files] dir`, its text fields kept in memory, every limit of
//! `[files]` enforced while it arrives.
//!
//! Files are written to `{dir}/uploads/` under random names (`<id>.part`), never under a
//! name the client chose. Each is held by an [`UploadedFile`], which removes it when
//! dropped unless the controller kept it ([`UploadedFile::persist`],
//! [`TempFiles::store`](super::TempFiles::store)). So a request refused half-way (too large,
//! a forbidden type, malformed), a client that goes away mid-upload (the request's future is
//! dropped, and everything it held with it), and a controller that ignores its files all
//! leave nothing on disk. Only a crash can; the sweeper removes such leftovers
//! ([`TempFiles::sweep`](super::TempFiles::sweep)).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::names::{display_name, is_allowed, media_type, random_id};
use crate::body::{Request, Response};
use crate::config::FilesConfig;
use crate::context::AppContext;
use crate::extract::FromRequest;
use crate::respond::{ErrorPage, RequestHead, Responder};

/// The subdirectory of `[files] dir` uploads are written to.
pub(crate) const STAGING: &str = "uploads";
/// The extension of a file in [`STAGING`].
pub(crate) const PART: &str = "part";

/// A `multipart/form-data` request body, read whole: its text fields in memory, its files on
/// disk. The last argument of a controller, as every body extractor.
///
/// Limits, all from `[files]` (see the README's reference): `max_request_bytes` for the
/// whole body (refused from `Content-Length` before anything is read when it says more),
/// `max_file_bytes` per file, `max_field_bytes` per text field, `max_files` and
/// `max_fields` per request, and `allowed_types` for the media type a file part declares.
/// The whole body must arrive within `[http] body_read_timeout` (and the controller within
/// `[http] request_timeout`): raise both for large uploads.
///
/// A file input left empty by the browser (`filename=""` and no bytes) is skipped.
///
/// # Examples
///
/// ```
/// use rondo::files::Multipart;
/// use rondo::http::StatusCode;
/// use rondo::{App, Config, ErrorPage};
///
/// /// Keeps the uploaded avatar as `avatars/current`: a path the app chose, never the
/// /// client's file name. Every other file of the request is removed.
/// async fn upload(mut form: Multipart) -> Result<String, ErrorPage> {
///     let caption = form.text("caption").unwrap_or("").to_owned();
///     let Some(avatar) = form.take_file("avatar") else {
///         return Err(ErrorPage::new(StatusCode::BAD_REQUEST, "no avatar"));
///     };
///     let (name, size) = (avatar.file_name().to_owned(), avatar.size());
///     avatar
///         .persist("avatars/current")
///         .await
///         .map_err(|_| ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "not stored"))?;
///     Ok(format!("{name} ({size} bytes): {caption}"))
/// }
///
/// let app = App::new(Config::default()).post("/avatar", upload);
/// ```
#[derive(Debug, Default)]
pub struct Multipart {
    fields: Vec<TextField>,
    files: Vec<UploadedFile>,
}

/// A text (non-file) part of a [`Multipart`] body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextField {
    /// The part's name (`name="..."`), empty when it has none.
    pub name: String,
    /// Its value, which must be UTF-8.
    pub value: String,
}

impl Multipart {
    /// The text fields, in the order they came.
    pub fn fields(&self) -> &[TextField] {
        &self.fields
    }

    /// The value of the first text field named `name`.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_str())
    }

    /// The files, in the order they came.
    pub fn files(&self) -> &[UploadedFile] {
        &self.files
    }

    /// Takes the first file of the part named `field` out (the others stay).
    pub fn take_file(&mut self, field: &str) -> Option<UploadedFile> {
        let at = self.files.iter().position(|f| f.field == field)?;
        Some(self.files.remove(at))
    }

    /// Every file, taken out.
    pub fn into_files(self) -> Vec<UploadedFile> {
        self.files
    }
}

/// An uploaded file on disk, removed when this is dropped unless it was kept.
#[derive(Debug)]
pub struct UploadedFile {
    field: String,
    file_name: String,
    content_type: String,
    size: u64,
    path: PathBuf,
    /// Set once the file belongs to someone else (moved, stored): then dropping leaves it.
    kept: bool,
}

impl UploadedFile {
    /// The name of the form field it came in.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The client's file name made safe to show ([`display_name`](super::display_name)):
    /// for display and `Content-Disposition` only, never a path.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The media type the client declared (lowercase `type/subtype`), which passed
    /// `[files] allowed_types`. A declaration, not a proof: serve files as attachments.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// Its exact size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where it is now: `{dir}/uploads/<random>.part`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its contents, read into memory.
    ///
    /// # Errors
    ///
    /// The file cannot be read.
    pub async fn bytes(&self) -> std::io::Result<Bytes> {
        tokio::fs::read(&self.path).await.map(Bytes::from)
    }

    /// Moves it to `to` (on the same file system as `[files] dir`: a rename), which then
    /// belongs to the caller. An existing file at `to` is replaced.
    ///
    /// # Errors
    ///
    /// The rename failed; the upload is then removed as usual.
    pub async fn persist(mut self, to: impl AsRef<Path>) -> std::io::Result<()> {
        tokio::fs::rename(&self.path, to.as_ref()).await?;
        self.kept = true;
        Ok(())
    }

    /// Hands the file over to the caller, who must move or remove it.
    pub(crate) fn keep(mut self) -> PathBuf {
        self.kept = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for UploadedFile {
    fn drop(&mut self) {
        if !self.kept {
            // One unlink, done in place: dropping happens on error paths and when a request
            // is abandoned, where nothing could await a removal. A failure leaves the file to
            // the sweeper.
            if let Err(err) = std::fs::remove_file(&self.path) {
                if err.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), error = %err, "upload not removed");
                }
            }
        }
    }
}

/// Why a multipart body was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The request is not `multipart/form-data` with a boundary (`415`).
    #[error("expected a request with Content-Type: multipart/form-data")]
    NotMultipart,
    /// The body, a file or a text field is larger than its limit (`413`).
    #[error("the {what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// `request`, `file` or `field`.
        what: &'static str,
        /// The limit, in bytes.
        limit: u64,
    },
    /// More file or text parts than allowed (`413`).
    #[error("too many {what} in one request (at most {limit})")]
    TooMany {
        /// `files` or `fields`.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A file part declares a media type `[files] allowed_types` does not list (`415`).
    #[error("files of type {content_type} are not accepted")]
    TypeNotAllowed {
        /// The declared type (lowercase `type/subtype`).
        content_type: String,
    },
    /// The body is not well-formed multipart, or a text field is not UTF-8 (`400`).
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    /// The body could not be read: the client went away or broke the stream (`400`).
    #[error("the request body could not be read: {0}")]
    Aborted(String),
    /// The body did not arrive within `[http] body_read_timeout` (`408`, connection closed).
    #[error("the request body did not arrive within {0:?}")]
    Timeout(Duration),
    /// A file could not be written (`500`, or `507` when the disk is full; logged).
    #[error("the upload could not be stored")]
    Storage(#[source] std::io::Error),
}

impl UploadError {
    /// The status code this answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotMultipart | Self::TypeNotAllowed { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge { .. } | Self::TooMany { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Malformed(_) | Self::Aborted(_) => StatusCode::BAD_REQUEST,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Storage(err) if err.raw_os_error() == Some(28) => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Responder for UploadError {
    fn respond(self, head: &RequestHead) -> Response {
        let status = self.status();
        if let Self::Storage(err) = &self {
            tracing::error!(error = %err, "an upload could not be written");
        }
        let page = ErrorPage::new(status, self.to_string());
        // The rest of a refused or trickled body is not worth reading: the connection goes.
        let page = match self {
            Self::Timeout(_) | Self::TooLarge { .. } => {
                page.header(CONNECTION, HeaderValue::from_static("close"))
            }
            _ => page,
        };
        page.respond(head)
    }
}

/// The limits of one request, from `[files]`.
struct Limits {
    max_request: u64,
    max_file: u64,
    max_field: usize,
    max_files: usize,
    max_fields: usize,
    allowed: Vec<String>,
}

impl From<&FilesConfig> for Limits {
    fn from(files: &FilesConfig) -> Self {
        Self {
            max_request: files.max_request_bytes,
            max_file: files.max_file_bytes,
            max_field: files.max_field_bytes,
            max_files: files.max_files,
            max_fields: files.max_fields,
            allowed: files.allowed_types.clone(),
        }
    }
}

impl FromRequest for Multipart {
    type Rejection = UploadError;

    async fn from_request(req: Request, app: &AppContext) -> Result<Self, UploadError> {
        let files = &app.config().files;
        let limits = Limits::from(files);
        let boundary = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| multer::parse_boundary(v).ok())
            .ok_or(UploadError::NotMultipart)?;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limits.max_request) {
            return Err(UploadError::TooLarge {
                what: "request",
                limit: limits.max_request,
            });
        }
        let staging = files.dir.join(STAGING);
        let timeout = app.limits().body_read_timeout;
        let body = req.into_body().into_data_stream();
        let constraints = multer::Constraints::new()
            .size_limit(multer::SizeLimit::new().whole_stream(limits.max_request));
        let multipart = multer::Multipart::with_constraints(body, boundary, constraints);
        // Dropped on timeout, the read drops every file it holds: nothing stays on disk.
        match tokio::time::timeout(timeout, read(multipart, &limits, &staging)).await {
            Ok(read) => read,
            Err(_) => Err(UploadError::Timeout(timeout)),
        }
    }
}

/// Reads every part, enforcing `limits`, files into `staging`.
async fn read(
    mut multipart: multer::Multipart<'static>,
    limits: &Limits,
    staging: &Path,
) -> Result<Multipart, UploadError> {
    let mut out = Multipart::default();
    let mut staging_ready = false;
    while let Some(mut field) = multipart.next_field().await.map_err(refused)? {
        let name = field.name().unwrap_or("").to_owned();
        let Some(file_name) = field.file_name().map(str::to_owned) else {
            if out.fields.len() == limits.max_fields {
                return Err(UploadError::TooMany {
                    what: "fields",
                    limit: limits.max_fields,
                });
            }
            let value = read_text(&mut field, limits.max_field).await?;
            out.fields.push(TextField { name, value });
            continue;
        };
        let content_type = media_type(field.content_type().map(|m| m.essence_str()));
        let mut first = field.chunk().await.map_err(refused)?;
        while first.as_ref().is_some_and(Bytes::is_empty) {
            first = field.chunk().await.map_err(refused)?;
        }
        if file_name.is_empty() && first.is_none() {
            continue; // a file input with no file chosen
        }
        if !is_allowed(&content_type, &limits.allowed) {
            return Err(UploadError::TypeNotAllowed { content_type });
        }
        if out.files.len() == limits.max_files {
            return Err(UploadError::TooMany {
                what: "files",
                limit: limits.max_files,
            });
        }
        if !staging_ready {
            tokio::fs::create_dir_all(staging)
                .await
                .map_err(UploadError::Storage)?;
            staging_ready = true;
        }
        let id =
            random_id().map_err(|e| UploadError::Storage(std::io::Error::other(e.to_string())))?;
        let path = staging.join(format!("{id}.{PART}"));
        let mut disk = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(UploadError::Storage)?;
        // From here on, dropping `upload` (an error, an abandoned request) removes the file.
        let mut upload = UploadedFile {
            field: name,
            file_name: display_name(&file_name),
            content_type,
            size: 0,
            path,
            kept: false,
        };
        let mut chunk = first;
        while let Some(bytes) = chunk {
            upload.size += bytes.len() as u64;
            if upload.size > limits.max_file {
                return Err(UploadError::TooLarge {
                    what: "file",
                    limit: limits.max_file,
                });
            }
            disk.write_all(&bytes).await.map_err(UploadError::Storage)?;
            chunk = field.chunk().await.map_err(refused)?;
        }
        disk.flush().await.map_err(UploadError::Storage)?;
        out.files.push(upload);
    }
    Ok(out)
}

/// A text part, at most `limit` bytes, as UTF-8.
async fn read_text(
    field: &mut multer::Field<'static>,
    limit: usize,
) -> Result<String, UploadError> {
    let mut value = Vec::new();
    while let Some(bytes) = field.chunk().await.map_err(refused)? {
        if value.len() + bytes.len() > limit {
            return Err(UploadError::TooLarge {
                what: "field",
                limit: limit as u64,
            });
        }
        value.extend_from_slice(&bytes);
    }
    String::from_utf8(value).map_err(|_| {
        UploadError::Malformed(format!(
            "field {:?} is not UTF-8",
            field.name().unwrap_or("")
        ))
    })
}

/// What a `multer` error means for the client.
fn refused(err: multer::Error) -> UploadError {
    match err {
        multer::Error::StreamSizeExceeded { limit } => UploadError::TooLarge {
            what: "request",
            limit,
        },
        multer::Error::StreamReadFailed(why) => UploadError::Aborted(why.to_string()),
        other => UploadError::Malformed(other.to_string()),
    }
}
