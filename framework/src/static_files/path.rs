//! Which file a request names: the route parameter checked for every way out of the
//! directory, then written back as the URI the engine reads.
//!
//! The check comes before the engine's own (which refuses `..`, roots and drive prefixes)
//! so that what is refused does not depend on the engine's version, and so that dotfiles
//! and backslashes, which the engine would serve on Unix, are refused too.

use std::fmt::Write;

/// The longest file path served, in bytes; longer ones answer 404 without a look at the
/// disk (file systems refuse them anyway, with an error that would otherwise be a 500).
const MAX_PATH_BYTES: usize = 1024;

/// `path` as a safe relative path, or `None` for anything refused (see the module
/// documentation). A trailing `/` (a directory) is kept.
pub(super) fn checked(path: &str, dotfiles: bool) -> Option<&str> {
    if path.len() > MAX_PATH_BYTES || path.starts_with('/') || path.contains(['\\', '\0']) {
        return None;
    }
    let inner = path.strip_suffix('/').unwrap_or(path);
    if inner.is_empty() {
        return path.is_empty().then_some(path);
    }
    let safe = inner.split('/').all(|segment| {
        !segment.is_empty()
            && segment.len() <= 255
            && segment != "."
            && segment != ".."
            && (dotfiles || !segment.starts_with('.'))
    });
    safe.then_some(path)
}

/// The origin-form URI the engine reads the path from. The router decoded the path once;
/// the engine decodes it again, so everything but unreserved characters is re-encoded:
/// a file named `100%.txt` keeps its name, and the `%2e` a client wrote as `%252e` never
/// becomes a dot.
pub(super) fn engine_uri(path: &str) -> Option<http::Uri> {
    const KEPT: &[u8] = b"-._~/!$&'()*+,;=:@";
    let mut encoded = String::with_capacity(path.len() + 1);
    encoded.push('/');
    for &byte in path.as_bytes() {
        if byte.is_ascii_alphanumeric() || KEPT.contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            // Writing to a `String` cannot fail.
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    http::Uri::try_from(encoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths that could leave the directory, or name a dotfile, are refused before any
    /// file is opened; ordinary paths and directories pass.
    #[test]
    fn checked_paths() {
        for ok in [
            "",
            "a.css",
            "css/site.css",
            "docs/",
            "a b/c%d.txt",
            "ünï.txt",
        ] {
            assert_eq!(checked(ok, false), Some(ok), "{ok:?}");
        }
        let long = "a".repeat(256);
        for refused in [
            "..",
            "../x",
            "a/../b",
            "a/..",
            "./a",
            "a/./b",
            "/etc/passwd",
            "//x",
            "a//b",
            "..\\x",
            "a\\b",
            "a\0b",
            ".env",
            ".git/config",
            "a/.hidden",
            "/",
            &long,
        ] {
            assert_eq!(checked(refused, false), None, "{refused:?}");
        }
        assert_eq!(checked(".well-known/x", true), Some(".well-known/x"));
        assert_eq!(checked("../x", true), None);
    }

    /// The engine URI re-encodes what the router decoded, so the engine's own decoding
    /// gives back the same name.
    #[test]
    fn engine_uri_reencodes() {
        let uri = |p| engine_uri(p).map(|u| u.to_string());
        assert_eq!(uri("css/site.css").as_deref(), Some("/css/site.css"));
        assert_eq!(uri("100%.txt").as_deref(), Some("/100%25.txt"));
        assert_eq!(uri("a b?c#d").as_deref(), Some("/a%20b%3Fc%23d"));
        assert_eq!(uri("ü").as_deref(), Some("/%C3%BC"));
    }
}
