//! Configuration errors and loading, through the public API only.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rondo::config::ErrorKind;
use rondo::{Config, ConfigLoader};

/// A file in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("rondo-config-test-{}-{n}.ini", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An unknown key on line 7 gives an error whose Display starts with `<path>:7:`, names the
/// section and key, and whose `line()` is `Some(7)`.
#[test]
fn unknown_key_error_names_file_line_and_key() {
    let file = TempFile::new(
        "; a comment\n\
         [app]\n\
         env = development\n\
         \n\
         [http]\n\
         port = 8080\n\
         max_body_bites = 1k\n",
    );
    let err = Config::load(&file.0).unwrap_err();
    let text = err.to_string();
    let prefix = format!("{}:7:", file.0.display());
    assert!(
        text.starts_with(&prefix),
        "{text:?} should start with {prefix:?}"
    );
    assert!(text.contains("[http] max_body_bites"), "{text}");
    assert_eq!(err.line(), Some(7));
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    assert_eq!(err.file(), file.0.display().to_string());
    assert_eq!(err.section(), Some("http"));
    assert_eq!(err.key(), Some("max_body_bites"));
    assert!(
        text.contains("max_body_bytes"),
        "a did-you-mean suggestion: {text}"
    );
}

/// An invalid value is reported at its line with the section and key, and a valid file with
/// the same layout loads with the values it sets.
#[test]
fn invalid_value_error_and_valid_file() {
    let file = TempFile::new("[http]\nport = 8080\nmax_headers = lots\n");
    let err = Config::load(&file.0).unwrap_err();
    assert_eq!(err.line(), Some(3));
    assert_eq!(err.kind(), ErrorKind::InvalidValue);
    assert!(
        err.to_string()
            .starts_with(&format!("{}:3: [http] max_headers:", file.0.display())),
        "{err}"
    );

    let file = TempFile::new("[http]\nport = 9090\nmax_headers = 50\nheader_read_timeout = 250ms\n\n[session]\nstore = memory\n");
    let config = Config::load(&file.0).unwrap();
    assert_eq!(config.http.port, 9090);
    assert_eq!(config.http.max_headers, 50);
    assert_eq!(
        config.http.header_read_timeout,
        std::time::Duration::from_millis(250)
    );
    assert_eq!(config.origin, file.0.display().to_string());
}

/// A missing file is an I/O error without a line, whose message names the path.
#[test]
fn missing_file_error_mentions_path() {
    let path = std::env::temp_dir().join(format!("rondo-no-such-file-{}.ini", std::process::id()));
    let err = Config::load(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.line(), None);
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.starts_with("cannot read "), "{text}");
}

/// The repository's own `config.ini` loads with the example app's loader
/// (`ConfigLoader::new().section("example")`) and has the documented settings.
#[test]
fn repo_config_ini_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.ini");
    let config = ConfigLoader::new().section("example").load(path).unwrap();
    assert_eq!(config.origin, path);
    assert_eq!(config.http.host, "127.0.0.1");
    assert_eq!(config.session.cookie_name, "dmsession");
    let pool = config.session_pool().unwrap();
    assert_eq!(pool.name, "default");
    assert_eq!(pool.port, 6379);
}

/// An application section is an error unless registered with `ConfigLoader::section`, and
/// then its keys are readable.
#[test]
fn application_sections_must_be_registered() {
    let text = "[http]\nport = 0\n\n[example]\ngreeting = hello\n\n[session]\nstore = memory\n";
    let err = Config::parse_str(text, "app.ini").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownSection);
    assert_eq!(err.line(), Some(4));
    assert!(err.to_string().starts_with("app.ini:4: [example]"), "{err}");
    let config = ConfigLoader::new()
        .section("example")
        .parse_str(text, "app.ini")
        .unwrap();
    assert!(config.section("example").is_some());
}

/// `[jobs]` keys are typed with their defaults; an unknown key, a bad value and a missing
/// queue pool (with Redis sessions) are errors naming the line and key.
#[test]
fn jobs_section_is_validated() {
    let config = Config::parse_str("[session]\nstore = memory\n", "app.ini").unwrap();
    assert_eq!(config.jobs.concurrency, 8);
    assert_eq!(config.jobs.max_attempts, 5);
    assert_eq!(config.jobs_pool_name(), "default");
    let text = "[session]\nstore = memory\n[jobs]\nconcurrency = 3\nstream = mail\n";
    let config = Config::parse_str(text, "app.ini").unwrap();
    assert_eq!(
        (config.jobs.concurrency, config.jobs.stream.as_str()),
        (3, "mail")
    );

    let err = Config::parse_str("[jobs]\nconcurency = 3\n", "app.ini").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    assert_eq!(
        err.to_string(),
        "app.ini:2: [jobs] concurency: unknown key (did you mean concurrency?)"
    );
    let err = Config::parse_str("[jobs]\nmax_attempts = 0\n", "app.ini").unwrap_err();
    assert_eq!((err.kind(), err.line()), (ErrorKind::InvalidValue, Some(2)));
    let text = "[redis]\ndefault[port] = 6379\n[jobs]\nredis_connection_pool = queue\n";
    let err = Config::parse_str(text, "app.ini").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MissingPool);
    assert_eq!(
        (err.line(), err.key()),
        (Some(4), Some("redis_connection_pool"))
    );
}

