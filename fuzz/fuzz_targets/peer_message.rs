//! `wire::peer::Message::parse` on arbitrary frame bodies.
//!
//! Checks, besides "no panic" (in parsing, in `Display` of the error, in walking the
//! addresses of an addrs message):
//! - every message that parses fits in a frame (`MAX_BODY_LEN`), so the framing limit
//!   never refuses a valid message;
//! - the encoding is canonical: re-encoding a parsed message with the crate's own
//!   encoder gives back exactly the body it was parsed from, in a frame whose header
//!   states its length, and that body parses to the same value (round trip). The one
//!   exception is the flags byte of a hello: flags this version does not know are
//!   ignored (a later version may set them), so they do not come back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::wire::frame::HEADER_LEN;
use p2pchat::wire::peer::{Message, MAX_ADDRS, MAX_BODY_LEN};
use p2pchat::wire::text;

/// Encodes `message` as a whole frame with the encoder the node itself uses.
fn encode(message: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match message {
        Message::Hello(hello) => hello.encode(&mut out),
        Message::Chat(chat) => chat.encode(&mut out),
        Message::Ping => Message::encode_ping(&mut out),
        Message::Pong => Message::encode_pong(&mut out),
        Message::Addrs(addrs) => Message::encode_addrs(&mut out, addrs.iter()),
        Message::Retire => Message::encode_retire(&mut out),
    }
    out
}

/// Where a hello body has its flags byte: after the kind, epoch, port and link id.
const HELLO_FLAGS_AT: usize = 1 + 8 + 2 + 8;
/// The hello flags this version knows: refusing.
const HELLO_KNOWN_FLAGS: u8 = 1;

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
        Message::Chat(chat) => {
            assert!(chat.hops > 0, "hops 0 is refused");
            assert!(text::check_nick(chat.nick).is_ok());
            assert!(chat.text.len() <= text::MAX_TEXT_LEN);
        }
        Message::Addrs(addrs) => {
            let count = addrs.iter().count();
            assert!(count <= MAX_ADDRS, "{count} addresses accepted");
            assert!(addrs.iter().all(|addr| addr.port() != 0), "port 0 accepted");
        }
        Message::Ping | Message::Pong | Message::Retire => {}
    }

    let frame = encode(&message);
    let (header, reencoded) = frame.split_at(HEADER_LEN);
    let stated = u32::from_be_bytes(header.try_into().expect("a 4-byte header"));
    assert_eq!(
        usize::try_from(stated).ok(),
        Some(reencoded.len()),
        "the frame header misstates the body length"
    );
    let mut expected = body.to_vec();
    if let Message::Hello(_) = message {
        expected[HELLO_FLAGS_AT] &= HELLO_KNOWN_FLAGS;
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
