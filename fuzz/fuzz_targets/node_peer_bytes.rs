//! The sans-IO core, `proto::Node`, fed arbitrary bytes by peers on a virtual clock.
//!
//! The target plays the driver through the public call contract only, and its peers are
//! real secure-channel peers (`proto::secure::Channel`, each with an identity key of
//! its own): an accepted peer connection whose handshake is run at once (with a valid
//! hello first if the flags say so, so that the paths after it are reached at once),
//! arbitrary plaintext frames from it, sealed into the channel, in chunks, interleaved
//! with time passing (`handle_timeout` whenever `poll_timeout` is due), partial writes
//! of the send queues (`handle_sent`), more peers (whose handshakes advance only as the
//! schedule moves their bytes, so that handshakes cut anywhere and timed out are
//! reached too), peers that send raw bytes instead (the preamble and handshake path),
//! hellos from new, duplicate or the node's own identity key, dials answered, ends of
//! stream and errors, and a local client whose input comes from the same stream.
//! `poll_output` is drained after every call.
//!
//! Input: one flags byte (see `Flags`), one byte `n`, `n` schedule bytes (see `Op`),
//! then the byte stream that peers and the client send: plaintext for a channel peer,
//! wire bytes for a raw one. Once the schedule is used up the rest of the stream goes
//! to the current peer, the queues are written out and the clock runs on until every
//! timer has fired. So a seed is simply `[flags, 0, frames...]`.
//!
//! Checks, besides "no panic" and the node's own `expect`s:
//! - every send queue stays within its bound (`peer_queue_max`, `client_queue_max`),
//!   and all of them together within `total_queue_max`;
//! - after `handle_timeout(now)` no deadline is left at or before `now` (a driver
//!   would spin);
//! - what the node writes to a peer is valid protocol: its preamble, a handshake that
//!   proves the node's own id, transport messages that all open, and inside them
//!   frames within `MAX_BODY_LEN` that all parse, its own hello first and only once,
//!   chat hops within the hop limit; to a raw peer a valid preamble and well-framed
//!   handshake messages; nothing is queued on a link after `Output::Finish`;
//! - what it writes to a client is UTF-8 lines starting with `<`, `* ` or `! ` with no
//!   unsafe character (`text::is_unsafe_char`) but the final LF;
//! - every log record is formatted, as the daemon's logger would (so the `Display` of
//!   every cause runs too), and holds no unsafe character: a terminal showing the log
//!   must not obey what a peer or a client sent.

#![no_main]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use p2pchat::config::{Limits, MaxRate, NodeConfig, Secret};
use p2pchat::proto::secure::{Channel, Credentials};
use p2pchat::proto::{Accepted, ConnId, Node, Output};
use p2pchat::wire::frame::Decoder;
use p2pchat::wire::handshake::{Preamble, PREAMBLE_LEN};
use p2pchat::wire::peer::{Hello, Message, MAX_BODY_LEN};
use p2pchat::wire::text;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The seed of the node under test's configuration; also its epoch.
const ME_SEED: u64 = 7;
/// Identity keys of remote nodes are `identity(k)` for `k` in 0..7; `k == 7` is the
/// node's own key (a self-link when the hello has the node's epoch, another process
/// with the same key when not).
const ME_KEY: u8 = 7;
const HOP_LIMIT: u8 = 8;
/// Connections the harness opens at the most, so that an input stays cheap.
const MAX_OPENED: u8 = 8;

/// The first input byte.
#[derive(Debug, Clone, Copy)]
struct Flags(u8);

