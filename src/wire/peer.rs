//! The messages peers exchange, each the body of one frame: parsed from a body in one
//! step into a validated, borrowing value, and emitted straight into a send buffer.
//!
//! The byte layout is written down in docs/PROTOCOL.md; this file is its reference.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str;

use byteorder::{BigEndian, ByteOrder, WriteBytesExt};

use super::frame;
use super::lines::{
    Batch, Have, MAX_BATCH_BODY_LEN, MAX_BATCH_LINES, MAX_HAVE_BODY_LEN, MAX_HAVE_ENTRIES,
    MAX_HAVE_RANGES, MAX_RECORD_LEN, MAX_SEQ,
};
use super::member::{Announce, MAX_MEMBER_RECORD_LEN, MAX_NICKS};
use super::text::{self, NickError, MAX_TEXT_LEN};

const KIND_HELLO: u8 = 1;
pub(super) const KIND_LINES: u8 = 2;
const KIND_PING: u8 = 3;
const KIND_PONG: u8 = 4;
const KIND_ADDRS: u8 = 5;
const KIND_RETIRE: u8 = 6;
pub(super) const KIND_HAVE: u8 = 7;
pub(super) const KIND_MEMBER: u8 = 8;
pub(super) const KIND_IHAVE: u8 = 9;
const KIND_PRUNE: u8 = 10;
const KIND_GRAFT: u8 = 11;
const KIND_WALK: u8 = 12;

/// The hello flag of a node that refuses the link (it has all the peers it takes).
const FLAG_REFUSING: u8 = 1;

/// Most addresses in one addrs message.
pub const MAX_ADDRS: usize = 64;

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

/// The first message each end sends inside the secure channel. Who sent it is not in
/// it: the handshake proved that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The sender's run: its start time in nanoseconds since the Unix epoch. Two
    /// processes with one key tell each other apart by it.
    pub epoch: u64,
    /// The TCP port the sender accepts peers on, 0 when it accepts none.
    pub listen_port: u16,
    /// Chosen by the dialling end, unique among its links; 0 from the accepting end.
    /// Both ends use it to agree on which of two links between them to keep.
    pub link_id: u64,
    /// The sender takes no more peers: it sends the addresses of others and gives the
    /// link up, and the link never comes up.
    pub refusing: bool,
    /// The sender's nick, for `/peers`.
    pub nick: &'a str,
}

