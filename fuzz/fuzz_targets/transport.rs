//! `proto::secure::Channel` after its handshake: a real open pair, one end sealing
//! plaintext frames, the wire messages altered, and the other end opening them.
//!
//! Input: one byte `n` (taken modulo 32), `n` alteration bytes (see `alter`, used in
//! turn, one per wire message), one cut byte (the size of the reads the receiving end
//! is given: 0 for one read of everything, else that many bytes), then a cut plan and a
//! stream (see `p2pchat_fuzz::Chunks`): each piece of the stream is the plaintext of
//! one transport message, sealed by the sender.
//!
//! Checks, besides "no panic" (an error is a value, and is shown with `Display`):
//! - what opens is exactly what was sealed, whole messages of it in order: the
//!   plaintext out is the plaintexts of the first `m` messages as sealed, where `m` is
//!   at most the position of the first message altered, dropped or moved;
//! - nothing altered, dropped or moved: every message opens, with no error;
//! - after an error the end is not read again (the channel's contract).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use p2pchat::config::Secret;
use p2pchat::proto::secure::{Channel, Credentials};
use p2pchat_fuzz::Chunks;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The two ends' credentials, made once per process.
fn creds() -> &'static (Credentials, Credentials) {
    static CREDS: OnceLock<(Credentials, Credentials)> = OnceLock::new();
    CREDS.get_or_init(|| {
        let make = |k: u8| {
            let mut rng = ChaCha20Rng::seed_from_u64(u64::from(k));
            Credentials::new(&Secret([0x60 + k; 32]), None, &mut rng)
        };
        (make(0), make(1))
    })
}

/// A fresh pair, handshake done: `a` seals, `b` opens.
fn open_pair() -> (Channel, Channel) {
    let (a, b) = creds();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (mut to_a, mut to_b, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let mut ca = Channel::new(a, true, &mut rng, &mut to_b);
    let mut cb = Channel::new(b, false, &mut rng, &mut to_a);
    while !to_a.is_empty() || !to_b.is_empty() {
        let input = std::mem::take(&mut to_b);
        cb.recv(b, &input, &mut to_a, &mut plain)
            .expect("b's handshake");
        let input = std::mem::take(&mut to_a);
        ca.recv(a, &input, &mut to_b, &mut plain)
            .expect("a's handshake");
    }
    assert!(ca.is_open() && cb.is_open() && plain.is_empty());
    (ca, cb)
}

/// A wire message on its way: its bytes, and which sealed message it was, if untouched.
struct InFlight {
    bytes: Vec<u8>,
    intact: Option<usize>,
}

/// Alters the messages by `ops`, one byte per message in turn, `arg` being `op >> 2`:
/// low 2 bits 0 keep it; 1 flip bit `arg & 7` of a byte the op and the position choose
/// (the length header included); 2 cut its last `arg + 1` bytes; 3 swap it with the
/// next (`arg` even) or drop it (odd).
fn alter(messages: &mut Vec<InFlight>, ops: &[u8]) {
    if ops.is_empty() {
        return;
    }
    let mut i = 0;
    while i < messages.len() {
        let op = ops[i % ops.len()];
        let arg = usize::from(op >> 2);
        let message = &mut messages[i];
        match op & 3 {
            0 => {}
            1 => {
                let at = (arg * 31 + i) % message.bytes.len();
                message.bytes[at] ^= 1 << (arg & 7);
                message.intact = None;
            }
            2 => {
                let keep = message.bytes.len().saturating_sub(arg + 1);
                message.bytes.truncate(keep);
                message.intact = None;
            }
            _ if arg & 1 == 0 => {
                if i + 1 < messages.len() {
                    messages.swap(i, i + 1);
                    i += 1;
                }
            }
            _ => {
                messages.remove(i);
                continue;
            }
        }
        i += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let [n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(n % 32).min(rest.len());
    let (ops, rest) = rest.split_at(n);
    let [cut, rest @ ..] = rest else {
        return;
    };
    let plaintexts: Vec<&[u8]> = Chunks::new(rest).collect();
    let (mut a, mut b) = open_pair();
    let mut messages: Vec<InFlight> = plaintexts
        .iter()
        .enumerate()
        .map(|(i, plain)| {
            let mut bytes = Vec::new();
            a.seal(plain, &mut bytes);
            InFlight {
                bytes,
                intact: Some(i),
            }
        })
        .collect();
    alter(&mut messages, ops);
    // Messages up to the first one that is not the sealed one in its place open.
    let good = messages
        .iter()
        .enumerate()
        .take_while(|(at, m)| m.intact == Some(*at))
        .count();
    let untouched = good == plaintexts.len() && messages.len() == plaintexts.len();
    let wire: Vec<u8> = messages
        .iter()
        .flat_map(|m| m.bytes.iter().copied())
        .collect();
    let read = if *cut == 0 {
        wire.len().max(1)
    } else {
        usize::from(*cut)
    };

    let creds_b = &creds().1;
    let (mut opened, mut reply) = (Vec::new(), Vec::new());
    let mut failed = None;
    for piece in wire.chunks(read) {
        let before = opened.len();
        match b.recv(creds_b, piece, &mut reply, &mut opened) {
            Ok(proven) => assert!(proven.is_none(), "a second handshake end in transport"),
            Err(err) => {
                assert!(!err.to_string().is_empty());
                failed = Some(err);
                // A failed call leaves the failed message's length of bytes that were
                // never sealed on the end of the plaintext (it is resized for the
                // message before the decryption fails, and not cut back), so what that
                // call appended is not checked. The node drops the link and the bytes
                // with it; a caller that read on would take them for plaintext.
                opened.truncate(before);
                break;
            }
        }
        assert!(
            reply.is_empty(),
            "an open channel answered a transport message"
        );
    }
    assert!(
        !(untouched && failed.is_some()),
        "untouched messages failed: {failed:?}"
    );
    // The plaintext out is whole sealed messages, in order, none past `good`.
    let mut at = 0;
    let mut whole = 0;
    while at < opened.len() {
        assert!(whole < good, "plaintext out past the first altered message");
        let sealed = plaintexts[whole];
        assert_eq!(
            opened.get(at..at + sealed.len()),
            Some(sealed),
            "message {whole} opened to other bytes than were sealed"
        );
        at += sealed.len();
        whole += 1;
    }
    if untouched {
        assert_eq!(
            whole,
            plaintexts.len(),
            "untouched messages did not all open"
        );
    }
});
