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
//! Batches of chat lines signed by real authors (`proto::author::Author`, identity keys
//! of their own or the node's in another run), in order, with gaps, again or far ahead,
//! some with a byte altered after signing, go in with the peers' arbitrary frames, which
//! may hold summaries (`have`) and garbage too. `poll_output` is drained after every
//! call. The node's limits are small (4 author runs, a backlog of 48 lines or 8 KiB), so
//! that forgetting runs and dropping records are reached.
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
//!   batches whose hops are within the hop limit and whose signature holds (the node's
//!   own, and those it relays or sends to catch a peer up); to a raw peer a valid
//!   preamble and well-framed handshake messages; nothing is queued on a link after
//!   `Output::Finish`;
//! - what it writes to a client is UTF-8 lines starting with `<`, `* ` or `! ` with no
//!   unsafe character (`text::is_unsafe_char`) but the final LF;
//! - no line of a batch whose signature fails reaches a client, live or in `/history`:
//!   the harness checks the signature of every batch its peers send, and no text the
//!   clients are shown may be one that came only in batches that fail (a text that also
//!   came in a batch that holds, or from a client, may be shown);
//! - every log record is formatted, as the daemon's logger would (so the `Display` of
//!   every cause runs too), and holds no unsafe character: a terminal showing the log
//!   must not obey what a peer or a client sent.

#![no_main]

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use p2pchat::config::{BacklogLimits, Limits, MaxRate, NodeConfig, Secret};
use p2pchat::proto::author::{Author, Verifier};
use p2pchat::proto::logs::MAX_AHEAD;
use p2pchat::proto::secure::{Channel, Credentials};
use p2pchat::proto::{Accepted, ConnId, Node, Output};
use p2pchat::wire::control::{self, Command, LineBuffer};
use p2pchat::wire::frame::Decoder;
use p2pchat::wire::handshake::{Preamble, PREAMBLE_LEN};
use p2pchat::wire::lines::Batch;
use p2pchat::wire::peer::{Hello, Message, MAX_BODY_LEN};
use p2pchat::wire::text::{self, MAX_TEXT_LEN};
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
/// `PeerSends` arguments from this one on are `PeerSigns`: they would read more than the
/// longest input holds anyway.
const SIGNS_FROM: u8 = 24;

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
    /// `--max-rate 2 --max-burst 3`: lines relayed from each author are throttled.
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
    // Few author runs and a small backlog, so that forgetting runs and letting records
    // go are reached too.
    cfg.max_authors = 4;
    cfg.backlog = BacklogLimits {
        lines: 48,
        bytes: 8 * 1024,
        age: Duration::from_secs(60),
    };
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
    /// The current peer sends batches signed by a real author, variant `arg - 24` (see
    /// `Harness::peer_signs`), made from the next bytes of the stream.
    PeerSigns(u8),
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
            0 if arg >= SIGNS_FROM => Op::PeerSigns(arg - SIGNS_FROM),
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

/// Read sizes: 1 to 16 bytes, then powers of two from 64 bytes to 8 KiB.
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

/// The chat texts that went to the node, by whether a signature vouches for them, and
/// those its clients were shown; sanitised, as a client sees them.
#[derive(Debug, Default)]
struct Texts {
    verifier: Verifier,
    /// In batches whose signature holds, or written by a local client.
    vouched: HashSet<String>,
    /// In batches whose signature fails.
    forged: HashSet<String>,
    shown: Vec<String>,
}

impl Texts {
    /// Sorts the lines of a frame body a peer sends, if it is a batch.
    fn sent(&mut self, body: &[u8]) {
        let Ok(Message::Lines(batch)) = Message::parse(body) else {
            return;
        };
        let set = if self.verifier.verify(&batch.record) {
            &mut self.vouched
        } else {
            &mut self.forged
        };
        for line in batch.record.lines() {
            set.insert(text::sanitize(line.text).into_owned());
        }
    }

    /// A text a local client said.
    fn said(&mut self, said: &str) {
        self.vouched.insert(text::sanitize(said).into_owned());
    }

    /// Notes the text of a line to a client, if it shows a chat line: `<NICK> TEXT`, or
    /// `* history TIME <NICK> TEXT`.
    fn show(&mut self, body: &str) {
        let line = body.strip_prefix('<').or_else(|| {
            let rest = body.strip_prefix("* history ")?;
            Some(rest.split_once(" <")?.1)
        });
        // A nick holds no `>`.
        if let Some((_, shown)) = line.and_then(|line| line.split_once("> ")) {
            self.shown.push(shown.to_owned());
        }
    }