/// A parsed frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Hello(Hello<'a>),
    /// A batch of signed chat lines.
    Lines(Batch<'a>),
    /// What the sender holds of each author: the start of a catch-up.
    Have(Have<'a>),
    /// A node's signed announcement of itself, for every member table.
    Member(Announce<'a>),
    /// "Are you there?", sent on a link that has been quiet; the answer is a pong.
    Ping,
    /// The answer to a ping.
    Pong,
    /// Addresses at which nodes accept peers.
    Addrs(Addrs<'a>),
    /// "I give this link up for another one between us; nothing more follows on it."
    Retire,
    /// Lines the sender took lately, by id only: the lazy half of a broadcast tree.
    /// A summary's entries (its flags ignored), never answered with records.
    IHave(Have<'a>),
    /// "Your copies reach me first another way: send me ids only."
    Prune,
    /// "Send me lines in full again": the link joins the tree. The question about
    /// what is missing follows as a `Have`.
    Graft,
    /// A random walk through the mesh that carries a node's address: where it ends, the
    /// node there dials that address.
    Walk(Walk),
}

/// A random walk's step: where it started, and how many steps it has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    /// Steps left after the receiver's: 0 ends the walk there.
    pub hops: u8,
    /// The address the walk's starting node accepts peers at; `None` from that node
    /// itself, which may not know how others reach it: its peer's address for it is meant.
    pub addr: Option<SocketAddr>,
}

/// A validated list of up to [`MAX_ADDRS`] socket addresses, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs<'a> {
    /// The entries: a family byte (4 or 6), the IP address, the port.
    entries: &'a [u8],
}

impl Addrs<'_> {
    /// The addresses, in the order they were sent.
    pub fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let mut r = Reader::new(self.entries, "addrs");
        // Parsing validated every entry.
        std::iter::from_fn(move || r.addr().ok())
    }

    fn parse(mut r: Reader<'_>) -> Result<Addrs<'_>, PeerError> {
        let count = usize::from(r.u16()?);
        if count > MAX_ADDRS {
            return Err(PeerError::TooManyAddrs(count));
        }
        let entries = r.bytes;
        for _ in 0..count {
            r.addr()?;
        }
        let used = entries.len() - r.bytes.len();
        r.finish()?;
        Ok(Addrs {
            entries: &entries[..used],
        })
    }
}

/// Why a frame body is not a valid message. Each one is grounds to drop the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerError {
    /// The body ends before the fields its kind requires.
    Truncated { kind: &'static str },
    /// The body holds bytes after the last field of its kind.
    Trailing { kind: &'static str, extra: usize },
    /// A kind byte this version does not know.
    UnknownKind(u8),
    /// A nick that breaks the nick rule.
    BadNick(NickError),
    /// A nick that is not UTF-8.
    NickNotUtf8,
    /// Chat text that is not UTF-8.
    TextNotUtf8,
    /// Chat text over [`MAX_TEXT_LEN`] bytes.
    TextTooLong(usize),
    /// A chat copy with no hops left, which its sender must not have sent.
    NoHops,
    /// A batch record over [`MAX_RECORD_LEN`] bytes.
    BatchTooLong(usize),
    /// A batch of no lines, or of more than [`MAX_BATCH_LINES`].
    BatchCount(u16),
    /// A batch whose sequence numbers reach [`MAX_SEQ`].
    SeqOutOfRange(u64),
    /// A summary of more than [`MAX_HAVE_ENTRIES`] entries.
    TooManyEntries(usize),
    /// A summary entry of more than [`MAX_HAVE_RANGES`] ranges.
    TooManyRanges(usize),
    /// A summary range that is empty, or not after the one before it.
    BadRange { start: u64, end: u64 },
    /// An addrs message with more than [`MAX_ADDRS`] entries.
    TooManyAddrs(usize),
    /// An address family other than 4 or 6.
    BadFamily(u8),
    /// An advertised address with port 0.
    PortZero,
    /// An announcement record over [`MAX_MEMBER_RECORD_LEN`] bytes.
    MemberTooLong(usize),
    /// An announcement of no nick, or of more than [`MAX_NICKS`].
    NickCount(u8),
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::Truncated { kind } => write!(f, "truncated {kind} message"),
            PeerError::Trailing { kind, extra } => {
                write!(f, "{extra} unexpected bytes after a {kind} message")
            }
            PeerError::UnknownKind(kind) => write!(f, "unknown message kind {kind}"),
            PeerError::BadNick(err) => write!(f, "invalid nick: {err}"),
            PeerError::NickNotUtf8 => f.write_str("nick is not UTF-8"),
            PeerError::TextNotUtf8 => f.write_str("chat text is not UTF-8"),
            PeerError::TextTooLong(len) => {
                write!(f, "chat text of {len} bytes exceeds {MAX_TEXT_LEN}")
            }
            PeerError::NoHops => f.write_str("chat message with a hop limit of 0"),
            PeerError::BatchTooLong(len) => {
                write!(f, "batch of {len} bytes exceeds {MAX_RECORD_LEN}")
            }
            PeerError::BatchCount(n) => {
                write!(f, "batch of {n} lines, expected 1 to {MAX_BATCH_LINES}")
            }
            PeerError::SeqOutOfRange(seq) => {
                write!(f, "batch from sequence number {seq} runs past {MAX_SEQ}")
            }
            PeerError::TooManyEntries(n) => {
                write!(
                    f,
                    "{n} entries in one summary, the limit is {MAX_HAVE_ENTRIES}"
                )
            }
            PeerError::TooManyRanges(n) => {
                write!(
                    f,
                    "{n} ranges in one summary entry, the limit is {MAX_HAVE_RANGES}"
                )
            }
            PeerError::BadRange { start, end } => {
                write!(f, "summary range {start}..{end} is empty or out of order")
            }
            PeerError::TooManyAddrs(n) => {
                write!(f, "{n} addresses in one message, the limit is {MAX_ADDRS}")
            }
            PeerError::BadFamily(family) => write!(f, "unknown address family {family}"),
            PeerError::PortZero => f.write_str("advertised address with port 0"),
            PeerError::MemberTooLong(len) => {
                write!(
                    f,
                    "announcement of {len} bytes exceeds {MAX_MEMBER_RECORD_LEN}"
                )
            }
            PeerError::NickCount(n) => {
                write!(f, "announcement of {n} nicks, expected 1 to {MAX_NICKS}")
            }
        }
    }
}

