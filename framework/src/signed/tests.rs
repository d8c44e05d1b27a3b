//! Known-answer and tampering tests. The hex MACs below were computed independently with
//! Python's `hmac.new(key, message, hashlib.sha256).hexdigest()`.

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const EXPIRES: u64 = 1_700_000_000;

/// `bytes(range(32))`.
fn counting_key() -> AppKey {
    let mut bytes = [0u8; 32];
    for (b, value) in bytes.iter_mut().zip(0u8..) {
        *b = value;
    }
    AppKey::from_bytes(bytes)
}

/// Splits a signed link as hyper would: path, then the query if there is a `?`.
fn verify_link(key: &AppKey, link: &str, now: u64) -> Result<(), SignatureError> {
    match link.split_once('?') {
        Some((path, query)) => key.verify(path, Some(query), now),
        None => key.verify(link, None, now),
    }
}

const REPORT: &str = "/files/report.pdf?user=42&expires=1700000000\
    &signature=90a438e3377c5188fb92ea9cc1df5815a6abc1588bc0145f46e2b9891b25d539";

#[test]
fn sign_known_answers() -> TestResult {
    let key = counting_key();
    assert_eq!(key.sign("/files/report.pdf?user=42", EXPIRES)?, REPORT);
    assert_eq!(
        key.sign("/join", EXPIRES)?,
        "/join?expires=1700000000\
         &signature=f7da51cac2ba1a6b454275516f089f35863e2b9a0a66c44c1deb1895a7e2960d"
    );
    // An empty query gets no stray `&`.
    assert_eq!(
        key.sign("/a?", EXPIRES)?,
        "/a?expires=1700000000\
         &signature=ebc2a7427216421916f0eb38c517653a005ff0ff2e3e66969dac22ab0afbe36b"
    );
    assert_eq!(
        key.sign_absolute("https://rondo.example", "/join", EXPIRES)?,
        "https://rondo.example/join?expires=1700000000\
         &signature=d17689fb4f9aa86da14e544108415c55c966022b10b2d22050aa5b160ccabf41"
    );
    Ok(())
}

#[test]
fn verifies_a_link_signed_elsewhere_with_a_configured_key() -> TestResult {
    let key = AppKey::parse("base64:q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=")?;
    let link = "/join?room=blue&expires=4102444800\
        &signature=19da9fed1f3b73b80167fe25022cbf324634a5656fc6bba042019406374d4e2c";
    assert_eq!(verify_link(&key, link, EXPIRES), Ok(()));
    assert_eq!(
        verify_link(&counting_key(), link, EXPIRES),
        Err(SignatureError::Invalid)
    );
    Ok(())
}

#[test]
fn valid_through_the_expiry_second_then_expired() {
    let key = counting_key();
    assert_eq!(verify_link(&key, REPORT, EXPIRES - 3600), Ok(()));
    assert_eq!(verify_link(&key, REPORT, EXPIRES), Ok(()));
    assert_eq!(
        verify_link(&key, REPORT, EXPIRES + 1),
        Err(SignatureError::Expired)
    );
}

#[test]
fn any_change_to_the_signed_bytes_is_invalid() {
    let key = counting_key();
    let sig = "signature=90a438e3377c5188fb92ea9cc1df5815a6abc1588bc0145f46e2b9891b25d539";
    let tampered = [
        // another parameter value
        format!("/files/report.pdf?user=43&expires=1700000000&{sig}"),
        // a later expiry
        format!("/files/report.pdf?user=42&expires=1800000000&{sig}"),
        // another path
        format!("/files/other.pdf?user=42&expires=1700000000&{sig}"),
        // order as sent matters
        format!("/files/report.pdf?expires=1700000000&user=42&{sig}"),
        // an added parameter, before or after the signature
        format!("/files/report.pdf?user=42&expires=1700000000&admin=1&{sig}"),
        format!("/files/report.pdf?user=42&expires=1700000000&{sig}&admin=1"),
        // encoding as sent matters: `42` spelled `%34%32`
        format!("/files/report.pdf?user=%34%32&expires=1700000000&{sig}"),
        // a trailing `&` is an extra (empty) parameter
        format!("/files/report.pdf?user=42&expires=1700000000&{sig}&"),
        // the signature in uppercase hex, or cut short
        format!(
            "/files/report.pdf?user=42&expires=1700000000&signature={}",
            sig["signature=".len()..].to_uppercase()
        ),
        format!(
            "/files/report.pdf?user=42&expires=1700000000&{}",
            &sig[..60]
        ),
        // a second signature, even an identical one
        format!("/files/report.pdf?user=42&expires=1700000000&{sig}&{sig}"),
    ];
    for link in &tampered {
        assert_eq!(
            verify_link(&key, link, EXPIRES),
            Err(SignatureError::Invalid),
            "{link}"
        );
    }
}