impl Flags {
    /// Peer 0 (a channel peer with identity 0, handshake done) says a valid hello
    /// before its stream.
    const HELLO_FIRST: u8 = 1 << 0;
    /// A client is attached from the start, so that chat lines are formatted.
    const CLIENT: u8 = 1 << 1;
    /// The node is started with an address to dial (`--connect`), which it redials.
    const CONNECT: u8 = 1 << 2;
    const NO_DISCOVERY: u8 = 1 << 3;
    const NO_KEEPALIVE: u8 = 1 << 4;
    /// The default limits (16 MiB queues) instead of small ones.
    const DEFAULT_LIMITS: u8 = 1 << 5;
    /// `--max-rate 2 --max-burst 3`: lines relayed from each origin are throttled.
    const MAX_RATE: u8 = 1 << 6;
    /// Peer 0 sends raw bytes, not a channel: the stream goes to the node as it is.
    const RAW_FIRST: u8 = 1 << 7;

    fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }
}

/// Small bounds, so that full queues, congestion and the peer and client limits are
/// reached by short inputs.
fn small_limits() -> Limits {
    Limits {
        queue_pause: 2 * 1024,
        peer_queue_max: 16 * 1024,
        client_queue_max: 16 * 1024,
        // Less than two full queues, so that the node-wide budget is reached too.
        total_queue_max: 24 * 1024,
        max_peers: 4,
        max_clients: 2,
        ..Limits::default()
    }
}

/// Identity key `k` of the input's nodes.
fn identity(k: u8) -> Secret {
    Secret([0x40 + k; 32])
}

/// The credentials of identity `k`, made once per process: a channel end only reads
/// them, and making them costs a key generation and a signature.
fn credentials(k: u8) -> &'static Credentials {
    static CREDS: OnceLock<Vec<Credentials>> = OnceLock::new();
    let all = CREDS.get_or_init(|| {
        (0..8)
            .map(|k| {
                let mut rng = ChaCha20Rng::seed_from_u64(u64::from(k));
                Credentials::new(&identity(k), None, &mut rng)
            })
            .collect()
    });
    &all[usize::from(k % 8)]
}

fn config(flags: Flags) -> NodeConfig {
    let mut cfg = NodeConfig::new(identity(ME_KEY), ME_SEED, "me".into());
    cfg.listen_addr = Some(SocketAddr::from(([127, 0, 0, 1], 7654)));
    cfg.hop_limit = HOP_LIMIT;
    // A small ring, so that forgetting old ids is reached too.
    cfg.dedup_capacity = 16;
    cfg.target_peers = 2;
    cfg.discovery = !flags.has(Flags::NO_DISCOVERY);
    if flags.has(Flags::CONNECT) {
        cfg.connect = vec!["127.0.0.1:7001".into()];
    }
    if !flags.has(Flags::DEFAULT_LIMITS) {
        cfg.limits = small_limits();
    }
    if flags.has(Flags::MAX_RATE) {
        cfg.limits.max_rate = Some(MaxRate {
            per_sec: 2,
            burst: 3,
        });
    }
    if flags.has(Flags::NO_KEEPALIVE) {
        cfg.limits.keepalive = None;
    }
    cfg
}

/// One schedule byte: the low 3 bits pick the operation, the high 5 its argument.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// The current peer sends the next `read_len(arg)` bytes of the stream.
    PeerSends(u8),
    /// Time passes: `arg² × 100 ms`, up to about 96 s.
    Wait(u8),
    /// The current peer takes `arg / 31` of its send queue.
    PeerTakes(u8),
    /// Every client takes `arg / 31` of its send queue.
    ClientsTake(u8),
    /// The first client sends the next `read_len(arg)` bytes of the stream.
    ClientSends(u8),
    /// Peer bookkeeping, by `arg & 3`: accept a new channel peer with identity key
    /// `arg >> 2`; make the next peer current; the current peer finishes its handshake
    /// and says hello (see `Harness::hello`, `arg >> 2`); answer the oldest dial
    /// (connected if `arg >> 2` is even, as identity `arg >> 3`, refused if odd).
    Peers(u8),
    /// Ends, by `arg & 3`: the current peer closes; its socket fails; the first client
    /// closes; a new client attaches (`arg >> 2` even) or a raw peer (odd).
    Ends(u8),
    /// The network drains: every connection takes its whole queue.
    Drain,
}

