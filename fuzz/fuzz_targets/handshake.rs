//! `proto::secure::Channel` in its handshake, fed arbitrary bytes in arbitrary cuts, as
//! responder and as initiator.
//!
//! Input: one mode byte, one byte `n` (taken modulo 8), `n` cut bytes (read sizes, coded
//! as in `p2pchat_fuzz::Chunks`, used in turn), then the stream.
//!
//! - Mode bit 1 clear: the stream is all the peer sends. It goes, cut, to a fresh
//!   responder and then to a fresh initiator.
//! - Mode bit 1 set: the peer is a real `Channel` of the other role, and the stream is
//!   an edit of what it sends: XORed over its bytes (handshake messages included, as
//!   they are made in answer to the end under test), the bytes past them appended.
//!   Replies go back to the partner untouched.
//!
//! Mode bit 0 gives the ends under test a network key; bit 2 gives the partner another
//! one (or one when the ends under test have none).
//!
//! Checks, besides "no panic" (an error is a value, and is shown with `Display`):
//! - garbage never completes a handshake: without a partner the channel never opens;
//! - what an end writes is well framed: its preamble, then 2-byte-length messages;
//! - with a partner, matching keys and no byte edited, both ends open, each proves the
//!   other's id, and a sealed message crosses each way.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use p2pchat::config::Secret;
use p2pchat::proto::secure::{Channel, ChannelError, Credentials};
use p2pchat::wire::frame::Decoder;
use p2pchat::wire::handshake::{Preamble, PREAMBLE_LEN};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Network keys: none, one, another.
const NETWORK_KEYS: [Option<u8>; 3] = [None, Some(1), Some(2)];

/// Credentials of identity `k` (0 under test, 1 the partner) with network key `nk` (an
/// index into [`NETWORK_KEYS`]), made once per process.
fn creds(k: usize, nk: usize) -> &'static Credentials {
    static ALL: OnceLock<Vec<Credentials>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let mut all = Vec::new();
        for k in 0..2u8 {
            for nk in NETWORK_KEYS {
                let mut rng = ChaCha20Rng::seed_from_u64(u64::from(k));
                let network = nk.map(|b| Secret([b; 32]));
                all.push(Credentials::new(&Secret([0x50 + k; 32]), network, &mut rng));
            }
        }
        all
    });
    &all[k * NETWORK_KEYS.len() + nk]
}

/// Read sizes from the cut bytes, in turn (`Chunks`' coding); one whole read when none.
struct Cuts<'a> {
    sizes: &'a [u8],
    next: usize,
}

impl Cuts<'_> {
    /// Cuts `bytes` into the next reads.
    fn cut<'b>(&mut self, mut bytes: &'b [u8]) -> Vec<&'b [u8]> {
        let mut pieces = Vec::new();
        while !bytes.is_empty() {
            let len = match self.sizes.get(self.next % self.sizes.len().max(1)) {
                None => bytes.len(),
                Some(&b) if b < 0x80 => usize::from(b) + 1,
                Some(&b) => usize::from(b - 0x7f) * 64,
            };
            self.next += 1;
            let (piece, rest) = bytes.split_at(len.min(bytes.len()));
            pieces.push(piece);
            bytes = rest;
        }
        pieces
    }
}

/// Checks what an end wrote: its preamble, then whole or partial 2-byte-length messages.
struct WireCheck {
    seen: usize,
    preamble: Vec<u8>,
    messages: Decoder,
}

impl WireCheck {
    fn new() -> Self {
        WireCheck {
            seen: 0,
            preamble: Vec::new(),
            messages: Decoder::noise(),
        }
    }

    fn check(&mut self, written: &[u8]) {
        let mut rest = &written[self.seen..];
        self.seen = written.len();
        let take = (PREAMBLE_LEN - self.preamble.len()).min(rest.len());
        self.preamble.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        if let Ok(bytes) = <&[u8; PREAMBLE_LEN]>::try_from(&self.preamble[..]) {
            assert!(
                Preamble::parse(bytes).is_ok(),
                "an invalid preamble was written"
            );
        }
        while let Some(message) = self
            .messages
            .next(&mut rest)
            .unwrap_or_else(|err| panic!("a badly framed handshake message: {err}"))
        {
            assert!(!message.is_empty(), "an empty handshake message");
        }
    }
}

fn show(err: &ChannelError) {
    let text = err.to_string();
    assert!(!text.is_empty());
}

