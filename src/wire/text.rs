//! The rules for text that crosses both kinds of socket: nicks and chat text.
//!
//! Peers and local clients are held to the same nick rule, and text from anywhere is made
//! safe for a terminal here, just before it is written to a client.

use std::borrow::Cow;
use std::fmt;
use std::io;

/// Longest nick, in bytes.
pub const MAX_NICK_LEN: usize = 32;

/// Longest chat text, in bytes; also the longest line a control client may write.
pub const MAX_TEXT_LEN: usize = 4096;

/// Writes a time in milliseconds since the Unix epoch as RFC 3339 UTC to the second,
/// e.g. `2026-12-01T21:31:43Z`.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm), for years from 1970 on.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// What is wrong with a proposed nick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NickError {
    /// Zero bytes long.
    Empty,
    /// More than [`MAX_NICK_LEN`] bytes.
    TooLong(usize),
    /// Holds a space, `<`, `>`, `#` or a control character, which would make lines
    /// ambiguous (`#` marks a nick that another key holds: `NICK#XXXX`).
    BadChar(char),
}

impl fmt::Display for NickError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NickError::Empty => f.write_str("nick is empty"),
            NickError::TooLong(len) => {
                write!(f, "nick is {len} bytes, the limit is {MAX_NICK_LEN}")
            }
            NickError::BadChar(c) => write!(
                f,
                "nick may not contain {:?} (no spaces, '<', '>', '#' or control characters)",
                c
            ),
        }
    }
}

impl std::error::Error for NickError {}

/// Checks the nick rule: 1 to 32 bytes without spaces, `<`, `>`, `#` or control characters
/// (nor the other characters [`is_unsafe_char`] names).
pub fn check_nick(nick: &str) -> Result<(), NickError> {
    if nick.is_empty() {
        return Err(NickError::Empty);
    }
    if nick.len() > MAX_NICK_LEN {
        return Err(NickError::TooLong(nick.len()));
    }
    match nick
        .chars()
        .find(|&c| c.is_whitespace() || matches!(c, '<' | '>' | '#') || is_unsafe_char(c))
    {
        Some(c) => Err(NickError::BadChar(c)),
        None => Ok(()),
    }
}

/// Characters a terminal obeys rather than shows: the C0 and C1 controls and DEL, and
/// the bidirectional overrides and isolates, which can make a line display as something
/// other than what it holds.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text with every unsafe character (see [`is_unsafe_char`]) replaced by U+FFFD, so that
/// a terminal shows it instead of obeying it. Borrows when there is nothing to replace,
/// the common case.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    // Every unsafe character is outside ASCII's printable range, so most lines are
    // cleared by a byte scan.
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) || !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_unsafe_char(c) { '\u{FFFD}' } else { c })
            .collect(),
    )
}

/// An I/O error as a person reads it: the system's message without the
/// `(os error N)` that Rust appends.
pub fn describe_io_error(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or_else(|| text.clone(), str::to_owned),
        None => text,
    }
}

/// Bytes as lower-case hex digits, as key files and `/status` show keys.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_rule() {
        assert_eq!(check_nick("alice"), Ok(()));
        assert_eq!(check_nick("ünïcødé-ok_1"), Ok(()));
        assert_eq!(check_nick(&"x".repeat(32)), Ok(()));
        assert_eq!(check_nick(""), Err(NickError::Empty));
        assert_eq!(check_nick(&"x".repeat(33)), Err(NickError::TooLong(33)));
        assert_eq!(check_nick("a b"), Err(NickError::BadChar(' ')));
        assert_eq!(check_nick("<a"), Err(NickError::BadChar('<')));
        assert_eq!(check_nick("a#1"), Err(NickError::BadChar('#')));
    }

    #[test]
    fn times_are_written_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_160_703_999), "2026-12-01T21:31:43Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00Z");
        assert_eq!(check_nick("a>"), Err(NickError::BadChar('>')));
        assert_eq!(check_nick("a\tb"), Err(NickError::BadChar('\t')));
        assert_eq!(check_nick("a\u{1b}"), Err(NickError::BadChar('\u{1b}')));
        assert_eq!(check_nick("a\u{85}"), Err(NickError::BadChar('\u{85}')));
    }

    #[test]
    fn sanitize_replaces_control_characters_only() {
        assert!(matches!(
            sanitize("plain text"),
            Cow::Borrowed("plain text")
        ));
        assert_eq!(
            sanitize("a\u{1b}[2Jb\r\n\t\u{7f}\u{9b}"),
            "a\u{FFFD}[2Jb\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        assert_eq!(sanitize("héllo ☃"), "héllo ☃");
        assert_eq!(sanitize("user\u{202e}fdp.exe"), "user\u{FFFD}fdp.exe");
    }

    #[test]
    fn bidi_overrides_are_not_nick_characters() {
        assert_eq!(
            check_nick("ann\u{202e}"),
            Err(NickError::BadChar('\u{202e}'))
        );
    }

    #[test]
    fn os_errors_read_plainly() {
        let err = io::Error::from_raw_os_error(98);
        assert_eq!(describe_io_error(&err), "Address already in use");
        let custom = io::Error::other("cannot resolve x: no address");
        assert_eq!(describe_io_error(&custom), "cannot resolve x: no address");
    }
}
