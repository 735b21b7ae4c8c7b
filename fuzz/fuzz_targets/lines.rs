//! Signed lines: `wire::lines::Record::parse` on arbitrary records, `Draft` on arbitrary
//! lines, and `proto::author`'s signing and checking of them.
//!
//! Input: one mode byte, then what the mode reads.
//! - mode % 3 == 0: the rest is a record, parsed as it is.
//! - mode % 3 == 1: the rest describes a draft: its first sequence number and epoch
//!   (8 bytes each, big-endian), then lines, each a time byte, a nick (a length byte and
//!   that many bytes) and a text (a length byte, times 17, and that many bytes), while
//!   the input lasts. A nick that breaks the nick rule is replaced by `n`, a text is
//!   taken as lossy UTF-8 within `MAX_TEXT_LEN` bytes; the author key is 32 times
//!   `mode`.
//! - mode % 3 == 2: the same lines, written by a real `Author` (identity key 32 times
//!   `mode`), whose batches are then checked; the first two bytes after the epoch (before
//!   the lines) say which byte of the first batch to alter and the third how.
//!
//! Checks, besides "no panic":
//! - a record that parses has `count` lines (1 to `MAX_BATCH_LINES`), numbered one by
//!   one from `first` and ending at or below `MAX_SEQ`, each with a valid nick and a
//!   text within `MAX_TEXT_LEN`; its signed part and signature make it up; a draft of
//!   its lines, pushed one by one, gives back the very same bytes (the layout has no
//!   slack); checking its signature does not panic, whatever its author key;
//! - a draft's record parses back to the lines pushed, unless its sequence numbers
//!   reach `MAX_SEQ`, and then it is refused for that;
//! - an `Author`'s batches follow each other without a gap, each at most
//!   `MAX_SIGNED_LEN` signed bytes, and each verifies; the first one with any one byte
//!   altered either does not parse or does not verify.

#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::config::Secret;
use p2pchat::proto::author::{Author, Verifier};
use p2pchat::wire::lines::{
    Draft, Record, KEY_LEN, MAX_BATCH_LINES, MAX_SEQ, MAX_SIGNED_LEN, SIGNATURE_LEN,
};
use p2pchat::wire::peer::PeerError;
use p2pchat::wire::text::{self, MAX_TEXT_LEN};

/// One line as the input describes it, made valid.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    time_ms: u64,
    nick: String,
    text: String,
}

/// Takes `n` bytes off the front of `input`, or what is left.
fn take<'a>(input: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, rest) = input.split_at(n.min(input.len()));
    *input = rest;
    head
}

fn take_u8(input: &mut &[u8]) -> u8 {
    take(input, 1).first().copied().unwrap_or(0)
}

fn take_u64(input: &mut &[u8]) -> u64 {
    let mut bytes = [0; 8];
    let head = take(input, 8);
    bytes[..head.len()].copy_from_slice(head);
    u64::from_be_bytes(bytes)
}

/// The lines the rest of the input describes.
fn lines_of(mut input: &[u8]) -> Vec<Line> {
    let mut lines = Vec::new();
    while !input.is_empty() {
        let time_ms = u64::from(take_u8(&mut input)) * 1_000;
        let nick_len = usize::from(take_u8(&mut input));
        let nick = std::str::from_utf8(take(&mut input, nick_len))
            .ok()
            .filter(|nick| text::check_nick(nick).is_ok())
            .unwrap_or("n")
            .to_owned();
        let text_len = usize::from(take_u8(&mut input)) * 17;
        let mut text = String::from_utf8_lossy(take(&mut input, text_len)).into_owned();
        let mut end = text.len().min(MAX_TEXT_LEN);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        lines.push(Line {
            time_ms,
            nick,
            text,
        });
    }
    lines
}

/// The rules every record that parses holds, and a draft of its lines rebuilds it.
fn check_record(bytes: &[u8], record: &Record<'_>) {
    assert!((1..=MAX_BATCH_LINES).contains(&usize::from(record.count)));
    assert!(record.end() <= MAX_SEQ);
    assert_eq!(record.bytes(), bytes);
    assert_eq!(record.signed().len() + SIGNATURE_LEN, bytes.len());
    assert!(record.signed().len() <= MAX_SIGNED_LEN);
    let mut draft = Draft::new(record.author, record.epoch, record.first);
    let mut seq = record.first;
    for line in record.lines() {
        assert_eq!(line.seq, seq);
        assert!(text::check_nick(line.nick).is_ok());
        assert!(line.text.len() <= MAX_TEXT_LEN);
        assert!(draft.fits(line.nick, line.text));
        draft.push(line.time_ms, line.nick, line.text);
        seq += 1;
    }
    assert_eq!(seq, record.end(), "a record holds `count` lines");
    assert_eq!(
        draft.into_record(record.signature()),
        bytes,
        "a draft rebuilds it"
    );
}

