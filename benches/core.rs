//! Micro-benchmarks of the parts on the relay path: framing and parsing, the duplicate
//! ring at capacity, and the node's whole relay step (a batch of chat frames in from one
//! peer, forwarded bytes out to the others), driven through the node's public API.
//!
//! `cargo bench --bench core`; the figures are discussed in BENCHMARKS.md.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

use p2pchat::config::NodeConfig;
use p2pchat::proto::dedup::DedupRing;
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
                        seq,
                    }))
                })
            },
        );
    }
    group.finish();
}

/// A node with `peers` linked peers and every queue empty.
fn relay_node(peers: u64, now: Instant) -> (Node, Vec<ConnId>) {
    let mut node = Node::new(NodeConfig::new(1, 2, "relay".into()), now);
    let conns = (0..peers)
        .map(|i| {
            let addr = SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16));
            let conn = node.handle_accepted(now, Accepted::Peer(addr));
            let mut hello = Vec::new();
            Hello {
                node_id: 100 + i,
                listen_port: 0,
                link_id: 0,
                nick: "peer",
            }
            .encode(&mut hello);
            node.handle_recv(now, conn, &hello);
            conn
        })
        .collect();
    (node, conns)
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
        let (mut node, conns) = relay_node(peers, now);
        drain(&mut node, now);
        let mut next_seq = 0;
        group.bench_with_input(
            BenchmarkId::new("frames in, forwarded to peers", peers - 1),
            &peers,
            |b, _| {
                b.iter_batched_ref(
                    || {
                        next_seq += BATCH;
                        chat_frames(7, next_seq, BATCH)
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

criterion_group!(benches, wire, dedup, relay);
criterion_main!(benches);
