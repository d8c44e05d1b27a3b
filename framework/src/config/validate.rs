//! Checks for string settings: URLs, hosts and cookie attributes.

use std::net::IpAddr;

use super::value::{Expected, ValueResult};
use super::{CookieSecure, SessionConfig};

pub(crate) fn non_empty(v: &str, what: &str) -> ValueResult<String> {
    if v.trim().is_empty() {
        return Err(Expected::new(what));
    }
    Ok(v.trim().to_owned())
}

pub(crate) fn optional(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

pub(crate) fn url(v: &str) -> ValueResult<String> {
    let bad = || Expected::new("a URL starting with http:// or https://");
    let lower = v.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(bad)?;
    if rest.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok(v.to_owned())
}

pub(crate) fn host(v: &str) -> ValueResult<String> {
    let v = v.trim();
    let unbracketed = v
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(v);
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Ok(unbracketed.to_owned());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if v.len() <= 253 && v.split('.').all(label_ok) {
        return Ok(v.to_owned());
    }
    Err(Expected::new("an IP address or host name"))
}

pub(crate) fn cookie_name(v: &str) -> ValueResult<String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if v.is_empty() || !v.chars().all(token) {
        return Err(Expected::new(
            "a cookie name made of letters, digits and !#$%&'*+-.^_`|~",
        ));
    }
    Ok(v.to_owned())
}

pub(crate) fn cookie_path(v: &str) -> ValueResult<String> {
    if !v.starts_with('/') || v.chars().any(|c| c == ';' || c.is_control()) {
        return Err(Expected::new("a path starting with / (without ;)"));
    }
    Ok(v.to_owned())
}

/// A route path for the metrics endpoint, or empty for none.
pub(crate) fn metrics_path(v: &str) -> ValueResult<Option<String>> {
    if v.is_empty() {
        return Ok(None);
    }
    let valid = v.starts_with('/')
        && !v.contains(['{', '}', '?', '#'])
        && v.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(Some(v.to_owned()))
    } else {
        Err(Expected::new(
            "a path starting with / (no parameters, query or spaces), or empty for no metrics",
        ))
    }
}

pub(crate) fn cookie_domain(v: &str) -> ValueResult<Option<String>> {
    if v.is_empty() {
        return Ok(None);
    }
    let bare = v.strip_prefix('.').unwrap_or(v);
    match host(bare) {
        Ok(_) if !bare.contains(':') => Ok(Some(v.to_owned())),
        _ => Err(Expected::new(
            "a domain name such as example.com (or empty for none)",
        )),
    }
}

/// The `[session]` key that contradicts the cookie name's prefix, and why.
///
/// Browsers store a `__Host-` cookie only when it is `Secure`, has `Path=/` and no `Domain`,
/// and a `__Secure-` cookie only when it is `Secure` (RFC 6265bis, "cookie name prefixes").
/// A file that asks for the prefix and for something else would give a session cookie that
/// every browser silently drops, so it is refused instead.
pub(crate) fn cookie_prefix_conflict(s: &SessionConfig) -> Option<(&'static str, String)> {
    let name = &s.cookie_name;
    let host = name.starts_with("__Host-");
    if !host && !name.starts_with("__Secure-") {
        return None;
    }
    let prefix = if host { "__Host-" } else { "__Secure-" };
    if s.cookie_secure == CookieSecure::Never {
        let why = format!(
            "cookie_name {name:?} has the {prefix} prefix, which browsers accept only on a \
             Secure cookie; expected cookie_secure = true or auto, got false"
        );
        return Some(("cookie_secure", why));
    }
    if host && s.cookie_path != "/" {
        let why = format!(
            "cookie_name {name:?} has the __Host- prefix, which requires Path=/; expected \
             cookie_path = /, got {:?}",
            s.cookie_path
        );
        return Some(("cookie_path", why));
    }
    if let (true, Some(domain)) = (host, &s.cookie_domain) {
        let why = format!(
            "cookie_name {name:?} has the __Host- prefix, which forbids a Domain attribute; \
             expected no cookie_domain, got {domain:?}"
        );
        return Some(("cookie_domain", why));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators() {
        assert!(url("https://example.com/app").is_ok());
        for bad in ["", "ftp://x", "http://", "http://a b", "example.com"] {
            assert!(url(bad).is_err(), "{bad:?}");
        }
        for good in [
            "127.0.0.1",
            "::1",
            "[::1]",
            "localhost",
            "redis.internal",
            "my_host-1",
        ] {
            assert!(host(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a b", "a..b", "-a", "x/y", "é"] {
            assert!(host(bad).is_err(), "{bad:?}");
        }
        assert!(cookie_name("dm.session-1").is_ok());
        for bad in ["", "a b", "a;b", "a=b", "a\"b", "é"] {
            assert!(cookie_name(bad).is_err(), "{bad:?}");
        }
        assert!(cookie_path("/app").is_ok());
        assert!(cookie_path("app").is_err());
        assert!(cookie_path("/a;b").is_err());
        assert_eq!(cookie_domain(""), Ok(None));
        assert_eq!(
            cookie_domain(".example.com"),
            Ok(Some(".example.com".into()))
        );
        assert!(cookie_domain("a;b").is_err());
    }
}
