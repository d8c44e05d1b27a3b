//! The two URL query-string operations the protocol needs: decoding a query
//! (`application/x-www-form-urlencoded`, as every Pusher library and browser writes it) and
//! percent-encoding a value when this side builds one.
//!
//! Pusher signs *decoded* values ("the string must not be URL-escaped"), so the verifier has to
//! decode exactly like the signer's HTTP stack encoded: `%XX` escapes and `+` for a space.

/// Why a query string could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A `%` is not followed by two hexadecimal digits.
    #[error("invalid percent-escape in the query string")]
    BadEscape,
    /// A decoded key or value is not UTF-8.
    #[error("the query string does not decode to UTF-8")]
    NotUtf8,
}

/// Decodes `a=1&b=two+words&c=%2F` into `[("a","1"), ("b","two words"), ("c","/")]`, in order.
/// Empty segments (`a=1&&b=2`) are skipped; a segment without `=` is a key with an empty value.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            Ok((form_decode(key)?, form_decode(value)?))
        })
        .collect()
}

/// Decodes one form-encoded component: `+` is a space, `%XX` a byte.
pub fn form_decode(component: &str) -> Result<String, QueryError> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&b| hex_value(b));
                let lo = bytes.get(i + 2).and_then(|&b| hex_value(b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(QueryError::BadEscape),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| QueryError::NotUtf8)
}

/// Percent-encodes everything except the RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`), which is safe in any query position.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// The value of one hexadecimal digit of either case.
pub(super) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn decodes_form_encoding() {
        assert_eq!(
            parse_query("a=1&b=two+words&c=%2F%2f&&d&e=").unwrap(),
            pairs(&[
                ("a", "1"),
                ("b", "two words"),
                ("c", "//"),
                ("d", ""),
                ("e", "")
            ])
        );
        assert_eq!(parse_query("").unwrap(), pairs(&[]));
        assert_eq!(
            parse_query("n=caf%C3%A9&x=a=b").unwrap(),
            pairs(&[("n", "café"), ("x", "a=b")])
        );
    }

    #[test]
    fn rejects_bad_escapes_and_non_utf8() {
        assert_eq!(parse_query("a=%"), Err(QueryError::BadEscape));
        assert_eq!(parse_query("a=%4"), Err(QueryError::BadEscape));
        assert_eq!(parse_query("a=%zz"), Err(QueryError::BadEscape));
        assert_eq!(parse_query("%ff=1"), Err(QueryError::NotUtf8));
    }

    #[test]
    fn encodes_all_but_unreserved() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode("a b/c&d=é"), "a%20b%2Fc%26d%3D%C3%A9");
        let original = "Something else & more: ünïcode";
        assert_eq!(form_decode(&percent_encode(original)).unwrap(), original);
    }
}
