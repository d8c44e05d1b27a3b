//! Parsing of individual values: integers, bools, durations, sizes, enum
//! words, plus the did-you-mean helper used for unknown names.

use std::time::Duration;

/// A value that did not parse: what was expected (the found text is the raw value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected(pub(crate) String);

impl Expected {
    pub(crate) fn new(what: impl Into<String>) -> Self {
        Expected(what.into())
    }
}

pub(crate) type ValueResult<T> = Result<T, Expected>;

/// A decimal integer within `min..=max`.
pub(crate) fn int<T>(raw: &str, min: T, max: T) -> ValueResult<T>
where
    T: Copy + Into<i128> + TryFrom<i128> + std::fmt::Display,
{
    let what = || Expected::new(format!("an integer in {min}..={max}"));
    let n: i128 = raw.trim().parse().map_err(|_| what())?;
    if n < min.into() || n > max.into() {
        return Err(what());
    }
    T::try_from(n).map_err(|_| what())
}

/// A decimal `usize` within `min..=max` (`max == usize::MAX` means no upper bound).
pub(crate) fn count(raw: &str, min: usize, max: usize) -> ValueResult<usize> {
    let what = || match max {
        usize::MAX => Expected::new(format!("an integer >= {min}")),
        _ => Expected::new(format!("an integer in {min}..={max}")),
    };
    let n: u128 = raw.trim().parse().map_err(|_| what())?;
    let n = usize::try_from(n).map_err(|_| what())?;
    if n < min || n > max {
        return Err(what());
    }
    Ok(n)
}

/// `true/false/yes/no/on/off/1/0`, case-insensitive.
pub(crate) fn boolean(raw: &str) -> ValueResult<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(Expected::new("a boolean (true/false, yes/no, on/off, 1/0)")),
    }
}

/// One of the given words, case-insensitive. `choices` maps words to values;
/// `shown` is the list printed in the error.
pub(crate) fn word<T: Copy>(raw: &str, choices: &[(&str, T)], shown: &[&str]) -> ValueResult<T> {
    let lower = raw.trim().to_ascii_lowercase();
    choices
        .iter()
        .find(|(w, _)| *w == lower)
        .map(|(_, v)| *v)
        .ok_or_else(|| Expected::new(format!("one of {}", shown.join(", "))))
}

/// A `tracing` filter as `[app] log_level` takes it: comma-separated directives, each a
/// level (`info`) or `target=level` (`my_app=debug`, `rondo[request]=debug`).
///
/// Stricter than `tracing`'s own parser on purpose: there a bare word is a target, so a
/// misspelt level (`verbose`, `warning`) turns every log off without a word, and a filter it
/// cannot parse falls back to `info` just as silently. Here both are start-up errors;
/// `RUST_LOG` still takes the full syntax.
pub(crate) fn log_filter(raw: &str) -> ValueResult<String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let what = || {
        Expected::new(
            "a tracing filter: comma-separated levels (trace, debug, info, warn, error, off) \
             or target=level directives, e.g. info or my_app=debug,info",
        )
    };
    let is_level = |word: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word.trim()));
    let filter = raw.trim();
    if filter.is_empty() {
        return Err(what());
    }
    for directive in filter.split(',') {
        let ok = match directive.rsplit_once('=') {
            Some((target, level)) => !target.trim().is_empty() && is_level(level),
            None => is_level(directive),
        };
        if !ok {
            return Err(what());
        }
    }
    Ok(filter.to_owned())
}

/// Splits `"1.5 kb"` into (`"1.5"`, `"kb"`); the number part may only hold
/// ASCII digits and at most one `.` (so signs, `inf` and `NaN` are rejected).
fn split_number(raw: &str) -> Option<(&str, String)> {
    let s = raw.trim();
    let at = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(at);
    let valid = !num.is_empty()
        && num.bytes().filter(|b| *b == b'.').count() <= 1
        && num.bytes().any(|b| b.is_ascii_digit());
    valid.then(|| (num, suffix.trim().to_ascii_lowercase()))
}

const DURATION_WORDS: &str = "a duration such as 30 (seconds), 1.5s, 500ms, 10m or 2h";

