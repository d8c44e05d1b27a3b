//! End-to-end tests of `Config` parsing (the building blocks have their own
//! unit tests next to them).

use std::time::Duration;

use super::*;

mod errors;

const EXAMPLE: &str = "\
; comment    # also a comment
[app]
env = development
url = http://127.0.0.1:8080

[http]
host = 127.0.0.1
port = 8080

[session]
cookie_name = dmsession
cookie_lifespan = 86400
cookie_samesite = lax
redis_connection_pool = default

[redis]
default[host] = 127.0.0.1
default[port] = 6379
default[db_index] = 0
default[prefix] = dm:
default[pool_size] = 8
default[timeout] = 1
default[password] = ${RONDO_CFG_TEST_REDIS_PASSWORD}
";

fn parse(text: &str) -> Result<Config> {
    Config::parse_str(text, "config.ini")
}

/// The Display string of the error `text` produces.
fn err(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

/// A minimal valid prefix so that tests can focus on one key.
const POOL: &str = "[redis]\ndefault[host] = 127.0.0.1\n";

#[test]
fn example_file() -> Result<()> {
    std::env::set_var("RONDO_CFG_TEST_REDIS_PASSWORD", "s3cret:@");
    let config = parse(EXAMPLE)?;
    assert_eq!(config.origin, "config.ini");
    assert_eq!(config.app, AppConfig::default());
    assert_eq!(config.http, HttpConfig::default());
    assert_eq!(config.session, SessionConfig::default());
    assert_eq!(config.redis.len(), 1);
    let pool = config.session_pool()?;
    assert_eq!(pool.name, "default");
    assert_eq!(
        (pool.host.as_str(), pool.port, pool.db_index),
        ("127.0.0.1", 6379, 0)
    );
    assert_eq!((pool.prefix.as_str(), pool.pool_size), ("dm:", 8));
    assert_eq!(pool.timeout, Duration::from_secs(1));
    assert_eq!(pool.password.as_deref(), Some("s3cret:@"));
    assert_eq!(pool.url(), "redis://:s3cret%3A%40@127.0.0.1:6379/0");
    assert!(config.extra.is_empty());
    Ok(())
}

#[test]
fn every_key_set() -> Result<()> {
    let text = "\
[app]
env = Production
url = https://example.com
log_level = rondo=debug,info
log_format = JSON
key = base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
[http]
host = 0.0.0.0
port = 0
max_header_bytes = 32k
max_headers = 50
max_body_bytes = 10MiB
header_read_timeout = 500ms
body_read_timeout = 2s
request_timeout = 1m
shutdown_timeout = 0
http2 = off
workers = 3
[session]
store = auto
cookie_name = sid
cookie_lifespan = 2h
cookie_samesite = none
cookie_secure = yes
cookie_path = /app
cookie_domain = example.com
redis_connection_pool = main
idle_timeout = 30m
max_lifetime = 0
refresh_interval = 2
persist = before_response
max_size = 1kb
actor_idle_timeout = 1.5s
max_actors = 10
[redis]
main[port] = 6380
main[username] = app
main[password] =
main[pool_prefill] = true
cache[host] = cache.internal
";
    let c = parse(text)?;
    assert_eq!(
        (c.app.env, c.app.log_format),
        (Env::Production, LogFormat::Json)
    );
    assert!(c.app.is_https());
    assert_eq!(c.app.log_level, "rondo=debug,info");
    let mut counting = [0u8; 32];
    for (b, n) in counting.iter_mut().zip(0u8..) {
        *b = n;
    }
    assert_eq!(c.app.key, Some(AppKey::from_bytes(counting)));
    assert_eq!((c.http.host.as_str(), c.http.port), ("0.0.0.0", 0));
    assert_eq!(
        (c.http.max_header_bytes, c.http.max_headers),
        (32 * 1024, 50)
    );
    assert_eq!(c.http.max_body_bytes, 10 << 20);
    assert_eq!(c.http.header_read_timeout, Duration::from_millis(500));
    assert_eq!(c.http.body_read_timeout, Duration::from_secs(2));
    assert_eq!(c.http.request_timeout, Duration::from_secs(60));
    assert_eq!(
        (c.http.shutdown_timeout, c.http.http2, c.http.workers),
        (Duration::ZERO, false, 3)
    );
    let s = &c.session;
    assert_eq!(
        (s.store, s.cookie_samesite, s.cookie_secure),
        (StoreKind::Auto, SameSite::None, CookieSecure::Always)
    );
    assert_eq!(
        (s.cookie_name.as_str(), s.cookie_path.as_str()),
        ("sid", "/app")
    );
    assert_eq!(s.cookie_lifespan, Duration::from_secs(7200));
    assert_eq!(s.cookie_domain.as_deref(), Some("example.com"));
    assert_eq!(
        (s.idle_timeout, s.max_lifetime),
        (Some(Duration::from_secs(1800)), None)
    );
    assert_eq!(s.refresh_interval, Duration::from_secs(2));
    assert_eq!(
        (s.persist, s.max_size, s.max_actors),
        (PersistMode::BeforeResponse, 1024, 10)
    );
    assert_eq!(s.actor_idle_timeout, Duration::from_millis(1500));
    assert!(s.secure(&c.app));
    assert_eq!(c.redis.keys().collect::<Vec<_>>(), ["cache", "main"]);
    let main = c.session_pool()?;
    assert_eq!((main.host.as_str(), main.port), ("127.0.0.1", 6380));
    assert_eq!(
        (main.username.as_deref(), main.password.as_deref()),
        (Some("app"), None)
    );
    assert!(main.pool_prefill);
    assert_eq!(c.redis["cache"].host, "cache.internal");
    Ok(())
}

#[test]
fn defaults_when_sections_absent() -> Result<()> {
    let c = parse(POOL)?;
    let defaults = Config::default();
    assert_eq!(
        (c.app, c.http, c.session),
        (defaults.app, defaults.http, defaults.session)
    );
    assert_eq!(defaults.origin, "<defaults>");
    assert!(defaults.redis.is_empty());
    // A store other than redis needs no pool at all.
    let c = parse("[session]\nstore = memory\n")?;
    assert!(c.redis.is_empty());
    assert_eq!(c.session_pool().err().map(|e| e.line()), Some(None));
    Ok(())
}

/// `workers = auto` is one per CPU, as by default; `0` serves on the caller's runtime.
#[test]
fn workers_auto_and_zero() -> Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    assert_eq!(HttpConfig::default().workers, cpus);
    assert_eq!(
        parse(&format!("[http]\nworkers = auto\n{POOL}"))?
            .http
            .workers,
        cpus
    );
    assert_eq!(
        parse(&format!("[http]\nworkers = 0\n{POOL}"))?.http.workers,
        0
    );
    Ok(())
}