impl Op {
    fn decode(byte: u8) -> Op {
        let arg = byte >> 3;
        match byte & 7 {
            0 => Op::PeerSends(arg),
            1 => Op::Wait(arg),
            2 => Op::PeerTakes(arg),
            3 => Op::ClientsTake(arg),
            4 => Op::ClientSends(arg),
            5 => Op::Peers(arg),
            6 => Op::Ends(arg),
            _ => Op::Drain,
        }
    }
}

/// Read sizes: 1 to 16 bytes, then powers of two from 64 bytes on.
fn read_len(arg: u8) -> usize {
    if arg < 16 {
        usize::from(arg) + 1
    } else {
        1 << (arg - 10)
    }
}

/// Formats every log record, checks it and throws it away.
struct CheckLogs;

impl log::Log for CheckLogs {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        // Log lines quote what clients and peers sent (addresses, nicks, causes).
        let line = record.args().to_string();
        assert!(
            !line.chars().any(text::is_unsafe_char),
            "unsafe character in a log line: {line:?}"
        );
    }

    fn flush(&self) {}
}

/// Every run starts at the same instant: only differences matter to the node.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// How a harness peer talks to the node.
#[derive(Debug)]
enum Link {
    /// A real secure-channel peer with identity key `k`.
    Channel {
        k: u8,
        channel: Box<Channel>,
        /// Plaintext to send once the handshake is done.
        pending: Vec<u8>,
        /// Decrypted bytes from the node, cut into frames.
        frames: Decoder,
        /// The handshake proved the node's id.
        proven: bool,
    },
    /// Bytes as the stream has them: the node's preamble and handshake path.
    Raw {
        /// What the node wrote so far, up to its preamble.
        preamble: Vec<u8>,
        /// The node's handshake messages after the preamble.
        messages: Decoder,
    },
}

/// The far end of a peer connection: reads what the node writes and checks it.
#[derive(Debug)]
struct PeerEnd {
    id: ConnId,
    link: Link,
    /// Wire bytes for the node not handed over yet.
    outbox: Vec<u8>,
    /// The node's hello has arrived.
    greeted: bool,
    /// The node shut down its writing half (`Output::Finish`).
    finished: bool,
}

