//! What a room is made of: the room itself, its members, its chat and its shared files, as
//! the store keeps them and the API answers them; and the rules for what a client may send.

use serde::{Deserialize, Serialize};

/// How many chat messages a room keeps (older ones are dropped as new ones arrive).
pub const CHAT_KEEP: usize = 50;
/// The longest chat message, in characters.
pub const CHAT_MAX_CHARS: usize = 500;
/// The longest room title, in characters.
pub const TITLE_MAX_CHARS: usize = 100;
/// The most participants a room may admit (its host not counted).
pub const MAX_CAPACITY: u32 = 1000;
/// How long a room lives after its start: its records, links and files go with it.
pub const ROOM_LIFETIME_SECS: u64 = 24 * 3600;

/// A meeting room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// Its id (24 hex digits): what its URLs name.
    pub id: String,
    /// Its title, as the host typed it (shown escaped).
    pub title: String,
    /// When it starts (Unix seconds); links made for it open then unless told otherwise.
    pub starts_at: u64,
    /// How many participants it admits besides its host.
    pub capacity: u32,
    /// The host's member id.
    pub host: String,
    /// The host's name.
    pub host_name: String,
    /// Closed by its host: nobody joins, its links and channel are refused.
    pub closed: bool,
    /// When it is gone (Unix seconds): `starts_at` + [`ROOM_LIFETIME_SECS`].
    pub expires_at: u64,
    /// When it was created (Unix seconds).
    pub created_at: u64,
}

/// A member of a room: its host, or someone admitted through one of its links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Their id within the app: `u-…` for a logged-in user (the same in every browser),
    /// `g-…` for a visitor's session. Their presence `user_id`.
    pub id: String,
    /// The name others see.
    pub name: String,
    /// Whether they host the room.
    pub host: bool,
    /// When they joined (Unix seconds).
    pub joined_at: u64,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// When it was sent (Unix milliseconds, by the server that took it).
    pub at_ms: u64,
    /// The sender's member id.
    pub from: String,
    /// The sender's name.
    pub name: String,
    /// The text, as sent (pages show it escaped).
    pub text: String,
}

/// A file shared in a room, as its members see it listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFile {
    /// The temporary file's id.
    pub id: String,
    /// Its display name (made safe by the upload).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    pub content_type: String,
    /// Who shared it (a name).
    pub by: String,
    /// When it goes away (Unix seconds).
    pub expires_at: u64,
    /// When it was shared (Unix milliseconds): the listing's order.
    pub shared_at_ms: u64,
}

/// Checks a room title: 1 to [`TITLE_MAX_CHARS`] characters, no control characters.
///
/// # Errors
///
/// A message for the client.
pub fn parse_title(title: &str) -> Result<String, String> {
    let title = title.trim();
    if title.is_empty()
        || title.chars().count() > TITLE_MAX_CHARS
        || title.chars().any(char::is_control)
    {
        return Err(format!(
            "the title must be 1 to {TITLE_MAX_CHARS} printable characters"
        ));
    }
    Ok(title.to_owned())
}

/// Checks a capacity: 1 to [`MAX_CAPACITY`].
///
/// # Errors
///
/// A message for the client.
pub fn parse_capacity(capacity: u64) -> Result<u32, String> {
    u32::try_from(capacity)
        .ok()
        .filter(|c| (1..=MAX_CAPACITY).contains(c))
        .ok_or_else(|| format!("the capacity must be 1 to {MAX_CAPACITY}"))
}

/// Checks a chat message: 1 to [`CHAT_MAX_CHARS`] characters once trimmed.
///
/// # Errors
///
/// A message for the client.
pub fn parse_chat(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("a message needs some text".to_owned());
    }
    let chars = text.chars().count();
    if chars > CHAT_MAX_CHARS {
        return Err(format!(
            "a message is at most {CHAT_MAX_CHARS} characters (this one has {chars})"
        ));
    }
    Ok(text.to_owned())
}

/// Checks a participant's name for a personal invitation: 1 to 64 printable characters.
///
/// # Errors
///
/// A message for the client.
pub fn parse_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err("a participant's name must be 1 to 64 printable characters".to_owned());
    }
    Ok(name.to_owned())
}

/// Whether `id` has the shape of a room id (24 lower-case hex digits), so that nothing else
/// reaches a Redis key.
pub fn is_room_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `id` has the shape of a member id (`u-` or `g-`, then hex digits).
pub fn is_member_id(id: &str) -> bool {
    let Some(hex) = id.strip_prefix("u-").or_else(|| id.strip_prefix("g-")) else {
        return false;
    };
    (1..=64).contains(&hex.len()) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// `n` random bytes as hex, from the operating system.
///
/// # Errors
///
/// The operating system has no randomness to give.
pub fn random_hex(n: usize) -> Result<String, getrandom::Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// `secs` (Unix seconds) as `2026-12-02 01:30 UTC`, for pages.
pub fn utc_text(secs: u64) -> String {
    let (y, mo, d, h, mi, _) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}

/// `secs` (Unix seconds) as `2026-12-02T01:30:00Z`, for `<time datetime>`.
pub fn utc_iso(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The calendar date and time of `secs` in UTC (the proleptic Gregorian calendar, by
/// Howard Hinnant's days-to-civil algorithm).
fn civil(secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day, rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::utc_text(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc_text(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(super::utc_iso(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(super::utc_iso(951_782_400), "2000-02-29T00:00:00Z");
    }

    use super::*;

    #[test]
    fn input_rules() {
        assert_eq!(parse_title("  Standup "), Ok("Standup".to_owned()));
        assert!(parse_title("").is_err());
        assert!(parse_title(&"x".repeat(TITLE_MAX_CHARS + 1)).is_err());
        assert!(parse_title("a\u{7}b").is_err());
        assert_eq!(parse_capacity(5), Ok(5));
        assert!(parse_capacity(0).is_err());
        assert!(parse_capacity(u64::from(MAX_CAPACITY) + 1).is_err());
        assert!(parse_chat(&"é".repeat(CHAT_MAX_CHARS)).is_ok());
        assert!(parse_chat(&"é".repeat(CHAT_MAX_CHARS + 1)).is_err());
        assert!(parse_chat("   ").is_err());
    }

    #[test]
    fn ids() {
        assert!(is_room_id("0123456789abcdef01234567"));
        assert!(!is_room_id("0123456789ABCDEF01234567"));
        assert!(!is_room_id("{x}3456789abcdef01234567"));
        assert!(is_member_id("u-00ff"));
        assert!(is_member_id("g-abc"));
        assert!(!is_member_id("x-abc"));
        assert!(!is_member_id("u-"));
        assert!(!is_member_id("u-ab{c}"));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        let drawn = random_hex(12).unwrap_or_default();
        assert!(is_room_id(&drawn), "{drawn}");
    }
}
