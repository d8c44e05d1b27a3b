//! Configuration errors: each names the file, line and key, in words a person can act on,
//! and no input, however broken, makes the parser panic.

use super::*;

#[test]
fn missing_session_pool() {
    assert_eq!(
        err(""),
        "config.ini: [session] redis_connection_pool: no Redis pool named \"default\" in [redis]; \
         expected a pool such as default[host] = 127.0.0.1 (or set store = memory)"
    );
    let e = parse(
        "[session]\nstore = redis\n\nredis_connection_pool = main\n[redis]\ndefault[port] = 1\n",
    )
    .err();
    assert_eq!(
        e.as_ref().map(ConfigError::kind),
        Some(ErrorKind::MissingPool)
    );
    assert_eq!(e.as_ref().and_then(ConfigError::line), Some(4));
    assert_eq!(
        e.as_ref().and_then(ConfigError::key),
        Some("redis_connection_pool")
    );
    assert!(parse("[session]\nstore = auto\nredis_connection_pool = main\n").is_ok());
}

#[test]
fn error_lines_and_keys() {
    let cases: &[(&str, &str)] = &[
        (
            "[session]\ncookie_samsite = lax\n",
            "config.ini:2: [session] cookie_samsite: unknown key (did you mean cookie_samesite?)",
        ),
        ("[app]\nENV = testing\n", "config.ini:2: [app] ENV: unknown key (did you mean env?)"),
        (
            "[app]\nfoo = 1\n",
            "config.ini:2: [app] foo: unknown key; expected one of env, url, log_level, log_format, metrics_path, key",
        ),
        ("[redis]\ndefault[hots] = x\n", "config.ini:2: [redis] default[hots]: unknown key (did you mean default[host]?)"),
        ("; c\n\n[app]\n[sesion]\n", "config.ini:4: [sesion]: unknown section (did you mean [session]?)"),
        (
            "[zzz]\n",
            "config.ini:1: [zzz]: unknown section; expected one of [app], [http], [session], [redis], [jobs], [files], [livekit], [channels], or a section the application declares with ConfigLoader::new().section(\"zzz\")",
        ),
        (
            "[session]\n\n\n\n\n\n\n\n\n\n\ncookie_samesite = loose\n",
            "config.ini:12: [session] cookie_samesite: expected one of lax, strict, none, got \"loose\"",
        ),
        ("[http]\nmax_headers = 5000\n", "config.ini:2: [http] max_headers: expected an integer in 1..=1000, got \"5000\""),
        ("[http]\nport = 65536\n", "config.ini:2: [http] port: expected an integer in 0..=65535, got \"65536\""),
        ("[redis]\ndefault[port] = 0\n", "config.ini:2: [redis] default[port]: expected an integer in 1..=65535, got \"0\""),
        (
            "[http]\nmax_header_bytes = 2m\n",
            "config.ini:2: [http] max_header_bytes: expected a size between 1 KiB and 1 MiB, got \"2m\"",
        ),
        (
            "[http]\nrequest_timeout = 10 minutes\n",
            "config.ini:2: [http] request_timeout: expected a duration such as 30 (seconds), 1.5s, 500ms, 10m or 2h, got \"10 minutes\"",
        ),
        (
            "[http]\nrequest_timeout = 0\n",
            "config.ini:2: [http] request_timeout: expected a duration greater than zero (a duration such as 30 (seconds), 1.5s, 500ms, 10m or 2h), got \"0\"",
        ),
        ("[app]\nurl =\n", "config.ini:2: [app] url: expected a URL starting with http:// or https://, got an empty value"),
        ("[session]\ncookie_lifespan = -5\n", "config.ini:2: [session] cookie_lifespan: expected a duration such as 30 (seconds), 1.5s, 500ms, 10m or 2h, got \"-5\""),
        ("[http]\nhttp2 = maybe\n", "config.ini:2: [http] http2: expected a boolean (true/false, yes/no, on/off, 1/0), got \"maybe\""),
        ("[http]\nport = 1\n[app]\n[http]\nport = 2\n", "config.ini:5: [http] port: duplicate key (first set on line 2)"),
        ("[app]\nthis is not a pair\n", "config.ini:2: expected `key = value`, a [section] header or a comment, got \"this is not a pair\""),
        (
            "[session]\ndefault[host] = x\n",
            "config.ini:2: [session] default[host]: `name[key]` keys are only allowed in [redis]; expected a plain `key = value`",
        ),
        (
            "[redis]\nhost = x\n",
            "config.ini:2: [redis] host: expected `pool[key] = value` in [redis], such as default[host] = 127.0.0.1",
        ),
        (
            "[session]\ncookie_samesite = none\ncookie_secure = off\n",
            "config.ini:2: [session] cookie_samesite: cookie_samesite = none requires a Secure cookie \
             (browsers reject it otherwise); expected cookie_secure = true or auto, got false",
        ),
        (
            "[app]\nurl = http://shop.example\n[session]\ncookie_samesite = none\n",
            "config.ini:4: [session] cookie_samesite: cookie_samesite = none requires a Secure cookie \
             (browsers reject it otherwise), but cookie_secure = auto gives none for the plain \
             http:// [app] url \"http://shop.example\"; expected an https:// url, cookie_secure = true, \
             or cookie_samesite = lax",
        ),
        (
            "[session]\nrefresh_interval = 0\n",
            "config.ini:2: [session] refresh_interval: expected a duration of at least 1 second (a duration such as 30 (seconds), 1.5s, 500ms, 10m or 2h), got \"0\"",
        ),
        (
            "[session]\nrefresh_interval = 500ms\n",
            "config.ini:2: [session] refresh_interval: expected a duration of at least 1 second (a duration such as 30 (seconds), 1.5s, 500ms, 10m or 2h), got \"500ms\"",
        ),
        ("[session]\ncookie_name = my session\n", "config.ini:2: [session] cookie_name: expected a cookie name made of letters, digits and !#$%&'*+-.^_`|~, got \"my session\""),
        ("[app]\nlog_level = \"\"\n", "config.ini:2: [app] log_level: expected a tracing filter: comma-separated levels (trace, debug, info, warn, error, off) or target=level directives, e.g. info or my_app=debug,info, got an empty value"),
        // tracing would read a bare word as a target and log nothing else.
        ("[app]\nlog_level = verbose\n", "config.ini:2: [app] log_level: expected a tracing filter: comma-separated levels (trace, debug, info, warn, error, off) or target=level directives, e.g. info or my_app=debug,info, got \"verbose\""),
        (
            "[app]\nmetrics_path = metrics\n",
            "config.ini:2: [app] metrics_path: expected a path starting with / (no parameters, query or spaces), or empty for no metrics, got \"metrics\"",
        ),
        (
            "[session]\nread_check = always\n",
            "config.ini:2: [session] read_check: expected one of tracking, broadcast, version, got \"always\"",
        ),
        (
            "[http]\nworkers = many\n",
            "config.ini:2: [http] workers: expected auto or a number of threads in 0..=1024, got \"many\"",
        ),
        (
            "[http]\nworkers = 2000\n",
            "config.ini:2: [http] workers: expected auto or a number of threads in 0..=1024, got \"2000\"",
        ),
        (
            "[redis]\nc[mode] = cluster\nc[db_index] = 2\n",
            "config.ini:3: [redis] c[db_index]: a Redis Cluster has only database 0; expected c[db_index] = 0, got 2",
        ),
        (
            "[redis]\nc[mode] = cluster\nc[prefix] = {app}:\n",
            "config.ini:3: [redis] c[prefix]: on a Redis Cluster c[prefix] must not contain braces: a hash tag in the prefix would put every key in one slot (and on one node); got \"{app}:\"",
        ),
        (
            "[redis]\ns[mode] = sentinel\ns[nodes] = 127.0.0.1:26379\n",
            "config.ini:2: [redis] s[mode]: mode = sentinel needs s[master_name], the primary's name as the Sentinels know it (sentinel monitor NAME ...)",
        ),
        (
            "[redis]\ns[mode] = sentinel\ns[master_name] = main\n",
            "config.ini:2: [redis] s[mode]: mode = sentinel needs s[nodes], the Sentinels' host:port pairs (e.g. 10.0.0.1:26379, 10.0.0.2:26379)",
        ),
        (
            "[redis]\nx[nodes] = 127.0.0.1:7000\n",
            "config.ini:2: [redis] x[nodes]: x[nodes] is read with mode = cluster or sentinel; a standalone Redis is x[host] and x[port]",
        ),
        (
            "[redis]\nx[mode] = cluster\nx[nodes] = 127.0.0.1\n",
            "config.ini:3: [redis] x[nodes]: expected host:port pairs separated by commas (\"127.0.0.1\" has no port), got \"127.0.0.1\"",
        ),
        (
            "[redis]\nx[mode] = ring\n",
            "config.ini:2: [redis] x[mode]: expected one of standalone, cluster, sentinel, got \"ring\"",
        ),
    ];
    for (text, expected) in cases {
        let text = format!("{text}{POOL}");
        assert_eq!(&err(&text), expected, "for {text:?}");
    }
}