impl PeerEnd {
    /// A channel peer with identity `k`, the initiator if it dialled the node.
    fn channel(id: ConnId, k: u8, initiator: bool) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(u64::from(k) << 8 | u64::from(initiator));
        let mut outbox = Vec::new();
        let channel = Channel::new(credentials(k), initiator, &mut rng, &mut outbox);
        PeerEnd {
            id,
            link: Link::Channel {
                k,
                channel: Box::new(channel),
                pending: Vec::new(),
                frames: Decoder::new(MAX_BODY_LEN),
                proven: false,
            },
            outbox,
            greeted: false,
            finished: false,
        }
    }

    fn raw(id: ConnId) -> Self {
        PeerEnd {
            id,
            link: Link::Raw {
                preamble: Vec::new(),
                messages: Decoder::noise(),
            },
            outbox: Vec::new(),
            greeted: false,
            finished: false,
        }
    }

    fn is_open(&self) -> bool {
        matches!(&self.link, Link::Channel { channel, .. } if channel.is_open())
    }

    /// Queues `plain` for the node: sealed if the channel is open, kept until it is if
    /// not; a raw peer sends the bytes as they are.
    fn say(&mut self, plain: &[u8]) {
        match &mut self.link {
            Link::Channel {
                channel, pending, ..
            } => {
                if channel.is_open() {
                    channel.seal(plain, &mut self.outbox);
                } else {
                    pending.extend_from_slice(plain);
                }
            }
            Link::Raw { .. } => self.outbox.extend_from_slice(plain),
        }
    }

    /// Checks bytes the node wrote to this peer, in order.
    fn receive(&mut self, me: u64, bytes: &[u8]) {
        let mut plain = Vec::new();
        match &mut self.link {
            Link::Raw { preamble, messages } => {
                let take = (PREAMBLE_LEN - preamble.len()).min(bytes.len());
                preamble.extend_from_slice(&bytes[..take]);
                let mut rest = &bytes[take..];
                if let Ok(complete) = <&[u8; PREAMBLE_LEN]>::try_from(&preamble[..]) {
                    assert!(Preamble::parse(complete).is_ok(), "the node's preamble is invalid");
                }
                while let Some(_message) = messages
                    .next(&mut rest)
                    .unwrap_or_else(|err| panic!("the node framed a handshake message badly: {err}"))
                {}
                return;
            }
            Link::Channel {
                k,
                channel,
                pending,
                proven,
                ..
            } => {
                let opened = channel
                    .recv(credentials(*k), bytes, &mut self.outbox, &mut plain)
                    .unwrap_or_else(|err| panic!("the node broke the channel: {err}"));
                if let Some(remote) = opened {
                    assert_eq!(remote.id.0, me, "the handshake proved another node id");
                    *proven = true;
                }
                if channel.is_open() && !pending.is_empty() {
                    channel.seal(&std::mem::take(pending), &mut self.outbox);
                }
            }
        }
        let Link::Channel { frames, .. } = &mut self.link else {
            unreachable!("raw links returned above");
        };
        let mut rest = &plain[..];
        loop {
            let body = match frames.next(&mut rest) {
                Ok(Some(body)) => body,
                Ok(None) => return,
                Err(err) => panic!("the node wrote a bad frame: {err}"),
            };
            let message = match Message::parse(body) {
                Ok(message) => message,
                Err(err) => panic!("the node wrote an invalid message: {err}"),
            };
            match message {
                Message::Hello(hello) => {
                    assert!(!self.greeted, "the node said hello twice");
                    assert_eq!(hello.epoch, ME_SEED, "a hello with another epoch");
                    self.greeted = true;
                }
                _ if !self.greeted => panic!("a {} before the hello", message.kind()),
                Message::Chat(chat) => assert!(
                    chat.hops <= HOP_LIMIT,
                    "a chat with {} hops, over the limit of {HOP_LIMIT}",
                    chat.hops
                ),
                Message::Ping | Message::Pong | Message::Addrs(_) | Message::Retire => {}
            }
        }
    }
}

/// A local client: reads what the node writes and checks it line by line.
#[derive(Debug)]
struct ClientEnd {
    id: ConnId,
    /// Bytes written after the last LF.
    partial: Vec<u8>,
}

impl ClientEnd {
    fn receive(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        let Some(last_lf) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let rest = self.partial.split_off(last_lf + 1);
        for line in self.partial.split_inclusive(|&b| b == b'\n') {
            check_client_line(line);
        }
        self.partial = rest;
    }

    /// The connection is gone: an unfinished last line may be cut anywhere, even inside
    /// a character, but what arrived of it must still be safe.
    fn closed(self) {
        let tail = String::from_utf8_lossy(&self.partial);
        assert!(
            !tail.chars().any(text::is_unsafe_char),
            "unsafe character in a line to a client: {tail:?}"
        );
    }
}

fn check_client_line(line: &[u8]) {
    let line = std::str::from_utf8(line)
        .unwrap_or_else(|err| panic!("a line to a client is not UTF-8 ({err}): {line:?}"));
    let body = line.strip_suffix('\n').expect("split at LFs");
    assert!(
        body.starts_with('<') || body.starts_with("* ") || body.starts_with("! "),
        "a line to a client of no known shape: {line:?}"
    );
    assert!(
        !body.chars().any(text::is_unsafe_char),
        "unsafe character in a line to a client: {line:?}"
    );
}

