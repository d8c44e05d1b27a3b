//! The INI tokenizer: turns text into section headers and `key = value`
//! entries with their line numbers, unquoting values and expanding `${VAR}`.
//! It knows nothing about which sections or keys exist; see `typed.rs`.

use std::collections::HashMap;

use super::error::{ConfigError, ErrorKind};

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) line: usize,
    pub(crate) section: String,
    /// `Some("default")` for `default[host]`.
    pub(crate) pool: Option<String>,
    /// `host` for `default[host]`.
    pub(crate) key: String,
    pub(crate) value: String,
}

impl Entry {
    /// The key as written: `host` or `default[host]`.
    pub(crate) fn full_key(&self) -> String {
        match &self.pool {
            Some(pool) => format!("{pool}[{}]", self.key),
            None => self.key.clone(),
        }
    }
}

/// A parsed line, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// `[name]` on `line`.
    Header { name: String, line: usize },
    /// `key = value`.
    Entry(Entry),
}

/// Reads the environment; swapped out in tests.
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment (unset and non-UTF-8 variables are both `None`).
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

struct Parser<'a> {
    file: &'a str,
    env: EnvLookup<'a>,
    line: usize,
}

impl Parser<'_> {
    fn syntax(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(ErrorKind::Syntax, self.file, message).at_line(self.line)
    }
}

/// Parses `text` (from `file`, used in errors) into headers and entries.
///
/// A leading UTF-8 BOM and `\r\n` line endings are accepted. Duplicate keys
/// within a section are rejected, even across repeated headers.
pub(crate) fn parse(text: &str, file: &str, env: EnvLookup<'_>) -> Result<Vec<Item>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser { file, env, line: 0 };
    let mut items = Vec::new();
    let mut section: Option<String> = None;
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for (index, raw_line) in text.split('\n').enumerate() {
        p.line = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line).trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = parse_header(&p, rest)?;
            section = Some(name.clone());
            items.push(Item::Header { name, line: p.line });
            continue;
        }
        let Some((raw_key, raw_value)) = line.split_once('=') else {
            return Err(p.syntax(format!(
                "expected `key = value`, a [section] header or a comment, got {line:?}"
            )));
        };
        let (pool, key) = parse_key(&p, raw_key.trim())?;
        let Some(section) = section.clone() else {
            return Err(p
                .syntax("key outside of any section; add a [section] header above it")
                .for_key(raw_key.trim()));
        };
        let mut entry = Entry {
            line: p.line,
            section,
            pool,
            key,
            value: String::new(),
        };
        entry.value = parse_value(&p, raw_value)
            .map_err(|e| e.in_section(&entry.section).for_key(&entry.full_key()))?;
        if let Some(first) = seen.insert((entry.section.clone(), entry.full_key()), p.line) {
            return Err(ConfigError::new(
                ErrorKind::DuplicateKey,
                file,
                format!("duplicate key (first set on line {first})"),
            )
            .at_line(p.line)
            .in_section(&entry.section)
            .for_key(&entry.full_key()));
        }
        items.push(Item::Entry(entry));
    }
    Ok(items)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Returns the trimmed name of `[name]`; `rest` is the text after `[`.
fn parse_header(p: &Parser<'_>, rest: &str) -> Result<String, ConfigError> {
    let Some((name, after)) = rest.split_once(']') else {
        return Err(p.syntax("unterminated section header; expected `[name]`"));
    };
    if !is_comment_or_empty(after) {
        return Err(p.syntax(format!(
            "unexpected text after section header: {:?}",
            after.trim()
        )));
    }
    let name = name.trim();
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(p.syntax(format!(
            "invalid section name {name:?}; expected letters, digits, `_`, `-` or `.`"
        )));
    }
    Ok(name.to_owned())
}

