//! Micro-benchmarks of the parts on the relay path: building, framing and parsing
//! batches of signed lines, signing and verifying them per line, the per-author check
//! of what was seen already, the secure channel (sealing and opening transport
//! messages, a whole handshake), and the node's whole relay step (a signed batch in
//! from one peer, checked, kept and forwarded to the others), driven through the
//! node's public API with peers that run the real secure channel.
//!
//! `cargo bench --bench core`; the figures are discussed in BENCHMARKS.md.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use p2pchat::config::{
    NodeConfig, Secret, DEFAULT_BACKLOG, DEFAULT_HOP_LIMIT, DEFAULT_MAX_AUTHORS,
};
use p2pchat::proto::author::{Author, Verifier};
use p2pchat::proto::logs::{Admission, Logs};
use p2pchat::proto::secure::{public_key, Channel, Credentials, MAX_PLAINTEXT_LEN};
use p2pchat::proto::{Accepted, ConnId, Node, Output};
use p2pchat::wire::frame::Decoder;
use p2pchat::wire::lines::{Batch, Draft, Record, SIGNATURE_LEN};
use p2pchat::wire::peer::{Hello, Message, MAX_BODY_LEN};

/// Lines per relay batch: what a node signs as one batch when a client writes this
/// many lines in one read (about 41 KiB of the 60 KiB a batch may hold).
const BATCH: u64 = 512;

/// Lines per batch in the signing group: a lone line, a short burst, a long one.
const SIGNING_BATCHES: [u64; 3] = [1, 16, 256];

/// 64 bytes of text, the size the end-to-end benchmark uses.
const TEXT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const NICK: &str = "bench";

/// The run of every author of the bench.
const EPOCH: u64 = 1;

/// The record of `count` lines of [`TEXT`] from `first` on by an author with public key
/// `key`, with a signature of zeros: the wire and the logs check no signature.
fn unsigned_record(key: &[u8; 32], first: u64, count: u64) -> Vec<u8> {
    let mut draft = Draft::new(key, EPOCH, first);
    for i in 0..count {
        draft.push(1_000 + i, NICK, TEXT);
    }
    draft.into_record(&[0; SIGNATURE_LEN])
}

/// A signed record: `count` lines of [`TEXT`] that `author` writes in one burst.
fn signed_record(author: &mut Author, count: u64) -> Vec<u8> {
    for i in 0..count {
        let sealed = author.write(1_000 + i, NICK, TEXT);
        assert!(sealed.is_none(), "a burst of the bench fits one batch");
    }
    author.seal().expect("lines were written")
}

/// `record` as a whole batch frame, sent with the default hop limit.
fn batch_frame(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len() + 8);
    Batch::encode(&mut out, DEFAULT_HOP_LIMIT, false, record);
    out
}

fn wire(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire");
    let key = public_key(&identity(7));
    let record = unsigned_record(&key, 0, BATCH);
    let stream = batch_frame(&record);
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(BenchmarkId::new("encode batch, lines", BATCH), |b| {
        let mut out = Vec::with_capacity(stream.len());
        b.iter(|| {
            let mut draft = Draft::new(&key, EPOCH, 0);
            for i in 0..BATCH {
                draft.push(1_000 + i, NICK, black_box(TEXT));
            }
            let record = draft.into_record(&[0; SIGNATURE_LEN]);
            out.clear();
            Batch::encode(&mut out, DEFAULT_HOP_LIMIT, false, &record);
            black_box(out.len())
        })
    });
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function(
        BenchmarkId::new("decode and parse batch, lines", BATCH),
        |b| {
            b.iter(|| {
                let mut decoder = Decoder::new(MAX_BODY_LEN);
                let mut input = black_box(&stream[..]);
                let mut lines = 0u64;
                while let Some(body) = decoder.next(&mut input).expect("valid stream") {
                    if let Ok(Message::Lines(batch)) = Message::parse(body) {
                        lines += u64::from(batch.record.count);
                    }
                }
                lines
            })
        },
    );
    group.finish();
}

