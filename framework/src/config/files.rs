//! The `[files]` section: uploads ([`Multipart`](crate::files::Multipart)) and temporary
//! files ([`TempFiles`](crate::files::TempFiles)).

use std::path::PathBuf;
use std::time::Duration;

use super::value::{self, Expected, ValueResult};
use super::Config;

/// The keys `[files]` accepts, for unknown-key errors and their did-you-mean.
pub(crate) const FILES_KEYS: &[&str] = &[
    "dir",
    "max_file_bytes",
    "max_request_bytes",
    "max_files",
    "max_fields",
    "max_field_bytes",
    "allowed_types",
    "owner_quota",
    "sweep_interval",
    "route",
    "redis_connection_pool",
];

/// What `allowed_types` is when not set: common images, PDF and plain text. HTML, SVG and
/// scripts are left out on purpose: they are active content if a browser ever renders them.
pub const DEFAULT_ALLOWED_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
];

const MIB: u64 = 1 << 20;
const TIB: u64 = 1 << 40;

/// The `[files]` section: where uploads go, how large they may be, and how temporary files
/// are kept and served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesConfig {
    /// `dir`: the directory files are written under (uploads in `{dir}/uploads/`, temporary
    /// files in `{dir}/temp/`), relative to the working directory unless absolute; default
    /// `storage/files`. With several servers it must be one directory they all share (a
    /// network volume): a file stored through one server is served by any.
    pub dir: PathBuf,
    /// `max_file_bytes`: the largest uploaded file, a size of 1 byte..=1 TiB; default 10 MiB.
    pub max_file_bytes: u64,
    /// `max_request_bytes`: the largest multipart request body, files, fields and framing
    /// together, a size of 1 byte..=1 TiB; default 32 MiB.
    pub max_request_bytes: u64,
    /// `max_files`: file parts in one request, 1..=1000; default 16.
    pub max_files: usize,
    /// `max_fields`: text (non-file) parts in one request, 0..=1000; default 64.
    pub max_fields: usize,
    /// `max_field_bytes`: the largest text part, kept in memory, 0..=16 MiB; default 64 KiB.
    pub max_field_bytes: usize,
    /// `allowed_types`: the media types a file part may declare, separated by commas; `type/*`
    /// allows a whole type, `*/*` everything; default [`DEFAULT_ALLOWED_TYPES`].
    pub allowed_types: Vec<String>,
    /// `owner_quota`: the bytes of temporary files one owner (a session, a room) may hold at
    /// once, a size >= 1 byte; default 100 MiB.
    pub owner_quota: u64,
    /// `sweep_interval`: how often expired temporary files are removed from disk, >= 100 ms;
    /// default 60 s.
    pub sweep_interval: Duration,
    /// `route`: where temporary files are served, as `{route}/{id}` with a signed query; a
    /// path starting with `/`, without parameters or a trailing `/`; default `/files`.
    pub route: String,
    /// `redis_connection_pool`: the `[redis]` pool of the temporary files' records; default
    /// none, meaning `[session] redis_connection_pool`.
    pub redis_connection_pool: Option<String>,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            dir: PathBuf::from("storage/files"),
            max_file_bytes: 10 * MIB,
            max_request_bytes: 32 * MIB,
            max_files: 16,
            max_fields: 64,
            max_field_bytes: 64 * 1024,
            allowed_types: DEFAULT_ALLOWED_TYPES
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            owner_quota: 100 * MIB,
            sweep_interval: Duration::from_secs(60),
            route: "/files".to_owned(),
            redis_connection_pool: None,
        }
    }
}

impl Config {
    /// The name of the `[redis]` pool the temporary files' records use: `[files]
    /// redis_connection_pool`, or the sessions' pool when it is not set.
    pub fn files_pool_name(&self) -> &str {
        self.files
            .redis_connection_pool
            .as_deref()
            .unwrap_or(&self.session.redis_connection_pool)
    }
}

