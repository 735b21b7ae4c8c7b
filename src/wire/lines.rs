//! Signed lines on the wire: an author's batch of chat lines, as it is signed, stored and
//! relayed, and the summary of held lines two peers compare to catch each other up.
//!
//! A batch is a *record* (the signed part, then the signature) inside an envelope that
//! relays may change (hops, the late flag). This module knows the bytes only: who signs,
//! and whether a signature holds, is the protocol core's business.

use std::str;

use byteorder::{BigEndian, ByteOrder};

use super::peer::PeerError;
use super::text::{self, MAX_NICK_LEN, MAX_TEXT_LEN};

/// An Ed25519 public key.
pub const KEY_LEN: usize = 32;
/// An Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// The signed part of a batch before its lines: author key, epoch, first sequence
/// number, line count.
const SIGNED_FIXED_LEN: usize = KEY_LEN + 8 + 8 + 2;
/// Bytes of one line besides its nick and text: time, nick length, text length.
const LINE_FIXED_LEN: usize = 8 + 1 + 2;
/// Envelope bytes of a batch message after its kind: hops, flags.
const ENVELOPE_LEN: usize = 2;

/// Longest signed part of a batch: room for about 900 typical lines, and always for one
/// line of the longest nick and text.
pub const MAX_SIGNED_LEN: usize = 60 * 1024;
/// Most lines in one batch.
pub const MAX_BATCH_LINES: usize = 4096;
/// Longest record: the signed part and its signature.
pub const MAX_RECORD_LEN: usize = MAX_SIGNED_LEN + SIGNATURE_LEN;
/// Longest batch message body: kind, envelope, record.
pub const MAX_BATCH_BODY_LEN: usize = 1 + ENVELOPE_LEN + MAX_RECORD_LEN;

/// The envelope flag of lines sent to catch a peer up: they were written a while ago.
const FLAG_LATE: u8 = 1;

/// Most entries in one summary message.
pub const MAX_HAVE_ENTRIES: usize = 2048;
/// Most ranges in one summary entry: as many as a node keeps per author run.
pub const MAX_HAVE_RANGES: usize = 32;
/// Bytes of a summary entry besides its ranges: author id, epoch, range count.
const HAVE_ENTRY_FIXED_LEN: usize = 8 + 8 + 1;
/// Bytes of one range of an entry: its first and one-past-last sequence numbers.
const HAVE_RANGE_LEN: usize = 16;
/// Longest summary message body: kind, flags, count, entries. A sender starts another
/// message rather than pass it.
pub const MAX_HAVE_BODY_LEN: usize = 48 * 1024;

/// The summary flag of the last message of a whole summary: an author it did not name
/// is one the sender holds nothing of.
const FLAG_COMPLETE: u8 = 1;
/// The summary flag of every message of a whole summary but the last.
const FLAG_MORE: u8 = 2;

const _: () =
    assert!(SIGNED_FIXED_LEN + LINE_FIXED_LEN + MAX_NICK_LEN + MAX_TEXT_LEN <= MAX_SIGNED_LEN);

/// A validated batch, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    /// Links this copy may still cross, this one included; never 0 on the wire.
    pub hops: u8,
    /// Sent to catch a node up rather than as the author wrote it.
    pub late: bool,
    /// The signed part and the signature: what is stored and relayed unchanged.
    pub record: Record<'a>,
}

/// A batch's record: the signed part and its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    bytes: &'a [u8],
    /// The author's public key.
    pub author: &'a [u8; KEY_LEN],
    /// The author's run (its start, nanoseconds since the Unix epoch).
    pub epoch: u64,
    /// The sequence number of the first line; the others follow it one by one.
    pub first: u64,
    /// How many lines, at least 1.
    pub count: u16,
    /// The earliest and the latest time of its lines, by the author's clock
    /// (milliseconds).
    pub oldest_ms: u64,
    pub newest_ms: u64,
}

/// One line of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub seq: u64,
    /// The author's clock when the line was written: milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub nick: &'a str,
    /// UTF-8, at most [`MAX_TEXT_LEN`] bytes; may hold control characters.
    pub text: &'a str,
}

