//! Application-defined sections, kept raw with their line numbers.

use std::str::FromStr;
use std::time::Duration;

use super::error::{ConfigError, ErrorKind};
use super::value;
use super::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
struct RawValue {
    key: String,
    value: String,
    line: usize,
}

/// A raw application section (registered with
/// [`ConfigLoader::section`](super::ConfigLoader::section)); its typed getters
/// report errors with file, line and key.
///
/// A section that appears several times in the file is merged into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    name: String,
    file: String,
    values: Vec<RawValue>,
}

impl Section {
    pub(crate) fn new(name: &str, file: &str) -> Self {
        Section {
            name: name.to_owned(),
            file: file.to_owned(),
            values: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, key: &str, value: &str, line: usize) {
        self.values.push(RawValue {
            key: key.to_owned(),
            value: value.to_owned(),
            line,
        });
    }

    fn find(&self, key: &str) -> Option<&RawValue> {
        self.values.iter().find(|v| v.key == key)
    }

    /// The section name, without brackets.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key` as written (unquoted, `${VAR}` expanded), or `None`.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.find(key).map(|v| v.value.as_str())
    }

    /// The 1-based line `key` was set on, or `None`.
    pub fn line(&self, key: &str) -> Option<usize> {
        self.find(key).map(|v| v.line)
    }

    /// The value of `key` parsed with [`FromStr`], or `None` when absent.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] of kind [`ErrorKind::InvalidValue`] naming the file,
    /// line and key when the value does not parse, with the message
    /// `expected <type>, got "<value>"`.
    pub fn get<T: FromStr>(&self, key: &str) -> Result<Option<T>> {
        let Some(v) = self.find(key) else {
            return Ok(None);
        };
        v.value.parse().map(Some).map_err(|_| {
            let what = value::short_type_name(std::any::type_name::<T>());
            self.invalid_value(v, &what)
        })
    }

    /// Like [`get`](Self::get), with `default` when the key is absent.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get): the value is present but does not parse.
    pub fn get_or<T: FromStr>(&self, key: &str, default: T) -> Result<T> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// A duration (`30`, `1.5s`, `500ms`, `10m`, `2h`, `1d`; a bare number is
    /// seconds), or `None` when absent.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the file, line and key when the value is not a
    /// valid duration (including an empty value).
    pub fn duration(&self, key: &str) -> Result<Option<Duration>> {
        let Some(v) = self.find(key) else {
            return Ok(None);
        };
        value::duration(&v.value)
            .map(Some)
            .map_err(|expected| self.invalid_value(v, &expected.0))
    }

    /// The keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|v| v.key.as_str())
    }

    /// An error about `key` carrying this section's file and the key's line,
    /// for application-level validation (`message` says what was expected).
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let err = ConfigError::new(ErrorKind::InvalidValue, &self.file, message)
            .in_section(&self.name)
            .for_key(key);
        match self.line(key) {
            Some(line) => err.at_line(line),
            None => err,
        }
    }

    fn invalid_value(&self, v: &RawValue, what: &str) -> ConfigError {
        self.error(&v.key, format!("expected {what}, got {:?}", v.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> Section {
        let mut s = Section::new("example", "app.ini");
        s.push("count", "42", 3);
        s.push("name", "hello", 4);
        s.push("bad", "x1", 5);
        s.push("wait", "1.5s", 6);
        s
    }

    #[test]
    fn getters() -> Result<()> {
        let s = section();
        assert_eq!(s.name(), "example");
        assert_eq!(s.raw("name"), Some("hello"));
        assert_eq!(s.raw("nope"), None);
        assert_eq!(s.line("bad"), Some(5));
        assert_eq!(s.get::<u64>("count")?, Some(42));
        assert_eq!(s.get::<String>("name")?.as_deref(), Some("hello"));
        assert_eq!(s.get::<u64>("nope")?, None);
        assert_eq!(s.get_or::<u64>("nope", 7)?, 7);
        assert_eq!(s.duration("wait")?, Some(Duration::from_millis(1500)));
        assert_eq!(s.duration("nope")?, None);
        assert_eq!(
            s.keys().collect::<Vec<_>>(),
            ["count", "name", "bad", "wait"]
        );
        Ok(())
    }

    #[test]
    fn errors_name_line_and_key() {
        let s = section();
        let err = s.get::<u64>("bad").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("app.ini:5: [example] bad: expected u64, got \"x1\"")
        );
        let err = s
            .get::<std::net::IpAddr>("name")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("app.ini:4: [example] name: expected IpAddr, got \"hello\"")
        );
        let err = s.duration("name").err();
        assert_eq!(err.as_ref().and_then(ConfigError::line), Some(4));
        assert_eq!(err.as_ref().and_then(ConfigError::key), Some("name"));
        let err = s.error("missing", "expected a value").to_string();
        assert_eq!(err, "app.ini: [example] missing: expected a value");
    }
}
