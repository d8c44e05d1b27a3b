//! Signed-link verification: any path and query, as text or through `http::Uri` as the
//! server sees them, verify to `Ok` or a `SignatureError`, never a panic. Whatever can be
//! signed verifies, and stops verifying once its path or query is changed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rondo::signed::{AppKey, SignatureError};

const NOW: u64 = 1_700_000_000;

fn key() -> AppKey {
    let mut bytes = [0u8; 32];
    for (b, n) in bytes.iter_mut().zip(0u8..) {
        *b = n;
    }
    AppKey::from_bytes(bytes)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = key();
    let (path, query) = match text.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (text, None),
    };
    let _ = key.verify(path, query, NOW);
    let _ = key.verify_absolute("https://rondo.example", path, query, NOW);
    if let Ok(uri) = text.parse::<http::Uri>() {
        let _ = key.verify(uri.path(), uri.query(), NOW);
    }
    if let Ok(link) = key.sign(text, NOW + 60) {
        let (path, query) = link.split_once('?').expect("a signed link has a query");
        assert_eq!(key.verify(path, Some(query), NOW), Ok(()), "{link}");
        assert_eq!(
            key.verify(path, Some(query), NOW + 61),
            Err(SignatureError::Expired),
            "{link}"
        );
        let longer = format!("{path}x");
        assert_eq!(
            key.verify(&longer, Some(query), NOW),
            Err(SignatureError::Invalid),
            "{link}"
        );
        let extra = format!("x=1&{query}");
        assert_eq!(
            key.verify(path, Some(&extra), NOW),
            Err(SignatureError::Invalid),
            "{link}"
        );
    }
});
