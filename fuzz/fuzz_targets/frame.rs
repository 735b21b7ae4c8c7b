//! `wire::frame::Decoder` on arbitrary bytes cut into arbitrary reads.
//!
//! Input: one byte choosing the body limit given to `Decoder::new` (`0xff` for the real
//! `MAX_BODY_LEN`, else the byte itself, so that small limits are hit often), then a
//! cut plan and the stream (see `p2pchat_fuzz::Chunks`).
//!
//! Checks, besides "no panic":
//! - every body is 1 to `max` bytes long, and `buffered()` never exceeds `max` plus the
//!   header;
//! - a decoder that says it needs more bytes has taken all of its input;
//! - however the stream is cut, the frames and the error are exactly those of a plain
//!   whole-stream reference decoder, and the bytes left buffered at the end are the
//!   reference's unfinished frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::wire::frame::{Decoder, FrameError, HEADER_LEN};
use p2pchat::wire::peer::MAX_BODY_LEN;
use p2pchat_fuzz::Chunks;

/// What a stream decodes to: its frames, then an error or the unfinished tail's length.
#[derive(Debug, PartialEq, Eq)]
struct Decoded<'a> {
    frames: Vec<&'a [u8]>,
    end: Result<usize, FrameError>,
}

/// The framing rule of docs/PROTOCOL.md, applied to the whole stream at once.
fn reference(mut stream: &[u8], max: usize) -> Decoded<'_> {
    let mut frames = Vec::new();
    loop {
        let Some(header) = stream.first_chunk::<HEADER_LEN>() else {
            return Decoded {
                frames,
                end: Ok(stream.len()),
            };
        };
        let len = u32::from_be_bytes(*header);
        let end = match usize::try_from(len) {
            Ok(0) => Err(FrameError::Empty),
            Ok(n) if n <= max => Ok(n),
            _ => Err(FrameError::TooLong { len, max }),
        };
        let body_len = match end {
            Ok(n) => n,
            Err(err) => {
                return Decoded {
                    frames,
                    end: Err(err),
                }
            }
        };
        if stream.len() < HEADER_LEN + body_len {
            return Decoded {
                frames,
                end: Ok(stream.len()),
            };
        }
        frames.push(&stream[HEADER_LEN..HEADER_LEN + body_len]);
        stream = &stream[HEADER_LEN + body_len..];
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&limit, data)) = data.split_first() else {
        return;
    };
    let max = if limit == 0xff {
        MAX_BODY_LEN
    } else {
        usize::from(limit)
    };
    let chunks = Chunks::new(data);
    let expected = reference(chunks.stream(), max);

    let mut decoder = Decoder::new(max);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut error = None;
    'stream: for piece in chunks {
        let mut input = piece;
        loop {
            match decoder.next(&mut input) {
                Ok(Some(body)) => {
                    assert!(
                        (1..=max).contains(&body.len()),
                        "body of {} bytes from a decoder limited to {max}",
                        body.len()
                    );
                    frames.push(body.to_vec());
                }
                Ok(None) => {
                    assert!(input.is_empty(), "the decoder waits with input left over");
                    break;
                }
                Err(err) => {
                    // The stream is beyond repair: a driver drops the link here.
                    error = Some(err);
                    break 'stream;
                }
            }
            assert!(
                decoder.buffered() <= max + HEADER_LEN,
                "{} bytes buffered by a decoder limited to {max}",
                decoder.buffered()
            );
        }
        assert!(
            decoder.buffered() <= max + HEADER_LEN,
            "{} bytes buffered by a decoder limited to {max}",
            decoder.buffered()
        );
    }

    let decoded = Decoded {
        frames: frames.iter().map(Vec::as_slice).collect(),
        end: error.map_or(Ok(decoder.buffered()), Err),
    };
    assert_eq!(
        decoded, expected,
        "the cuts changed what the stream decodes to"
    );
});