/// A `__Host-` cookie name with `cookie_secure = false`, a path other than `/` or a domain,
/// and a `__Secure-` name with `cookie_secure = false`, are refused with the file, the line of
/// the contradicting key and a message naming the rule; a `__Host-` name with the defaults
/// loads.
#[test]
fn cookie_name_prefixes_refuse_contradicting_settings() {
    let cases = [
        (
            "cookie_name = __Host-sid\ncookie_secure = false\n",
            3,
            "cookie_secure",
            "Secure",
        ),
        (
            "cookie_name = __Host-sid\ncookie_path = /app\n",
            3,
            "cookie_path",
            "Path=/",
        ),
        (
            "cookie_domain = example.com\ncookie_name = __Host-sid\n",
            2,
            "cookie_domain",
            "Domain",
        ),
        (
            "cookie_name = __Secure-sid\ncookie_secure = no\n",
            3,
            "cookie_secure",
            "Secure",
        ),
    ];
    for (lines, line, key, rule) in cases {
        let file = TempFile::new(&format!("[session]\nstore = memory\n{lines}"));
        let err = Config::load(&file.0).unwrap_err();
        let text = err.to_string();
        // `store = memory` is line 2, so the session keys start on line 3.
        assert_eq!(err.line(), Some(line + 1), "{text}");
        assert_eq!(err.key(), Some(key), "{text}");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{text}");
        assert!(
            text.starts_with(&format!("{}:{}:", file.0.display(), line + 1)),
            "{text}"
        );
        assert!(text.contains(rule) && text.contains("prefix"), "{text}");
    }
    let ok = Config::parse_str(
        "[app]\nurl = https://shop.example\n[session]\nstore = memory\ncookie_name = __Host-sid\n",
        "ok.ini",
    )
    .unwrap();
    assert_eq!(ok.session.cookie_name, "__Host-sid");
}

/// `cookie_samesite = none` on a plain `http://` URL with `cookie_secure = auto` would send a
/// cookie browsers reject: the start is refused, naming the file, line and key.
#[test]
fn samesite_none_without_secure_is_refused() {
    let err = Config::parse_str(
        "[app]\nurl = http://shop.example\n[session]\nstore = memory\ncookie_samesite = none\n",
        "shop.ini",
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!((err.line(), err.key()), (Some(5), Some("cookie_samesite")));
    assert!(
        err.to_string()
            .starts_with("shop.ini:5: [session] cookie_samesite:"),
        "{err}"
    );
    // On https (or with an explicit Secure) it is fine.
    for fix in [
        "[app]\nurl = https://shop.example\n",
        "[session]\ncookie_secure = true\n",
    ] {
        let text = format!("{fix}[session]\nstore = memory\ncookie_samesite = none\n");
        let text = text.replacen("[session]\n[session]\n", "[session]\n", 1);
        assert!(Config::parse_str(&text, "shop.ini").is_ok(), "{text}");
    }
}

/// A database index the Redis server does not have is a configuration error naming the
/// key, not "Redis unreachable", and it stops the start even with `store = auto`.
#[tokio::test]
async fn a_database_index_redis_lacks_is_a_config_error() {
    let redis = rondo_tests::redis::RedisServer::start().await;
    for store in ["redis", "auto"] {
        let config = Config::parse_str(
            &format!(
                "[session]\nstore = {store}\n[redis]\ndefault[port] = {}\ndefault[db_index] = 999\n\
                 default[timeout] = 300ms\n",
                redis.port()
            ),
            "shop.ini",
        )
        .unwrap();
        let err = rondo::SessionManager::from_config(
            &config,
            &rondo::redis::Redis::new(config.redis.clone()),
        )
        .await
        .unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, rondo::SessionError::Misconfigured(_)),
            "{message}"
        );
        assert!(
            message.starts_with("shop.ini: [redis] default[db_index] = 999:"),
            "{message}"
        );
        assert!(message.contains("no such database"), "{message}");
    }
}

/// `store = redis` with nothing listening stops the start with one sentence that names the
/// setting, the address and the pool's own reason, without repeating "session store
/// unavailable" for each layer it went through.
#[tokio::test]
async fn store_redis_without_redis_names_the_address_once() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = Config::parse_str(
        &format!(
            "[session]\nstore = redis\n[redis]\ndefault[port] = {port}\ndefault[timeout] = 300ms\n"
        ),
        "shop.ini",
    )
    .unwrap();
    let err = rondo::SessionManager::from_config(
        &config,
        &rondo::redis::Redis::new(config.redis.clone()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, rondo::SessionError::Unavailable(_)), "{err}");
    let message = err.to_string();
    let expected = format!(
        "session store unavailable: [session] store = redis, but Redis at 127.0.0.1:{port} is \
         unreachable: Redis pool \"default\" unavailable: "
    );
    assert!(message.starts_with(&expected), "{message}");
    assert_eq!(
        message.matches("session store unavailable").count(),
        1,
        "{message}"
    );
}