impl<'a> Batch<'a> {
    /// Parses a batch message body after its kind byte.
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, PeerError> {
        let truncated = PeerError::Truncated { kind: "lines" };
        let (envelope, record) = body.split_at_checked(ENVELOPE_LEN).ok_or(truncated)?;
        let hops = envelope[0];
        if hops == 0 {
            return Err(PeerError::NoHops);
        }
        Ok(Batch {
            hops,
            late: envelope[1] & FLAG_LATE != 0,
            record: Record::parse(record)?,
        })
    }

    /// Appends a batch message carrying `record` to `out` as a whole frame.
    pub fn encode(out: &mut Vec<u8>, hops: u8, late: bool, record: &[u8]) {
        super::frame::encode(out, |out| {
            out.reserve(1 + ENVELOPE_LEN + record.len());
            out.push(super::peer::KIND_LINES);
            out.push(hops);
            out.push(if late { FLAG_LATE } else { 0 });
            out.extend_from_slice(record);
        });
    }
}

impl<'a> Record<'a> {
    /// Parses and validates a record: every line is checked here, once.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PeerError> {
        let truncated = PeerError::Truncated { kind: "lines" };
        if bytes.len() > MAX_RECORD_LEN {
            return Err(PeerError::BatchTooLong(bytes.len()));
        }
        let signed_len = bytes.len().checked_sub(SIGNATURE_LEN).ok_or(truncated)?;
        let head = bytes
            .get(..SIGNED_FIXED_LEN)
            .filter(|_| signed_len >= SIGNED_FIXED_LEN);
        let head = head.ok_or(truncated)?;
        let author = head[..KEY_LEN].try_into().expect("32 bytes");
        let epoch = BigEndian::read_u64(&head[KEY_LEN..]);
        let first = BigEndian::read_u64(&head[KEY_LEN + 8..]);
        let count = BigEndian::read_u16(&head[KEY_LEN + 16..]);
        if count == 0 || usize::from(count) > MAX_BATCH_LINES {
            return Err(PeerError::BatchCount(count));
        }
        if first
            .checked_add(u64::from(count))
            .is_none_or(|end| end > MAX_SEQ)
        {
            return Err(PeerError::SeqOutOfRange(first));
        }
        let mut rest = &bytes[SIGNED_FIXED_LEN..signed_len];
        let (mut oldest_ms, mut newest_ms) = (u64::MAX, 0);
        for _ in 0..count {
            let time_ms = parse_line(&mut rest)?.0;
            oldest_ms = oldest_ms.min(time_ms);
            newest_ms = newest_ms.max(time_ms);
        }
        no_trailing(rest, "lines")?;
        Ok(Record {
            bytes,
            author,
            epoch,
            first,
            count,
            oldest_ms,
            newest_ms,
        })
    }

    /// The record's bytes, as stored and relayed.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// What the signature covers.
    pub fn signed(&self) -> &'a [u8] {
        &self.bytes[..self.bytes.len() - SIGNATURE_LEN]
    }

    pub fn signature(&self) -> &'a [u8; SIGNATURE_LEN] {
        self.bytes[self.bytes.len() - SIGNATURE_LEN..]
            .try_into()
            .expect("64 bytes")
    }

    /// One past the last line's sequence number.
    pub fn end(&self) -> u64 {
        self.first + u64::from(self.count)
    }

    /// The lines, in order.
    pub fn lines(&self) -> impl Iterator<Item = Line<'a>> + 'a {
        let mut rest = &self.signed()[SIGNED_FIXED_LEN..];
        (self.first..self.end()).map(move |seq| {
            let (time_ms, nick, text) = parse_line(&mut rest).expect("validated by parse");
            Line {
                seq,
                time_ms,
                nick,
                text,
            }
        })
    }
}

/// Sequence numbers stay below this, so that no sum of them overflows.
pub const MAX_SEQ: u64 = 1 << 62;

/// Refuses bytes after the last field of a message of `kind`.
pub(super) fn no_trailing(rest: &[u8], kind: &'static str) -> Result<(), PeerError> {
    match rest.len() {
        0 => Ok(()),
        extra => Err(PeerError::Trailing { kind, extra }),
    }
}

