//! The session cookie: reading the id from `Cookie`, building `Set-Cookie` from `[session]`.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::HeaderMap;

use super::id::SessionId;
use crate::config::{self, Config};

/// Cookie attributes, from `[session]` and `[app] url`.
#[derive(Debug, Clone)]
pub(crate) struct CookieSettings {
    pub(crate) name: String,
    pub(crate) lifespan: Duration,
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
            lifespan: session.cookie_lifespan,
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

    /// The first session id in the request's cookies that has Rondo's shape.
    ///
    /// Several `Cookie` headers and several cookies of the same name (set for other paths)
    /// are allowed; malformed pairs are skipped, never an error.
    pub(crate) fn read(&self, headers: &HeaderMap) -> Option<SessionId> {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name.trim() == self.name)
                    .then(|| SessionId::parse(value.trim().trim_matches('"')))?
            })
            .next()
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
        assert_eq!(
            s.read(&headers).map(|id| id.as_str().to_owned()),
            Some(good)
        );
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_static("dmsession=../../etc"),
        );
        assert_eq!(s.read(&headers), None);
    }
}