impl std::error::Error for PeerError {}

impl<'a> Message<'a> {
    /// Parses and validates one frame body.
    pub fn parse(body: &'a [u8]) -> Result<Self, PeerError> {
        let (&kind, rest) = body
            .split_first()
            .ok_or(PeerError::Truncated { kind: "empty" })?;
        match kind {
            KIND_HELLO => Hello::parse(Reader::new(rest, "hello")).map(Message::Hello),
            KIND_LINES => Batch::parse(rest).map(Message::Lines),
            KIND_HAVE => Have::parse(rest).map(Message::Have),
            KIND_MEMBER => Announce::parse(rest).map(Message::Member),
            KIND_PING => Reader::new(rest, "ping").finish().map(|()| Message::Ping),
            KIND_PONG => Reader::new(rest, "pong").finish().map(|()| Message::Pong),
            KIND_ADDRS => Addrs::parse(Reader::new(rest, "addrs")).map(Message::Addrs),
            KIND_RETIRE => Reader::new(rest, "retire")
                .finish()
                .map(|()| Message::Retire),
            KIND_IHAVE => Have::parse_ihave(rest).map(Message::IHave),
            KIND_PRUNE => Reader::new(rest, "prune").finish().map(|()| Message::Prune),
            KIND_GRAFT => Reader::new(rest, "graft").finish().map(|()| Message::Graft),
            KIND_WALK => Walk::parse(Reader::new(rest, "walk")).map(Message::Walk),
            other => Err(PeerError::UnknownKind(other)),
        }
    }

    /// Appends a ping to `out` as a whole frame.
    pub fn encode_ping(out: &mut Vec<u8>) {
        frame::encode(out, |out| out.push(KIND_PING));
    }

    /// Appends a pong to `out` as a whole frame.
    pub fn encode_pong(out: &mut Vec<u8>) {
        frame::encode(out, |out| out.push(KIND_PONG));
    }

    /// Appends a retire message to `out` as a whole frame.
    pub fn encode_retire(out: &mut Vec<u8>) {
        frame::encode(out, |out| out.push(KIND_RETIRE));
    }

    /// Appends a prune message to `out` as a whole frame.
    pub fn encode_prune(out: &mut Vec<u8>) {
        frame::encode(out, |out| out.push(KIND_PRUNE));
    }

    /// Appends a graft message to `out` as a whole frame.
    pub fn encode_graft(out: &mut Vec<u8>) {
        frame::encode(out, |out| out.push(KIND_GRAFT));
    }

    /// Appends an addrs message with the first [`MAX_ADDRS`] of `addrs` to `out`.
    pub fn encode_addrs(out: &mut Vec<u8>, addrs: impl IntoIterator<Item = SocketAddr>) {
        frame::encode(out, |out| {
            out.push(KIND_ADDRS);
            let count_at = out.len();
            write_u16(out, 0);
            let mut count = 0u16;
            for addr in addrs.into_iter().take(MAX_ADDRS) {
                write_addr(out, addr);
                count += 1;
            }
            BigEndian::write_u16(&mut out[count_at..count_at + 2], count);
        });
    }

    /// The message's kind, as log lines name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Lines(_) => "lines",
            Message::Have(_) => "have",
            Message::Member(_) => "member",
            Message::Ping => "ping",
            Message::Pong => "pong",
            Message::Addrs(_) => "addrs",
            Message::Retire => "retire",
            Message::IHave(_) => "ihave",
            Message::Prune => "prune",
            Message::Graft => "graft",
            Message::Walk(_) => "walk",
        }
    }
}