#[test]
fn environment_variables() -> Result<()> {
    let e = err("[app]\nurl = http://x\n\nlog_level = ${RONDO_CFG_TEST_SURELY_UNSET_7F3A}\n");
    assert_eq!(
        e,
        "config.ini:4: [app] log_level: environment variable RONDO_CFG_TEST_SURELY_UNSET_7F3A is not set \
         (write ${RONDO_CFG_TEST_SURELY_UNSET_7F3A:-default} to give a fallback)"
    );
    std::env::set_var("RONDO_CFG_TEST_PORT", "9090");
    std::env::set_var("RONDO_CFG_TEST_EMPTY", "");
    let text = format!(
        "[http]\nport = ${{RONDO_CFG_TEST_PORT}}\nhost = ${{RONDO_CFG_TEST_SURELY_UNSET_7F3A:-localhost}}\n\
         [app]\nurl = http://${{RONDO_CFG_TEST_EMPTY:-example.com}}:${{RONDO_CFG_TEST_PORT}}/\n\
         {POOL}default[password] = '${{NOT_EXPANDED}}'\n"
    );
    let c = parse(&text)?;
    assert_eq!((c.http.port, c.http.host.as_str()), (9090, "localhost"));
    assert_eq!(c.app.url, "http://example.com:9090/");
    assert_eq!(
        c.session_pool()?.password.as_deref(),
        Some("${NOT_EXPANDED}")
    );
    Ok(())
}

