//! Length-prefixed framing for peer links: a big-endian body length, then the body. Frames
//! inside a link's secure channel have a 4-byte length; the Noise messages that carry them
//! on the wire have a 2-byte one.
//!
//! The decoder is incremental and copies as little as it can: whole frames are returned
//! straight from the caller's input, and only a frame cut by the end of a read is kept,
//! in a buffer never larger than the declared (and checked) frame length.

use std::fmt;

use byteorder::{BigEndian, ByteOrder};

/// Bytes before every frame body: its length as a big-endian `u32`.
pub const HEADER_LEN: usize = 4;

/// Bytes before every Noise message on the wire: its length as a big-endian `u16`.
pub const NOISE_HEADER_LEN: usize = 2;

/// Why a byte stream cannot be framed; the link that sent it must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The header declares a body longer than the limit.
    TooLong { len: u32, max: usize },
    /// The header declares an empty body; every message has at least a kind byte.
    Empty,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max} bytes")
            }
            FrameError::Empty => f.write_str("empty frame"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Appends one frame to `out`: the header, then whatever `body` writes.
///
/// The body is written in place and the header patched afterwards, so a message is
/// encoded without an intermediate buffer.
pub fn encode(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    body(out);
    let len = u32::try_from(out.len() - start - HEADER_LEN)
        .expect("bodies are built from bounded fields, far below 4 GiB");
    BigEndian::write_u32(&mut out[start..start + HEADER_LEN], len);
}

/// A buffer for frames cut by the end of a read is kept up to this size; a larger one,
/// for a long Noise message, is freed once its frame is returned.
const KEEP_PENDING: usize = 8 * 1024;

/// Cuts frames out of a byte stream delivered in arbitrary pieces.
#[derive(Debug)]
pub struct Decoder {
    /// [`HEADER_LEN`] or [`NOISE_HEADER_LEN`].
    header_len: usize,
    max_len: usize,
    /// A frame that straddles reads: its header and as much of its body as has arrived.
    pending: Vec<u8>,
    /// `pending` holds the complete frame returned last time; clear it on the next call.
    returned_pending: bool,
}

impl Decoder {
    /// A decoder of 4-byte-length frames that refuses bodies longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Decoder::with_header(HEADER_LEN, max_len)
    }

    /// A decoder of 2-byte-length Noise messages.
    pub fn noise() -> Self {
        Decoder::with_header(NOISE_HEADER_LEN, usize::from(u16::MAX))
    }

    fn with_header(header_len: usize, max_len: usize) -> Self {
        Decoder {
            header_len,
            max_len,
            pending: Vec::new(),
            returned_pending: false,
        }
    }

    /// Returns the next complete frame body, consuming its bytes from `input`.
    ///
    /// `Ok(None)` means `input` is used up and the decoder waits for more bytes; any
    /// partial frame has been kept. After an error the stream is beyond repair.
    pub fn next<'d, 'i, 'f>(
        &'d mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<&'f [u8]>, FrameError>
    where
        'd: 'f,
        'i: 'f,
    {
        let header_len = self.header_len;
        if self.returned_pending {
            // A Noise message can be 64 KiB: an idle link must not keep that much.
            if self.pending.capacity() > KEEP_PENDING {
                self.pending = Vec::new();
            } else {
                self.pending.clear();
            }
            self.returned_pending = false;
        }
        if self.pending.is_empty() {
            return self.next_from_input(input);
        }
        if self.pending.len() < header_len {
            let take = (header_len - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            *input = &input[take..];
            if self.pending.len() < header_len {
                return Ok(None);
            }
        }
        let total = header_len + self.body_len(&self.pending[..header_len])?;
        let take = (total - self.pending.len()).min(input.len());
        self.pending.reserve_exact(total - self.pending.len());
        self.pending.extend_from_slice(&input[..take]);
        *input = &input[take..];
        if self.pending.len() < total {
            return Ok(None);
        }
        self.returned_pending = true;
        Ok(Some(&self.pending[header_len..]))
    }

    /// The fast path: nothing pending, so frames come straight out of `input`.
    fn next_from_input<'a>(
        &mut self,
        input: &mut &'a [u8],
    ) -> Result<Option<&'a [u8]>, FrameError> {
        let header_len = self.header_len;
        if input.len() >= header_len {
            let total = header_len + self.body_len(&input[..header_len])?;
            if input.len() >= total {
                let (frame, rest) = input.split_at(total);
                *input = rest;
                return Ok(Some(&frame[header_len..]));
            }
            self.pending.reserve_exact(total);
        }
        self.pending.extend_from_slice(input);
        *input = &[];
        Ok(None)
    }

    /// Checks a header before anything is allocated for its body.
    fn body_len(&self, header: &[u8]) -> Result<usize, FrameError> {
        let len = match header.len() {
            NOISE_HEADER_LEN => u32::from(BigEndian::read_u16(header)),
            _ => BigEndian::read_u32(header),
        };
        match usize::try_from(len) {
            Ok(0) => Err(FrameError::Empty),
            Ok(n) if n <= self.max_len => Ok(n),
            _ => Err(FrameError::TooLong {
                len,
                max: self.max_len,
            }),
        }
    }

    /// Bytes of an unfinished frame held between reads.
    pub fn buffered(&self) -> usize {
        if self.returned_pending {
            0
        } else {
            self.pending.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(bodies: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for body in bodies {
            encode(&mut out, |o| o.extend_from_slice(body));
        }
        out
    }

    /// Feeds `bytes` in pieces of `chunk` bytes and collects every frame.
    fn decode_in_chunks(bytes: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut decoder = Decoder::new(64);
        let mut frames = Vec::new();
        for piece in bytes.chunks(chunk) {
            let mut input = piece;
            while let Some(frame) = decoder.next(&mut input)? {
                frames.push(frame.to_vec());
            }
            assert!(input.is_empty(), "the decoder leaves no input behind");
        }
        Ok(frames)
    }

    #[test]
    fn header_is_big_endian_body_length() {
        assert_eq!(framed(&[b"abc"]), [0, 0, 0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn round_trips_whatever_the_read_boundaries() {
        let bodies: [&[u8]; 4] = [b"x", b"hello", &[7; 64], b"last"];
        let bytes = framed(&bodies);
        for chunk in 1..=bytes.len() {
            let frames = decode_in_chunks(&bytes, chunk).unwrap();
            assert_eq!(frames, bodies.map(<[u8]>::to_vec), "chunk size {chunk}");
        }
    }

    #[test]
    fn partial_frame_is_kept_and_counted() {
        let bytes = framed(&[b"hello"]);
        let mut decoder = Decoder::new(64);
        let mut input = &bytes[..6];
        assert_eq!(decoder.next(&mut input), Ok(None));
        assert_eq!(decoder.buffered(), 6);
        let mut rest = &bytes[6..];
        assert_eq!(decoder.next(&mut rest), Ok(Some(&b"hello"[..])));
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn over_long_length_is_refused_before_the_body_arrives() {
        let mut decoder = Decoder::new(64);
        let mut input: &[u8] = &[0, 0, 0, 65];
        assert_eq!(
            decoder.next(&mut input),
            Err(FrameError::TooLong { len: 65, max: 64 })
        );
        assert_eq!(decoder.buffered(), 0, "nothing was allocated for the body");
    }

    #[test]
    fn huge_length_split_across_reads_is_refused() {
        let mut decoder = Decoder::new(64);
        let mut first: &[u8] = &[0xff, 0xff];
        assert_eq!(decoder.next(&mut first), Ok(None));
        let mut second: &[u8] = &[0xff, 0xff, 1, 2, 3];
        assert_eq!(
            decoder.next(&mut second),
            Err(FrameError::TooLong {
                len: u32::MAX,
                max: 64
            })
        );
    }

    #[test]
    fn a_long_message_cut_by_a_read_leaves_no_big_buffer_behind() {
        let mut decoder = Decoder::noise();
        let mut bytes = vec![0xff, 0xff];
        bytes.extend_from_slice(&[7; 0xffff]);
        let (first, second) = bytes.split_at(100);
        assert_eq!(decoder.next(&mut &first[..]), Ok(None));
        let mut rest = second;
        assert_eq!(
            decoder.next(&mut rest).unwrap().map(<[u8]>::len),
            Some(0xffff)
        );
        assert_eq!(decoder.next(&mut rest), Ok(None));
        assert!(decoder.pending.capacity() <= KEEP_PENDING);
    }

    #[test]
    fn empty_body_is_refused() {
        assert_eq!(decode_in_chunks(&[0, 0, 0, 0], 4), Err(FrameError::Empty));
    }

    #[test]
    fn truncated_stream_yields_no_frame() {
        let bytes = framed(&[b"hello"]);
        assert_eq!(decode_in_chunks(&bytes[..bytes.len() - 1], 3), Ok(vec![]));
    }
}