fn parse_line<'a>(rest: &mut &'a [u8]) -> Result<(u64, &'a str, &'a str), PeerError> {
    let truncated = PeerError::Truncated { kind: "lines" };
    let take = |rest: &mut &'a [u8], n: usize| -> Result<&'a [u8], PeerError> {
        let (head, tail) = rest.split_at_checked(n).ok_or(truncated)?;
        *rest = tail;
        Ok(head)
    };
    let time_ms = BigEndian::read_u64(take(rest, 8)?);
    let nick_len = usize::from(take(rest, 1)?[0]);
    let nick = str::from_utf8(take(rest, nick_len)?).map_err(|_| PeerError::NickNotUtf8)?;
    text::check_nick(nick).map_err(PeerError::BadNick)?;
    let text_len = usize::from(BigEndian::read_u16(take(rest, 2)?));
    if text_len > MAX_TEXT_LEN {
        return Err(PeerError::TextTooLong(text_len));
    }
    let text = str::from_utf8(take(rest, text_len)?).map_err(|_| PeerError::TextNotUtf8)?;
    Ok((time_ms, nick, text))
}

/// The signed part of a batch being written by its author, line by line.
#[derive(Debug, Clone)]
pub struct Draft {
    buf: Vec<u8>,
    count: u16,
}

impl Draft {
    /// An empty batch of `author`'s run `epoch`, whose first line will be `first`.
    pub fn new(author: &[u8; KEY_LEN], epoch: u64, first: u64) -> Self {
        let mut buf = Vec::with_capacity(1024);
        buf.extend_from_slice(author);
        buf.extend_from_slice(&epoch.to_be_bytes());
        buf.extend_from_slice(&first.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        Draft { buf, count: 0 }
    }

    /// Whether a line with this nick and text still fits.
    pub fn fits(&self, nick: &str, text: &str) -> bool {
        usize::from(self.count) < MAX_BATCH_LINES
            && self.buf.len() + LINE_FIXED_LEN + nick.len() + text.len() <= MAX_SIGNED_LEN
    }

    /// Adds a line; the caller has checked that it [`fits`](Draft::fits), that the
    /// nick passes the nick rule and that the text is at most [`MAX_TEXT_LEN`] bytes.
    pub fn push(&mut self, time_ms: u64, nick: &str, text: &str) {
        debug_assert!(self.fits(nick, text) && text.len() <= MAX_TEXT_LEN);
        self.buf.extend_from_slice(&time_ms.to_be_bytes());
        self.buf
            .push(u8::try_from(nick.len()).expect("nicks are at most 32 bytes"));
        self.buf.extend_from_slice(nick.as_bytes());
        let text_len = u16::try_from(text.len()).expect("texts are at most 4096 bytes");
        self.buf.extend_from_slice(&text_len.to_be_bytes());
        self.buf.extend_from_slice(text.as_bytes());
        self.count += 1;
        BigEndian::write_u16(&mut self.buf[KEY_LEN + 16..SIGNED_FIXED_LEN], self.count);
    }

    /// Lines so far.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The signed part as it stands.
    pub fn signed(&self) -> &[u8] {
        &self.buf
    }

    /// The record: the signed part followed by `signature`.
    pub fn into_record(mut self, signature: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
        self.buf.extend_from_slice(signature);
        self.buf
    }
}

/// A validated summary message: per author run, the ranges of sequence numbers the
/// sender has seen. A whole summary (every run the sender knows) may take several
/// messages; a message alone that is not complete asks about the runs it names only,
/// such as one whose lines wait for a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Have<'a> {
    /// The last message of a whole summary: a run it does not name is one the sender
    /// holds nothing of.
    pub complete: bool,
    /// More messages of this summary follow.
    pub more: bool,
    count: usize,
    entries: &'a [u8],
}

/// One author run in a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaveEntry {
    /// The author's node id.
    pub author: u64,
    pub epoch: u64,
    /// Seen sequence numbers: sorted, disjoint, non-empty half-open ranges.
    pub ranges: Vec<(u64, u64)>,
}

impl HaveEntry {
    /// The line after the unbroken run of seen lines that starts the first range: where
    /// the sender's news of this run stops.
    pub fn next(&self) -> u64 {
        self.ranges.first().map_or(0, |&(_, end)| end)
    }

    fn encoded_len(&self) -> usize {
        HAVE_ENTRY_FIXED_LEN + self.ranges.len().min(MAX_HAVE_RANGES) * HAVE_RANGE_LEN
    }
}

