//! Names: the random ones files are stored under, the client's one kept for display only,
//! media types checked against `[files] allowed_types`, and the `Content-Disposition` a
//! download is sent with.
//!
//! A name a client sends (`filename="../../etc/passwd"`) never becomes a path: files are
//! stored under 128 random bits, and the client's name is reduced to a harmless display
//! name (its last path segment, without control characters, at most 255 bytes) that is
//! only ever put in a header, quoted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;

/// Random bytes per id.
const ID_BYTES: usize = 16;
/// Characters per id: `ceil(16 * 8 / 6)`.
const ID_CHARS: usize = 22;
/// The longest display name kept, in bytes (a common file system limit for one name).
const MAX_NAME: usize = 255;

/// A fresh random id: 22 URL-safe base64 characters (no `/`, `.`, `{` or `}`).
pub(crate) fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; ID_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `text` has the shape of an id made by [`random_id`].
pub(crate) fn is_id(text: &str) -> bool {
    text.len() == ID_CHARS
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The name a temporary file has on disk: its expiry (Unix seconds) and its id, so that the
/// sweeper can tell an expired file by its name alone, whatever became of its record.
pub(crate) fn disk_name(expires_at: u64, id: &str) -> String {
    format!("{expires_at}-{id}")
}

/// The expiry and id of a name made by [`disk_name`]; `None` for any other name.
pub(crate) fn parse_disk_name(name: &str) -> Option<(u64, &str)> {
    let (expires, id) = name.split_once('-')?;
    let digits =
        !expires.is_empty() && expires.len() <= 20 && expires.bytes().all(|b| b.is_ascii_digit());
    if !digits || !is_id(id) {
        return None;
    }
    Some((expires.parse().ok()?, id))
}

/// The client's file name made safe to show: the part after the last `/` or `\`, without
/// control characters, trimmed, at most 255 bytes (cut at a character boundary); `file` when
/// nothing is left, and never `.` or `..`.
pub fn display_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let mut name = cleaned.trim().to_owned();
    if name.len() > MAX_NAME {
        let mut end = MAX_NAME;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    if name.is_empty() || name == "." || name == ".." {
        return "file".to_owned();
    }
    name
}

/// Whether `media` (lowercase `type/subtype`) is in `allowed`, where `type/*` allows a whole
/// type and `*/*` everything.
pub(crate) fn is_allowed(media: &str, allowed: &[String]) -> bool {
    let kind = media.split('/').next().unwrap_or("");
    allowed.iter().any(|a| {
        a == "*/*" || a == media || a.strip_suffix("/*").is_some_and(|prefix| prefix == kind)
    })
}

/// A media type a file may be stored and served with: lowercase `type/subtype` made of token
/// characters, or `application/octet-stream` for anything else (or nothing).
pub(crate) fn media_type(declared: Option<&str>) -> String {
    let token = |t: &str| {
        !t.is_empty()
            && t.len() <= 127
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let essence = declared
        .and_then(|d| d.split(';').next())
        .map(|d| d.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match essence.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) => essence,
        _ => "application/octet-stream".to_owned(),
    }
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266):
/// the fallback replaces what is not printable ASCII, `"` and `\` with `_`.
pub(crate) fn content_disposition(name: &str) -> HeaderValue {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let value = format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_never_paths() {
        assert_eq!(display_name("report.pdf"), "report.pdf");
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("C:\\Users\\ann\\cv.pdf"), "cv.pdf");
        assert_eq!(display_name("a/b/.."), "file");
        assert_eq!(display_name("dir/"), "file");
        assert_eq!(display_name(""), "file");
        assert_eq!(display_name("bad\u{0}\r\nname.txt"), "badname.txt");
        assert_eq!(display_name("  spaced  "), "spaced");
        let long = "é".repeat(200);
        let cut = display_name(&long);
        assert!(
            cut.len() <= 255 && cut.chars().all(|c| c == 'é'),
            "{}",
            cut.len()
        );
    }

    #[test]
    fn disk_names_round_trip_and_refuse_others() -> Result<(), getrandom::Error> {
        let id = random_id()?;
        assert!(is_id(&id));
        let name = disk_name(1_700_000_000, &id);
        assert_eq!(parse_disk_name(&name), Some((1_700_000_000, id.as_str())));
        for other in [
            "",
            "x-y",
            "-AAAAAAAAAAAAAAAAAAAAAA",
            "12-short",
            "1.2-AAAAAAAAAAAAAAAAAAAAAA",
            "abc.part",
        ] {
            assert_eq!(parse_disk_name(other), None, "{other}");
        }
        assert_eq!(
            parse_disk_name("17-AAAAAAAAAAAAAAAAAAAA-_"),
            Some((17, "AAAAAAAAAAAAAAAAAAAA-_"))
        );
        Ok(())
    }

    #[test]
    fn media_types_and_the_allow_list() {
        let allowed = vec!["image/*".to_owned(), "text/plain".to_owned()];
        assert!(is_allowed("image/png", &allowed));
        assert!(is_allowed("text/plain", &allowed));
        assert!(!is_allowed("text/html", &allowed));
        assert!(!is_allowed("imagex/png", &allowed));
        assert!(is_allowed("text/html", &["*/*".to_owned()]));
        assert_eq!(media_type(Some("Image/PNG; charset=x")), "image/png");
        assert_eq!(media_type(Some("nonsense")), "application/octet-stream");
        assert_eq!(media_type(Some("text/ht\"ml")), "application/octet-stream");
        assert_eq!(media_type(None), "application/octet-stream");
    }

    #[test]
    fn content_disposition_quotes_and_encodes() {
        let value = content_disposition("naïve \"x\".txt");
        assert_eq!(
            value.to_str().ok(),
            Some(
                "attachment; filename=\"na_ve _x_.txt\"; filename*=UTF-8''na%C3%AFve%20%22x%22.txt"
            )
        );
    }
}