/// A duration: bare seconds (fractions allowed) or with `ms`, `s`, `m`, `h`, `d`.
pub(crate) fn duration(raw: &str) -> ValueResult<Duration> {
    let bad = || Expected::new(DURATION_WORDS);
    let (num, suffix) = split_number(raw).ok_or_else(bad)?;
    let unit = match suffix.as_str() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(n * unit).map_err(|_| bad())
}

/// A duration that must be greater than zero.
pub(crate) fn positive_duration(raw: &str) -> ValueResult<Duration> {
    match duration(raw)? {
        d if d.is_zero() => Err(Expected::new(format!(
            "a duration greater than zero ({DURATION_WORDS})"
        ))),
        d => Ok(d),
    }
}

/// A duration of at least one second: for settings compared with timestamps kept in whole
/// seconds, where anything shorter would act as zero.
pub(crate) fn whole_seconds(raw: &str) -> ValueResult<Duration> {
    match duration(raw)? {
        d if d < Duration::from_secs(1) => Err(Expected::new(format!(
            "a duration of at least 1 second ({DURATION_WORDS})"
        ))),
        d => Ok(d),
    }
}

/// A duration where `0` (or an empty value) means "none".
pub(crate) fn optional_duration(raw: &str) -> ValueResult<Option<Duration>> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    duration(raw).map(|d| (!d.is_zero()).then_some(d))
}