/// The driver's side of one node, on a virtual clock.
struct Harness {
    node: Node,
    now: Instant,
    peer_queue_max: usize,
    client_queue_max: usize,
    total_queue_max: usize,
    peers: Vec<PeerEnd>,
    /// Index into `peers` of the one the schedule talks about.
    current: usize,
    clients: Vec<ClientEnd>,
    /// Dials asked for and not answered yet.
    dials: VecDeque<(ConnId, String)>,
    /// Connections opened by the harness, accepted or dialled.
    opened: u8,
}

impl Harness {
    fn new(cfg: NodeConfig) -> Self {
        let now = base();
        let limits = &cfg.limits;
        let mut harness = Harness {
            peer_queue_max: limits.peer_queue_max,
            client_queue_max: limits.client_queue_max,
            total_queue_max: limits.total_queue_max,
            node: Node::new(cfg, now),
            now,
            peers: Vec::new(),
            current: 0,
            clients: Vec::new(),
            dials: VecDeque::new(),
            opened: 0,
        };
        harness.settle();
        harness
    }

    /// Carries out the node's outputs, as the contract requires after every call, and
    /// checks the invariants.
    fn settle(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                // Writes happen when the schedule says the network takes bytes.
                Output::Flush(_) => {}
                Output::Dial { conn, target } => self.dials.push_back((conn, target)),
                Output::Finish(conn) => {
                    let peer = self.peers.iter_mut().find(|p| p.id == conn);
                    let peer = peer.expect("Finish for a peer connection the harness has");
                    peer.finished = true;
                }
                Output::Close(conn) => self.forget(conn),
            }
        }
        for peer in &self.peers {
            let queued = self.node.queued(peer.id);
            assert!(
                queued <= self.peer_queue_max,
                "{queued} bytes queued for a peer, over {}",
                self.peer_queue_max
            );
            assert!(
                !peer.finished || queued == 0,
                "{queued} bytes queued after Finish"
            );
        }
        for client in &self.clients {
            let queued = self.node.queued(client.id);
            assert!(
                queued <= self.client_queue_max,
                "{queued} bytes queued for a client, over {}",
                self.client_queue_max
            );
        }
        // Connections still dialling have nothing queued: these are all the queues.
        let total: usize = (self.peers.iter().map(|p| p.id))
            .chain(self.clients.iter().map(|c| c.id))
            .map(|conn| self.node.queued(conn))
            .sum();
        assert!(
            total <= self.total_queue_max,
            "{total} bytes queued in all, over {}",
            self.total_queue_max
        );
    }

    fn forget(&mut self, conn: ConnId) {
        self.dials.retain(|&(id, _)| id != conn);
        if let Some(i) = self.peers.iter().position(|p| p.id == conn) {
            self.peers.remove(i);
            if self.current >= self.peers.len() {
                self.current = 0;
            }
        } else if let Some(i) = self.clients.iter().position(|c| c.id == conn) {
            self.clients.remove(i).closed();
        }
    }

    fn current_peer(&self) -> Option<ConnId> {
        self.peers.get(self.current).map(|p| p.id)
    }

    /// Accepts a peer: a channel peer with identity `k`, or a raw one.
    fn accept_peer(&mut self, k: Option<u8>) {
        if self.opened >= MAX_OPENED {
            return;
        }
        self.opened += 1;
        let port = 40000 + u16::from(self.opened);
        let from = SocketAddr::from(([10, 0, 0, self.opened], port));
        let id = self.node.handle_accepted(self.now, Accepted::Peer(from));
        self.peers.push(match k {
            Some(k) => PeerEnd::channel(id, k, true),
            None => PeerEnd::raw(id),
        });
        self.current = self.peers.len() - 1;
        self.settle();
    }

    fn accept_client(&mut self) {
        if self.opened >= MAX_OPENED {
            return;
        }
        self.opened += 1;
        let id = self.node.handle_accepted(self.now, Accepted::Client);
        self.clients.push(ClientEnd {
            id,
            partial: Vec::new(),
        });
        self.settle();
    }

    /// The current peer sends `bytes` (sealed, for a channel peer) after what it has
    /// to send already, if the node reads it now.
    fn peer_sends(&mut self, bytes: &[u8]) {
        let Some(peer) = self.peers.get_mut(self.current) else {
            return;
        };
        peer.say(bytes);
        self.flush_current();
    }

    /// Hands the current peer's outbox to the node, if the node reads it now.
    fn flush_current(&mut self) {
        let Some(peer) = self.peers.get_mut(self.current) else {
            return;
        };
        let conn = peer.id;
        if !peer.outbox.is_empty() && self.node.accepts_input(conn) {
            let wire = std::mem::take(&mut peer.outbox);
            self.node.handle_recv(self.now, conn, &wire);
            self.settle();
        }
    }

    fn client_sends(&mut self, bytes: &[u8]) {
        let Some(conn) = self.clients.first().map(|c| c.id) else {
            return;
        };
        if self.node.accepts_input(conn) {
            self.node.handle_recv(self.now, conn, bytes);
            self.settle();
        }
    }

    /// Runs the current peer's handshake to its end, as far as the node takes part:
    /// bytes go both ways until neither end has more to say.
    fn finish_handshake(&mut self) {
        for _ in 0..4 {
            let Some(peer) = self.peers.get(self.current) else {
                return;
            };
            if peer.is_open() || !matches!(peer.link, Link::Channel { .. }) {
                return;
            }
            let conn = peer.id;
            self.flush_current();
            self.deliver(conn, 31);
        }
    }

    /// The current peer finishes its handshake and says hello with variant `v`: its
    /// epoch (that of the node when `v == 7`, which makes a link of the node's own key a
    /// self-link), its listen port and link id, refusing the link when `v == 6`.
    fn hello(&mut self, v: u8) {
        self.finish_handshake();
        let mut frame = Vec::new();
        Hello {
            epoch: if v == 7 { ME_SEED } else { 100 + u64::from(v) },
            listen_port: 7000 + u16::from(v),
            link_id: u64::from(v),
            refusing: v == 6,
            nick: "peer",
        }
        .encode(&mut frame);
        self.peer_sends(&frame);
    }

    /// Answers the oldest dial: connected to a channel peer with identity `k`, or
    /// refused.
    fn answer_dial(&mut self, connected: bool, k: u8) {
        let Some((conn, target)) = self.dials.pop_front() else {
            return;
        };
        if connected && self.opened < MAX_OPENED {
            self.opened += 1;
            let addr = target
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 1)));
            self.node.handle_connected(self.now, conn, addr);
            self.peers.push(PeerEnd::channel(conn, k, false));
        } else {
            let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
            self.node.handle_error(self.now, conn, &refused);
        }
        self.settle();
    }

    /// The far end of `conn` reads `fraction / 31` of its queue, and the node is told.
    fn deliver(&mut self, conn: ConnId, fraction: u8) {
        let queue = self.node.send_queue(conn);
        let n = queue.len() * usize::from(fraction.min(31)) / 31;
        if n == 0 {
            return;
        }
        let written = queue[..n].to_vec();
        let me = self.node.id().0;
        if let Some(peer) = self.peers.iter_mut().find(|p| p.id == conn) {
            peer.receive(me, &written);
        } else if let Some(client) = self.clients.iter_mut().find(|c| c.id == conn) {
            client.receive(&written);
        }
        self.node.handle_sent(self.now, conn, n);
        self.settle();
    }

    fn drain_all(&mut self) {
        let conns: Vec<ConnId> = (self.peers.iter().map(|p| p.id))
            .chain(self.clients.iter().map(|c| c.id))
            .collect();
        for conn in conns {
            self.deliver(conn, 31);
        }
    }

    /// Moves the clock on by `by`, firing whatever is due.
    fn wait(&mut self, by: Duration) {
        self.now += by;
        if self.node.poll_timeout().is_some_and(|at| at <= self.now) {
            self.node.handle_timeout(self.now);
            self.settle();
            if let Some(at) = self.node.poll_timeout() {
                assert!(at > self.now, "a deadline {:?} overdue", self.now - at);
            }
        }
    }

    fn run(&mut self, op: Op, stream: &mut &[u8]) {
        match op {
            Op::PeerSends(arg) => self.peer_sends(next_bytes(stream, read_len(arg))),
            Op::Wait(arg) => self.wait(Duration::from_millis(100) * u32::from(arg).pow(2)),
            Op::PeerTakes(arg) => {
                if let Some(conn) = self.current_peer() {
                    self.deliver(conn, arg);
                }
            }
            Op::ClientsTake(arg) => {
                let conns: Vec<ConnId> = self.clients.iter().map(|c| c.id).collect();
                for conn in conns {
                    self.deliver(conn, arg);
                }
            }
            Op::ClientSends(arg) => self.client_sends(next_bytes(stream, read_len(arg))),
            Op::Peers(arg) => match arg & 3 {
                0 => self.accept_peer(Some(arg >> 2)),
                1 => self.current = (self.current + 1) % self.peers.len().max(1),
                2 => self.hello(arg >> 2),
                _ => self.answer_dial(arg >> 2 & 1 == 0, arg >> 3),
            },
            Op::Ends(arg) => match arg & 3 {
                0 => {
                    if let Some(conn) = self.current_peer() {
                        self.node.handle_eof(self.now, conn);
                        self.settle();
                    }
                }
                1 => {
                    if let Some(conn) = self.current_peer() {
                        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
                        self.node.handle_error(self.now, conn, &reset);
                        self.settle();
                    }
                }
                2 => {
                    if let Some(conn) = self.clients.first().map(|c| c.id) {
                        self.node.handle_eof(self.now, conn);
                        self.settle();
                    }
                }
                _ if arg >> 2 & 1 == 0 => self.accept_client(),
                _ => self.accept_peer(None),
            },
            Op::Drain => self.drain_all(),
        }
    }

    /// After the schedule: the network drains and the clock runs on, so that every
    /// timer (handshake, keepalive, stall, redial, linger) fires at least once.
    fn wind_down(&mut self) {
        for _ in 0..8 {
            self.drain_all();
            self.wait(Duration::from_secs(20));
        }
        self.drain_all();
    }
}

