//! Signatures of the HTTP API (`POST /apps/{app_id}/events` and friends).
//!
//! Publishers (Laravel through pusher-http-php, pusher-http-node, …) authenticate each request
//! with query parameters: `auth_key`, `auth_timestamp` (Unix seconds), `auth_version=1.0`,
//! `body_md5` (hex MD5 of the body, required when there is one) and `auth_signature`, the hex
//! HMAC-SHA256 under the app secret of
//!
//! ```text
//! <METHOD upper-case>\n<path>\n<every other query parameter, keys lower-cased, sorted, key=value joined by &>
//! ```
//!
//! The parameters are signed *decoded* (Pusher: "the string must not be URL-escaped"), so the
//! verifier decodes the query as form encoding before rebuilding the string. The MD5 binds the
//! body to the signature; the timestamp (accepted within 600 s either way, as Pusher does)
//! limits how long a captured request can be replayed.

use md5::{Digest, Md5};

use super::auth::{hex_encode, Credentials};
use super::query::{parse_query, percent_encode, QueryError};

/// The only `auth_version` there is.
pub const AUTH_VERSION: &str = "1.0";
/// How far `auth_timestamp` may be from the server's clock, either way (Pusher: 600 s).
pub const MAX_TIMESTAMP_SKEW_SECS: u64 = 600;

const RESERVED: [&str; 5] = [
    "auth_key",
    "auth_timestamp",
    "auth_version",
    "auth_signature",
    "body_md5",
];

/// The parts of an HTTP request covered by its signature.
#[derive(Clone, Copy, Debug)]
pub struct SignedRequest<'a> {
    /// The method, in any case (`POST`).
    pub method: &'a str,
    /// The path exactly as requested, without the query (`/apps/3/events`).
    pub path: &'a str,
    /// The raw query string, without the `?`.
    pub query: &'a str,
    /// The raw body (empty for GET).
    pub body: &'a [u8],
}

/// Why an HTTP API request was not authenticated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestAuthError {
    /// The query string could not be decoded.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A parameter appears twice (keys compared lower-cased), which makes the signed string
    /// ambiguous.
    #[error("query parameter {0} appears more than once")]
    DuplicateParam(String),
    /// A required parameter is absent (`body_md5` only when there is a body).
    #[error("missing query parameter {0}")]
    MissingParam(&'static str),
    /// `auth_key` is not this app's key.
    #[error("auth_key does not belong to this app")]
    WrongKey,
    /// `auth_version` is not `1.0`.
    #[error("unsupported auth_version {0:?}, expected \"1.0\"")]
    UnsupportedVersion(String),
    /// `auth_timestamp` is not a whole number of seconds.
    #[error("auth_timestamp is not a Unix time in seconds")]
    InvalidTimestamp,
    /// `auth_timestamp` is too far from the server's clock.
    #[error("auth_timestamp {timestamp} is more than {max_skew} s from the server time {now}")]
    StaleTimestamp {
        /// The request's timestamp.
        timestamp: u64,
        /// The server's time.
        now: u64,
        /// The allowed difference.
        max_skew: u64,
    },
    /// `body_md5` is not the MD5 of the body.
    #[error("body_md5 does not match the request body")]
    BodyMd5Mismatch,
    /// `auth_signature` is wrong.
    #[error("invalid auth_signature")]
    InvalidSignature,
}

impl RequestAuthError {
    /// The HTTP status to answer with: 400 for an undecodable query, 401 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Self::Query(_) | Self::DuplicateParam(_) => 400,
            _ => 401,
        }
    }
}

/// Authenticates an HTTP API request. On success returns its decoded query parameters
/// (keys lower-cased, sorted, `auth_signature` removed) for the handler to read.
pub fn verify_request(
    request: &SignedRequest<'_>,
    credentials: &Credentials,
    now_unix_secs: u64,
    max_skew_secs: u64,
) -> Result<Vec<(String, String)>, RequestAuthError> {
    let mut params = parse_query(request.query)?;
    for (key, _) in &mut params {
        key.make_ascii_lowercase();
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = params.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(RequestAuthError::DuplicateParam(pair[0].0.clone()));
    }
    let get = |key: &'static str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .ok_or(RequestAuthError::MissingParam(key))
    };
    let signature = get("auth_signature")?;
    if get("auth_key")? != credentials.key() {
        return Err(RequestAuthError::WrongKey);
    }
    let version = get("auth_version")?;
    if version != AUTH_VERSION {
        return Err(RequestAuthError::UnsupportedVersion(version.to_owned()));
    }
    let timestamp: u64 = get("auth_timestamp")?
        .parse()
        .map_err(|_| RequestAuthError::InvalidTimestamp)?;
    if timestamp.abs_diff(now_unix_secs) > max_skew_secs {
        return Err(RequestAuthError::StaleTimestamp {
            timestamp,
            now: now_unix_secs,
            max_skew: max_skew_secs,
        });
    }
    match get("body_md5") {
        Ok(md5) if !md5.eq_ignore_ascii_case(&body_md5(request.body)) => {
            return Err(RequestAuthError::BodyMd5Mismatch)
        }
        Err(missing) if !request.body.is_empty() => return Err(missing),
        _ => {}
    }
    let signed = string_to_sign(
        request.method,
        request.path,
        params.iter().filter(|(k, _)| k != "auth_signature"),
    );
    if !credentials.signature_matches(&[signed.as_bytes()], signature) {
        return Err(RequestAuthError::InvalidSignature);
    }
    params.retain(|(k, _)| k != "auth_signature");
    Ok(params)
}

/// Builds the signed query string for a request, as a publisher would: `params` plus the
/// auth parameters, percent-encoded, ending with `auth_signature`. Entries of `params` named
/// like an auth parameter are ignored (those are always computed here).
pub fn sign_request(
    credentials: &Credentials,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &[u8],
    timestamp: u64,
) -> String {
    let timestamp = timestamp.to_string();
    let md5 = body_md5(body);
    let mut all: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .collect();
    all.push(("auth_key".into(), credentials.key().to_owned()));
    all.push(("auth_timestamp".into(), timestamp));
    all.push(("auth_version".into(), AUTH_VERSION.into()));
    if !body.is_empty() {
        all.push(("body_md5".into(), md5));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let signature = credentials.sign(&[string_to_sign(method, path, all.iter()).as_bytes()]);
    let mut query: Vec<String> = all
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    query.push(format!("auth_signature={signature}"));
    query.join("&")
}

/// Hex MD5 of a request body, the `body_md5` parameter.
pub fn body_md5(body: &[u8]) -> String {
    hex_encode(&Md5::digest(body))
}

/// `"<METHOD>\n<path>\n<k=v&…>"` from parameters already lower-cased and sorted.
fn string_to_sign<'a>(
    method: &str,
    path: &str,
    params: impl Iterator<Item = &'a (String, String)>,
) -> String {
    let query: Vec<String> = params.map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path,
        query.join("&")
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