/// Splits `default[host]` into (`Some("default")`, `"host"`), `host` into (`None`, `"host"`).
fn parse_key(p: &Parser<'_>, key: &str) -> Result<(Option<String>, String), ConfigError> {
    let bad = |what: &str| {
        p.syntax(format!(
            "invalid key {key:?}: {what}; expected `name` or `pool[name]` made of letters, digits, `_`, `-` or `.`"
        ))
    };
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    let (pool, name) = match key.split_once('[') {
        Some((pool, rest)) => {
            let Some(inner) = rest.strip_suffix(']') else {
                return Err(bad("`[` without a closing `]` at the end"));
            };
            (Some(pool), inner)
        }
        None => (None, key),
    };
    let valid = |s: &str| !s.is_empty() && s.chars().all(is_name_char);
    if !valid(name) || !pool.is_none_or(valid) {
        return Err(bad("unexpected character or empty part"));
    }
    Ok((pool.map(str::to_owned), name.to_owned()))
}

fn is_comment_or_empty(s: &str) -> bool {
    let s = s.trim();
    s.is_empty() || s.starts_with(';') || s.starts_with('#')
}

/// Unquotes (or strips the inline comment from) the text after `=`, then
/// expands `${VAR}` (except in single-quoted values).
fn parse_value(p: &Parser<'_>, raw: &str) -> Result<String, ConfigError> {
    let trimmed = raw.trim_start();
    if let Some(body) = trimmed.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    let after = &body[i + 1..];
                    if !is_comment_or_empty(after) {
                        return Err(p.syntax(format!(
                            "unexpected text after closing quote: {:?}",
                            after.trim()
                        )));
                    }
                    return interpolate(p, &out);
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => out.push(e),
                    Some((_, other)) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => out.push('\\'),
                },
                _ => out.push(c),
            }
        }
        return Err(p.syntax("unterminated double-quoted value; expected a closing `\"`"));
    }
    if let Some(body) = trimmed.strip_prefix('\'') {
        let Some((inner, after)) = body.split_once('\'') else {
            return Err(p.syntax("unterminated single-quoted value; expected a closing `'`"));
        };
        if !is_comment_or_empty(after) {
            return Err(p.syntax(format!(
                "unexpected text after closing quote: {:?}",
                after.trim()
            )));
        }
        return Ok(inner.to_owned());
    }
    // Unquoted: ` ;` / ` #` (whitespace before the marker) starts a comment.
    let mut cut = raw.len();
    let mut prev_space = false;
    for (i, c) in raw.char_indices() {
        if prev_space && (c == ';' || c == '#') {
            cut = i;
            break;
        }
        prev_space = c.is_whitespace();
    }
    interpolate(p, raw[..cut].trim())
}