/// Mode 0: arbitrary bytes as a record.
fn parse_any(bytes: &[u8]) {
    match Record::parse(bytes) {
        Ok(record) => {
            check_record(bytes, &record);
            // Any author key, valid point or not, and any signature.
            let _ = Verifier::default().verify(&record);
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
}

/// Mode 1: a draft of arbitrary lines, parsed back.
fn draft_round_trip(mode: u8, mut input: &[u8]) {
    let first = take_u64(&mut input);
    let epoch = take_u64(&mut input);
    let key = [mode; KEY_LEN];
    let mut draft = Draft::new(&key, epoch, first);
    let mut pushed = Vec::new();
    for line in lines_of(input) {
        if !draft.fits(&line.nick, &line.text) {
            assert!(
                usize::from(draft.count()) == MAX_BATCH_LINES
                    || draft.signed().len() + line.nick.len() + line.text.len() + 11
                        > MAX_SIGNED_LEN,
                "a line that fits was refused"
            );
            break;
        }
        draft.push(line.time_ms, &line.nick, &line.text);
        pushed.push(line);
    }
    assert_eq!(usize::from(draft.count()), pushed.len());
    let signature = [mode ^ 0x5a; SIGNATURE_LEN];
    let bytes = draft.into_record(&signature);
    let count = pushed.len() as u64;
    match Record::parse(&bytes) {
        Ok(record) => {
            check_record(&bytes, &record);
            assert!(count > 0 && first + count <= MAX_SEQ);
            assert_eq!(
                (record.author, record.epoch, record.first),
                (&key, epoch, first)
            );
            assert_eq!(record.signature(), &signature);
            let parsed: Vec<Line> = record
                .lines()
                .map(|l| Line {
                    time_ms: l.time_ms,
                    nick: l.nick.to_owned(),
                    text: l.text.to_owned(),
                })
                .collect();
            assert_eq!(parsed, pushed, "the lines came back changed");
        }
        Err(PeerError::BatchCount(0)) => assert_eq!(count, 0),
        Err(PeerError::SeqOutOfRange(at)) => {
            assert_eq!(at, first);
            assert!(first.checked_add(count).is_none_or(|end| end > MAX_SEQ));
        }
        Err(err) => panic!("a draft of valid lines was refused: {err}"),
    }
}

/// Mode 2: an author writes the lines; its batches verify, and an altered one does not.
fn author_signs(mode: u8, mut input: &[u8]) {
    // Far enough below MAX_SEQ for any input's lines.
    let first = take_u64(&mut input) % (MAX_SEQ / 2);
    let epoch = take_u64(&mut input);
    let at = u16::from_be_bytes([take_u8(&mut input), take_u8(&mut input)]);
    let flip = take_u8(&mut input).max(1);
    let mut author = Author::at(&Secret([mode; 32]), epoch, first);
    let mut records = Vec::new();
    let lines = lines_of(input);
    for line in &lines {
        records.extend(author.write(line.time_ms, &line.nick, &line.text));
    }
    records.extend(author.seal());
    assert_eq!(records.is_empty(), lines.is_empty());
    let mut verifier = Verifier::default();
    let mut next = first;
    for bytes in &records {
        let record = Record::parse(bytes).expect("an author's batch parses");
        check_record(bytes, &record);
        assert_eq!(
            (record.epoch, record.first),
            (epoch, next),
            "a gap between batches"
        );
        assert!(
            verifier.verify(&record),
            "an author's batch does not verify"
        );
        next = record.end();
    }
    assert_eq!(next - first, lines.len() as u64);
    if let Some(bytes) = records.first() {
        let mut altered = bytes.clone();
        let i = usize::from(at) % altered.len();
        altered[i] ^= flip;
        if let Ok(record) = Record::parse(&altered) {
            assert!(
                !verifier.verify(&record),
                "byte {i} altered, yet it verifies"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => parse_any(rest),
        1 => draft_round_trip(mode, rest),
        _ => author_signs(mode, rest),
    }
});