/// Signing and verifying, per line, at several batch sizes: what batching a burst
/// saves, since either costs about the same for one line or a few hundred. Then the
/// per-author check of a batch against what was seen, before and instead of a
/// signature check.
fn signing(c: &mut Criterion) {
    let mut group = c.benchmark_group("signing");
    for lines in SIGNING_BATCHES {
        group.throughput(Throughput::Elements(lines));
        let mut author = Author::at(&identity(7), EPOCH, 0);
        group.bench_with_input(
            BenchmarkId::new("write and seal, lines per batch", lines),
            &lines,
            |b, &lines| b.iter(|| signed_record(&mut author, black_box(lines))),
        );
        let record = signed_record(&mut author, lines);
        let parsed = Record::parse(&record).expect("a valid record");
        let mut verifier = Verifier::default();
        group.bench_with_input(
            BenchmarkId::new("verify, lines per batch", lines),
            &lines,
            |b, _| {
                b.iter(|| {
                    let valid = verifier.verify(black_box(&parsed));
                    assert!(valid, "the author's own batch verifies");
                })
            },
        );
        seen_check(&mut group, lines);
    }
    group.finish();
}

/// A relay's logs, within the default bounds.
fn relay_logs(now: Instant) -> Logs {
    let own = public_key(&identity(0));
    Logs::new(now, &own, EPOCH, DEFAULT_MAX_AUTHORS, DEFAULT_BACKLOG)
}

/// `Logs::is_copy` on a batch seen already (the check that spares a signature check),
/// and `Logs::admit` of new batches of one author in order, in logs of the default
/// bounds (so that at steady state the oldest batches leave the backlog as new ones
/// come).
fn seen_check(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    lines: u64,
) {
    let now = Instant::now();
    let key = public_key(&identity(7));
    let mut logs = relay_logs(now);
    let record = unsigned_record(&key, 0, lines);
    let parsed = Record::parse(&record).expect("a valid record");
    let mut out = Vec::new();
    let admitted = logs.admit(now, &parsed, false, &mut out);
    assert!(matches!(admitted, Admission::New { .. }));
    group.bench_with_input(
        BenchmarkId::new("is_copy of a copy, lines per batch", lines),
        &lines,
        |b, _| b.iter(|| assert!(logs.is_copy(black_box(&parsed)))),
    );
    let mut next = lines;
    group.bench_with_input(
        BenchmarkId::new("admit in order, lines per batch", lines),
        &lines,
        |b, &lines| {
            b.iter_custom(|iters| {
                // The records are made before the clock starts, and parsed: only the
                // check and the keeping are timed.
                let records: Vec<Vec<u8>> = (0..iters)
                    .map(|i| unsigned_record(&key, next + i * lines, lines))
                    .collect();
                next += iters * lines;
                let parsed: Vec<Record<'_>> = records
                    .iter()
                    .map(|r| Record::parse(r).expect("a valid record"))
                    .collect();
                let start = Instant::now();
                for record in &parsed {
                    let admitted = logs.admit(now, record, false, &mut out);
                    assert!(matches!(admitted, Admission::New { .. }), "new lines");
                    out.clear();
                }
                let took = start.elapsed();
                drop(parsed);
                took
            })
        },
    );
}

/// Identity key number `k` of the bench (the relay node is 0).
fn identity(k: u64) -> Secret {
    let mut key = [0xbe; 32];
    key[..8].copy_from_slice(&k.to_be_bytes());
    Secret(key)
}

/// Credentials of identity `k`, without a network key.
fn credentials(k: u64) -> Credentials {
    let mut rng = ChaCha20Rng::seed_from_u64(k);
    Credentials::new(&identity(k), None, &mut rng)
}