impl<'a> Have<'a> {
    /// Parses an ihave's body: a summary's, whose flags mean nothing there.
    pub(super) fn parse_ihave(body: &'a [u8]) -> Result<Self, PeerError> {
        let have = Have::parse(body)?;
        Ok(Have {
            complete: false,
            more: false,
            ..have
        })
    }

    pub(super) fn parse(body: &'a [u8]) -> Result<Self, PeerError> {
        let truncated = PeerError::Truncated { kind: "have" };
        let (head, entries) = body.split_at_checked(3).ok_or(truncated)?;
        let count = usize::from(BigEndian::read_u16(&head[1..]));
        if count > MAX_HAVE_ENTRIES {
            return Err(PeerError::TooManyEntries(count));
        }
        let mut rest = entries;
        for _ in 0..count {
            let fixed = rest.get(..HAVE_ENTRY_FIXED_LEN).ok_or(truncated)?;
            let ranges = usize::from(fixed[16]);
            if ranges > MAX_HAVE_RANGES {
                return Err(PeerError::TooManyRanges(ranges));
            }
            let len = HAVE_ENTRY_FIXED_LEN + ranges * HAVE_RANGE_LEN;
            let entry = rest.get(..len).ok_or(truncated)?;
            let mut last_end = None;
            for range in entry[HAVE_ENTRY_FIXED_LEN..].chunks_exact(HAVE_RANGE_LEN) {
                let (start, end) = (BigEndian::read_u64(range), BigEndian::read_u64(&range[8..]));
                if start >= end || last_end.is_some_and(|last| start <= last) {
                    return Err(PeerError::BadRange { start, end });
                }
                last_end = Some(end);
            }
            rest = &rest[len..];
        }
        no_trailing(rest, "have")?;
        Ok(Have {
            complete: head[0] & FLAG_COMPLETE != 0,
            more: head[0] & FLAG_MORE != 0,
            count,
            entries,
        })
    }

    /// The entries, in the order they were sent.
    pub fn iter(&self) -> impl Iterator<Item = HaveEntry> + 'a {
        let mut rest = self.entries;
        (0..self.count).map(move |_| {
            let ranges = usize::from(rest[16]);
            let len = HAVE_ENTRY_FIXED_LEN + ranges * HAVE_RANGE_LEN;
            let (entry, tail) = rest.split_at(len);
            rest = tail;
            HaveEntry {
                author: BigEndian::read_u64(entry),
                epoch: BigEndian::read_u64(&entry[8..]),
                ranges: (entry[HAVE_ENTRY_FIXED_LEN..].chunks_exact(HAVE_RANGE_LEN))
                    .map(|r| (BigEndian::read_u64(r), BigEndian::read_u64(&r[8..])))
                    .collect(),
            }
        })
    }

    /// Appends summary messages for `entries` to `out`, as many frames as they take
    /// (at least one): a whole summary when `whole`, else questions about these runs.
    /// An entry's ranges past [`MAX_HAVE_RANGES`] are left out (it asks for more).
    pub fn encode(out: &mut Vec<u8>, entries: &[HaveEntry], whole: bool) {
        let mut chunks = Vec::new();
        let (mut start, mut len) = (0, 4);
        for (i, entry) in entries.iter().enumerate() {
            if i - start == MAX_HAVE_ENTRIES || len + entry.encoded_len() > MAX_HAVE_BODY_LEN {
                chunks.push(&entries[start..i]);
                (start, len) = (i, 4);
            }
            len += entry.encoded_len();
        }
        chunks.push(&entries[start..]);
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let flags = match (whole, i == last) {
                (false, _) => 0,
                (true, false) => FLAG_MORE,
                (true, true) => FLAG_COMPLETE,
            };
            encode_have(out, super::peer::KIND_HAVE, chunk, flags);
        }
    }

    /// Appends announcements of the lines `entries` name (ranges of lines taken
    /// lately, not all that is held) as ihave messages, as many frames as they take.
    pub fn encode_ihave(out: &mut Vec<u8>, entries: &[HaveEntry]) {
        for chunk in entries.chunks(MAX_IHAVE_ENTRIES) {
            encode_have(out, super::peer::KIND_IHAVE, chunk, 0);
        }
    }
}

