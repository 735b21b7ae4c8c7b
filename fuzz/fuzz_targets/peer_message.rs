//! `wire::peer::Message::parse` on arbitrary frame bodies.
//!
//! Checks, besides "no panic" (in parsing, in `Display` of the error, in walking the
//! addresses of an addrs message):
//! - every message that parses fits in a frame (`MAX_BODY_LEN`), so the framing limit
//!   never refuses a valid message;
//! - a batch holds the rules: hops above 0, 1 to `MAX_BATCH_LINES` lines numbered one
//!   by one from its first, all below `MAX_SEQ`, each with a valid nick and at most
//!   `MAX_TEXT_LEN` bytes of text, its record the signed part and a signature; a
//!   summary holds at most `MAX_HAVE_ENTRIES` entries, each of at most
//!   `MAX_HAVE_RANGES` non-empty ranges in order;
//! - the encoding is canonical: re-encoding a parsed message with the crate's own
//!   encoder (for a batch, its record rebuilt line by line with `Draft`) gives back
//!   exactly the body it was parsed from, in a frame whose header states its length,
//!   and that body parses to the same value (round trip). The exceptions are flags
//!   bytes (of a hello, of a batch's envelope, of a summary): flags this version does
//!   not know are ignored (a later version may set them), so they do not come back.
//!   And a summary message is one the encoder writes only when it is what the encoder
//!   would cut a summary into (see `encode_have`): of any other, such as one that says
//!   "more" while another entry would fit, the entries must still come back from the
//!   encoder's messages, in order and each within `MAX_HAVE_BODY_LEN`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::wire::frame::{self, Decoder, HEADER_LEN};
use p2pchat::wire::lines::{
    Batch, Draft, Have, HaveEntry, Record, MAX_BATCH_LINES, MAX_HAVE_BODY_LEN, MAX_HAVE_ENTRIES,
    MAX_HAVE_RANGES, MAX_RECORD_LEN, MAX_SEQ, SIGNATURE_LEN,
};
use p2pchat::wire::member::{Announce, MAX_NICKS};
use p2pchat::wire::peer::{Message, MAX_ADDRS, MAX_BODY_LEN};
use p2pchat::wire::text;

/// Encodes `message`, parsed from `body`, as a whole frame with the encoder the node
/// itself uses.
fn encode(body: &[u8], message: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match message {
        Message::Hello(hello) => hello.encode(&mut out),
        Message::Lines(batch) => {
            let record = rebuild(&batch.record);
            Batch::encode(&mut out, batch.hops, batch.late, &record);
        }
        Message::Have(have) => encode_have(&mut out, body, have),
        Message::IHave(have) => encode_ihave(&mut out, body, have),
        Message::Prune => Message::encode_prune(&mut out),
        Message::Graft => Message::encode_graft(&mut out),
        Message::Walk(walk) => walk.encode(&mut out),
        Message::Ping => Message::encode_ping(&mut out),
        Message::Pong => Message::encode_pong(&mut out),
        Message::Addrs(addrs) => Message::encode_addrs(&mut out, addrs.iter()),
        Message::Retire => Message::encode_retire(&mut out),
        // Relayed as it came: the record is signed, flags and all.
        Message::Member(announce) => {
            Announce::encode(&mut out, announce.hops, announce.record.bytes())
        }
    }
    out
}

/// A record made again from what parsing it read: a new draft of its author, run and
/// first line, its lines pushed one by one, then its signature.
fn rebuild(record: &Record<'_>) -> Vec<u8> {
    let mut draft = Draft::new(record.author, record.epoch, record.first);
    for line in record.lines() {
        assert!(
            draft.fits(line.nick, line.text),
            "a parsed line does not fit a draft"
        );
        draft.push(line.time_ms, line.nick, line.text);
    }
    assert_eq!(draft.count(), record.count, "the draft counts other lines");
    assert_eq!(
        draft.signed(),
        record.signed(),
        "the draft signs other bytes"
    );
    draft.into_record(record.signature())
}

