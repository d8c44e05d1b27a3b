//! [`SignedUrls`]: the app's key and public URL, to make signed links and to check them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::Uri;

use super::guard::RequireSignature;
use super::{unix_now, AppKey, SignError, SignatureError};
use crate::component::{Component, Installer};
use crate::config::{Config, ConfigError, Env, ErrorKind};

/// Makes and checks signed links with the app's key (`[app] key`). Cheap to clone.
///
/// Installed as a component ([`App::with`](crate::App::with)), it is the state behind
/// `State<SignedUrls>` and what the [`Signed`](super::Signed) extractor checks against.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use rondo::signed::{Signed, SignedUrls};
/// use rondo::{App, Config, Path, State};
///
/// /// Hands out a link to a report that works for ten minutes.
/// async fn share(State(urls): State<SignedUrls>) -> Result<String, rondo::signed::SignError> {
///     urls.url("/reports/42", Duration::from_secs(600))
/// }
///
/// /// Answers only through a valid, unexpired link (403 otherwise).
/// async fn report(_: Signed, Path(id): Path<u32>) -> String {
///     format!("report {id}")
/// }
///
/// let config = Config::default();
/// let urls = SignedUrls::from_config(&config)?; // development: a generated key, with a warning
/// let app = App::new(config)
///     .with(urls)
///     .get("/share", share)
///     .get("/reports/{id}", report);
/// # Ok::<(), rondo::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct SignedUrls {
    key: AppKey,
    /// `[app] url` without its trailing `/`, put in front of links by [`SignedUrls::url`].
    base: Arc<str>,
}

impl SignedUrls {
    /// Links signed with `key`, made absolute under `base_url` by [`SignedUrls::url`].
    pub fn new(key: AppKey, base_url: &str) -> Self {
        Self {
            key,
            base: Arc::from(base_url.trim_end_matches('/')),
        }
    }

    /// Links signed with `[app] key`, under `[app] url`.
    ///
    /// Without a key, production refuses to start; development and testing use a key
    /// generated once for this process (every call gets the same one) and log a warning:
    /// links then stop working at the next restart and on every other server.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] of kind [`ErrorKind::Missing`] naming `[app] key`, in production
    /// without a key (or without randomness to generate one).
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let missing = |message: String| {
            ConfigError::new(ErrorKind::Missing, &config.origin, message)
                .in_section("app")
                .for_key("key")
        };
        let key = match (&config.app.key, config.app.env) {
            (Some(key), _) => key.clone(),
            (None, Env::Production) => {
                return Err(missing(
                    "signed links need an application key in production; expected \
                     key = base64:... (`example-app --generate-key` prints a new one; keep it \
                     out of the file with key = ${APP_KEY})"
                        .to_owned(),
                ))
            }
            (None, env) => {
                tracing::warn!(
                    %env,
                    "[app] key is not set: signed links use a key generated for this process, \
                     so they stop working at the next restart and on any other server \
                     (set [app] key; `example-app --generate-key` prints one)"
                );
                process_key()
                    .map_err(|e| missing(format!("no randomness to generate a key: {e}")))?
            }
        };
        Ok(Self::new(key, &config.app.url))
    }

    /// The key links are signed with.
    pub fn key(&self) -> &AppKey {
        &self.key
    }

    /// `[app] url` without its trailing `/`.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `path_and_query` signed to be valid for `ttl` from now (whole seconds, rounded up):
    /// the path with `expires` and `signature` added to its query.
    ///
    /// # Errors
    ///
    /// As [`AppKey::sign`]: the target is not a path a browser sends back unchanged, or it
    /// uses `expires` or `signature` itself.
    pub fn sign(&self, path_and_query: &str, ttl: Duration) -> Result<String, SignError> {
        self.sign_until(path_and_query, expires_after(ttl))
    }

    /// `path_and_query` signed to be valid up to and including Unix second `expires_at`.
    ///
    /// # Errors
    ///
    /// As [`AppKey::sign`].
    pub fn sign_until(&self, path_and_query: &str, expires_at: u64) -> Result<String, SignError> {
        self.key.sign(path_and_query, expires_at)
    }

    /// As [`SignedUrls::sign`], with `[app] url` in front: a link to put in an email or a
    /// page. The signature still covers the path and query only, so the link survives a
    /// proxy that terminates TLS or rewrites the host.
    ///
    /// # Errors
    ///
    /// As [`AppKey::sign`].
    pub fn url(&self, path_and_query: &str, ttl: Duration) -> Result<String, SignError> {
        Ok(format!("{}{}", self.base, self.sign(path_and_query, ttl)?))
    }

    /// Checks the request target `uri` (its path and query) now.
    ///
    /// # Errors
    ///
    /// As [`AppKey::verify`].
    pub fn verify(&self, uri: &Uri) -> Result<(), SignatureError> {
        self.key.verify(uri.path(), uri.query(), unix_now())
    }

    /// A middleware that answers `403` (with the reason) to every request of its group whose
    /// target is not validly signed: [`Routes::middleware`](crate::Routes::middleware) for
    /// a group of routes, [`App::middleware`](crate::App::middleware) for all of them.
    ///
    /// # Examples
    ///
    /// ```
    /// use rondo::signed::SignedUrls;
    /// use rondo::{App, Config, Routes};
    ///
    /// let config = Config::default();
    /// let urls = SignedUrls::from_config(&config)?;
    /// let shared = Routes::new()
    ///     .get("/report", || async { "the report" })
    ///     .middleware(urls.guard());
    /// let app = App::new(config).with(urls).nest("/shared", shared);
    /// # Ok::<(), rondo::ConfigError>(())
    /// ```
    pub fn guard(&self) -> RequireSignature {
        RequireSignature::new(self.clone())
    }
}