/// Takes up to `n` bytes off the front of `stream`.
fn next_bytes<'a>(stream: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, rest) = stream.split_at(n.min(stream.len()));
    *stream = rest;
    head
}

/// One input: the set-up its flags ask for, its schedule, then the wind-down.
fn run_input(data: &[u8]) {
    let [flags, n, data @ ..] = data else {
        return;
    };
    let flags = Flags(*flags);
    let (schedule, mut stream) = data.split_at(usize::from(*n).min(data.len()));

    let mut harness = Harness::new(config(flags));
    if flags.has(Flags::CLIENT) {
        harness.accept_client();
    }
    if flags.has(Flags::RAW_FIRST) {
        harness.accept_peer(None);
    } else {
        harness.accept_peer(Some(0));
        harness.finish_handshake();
    }
    if flags.has(Flags::HELLO_FIRST) {
        harness.hello(0);
    }
    for &byte in schedule {
        harness.run(Op::decode(byte), &mut stream);
    }
    // A driver waits for the queues to drain before it reads on.
    if harness
        .current_peer()
        .is_some_and(|conn| !harness.node.accepts_input(conn))
    {
        harness.drain_all();
    }
    harness.peer_sends(stream);
    harness.wind_down();
}

fuzz_target!(
    init: {
        log::set_logger(&CheckLogs).expect("the only logger");
        log::set_max_level(log::LevelFilter::Trace);
    },
    |data: &[u8]| run_input(data)
);