/// A summary message as the node would send it. Its entries are encoded again, with
/// `more` set by the only means the encoder has, an entry after them that does not fit
/// (one as long as an entry can be). Whatever the encoder makes of them, its frames
/// carry the entries in order, each within `MAX_HAVE_BODY_LEN`. When its first message
/// holds exactly these entries, it is the message the node would send for them, and
/// that is the frame returned; else (a message over `MAX_HAVE_BODY_LEN`, which the
/// encoder splits, "more" where another entry would still fit, or "more" and
/// "complete" at once) the body itself is, with its unknown flags cleared.
fn encode_have(out: &mut Vec<u8>, body: &[u8], have: &Have<'_>) {
    let entries: Vec<HaveEntry> = have.iter().collect();
    let mut with = entries.clone();
    if have.more {
        with.push(HaveEntry {
            author: 0,
            epoch: 0,
            ranges: (0..MAX_HAVE_RANGES as u64)
                .map(|i| (2 * i, 2 * i + 1))
                .collect(),
        });
    }
    let mut frames = Vec::new();
    Have::encode(&mut frames, &with, have.complete || have.more);
    let mut decoder = Decoder::new(MAX_BODY_LEN);
    let mut input = &frames[..];
    let (mut carried, mut first) = (Vec::new(), None);
    while let Some(part) = decoder.next(&mut input).expect("valid frames") {
        assert!(
            part.len() <= MAX_HAVE_BODY_LEN,
            "a summary message over its limit"
        );
        let Ok(Message::Have(part_have)) = Message::parse(part) else {
            panic!("the encoder wrote something else than a summary");
        };
        first.get_or_insert_with(|| (part.len(), part_have.iter().count()));
        carried.extend(part_have.iter());
    }
    assert_eq!(carried, with, "the encoder's summary holds other entries");
    let (first_len, first_count) = first.expect("at least one message");
    if first_count == entries.len() && !(have.complete && have.more) {
        out.extend_from_slice(&frames[..HEADER_LEN + first_len]);
    } else {
        frame::encode(out, |out| {
            out.extend_from_slice(body);
            out[HEADER_LEN + HAVE_FLAGS_AT] &= HAVE_COMPLETE | HAVE_MORE;
        });
    }
}

/// An ihave as the node writes one, when the node would write its entries in one
/// message; else the body as it came, its flags cleared, which mean nothing there.
fn encode_ihave(out: &mut Vec<u8>, body: &[u8], have: &Have<'_>) {
    let entries: Vec<HaveEntry> = have.iter().collect();
    let mut frames = Vec::new();
    Have::encode_ihave(&mut frames, &entries);
    if frames.len() == HEADER_LEN + body.len() {
        out.extend_from_slice(&frames);
    } else {
        frame::encode(out, |out| {
            out.extend_from_slice(body);
            out[HEADER_LEN + HAVE_FLAGS_AT] = 0;
        });
    }
}

/// Where a hello body has its flags byte: after the kind, epoch, port and link id.
const HELLO_FLAGS_AT: usize = 1 + 8 + 2 + 8;
/// The hello flags this version knows: refusing.
const HELLO_KNOWN_FLAGS: u8 = 1;
/// Where a batch body has its envelope's flags byte: after the kind and the hops.
const BATCH_FLAGS_AT: usize = 2;
/// The envelope flags this version knows: late.
const BATCH_KNOWN_FLAGS: u8 = 1;
/// Where a summary body has its flags byte: after the kind.
const HAVE_FLAGS_AT: usize = 1;
/// The summary flags this version knows: complete, more.
const HAVE_COMPLETE: u8 = 1;
const HAVE_MORE: u8 = 2;

