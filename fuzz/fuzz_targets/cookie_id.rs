//! Cookie headers and session id decoding: whatever the headers hold, the id read is either
//! none or exactly the shape Rondo generates (43 URL-safe base64 characters), and it
//! round-trips through `SessionId::parse`.
#![no_main]

use std::sync::OnceLock;

use http::header::{HeaderValue, COOKIE};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use rondo::session::fuzzing::cookie_session_ids;
use rondo::session::SessionId;
use rondo::Config;

fn configs() -> &'static [Config; 2] {
    static CONFIGS: OnceLock<[Config; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let parse = |ini: &str| Config::parse_str(ini, "fuzz.ini").expect("valid config");
        [
            parse("[session]\nstore = memory\n"),
            parse("[session]\nstore = memory\ncookie_name = __Host-sid\n"),
        ]
    })
}

fn check(id: &SessionId) {
    let text = id.as_str();
    assert_eq!(text.len(), 43);
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(SessionId::parse(text).as_ref(), Some(id));
    assert!(!id.to_string().contains(text));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(id) = SessionId::parse(text) {
            check(&id);
        }
    }
    // Each line is one `Cookie` header (bytes a client could send, not only valid UTF-8).
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, value);
        }
    }
    for config in configs() {
        let ids = cookie_session_ids(config, &headers);
        assert!(ids.len() <= 4, "at most a few candidates");
        for id in &ids {
            check(id);
        }
    }
});