/// Parses one `[files]` entry into `files`; `Ok(false)` for an unknown key.
pub(crate) fn parse_key(files: &mut FilesConfig, key: &str, v: &str) -> ValueResult<bool> {
    match key {
        "dir" => {
            let dir = super::validate::non_empty(v, "a directory path")?;
            if dir.contains('\0') {
                return Err(Expected::new("a directory path"));
            }
            files.dir = PathBuf::from(dir);
        }
        "max_file_bytes" => files.max_file_bytes = value::size_in(v, 1, TIB)? as u64,
        "max_request_bytes" => files.max_request_bytes = value::size_in(v, 1, TIB)? as u64,
        "max_files" => files.max_files = value::count(v, 1, 1000)?,
        "max_fields" => files.max_fields = value::count(v, 0, 1000)?,
        "max_field_bytes" => files.max_field_bytes = value::size_in(v, 0, 16 * MIB)?,
        "allowed_types" => files.allowed_types = media_types(v)?,
        "owner_quota" => files.owner_quota = value::size_in(v, 1, u64::MAX)? as u64,
        "sweep_interval" => {
            files.sweep_interval = value::duration(v)
                .ok()
                .filter(|d| *d >= Duration::from_millis(100))
                .ok_or_else(|| Expected::new("a duration of at least 100ms"))?;
        }
        "route" => files.route = route(v)?,
        "redis_connection_pool" => {
            files.redis_connection_pool =
                Some(super::validate::non_empty(v, "the name of a [redis] pool")?);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `image/png, image/*, */*`: lowercase `type/subtype` tokens, `*` only as a whole subtype
/// (or `*/*`).
fn media_types(v: &str) -> ValueResult<Vec<String>> {
    let bad =
        || Expected::new("media types separated by commas, such as image/png, image/*, text/plain");
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let mut out = Vec::new();
    for item in v.split(',') {
        let item = item.trim().to_ascii_lowercase();
        let (kind, sub) = item.split_once('/').ok_or_else(bad)?;
        let valid = (kind == "*" && sub == "*") || (token(kind) && (sub == "*" || token(sub)));
        if !valid {
            return Err(bad());
        }
        if !out.contains(&item) {
            out.push(item);
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// A route prefix: `/` and at least one more character, no parameters, query, fragment,
/// spaces or trailing `/`.
fn route(v: &str) -> ValueResult<String> {
    let valid = v.len() > 1
        && v.starts_with('/')
        && !v.ends_with('/')
        && !v.contains(['{', '}', '?', '#'])
        && v.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(v.to_owned())
    } else {
        Err(Expected::new(
            "a path starting with / (no parameters, query, spaces or trailing /), such as /files",
        ))
    }
}

/// With Redis sessions, the records' pool must exist (sessions on `auto` or `memory` keep
/// the records in process, so a missing pool is no error then).
pub(crate) fn cross_check(config: &Config, pool_line: Option<usize>) -> super::Result<()> {
    let pool = config.files.redis_connection_pool.as_deref();
    super::pools::check_named_pool(config, "files", pool, pool_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed key parses, and the defaults are the documented ones.
    #[test]
    fn keys_parse_and_defaults() {
        let mut files = FilesConfig::default();
        assert_eq!(files.max_file_bytes, 10 << 20);
        assert_eq!(files.route, "/files");
        for key in FILES_KEYS {
            let sample = match *key {
                "dir" => "/srv/files",
                "allowed_types" => "Image/PNG, image/*",
                "sweep_interval" => "250ms",
                "route" => "/dl",
                "redis_connection_pool" => "files",
                "max_files" | "max_fields" => "3",
                _ => "3k",
            };
            assert_eq!(parse_key(&mut files, key, sample), Ok(true), "{key}");
        }
        assert_eq!(files.allowed_types, ["image/png", "image/*"]);
        assert_eq!((files.max_fields, files.max_field_bytes), (3, 3072));
        assert_eq!(parse_key(&mut files, "nope", "1"), Ok(false));
    }

    #[test]
    fn refused_values() {
        let mut files = FilesConfig::default();
        for (key, bad) in [
            ("allowed_types", "png"),
            ("allowed_types", "image/png,"),
            ("allowed_types", "*/png"),
            ("allowed_types", "image/p ng"),
            ("route", "/"),
            ("route", "files"),
            ("route", "/files/"),
            ("route", "/files/{id}"),
            ("sweep_interval", "10ms"),
            ("max_file_bytes", "0"),
            ("max_files", "0"),
            ("dir", ""),
        ] {
            assert!(parse_key(&mut files, key, bad).is_err(), "{key} = {bad}");
        }
        assert_eq!(media_types("*/*"), Ok(vec!["*/*".to_owned()]));
    }
}