/// Expands `${VAR}` and `${VAR:-fallback}` (fallback when unset or empty).
fn interpolate(p: &Parser<'_>, value: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(p.syntax("unterminated `${`; expected `${VAR}` or `${VAR:-fallback}`"));
        };
        let inner = &after[..end];
        let (name, fallback) = match inner.split_once(":-") {
            Some((name, fallback)) => (name, Some(fallback)),
            None => (inner, None),
        };
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(p.syntax(format!(
                "invalid environment variable reference `${{{inner}}}`; expected `${{NAME}}` or `${{NAME:-fallback}}`"
            )));
        }
        match ((p.env)(name), fallback) {
            (Some(v), Some(_)) if !v.is_empty() => out.push_str(&v),
            (Some(v), None) => out.push_str(&v),
            (_, Some(fallback)) => out.push_str(fallback),
            (None, None) => {
                return Err(ConfigError::new(
                    ErrorKind::MissingEnvVar,
                    p.file,
                    format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} to give a fallback)"
                    ),
                )
                .at_line(p.line));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn parse_ok(text: &str) -> Vec<Item> {
        match parse(text, "t.ini", &env) {
            Ok(items) => items,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn values(text: &str) -> Vec<(String, String)> {
        parse_ok(text)
            .into_iter()
            .filter_map(|i| match i {
                Item::Entry(e) => Some((e.full_key(), e.value)),
                Item::Header { .. } => None,
            })
            .collect()
    }

    fn err(text: &str) -> String {
        match parse(text, "t.ini", &env) {
            Ok(items) => panic!("expected an error, got {items:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn values_and_comments() {
        let text = "; c\n# c\n[s] ; c\na = 1\n  b=  two words  \nc = x ; note\nd = x;y#z\n\
                    e = \"a ; b \\\" \\\\ \\n\" ; c\nf = 'lit ${X} \"' # c\ng =\nh = http://h/#frag\n\
                    p[k] = v\n";
        assert_eq!(
            values(text),
            vec![
                kv("a", "1"),
                kv("b", "two words"),
                kv("c", "x"),
                kv("d", "x;y#z"),
                kv("e", "a ; b \" \\ \\n"),
                kv("f", "lit ${X} \""),
                kv("g", ""),
                kv("h", "http://h/#frag"),
                kv("p[k]", "v"),
            ]
        );
    }

    #[test]
    fn bom_crlf_and_lines() {
        let items = parse_ok("\u{feff}[a]\r\n\r\nk = v\r\n");
        assert_eq!(
            items[0],
            Item::Header {
                name: "a".into(),
                line: 1
            }
        );
        let Item::Entry(e) = &items[1] else {
            panic!("expected an entry")
        };
        assert_eq!((e.line, e.value.as_str()), (3, "v"));
    }

    #[test]
    fn interpolation() {
        let text = "[s]\na = ${SET}\nb = x${SET}y${SET}\nc = ${UNSET:-fb}\nd = ${EMPTY:-fb}\n\
                    e = ${EMPTY}\nf = \"${SET} ;\"\ng = ${SET:-}\n";
        assert_eq!(
            values(text),
            vec![
                kv("a", "value"),
                kv("b", "xvalueyvalue"),
                kv("c", "fb"),
                kv("d", "fb"),
                kv("e", ""),
                kv("f", "value ;"),
                kv("g", "value"),
            ]
        );
        assert_eq!(
            err("[s]\n\nk = ${NOPE}\n"),
            "t.ini:3: [s] k: environment variable NOPE is not set (write ${NOPE:-default} to give a fallback)"
        );
        assert!(err("[s]\nk = ${NOPE\n").starts_with("t.ini:2: [s] k: unterminated"));
        assert!(err("[s]\nk = ${1X}\n").starts_with("t.ini:2: [s] k: invalid environment"));
    }

    #[test]
    fn syntax_errors() {
        assert!(err("[s]\njunk\n").starts_with("t.ini:2: expected `key = value`"));
        assert!(err("k = v\n").starts_with("t.ini:1: k: key outside of any section"));
        assert!(err("[s\n").starts_with("t.ini:1: unterminated section header"));
        assert!(err("[]\n").starts_with("t.ini:1: invalid section name"));
        assert!(err("[a b]\n").starts_with("t.ini:1: invalid section name"));
        assert!(err("[s] x\n").starts_with("t.ini:1: unexpected text after section header"));
        assert!(err("[s]\n= v\n").starts_with("t.ini:2: invalid key \"\""));
        assert!(err("[s]\na b = v\n").starts_with("t.ini:2: invalid key \"a b\""));
        assert!(err("[s]\np[k = v\n").starts_with("t.ini:2: invalid key"));
        assert!(err("[s]\np[] = v\n").starts_with("t.ini:2: invalid key"));
        assert!(err("[s]\n[k] = v\n").starts_with("t.ini:2: unexpected text after section header"));
        assert!(err("[s]\nk = \"abc\n").starts_with("t.ini:2: [s] k: unterminated double-quoted"));
        assert!(err("[s]\nk = 'abc\n").starts_with("t.ini:2: [s] k: unterminated single-quoted"));
        assert!(
            err("[s]\nk = \"a\" b\n").starts_with("t.ini:2: [s] k: unexpected text after closing")
        );
    }

    #[test]
    fn duplicates() {
        assert_eq!(
            err("[s]\na = 1\n[t]\na = 1\n[s]\nb = 2\na = 3\n"),
            "t.ini:7: [s] a: duplicate key (first set on line 2)"
        );
        assert_eq!(values("[s]\np[a] = 1\nq[a] = 2\n").len(), 2);
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            "",
            "\n\n",
            "[",
            "]",
            "=",
            "[s]\n=",
            "[s]\nk=\"\\",
            "[s]\nk=${",
            "\u{feff}",
            "[s]\nk=é\"",
            "[é]",
        ] {
            let _ = parse(text, "t.ini", &env);
        }
    }
}