    /// No client was shown a text that came only in batches whose signature fails.
    fn check(&self) {
        for shown in &self.shown {
            assert!(
                !self.forged.contains(shown) || self.vouched.contains(shown),
                "a client was shown a line of a batch whose signature fails: {shown:?}"
            );
        }
    }
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
        /// Plaintext for the node, cut into frames as the node will cut it; `None` once
        /// it is badly framed, when the node reads no more of it.
        sent: Option<Decoder>,
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
    /// Checks the signatures of the batches the node sends.
    verifier: Verifier,
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
                sent: Some(Decoder::new(MAX_BODY_LEN)),
                proven: false,
            },
            outbox,
            greeted: false,
            finished: false,
            verifier: Verifier::default(),
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
            verifier: Verifier::default(),
        }
    }

    fn is_open(&self) -> bool {
        matches!(&self.link, Link::Channel { channel, .. } if channel.is_open())
    }

    /// Queues `plain` for the node: sealed if the channel is open, kept until it is if
    /// not; a raw peer sends the bytes as they are. The batches in it go to `texts`.
    fn say(&mut self, plain: &[u8], texts: &mut Texts) {
        match &mut self.link {
            Link::Channel {
                channel,
                pending,
                sent,
                ..
            } => {
                let mut rest = plain;
                while let Some(decoder) = sent {
                    match decoder.next(&mut rest) {
                        Ok(Some(body)) => texts.sent(body),
                        Ok(None) => break,
                        Err(_) => *sent = None,
                    }
                }
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
                    assert!(
                        Preamble::parse(complete).is_ok(),
                        "the node's preamble is invalid"
                    );
                }
                while let Some(_message) = messages.next(&mut rest).unwrap_or_else(|err| {
                    panic!("the node framed a handshake message badly: {err}")
                }) {}
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
                Message::Lines(batch) => {
                    assert!(
                        batch.hops <= HOP_LIMIT,
                        "a batch with {} hops, over the limit of {HOP_LIMIT}",
                        batch.hops
                    );
                    assert!(
                        self.verifier.verify(&batch.record),
                        "the node sent a batch whose signature fails"
                    );
                }
                Message::Have(_)
                | Message::IHave(_)
                | Message::Prune
                | Message::Graft
                | Message::Ping
                | Message::Pong
                | Message::Addrs(_)
                | Message::Retire
                | Message::Walk(_)
                | Message::Member(_) => {}
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
    /// What the client sent the node, cut into lines as the node cuts it.
    said: LineBuffer,
}

impl ClientEnd {
    fn new(id: ConnId) -> Self {
        ClientEnd {
            id,
            partial: Vec::new(),
            said: LineBuffer::default(),
        }
    }

    fn receive(&mut self, bytes: &[u8], texts: &mut Texts) {
        self.partial.extend_from_slice(bytes);
        let Some(last_lf) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let rest = self.partial.split_off(last_lf + 1);
        for line in self.partial.split_inclusive(|&b| b == b'\n') {
            texts.show(check_client_line(line));
        }
        self.partial = rest;
    }

    /// The client sent `bytes` (and the node took them): what it says goes to `texts`.
    fn send(&mut self, bytes: &[u8], texts: &mut Texts) {
        self.said.push(bytes);
        self.said_lines(texts);
    }

    /// The client closed its end: its last line counts, finished or not.
    fn send_eof(&mut self, texts: &mut Texts) {
        self.said.finish();
        self.said_lines(texts);
    }

    fn said_lines(&mut self, texts: &mut Texts) {
        while let Some(line) = self.said.next_line() {
            if let Ok(Ok(Command::Say(said))) = line.map(control::parse_command) {
                texts.said(said);
            }
        }
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

/// Checks a whole line to a client; returns it without its LF.
fn check_client_line(line: &[u8]) -> &str {
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
    body
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
    texts: Texts,
    /// The next line each author run writes, by author identity and run.
    authors: BTreeMap<(u8, u64), u64>,
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
            texts: Texts::default(),
            authors: BTreeMap::new(),
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
        self.clients.push(ClientEnd::new(id));
        self.settle();
    }

    /// The current peer sends `bytes` (sealed, for a channel peer) after what it has
    /// to send already, if the node reads it now.
    fn peer_sends(&mut self, bytes: &[u8]) {
        let Some(peer) = self.peers.get_mut(self.current) else {
            return;
        };
        peer.say(bytes, &mut self.texts);
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
        let Some(client) = self.clients.first_mut() else {
            return;
        };
        let conn = client.id;
        if self.node.accepts_input(conn) {
            client.send(bytes, &mut self.texts);
            self.node.handle_recv(self.now, conn, bytes);
            self.settle();
        }
    }

    /// The node's clock on the Unix clock, in milliseconds, as it stamps its own lines
    /// (its run started at `ME_SEED` ns, at `base()`).
    fn wall_ms(&self) -> u64 {
        let since = self.now.duration_since(base()).as_millis();
        ME_SEED / 1_000_000 + u64::try_from(since).expect("a short run")
    }

    /// The current peer sends batches of lines written and signed by a real author,
    /// variant `v`: `v & 3` is the author (identity keys 0 to 2, as the peers', or 3
    /// for the node's own key, in another run), and with `v & 4` a byte of each record
    /// is altered after it is signed. The stream gives the rest: a flags byte (bit 0
    /// late; bit 1 a run newer than the node's instead of an older one; bits 2-3 where
    /// the lines start: next in order, after a gap of `amount + 1`,
    /// `amount + 1` back over lines sent before, or `MAX_AHEAD + amount` ahead; bits 4-7
    /// the hops), `amount`, the number of lines less 1 (modulo 64), the bytes of text
    /// per line, then each line's text; with `v & 4`, per record, where to alter it (2
    /// bytes) and how (1 byte). A burst too big for one batch is several.
    fn peer_signs(&mut self, v: u8, stream: &mut &[u8]) {
        let spec = next_bytes(stream, 4);
        let byte = |i: usize| spec.get(i).copied().unwrap_or(0);
        let (flags, amount, count, text_len) = (byte(0), u64::from(byte(1)), byte(2), byte(3));
        let k = if v & 3 == 3 { ME_KEY } else { v & 3 };
        // Never the node's own run: lines of it from a peer take the node's key and its
        // run, and then the node's next own line is not new (`Logs::write_own` asserts
        // it is, in a debug build).
        let epoch = if flags & 2 != 0 { 100 } else { 1 };
        let next = self.authors.entry((k, epoch)).or_insert(0);
        let first = match flags >> 2 & 3 {
            0 => *next,
            1 => *next + 1 + amount,
            2 => next.saturating_sub(1 + amount),
            _ => *next + MAX_AHEAD + amount,
        };
        let lines = u64::from(count % 64) + 1;
        *next = (*next).max(first + lines);
        let late = flags & 1 != 0;
        let time_ms = 1 + self
            .wall_ms()
            .saturating_sub(if late { amount * 1_000 } else { 0 });
        let mut author = Author::at(&identity(k), epoch, first);
        let nick = format!("a{k}");
        let mut records = Vec::new();
        for _ in 0..lines {
            let mut text =
                String::from_utf8_lossy(next_bytes(stream, text_len.into())).into_owned();
            let mut end = text.len().min(MAX_TEXT_LEN);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            records.extend(author.write(time_ms, &nick, &text));
        }
        records.extend(author.seal());
        let mut frames = Vec::new();
        for mut record in records {
            if v & 4 != 0 {
                let at = next_bytes(stream, 2);
                let at = usize::from(u16::from_be_bytes([
                    at.first().copied().unwrap_or(0),
                    at.get(1).copied().unwrap_or(0),
                ]));
                let mask = next_bytes(stream, 1).first().copied().unwrap_or(1).max(1);
                let i = at % record.len();
                record[i] ^= mask;
            }
            Batch::encode(&mut frames, flags >> 4, late, &record);
        }
        self.peer_sends(&frames);
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
            client.receive(&written, &mut self.texts);
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
            Op::PeerSigns(v) => self.peer_signs(v, stream),
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
                    if let Some(client) = self.clients.first_mut() {
                        let conn = client.id;
                        client.send_eof(&mut self.texts);
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
    harness.texts.check();
}

fuzz_target!(
    init: {
        log::set_logger(&CheckLogs).expect("the only logger");
        log::set_max_level(log::LevelFilter::Trace);
    },
    |data: &[u8]| run_input(data)
);
