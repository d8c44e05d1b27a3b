//! How a signed link is written and read back, byte for byte.
//!
//! The signature covers the request target exactly as the browser sends it, so the only
//! canonicalization is the one that cannot be avoided: taking the `signature` parameter out
//! again. Everything else is compared as raw bytes. Two consequences shape this file:
//!
//! - When signing, refuse what a browser would rewrite before sending it back (unencoded
//!   spaces, quotes, non-ASCII, `.`/`..` path segments, a fragment): such a link could
//!   never verify, and it is better to learn that when the link is made than when a
//!   visitor clicks it.
//! - When verifying, split on `&` and compare parameter names raw, as Laravel does with
//!   `QUERY_STRING`; never decode and re-encode, which would make different URLs look equal.

use super::{SignError, SignatureError};

/// The query parameter holding the hex HMAC.
pub(super) const SIGNATURE: &str = "signature";
/// The query parameter holding the expiry (Unix seconds).
pub(super) const EXPIRES: &str = "expires";

/// Checks that `path_and_query` can be signed: it starts with `/`, every byte is one a
/// browser sends unchanged, no path segment is a dot segment, and the reserved parameter
/// names are not used. Returns the position of the `?`, if any.
///
/// # Errors
///
/// The [`SignError`] naming the first problem.
pub(super) fn check_signable(path_and_query: &str) -> Result<Option<usize>, SignError> {
    if !path_and_query.starts_with('/') {
        return Err(SignError::NotAPath);
    }
    if let Some((at, c)) = path_and_query
        .char_indices()
        .find(|&(at, c)| !sent_unchanged(path_and_query.as_bytes(), at, c))
    {
        return Err(SignError::Unencoded { found: c, at });
    }
    let question = path_and_query.find('?');
    let (path, query) = match question {
        Some(at) => (&path_and_query[..at], Some(&path_and_query[at + 1..])),
        None => (path_and_query, None),
    };
    if path.split('/').any(is_dot_segment) {
        return Err(SignError::DotSegment);
    }
    for name in query.into_iter().flat_map(params).map(|(name, _)| name) {
        let decoded = percent_decode_lossy(name);
        for reserved in [EXPIRES, SIGNATURE] {
            if decoded == reserved {
                return Err(SignError::Reserved { name: reserved });
            }
        }
    }
    Ok(question)
}

/// The query without its `signature` parameter, and that parameter's value.
///
/// # Errors
///
/// [`SignatureError::Missing`] when there is no `signature`, [`SignatureError::Invalid`]
/// when there is more than one.
pub(super) fn take_signature(query: &str) -> Result<(String, &str), SignatureError> {
    let mut signature = None;
    let mut rest: Vec<&str> = Vec::new();
    for segment in query.split('&') {
        match split_param(segment) {
            (SIGNATURE, value) if signature.is_none() => signature = Some(value),
            (SIGNATURE, _) => return Err(SignatureError::Invalid),
            _ => rest.push(segment),
        }
    }
    let signature = signature.ok_or(SignatureError::Missing)?;
    Ok((rest.join("&"), signature))
}

/// The value of the one `expires` parameter of an (already authenticated) query.
///
/// # Errors
///
/// [`SignatureError::Invalid`] when it is absent, repeated, or not a decimal number.
pub(super) fn expires(query: &str) -> Result<u64, SignatureError> {
    let mut values = params(query).filter(|&(name, _)| name == EXPIRES);
    match (values.next(), values.next()) {
        (Some((_, value)), None) if is_decimal(value) => {
            value.parse().map_err(|_| SignatureError::Invalid)
        }
        _ => Err(SignatureError::Invalid),
    }
}

/// Lowercase hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The 32 bytes written as 64 lowercase hex digits, or `None` for anything else (uppercase
/// included: one link, one spelling).
pub(super) fn unhex_32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (lower_hex_value(pair[0])? << 4) | lower_hex_value(pair[1])?;
    }
    Some(out)
}

/// `name=value` segments of a query, split at the first `=` (a bare `name` has an empty
/// value). Empty segments (`a=1&&b=2`) are kept as empty names.
fn params(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').map(split_param)
}

fn split_param(segment: &str) -> (&str, &str) {
    segment.split_once('=').unwrap_or((segment, ""))
}

/// Whether the character at byte `at` travels unchanged from an `href` to the request
/// line: RFC 3986 unreserved characters, sub-delimiters except `'` (which browsers encode
/// in queries), `:`, `@`, `/`, `?`, and `%` when it starts a valid escape.
fn sent_unchanged(all: &[u8], at: usize, c: char) -> bool {
    match c {
        'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '.' | '_' | '~' => true,
        '!' | '$' | '&' | '(' | ')' | '*' | '+' | ',' | ';' | '=' | ':' | '@' | '/' | '?' => true,
        '%' => matches!(
            (all.get(at + 1), all.get(at + 2)),
            (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit()
        ),
        _ => false,
    }
}

/// `.` and `..`, also spelled with `%2e`, which browsers resolve away before sending.
fn is_dot_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."
    )
}