impl Walk {
    fn parse(mut r: Reader<'_>) -> Result<Self, PeerError> {
        let hops = r.u8()?;
        let addr = if r.bytes.is_empty() {
            None
        } else {
            Some(r.addr()?)
        };
        r.finish()?;
        Ok(Walk { hops, addr })
    }

    /// Appends the walk to `out` as a whole frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        frame::encode(out, |out| {
            out.push(KIND_WALK);
            out.push(self.hops);
            if let Some(addr) = self.addr {
                write_addr(out, addr);
            }
        });
    }
}

/// An address as addrs and walks carry it: a family byte (4 or 6), the IP address,
/// the port.
fn write_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(FAMILY_V4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(FAMILY_V6);
            out.extend_from_slice(&ip.octets());
        }
    }
    write_u16(out, addr.port());
}

impl<'a> Hello<'a> {
    fn parse(mut r: Reader<'a>) -> Result<Self, PeerError> {
        let hello = Hello {
            epoch: r.u64()?,
            listen_port: r.u16()?,
            link_id: r.u64()?,
            // Flags this version does not know are ignored.
            refusing: r.u8()? & FLAG_REFUSING != 0,
            nick: r.nick()?,
        };
        r.finish()?;
        Ok(hello)
    }

    /// Appends this hello to `out` as a whole frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        frame::encode(out, |out| {
            out.push(KIND_HELLO);
            write_u64(out, self.epoch);
            write_u16(out, self.listen_port);
            write_u64(out, self.link_id);
            out.push(if self.refusing { FLAG_REFUSING } else { 0 });
            write_nick(out, self.nick);
        });
    }
}

/// Largest body any valid message can have: a batch of lines.
pub const MAX_BODY_LEN: usize = if MAX_BATCH_BODY_LEN > MAX_HAVE_BODY_LEN {
    MAX_BATCH_BODY_LEN
} else {
    MAX_HAVE_BODY_LEN
};

fn write_u16(out: &mut Vec<u8>, value: u16) {
    out.write_u16::<BigEndian>(value)
        .expect("writing to a Vec cannot fail");
}

fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.write_u64::<BigEndian>(value)
        .expect("writing to a Vec cannot fail");
}

fn write_nick(out: &mut Vec<u8>, nick: &str) {
    let len = u8::try_from(nick.len()).expect("nicks are checked to be at most 32 bytes");
    out.push(len);
    out.extend_from_slice(nick.as_bytes());
}