/// The key of a process without `[app] key`: generated on first use, then the same for
/// every part of the app that signs or checks.
fn process_key() -> Result<AppKey, getrandom::Error> {
    static KEY: OnceLock<AppKey> = OnceLock::new();
    if let Some(key) = KEY.get() {
        return Ok(key.clone());
    }
    let fresh = AppKey::generate()?;
    Ok(KEY.get_or_init(|| fresh).clone())
}

/// The Unix second `ttl` from now ends in: rounded up, so a link is never shorter than asked.
pub(crate) fn expires_after(ttl: Duration) -> u64 {
    let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    unix_now().saturating_add(seconds)
}

/// Installed, it is the state behind `State<SignedUrls>` and the [`Signed`](super::Signed)
/// extractor.
impl Component for SignedUrls {
    fn install(self, app: &mut Installer<'_>) {
        app.state(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_needs_a_key_development_makes_one() -> Result<(), Box<dyn std::error::Error>> {
        let production = Config::parse_str(
            "[app]\nenv = production\n[session]\nstore = memory\n",
            "prod.ini",
        )?;
        let err = SignedUrls::from_config(&production)
            .err()
            .ok_or("production without a key must fail")?;
        assert_eq!(err.kind(), ErrorKind::Missing);
        assert_eq!((err.section(), err.key()), (Some("app"), Some("key")));
        assert!(err
            .to_string()
            .starts_with("prod.ini: [app] key: signed links need"));

        let development = Config::parse_str("[session]\nstore = memory\n", "dev.ini")?;
        let a = SignedUrls::from_config(&development)?;
        let b = SignedUrls::from_config(&development)?;
        assert_eq!(a.key(), b.key(), "one generated key per process");
        assert_ne!(a.key(), &AppKey::from_bytes([0; 32]));

        let text = "[app]\nenv = production\nurl = https://rondo.example/\n\
                    key = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n[session]\nstore = memory\n";
        let configured = SignedUrls::from_config(&Config::parse_str(text, "prod.ini")?)?;
        let url = configured.url("/join", Duration::from_secs(60))?;
        assert!(
            url.starts_with("https://rondo.example/join?expires="),
            "{url}"
        );
        let uri: Uri = url.parse()?;
        assert_eq!(configured.verify(&uri), Ok(()));
        Ok(())
    }

    #[test]
    fn ttl_rounds_up() {
        let now = unix_now();
        let at = expires_after(Duration::from_millis(1500));
        assert!((now + 2..=now + 3).contains(&at), "{now} {at}");
    }
}