/// Links fake peer `k` to `node` as an accepted connection, running the real handshake
/// and the hellos through the node's public API; returns the connection and the peer's
/// end of the channel, open.
fn link(node: &mut Node, k: u64, now: Instant) -> (ConnId, Channel) {
    let creds = credentials(k);
    let mut rng = ChaCha20Rng::seed_from_u64(1000 + k);
    let mut to_node = Vec::new();
    let mut channel = Channel::new(&creds, true, &mut rng, &mut to_node);
    let addr = SocketAddr::from(([127, 0, 0, 1], 10_000 + k as u16));
    let conn = node.handle_accepted(now, Accepted::Peer(addr));
    let (mut said_hello, mut plain) = (false, Vec::new());
    for _ in 0..8 {
        if !to_node.is_empty() {
            node.handle_recv(now, conn, &std::mem::take(&mut to_node));
        }
        // The other peers are sinks: what the node writes them goes nowhere. This
        // link's bytes are read below.
        while let Some(output) = node.poll_output() {
            if let Output::Flush(other) = output {
                if other != conn {
                    let n = node.send_queue(other).len();
                    node.handle_sent(now, other, n);
                }
            }
        }
        let from_node = node.send_queue(conn).to_vec();
        node.handle_sent(now, conn, from_node.len());
        channel
            .recv(&creds, &from_node, &mut to_node, &mut plain)
            .expect("the node runs the handshake right");
        if channel.is_open() && !said_hello {
            let mut hello = Vec::new();
            Hello {
                epoch: 1,
                listen_port: 0,
                link_id: 1,
                refusing: false,
                nick: "peer",
            }
            .encode(&mut hello);
            channel.seal(&hello, &mut to_node);
            said_hello = true;
        }
        if from_node.is_empty() && to_node.is_empty() {
            break;
        }
    }
    let mut decoder = Decoder::new(MAX_BODY_LEN);
    let first = decoder.next(&mut &plain[..]).expect("valid frames");
    let greeted = first.is_some_and(|body| matches!(Message::parse(body), Ok(Message::Hello(_))));
    assert!(greeted, "the node said hello inside the channel");
    (conn, channel)
}

/// A node with `peers` linked peers, every handshake done and every queue empty.
fn relay_node(peers: u64, now: Instant) -> (Node, Vec<ConnId>, Vec<Channel>) {
    let mut node = Node::new(NodeConfig::new(identity(0), 2, "relay".into()), now);
    let (conns, ends) = (1..=peers).map(|k| link(&mut node, k, now)).unzip();
    (node, conns, ends)
}

/// Carries out outputs as the driver would: every flush writes the whole queue.
fn drain(node: &mut Node, now: Instant) -> usize {
    let mut written = 0;
    while let Some(output) = node.poll_output() {
        if let Output::Flush(conn) = output {
            let n = node.send_queue(conn).len();
            written += n;
            node.handle_sent(now, conn, n);
        }
    }
    written
}

fn relay(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(BATCH));
    for peers in [2, 9] {
        let now = Instant::now();
        let (mut node, conns, mut ends) = relay_node(peers, now);
        drain(&mut node, now);
        let sender = &mut ends[0];
        // An author of its own, as a batch written at another node and relayed by the
        // sender would have.
        let mut author = Author::at(&identity(100 + peers), EPOCH, 0);
        let mut last = Vec::new();
        group.bench_with_input(
            BenchmarkId::new("signed batch in, verified, forwarded to peers", peers - 1),
            &peers,
            |b, _| {
                b.iter_batched_ref(
                    // The author signs the batch and the sender seals it (one transport
                    // message, as a node would send it) outside the timed part; the
                    // node opens it, checks what it has seen, verifies the signature,
                    // keeps the batch and seals a copy for every other peer inside.
                    || {
                        last = signed_record(&mut author, BATCH);
                        let mut wire = Vec::new();
                        sender.seal(&batch_frame(&last), &mut wire);
                        wire
                    },
                    |wire| {
                        node.handle_recv(now, conns[0], wire);
                        drain(&mut node, now)
                    },
                    BatchSize::SmallInput,
                )
            },
        );
        // A copy of the last batch again: dropped by the seen check, no signature
        // checked and nothing forwarded.
        group.bench_with_input(
            BenchmarkId::new("copy of a batch in, dropped, peers", peers - 1),
            &peers,
            |b, _| {
                b.iter_batched_ref(
                    || {
                        let mut wire = Vec::new();
                        sender.seal(&batch_frame(&last), &mut wire);
                        wire
                    },
                    |wire| {
                        node.handle_recv(now, conns[0], wire);
                        drain(&mut node, now)
                    },
                    BatchSize::SmallInput,
                )
            },
        );
        let forged = node.counters().forged;
        assert_eq!(forged, 0, "every batch of the bench verifies");
    }
    group.finish();
}

