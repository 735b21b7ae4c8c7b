//! The chat lines the bench writes: their text (an index, for W2 also a send time,
//! then filler), whole payloads of them, the chat frames that carry them from fake
//! peers, and reading the numbers back.

use std::fmt::{self, Write as _};

use p2pchat::config::DEFAULT_HOP_LIMIT;
use p2pchat::wire::peer::Chat;

/// The run (hello and chat epoch) of every fake peer: one run each, so any constant does.
pub const EPOCH: u64 = 1;
/// Bytes of text in every chat line the bench writes.
pub const TEXT_LEN: usize = 64;
/// Each line's text starts with its index in this many decimal digits.
const INDEX_DIGITS: usize = 12;
/// Digits of the send time (ns) in a W2 line, after the index and a space.
const SENT_DIGITS: usize = 20;
/// What fills a line's text up to [`TEXT_LEN`] after its numbers.
const FILLER: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

/// N lines for a client to write: each an indexed text of [`TEXT_LEN`] bytes and a LF.
pub fn line_payload(lines: u64) -> Vec<u8> {
    let mut payload = String::with_capacity(to_usize(lines) * (TEXT_LEN + 1));
    for index in 0..lines {
        push_indexed_text(&mut payload, index);
        payload.push('\n');
    }
    payload.into_bytes()
}

/// N chat frames as node `n0` would send the lines of [`line_payload`] to its peers, in
/// plain framing: the plaintext of a secure channel. Only the raw relay carries them as
/// they are, since it talks to no daemon (see raw_relay.rs).
pub fn frame_payload(frames: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut n0 = ChatFrames::new(1, "n0");
    for seq in 0..frames {
        n0.push(&mut payload, seq, seq);
    }
    payload
}

/// The chat frames of one origin, as a peer sends them: each carries the text of an
/// indexed line.
pub struct ChatFrames {
    origin: u64,
    nick: String,
    /// The text of the frame being encoded, kept to spare an allocation per frame.
    text: String,
}

impl ChatFrames {
    pub fn new(origin: u64, nick: &str) -> ChatFrames {
        ChatFrames {
            origin,
            nick: nick.to_owned(),
            text: String::with_capacity(TEXT_LEN),
        }
    }

    /// Appends the frame of message `seq` of this origin, carrying line `index`, with the
    /// default hop limit.
    pub fn push(&mut self, out: &mut Vec<u8>, seq: u64, index: u64) {
        self.text.clear();
        push_indexed_text(&mut self.text, index);
        Chat {
            origin: self.origin,
            epoch: EPOCH,
            seq,
            hops: DEFAULT_HOP_LIMIT,
            nick: &self.nick,
            text: &self.text,
        }
        .encode(out);
    }
}

/// Appends the text of line `index`: the index in [`INDEX_DIGITS`] digits, then filler
/// up to [`TEXT_LEN`] bytes.
pub fn push_indexed_text(out: &mut String, index: u64) {
    push_text(out, format_args!("{index:0width$}", width = INDEX_DIGITS));
}

/// Appends the text of W2 line `seq`: the index, a space, the send time, filler.
pub fn push_timed_text(out: &mut String, seq: u64, sent_nanos: u64) {
    push_text(
        out,
        format_args!(
            "{seq:0index$} {sent_nanos:0sent$}",
            index = INDEX_DIGITS,
            sent = SENT_DIGITS
        ),
    );
}

/// Appends `numbers`, then filler up to [`TEXT_LEN`] bytes of text.
fn push_text(out: &mut String, numbers: fmt::Arguments<'_>) {
    let start = out.len();
    out.write_fmt(numbers).expect("a String takes any text");
    out.push_str(&FILLER[..TEXT_LEN - (out.len() - start)]);
}

/// The index at the start of a line's text.
pub fn line_index(text: &[u8]) -> Option<u64> {
    parse_decimal(text.get(..INDEX_DIGITS)?)
}

/// The send time in a W2 line's text.
pub fn sent_nanos(text: &[u8]) -> Option<u64> {
    parse_decimal(text.get(INDEX_DIGITS + 1..INDEX_DIGITS + 1 + SENT_DIGITS)?)
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A count of lines as a length.
pub fn to_usize(n: u64) -> usize {
    usize::try_from(n).expect("counts fit in memory")
}
