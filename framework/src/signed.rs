//! Signed temporary links, with the semantics of Laravel's `URL::temporarySignedRoute`.
//!
//! A signed link lets a visitor do one thing without logging in (download a file, join a
//! meeting, confirm an address) until a given moment. The server keeps no state for it: the
//! link itself carries its expiry and an HMAC-SHA256 of everything else, keyed with the
//! application's [`AppKey`] (`[app] key`), so nobody can change a parameter or the expiry
//! without the key.
//!
//! ```text
//! /files/report.pdf?user=42&expires=1700000000&signature=<64 hex digits>
//! ```
//!
//! An app makes links with [`SignedUrls`] (a component: `State<SignedUrls>` in controllers)
//! and checks them with the [`Signed`] extractor on one route, or with
//! [`SignedUrls::guard`] as the middleware of a group of routes. A refused link answers
//! `403` with the reason ([`SignatureError`]: not signed, altered, or expired).
//!
//! # What the signature covers
//!
//! The MAC is computed over the **path and query exactly as sent**, without the `signature`
//! parameter:
//!
//! - parameter order as sent: `?a=1&b=2` and `?b=2&a=1` are different links;
//! - percent-encoding as sent: `%C3%B6`, `%c3%b6` and `+` vs `%20` are different links;
//! - `signature` is removed wherever it stands (it is last in links made here); a link
//!   with two `signature` parameters is refused; the name is matched raw, so a spelling
//!   such as `sig%6Eature` stays in the signed bytes like any other parameter;
//! - `expires` is part of the signed bytes, so it cannot be moved.
//!
//! Nothing is decoded or reordered before comparing: canonicalizing would make different
//! URLs look equal to the MAC while the application's query parser still tells them apart.
//! In return, [`AppKey::sign`] refuses targets a browser would rewrite (see [`SignError`]),
//! and whatever sits between the browser and the app must pass the request target through
//! unchanged (hyper's `Uri::path` and `Uri::query` do). The comparison of MACs is in
//! constant time (`hmac`'s `verify_slice`).
//!
//! # Path, not absolute URL
//!
//! Laravel signs the absolute URL by default, which breaks behind a TLS-terminating proxy:
//! the link was signed as `https://…`, the application sees `http://…`. Here the default is
//! to sign the path and query only ([`SignedUrls::url`] still hands out an absolute link,
//! under `[app] url`). Where a link must also be bound to one host (several sites sharing a
//! key), use [`AppKey::sign_absolute`] and [`AppKey::verify_absolute`] with the site's
//! configured public origin, never one taken from an untrusted `Host` header.
//!
//! # Expiry
//!
//! As in Laravel, a link is valid up to and including its `expires` second (Unix time, by
//! the clock of the server that checks it): it has expired when `now > expires`. The expiry
//! is only looked at once the MAC is known to be good, so a forged link is always
//! [`SignatureError::Invalid`], never `Expired`.
//!
//! # Differences from Laravel
//!
//! Laravel keys the HMAC with the configuration *text* of `APP_KEY` (the `base64:…`
//! string); here it is keyed with the 32 decoded key bytes, so signatures are not
//! interchangeable between the two even with the same `APP_KEY`.

mod guard;
mod query;
mod urls;

pub use self::guard::{RequireSignature, Signed, SignedRejection};
pub(crate) use self::urls::expires_after;
pub use self::urls::SignedUrls;
pub use crate::config::{AppKey, AppKeyError};

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::StatusCode;
use sha2::Sha256;

use crate::body::Response;
use crate::respond::{ErrorPage, RequestHead, Responder};

type HmacSha256 = Hmac<Sha256>;

/// Why a link cannot be signed. These are programming errors in the caller: the link would
/// never verify, or would be ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The target does not start with `/` (pass a path, not a URL).
    #[error("only a path and query starting with `/` can be signed")]
    NotAPath,
    /// A character that a browser would percent-encode (or drop) before sending it back.
    #[error("`{found}` at byte {at} must be percent-encoded before signing")]
    Unencoded {
        /// The offending character.
        found: char,
        /// Its byte offset in the target.
        at: usize,
    },
    /// A `.` or `..` path segment, which browsers resolve away before sending.
    #[error("the path contains a `.` or `..` segment, which browsers rewrite")]
    DotSegment,
    /// The query already has a parameter the signature needs for itself.
    #[error("`{name}` is a reserved parameter of signed links")]
    Reserved {
        /// `expires` or `signature`.
        name: &'static str,
    },
    /// The origin given for an absolute link is not `http(s)://host[:port]`.
    #[error("the origin must be `http://` or `https://` and a host, with no path")]
    BadOrigin,
}

/// A controller that fails to sign answers 500: the target it tried to sign is a bug.
impl Responder for SignError {
    fn respond(self, head: &RequestHead) -> Response {
        tracing::error!(error = %self, "a link could not be signed");
        ErrorPage::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error").respond(head)
    }
}

/// Why a signed link was refused. Each message is fit to show on the 403 page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The link carries no `signature` at all.
    #[error("This link is not signed. Please use the complete link you were sent.")]
    Missing,
    /// The signature does not match: the link was altered, cut, or made with another key.
    #[error("This link is not valid. It may have been changed or copied incompletely.")]
    Invalid,
    /// The signature is good, but the link's time is up.
    #[error("This link has expired. Please ask for a new one.")]
    Expired,
}

