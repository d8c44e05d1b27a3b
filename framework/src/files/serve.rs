//! Serving a temporary file through its signed link: checked, then streamed from disk as an
//! attachment that no browser renders or sniffs.

use http::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use http::{StatusCode, Uri};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::names::{content_disposition, is_id, parse_disk_name};
use super::TempFiles;
use crate::body::{Body, Response};
use crate::respond::ErrorPage;

/// The headers every download carries besides its type, length and disposition.
const HARDENING: [(HeaderName, &str); 4] = [
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    // The link is a credential: neither caches nor the next page's `Referer` keep it.
    (CACHE_CONTROL, "private, no-store"),
    (REFERRER_POLICY, "no-referrer"),
    // Should a browser show it after all, it runs nothing and loads nothing.
    (CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"),
];

/// The answer to `GET {route}/{id}?expires=...&signature=...`.
pub(super) async fn download(
    files: &TempFiles,
    id: &str,
    uri: &Uri,
) -> Result<Response, ErrorPage> {
    let inner = &files.inner;
    inner
        .urls
        .verify(uri)
        .map_err(|why| ErrorPage::new(StatusCode::FORBIDDEN, why.to_string()))?;
    let gone = || {
        ErrorPage::new(
            StatusCode::NOT_FOUND,
            "This file does not exist or has expired.",
        )
    };
    if !is_id(id) {
        return Err(gone());
    }
    let record = match inner.records.get(id).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(gone()),
        Err(err) => {
            tracing::warn!(error = %err, "temporary file records unavailable");
            return Err(
                ErrorPage::new(StatusCode::SERVICE_UNAVAILABLE, "files are unavailable")
                    .retry_after(1),
            );
        }
    };
    // The disk name comes from the record, so from Redis: check it is one this module made.
    if parse_disk_name(&record.disk).map(|(_, named)| named) != Some(id) {
        tracing::error!(
            file = id,
            "a temporary file's record names a foreign disk file"
        );
        return Err(gone());
    }
    let path = inner.temp.join(&record.disk);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(err) => {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::error!(file = id, error = %err, "a temporary file could not be opened");
            }
            return Err(gone());
        }
    };
    let length = match file.metadata().await {
        Ok(meta) if meta.len() == record.size => meta.len(),
        Ok(meta) => {
            tracing::error!(
                file = id,
                on_disk = meta.len(),
                recorded = record.size,
                "a temporary file changed size"
            );
            return Err(gone());
        }
        Err(err) => {
            tracing::error!(file = id, error = %err, "a temporary file could not be read");
            return Err(gone());
        }
    };
    // Exactly the recorded bytes, even if the file grew since the check.
    let body = Body::from_stream(ReaderStream::new(file.take(length)));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(&record.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(CONTENT_DISPOSITION, content_disposition(&record.name));
    for (name, value) in HARDENING {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}