#[test]
fn quoting_and_inline_comments() -> Result<()> {
    let text = format!(
        "[app]\nurl = http://h/a;b#c ; trailing comment\nlog_level = \"info\" ; comment\n\
         [redis]\ndefault[prefix] = 'dm ; x:' # comment\ndefault[password] = \"p\\\"w\\\\d #1\"\n\
         default[username] = \"ann ; not a comment\" ; comment\n{POOL}"
    );
    let c = parse(&text)?;
    assert_eq!(c.app.url, "http://h/a;b#c");
    assert_eq!(c.app.log_level, "info");
    let pool = c.session_pool()?;
    assert_eq!(pool.prefix, "dm ; x:");
    assert_eq!(pool.password.as_deref(), Some("p\"w\\d #1"));
    assert_eq!(pool.username.as_deref(), Some("ann ; not a comment"));
    Ok(())
}

#[test]
fn crlf_and_bom() -> Result<()> {
    let text = "\u{feff}[http]\r\nport = 81\r\n\r\n[redis]\r\ndefault[host] = h\r\n";
    let c = parse(text)?;
    assert_eq!((c.http.port, c.redis["default"].host.as_str()), (81, "h"));
    let e = err("\u{feff}[http]\r\n\r\nport = x\r\n");
    assert!(e.starts_with("config.ini:3: [http] port: "), "{e}");
    Ok(())
}

#[test]
fn application_sections() -> Result<()> {
    let loader = ConfigLoader::new().section("example");
    let text = format!(
        "[example]\ngreeting = hello\nretries = 3\nbad = x1\n\n[example]\ndelay = 250ms\n{POOL}"
    );
    let c = loader.parse_str(&text, "app.ini")?;
    let s = c
        .section("example")
        .ok_or_else(|| ConfigError::new(ErrorKind::Io, "t", "no section"))?;
    assert_eq!(s.name(), "example");
    assert_eq!(
        s.keys().collect::<Vec<_>>(),
        ["greeting", "retries", "bad", "delay"]
    );
    assert_eq!(s.raw("greeting"), Some("hello"));
    assert_eq!(s.get::<u64>("retries")?, Some(3));
    assert_eq!(s.get_or::<u64>("absent", 9)?, 9);
    assert_eq!(s.duration("delay")?, Some(Duration::from_millis(250)));
    assert_eq!(
        s.get::<u64>("bad").err().map(|e| e.to_string()).as_deref(),
        Some("app.ini:4: [example] bad: expected u64, got \"x1\"")
    );
    // Registered but absent: no section. Unregistered: an error.
    assert!(loader
        .parse_str(POOL, "app.ini")?
        .section("example")
        .is_none());
    assert_eq!(
        err(&text).lines().next(),
        Some("config.ini:1: [example]: unknown section; expected one of [app], [http], [session], [redis], [jobs], [files], [livekit], [channels], or a section the application declares with ConfigLoader::new().section(\"example\")")
    );
    let e = loader
        .parse_str("[exampel]\n", "app.ini")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("app.ini:1: [exampel]: unknown section (did you mean [example]?)")
    );
    let e = loader
        .parse_str("[example]\na[b] = c\n", "app.ini")
        .err()
        .map(|e| e.to_string());
    assert!(e.is_some_and(|e| e
        .starts_with("app.ini:2: [example] a[b]: `name[key]` keys are only allowed in [redis]")));
    Ok(())
}