#[test]
fn error_accessors() {
    let e = parse("[app]\n\nenv = staging\n").err();
    let e = e.as_ref();
    assert_eq!(e.map(ConfigError::kind), Some(ErrorKind::InvalidValue));
    assert_eq!(e.and_then(ConfigError::line), Some(3));
    assert_eq!(e.and_then(ConfigError::section), Some("app"));
    assert_eq!(e.and_then(ConfigError::key), Some("env"));
    assert_eq!(e.map(ConfigError::file), Some("config.ini"));
    assert_eq!(
        e.map(ConfigError::message),
        Some("expected one of development, production, testing, got \"staging\"")
    );
}

/// Random documents stitched from tricky fragments must never panic.
#[test]
fn no_panics_on_random_input() {
    const BITS: &[&str] = &[
        "[",
        "]",
        "[redis]",
        "[session]",
        "[http]",
        "[example]",
        "\n",
        "\r\n",
        "=",
        " = ",
        "\"",
        "'",
        "\\",
        ";",
        " ;",
        "#",
        " #",
        "${",
        "}",
        ":-",
        "default[",
        "host",
        "port",
        "é",
        "\u{feff}",
        "store",
        "memory",
        "none",
        "cookie_samesite",
        "1.5",
        "k",
        "ms",
        "-",
        "0",
        "99999999999999999999",
        "max_body_bytes",
        "timeout",
        " ",
        "\t",
        "\0",
    ];
    let loader = ConfigLoader::new().section("example");
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..5000 {
        let mut doc = String::new();
        for _ in 0..(seed % 40) {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            doc.push_str(BITS[usize::try_from(seed >> 33).unwrap_or(0) % BITS.len()]);
        }
        let _ = loader
            .parse_str(&doc, "fuzz.ini")
            .map(|c| c.session_pool().map(RedisPoolConfig::url));
    }
}
