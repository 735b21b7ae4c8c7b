//! The chat lines the bench writes: their text (an index, for W2 also a send time,
//! then filler), whole payloads of them, the signed batches that carry them from fake
//! authors, and reading the numbers back.

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use p2pchat::config::{Secret, DEFAULT_HOP_LIMIT};
use p2pchat::proto::author::Author;
use p2pchat::wire::lines::Batch;

/// The run (hello and author epoch) of every fake peer: one run each, so any constant
/// does. It is older than any daemon's run, so a daemon shows a fake author's lines
/// from the first one it gets, as it would a node's that was up before it.
pub const EPOCH: u64 = 1;
/// Bytes of text in every chat line the bench writes.
pub const TEXT_LEN: usize = 64;
/// Each line's text starts with its index in this many decimal digits.
const INDEX_DIGITS: usize = 12;
/// Digits of the send time (ns) in a W2 line, after the index and a space.
const SENT_DIGITS: usize = 20;
/// What fills a line's text up to [`TEXT_LEN`] after its numbers.
const FILLER: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

/// The identity key of the author of [`batch_payload`]: node `n0` of the raw chain.
const RAW_AUTHOR: Secret = Secret([0x30; 32]);

/// N lines for a client to write: each an indexed text of [`TEXT_LEN`] bytes and a LF.
pub fn line_payload(lines: u64) -> Vec<u8> {
    let mut payload = String::with_capacity(to_usize(lines) * (TEXT_LEN + 1));
    for index in 0..lines {
        push_indexed_text(&mut payload, index);
        payload.push('\n');
    }
    payload.into_bytes()
}

/// The lines of [`line_payload`] as node `n0` sends them to its peers when its client
/// writes them faster than it reads them: in full signed batches of about 800 lines
/// (60 KiB) each, in plain framing, the plaintext of a secure channel. Only the raw relay
/// carries them as they are, since it talks to no daemon (see raw_relay.rs). Returns
/// the payload and its frames.
pub fn batch_payload(lines: u64) -> (Vec<u8>, u64) {
    let mut payload = Vec::with_capacity(to_usize(lines) * (TEXT_LEN + 16));
    let mut n0 = FakeAuthor::new(&RAW_AUTHOR, "n0");
    let frames = n0.burst(&mut payload, 0..lines);
    (payload, frames)
}

/// A fake node as an author: its identity key signs the lines it writes, batch by
/// batch, as a node signs what its clients wrote in one read, and each line carries the
/// text of an indexed line.
pub struct FakeAuthor {
    author: Author,
    nick: String,
    /// The text of the line being written, kept to spare an allocation per line.
    text: String,
}

impl FakeAuthor {
    /// The author of run [`EPOCH`] with identity key `identity`, from line 0 on.
    pub fn new(identity: &Secret, nick: &str) -> FakeAuthor {
        FakeAuthor {
            author: Author::at(identity, EPOCH, 0),
            nick: nick.to_owned(),
            text: String::with_capacity(TEXT_LEN),
        }
    }

    /// Writes the lines `indices` as one burst and appends the batch frames that carry
    /// them, with the default hop limit: as many full batches as they fill, then one for
    /// the rest. Returns the frames appended.
    pub fn burst(&mut self, out: &mut Vec<u8>, indices: Range<u64>) -> u64 {
        let mut frames = 0;
        self.burst_each(indices, |frame, _| {
            out.extend_from_slice(frame);
            frames += 1;
        });
        frames
    }

    /// Like [`FakeAuthor::burst`], passing each batch frame to `each` with the number of
    /// lines it carries.
    pub fn burst_each(&mut self, indices: Range<u64>, mut each: impl FnMut(&[u8], u64)) {
        let time_ms = wall_ms();
        let mut frame = Vec::new();
        let mut send = |record: &[u8], lines: u64| {
            frame.clear();
            Batch::encode(&mut frame, DEFAULT_HOP_LIMIT, false, record);
            each(&frame, lines);
        };
        // Lines in the batch being written: a line that does not fit seals the batch
        // before it and starts the next one.
        let mut pending = 0;
        for index in indices {
            self.text.clear();
            push_indexed_text(&mut self.text, index);
            match self.author.write(time_ms, &self.nick, &self.text) {
                Some(record) => {
                    send(&record, pending);
                    pending = 1;
                }
                None => pending += 1,
            }
        }
        if let Some(record) = self.author.seal() {
            send(&record, pending);
        }
    }
}

/// Milliseconds since the Unix epoch, as an author stamps its lines.
fn wall_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970");
    u64::try_from(since.as_millis()).expect("a time in milliseconds fits 64 bits")
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