#[test]
fn signature_may_stand_anywhere() {
    let key = counting_key();
    let moved = "/files/report.pdf?\
        signature=90a438e3377c5188fb92ea9cc1df5815a6abc1588bc0145f46e2b9891b25d539\
        &user=42&expires=1700000000";
    assert_eq!(verify_link(&key, moved, EXPIRES), Ok(()));
}

#[test]
fn missing_signature() {
    let key = counting_key();
    assert_eq!(
        verify_link(&key, "/files/report.pdf", EXPIRES),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        verify_link(
            &key,
            "/files/report.pdf?user=42&expires=1700000000",
            EXPIRES
        ),
        Err(SignatureError::Missing)
    );
}

#[test]
fn a_forged_link_is_invalid_not_expired() {
    // Well-formed, long expired, and not signed with this key.
    let forged = "/files/report.pdf?user=42&expires=1699999999\
        &signature=90a438e3377c5188fb92ea9cc1df5815a6abc1588bc0145f46e2b9891b25d539";
    assert_eq!(
        verify_link(&counting_key(), forged, EXPIRES + 10),
        Err(SignatureError::Invalid)
    );
}

#[test]
fn path_and_absolute_links_do_not_cross() -> TestResult {
    let key = counting_key();
    let absolute = key.sign_absolute("https://rondo.example", "/join", EXPIRES)?;
    let path_part = absolute
        .strip_prefix("https://rondo.example")
        .ok_or("not absolute")?;
    let (path, query) = path_part.split_once('?').ok_or("no query")?;
    assert_eq!(
        key.verify_absolute("https://rondo.example", path, Some(query), EXPIRES),
        Ok(())
    );
    assert_eq!(
        key.verify_absolute("http://rondo.example", path, Some(query), EXPIRES),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        key.verify(path, Some(query), EXPIRES),
        Err(SignatureError::Invalid)
    );
    let relative = key.sign("/join", EXPIRES)?;
    let (path, query) = relative.split_once('?').ok_or("no query")?;
    assert_eq!(
        key.verify_absolute("https://rondo.example", path, Some(query), EXPIRES),
        Err(SignatureError::Invalid)
    );
    Ok(())
}

#[test]
fn bad_origins() {
    let key = counting_key();
    for origin in [
        "rondo.example",
        "https://",
        "https://rondo.example/",
        "https://rondo.example/app",
        "ftp://rondo.example",
        "https://rondo.example?x",
        "https://user@rondo.example",
    ] {
        assert_eq!(
            key.sign_absolute(origin, "/join", EXPIRES),
            Err(SignError::BadOrigin),
            "{origin}"
        );
    }
    assert!(key
        .sign_absolute("http://127.0.0.1:8080", "/join", EXPIRES)
        .is_ok());
    assert!(key
        .sign_absolute("https://[::1]:8443", "/join", EXPIRES)
        .is_ok());
}

#[test]
fn refuses_targets_that_cannot_round_trip() {
    let key = counting_key();
    assert_eq!(
        key.sign("/a?expires=5", EXPIRES),
        Err(SignError::Reserved { name: "expires" })
    );
    assert_eq!(
        key.sign("/a?x=1&signature=", EXPIRES),
        Err(SignError::Reserved { name: "signature" })
    );
    assert_eq!(key.sign("join", EXPIRES), Err(SignError::NotAPath));
    assert_eq!(
        key.sign("/r\u{e9}sum\u{e9}", EXPIRES),
        Err(SignError::Unencoded {
            found: '\u{e9}',
            at: 2
        })
    );
}

#[test]
fn fresh_keys_round_trip() -> TestResult {
    let key = AppKey::generate()?;
    let link = key.sign("/meet/abc?who=Ann%20Lee", EXPIRES)?;
    assert_eq!(verify_link(&key, &link, EXPIRES), Ok(()));
    assert_eq!(
        verify_link(&AppKey::generate()?, &link, EXPIRES),
        Err(SignatureError::Invalid)
    );
    Ok(())
}

#[test]
fn messages_for_the_403_page() {
    assert_eq!(
        SignatureError::Expired.to_string(),
        "This link has expired. Please ask for a new one."
    );
    assert_ne!(
        SignatureError::Missing.to_string(),
        SignatureError::Invalid.to_string()
    );
}
