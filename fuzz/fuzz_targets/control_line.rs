//! The control socket's text path: `wire::control::LineBuffer`, `parse_command`, the
//! line writers and `wire::text::sanitize`, on arbitrary client bytes cut into
//! arbitrary reads.
//!
//! Input: one byte `r`, then a cut plan and the stream (see `p2pchat_fuzz::Chunks`).
//! Each read holds its piece of the stream `2^(r % 8)` times over (up to 16 KiB in
//! all), so that short inputs make lines longer than the 4 KiB limit.
//!
//! Checks, besides "no panic":
//! - each line handed out holds no LF, is at most `MAX_LINE_LEN` bytes and is the
//!   UTF-8 it claims to be; after the lines run out, the buffer holds at most one
//!   unfinished line (`MAX_LINE_LEN` plus a CR), however long the client's line is;
//! - `parse_command` keeps the text of `Say` (`//TEXT` says `/TEXT`), gives `/nick`
//!   and `/connect` one word, and `/history` the number it was given (or the default);
//! - `sanitize` leaves no character for which `is_unsafe_char` holds, replaces
//!   character for character, and changes nothing in text that has none of them;
//! - a formatted `<nick> text` or `! ...` line (an error quoting the client's line)
//!   is one line, safe for a terminal: its only control character is the final LF.

#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::wire::control::{self, Command, LineBuffer, DEFAULT_HISTORY, MAX_LINE_LEN};
use p2pchat::wire::text;
use p2pchat_fuzz::Chunks;

/// Checks what `sanitize` makes of `s`.
fn check_sanitize(s: &str) {
    let clean = text::sanitize(s);
    assert!(
        !clean.chars().any(text::is_unsafe_char),
        "sanitize left an unsafe character in {clean:?}"
    );
    assert_eq!(clean.chars().count(), s.chars().count(), "one for one");
    if !s.chars().any(text::is_unsafe_char) {
        assert_eq!(clean, s, "sanitize changed safe text");
    }
}

/// Checks a line as a client would read it.
fn check_client_line(out: &[u8]) {
    let line = std::str::from_utf8(out).expect("lines to clients are UTF-8");
    let body = line.strip_suffix('\n').expect("lines to clients end in LF");
    assert!(
        !body.chars().any(text::is_unsafe_char),
        "unsafe character in a line to a client: {line:?}"
    );
}

/// Checks one line from the buffer, and what the node would make of it.
fn check_line(line: &str) {
    assert!(!line.contains('\n'), "a line holds a LF");
    assert!(line.len() <= MAX_LINE_LEN, "a line of {} bytes", line.len());
    check_sanitize(line);
    let _ = control::is_host_port(line);

    match control::parse_command(line) {
        Ok(Command::Say(said)) => {
            // `//TEXT` says `/TEXT`.
            let expected = if line.starts_with("//") {
                &line[1..]
            } else {
                line
            };
            assert_eq!(said, expected, "Say changed the text");
            // The nick is checked by the node before a line is written with it.
            let mut out = Vec::new();
            control::write_chat(&mut out, "nick", said);
            check_client_line(&out);
        }
        Ok(Command::Nick(word) | Command::Connect(word)) => {
            assert!(!word.is_empty() && !word.contains(char::is_whitespace));
            if text::check_nick(word).is_ok() {
                assert_eq!(text::sanitize(word), word, "a valid nick needs sanitising");
            }
        }
        Ok(Command::History(n)) => {
            let rest = line
                .strip_prefix("/history")
                .expect("only /history asks for it");
            let arg = rest.trim();
            assert!(rest.is_empty() || rest.starts_with(char::is_whitespace));
            let expected = if arg.is_empty() {
                Ok(DEFAULT_HISTORY)
            } else {
                arg.parse()
            };
            assert_eq!(expected, Ok(n), "/history took another number");
        }
        Ok(Command::Peers | Command::Who | Command::Status | Command::Help | Command::Quit) => {}
        Err(err) => {
            // Replies quote the client's line back: they are sanitised as a whole.
            let mut out = Vec::new();
            control::write_error(&mut out, format_args!("{err}"));
            check_client_line(&out);
        }
    }
}

/// Takes every complete line out of `lines`.
fn drain(lines: &mut LineBuffer) {
    while let Some(line) = lines.next_line() {
        match line {
            Ok(line) => check_line(line),
            Err(err) => {
                let mut out = Vec::new();
                control::write_error(&mut out, format_args!("{err}"));
                check_client_line(&out);
            }
        }
    }
    // An over-long line is discarded as it arrives, not kept.
    assert!(
        lines.buffered() <= MAX_LINE_LEN + 1,
        "{} bytes buffered with no complete line",
        lines.buffered()
    );
}

/// Bytes delivered at the most, however often pieces are repeated: enough for a few
/// over-long lines, few enough that an input of many short lines stays fast.
const MAX_DELIVERED: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&repeat, data)) = data.split_first() else {
        return;
    };
    let copies = 1 << (repeat % 8);
    let chunks = Chunks::new(data);
    check_sanitize(&String::from_utf8_lossy(chunks.stream()));

    let mut lines = LineBuffer::default();
    let mut delivered = 0;
    for piece in chunks {
        let len = (piece.len() * copies).min(MAX_DELIVERED - delivered);
        if len == 0 {
            break;
        }
        let read: Vec<u8> = piece.iter().copied().cycle().take(len).collect();
        delivered += read.len();
        lines.push(&read);
        drain(&mut lines);
    }
    // The client closed: its unterminated last line counts too.
    lines.finish();
    drain(&mut lines);
});
