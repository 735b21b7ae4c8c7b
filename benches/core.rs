//! Micro-benchmarks of the parts on the relay path: framing and parsing, the duplicate
//! ring at capacity, the secure channel (sealing and opening transport messages, a whole
//! handshake), and the node's whole relay step (a batch of chat frames in from one peer,
//! forwarded bytes out to the others), driven through the node's public API with peers
//! that run the real secure channel.
//!
//! `cargo bench --bench core`; the figures are discussed in BENCHMARKS.md.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use p2pchat::config::{NodeConfig, Secret};
use p2pchat::proto::dedup::DedupRing;
use p2pchat::proto::secure::{Channel, Credentials, MAX_PLAINTEXT_LEN};
use p2pchat::proto::{Accepted, ConnId, MessageId, Node, NodeId, Output};
use p2pchat::wire::frame::Decoder;
use p2pchat::wire::peer::{Chat, Hello, Message, MAX_BODY_LEN};

/// Frames per relay batch: about what one 64 KiB read holds at this text length.
const BATCH: u64 = 512;

/// 64 bytes of text, the size the end-to-end benchmark uses.
const TEXT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn chat_frames(origin: u64, first_seq: u64, count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(count as usize * 100);
    for seq in first_seq..first_seq + count {
        Chat {
            origin,
            epoch: 1,
            seq,
            hops: 16,
            nick: "bench",
            text: TEXT,
        }
        .encode(&mut out);
    }
    out
}

fn wire(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire");
    let stream = chat_frames(1, 0, BATCH);
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("encode chat", |b| {
        let mut out = Vec::with_capacity(stream.len());
        b.iter(|| {
            out.clear();
            for seq in 0..BATCH {
                Chat {
                    origin: 1,
                    epoch: 1,
                    seq,
                    hops: 16,
                    nick: "bench",
                    text: black_box(TEXT),
                }
                .encode(&mut out);
            }
            black_box(out.len())
        })
    });
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("decode and parse chat", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new(MAX_BODY_LEN);
            let mut input = black_box(&stream[..]);
            let mut hops = 0u64;
            while let Some(body) = decoder.next(&mut input).expect("valid stream") {
                if let Ok(Message::Chat(chat)) = Message::parse(body) {
                    hops += u64::from(chat.hops);
                }
            }
            hops
        })
    });
    group.finish();
}

fn dedup(c: &mut Criterion) {
    let mut group = c.benchmark_group("dedup");
    group.throughput(Throughput::Elements(1));
    for capacity in [1 << 12, 1 << 18] {
        let mut ring = DedupRing::new(capacity, 0x5eed);
        let mut seq = 0;
        while ring.len() < capacity {
            ring.insert(MessageId {
                origin: NodeId(seq % 16),
                epoch: 1,
                seq,
            });
            seq += 1;
        }
        group.bench_with_input(
            BenchmarkId::new("insert new id at capacity", capacity),
            &capacity,
            |b, _| {
                b.iter(|| {
                    seq += 1;
                    ring.insert(black_box(MessageId {
                        origin: NodeId(seq % 16),
                        epoch: 1,
                        seq,
                    }))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("check duplicate", capacity),
            &capacity,
            |b, _| {
                b.iter(|| {
                    ring.insert(black_box(MessageId {
                        origin: NodeId(seq % 16),
                        epoch: 1,
                        seq,
                    }))
                })
            },
        );
    }
    group.finish();
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
        let mut next_seq = 0;
        group.bench_with_input(
            BenchmarkId::new("frames in, forwarded to peers", peers - 1),
            &peers,
            |b, _| {
                b.iter_batched_ref(
                    // The sender seals the batch (one transport message, as a node
                    // would send it) outside the timed part; the node opens it, relays
                    // and seals a copy for every other peer inside.
                    || {
                        next_seq += BATCH;
                        let mut wire = Vec::new();
                        sender.seal(&chat_frames(7, next_seq, BATCH), &mut wire);
                        wire
                    },
                    |frames| {
                        node.handle_recv(now, conns[0], frames);
                        drain(&mut node, now)
                    },
                    BatchSize::SmallInput,
                )
            },
        );
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

/// Chat frames of 64 bytes of text cut to `len` bytes: what a transport message carries
/// (the cipher does not care where the frames end).
fn plaintext(len: usize) -> Vec<u8> {
    let frames = chat_frames(1, 0, (len / chat_frame_len() + 1) as u64);
    frames[..len].to_vec()
}

/// Bytes of one chat frame with the bench's 64 bytes of text and nick.
fn chat_frame_len() -> usize {
    chat_frames(1, 0, 1).len()
}

fn secure(c: &mut Criterion) {
    let mut group = c.benchmark_group("secure");
    let frame = chat_frame_len();
    // One 64-byte frame, one chat frame with 64 bytes of text (a line), and the fullest
    // transport message, which holds MAX_PLAINTEXT_LEN / frame chat frames.
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

criterion_group!(benches, wire, dedup, secure, relay);
criterion_main!(benches);