/// Entries of one ihave message: each names one range, so that they fit a frame.
const MAX_IHAVE_ENTRIES: usize = 1024;

fn encode_have(out: &mut Vec<u8>, kind: u8, entries: &[HaveEntry], flags: u8) {
    super::frame::encode(out, |out| {
        out.push(kind);
        out.push(flags);
        let count = u16::try_from(entries.len()).expect("chunks of at most 2048");
        out.extend_from_slice(&count.to_be_bytes());
        for e in entries {
            out.extend_from_slice(&e.author.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            let ranges = &e.ranges[..e.ranges.len().min(MAX_HAVE_RANGES)];
            out.push(u8::try_from(ranges.len()).expect("at most 32"));
            for &(start, end) in ranges {
                out.extend_from_slice(&start.to_be_bytes());
                out.extend_from_slice(&end.to_be_bytes());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::peer::Message;

    fn record(first: u64, lines: &[(&str, &str)]) -> Vec<u8> {
        let mut draft = Draft::new(&[7; KEY_LEN], 99, first);
        for (i, (nick, text)) in lines.iter().enumerate() {
            draft.push(1_000 + i as u64, nick, text);
        }
        draft.into_record(&[5; SIGNATURE_LEN])
    }

    fn body(record: &[u8], hops: u8, late: bool) -> Vec<u8> {
        let mut out = Vec::new();
        Batch::encode(&mut out, hops, late, record);
        out.split_off(crate::wire::frame::HEADER_LEN)
    }

    #[test]
    fn batch_round_trip() {
        let rec = record(10, &[("alice", "hi"), ("bob", "hello, wörld")]);
        let body = body(&rec, 3, true);
        let Ok(Message::Lines(batch)) = Message::parse(&body) else {
            panic!("a batch");
        };
        assert_eq!((batch.hops, batch.late), (3, true));
        let r = batch.record;
        assert_eq!(
            (r.author, r.epoch, r.first, r.count, r.end()),
            (&[7; 32], 99, 10, 2, 12)
        );
        assert_eq!(r.bytes(), &rec[..]);
        assert_eq!(r.signature(), &[5; SIGNATURE_LEN]);
        let lines: Vec<_> = r
            .lines()
            .map(|l| (l.seq, l.time_ms, l.nick, l.text))
            .collect();
        assert_eq!(
            lines,
            [(10, 1000, "alice", "hi"), (11, 1001, "bob", "hello, wörld")]
        );
    }

    #[test]
    fn every_truncation_is_refused() {
        let full = body(&record(0, &[("a", "text")]), 1, false);
        for len in 0..full.len() {
            assert!(Message::parse(&full[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn bad_counts_lines_and_sequences_are_refused() {
        let mut zero = record(0, &[("a", "x")]);
        zero[KEY_LEN + 17] = 0;
        assert_eq!(Record::parse(&zero), Err(PeerError::BatchCount(0)));
        let huge = record(MAX_SEQ - 1, &[("a", "x"), ("a", "y")]);
        assert_eq!(
            Record::parse(&huge),
            Err(PeerError::SeqOutOfRange(MAX_SEQ - 1))
        );
        let mut bad_nick = record(0, &[("a#b", "x")]);
        assert!(matches!(
            Record::parse(&bad_nick),
            Err(PeerError::BadNick(_))
        ));
        bad_nick[SIGNED_FIXED_LEN + 10] = b'c';
        assert!(Record::parse(&bad_nick).is_ok());
        let mut bad_text = record(0, &[("a", "xy")]);
        bad_text[SIGNED_FIXED_LEN + 12] = 0xff;
        assert_eq!(Record::parse(&bad_text), Err(PeerError::TextNotUtf8));
        let zero_hops = body(&record(0, &[("a", "x")]), 0, false);
        assert_eq!(Message::parse(&zero_hops), Err(PeerError::NoHops));
    }

    #[test]
    fn a_full_draft_fits_the_frame_limit() {
        let text = "x".repeat(MAX_TEXT_LEN);
        let nick = "n".repeat(MAX_NICK_LEN);
        let mut draft = Draft::new(&[1; KEY_LEN], 0, 0);
        while draft.fits(&nick, &text) {
            draft.push(0, &nick, &text);
        }
        assert!(draft.count() >= 14);
        let rec = draft.into_record(&[0; SIGNATURE_LEN]);
        assert!(rec.len() <= MAX_RECORD_LEN);
        assert!(matches!(
            Message::parse(&body(&rec, 1, false)),
            Ok(Message::Lines(_))
        ));
        let mut short = Draft::new(&[1; KEY_LEN], 0, 0);
        while short.fits("a", "") {
            short.push(0, "a", "");
        }
        assert_eq!(usize::from(short.count()), MAX_BATCH_LINES);
    }

    fn entry(i: u64, ranges: usize) -> HaveEntry {
        HaveEntry {
            author: i,
            epoch: i * 2,
            ranges: (0..ranges as u64)
                .map(|r| (i + r * 10, i + r * 10 + 5))
                .collect(),
        }
    }

    #[test]
    fn summaries_round_trip_in_chunks() {
        let entries: Vec<HaveEntry> = (0..MAX_HAVE_ENTRIES as u64 + 3)
            .map(|i| entry(i, (i % 3) as usize))
            .collect();
        let mut out = Vec::new();
        Have::encode(&mut out, &entries, true);
        let mut decoder = crate::wire::frame::Decoder::new(crate::wire::peer::MAX_BODY_LEN);
        let mut input = &out[..];
        let mut got = Vec::new();
        let mut flags = Vec::new();
        while let Ok(Some(body)) = decoder.next(&mut input) {
            let Ok(Message::Have(have)) = Message::parse(body) else {
                panic!("a summary");
            };
            flags.push((have.more, have.complete));
            got.extend(have.iter());
        }
        assert_eq!(got, entries);
        assert_eq!(flags.last(), Some(&(false, true)));
        assert!(flags[..flags.len() - 1].iter().all(|&f| f == (true, false)));
        assert!(flags.len() >= 2);
        // Entries with many ranges are split by size, not by count.
        let wide: Vec<HaveEntry> = (0..200).map(|i| entry(i, MAX_HAVE_RANGES)).collect();
        let mut out = Vec::new();
        Have::encode(&mut out, &wide, false);
        let mut input = &out[..];
        let mut got = Vec::new();
        while let Ok(Some(body)) = decoder.next(&mut input) {
            assert!(body.len() <= MAX_HAVE_BODY_LEN);
            let Ok(Message::Have(have)) = Message::parse(body) else {
                panic!("a summary");
            };
            assert!(!have.complete && !have.more);
            got.extend(have.iter());
        }
        assert_eq!(got, wide);
        let mut empty = Vec::new();
        Have::encode(&mut empty, &[], true);
        let Ok(Message::Have(have)) = Message::parse(&empty[4..]) else {
            panic!("a summary");
        };
        assert!(have.complete && !have.more && have.iter().next().is_none());
    }

    #[test]
    fn malformed_summaries_are_refused() {
        let mut out = Vec::new();
        Have::encode(&mut out, &[entry(1, 2)], false);
        let body = &out[4..];
        for len in 0..body.len() {
            assert!(Message::parse(&body[..len]).is_err(), "cut at {len}");
        }
        let mut long = body.to_vec();
        long.push(0);
        assert!(matches!(
            Message::parse(&long),
            Err(PeerError::Trailing { .. })
        ));
        let mut many = body.to_vec();
        many[2..4].copy_from_slice(&(MAX_HAVE_ENTRIES as u16 + 1).to_be_bytes());
        assert!(matches!(
            Message::parse(&many),
            Err(PeerError::TooManyEntries(_))
        ));
        let mut overlapping = body.to_vec();
        overlapping[4 + 17 + 16..4 + 17 + 24].copy_from_slice(&2u64.to_be_bytes());
        assert!(matches!(
            Message::parse(&overlapping),
            Err(PeerError::BadRange { .. })
        ));
        let mut empty_range = body.to_vec();
        empty_range[4 + 17 + 8..4 + 17 + 16].copy_from_slice(&1u64.to_be_bytes());
        assert!(matches!(
            Message::parse(&empty_range),
            Err(PeerError::BadRange { .. })
        ));
        let mut wide = body.to_vec();
        wide[4 + 16] = MAX_HAVE_RANGES as u8 + 1;
        assert!(matches!(
            Message::parse(&wide),
            Err(PeerError::TooManyRanges(_))
        ));
    }
}