/// A channel pair with the handshake done: `(a, a's credentials, b, b's credentials)`.
fn open_pair() -> (Channel, Credentials, Channel, Credentials) {
    let (a, b) = (credentials(1), credentials(2));
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (ca, cb) = handshake(&a, &b, &mut rng);
    (ca, a, cb, b)
}

/// A whole handshake between `a` (initiator) and `b`: preambles, the three Noise
/// messages, both identity proofs verified.
fn handshake(a: &Credentials, b: &Credentials, rng: &mut ChaCha20Rng) -> (Channel, Channel) {
    let (mut to_a, mut to_b, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let mut ca = Channel::new(a, true, rng, &mut to_b);
    let mut cb = Channel::new(b, false, rng, &mut to_a);
    while !to_a.is_empty() || !to_b.is_empty() {
        let input = std::mem::take(&mut to_b);
        cb.recv(b, &input, &mut to_a, &mut plain).expect("b's side");
        let input = std::mem::take(&mut to_a);
        ca.recv(a, &input, &mut to_b, &mut plain).expect("a's side");
    }
    assert!(ca.is_open() && cb.is_open());
    (ca, cb)
}

/// Batch frames of [`BATCH`] lines of 64 bytes of text, one after the other, cut to
/// `len` bytes: what a transport message carries (the cipher does not care where the
/// frames end).
fn plaintext(len: usize) -> Vec<u8> {
    let key = public_key(&identity(7));
    let mut out = Vec::with_capacity(len + MAX_BODY_LEN);
    let mut first = 0;
    while out.len() < len {
        out.extend_from_slice(&batch_frame(&unsigned_record(&key, first, BATCH)));
        first += BATCH;
    }
    out.truncate(len);
    out
}

/// Bytes of the batch frame of one line of the bench's 64 bytes of text and nick.
fn one_line_frame_len() -> usize {
    batch_frame(&unsigned_record(&public_key(&identity(7)), 0, 1)).len()
}

fn secure(c: &mut Criterion) {
    let mut group = c.benchmark_group("secure");
    let frame = one_line_frame_len();
    // One 64-byte frame, the batch frame of one line of 64 bytes of text (a line written
    // alone), and the fullest transport message, which holds most of a full batch.
    for len in [64, frame, MAX_PLAINTEXT_LEN] {
        let (mut ca, _, mut cb, b) = open_pair();
        let message = plaintext(len);
        let (mut wire, mut plain, mut reply) = (Vec::new(), Vec::new(), Vec::new());
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("seal+open", len), &len, |bench, _| {
            bench.iter(|| {
                wire.clear();
                plain.clear();
                ca.seal(black_box(&message), &mut wire);
                cb.recv(&b, &wire, &mut reply, &mut plain)
                    .expect("an untouched message opens");
                plain.len()
            })
        });
    }
    let (a, b) = (credentials(1), credentials(2));
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    group.throughput(Throughput::Elements(1));
    group.bench_function("handshake, both ends", |bench| {
        bench.iter(|| handshake(&a, &b, &mut rng))
    });
    group.finish();
}

criterion_group!(benches, wire, signing, secure, relay);
criterion_main!(benches);