/// `%XX` escapes and `+` decoded, as a form parser would see a name; invalid UTF-8 is
/// replaced (this is only compared against ASCII names).
fn percent_decode_lossy(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|pair| Some((hex_value(pair[0])? << 4) | hex_value(pair[1])?));
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_decimal(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn lower_hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    lower_hex_value(digit.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_taken_out_wherever_it_is() {
        assert_eq!(
            take_signature("a=1&signature=ab&expires=5"),
            Ok(("a=1&expires=5".to_owned(), "ab"))
        );
        assert_eq!(take_signature("signature=ab"), Ok((String::new(), "ab")));
        // Raw names: an escaped spelling is an ordinary parameter, covered by the MAC.
        assert_eq!(
            take_signature("sig%6Eature=x&signature=ab"),
            Ok(("sig%6Eature=x".to_owned(), "ab"))
        );
        // A bare `signature` is a signature with an empty value.
        assert_eq!(take_signature("a&signature"), Ok(("a".to_owned(), "")));
    }

    #[test]
    fn signature_missing_or_twice() {
        assert_eq!(
            take_signature("a=1&expires=5"),
            Err(SignatureError::Missing)
        );
        assert_eq!(take_signature(""), Err(SignatureError::Missing));
        assert_eq!(
            take_signature("signature=ab&a=1&signature=ab"),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn expires_must_be_one_decimal() {
        assert_eq!(expires("a=1&expires=1700000000"), Ok(1_700_000_000));
        assert_eq!(expires("a=1"), Err(SignatureError::Invalid));
        assert_eq!(expires("expires=1&expires=2"), Err(SignatureError::Invalid));
        assert_eq!(expires("expires=-1"), Err(SignatureError::Invalid));
        assert_eq!(expires("expires=+1"), Err(SignatureError::Invalid));
        assert_eq!(expires("expires="), Err(SignatureError::Invalid));
        assert_eq!(
            expires("expires=99999999999999999999"),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn hex_round_trip_is_lowercase_only() {
        let mut bytes = [0u8; 32];
        for (b, value) in bytes.iter_mut().zip((0u8..).step_by(8)) {
            *b = value;
        }
        let text = hex(&bytes);
        assert_eq!(&text[..8], "00081018");
        assert_eq!(unhex_32(&text), Some(bytes));
        assert_eq!(unhex_32(&text.to_ascii_uppercase()), None);
        assert_eq!(unhex_32(&text[2..]), None);
        assert_eq!(unhex_32(&format!("{}zz", &text[2..])), None);
    }

    #[test]
    fn signable_targets() {
        assert_eq!(check_signable("/a/b"), Ok(None));
        assert_eq!(check_signable("/a?x=1&y=%C3%B6"), Ok(Some(2)));
        assert_eq!(check_signable("a/b"), Err(SignError::NotAPath));
        assert_eq!(check_signable("https://x/a"), Err(SignError::NotAPath));
        assert_eq!(
            check_signable("/a?name=J\u{f6}rg"),
            Err(SignError::Unencoded {
                found: '\u{f6}',
                at: 9
            })
        );
        assert_eq!(
            check_signable("/a b"),
            Err(SignError::Unencoded { found: ' ', at: 2 })
        );
        assert_eq!(
            check_signable("/a?q=it's"),
            Err(SignError::Unencoded { found: '\'', at: 7 })
        );
        assert_eq!(
            check_signable("/a#top"),
            Err(SignError::Unencoded { found: '#', at: 2 })
        );
        assert_eq!(
            check_signable("/a?x=%zz"),
            Err(SignError::Unencoded { found: '%', at: 5 })
        );
        assert_eq!(check_signable("/a/../b"), Err(SignError::DotSegment));
        assert_eq!(check_signable("/a/%2E%2e/b"), Err(SignError::DotSegment));
        // Dots inside a segment, or in the query, are fine.
        assert_eq!(check_signable("/a/..b/c.txt?p=../x"), Ok(Some(12)));
    }

    #[test]
    fn reserved_names_in_any_spelling() {
        for query in ["expires=1", "a=1&signature=x", "expir%65s=1", "signature"] {
            let target = format!("/a?{query}");
            assert!(
                matches!(check_signable(&target), Err(SignError::Reserved { .. })),
                "{target}"
            );
        }
        assert_eq!(check_signable("/a?expires_at=1"), Ok(Some(2)));
    }
}