/// Reads big-endian fields off a body, turning a short body into [`PeerError::Truncated`].
struct Reader<'a> {
    bytes: &'a [u8],
    kind: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], kind: &'static str) -> Self {
        Reader { bytes, kind }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], PeerError> {
        if self.bytes.len() < n {
            return Err(PeerError::Truncated { kind: self.kind });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, PeerError> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PeerError> {
        Ok(BigEndian::read_u16(self.bytes(2)?))
    }

    fn u64(&mut self) -> Result<u64, PeerError> {
        Ok(BigEndian::read_u64(self.bytes(8)?))
    }

    /// An address as [`write_addr`] writes it, whose port is not 0.
    fn addr(&mut self) -> Result<SocketAddr, PeerError> {
        let ip = match self.u8()? {
            FAMILY_V4 => IpAddr::from(<[u8; 4]>::try_from(self.bytes(4)?).expect("4 bytes")),
            FAMILY_V6 => IpAddr::from(<[u8; 16]>::try_from(self.bytes(16)?).expect("16 bytes")),
            other => return Err(PeerError::BadFamily(other)),
        };
        match self.u16()? {
            0 => Err(PeerError::PortZero),
            port => Ok(SocketAddr::new(ip, port)),
        }
    }

    /// A length byte, then that many bytes of UTF-8 that must pass the nick rule.
    fn nick(&mut self) -> Result<&'a str, PeerError> {
        let len = usize::from(self.u8()?);
        let nick = str::from_utf8(self.bytes(len)?).map_err(|_| PeerError::NickNotUtf8)?;
        text::check_nick(nick).map_err(PeerError::BadNick)?;
        Ok(nick)
    }

    fn finish(self) -> Result<(), PeerError> {
        match self.bytes.len() {
            0 => Ok(()),
            extra => Err(PeerError::Trailing {
                kind: self.kind,
                extra,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{Decoder, HEADER_LEN};
    use crate::wire::lines::HaveEntry;

    const HELLO: Hello<'static> = Hello {
        epoch: 0x0123_4567_89ab_cdef,
        listen_port: 7654,
        link_id: 3,
        refusing: false,
        nick: "alice",
    };

    /// The body of the single frame that `encode` wrote.
    fn body(encode: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out);
        let mut decoder = Decoder::new(MAX_BODY_LEN);
        let mut input = &out[..];
        let body = decoder.next(&mut input).unwrap().unwrap().to_vec();
        assert!(input.is_empty(), "exactly one frame");
        body
    }

    #[test]
    fn hello_round_trip() {
        let bytes = body(|out| HELLO.encode(out));
        assert_eq!(Message::parse(&bytes), Ok(Message::Hello(HELLO)));
    }

    #[test]
    fn hello_layout_is_stable() {
        let bytes = body(|out| HELLO.encode(out));
        let expected: Vec<u8> = [
            &[1][..],
            &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
            &[0x1d, 0xe6],
            &[0, 0, 0, 0, 0, 0, 0, 3],
            &[0],
            &[5],
            b"alice",
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn every_truncation_is_refused() {
        let full = body(|o| HELLO.encode(o));
        for cut in 0..full.len() {
            let err = Message::parse(&full[..cut]).unwrap_err();
            assert!(
                matches!(err, PeerError::Truncated { .. } | PeerError::BadNick(_)),
                "cut at {cut}: {err:?}"
            );
        }
    }

    #[test]
    fn trailing_bytes_after_hello_are_refused() {
        let mut bytes = body(|out| HELLO.encode(out));
        bytes.push(0);
        assert_eq!(
            Message::parse(&bytes),
            Err(PeerError::Trailing {
                kind: "hello",
                extra: 1
            })
        );
    }

    #[test]
    fn ping_and_pong_are_a_kind_byte_alone() {
        assert_eq!(body(Message::encode_ping), [KIND_PING]);
        assert_eq!(body(Message::encode_pong), [KIND_PONG]);
        assert_eq!(Message::parse(&[KIND_PING]), Ok(Message::Ping));
        assert_eq!(Message::parse(&[KIND_PONG]), Ok(Message::Pong));
        assert_eq!(
            Message::parse(&[KIND_PING, 0]),
            Err(PeerError::Trailing {
                kind: "ping",
                extra: 1
            })
        );
    }

    #[test]
    fn addrs_round_trip_and_are_bounded() {
        let addrs: Vec<SocketAddr> = vec![
            "127.0.0.1:7654".parse().unwrap(),
            "[2001:db8::1]:9".parse().unwrap(),
        ];
        let bytes = body(|out| Message::encode_addrs(out, addrs.clone()));
        assert_eq!(bytes.len(), 1 + 2 + (1 + 4 + 2) + (1 + 16 + 2));
        let Ok(Message::Addrs(parsed)) = Message::parse(&bytes) else {
            panic!("addrs");
        };
        assert_eq!(parsed.iter().collect::<Vec<_>>(), addrs);

        let many = (1..=100u16).map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        let bytes = body(|out| Message::encode_addrs(out, many));
        let Ok(Message::Addrs(parsed)) = Message::parse(&bytes) else {
            panic!("addrs");
        };
        assert_eq!(
            parsed.iter().count(),
            MAX_ADDRS,
            "only the first 64 are sent"
        );
    }

    #[test]
    fn walks_round_trip_with_and_without_an_address() {
        for addr in [None, Some("[2001:db8::1]:9".parse().unwrap())] {
            let walk = Walk { hops: 7, addr };
            let bytes = body(|out| walk.encode(out));
            assert_eq!(bytes.len(), 2 + addr.map_or(0, |_| 1 + 16 + 2));
            assert_eq!(Message::parse(&bytes), Ok(Message::Walk(walk)));
        }
        let cases: [(&[u8], PeerError); 3] = [
            (&[KIND_WALK], PeerError::Truncated { kind: "walk" }),
            (&[KIND_WALK, 1, 4, 1, 2, 3, 4, 0, 0], PeerError::PortZero),
            (
                &[KIND_WALK, 1, 4, 1, 2, 3, 4, 0, 1, 0],
                PeerError::Trailing {
                    kind: "walk",
                    extra: 1,
                },
            ),
        ];
        for (bytes, err) in cases {
            assert_eq!(Message::parse(bytes), Err(err), "{bytes:?}");
        }
    }

    #[test]
    fn malformed_addrs_are_refused() {
        let cases: [(&[u8], PeerError); 5] = [
            (&[KIND_ADDRS, 0, 65], PeerError::TooManyAddrs(65)),
            (
                &[KIND_ADDRS, 0, 1, 5, 1, 2, 3, 4, 0, 1],
                PeerError::BadFamily(5),
            ),
            (
                &[KIND_ADDRS, 0, 1, 4, 1, 2, 3, 4, 0, 0],
                PeerError::PortZero,
            ),
            (
                &[KIND_ADDRS, 0, 1, 4, 1, 2],
                PeerError::Truncated { kind: "addrs" },
            ),
            (
                &[KIND_ADDRS, 0, 0, 9],
                PeerError::Trailing {
                    kind: "addrs",
                    extra: 1,
                },
            ),
        ];
        for (bytes, err) in cases {
            assert_eq!(Message::parse(bytes), Err(err), "{bytes:?}");
        }
    }

    #[test]
    fn unknown_kind_is_refused() {
        assert_eq!(Message::parse(&[99, 1, 2]), Err(PeerError::UnknownKind(99)));
    }

    #[test]
    fn refusing_hello_round_trips() {
        let refusing = Hello {
            refusing: true,
            ..HELLO
        };
        let bytes = body(|out| refusing.encode(out));
        assert_eq!(bytes[19], FLAG_REFUSING);
        assert_eq!(Message::parse(&bytes), Ok(Message::Hello(refusing)));
    }

    #[test]
    fn retire_is_a_kind_byte_alone() {
        assert_eq!(body(Message::encode_retire), [KIND_RETIRE]);
        assert_eq!(Message::parse(&[KIND_RETIRE]), Ok(Message::Retire));
    }

    #[test]
    fn prune_and_graft_are_kind_bytes_alone_and_ihave_is_a_summary_of_its_own_kind() {
        assert_eq!(body(Message::encode_prune), [KIND_PRUNE]);
        assert_eq!(Message::parse(&[KIND_PRUNE]), Ok(Message::Prune));
        assert_eq!(body(Message::encode_graft), [KIND_GRAFT]);
        assert_eq!(Message::parse(&[KIND_GRAFT]), Ok(Message::Graft));
        assert!(
            Message::parse(&[KIND_GRAFT, 0]).is_err(),
            "nothing may follow"
        );
        let entry = HaveEntry {
            author: 7,
            epoch: 8,
            ranges: vec![(3, 5)],
        };
        let mut out = Vec::new();
        Have::encode_ihave(&mut out, std::slice::from_ref(&entry));
        let Ok(Message::IHave(have)) = Message::parse(&out[HEADER_LEN..]) else {
            panic!("not an ihave: {out:?}");
        };
        assert_eq!(have.iter().collect::<Vec<_>>(), [entry]);
    }

    #[test]
    fn bad_nicks_are_refused() {
        for nick in ["", "a b", "<x>", "bell\u{7}", "a#b"] {
            let hello = Hello { nick, ..HELLO };
            let mut out = Vec::new();
            frame::encode(&mut out, |o| {
                o.push(KIND_HELLO);
                o.extend_from_slice(&[0; 19]);
                o.push(hello.nick.len() as u8);
                o.extend_from_slice(hello.nick.as_bytes());
            });
            assert!(
                matches!(
                    Message::parse(&out[HEADER_LEN..]),
                    Err(PeerError::BadNick(_))
                ),
                "{nick:?}"
            );
        }
    }
}
