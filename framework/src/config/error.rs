//! The error type of the config module.

use std::fmt;

/// What went wrong, for callers that want to react to a class of error.
///
/// The human-readable detail is in [`ConfigError::message`] and in the
/// one-line `Display` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read (missing, unreadable).
    Io,
    /// A line that is neither a comment, a `[section]` header nor `key = value`,
    /// a malformed header, key or quoted value, or text that is not UTF-8.
    Syntax,
    /// A `[section]` header that is neither built in nor registered.
    UnknownSection,
    /// A key the section does not know.
    UnknownKey,
    /// The same key set twice in one section.
    DuplicateKey,
    /// A value that does not parse or is out of range.
    InvalidValue,
    /// A required value that is empty.
    EmptyValue,
    /// `${VAR}` naming an environment variable that is not set.
    MissingEnvVar,
    /// `[session] redis_connection_pool` names a pool that `[redis]` does not define.
    MissingPool,
    /// Two settings that are fine on their own but not together.
    Conflict,
    /// A setting the deployment needs and the file lacks (`[app] key` in production, when
    /// something signs links).
    Missing,
}

/// An error loading or validating `config.ini`.
///
/// Every error says where it comes from — file, line, section and key — so the
/// person editing the file can go straight to the offending line. `Display`
/// gives one line such as
/// `config.ini:12: [session] cookie_samesite: expected one of lax, strict, none, got "loose"`.
#[derive(thiserror::Error)]
pub struct ConfigError {
    // Boxed so that `Result<T, ConfigError>` stays small.
    detail: Box<Detail>,
    #[source]
    source: Option<std::io::Error>,
}

#[derive(Debug)]
struct Detail {
    kind: ErrorKind,
    file: String,
    line: Option<usize>,
    section: Option<String>,
    key: Option<String>,
    message: String,
}

impl ConfigError {
    /// A new error not tied to a line; add the location with `at_line` etc.
    pub(crate) fn new(kind: ErrorKind, file: &str, message: impl Into<String>) -> Self {
        ConfigError {
            detail: Box::new(Detail {
                kind,
                file: file.to_owned(),
                line: None,
                section: None,
                key: None,
                message: message.into(),
            }),
            source: None,
        }
    }

    /// An error reading the file.
    pub(crate) fn io(file: &str, source: std::io::Error) -> Self {
        let text = source.to_string();
        // "No such file or directory (os error 2)" -> "No such file or directory"
        let reason = match text.rfind(" (os error ") {
            Some(at) if text.ends_with(')') => text[..at].to_owned(),
            _ => text,
        };
        ConfigError {
            source: Some(source),
            ..ConfigError::new(ErrorKind::Io, file, reason)
        }
    }

    pub(crate) fn at_line(mut self, line: usize) -> Self {
        self.detail.line = Some(line);
        self
    }

    pub(crate) fn in_section(mut self, section: &str) -> Self {
        self.detail.section = Some(section.to_owned());
        self
    }

    pub(crate) fn for_key(mut self, key: &str) -> Self {
        self.detail.key = Some(key.to_owned());
        self
    }

    /// The class of error.
    pub fn kind(&self) -> ErrorKind {
        self.detail.kind
    }

    /// The file as given to the loader, or `"<string>"`-style origin for parsed text.
    pub fn file(&self) -> &str {
        &self.detail.file
    }

    /// The 1-based line, or `None` when the problem is not tied to one line
    /// (the file is missing, or a defaulted setting refers to something absent).
    pub fn line(&self) -> Option<usize> {
        self.detail.line
    }

    /// The section name (without brackets), when known.
    pub fn section(&self) -> Option<&str> {
        self.detail.section.as_deref()
    }

    /// The key, when the error is about one (`default[host]` for Redis pool keys).
    pub fn key(&self) -> Option<&str> {
        self.detail.key.as_deref()
    }

    /// What was expected, without the location prefix.
    pub fn message(&self) -> &str {
        &self.detail.message
    }
}

/// The same text as `Display` (file, line, section, key and what is wrong): a `main` that
/// returns `Result<(), Box<dyn Error>>` prints errors with `Debug`, and a struct dump would
/// hide the one line a person needs.
impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.detail;
        if d.kind == ErrorKind::Io {
            return write!(f, "cannot read {}: {}", d.file, d.message);
        }
        f.write_str(&d.file)?;
        if let Some(line) = d.line {
            write!(f, ":{line}")?;
        }
        f.write_str(":")?;
        match (&d.section, &d.key) {
            (Some(section), Some(key)) => write!(f, " [{section}] {key}:")?,
            (Some(section), None) => write!(f, " [{section}]:")?,
            (None, Some(key)) => write!(f, " {key}:")?,
            (None, None) => {}
        }
        write!(f, " {}", d.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let e = ConfigError::new(
            ErrorKind::InvalidValue,
            "config.ini",
            "expected x, got \"y\"",
        )
        .at_line(12)
        .in_section("session")
        .for_key("cookie_samesite");
        assert_eq!(
            e.to_string(),
            "config.ini:12: [session] cookie_samesite: expected x, got \"y\""
        );
        assert_eq!(e.line(), Some(12));
        assert_eq!(e.key(), Some("cookie_samesite"));
        let e = ConfigError::new(ErrorKind::UnknownSection, "c.ini", "unknown section")
            .at_line(7)
            .in_section("sesion");
        assert_eq!(e.to_string(), "c.ini:7: [sesion]: unknown section");
        let e = ConfigError::new(ErrorKind::MissingPool, "c.ini", "no pool")
            .in_section("session")
            .for_key("redis_connection_pool");
        assert_eq!(
            e.to_string(),
            "c.ini: [session] redis_connection_pool: no pool"
        );
        let e = ConfigError::new(ErrorKind::Syntax, "c.ini", "bad").at_line(1);
        assert_eq!(e.to_string(), "c.ini:1: bad");
    }

    #[test]
    fn io_error_strips_os_code() {
        let io = std::io::Error::from_raw_os_error(2);
        let e = ConfigError::io("config.ini", io);
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.to_string().starts_with("cannot read config.ini: "));
        assert!(!e.to_string().contains("os error"));
        assert!(std::error::Error::source(&e).is_some());
    }
}