/// The stream alone, cut, to a fresh end of each role.
fn garbage(mode: u8, cuts: &mut Cuts<'_>, stream: &[u8]) {
    let nk = usize::from(mode & 1);
    for initiator in [false, true] {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let (mut wire, mut plain) = (Vec::new(), Vec::new());
        let mut check = WireCheck::new();
        let mut channel = Channel::new(creds(0, nk), initiator, &mut rng, &mut wire);
        check.check(&wire);
        for piece in cuts.cut(stream) {
            match channel.recv(creds(0, nk), piece, &mut wire, &mut plain) {
                Ok(opened) => assert!(opened.is_none(), "garbage completed a handshake"),
                Err(err) => {
                    show(&err);
                    break;
                }
            }
            check.check(&wire);
            assert!(!channel.is_open(), "garbage opened a channel");
            assert!(plain.is_empty(), "plaintext out of a handshake");
        }
    }
}

/// A real partner whose bytes the stream edits.
fn edited(mode: u8, cuts: &mut Cuts<'_>, stream: &[u8]) {
    let nk = usize::from(mode & 1);
    let partner_nk = match (nk, mode & 4 != 0) {
        (_, false) => nk,
        (0, true) => 1,
        _ => 2,
    };
    let (ours, theirs) = (creds(0, nk), creds(1, partner_nk));
    for initiator in [false, true] {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let (mut to_test, mut to_partner, mut plain) = (Vec::new(), Vec::new(), Vec::new());
        let mut partner = Channel::new(theirs, !initiator, &mut rng, &mut to_test);
        let mut test = Channel::new(ours, initiator, &mut rng, &mut to_partner);
        let mut check = WireCheck::new();
        let mut written = to_partner.clone();
        check.check(&written);
        let (mut used, mut altered, mut failed) = (0, false, false);
        let (mut test_proven, mut partner_proven) = (None, None);
        'rounds: for _ in 0..4 {
            let mut bytes = std::mem::take(&mut to_test);
            if bytes.is_empty() && to_partner.is_empty() {
                // The partner has nothing more to say: the rest of the stream follows.
                bytes = stream[used.min(stream.len())..].to_vec();
                used = stream.len();
                altered |= !bytes.is_empty();
            } else {
                for (b, edit) in bytes.iter_mut().zip(stream.get(used..).unwrap_or(&[])) {
                    *b ^= edit;
                    altered |= *edit != 0;
                }
                used += bytes.len();
            }
            for piece in cuts.cut(&bytes) {
                match test.recv(ours, piece, &mut to_partner, &mut plain) {
                    Ok(opened) => test_proven = test_proven.or(opened),
                    Err(err) => {
                        show(&err);
                        failed = true;
                        break 'rounds;
                    }
                }
            }
            written.extend_from_slice(&to_partner);
            check.check(&written);
            let replies = std::mem::take(&mut to_partner);
            if partner.is_open() && replies.is_empty() {
                continue;
            }
            match partner.recv(theirs, &replies, &mut to_test, &mut plain) {
                Ok(opened) => partner_proven = partner_proven.or(opened),
                // Answers to edited bytes may be refused: the edit was the partner's.
                Err(err) => {
                    show(&err);
                    failed = true;
                    break;
                }
            }
        }
        altered |= used < stream.len();
        if altered || partner_nk != nk {
            continue;
        }
        assert!(!failed, "an untouched handshake failed");
        assert!(
            test.is_open() && partner.is_open(),
            "an untouched handshake did not open"
        );
        assert_eq!(test_proven.map(|p| p.id), Some(theirs.id()));
        assert_eq!(partner_proven.map(|p| p.id), Some(ours.id()));
        assert!(plain.is_empty(), "plaintext out of a handshake");
        let (mut wire, mut opened) = (Vec::new(), Vec::new());
        test.seal(b"ping", &mut wire);
        partner
            .recv(theirs, &wire, &mut Vec::new(), &mut opened)
            .expect("a sealed message");
        wire.clear();
        partner.seal(b"pong", &mut wire);
        test.recv(ours, &wire, &mut Vec::new(), &mut opened)
            .expect("a sealed message");
        assert_eq!(opened, b"pingpong");
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(n % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let mut cuts = Cuts { sizes, next: 0 };
    if mode & 2 == 0 {
        garbage(*mode, &mut cuts, stream);
    } else {
        edited(*mode, &mut cuts, stream);
    }
});