#[test]
fn load_from_file() -> Result<()> {
    let e = Config::load("/nonexistent/rondo/config.ini")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("cannot read /nonexistent/rondo/config.ini: No such file or directory")
    );
    let dir = std::env::temp_dir().join(format!("rondo-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| ConfigError::io("mkdir", e))?;
    let path = dir.join("config.ini");
    std::fs::write(&path, format!("[http]\nport = 99\n{POOL}"))
        .map_err(|e| ConfigError::io("write", e))?;
    let c = Config::load(&path)?;
    assert_eq!(
        (c.http.port, c.origin.clone()),
        (99, path.display().to_string())
    );
    std::fs::write(&path, b"[http]\n\nport = \xff\n").map_err(|e| ConfigError::io("write", e))?;
    let e = Config::load(&path).err();
    assert_eq!(e.as_ref().and_then(ConfigError::line), Some(3));
    assert_eq!(e.as_ref().map(ConfigError::kind), Some(ErrorKind::Syntax));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn repository_config_ini_parses() -> Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.ini");
    if std::path::Path::new(path).exists() {
        // The example app's file: it has the app's own `[example]` section.
        let c = super::ConfigLoader::new().section("example").load(path)?;
        assert_eq!(c.session_pool()?.prefix, "dm:");
    }
    Ok(())
}

/// `[files]` and `[livekit]` are built in, with their defaults when absent; `[app] key`
/// and `[livekit] api_secret` are never repeated in an error.
#[test]
fn files_livekit_and_the_app_key() -> Result<()> {
    let c = parse(POOL)?;
    assert_eq!(c.files, FilesConfig::default());
    assert_eq!(c.livekit, LiveKitConfig::default());
    assert_eq!(c.app.key, None);
    let text = format!(
        "{POOL}[files]\ndir = /srv/up\nmax_file_bytes = 1m\nallowed_types = image/*, text/plain\n\
         route = /dl\n[livekit]\nurl = wss://meet.example\napi_key = APIk\napi_secret = sekrit\n"
    );
    let c = parse(&text)?;
    assert_eq!(c.files.dir, std::path::PathBuf::from("/srv/up"));
    assert_eq!(c.files.max_file_bytes, 1 << 20);
    assert_eq!(c.files.allowed_types, ["image/*", "text/plain"]);
    assert_eq!(c.files.route, "/dl");
    assert_eq!(c.livekit.url.as_deref(), Some("wss://meet.example"));
    assert_eq!(c.livekit.api_secret.as_deref(), Some("sekrit"));
    assert!(!format!("{c:?}").contains("sekrit"));

    let wrong =
        err("[app]\nkey = base64:c2VjcmV0LWJ1dC10b28tc2hvcnQ=\n[session]\nstore = memory\n");
    assert!(
        wrong.starts_with("config.ini:2: [app] key: expected base64 of 32"),
        "{wrong}"
    );
    assert!(
        wrong.contains("20 bytes long") && wrong.contains("not shown"),
        "{wrong}"
    );
    assert!(!wrong.contains("c2VjcmV0"), "{wrong}");
    let empty = err("[app]\nkey =\n[session]\nstore = memory\n");
    assert!(empty.contains("got an empty value"), "{empty}");
    let secret = err("[session]\nstore = memory\n[livekit]\napi_secret = \"a\u{7}b\"\n");
    assert!(
        secret.starts_with("config.ini:4: [livekit] api_secret:"),
        "{secret}"
    );
    assert!(!secret.contains("a\u{7}b"), "{secret}");
    let route = err("[session]\nstore = memory\n[files]\nroute = /files/{id}\n");
    assert!(
        route.starts_with("config.ini:4: [files] route: expected a path"),
        "{route}"
    );
    let pool = err(
        "[session]\nstore = redis\nredis_connection_pool = main\n[redis]\nmain[port] = 1\n\
                    [files]\nredis_connection_pool = blobs\n",
    );
    assert!(
        pool.starts_with("config.ini:7: [files] redis_connection_pool: no Redis pool"),
        "{pool}"
    );
    Ok(())
}
