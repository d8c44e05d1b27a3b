//! The session cookie: reading the id from `Cookie`, building `Set-Cookie` from `[session]`.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::HeaderMap;

use super::id::SessionId;
use crate::config::{self, Config};

/// Session cookies of one request looked up in the store, at most: a browser sends one per
/// path and domain that set it, so a few are legitimate; the rest are ignored.
pub(crate) const MAX_CANDIDATES: usize = 4;

/// Cookie attributes, from `[session]` and `[app] url`.
#[derive(Debug, Clone)]
pub(crate) struct CookieSettings {
    pub(crate) name: String,
    same_site: SameSite,
    secure: bool,
    path: String,
    domain: Option<String>,
}

impl CookieSettings {
    pub(crate) fn from_config(config: &Config) -> Self {
        let session = &config.session;
        Self {
            name: session.cookie_name.clone(),
            same_site: match session.cookie_samesite {
                config::SameSite::Lax => SameSite::Lax,
                config::SameSite::Strict => SameSite::Strict,
                config::SameSite::None => SameSite::None,
            },
            // Browsers drop a prefixed cookie that is not Secure (config validation refuses
            // `cookie_secure = false` with a prefix; `auto` on http:// still gets Secure).
            secure: session.secure(&config.app)
                || session.cookie_name.starts_with("__Host-")
                || session.cookie_name.starts_with("__Secure-"),
            path: if session.cookie_name.starts_with("__Host-") {
                "/".into()
            } else {
                session.cookie_path.clone()
            },
            domain: if session.cookie_name.starts_with("__Host-") {
                None
            } else {
                session.cookie_domain.clone()
            },
        }
    }

    /// The session ids in the request's cookies that have Rondo's shape, in the order sent
    /// (at most [`MAX_CANDIDATES`]); the session is the first of them the store knows.
    ///
    /// Several `Cookie` headers and several cookies of the same name (set for other paths,
    /// or planted by a sibling domain: "cookie tossing") are allowed. Each header is read as
    /// bytes and split into pairs first, so a pair that is not valid text (a non-ASCII
    /// sibling cookie) is skipped alone instead of hiding the whole header; malformed pairs
    /// are skipped, never an error.
    pub(crate) fn read(&self, headers: &HeaderMap) -> Vec<SessionId> {
        let mut ids: Vec<SessionId> = Vec::new();
        let pairs = headers
            .get_all(http::header::COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b';'));
        for pair in pairs {
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            let (name, value) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
            if name != self.name.as_bytes() {
                continue;
            }
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            let Some(id) = std::str::from_utf8(value).ok().and_then(SessionId::parse) else {
                continue;
            };
            if !ids.contains(&id) {
                ids.push(id);
                if ids.len() == MAX_CANDIDATES {
                    break;
                }
            }
        }
        ids
    }

    /// `Set-Cookie` for `id`, living `max_age` (the lifespan, or less near the absolute
    /// lifetime).
    pub(crate) fn set(&self, id: &SessionId, max_age: Duration) -> String {
        let mut cookie = self.base(id.as_str());
        cookie.set_max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ));
        // Ids are URL-safe base64 and names RFC 6265 tokens: nothing to percent-encode.
        render(&cookie)
    }

    /// `Set-Cookie` that makes the browser forget the session cookie.
    pub(crate) fn expire(&self) -> String {
        let mut cookie = self.base("");
        cookie.make_removal();
        render(&cookie)
    }

    /// The cookie with every attribute but its lifetime; it borrows the settings and the
    /// value, so building one allocates nothing until it is rendered.
    fn base<'a>(&'a self, value: &'a str) -> Cookie<'a> {
        let mut cookie = Cookie::new(self.name.as_str(), value);
        cookie.set_http_only(true);
        cookie.set_secure(self.secure);
        cookie.set_same_site(self.same_site);
        cookie.set_path(self.path.as_str());
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.as_str());
        }
        cookie
    }
}

/// `cookie` as a header value, written once into a string of the right size.
fn render(cookie: &Cookie<'_>) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(160);
    // Writing to a String cannot fail.
    let _ = write!(out, "{cookie}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn settings(ini: &str) -> CookieSettings {
        let config = Config::parse_str(&format!("{ini}\n[session]\nstore = memory\n"), "t.ini");
        CookieSettings::from_config(&config.expect("valid config"))
    }

    #[test]
    fn set_cookie_has_every_attribute() {
        let s = settings("[app]\nurl = https://shop.example\n");
        let id = SessionId::parse(&"a".repeat(43)).expect("valid id");
        let header = s.set(&id, Duration::from_secs(86400));
        for part in [
            "dmsession=aaaa",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=86400",
        ] {
            assert!(header.contains(part), "{part} missing in {header}");
        }
        let plain =
            settings("[app]\nurl = http://127.0.0.1:8080\n").set(&id, Duration::from_secs(5));
        assert!(!plain.contains("Secure"), "{plain}");
    }

    #[test]
    fn removal_expires_the_cookie() {
        let header = settings("").expire();
        assert!(header.contains("Max-Age=0"), "{header}");
        assert!(header.contains("dmsession=;"), "{header}");
    }

    #[test]
    fn reads_the_first_valid_id_among_many_cookies() {
        let s = settings("");
        let good = "b".repeat(43);
        let mut headers = HeaderMap::new();
        let value = format!("x=1; dmsession=bad; junk; dmsession={good}; y=2");
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_str(&value).expect("ascii"),
        );
        let ids: Vec<String> = s
            .read(&headers)
            .iter()
            .map(|id| id.as_str().to_owned())
            .collect();
        assert_eq!(ids, vec![good]);
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_static("dmsession=../../etc"),
        );
        assert!(s.read(&headers).is_empty());
    }

    /// A sibling cookie that is not ASCII (`pref=café`) is skipped alone: the session
    /// cookie in the same header is still read.
    #[test]
    fn a_non_ascii_sibling_cookie_does_not_hide_the_session() {
        let s = settings("");
        let good = "c".repeat(43);
        let mut headers = HeaderMap::new();
        let value = format!("dmsession={good}; pref=caf\u{e9}");
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_bytes(value.as_bytes()).expect("visible bytes"),
        );
        assert!(headers[http::header::COOKIE].to_str().is_err(), "not ASCII");
        let ids: Vec<String> = s
            .read(&headers)
            .iter()
            .map(|id| id.as_str().to_owned())
            .collect();
        assert_eq!(ids, vec![good]);
    }

    /// Every session cookie of the request is a candidate, in order, without repeats, and at
    /// most a few of them.
    #[test]
    fn several_session_cookies_are_all_candidates_in_order() {
        let s = settings("");
        let (a, b) = ("a".repeat(43), "b".repeat(43));
        let mut headers = HeaderMap::new();
        let value = format!("dmsession={a}; dmsession=\"{b}\"; dmsession={a}");
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_str(&value).expect("ascii"),
        );
        let ids: Vec<String> = s
            .read(&headers)
            .iter()
            .map(|id| id.as_str().to_owned())
            .collect();
        assert_eq!(ids, vec![a, b]);
        let many: String = (0..10)
            .map(|i| {
                format!(
                    "dmsession={}; ",
                    char::from(b'd' + i).to_string().repeat(43)
                )
            })
            .collect();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_str(&many).expect("ascii"),
        );
        assert_eq!(s.read(&headers).len(), MAX_CANDIDATES);
    }
}