/// Checks the rules every batch that parses must hold.
fn check_batch(batch: &Batch<'_>) {
    assert!(batch.hops > 0, "hops 0 is refused");
    let record = &batch.record;
    assert!(record.bytes().len() <= MAX_RECORD_LEN);
    assert!((1..=MAX_BATCH_LINES).contains(&usize::from(record.count)));
    assert!(record.end() <= MAX_SEQ, "a batch past MAX_SEQ");
    assert_eq!(record.end(), record.first + u64::from(record.count));
    assert_eq!(
        record.signed().len() + SIGNATURE_LEN,
        record.bytes().len(),
        "a record is its signed part and a signature"
    );
    assert_eq!(&record.bytes()[..32], record.author, "the author key leads");
    let mut seq = record.first;
    for line in record.lines() {
        assert_eq!(line.seq, seq, "lines are numbered one by one");
        assert!(text::check_nick(line.nick).is_ok());
        assert!(line.text.len() <= text::MAX_TEXT_LEN);
        seq += 1;
    }
    assert_eq!(seq, record.end(), "a batch holds `count` lines");
}

fuzz_target!(|body: &[u8]| {
    let message = match Message::parse(body) {
        Ok(message) => message,
        Err(err) => {
            // The cause goes into a log line: formatting it must not panic either.
            let _ = err.to_string();
            return;
        }
    };
    assert!(
        body.len() <= MAX_BODY_LEN,
        "a valid {} message of {} bytes exceeds the frame limit",
        message.kind(),
        body.len()
    );
    match &message {
        Message::Hello(hello) => assert!(text::check_nick(hello.nick).is_ok()),
        Message::Lines(batch) => check_batch(batch),
        Message::Have(have) | Message::IHave(have) => {
            let count = have.iter().count();
            assert!(count <= MAX_HAVE_ENTRIES, "{count} entries accepted");
            for entry in have.iter() {
                assert!(entry.ranges.len() <= MAX_HAVE_RANGES);
                let mut last_end = None;
                for (start, end) in entry.ranges {
                    assert!(start < end, "an empty range accepted");
                    assert!(
                        last_end.is_none_or(|last| last < start),
                        "ranges out of order"
                    );
                    last_end = Some(end);
                }
            }
        }
        Message::Addrs(addrs) => {
            let count = addrs.iter().count();
            assert!(count <= MAX_ADDRS, "{count} addresses accepted");
            assert!(addrs.iter().all(|addr| addr.port() != 0), "port 0 accepted");
        }
        Message::Member(announce) => {
            let nicks: Vec<&str> = announce.record.nicks().collect();
            assert!(
                (1..=MAX_NICKS).contains(&nicks.len()),
                "{} nicks accepted",
                nicks.len()
            );
            assert!(nicks.iter().all(|nick| text::check_nick(nick).is_ok()));
            assert!(announce.hops > 0, "no hops left yet accepted");
        }
        Message::Walk(walk) => {
            assert!(walk.addr.is_none_or(|addr| addr.port() != 0), "port 0 accepted");
        }
        Message::Ping | Message::Pong | Message::Retire | Message::Prune | Message::Graft => {}
    }

    let frame = encode(body, &message);
    let (header, reencoded) = frame.split_at(HEADER_LEN);
    let stated = u32::from_be_bytes(header.try_into().expect("a 4-byte header"));
    assert_eq!(
        usize::try_from(stated).ok(),
        Some(reencoded.len()),
        "the frame header misstates the body length"
    );
    let mut expected = body.to_vec();
    match message {
        Message::Hello(_) => expected[HELLO_FLAGS_AT] &= HELLO_KNOWN_FLAGS,
        Message::Lines(_) => expected[BATCH_FLAGS_AT] &= BATCH_KNOWN_FLAGS,
        Message::Have(_) => expected[HAVE_FLAGS_AT] &= HAVE_COMPLETE | HAVE_MORE,
        Message::IHave(_) => expected[HAVE_FLAGS_AT] = 0,
        _ => {}
    }
    assert_eq!(
        reencoded,
        &expected[..],
        "re-encoding a parsed {} message changed its bytes",
        message.kind()
    );
    let reparsed = Message::parse(reencoded).expect("a re-encoded message parses");
    assert_eq!(reparsed, message, "the round trip changed the message");
});