/// A byte size: bare bytes, or with `k`/`kb`/`kib`, `m`.., `g`.., `t`..
/// (all binary multiples, case-insensitive). Fractions need a suffix and are
/// rounded down to whole bytes.
pub(crate) fn size(raw: &str) -> ValueResult<u64> {
    let bad = || Expected::new("a size in bytes such as 65536, 64k, 1.5mb or 1gib");
    let (num, suffix) = split_number(raw).ok_or_else(bad)?;
    let shift = match suffix.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    if num.contains('.') {
        if shift == 0 {
            return Err(bad());
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        let bytes = (n * (1u64 << shift) as f64).floor();
        // u64::MAX as f64 rounds up to 2^64, so `<` keeps the cast in range.
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(bad());
        }
        return Ok(bytes as u64);
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// A size within `min..=max` bytes that fits a `usize`.
pub(crate) fn size_in(raw: &str, min: u64, max: u64) -> ValueResult<usize> {
    let n = size(raw)?;
    let out_of_range = || match max {
        u64::MAX => Expected::new(format!("a size of at least {}", human_size(min))),
        _ => Expected::new(format!(
            "a size between {} and {}",
            human_size(min),
            human_size(max)
        )),
    };
    if n < min || n > max {
        return Err(out_of_range());
    }
    usize::try_from(n).map_err(|_| out_of_range())
}

/// `1024` -> `1 KiB`, `3` -> `3 bytes`, `1536` -> `1536 bytes`.
pub(crate) fn human_size(n: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, unit) in UNITS {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            let insert = cur[j] + 1;
            let delete = prev[j + 1] + 1;
            cur.push(substitute.min(insert).min(delete));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate `input` most likely meant: a case-insensitive match, or the
/// closest one within edit distance 2 (and closer than the input's length).
pub(crate) fn did_you_mean<'a, I>(input: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let candidates: Vec<&str> = candidates.into_iter().collect();
    if let Some(c) = candidates.iter().find(|c| c.eq_ignore_ascii_case(input)) {
        return Some(c);
    }
    let lower = input.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= 2 && *d < input.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `core::option::Option<alloc::string::String>` -> `Option<String>`.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.truncate(segment_start);
        } else if c.is_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push(c);
            segment_start = out.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Levels and `target=level` pass; a bare word that is no level (tracing would take it
    /// for a target and log nothing else) and an empty directive are refused.
    #[test]
    fn log_filters() {
        for good in [
            "info",
            " WARN ",
            "rondo=debug,info",
            "my_app=trace",
            "rondo[request]=debug",
            "off",
        ] {
            assert_eq!(log_filter(good), Ok(good.trim().to_owned()), "{good}");
        }
        for bad in [
            "",
            "verbose",
            "warning",
            "info,",
            "my_app",
            "rondo=loud",
            "=debug",
            "debug=info=x",
        ] {
            assert!(log_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("30"), Ok(secs(30.0)));
        assert_eq!(duration("0.25"), Ok(secs(0.25)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("10m"), Ok(secs(600.0)));
        assert_eq!(duration("2H"), Ok(secs(7200.0)));
        assert_eq!(duration("1d"), Ok(secs(86400.0)));
        assert_eq!(duration(" 5 s "), Ok(secs(5.0)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "-1",
            "NaN",
            "inf",
            "1x",
            "s",
            ".",
            "1.2.3",
            "1e400",
            "+1",
            "99999999999999999999999h",
        ] {
            assert!(duration(bad).is_err(), "{bad:?} should fail");
        }
        assert!(positive_duration("0").is_err());
        assert!(positive_duration("0ms").is_err());
        assert_eq!(optional_duration("0"), Ok(None));
        assert_eq!(optional_duration(""), Ok(None));
        assert_eq!(optional_duration("1m"), Ok(Some(secs(60.0))));
    }

    #[test]
    fn sizes() {
        assert_eq!(size("100"), Ok(100));
        assert_eq!(size("100b"), Ok(100));
        assert_eq!(size("16k"), Ok(16 * 1024));
        assert_eq!(size("16KB"), Ok(16 * 1024));
        assert_eq!(size("16 KiB"), Ok(16 * 1024));
        assert_eq!(size("1m"), Ok(1 << 20));
        assert_eq!(size("1.5mb"), Ok(3 << 19));
        assert_eq!(size("2GiB"), Ok(2 << 30));
        assert_eq!(size("1t"), Ok(1 << 40));
        for bad in ["", "-1", "1.5", "1x", "kb", "99999999999t", "1e3"] {
            assert!(size(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(
            size_in("2m", 1024, 1 << 20),
            Err(Expected::new("a size between 1 KiB and 1 MiB"))
        );
        assert_eq!(human_size(1536), "1536 bytes");
        assert_eq!(human_size(0), "0 bytes");
    }

    #[test]
    fn ints_bools_words() {
        assert_eq!(int::<u16>("8080", 0, u16::MAX), Ok(8080));
        assert_eq!(
            int::<u16>("70000", 0, u16::MAX),
            Err(Expected::new("an integer in 0..=65535"))
        );
        assert_eq!(
            int::<i64>("-1", 0, 10),
            Err(Expected::new("an integer in 0..=10"))
        );
        assert!(int::<u32>("abc", 1, 2).is_err());
        assert_eq!(count("100000", 1, usize::MAX), Ok(100_000));
        assert!(count("0", 1, 10).is_err());
        assert_eq!(
            count("0", 1, usize::MAX),
            Err(Expected::new("an integer >= 1"))
        );
        assert_eq!(
            size_in("1", 1024, u64::MAX),
            Err(Expected::new("a size of at least 1 KiB"))
        );
        for t in ["true", "YES", "on", "1"] {
            assert_eq!(boolean(t), Ok(true));
        }
        for f in ["false", "No", "OFF", "0"] {
            assert_eq!(boolean(f), Ok(false));
        }
        assert!(boolean("maybe").is_err());
        let choices = [("a", 1), ("b", 2)];
        assert_eq!(word("B", &choices, &["a", "b"]), Ok(2));
        assert_eq!(
            word("c", &choices, &["a", "b"]),
            Err(Expected::new("one of a, b"))
        );
    }

    #[test]
    fn suggestions() {
        let keys = ["cookie_name", "cookie_samesite", "store"];
        assert_eq!(
            did_you_mean("cookie_samsite", keys),
            Some("cookie_samesite")
        );
        assert_eq!(did_you_mean("COOKIE_NAME", keys), Some("cookie_name"));
        assert_eq!(did_you_mean("stor", keys), Some("store"));
        assert_eq!(did_you_mean("xyz", keys), None);
        assert_eq!(did_you_mean("ab", ["cd"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn type_names() {
        assert_eq!(short_type_name("u64"), "u64");
        assert_eq!(short_type_name("alloc::string::String"), "String");
        assert_eq!(
            short_type_name("core::option::Option<alloc::vec::Vec<std::net::IpAddr>>"),
            "Option<Vec<IpAddr>>"
        );
        assert_eq!(
            short_type_name("(u8, core::time::Duration)"),
            "(u8, Duration)"
        );
    }
}