impl SignatureError {
    /// A short name for logs and metrics: `missing`, `invalid` or `expired`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
        }
    }
}

/// `403 Forbidden` with the reason, as the app's negotiated error page.
impl Responder for SignatureError {
    fn respond(self, head: &RequestHead) -> Response {
        ErrorPage::new(StatusCode::FORBIDDEN, self.to_string()).respond(head)
    }
}

impl AppKey {
    /// Signs a path and query for verification by [`AppKey::verify`]: appends
    /// `expires=<expires_at>` and then `signature=<hex HMAC-SHA256>` to the query.
    ///
    /// `path_and_query` must be written as the browser will send it back: percent-encoded,
    /// without fragment. `expires_at` is in Unix seconds; the link is valid up to and
    /// including that second.
    ///
    /// # Errors
    ///
    /// A [`SignError`] when the target is not a path, holds a character a browser would
    /// rewrite, has a dot segment, or already uses `expires` or `signature`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rondo::signed::AppKey;
    ///
    /// let key = AppKey::generate()?;
    /// let link = key.sign("/files/report.pdf?user=42", 1_700_000_000)?;
    /// assert!(link.starts_with("/files/report.pdf?user=42&expires=1700000000&signature="));
    /// let (path, query) = link.split_once('?').ok_or("no query")?;
    /// assert_eq!(key.verify(path, Some(query), 1_700_000_000), Ok(()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sign(&self, path_and_query: &str, expires_at: u64) -> Result<String, SignError> {
        self.sign_under("", path_and_query, expires_at)
    }

    /// Checks a signed link: `path` and `query` as received (hyper's `uri.path()` and
    /// `uri.query()`), at Unix second `now`.
    ///
    /// # Errors
    ///
    /// [`SignatureError::Missing`] when there is no signature, [`SignatureError::Invalid`]
    /// when it does not match (or is repeated, or `expires` is malformed), and
    /// [`SignatureError::Expired`] when it matches but `now` is past `expires`.
    pub fn verify(&self, path: &str, query: Option<&str>, now: u64) -> Result<(), SignatureError> {
        self.verify_under("", path, query, now)
    }

    /// Like [`AppKey::sign`], but the signature also covers `origin` (`https://example.com`
    /// or `http://localhost:8080`), and the returned link is absolute.
    ///
    /// # Errors
    ///
    /// As [`AppKey::sign`], and [`SignError::BadOrigin`].
    pub fn sign_absolute(
        &self,
        origin: &str,
        path_and_query: &str,
        expires_at: u64,
    ) -> Result<String, SignError> {
        check_origin(origin)?;
        let link = self.sign_under(origin, path_and_query, expires_at)?;
        Ok(format!("{origin}{link}"))
    }

    /// Checks a link made by [`AppKey::sign_absolute`] for `origin`: the site's configured
    /// public origin, the same text that was used for signing.
    ///
    /// # Errors
    ///
    /// As [`AppKey::verify`]; a link signed for another origin (or path-only) is
    /// [`SignatureError::Invalid`].
    pub fn verify_absolute(
        &self,
        origin: &str,
        path: &str,
        query: Option<&str>,
        now: u64,
    ) -> Result<(), SignatureError> {
        self.verify_under(origin, path, query, now)
    }

    fn sign_under(
        &self,
        origin: &str,
        path_and_query: &str,
        expires_at: u64,
    ) -> Result<String, SignError> {
        let separator = match query::check_signable(path_and_query)? {
            // `/a?` has an empty query: nothing to separate from.
            Some(at) if at + 1 == path_and_query.len() => "",
            Some(_) => "&",
            None => "?",
        };
        let unsigned = format!("{path_and_query}{separator}{}={expires_at}", query::EXPIRES);
        let signature = query::hex(&self.mac(origin, &unsigned).finalize().into_bytes());
        Ok(format!("{unsigned}&{}={signature}", query::SIGNATURE))
    }

    fn verify_under(
        &self,
        origin: &str,
        path: &str,
        query: Option<&str>,
        now: u64,
    ) -> Result<(), SignatureError> {
        let (rest, signature) = query::take_signature(query.ok_or(SignatureError::Missing)?)?;
        let signature = query::unhex_32(signature).ok_or(SignatureError::Invalid)?;
        let message = if rest.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{rest}")
        };
        self.mac(origin, &message)
            .verify_slice(&signature)
            .map_err(|_| SignatureError::Invalid)?;
        if now > query::expires(&rest)? {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }

    /// The HMAC state after `origin` and `target` (empty origin for path-only links).
    fn mac(&self, origin: &str, target: &str) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail for 32 bytes; a failure would
        // be a bug in `hmac`, and an all-zero-key MAC must never stand in for it.
        let mut mac = match HmacSha256::new_from_slice(self.bytes()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        };
        mac.update(origin.as_bytes());
        mac.update(target.as_bytes());
        mac
    }
}

/// `http://` or `https://`, then a non-empty authority with no path, query or fragment.
fn check_origin(origin: &str) -> Result<(), SignError> {
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or(SignError::BadOrigin)?;
    let well_formed = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if well_formed {
        Ok(())
    } else {
        Err(SignError::BadOrigin)
    }
}

/// The system clock in Unix seconds (0 before 1970): the clock signed links are checked by,
/// and the one to compute a link's times from.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests;
