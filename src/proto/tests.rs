//! The node's behaviour, specified through its public API alone: a small harness feeds
//! events in and reads outputs, queues and lines out, on a clock the test moves.
//!
//! Peers are far ends of the test's making ([`Far`]), each with an identity key of its
//! own, that speak to the node through a real secure channel: the Noise handshake runs
//! byte for byte, every frame a far end sends is sealed, and every frame the node sends
//! is read by decrypting it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::config::{Broadcast, NodeConfig, Secret};
use crate::wire::frame::{self, Decoder};
use crate::wire::handshake::Preamble;
use crate::wire::lines::{Batch, Have, HaveEntry, KEY_LEN, SIGNATURE_LEN};
use crate::wire::member::Announce;
use crate::wire::peer::{Hello, Message, Walk, MAX_BODY_LEN};

use super::author::{Author, Verifier};
use super::logs::{MAX_AHEAD, ORDER_WAIT};
use super::secure::{
    self, test_credentials as credentials, Channel, ChannelError, Credentials, Proven,
};
use super::{Accepted, ConnId, Node, NodeId, Output};

/// The identity key of the node under test: 32 times this byte.
const ME: u8 = 0x10;

/// The run of the node under test, nanoseconds since the Unix epoch: its hello's epoch,
/// its own lines' run, and where its clock starts (2026-12-01T21:31:43Z).
const EPOCH: u64 = 1_796_160_703_000_000_000;

/// The node's clock at its start, in milliseconds since the Unix epoch.
const START_MS: u64 = EPOCH / 1_000_000;

/// The run of every far end, and of the far authors' lines: older than the node's.
const FAR_EPOCH: u64 = 1;

/// The hop limit of the node under test: what its own and caught-up batches carry.
const HOP_LIMIT: u8 = 8;

/// The queue a link may hold before catch-up records wait for it to drain: a quarter
/// of the pause mark, so that a catch-up never holds the node's other connections back.
const CATCH_UP_MARK: usize = 64 * 1024;

/// How long after taking new lines the node tells every peer its summary again.
const SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// What introduces lines caught up long after they were written.
const LATE_LINES: &str = "* late lines follow, written while out of reach of this node";

/// Directions for [`Pair::pass`].
const A_TO_B: bool = true;
const B_TO_A: bool = false;

/// The node id of the node with identity key `key`: derived from its public key.
fn id_of(key: u8) -> NodeId {
    secure::node_id_of(&secure::public_key(&Secret([key; 32])))
}

/// Of two identity keys, the one whose node id is the smaller, then the other.
fn by_id(one: u8, other: u8) -> (u8, u8) {
    if id_of(one) < id_of(other) {
        (one, other)
    } else {
        (other, one)
    }
}

/// The far end of one peer link: a node of the test's making, with its own key.
struct Far {
    creds: Credentials,
    channel: Channel,
    /// Cuts what the channel decrypts into frames.
    decoder: Decoder,
    /// Frames the node sent that the test has not looked at yet, summaries apart.
    inbox: Vec<Message<'static>>,
    /// Summaries the node sent that the test has not looked at yet: they come on link
    /// up and every 30 s, whatever else a test is about.
    summaries: Vec<Summary>,
    /// Announcements the node sent, apart from the other messages.
    members: Vec<Announce<'static>>,
    /// Handshake bytes for the node, not yet delivered.
    outbox: Vec<u8>,
    /// The node under test, once the handshake proved it.
    proven: Option<Proven>,
    /// Why the channel failed at this end, if it did; nothing is read after that.
    failed: Option<ChannelError>,
}

impl Far {
    /// The end that dialled the node: it sends its preamble and message 1 first.
    fn dialling(key: u8) -> Self {
        Far::with(credentials(key, None), true)
    }

    /// The end the node dialled.
    fn answering(key: u8) -> Self {
        Far::with(credentials(key, None), false)
    }

    fn with(creds: Credentials, initiator: bool) -> Self {
        let mut rng = ChaCha20Rng::from_seed([0xee; 32]);
        let mut outbox = Vec::new();
        let channel = Channel::new(&creds, initiator, &mut rng, &mut outbox);
        Far {
            creds,
            channel,
            decoder: Decoder::new(MAX_BODY_LEN),
            inbox: Vec::new(),
            summaries: Vec::new(),
            members: Vec::new(),
            outbox,
            proven: None,
            failed: None,
        }
    }

    /// Reads bytes the node wrote: handshake answers go to the outbox, frames to the
    /// inbox.
    fn read(&mut self, wire: &[u8]) {
        if self.failed.is_some() || wire.is_empty() {
            return;
        }
        let mut plain = Vec::new();
        match (self.channel).recv(&self.creds, wire, &mut self.outbox, &mut plain) {
            Ok(proven) => self.proven = self.proven.or(proven),
            Err(err) => self.failed = Some(err),
        }
        let mut input = &plain[..];
        while let Some(body) = (self.decoder.next(&mut input)).expect("the node frames correctly") {
            let body: &'static [u8] = Box::leak(body.to_vec().into_boxed_slice());
            match Message::parse(body).expect("the node sends valid messages") {
                Message::Have(have) => self.summaries.push(Summary::of(&have)),
                Message::Member(announce) => self.members.push(announce),
                message => self.inbox.push(message),
            }
        }
    }

    /// `plain` as transport messages for the node.
    fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        self.channel.seal(plain, &mut wire);
        wire
    }
}

/// One node under test, the far ends of its peer links and the clock it is fed.
struct Harness {
    node: Node,
    now: Instant,
    outputs: Vec<Output>,
    /// The far end of each peer link the test made, by the node's id for the link.
    far: BTreeMap<ConnId, Far>,
    /// Connections told of the end of stream already: it is told once.
    eofs: BTreeSet<ConnId>,
}

/// One line of a batch as it left the node, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SentChat {
    origin: NodeId,
    epoch: u64,
    seq: u64,
    hops: u8,
    late: bool,
    nick: String,
    text: String,
}

/// Seen ranges of one author run, as a summary names them.
type Ranges = Vec<(u64, u64)>;

/// A summary as it left the node: per author run (author, epoch), the ranges of lines
/// the node has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    /// Names every run the node holds: one it does not name, it holds nothing of.
    complete: bool,
    more: bool,
    runs: Vec<(NodeId, u64, Ranges)>,
}

impl Summary {
    fn of(have: &Have<'_>) -> Self {
        Summary {
            complete: have.complete,
            more: have.more,
            runs: (have.iter())
                .map(|e| (NodeId(e.author), e.epoch, e.ranges))
                .collect(),
        }
    }

    /// A whole summary of `runs`, in the order the node sends them.
    fn whole(mut runs: Vec<(NodeId, u64, Ranges)>) -> Self {
        runs.sort();
        Summary {
            complete: true,
            more: false,
            runs,
        }
    }

    /// A question about one run, whose lines wait for a missing one: what it has.
    fn asking(run: (NodeId, u64, Ranges)) -> Self {
        Summary {
            complete: false,
            more: false,
            runs: vec![run],
        }
    }
}

fn config(key: u8) -> NodeConfig {
    let mut cfg = NodeConfig::new(Secret([key; 32]), EPOCH, "me".into());
    cfg.announce_interval = None;
    // Two nodes of one test draw different Noise keys.
    cfg.random = Secret([!key; 32]);
    cfg.listen_addr = Some(addr(7654));
    cfg.hop_limit = HOP_LIMIT;
    // Discovery has tests of its own; elsewhere its dials would only be noise.
    cfg.discovery = false;
    cfg
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A far end's hello. The accepting end names no link (`link_id` 0).
fn hello(listen_port: u16, link_id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    Hello {
        epoch: FAR_EPOCH,
        listen_port,
        link_id,
        refusing: false,
        nick: "peer",
    }
    .encode(&mut out);
    out
}

/// The hello of a far end that has all the peers it takes.
fn refusing_hello() -> Vec<u8> {
    let mut out = Vec::new();
    Hello {
        epoch: FAR_EPOCH,
        listen_port: 0,
        link_id: 0,
        refusing: true,
        nick: "full",
    }
    .encode(&mut out);
    out
}

/// The far author whose lines most tests relay: no peer of any test has its key.
const AUTHOR: u8 = 77;

/// Lines of a far author as it signs them: its identity key, its run, its nick, and
/// when it wrote them (milliseconds since the Unix epoch on its clock).
#[derive(Debug, Clone, Copy)]
struct Writer {
    key: u8,
    epoch: u64,
    nick: &'static str,
    time_ms: u64,
}

/// The far author of most tests. It wrote its lines when the node started, so that
/// they are as old as the harness clock says (and not at 0 ms, which the node takes
/// for the time of a run it forgot).
const THEM: Writer = Writer {
    key: AUTHOR,
    epoch: FAR_EPOCH,
    nick: "them",
    time_ms: START_MS,
};

/// Another far author.
const OTHER: Writer = Writer {
    key: 78,
    nick: "other",
    ..THEM
};

impl Writer {
    /// The signed record of `texts`, its lines numbered from `first`.
    fn record(self, first: u64, texts: &[&str]) -> Vec<u8> {
        let mut author = Author::at(&Secret([self.key; 32]), self.epoch, first);
        for text in texts {
            let sealed = author.write(self.time_ms, self.nick, text);
            assert!(sealed.is_none(), "the texts fit one record");
        }
        author.seal().expect("at least one text")
    }

    /// The batch of `texts` from line `first`, relayed live with `hops` left.
    fn batch(self, first: u64, hops: u8, texts: &[&str]) -> Vec<u8> {
        batch(hops, false, &self.record(first, texts))
    }
}

/// A batch message carrying `record`: `late` when it catches a node up.
fn batch(hops: u8, late: bool, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Batch::encode(&mut out, hops, late, record);
    out
}

/// Line `seq` of [`THEM`], relayed live with `hops` left.
fn chat(seq: u64, hops: u8, text: &str) -> Vec<u8> {
    THEM.batch(seq, hops, &[text])
}

/// A far end's summary: per run (author's identity key, epoch), the line it holds
/// everything below; `whole` when it names every run the far end holds.
fn have(runs: &[(u8, u64, u64)], whole: bool) -> Vec<u8> {
    let entries: Vec<HaveEntry> = (runs.iter())
        .map(|&(key, epoch, next)| HaveEntry {
            author: id_of(key).0,
            epoch,
            ranges: if next > 0 { vec![(0, next)] } else { vec![] },
        })
        .collect();
    let mut out = Vec::new();
    Have::encode(&mut out, &entries, whole);
    out
}

fn frame(encode: fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&mut out);
    out
}

fn texts(chats: Vec<SentChat>) -> Vec<String> {
    chats.into_iter().map(|c| c.text).collect()
}

impl Harness {
    fn new() -> Self {
        Self::with(config(ME))
    }

    fn with(cfg: NodeConfig) -> Self {
        let now = Instant::now();
        let mut harness = Harness {
            node: Node::new(cfg, now),
            now,
            outputs: Vec::new(),
            far: BTreeMap::new(),
            eofs: BTreeSet::new(),
        };
        harness.drain();
        harness
    }

    fn drain(&mut self) {
        while let Some(output) = self.node.poll_output() {
            self.outputs.push(output);
        }
    }

    /// Outputs since the last call, in order.
    fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    fn closed(&self, conn: ConnId) -> bool {
        self.outputs.contains(&Output::Close(conn))
    }

    fn finished(&self, conn: ConnId) -> bool {
        self.outputs.contains(&Output::Finish(conn))
    }

    /// Whether `conn` writes no more: closed, or its writing half shut down.
    fn done_writing(&self, conn: ConnId) -> bool {
        self.closed(conn) || self.finished(conn)
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        if self.node.poll_timeout().is_some_and(|at| at <= self.now) {
            self.node.handle_timeout(self.now);
            self.drain();
        }
    }

    fn client(&mut self) -> ConnId {
        let conn = self.node.handle_accepted(self.now, Accepted::Client);
        self.drain();
        conn
    }

    /// A connection accepted from `from`, with no far end.
    fn accept(&mut self, from: SocketAddr) -> ConnId {
        let conn = self.node.handle_accepted(self.now, Accepted::Peer(from));
        self.drain();
        conn
    }

    /// A connection accepted from `from`, dialled by `far`; nothing has moved yet.
    fn incoming_from(&mut self, far: Far, from: SocketAddr) -> ConnId {
        let conn = self.accept(from);
        self.far.insert(conn, far);
        conn
    }

    /// The node under test's end of a link that far end `key` dialled, with the
    /// handshake done; the node's hello waits in the far end's inbox.
    fn shaken(&mut self, key: u8) -> ConnId {
        let conn = self.incoming_from(Far::dialling(key), addr(40000 + u16::from(key)));
        self.pump(conn);
        conn
    }

    /// An inbound peer, node `key`, that has said hello; our hello and the summary
    /// that follows it are taken off its inbox.
    fn peer(&mut self, key: u8) -> ConnId {
        let conn = self.shaken(key);
        self.send(conn, &hello(0, 1));
        let greeting = self.sent_frames(conn);
        assert!(
            matches!(greeting.as_slice(), [Message::Hello(_)]),
            "{greeting:?}"
        );
        let summaries = self.sent_summaries(conn);
        assert!(
            matches!(summaries.as_slice(), [Summary { complete: true, .. }]),
            "{summaries:?}"
        );
        conn
    }

    /// The dialled `conn` connects to `far`, and the handshake runs.
    fn answer(&mut self, conn: ConnId, far: Far) {
        self.node.handle_connected(self.now, conn, addr(7654));
        self.drain();
        self.far.insert(conn, far);
        self.pump(conn);
    }

    /// Moves bytes between the node and `conn`'s far end until neither has any to send.
    fn pump(&mut self, conn: ConnId) {
        self.pump_in_pieces(conn, usize::MAX);
    }

    /// Like [`Harness::pump`], delivering to the node `piece` bytes at a time.
    fn pump_in_pieces(&mut self, conn: ConnId, piece: usize) {
        loop {
            let to_far = self.write_out(conn, usize::MAX);
            let far = self.far.get_mut(&conn).expect("a link with a far end");
            let to_node = std::mem::take(&mut far.outbox);
            for bytes in to_node.chunks(piece) {
                self.recv(conn, bytes);
            }
            if to_far.is_empty() && to_node.is_empty() {
                return;
            }
        }
    }

    /// Raw bytes for `conn`: a client's text, or what a peer puts on the wire.
    fn recv(&mut self, conn: ConnId, bytes: &[u8]) {
        self.node.handle_recv(self.now, conn, bytes);
        self.drain();
    }

    /// `plain` as `conn`'s far end seals it.
    fn sealed(&mut self, conn: ConnId, plain: &[u8]) -> Vec<u8> {
        self.far.get_mut(&conn).expect("a far end").seal(plain)
    }

    /// Frames from `conn`'s far end, sealed.
    fn send(&mut self, conn: ConnId, plain: &[u8]) {
        let wire = self.sealed(conn, plain);
        self.recv(conn, &wire);
    }

    /// The end of stream from `conn`'s other end, once.
    fn eof(&mut self, conn: ConnId) {
        if self.eofs.insert(conn) {
            self.node.handle_eof(self.now, conn);
            self.drain();
        }
    }

    fn say(&mut self, client: ConnId, line: &str) {
        self.recv(client, format!("{line}\n").as_bytes());
    }

    /// Writes up to `max` of the bytes queued for `conn` (sealing its frames first),
    /// hands them to its far end if it has one, and returns them as they went out.
    fn write_out(&mut self, conn: ConnId, max: usize) -> Vec<u8> {
        let queued = self.node.send_queue(conn);
        let bytes = queued[..queued.len().min(max)].to_vec();
        self.node.handle_sent(self.now, conn, bytes.len());
        self.drain();
        if let Some(far) = self.far.get_mut(&conn) {
            far.read(&bytes);
        }
        bytes
    }

    /// Everything queued for a connection without a far end, reported as written.
    fn sent(&mut self, conn: ConnId) -> Vec<u8> {
        assert!(
            !self.far.contains_key(&conn),
            "a far end reads its link: use sent_frames"
        );
        self.write_out(conn, usize::MAX)
    }

    fn sent_lines(&mut self, client: ConnId) -> Vec<String> {
        String::from_utf8(self.sent(client))
            .expect("client lines are UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Every frame but summaries that the node has sent `peer`'s far end and the test
    /// not yet looked at.
    fn sent_frames(&mut self, peer: ConnId) -> Vec<Message<'static>> {
        self.write_out(peer, usize::MAX);
        let far = self.far.get_mut(&peer).expect("a far end");
        assert_eq!(far.failed, None, "the far end's channel holds");
        std::mem::take(&mut far.inbox)
    }

    /// The announcements the node has sent `peer`'s far end since the test last looked.
    fn sent_members(&mut self, peer: ConnId) -> Vec<Announce<'static>> {
        self.write_out(peer, usize::MAX);
        let far = self.far.get_mut(&peer).expect("a far end");
        std::mem::take(&mut far.members)
    }

    /// The summaries the node has sent `peer`'s far end since the test last looked.
    fn sent_summaries(&mut self, peer: ConnId) -> Vec<Summary> {
        self.write_out(peer, usize::MAX);
        let far = self.far.get_mut(&peer).expect("a far end");
        std::mem::take(&mut far.summaries)
    }

    /// The lines of the batches the node has sent `peer`, one entry each.
    fn sent_chats(&mut self, peer: ConnId) -> Vec<SentChat> {
        let mut chats = Vec::new();
        for message in self.sent_frames(peer) {
            let Message::Lines(batch) = message else {
                panic!("expected lines, got {message:?}");
            };
            let record = batch.record;
            chats.extend(record.lines().map(|line| SentChat {
                origin: secure::node_id_of(record.author),
                epoch: record.epoch,
                seq: line.seq,
                hops: batch.hops,
                late: batch.late,
                nick: line.nick.into(),
                text: line.text.into(),
            }));
        }
        chats
    }

    fn status(&mut self, client: ConnId, key: &str) -> String {
        self.say(client, "/status");
        let prefix = format!("* {key} ");
        self.sent_lines(client)
            .iter()
            .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {key} in /status"))
    }

    /// Feeds `bytes` written by the far end to `conn`, then the end of stream once the
    /// far end writes no more. Returns whether anything moved.
    fn feed(&mut self, conn: ConnId, bytes: &[u8], far_end_done: bool) -> bool {
        if self.closed(conn) {
            return false;
        }
        if !bytes.is_empty() {
            self.recv(conn, bytes);
        }
        if far_end_done && !self.closed(conn) && !self.eofs.contains(&conn) {
            self.eof(conn);
            return true;
        }
        !bytes.is_empty()
    }

    /// Two connections of this node that are the two ends of one TCP connection (a
    /// dial that led back here): moves bytes between them until nothing moves.
    fn loop_back(&mut self, one: ConnId, other: ConnId) {
        loop {
            let mut moved = false;
            for (from, to) in [(one, other), (other, one)] {
                let bytes = self.sent(from);
                let done = self.done_writing(from);
                moved |= self.feed(to, &bytes, done);
            }
            if !moved {
                return;
            }
        }
    }
}

/// What `client` was last told about the loss of a link: the cause, after the address.
fn cause_told(h: &mut Harness, client: ConnId) -> String {
    let lines = h.sent_lines(client);
    let loss = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("! cannot connect to ") || l.starts_with("* peer down "))
        .unwrap_or_else(|| panic!("no loss reported: {lines:?}"));
    loss.split_once(": ").expect("a cause").1.to_owned()
}

/// Whether `conn` is given up: once what is queued for it is written it writes no more
/// (closed, or shut down so that the peer reads why), and it is closed at the other
/// end's end of stream.
fn given_up(h: &mut Harness, conn: ConnId) -> bool {
    h.write_out(conn, usize::MAX);
    let done = h.done_writing(conn);
    h.eof(conn);
    done && h.closed(conn)
}

// The link's set-up: the secure channel and the hello.

#[test]
fn the_handshake_proves_the_node_key_and_its_hello_follows_inside_the_channel() {
    let mut h = Harness::new();
    assert_eq!(h.node.id(), id_of(ME), "the id derives from the key");
    let conn = h.incoming_from(Far::dialling(1), addr(1));
    assert_eq!(
        h.take_outputs(),
        [Output::Flush(conn)],
        "the preamble waits"
    );
    h.pump(conn);
    assert_eq!(h.far[&conn].proven.map(|p| p.id), Some(id_of(ME)));
    match h.sent_frames(conn).as_slice() {
        [Message::Hello(hello)] => {
            assert_eq!(hello.epoch, EPOCH);
            assert_eq!(hello.listen_port, 7654);
            assert_eq!(hello.link_id, 0, "the accepting end names no link");
            assert!(!hello.refusing);
            assert_eq!(hello.nick, "me");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_dialling_end_names_its_link_and_learns_the_peer_id_from_its_key() {
    let (mut h, client, conn) = connect_asked("peer.example:7654");
    h.answer(conn, Far::answering(3));
    assert_eq!(h.far[&conn].proven.map(|p| p.id), Some(id_of(ME)));
    match h.sent_frames(conn).as_slice() {
        [Message::Hello(hello)] => assert_ne!(hello.link_id, 0),
        other => panic!("{other:?}"),
    }
    h.sent_lines(client);
    h.send(conn, &hello(0, 0));
    assert_eq!(
        h.sent_lines(client),
        [format!("* peer up 127.0.0.1:7654 out {} peer", id_of(3))]
    );
}

#[test]
fn handshake_and_frames_cut_into_single_bytes_still_link() {
    let mut h = Harness::new();
    let client = h.client();
    h.sent(client);
    let conn = h.incoming_from(Far::dialling(1), addr(1));
    h.pump_in_pieces(conn, 1);
    let wire = h.sealed(conn, &hello(0, 1));
    for byte in wire.chunks(1) {
        h.recv(conn, byte);
    }
    assert_eq!(
        h.sent_lines(client),
        [format!("* peer up 127.0.0.1:1 in {} peer", id_of(1))]
    );
}

#[test]
fn channel_failures_close_the_link_with_a_secure_channel_cause() {
    let preamble = |network_key| {
        let mut out = Vec::new();
        Preamble { network_key }.encode(&mut out);
        out
    };
    let not_message_2 = [preamble(false), vec![0, 48], vec![0xab; 48]].concat();
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "a stranger",
            b"HTTP/1.1 400 Bad Request\r\n".to_vec(),
            "secure channel: bad magic",
        ),
        (
            "another version",
            vec![b'P', b'2', b'P', b'C', 0, 3, 0, 0],
            "secure channel: protocol version mismatch: we speak 2, the peer speaks 3",
        ),
        (
            "a version 1 node, which starts with its hello",
            vec![0, 0, 0, 31, 1, b'P', b'2', b'P', b'C', 0, 1],
            "secure channel: protocol version mismatch: we speak 2, the peer speaks 1",
        ),
        (
            "a node with a network key",
            preamble(true),
            "secure channel: network key mismatch: the peer has one, we have none",
        ),
        (
            "noise that is no message 2",
            not_message_2,
            "secure channel: handshake message 2 is invalid",
        ),
        (
            "an empty message",
            [preamble(false), vec![0, 0]].concat(),
            "secure channel: noise message: empty frame",
        ),
    ];
    for (name, answer, cause) in cases {
        let (mut h, client, conn) = connect_asked("peer.example:7654");
        h.node.handle_connected(h.now, conn, addr(7654));
        h.drain();
        h.sent(conn);
        h.recv(conn, &answer);
        assert!(given_up(&mut h, conn), "{name} must close the link");
        let told = cause_told(&mut h, client);
        assert!(told.starts_with(cause), "{name}: {told:?}");
    }
}

#[test]
fn only_holders_of_the_network_key_link() {
    let mut cfg = config(ME);
    cfg.network_key = Some(Secret([9; 32]));
    let mut h = Harness::with(cfg);
    let client = h.client();
    h.sent(client);

    let member = h.incoming_from(Far::with(credentials(1, Some(9)), true), addr(1));
    h.pump(member);
    h.send(member, &hello(0, 1));
    assert_eq!(
        h.sent_lines(client),
        [format!("* peer up 127.0.0.1:1 in {} peer", id_of(1))]
    );

    // Message 1 already fails with another key: nothing of ours is revealed to it.
    let stranger = h.incoming_from(Far::with(credentials(2, Some(8)), true), addr(2));
    h.pump(stranger);
    assert!(h.closed(stranger));
    assert_eq!(h.far[&stranger].proven, None);
    let keyless = h.incoming_from(Far::dialling(3), addr(3));
    h.pump(keyless);
    assert!(given_up(&mut h, keyless));
    assert_eq!(h.far[&keyless].proven, None);
    assert!(!h.closed(member));
}

#[test]
fn bytes_that_do_not_decrypt_close_that_peer_only() {
    /// Spoils a sealed chat message, given a message sealed before it.
    type Spoil = fn(&mut Vec<u8>, &[u8]);
    let cases: [(&str, Spoil); 3] = [
        ("one bit flipped", |wire, _| wire[5] ^= 1),
        ("a message replayed", |wire, earlier| {
            *wire = earlier.to_vec()
        }),
        ("garbage in a message", |wire, _| {
            *wire = [vec![0, 20], vec![0x55; 20]].concat()
        }),
    ];
    for (name, spoil) in cases {
        let mut h = Harness::new();
        let (bad, good) = (h.peer(1), h.peer(2));
        let client = h.client();
        h.sent(client);
        let earlier = h.sealed(bad, &frame(Message::encode_ping));
        h.recv(bad, &earlier);
        let mut wire = h.sealed(bad, &chat(1, 1, "x"));
        spoil(&mut wire, &earlier);
        h.recv(bad, &wire);
        assert!(h.closed(bad), "{name}");
        assert!(!h.closed(good), "{name}");
        assert!(!h.node.accepts_input(bad), "{name}");
        let told = cause_told(&mut h, client);
        assert_eq!(
            told, "secure channel: transport message did not decrypt (altered or forged bytes)",
            "{name}"
        );
        h.say(client, "still here");
        assert_eq!(h.sent_chats(good).len(), 1, "{name}");
    }
}

#[test]
fn every_malformed_message_closes_the_link() {
    let empty_frame = vec![0, 0, 0, 0];
    let mut unknown_kind = Vec::new();
    frame::encode(&mut unknown_kind, |o| o.extend_from_slice(&[42, 1, 2, 3]));
    let mut truncated_hello = Vec::new();
    frame::encode(&mut truncated_hello, |o| o.extend_from_slice(&[1, 0, 0]));
    let cases: [(&str, Vec<u8>, bool, &str); 6] = [
        ("empty frame", empty_frame, false, "empty frame"),
        (
            "unknown kind",
            unknown_kind,
            true,
            "unknown message kind 42",
        ),
        (
            "truncated hello",
            truncated_hello,
            false,
            "truncated hello message",
        ),
        (
            "lines before hello",
            chat(1, 1, "x"),
            false,
            "lines before hello",
        ),
        (
            "ping before hello",
            frame(Message::encode_ping),
            false,
            "ping before hello",
        ),
        ("second hello", hello(0, 0), true, "second hello"),
    ];
    for (name, bytes, after_hello, cause) in cases {
        let (mut h, client, conn) = connect_asked("peer.example:7654");
        h.answer(conn, Far::answering(5));
        if after_hello {
            h.send(conn, &hello(0, 0));
        }
        h.send(conn, &bytes);
        assert!(h.closed(conn), "{name} must close the link");
        assert_eq!(
            cause_told(&mut h, client),
            format!("protocol violation: {cause}"),
            "{name}"
        );
    }
}

#[test]
fn silent_peer_is_dropped_at_the_handshake_deadline() {
    let mut h = Harness::new();
    let silent = h.accept(addr(1));
    // The handshake done, but no hello: the same deadline.
    let mute = h.shaken(2);
    h.advance(Duration::from_millis(4900));
    assert!(!h.closed(silent) && !h.closed(mute));
    h.advance(Duration::from_millis(200));
    assert!(h.closed(silent) && h.closed(mute));
    assert_eq!(
        h.node.poll_timeout(),
        None,
        "no timer outlives its connection"
    );
}

#[test]
fn accepted_connections_in_the_handshake_have_slots_per_address_and_in_all() {
    let mut h = Harness::new();
    let from = |host: u8, port: u16| SocketAddr::from(([10, 0, 0, host], port));
    let first: Vec<ConnId> = (1..=8)
        .map(|key| h.incoming_from(Far::dialling(key), from(1, u16::from(key))))
        .collect();
    assert!(first.iter().all(|&c| !h.closed(c)));
    let ninth = h.accept(from(1, 9));
    assert!(h.closed(ninth), "a ninth from one address");
    assert!(h.node.send_queue(ninth).is_empty(), "not even a preamble");
    let elsewhere = h.accept(from(2, 1));
    assert!(!h.closed(elsewhere), "another address still gets in");

    // A link whose hello has arrived is out of the handshake: its slot is free.
    h.pump(first[0]);
    let still_shaking = h.accept(from(1, 10));
    assert!(
        h.closed(still_shaking),
        "the handshake is done, the hello not"
    );
    h.send(first[0], &hello(0, 1));
    let tenth = h.accept(from(1, 11));
    assert!(!h.closed(tenth));

    // In all: 64, wherever they come from.
    let mut h = Harness::new();
    for host in 1..=8 {
        for port in 1..=8 {
            let conn = h.accept(from(host, port));
            assert!(!h.closed(conn));
        }
    }
    let newcomer = h.accept(from(9, 1));
    assert!(h.closed(newcomer), "the 65th, from a fresh address");
    let client = h.client();
    assert!(!h.closed(client), "clients have slots of their own");
}

#[test]
fn a_link_replaced_again_and_again_holds_its_address_slot_until_it_closes() {
    let mut h = Harness::new();
    let from = |port: u16| SocketAddr::from(([10, 0, 0, 1], port));
    // One node, one address, a new link every time with the same key: each replaces
    // the one before, which lingers until the far end shuts it down.
    let links: Vec<ConnId> = (1..=9)
        .map(|port| {
            let conn = h.incoming_from(Far::dialling(1), from(port));
            h.pump(conn);
            h.send(conn, &hello(0, 1));
            conn
        })
        .collect();
    assert!(
        links.iter().all(|&c| !h.closed(c)),
        "each replaced link lingers"
    );
    let next = h.accept(from(10));
    assert!(
        h.closed(next),
        "eight replaced links hold the address's eight slots"
    );
    h.write_out(links[0], usize::MAX);
    h.eof(links[0]);
    assert!(h.closed(links[0]));
    let after = h.accept(from(11));
    assert!(
        !h.closed(after),
        "a slot is free once a replaced link closes"
    );
}

#[test]
fn a_handshake_without_a_hello_holds_no_place_among_the_peers() {
    let mut cfg = config(ME);
    cfg.limits.max_peers = 2;
    let mut h = Harness::with(cfg);
    let silent = [h.shaken(1), h.shaken(2)];
    let newcomer = h.shaken(3);
    match h.sent_frames(newcomer).as_slice() {
        [Message::Hello(hello)] => assert!(!hello.refusing, "room for it"),
        other => panic!("{other:?}"),
    }
    h.send(newcomer, &hello(0, 1));
    h.send(silent[0], &hello(0, 1));
    assert!(!h.done_writing(newcomer) && !h.done_writing(silent[0]));
    // Two hellos took the two places: the third is given up, not taken over the limit.
    h.send(silent[1], &hello(0, 1));
    assert_eq!(h.sent_frames(silent[1]).last(), Some(&Message::Retire));
    assert!(h.finished(silent[1]));
}

#[test]
fn anything_after_a_retire_on_an_up_link_closes_it() {
    let mut h = Harness::new();
    let client = h.client();
    let up = h.peer(1);
    h.send(up, &frame(Message::encode_retire));
    assert!(!h.closed(up), "kept until its replacement comes");
    h.send(up, &chat(1, 4, "after the retire"));
    assert!(h.closed(up));
    assert!(
        !h.sent_lines(client)
            .iter()
            .any(|l| l.contains("after the retire")),
        "nothing that follows a retire is delivered"
    );
}

// Chat: flooding, duplicates, hops.

#[test]
fn client_line_goes_to_every_peer_and_every_other_client() {
    let mut h = Harness::new();
    let (p1, p2) = (h.peer(1), h.peer(2));
    let (writer, reader) = (h.client(), h.client());
    h.sent(writer);
    h.sent(reader);

    h.say(writer, "hello");
    let expected = SentChat {
        origin: id_of(ME),
        epoch: EPOCH,
        seq: 0,
        hops: HOP_LIMIT,
        late: false,
        nick: "me".into(),
        text: "hello".into(),
    };
    let wire = h.write_out(p1, usize::MAX);
    assert!(
        !wire.windows(5).any(|w| w == b"hello"),
        "sealed on the wire"
    );
    assert_eq!(h.sent_chats(p1), std::slice::from_ref(&expected));
    assert_eq!(h.sent_chats(p2), [expected]);
    assert_eq!(h.sent_lines(reader), ["<me> hello"]);
    assert_eq!(h.sent_lines(writer), Vec::<String>::new(), "no echo");
}

#[test]
fn repeated_text_gets_new_ids() {
    let mut h = Harness::new();
    let peer = h.peer(1);
    let client = h.client();
    h.say(client, "same");
    h.say(client, "same");
    let seqs: Vec<u64> = h.sent_chats(peer).iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [0, 1]);
}

#[test]
fn peer_line_is_delivered_once_and_forwarded_to_the_other_peers() {
    let mut h = Harness::new();
    let (a, b, c) = (h.peer(1), h.peer(2), h.peer(3));
    let client = h.client();
    h.sent(client);

    h.send(a, &chat(0, 3, "hi"));
    assert_eq!(h.sent_lines(client), ["<them> hi"]);
    assert!(
        h.sent_frames(a).is_empty(),
        "not sent back to where it came from"
    );
    for peer in [b, c] {
        let forwarded = h.sent_chats(peer);
        assert_eq!(forwarded.len(), 1);
        let id = (forwarded[0].origin, forwarded[0].epoch, forwarded[0].seq);
        assert_eq!(id, (id_of(AUTHOR), FAR_EPOCH, 0));
        assert_eq!(forwarded[0].hops, 2, "one hop used");
    }

    h.send(b, &chat(0, 2, "hi"));
    assert!(h.sent(client).is_empty(), "a copy is not delivered again");
    assert!(
        h.sent_frames(a).is_empty() && h.sent_frames(c).is_empty(),
        "nor forwarded"
    );
    assert_eq!(h.status(client, "duplicates"), "1");
    assert_eq!(h.status(client, "messages"), "1");
}

#[test]
fn a_restarted_authors_first_line_is_no_copy_of_its_last_runs() {
    let mut h = Harness::new();
    let (from, onward) = (h.peer(1), h.peer(2));
    let client = h.client();
    h.sent(client);
    let (before, after) = (Writer { epoch: 100, ..THEM }, Writer { epoch: 200, ..THEM });
    h.send(from, &before.batch(0, 4, &["before the restart"]));
    h.send(from, &after.batch(0, 4, &["after the restart"]));
    h.send(from, &before.batch(0, 4, &["before the restart"]));
    assert_eq!(
        h.sent_lines(client),
        ["<them> before the restart", "<them> after the restart"]
    );
    let runs: Vec<u64> = h.sent_chats(onward).iter().map(|c| c.epoch).collect();
    assert_eq!(runs, [100, 200], "each relayed with its own run");
    assert_eq!(h.status(client, "duplicates"), "1");
}

#[test]
fn copy_of_own_line_coming_back_is_suppressed() {
    let mut h = Harness::new();
    let (a, b) = (h.peer(1), h.peer(2));
    let client = h.client();
    h.say(client, "loop");
    h.sent_frames(a);
    h.sent_frames(b);
    let me = Writer {
        key: ME,
        epoch: EPOCH,
        ..THEM
    };
    h.send(b, &me.batch(0, 7, &["loop"]));
    assert!(h.sent_frames(a).is_empty());
    assert!(h.sent(client).is_empty());
}

#[test]
fn peer_cannot_give_a_line_more_hops_than_this_node_would() {
    let mut h = Harness::new();
    let (a, b) = (h.peer(1), h.peer(2));
    h.send(a, &chat(1, 255, "far"));
    let forwarded = h.sent_chats(b);
    assert_eq!(forwarded[0].hops, 7, "our limit is 8, one hop used");
}

#[test]
fn last_hop_is_delivered_but_not_forwarded() {
    let mut h = Harness::new();
    let (a, b) = (h.peer(1), h.peer(2));
    let client = h.client();
    h.sent(client);
    h.send(a, &chat(0, 1, "end of the road"));
    assert_eq!(h.sent_lines(client), ["<them> end of the road"]);
    assert!(h.sent_frames(b).is_empty());
}

#[test]
fn control_characters_from_peers_never_reach_clients() {
    let mut h = Harness::new();
    let a = h.peer(1);
    let client = h.client();
    h.sent(client);
    h.send(a, &chat(0, 1, "\u{1b}]0;pwned\u{7}"));
    assert_eq!(h.sent_lines(client), ["<them> \u{FFFD}]0;pwned\u{FFFD}"]);
}

#[test]
fn frame_split_anywhere_is_reassembled() {
    let mut h = Harness::new();
    let a = h.peer(1);
    let client = h.client();
    h.sent(client);
    let first = chat(0, 2, "first");
    let plain = [first.clone(), chat(1, 2, "second")].concat();
    // Frames cut across transport messages, and those cut into single bytes.
    let cut = first.len() + 10;
    let mut wire = Vec::new();
    for piece in [&plain[..3], &plain[3..cut], &plain[cut..]] {
        wire.extend(h.sealed(a, piece));
    }
    for byte in wire.chunks(1) {
        h.recv(a, byte);
    }
    assert_eq!(h.sent_lines(client), ["<them> first", "<them> second"]);
}

// Signed batches: what the node signs, and what it takes from peers.

#[test]
fn what_a_client_writes_in_one_read_is_one_batch_signed_with_the_node_key() {
    let mut h = Harness::new();
    let peer = h.peer(1);
    let (writer, reader) = (h.client(), h.client());
    h.sent(reader);
    h.recv(writer, b"one\ntwo\nthree\n");
    let frames = h.sent_frames(peer);
    let [Message::Lines(batch)] = frames.as_slice() else {
        panic!("one batch: {frames:?}");
    };
    assert_eq!((batch.hops, batch.late), (HOP_LIMIT, false));
    let record = batch.record;
    assert_eq!(record.author, &secure::public_key(&Secret([ME; 32])));
    assert_eq!((record.epoch, record.first, record.count), (EPOCH, 0, 3));
    assert!(
        Verifier::default().verify(&record),
        "signed by the node's key"
    );
    assert_eq!(h.sent_lines(reader), ["<me> one", "<me> two", "<me> three"]);
    h.say(writer, "four");
    let next: Vec<u64> = h.sent_chats(peer).iter().map(|c| c.seq).collect();
    assert_eq!(next, [3], "the next read, the next batch");
}

#[test]
fn a_forged_batch_closes_its_link_and_reaches_no_client_or_peer() {
    let mut h = Harness::new();
    let (honest, onward) = (h.peer(4), h.peer(5));
    let forgers = [h.peer(1), h.peer(2), h.peer(3)];
    let client = h.client();
    let genuine = THEM.record(0, &["pay bob 5"]);
    let altered = |at: usize| {
        let mut record = genuine.clone();
        record[at] ^= 1;
        record
    };
    let mut signed_by_another = Writer { key: 66, ..THEM }.record(0, &["pay bob 5"]);
    signed_by_another[..KEY_LEN].copy_from_slice(&secure::public_key(&Secret([AUTHOR; 32])));
    let forgeries = [
        (
            "a byte of its text altered",
            altered(genuine.len() - SIGNATURE_LEN - 1),
        ),
        (
            "a byte of its signature altered",
            altered(genuine.len() - SIGNATURE_LEN),
        ),
        (
            "signed by another key than the one it names",
            signed_by_another,
        ),
    ];
    for ((name, forged), (key, forger)) in forgeries.iter().zip((1..).zip(forgers)) {
        h.send(forger, &batch(4, false, forged));
        assert!(h.closed(forger), "{name}");
        assert_eq!(
            h.sent_lines(client),
            [format!(
                "* peer down 127.0.0.1:{} in {} peer: protocol violation: lines claiming \
                 author {} with a signature that does not hold",
                40000 + key,
                id_of(key as u8),
                id_of(AUTHOR)
            )],
            "{name}: nothing but the loss reaches the client"
        );
        assert!(h.sent_frames(onward).is_empty(), "{name}: nor any peer");
    }
    // Nothing of the forgeries was taken: the genuine lines are news.
    h.send(honest, &batch(4, false, &genuine));
    assert_eq!(h.sent_lines(client), ["<them> pay bob 5"]);
    assert_eq!(texts(h.sent_chats(onward)), ["pay bob 5"]);
    assert_eq!(h.status(client, "forged"), "3");
}

#[test]
fn a_copy_of_lines_seen_is_dropped_without_a_signature_check() {
    let mut h = Harness::new();
    let (first, second, onward) = (h.peer(1), h.peer(2), h.peer(3));
    let client = h.client();
    h.send(first, &chat(0, 4, "genuine"));
    h.sent(client);
    h.sent_frames(onward);
    // It can change nothing, so it is not checked, and its sender is not blamed.
    let mut copy = THEM.record(0, &["genuine"]);
    let signature = copy.len() - SIGNATURE_LEN;
    copy[signature] ^= 1;
    h.send(second, &batch(4, false, &copy));
    assert!(!h.closed(second));
    assert!(h.sent(client).is_empty());
    assert!(h.sent_frames(onward).is_empty());
    assert_eq!(h.status(client, "duplicates"), "1");
    assert_eq!(h.status(client, "forged"), "0");
}

#[test]
fn a_batch_too_far_ahead_of_its_run_is_refused_and_its_sender_kept() {
    let mut h = Harness::new();
    let (from, onward) = (h.peer(1), h.peer(2));
    let client = h.client();
    h.send(from, &chat(0, 4, "zero"));
    h.sent(client);
    h.sent_frames(onward);
    h.send(from, &chat(MAX_AHEAD + 2, 4, "from the far future"));
    assert!(!h.closed(from), "it is signed: the sender is not to blame");
    assert!(h.sent(client).is_empty(), "not shown");
    assert!(h.sent_frames(onward).is_empty(), "not passed on");
    assert_eq!(h.status(client, "refused"), "1");
}

// Order: each author's lines as the author wrote them.

#[test]
fn a_line_whose_predecessor_is_missing_waits_while_the_peers_are_asked_for_it() {
    let mut h = Harness::new();
    let (from, other) = (h.peer(1), h.peer(2));
    let client = h.client();
    h.send(from, &chat(0, 4, "zero"));
    h.sent(client);
    h.sent_frames(other);
    h.send(from, &chat(2, 4, "two"));
    assert!(h.sent(client).is_empty(), "line 1 is awaited");
    assert_eq!(
        texts(h.sent_chats(other)),
        ["two"],
        "passing it on does not wait"
    );
    let question = Summary::asking((id_of(AUTHOR), FAR_EPOCH, vec![(0, 1), (2, 3)]));
    for peer in [from, other] {
        assert_eq!(
            h.sent_summaries(peer),
            std::slice::from_ref(&question),
            "every peer is asked"
        );
    }
    h.send(other, &chat(1, 4, "one"));
    assert_eq!(h.sent_lines(client), ["<them> one", "<them> two"]);
    h.advance(ORDER_WAIT);
    assert!(h.sent(client).is_empty(), "nothing was left waiting");
    assert_eq!(h.status(client, "missing"), "0");
}

#[test]
fn a_line_waits_a_second_at_most_then_comes_with_word_of_the_gap() {
    let mut h = Harness::new();
    let from = h.peer(1);
    let client = h.client();
    h.send(from, &chat(0, 4, "zero"));
    h.send(from, &chat(3, 4, "three"));
    assert_eq!(h.sent_lines(client), ["<them> zero"]);
    assert_eq!(h.status(client, "held"), "1");
    h.advance(ORDER_WAIT - Duration::from_millis(1));
    assert!(h.sent(client).is_empty());
    h.advance(Duration::from_millis(1));
    let gap = format!("* 2 lines of them ({}) are missing", id_of(AUTHOR));
    assert_eq!(h.sent_lines(client), [gap.as_str(), "<them> three"]);
    assert_eq!(h.status(client, "missing"), "2");
    // Should the gap come after all, it is shown then.
    h.send(from, &THEM.batch(1, 4, &["one", "two"]));
    assert_eq!(h.sent_lines(client), ["<them> one", "<them> two"]);
}

#[test]
fn a_run_started_after_the_node_is_shown_from_its_line_0() {
    let mut h = Harness::new();
    let from = h.peer(1);
    let client = h.client();
    let young = Writer {
        epoch: EPOCH + 1,
        ..THEM
    };
    h.send(from, &young.batch(1, 4, &["second"]));
    assert!(
        h.sent(client).is_empty(),
        "all of it is news: line 0 is awaited"
    );
    let question = Summary::asking((id_of(AUTHOR), EPOCH + 1, vec![(1, 2)]));
    assert_eq!(h.sent_summaries(from), [question]);
    h.send(from, &young.batch(0, 4, &["first"]));
    assert_eq!(h.sent_lines(client), ["<them> first", "<them> second"]);
}

#[test]
fn a_run_older_than_the_node_heard_mid_way_is_shown_after_the_wait_with_nothing_missing() {
    let mut h = Harness::new();
    let from = h.peer(1);
    let client = h.client();
    h.send(from, &chat(5, 4, "five"));
    assert!(h.sent(client).is_empty(), "the lines before it may be news");
    let question = Summary::asking((id_of(AUTHOR), FAR_EPOCH, vec![(5, 6)]));
    assert_eq!(h.sent_summaries(from), [question]);
    h.advance(ORDER_WAIT);
    assert_eq!(
        h.sent_lines(client),
        ["<them> five"],
        "no word of lines 0 to 4"
    );
    h.send(from, &chat(6, 4, "six"));
    assert_eq!(h.sent_lines(client), ["<them> six"]);
}

#[test]
fn an_older_runs_lines_from_before_the_node_started_are_history_not_news() {
    let mut h = Harness::new();
    let from = h.peer(1);
    let client = h.client();
    h.send(from, &chat(2, 4, "news"));
    // The answer to the node's question: lines written a minute before it started.
    let before = Writer {
        time_ms: START_MS - 60_000,
        ..THEM
    };
    let history = before.record(0, &["history", "more history"]);
    h.send(from, &batch(HOP_LIMIT, true, &history));
    assert_eq!(
        h.sent_lines(client),
        ["<them> news"],
        "at once: the news begins at 2"
    );
    h.say(client, "/history");
    assert_eq!(
        h.sent_lines(client).len(),
        4,
        "history, kept: three lines and the count"
    );
}

// Catch-up: the summaries linked nodes compare, and what each sends the other.

#[test]
fn linked_peers_are_told_what_the_node_holds_on_link_up_and_30_s_after_new_lines() {
    let mut h = Harness::new();
    let from = h.peer(1);
    let client = h.client();
    h.send(from, &THEM.batch(0, 4, &["zero", "one", "two"]));
    h.say(client, "mine");
    let holds = Summary::whole(vec![
        (id_of(ME), EPOCH, vec![(0, 1)]),
        (id_of(AUTHOR), FAR_EPOCH, vec![(0, 3)]),
    ]);
    let newcomer = h.shaken(2);
    h.send(newcomer, &hello(0, 1));
    assert_eq!(
        h.sent_summaries(newcomer),
        std::slice::from_ref(&holds),
        "on link up"
    );
    h.advance(SYNC_INTERVAL - Duration::from_millis(1));
    assert!(h.sent_summaries(from).is_empty());
    h.advance(Duration::from_millis(1));
    for peer in [from, newcomer] {
        assert_eq!(
            h.sent_summaries(peer),
            std::slice::from_ref(&holds),
            "30 s after the lines"
        );
        h.send(peer, &frame(Message::encode_pong));
    }
    h.advance(SYNC_INTERVAL);
    for peer in [from, newcomer] {
        assert!(h.sent_summaries(peer).is_empty(), "no new lines, no round");
        assert!(!h.closed(peer));
    }
}

/// The lines of `chats` by author, each author's in the order they were sent: authors
/// are caught up one after another, in an order no test relies on.
fn by_author(chats: &[SentChat]) -> BTreeMap<NodeId, Vec<u64>> {
    let mut lines: BTreeMap<NodeId, Vec<u64>> = BTreeMap::new();
    for chat in chats {
        lines.entry(chat.origin).or_default().push(chat.seq);
    }
    lines
}

/// A node holding lines 0 and 1 of [`THEM`] in one record, 2 in another, and one line
/// of its own; and a peer linked since, which has been told none of them.
fn holding_three_lines_and_one_of_its_own() -> (Harness, ConnId) {
    let mut h = Harness::new();
    let from = h.peer(1);
    let client = h.client();
    h.send(from, &THEM.batch(0, 4, &["zero", "one"]));
    h.send(from, &THEM.batch(2, 4, &["two"]));
    h.say(client, "mine");
    let newcomer = h.peer(2);
    (h, newcomer)
}

/// A summary naming one run of the far author by its seen ranges.
fn have_ranges(ranges: &[(u64, u64)], whole: bool) -> Vec<u8> {
    let entry = HaveEntry {
        author: id_of(AUTHOR).0,
        epoch: FAR_EPOCH,
        ranges: ranges.to_vec(),
    };
    let mut out = Vec::new();
    Have::encode(&mut out, &[entry], whole);
    out
}

#[test]
fn a_gap_that_nobody_holds_costs_nothing_on_later_rounds() {
    // Both ends hold lines 0 and 2 of the run and neither holds line 1: whatever the
    // comparison says about where the unbroken run ends, nothing is resent.
    let mut h = Harness::new();
    let from = h.peer(1);
    h.send(from, &THEM.batch(0, 4, &["zero"]));
    h.send(from, &THEM.batch(2, 4, &["two"]));
    let newcomer = h.peer(2);
    h.send(newcomer, &have_ranges(&[(0, 1), (2, 3)], false));
    assert!(h.sent_chats(newcomer).is_empty());
    h.send(newcomer, &have_ranges(&[(0, 1)], false));
    let sent = h.sent_chats(newcomer);
    assert_eq!(by_author(&sent), BTreeMap::from([(id_of(AUTHOR), vec![2])]));
}

#[test]
fn a_node_that_writes_nothing_asks_for_what_a_peers_summary_shows_it_lacks() {
    let mut h = Harness::new();
    let from = h.peer(1);
    // Just after link up the peer is answering this node's own summary: no question.
    h.send(from, &have_ranges(&[(0, 3)], true));
    assert!(h.sent_summaries(from).is_empty());
    // Later, a round of the peer's alone: the node asks about the run it lacks.
    h.advance(Duration::from_secs(31));
    h.send(from, &have_ranges(&[(0, 3)], true));
    let question = Summary::asking((id_of(AUTHOR), FAR_EPOCH, vec![]));
    assert_eq!(h.sent_summaries(from), [question]);
    // What the node has already, it does not ask for.
    h.send(from, &THEM.batch(0, 4, &["zero", "one", "two"]));
    h.advance(Duration::from_secs(31));
    h.sent_summaries(from);
    h.send(from, &have_ranges(&[(0, 3)], true));
    assert!(h.sent_summaries(from).is_empty());
}

#[test]
fn a_catch_up_never_holds_the_other_connections_back() {
    let mut h = Harness::new();
    let from = h.peer(1);
    let client = h.client();
    let text = "c".repeat(4000);
    for i in 0..7 {
        let record = THEM.record(i * 12, &[text.as_str(); 12]);
        h.send(from, &batch(4, false, &record));
    }
    h.sent(client);
    let newcomer = h.peer(2);
    h.send(newcomer, &have(&[], true));
    for _ in 0..4 {
        assert!(
            h.node.accepts_input(client) && h.node.accepts_input(from),
            "the client and the other peer are read while the newcomer catches up"
        );
        h.sent_chats(newcomer);
    }
}

#[test]
fn a_whole_summary_is_answered_with_the_records_the_peer_lacks_marked_late() {
    let (mut h, newcomer) = holding_three_lines_and_one_of_its_own();
    // It holds THEM's lines below 2, and nothing of the node's own run: it does not
    // name it.
    h.send(newcomer, &have(&[(AUTHOR, FAR_EPOCH, 2)], true));
    let sent = h.sent_chats(newcomer);
    let expected = BTreeMap::from([(id_of(AUTHOR), vec![2]), (id_of(ME), vec![0])]);
    assert_eq!(by_author(&sent), expected);
    assert!(
        sent.iter().all(|c| c.late && c.hops == HOP_LIMIT),
        "{sent:?}"
    );

    h.send(
        newcomer,
        &have(&[(AUTHOR, FAR_EPOCH, 3), (ME, EPOCH, 1)], true),
    );
    assert!(h.sent_frames(newcomer).is_empty(), "it lacks nothing");
}

#[test]
fn a_question_about_one_run_is_answered_for_that_run_alone_in_whole_records() {
    let (mut h, newcomer) = holding_three_lines_and_one_of_its_own();
    h.send(newcomer, &have(&[(AUTHOR, FAR_EPOCH, 1)], false));
    let sent = h.sent_chats(newcomer);
    assert_eq!(
        by_author(&sent),
        BTreeMap::from([(id_of(AUTHOR), vec![0, 1, 2])]),
        "line 1 comes in its record, with line 0; the node's own run was not asked about"
    );
    assert!(sent.iter().all(|c| c.late));
}

#[test]
fn catch_up_fills_a_link_to_a_quarter_of_the_pause_mark_and_goes_on_as_it_drains() {
    let mut h = Harness::new();
    let from = h.peer(1);
    let text = "c".repeat(4000);
    // Seven records of some 48 KiB: more than the mark.
    let records: Vec<Vec<u8>> = (0..7)
        .map(|i| THEM.record(i * 12, &[text.as_str(); 12]))
        .collect();
    for record in &records {
        h.send(from, &batch(4, false, record));
    }
    let newcomer = h.peer(2);
    h.send(newcomer, &have(&[], true));
    let queued = h.node.queued(newcomer);
    let one_more = batch(HOP_LIMIT, true, &records[0]).len();
    assert!(
        (CATCH_UP_MARK..CATCH_UP_MARK + one_more).contains(&queued),
        "records go in until the mark is passed: {queued}"
    );
    // Each drain of the queue lets the next records in, until none is left.
    let mut rounds = Vec::new();
    loop {
        let sent = h.sent_chats(newcomer);
        if sent.is_empty() {
            break;
        }
        rounds.push(sent);
    }
    assert!(
        rounds.len() >= 3,
        "the rest as it drained: {} rounds",
        rounds.len()
    );
    let lines: Vec<u64> = rounds.iter().flatten().map(|c| c.seq).collect();
    assert_eq!(
        lines,
        (0..84).collect::<Vec<_>>(),
        "every line once, in order"
    );
    assert!(rounds.iter().flatten().all(|c| c.late));
}

#[test]
fn caught_up_lines_written_over_5_s_ago_are_introduced_as_late_once_per_run_of_them() {
    let mut h = Harness::new();
    let (from, onward) = (h.peer(1), h.peer(2));
    let client = h.client();
    h.advance(Duration::from_secs(6));
    h.sent(client);
    let caught_up = |writer: Writer, first, texts: &[&str]| {
        batch(HOP_LIMIT, true, &writer.record(first, texts))
    };
    let written_at = |ms_after_start| Writer {
        time_ms: START_MS + ms_after_start,
        ..THEM
    };
    // Written when the node started, 6 s ago.
    h.send(from, &caught_up(THEM, 0, &["old", "also old"]));
    h.send(from, &written_at(6_000).batch(2, HOP_LIMIT, &["new"]));
    // Caught up as well, but written 2 s ago: no news to anyone.
    h.send(from, &caught_up(written_at(4_000), 3, &["recent"]));
    h.send(from, &caught_up(OTHER, 0, &["old too"]));
    assert_eq!(
        h.sent_lines(client),
        [
            LATE_LINES,
            "<them> old",
            "<them> also old",
            "<them> new",
            "<them> recent",
            LATE_LINES,
            "<other> old too"
        ]
    );
    let relayed: Vec<(bool, u8)> = (h.sent_chats(onward).iter())
        .map(|c| (c.late, c.hops))
        .collect();
    let late = (true, HOP_LIMIT - 1);
    let live = (false, HOP_LIMIT - 1);
    assert_eq!(
        relayed,
        [late, late, live, late, late],
        "the flag kept, a hop used"
    );
}

// Nicks, history and status.

#[test]
fn a_nick_is_held_by_the_first_key_seen_with_it_and_shown_with_an_id_for_others() {
    let mut h = Harness::new();
    let from = h.peer(1);
    let (writer, reader) = (h.client(), h.client());
    h.sent(reader);
    let tag = |key: u8| id_of(key).to_string()[..4].to_owned();
    assert!(
        tag(78) != tag(AUTHOR) && tag(78) != tag(ME),
        "four hex digits tell these ids apart"
    );
    h.say(writer, "i am me");
    h.send(from, &chat(0, 4, "i am them"));
    let impostor = Writer {
        nick: "them",
        ..OTHER
    };
    h.send(from, &impostor.batch(0, 4, &["i am them too"]));
    h.send(
        from,
        &Writer {
            nick: "me",
            ..OTHER
        }
        .batch(1, 4, &["and me"]),
    );
    assert_eq!(
        h.sent_lines(reader),
        [
            "<me> i am me".to_owned(),
            "<them> i am them".to_owned(),
            format!("<them#{}> i am them too", tag(78)),
            format!("<me#{}> and me", tag(78)),
        ]
    );
}

#[test]
fn history_lists_the_newest_lines_oldest_first_with_when_they_were_written() {
    let mut h = Harness::new();
    let from = h.peer(1);
    let client = h.client();
    h.say(client, "one");
    h.advance(Duration::from_secs(1));
    let a_second_in = Writer {
        time_ms: START_MS + 1_000,
        ..THEM
    };
    h.send(from, &a_second_in.batch(0, 4, &["two"]));
    h.advance(Duration::from_secs(1));
    h.say(client, "three");
    h.sent(client);
    h.say(client, "/history");
    assert_eq!(
        h.sent_lines(client),
        [
            "* history 2026-12-01T21:31:43Z <me> one",
            "* history 2026-12-01T21:31:44Z <them> two",
            "* history 2026-12-01T21:31:45Z <me> three",
            "* 3 lines",
        ]
    );
    h.say(client, "/history 2");
    assert_eq!(
        h.sent_lines(client),
        [
            "* history 2026-12-01T21:31:44Z <them> two",
            "* history 2026-12-01T21:31:45Z <me> three",
            "* 2 lines",
        ]
    );
}

#[test]
fn history_shows_20_lines_unless_told_and_1000_at_most() {
    let mut h = Harness::new();
    let client = h.client();
    h.say(client, "/history");
    assert_eq!(h.sent_lines(client), ["* 0 lines"]);
    let burst: String = (0..1001).map(|i| format!("line {i}\n")).collect();
    h.recv(client, burst.as_bytes());
    h.say(client, "/history");
    let shown = h.sent_lines(client);
    assert_eq!(shown.len(), 21);
    assert!(shown[0].ends_with(" <me> line 981"), "{}", shown[0]);
    assert_eq!(shown[20], "* 20 lines");
    h.say(client, "/history 5000");
    let shown = h.sent_lines(client);
    assert_eq!(shown.len(), 1001);
    assert!(shown[0].ends_with(" <me> line 1"), "{}", shown[0]);
    assert_eq!(shown[1000], "* 1000 lines");
}

#[test]
fn status_reports_the_logs_and_their_bounds() {
    let mut h = Harness::new();
    let from = h.peer(1);
    let client = h.client();
    let (first, after_a_gap) = (THEM.record(0, &["zero", "one"]), THEM.record(3, &["three"]));
    h.send(from, &batch(4, false, &first));
    h.send(from, &batch(4, false, &after_a_gap));
    h.send(from, &batch(4, false, &first));
    h.say(client, "/status");
    let status = h.sent_lines(client);
    let backlog_bytes = format!("* backlog-bytes {}", first.len() + after_a_gap.len());
    let expected = [
        "* messages 3",
        "* duplicates 2",
        "* forged 0",
        "* missing 0",
        "* refused 0",
        "* held 1",
        "* authors 2",
        "* max-authors 16384",
        "* backlog-lines 3",
        &backlog_bytes,
        "* backlog-max-lines 100000",
        "* backlog-max-bytes 67108864",
        "* backlog-max-age 86400",
    ];
    for line in expected {
        assert!(status.iter().any(|l| l == line), "{line}: {status:?}");
    }
    assert!(
        !status.iter().any(|l| l.starts_with("* dedup-capacity ")),
        "gone with the table of message ids"
    );
    h.advance(ORDER_WAIT);
    assert_eq!(h.status(client, "held"), "0");
    assert_eq!(h.status(client, "missing"), "1");
}

// Keepalive.

#[test]
fn quiet_link_is_pinged_and_a_silent_peer_dropped() {
    let mut h = Harness::new();
    let peer = h.peer(1);
    h.advance(Duration::from_secs(14));
    assert!(
        h.sent_frames(peer).is_empty(),
        "not quiet for long enough yet"
    );
    h.advance(Duration::from_secs(2));
    assert_eq!(h.sent_frames(peer), [Message::Ping]);
    h.advance(Duration::from_secs(15));
    assert_eq!(h.sent_frames(peer), [Message::Ping], "again each interval");
    h.advance(Duration::from_secs(13));
    assert!(!h.closed(peer));
    h.advance(Duration::from_secs(2));
    assert!(h.closed(peer), "45 s without a byte");
    assert_eq!(h.node.poll_timeout(), None);
}

#[test]
fn any_bytes_from_a_peer_keep_its_link_alive() {
    let mut h = Harness::new();
    let peer = h.peer(1);
    h.advance(Duration::from_secs(40));
    h.send(peer, &frame(Message::encode_pong));
    h.sent_frames(peer);
    h.advance(Duration::from_secs(40));
    assert!(!h.closed(peer), "heard from 40 s ago");
    h.advance(Duration::from_secs(6));
    assert!(h.closed(peer));
}

#[test]
fn ping_is_answered_with_a_pong() {
    let mut h = Harness::new();
    let peer = h.peer(1);
    h.send(peer, &frame(Message::encode_ping));
    assert_eq!(h.sent_frames(peer), [Message::Pong]);
}

// Discovery.

fn discovering() -> Harness {
    let mut cfg = config(ME);
    cfg.discovery = true;
    cfg.target_peers = 2;
    Harness::with(cfg)
}

/// An inbound peer, node `key`, that says it accepts peers on `port`.
fn listening_peer(h: &mut Harness, key: u8, port: u16) -> ConnId {
    let conn = h.shaken(key);
    h.send(conn, &hello(port, 1));
    conn
}

fn addrs_frame(addrs: &[SocketAddr]) -> Vec<u8> {
    let mut out = Vec::new();
    Message::encode_addrs(&mut out, addrs.iter().copied());
    out
}

fn sent_addrs(h: &mut Harness, peer: ConnId) -> Vec<SocketAddr> {
    h.sent_frames(peer)
        .into_iter()
        .flat_map(|m| match m {
            Message::Addrs(addrs) => addrs.iter().collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_new_link_learns_where_the_others_listen_and_they_where_it_does() {
    let mut h = discovering();
    let a = listening_peer(&mut h, 1, 9001);
    assert!(sent_addrs(&mut h, a).is_empty(), "nobody else to tell of");
    let b = listening_peer(&mut h, 2, 9002);
    assert_eq!(sent_addrs(&mut h, b), [addr(9001)]);
    assert_eq!(sent_addrs(&mut h, a), [addr(9002)]);
    let c = listening_peer(&mut h, 3, 0);
    let mut told = sent_addrs(&mut h, c);
    told.sort();
    assert_eq!(told, [addr(9001), addr(9002)]);
    assert!(sent_addrs(&mut h, a).is_empty(), "c accepts no peers");
}

#[test]
fn learned_addresses_are_dialled_up_to_the_target_and_never_its_own() {
    let mut h = discovering();
    let a = listening_peer(&mut h, 1, 0);
    h.take_outputs();
    h.send(a, &addrs_frame(&[addr(7654), addr(1), addr(2), addr(3)]));
    h.advance(Duration::from_millis(300));
    let dialled = dials(h.take_outputs());
    assert_eq!(
        dialled.len(),
        1,
        "the target, the accepted link counted: {dialled:?}"
    );
    assert!(
        !dialled.contains(&addr(7654).to_string()),
        "its own address"
    );
}

fn dials(outputs: Vec<Output>) -> Vec<String> {
    (outputs.into_iter())
        .filter_map(|o| match o {
            Output::Dial { target, .. } => Some(target),
            _ => None,
        })
        .collect()
}

#[test]
fn a_learned_address_that_keeps_failing_is_forgotten() {
    let mut h = discovering();
    let a = listening_peer(&mut h, 1, 0);
    let client = h.client();
    h.send(a, &addrs_frame(&[addr(5)]));
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    for _ in 0..3 {
        let (dial, target, _) = next_dial(&mut h, Duration::from_secs(1)).expect("dialled");
        assert_eq!(target, addr(5).to_string());
        h.node.handle_error(h.now, dial, &refused);
        h.drain();
    }
    assert!(next_dial(&mut h, Duration::from_secs(5)).is_none());
    assert_eq!(h.status(client, "known-addresses"), "0");
}

// Mixing.

fn walk(hops: u8, addr: Option<SocketAddr>) -> Vec<u8> {
    let mut out = Vec::new();
    Walk { hops, addr }.encode(&mut out);
    out
}

fn sent_walks(h: &mut Harness, peer: ConnId) -> Vec<Walk> {
    (h.sent_frames(peer).into_iter())
        .filter_map(|m| match m {
            Message::Walk(walk) => Some(walk),
            _ => None,
        })
        .collect()
}

#[test]
fn a_node_sends_twenty_walks_after_it_starts_and_then_no_more() {
    let mut h = discovering();
    let a = listening_peer(&mut h, 1, 9001);
    let mut walks = Vec::new();
    // Gaps of up to 3 s: all 20 are sent within a minute, and none in the next.
    for _ in 0..1200 {
        h.advance(Duration::from_millis(100));
        walks.extend(sent_walks(&mut h, a));
    }
    // The first step knows how the node is reached; the node itself may not.
    assert_eq!(
        walks,
        [Walk {
            hops: 6,
            addr: None
        }; 20]
    );

    let mut cfg = config(ME);
    (cfg.discovery, cfg.listen_addr) = (true, None);
    let mut h = Harness::with(cfg);
    let a = listening_peer(&mut h, 1, 9001);
    h.advance(Duration::from_secs(60));
    assert!(sent_walks(&mut h, a).is_empty(), "nobody could dial it");
}

#[test]
fn a_node_with_half_again_its_target_of_links_lets_its_walks_pass() {
    // Target 2: with three links, every walk would be a fourth link here.
    let mut h = discovering();
    let peers: Vec<ConnId> = (1..=3)
        .map(|k| listening_peer(&mut h, k, 9000 + u16::from(k)))
        .collect();
    h.advance(Duration::from_secs(120));
    for peer in peers {
        assert!(sent_walks(&mut h, peer).is_empty());
    }
}

#[test]
fn a_walk_goes_on_with_one_step_less_and_the_address_its_first_step_saw() {
    let mut h = discovering();
    let a = listening_peer(&mut h, 1, 9001);
    let b = listening_peer(&mut h, 2, 9002);
    h.send(a, &walk(3, None));
    let on = Walk {
        hops: 2,
        addr: Some(addr(9001)),
    };
    assert_eq!(sent_walks(&mut h, b), [on]);
    h.send(a, &walk(3, None));
    assert!(sent_walks(&mut h, b).is_empty(), "too soon after the last");
    h.advance(Duration::from_millis(300));
    h.send(a, &walk(200, Some(addr(5))));
    let capped = Walk {
        hops: 5,
        addr: Some(addr(5)),
    };
    assert_eq!(sent_walks(&mut h, b), [capped], "six steps at the most");
}

#[test]
fn a_walk_that_ends_here_is_dialled_unless_it_leads_to_this_node_or_a_peer() {
    let mut h = discovering();
    let a = listening_peer(&mut h, 1, 9001);
    h.take_outputs();
    for (addr, dialled) in [
        (Some(addr(7654)), false),
        (None, false),
        (Some(addr(5)), true),
    ] {
        // With no other peer, a walk ends here whatever its steps left.
        h.send(a, &walk(4, addr));
        let expected = if dialled {
            vec![addr.unwrap().to_string()]
        } else {
            vec![]
        };
        assert_eq!(dials(h.take_outputs()), expected, "{addr:?}");
        h.advance(Duration::from_millis(300));
    }
}

#[test]
fn a_walk_that_ends_at_a_node_with_its_target_and_no_link_to_give_up_is_not_dialled() {
    // Target 2, and both links accepted: a dial would add a link, not swap one.
    let mut h = discovering();
    let a = listening_peer(&mut h, 1, 9001);
    listening_peer(&mut h, 2, 9002);
    h.take_outputs();
    h.send(a, &walk(0, Some(addr(5))));
    assert!(dials(h.take_outputs()).is_empty());
}

#[test]
fn a_peer_that_floods_walks_makes_the_node_dial_four_addresses_a_second_at_most() {
    let mut cfg = config(ME);
    (cfg.discovery, cfg.target_peers) = (true, 64);
    let mut h = Harness::with(cfg);
    let a = listening_peer(&mut h, 1, 9001);
    let mut dialled = 0;
    for port in 0..100 {
        h.send(a, &walk(0, Some(addr(10_000 + port))));
        dialled += dials(h.take_outputs()).len();
        h.now += Duration::from_millis(10);
    }
    assert_eq!(dialled, 4, "one walk per 250 ms in one second");
}

/// The dialled `conn` reaches node `key` at `at`, which says hello.
fn answered_at(h: &mut Harness, conn: ConnId, key: u8, at: SocketAddr) {
    h.node.handle_connected(h.now, conn, at);
    h.drain();
    h.far.insert(conn, Far::answering(key));
    h.pump(conn);
    h.send(conn, &hello(at.port(), 0));
}

#[test]
fn a_dialled_link_over_the_target_gives_up_the_oldest_other_dialled_link() {
    let mut cfg = config(ME);
    (cfg.discovery, cfg.target_peers) = (true, 3);
    let mut h = Harness::with(cfg);
    let a = listening_peer(&mut h, 1, 9001);
    let mut dialled: Vec<ConnId> = Vec::new();
    for (key, port) in [(2, 5), (3, 6), (4, 7), (5, 8)] {
        h.advance(Duration::from_millis(300));
        h.send(a, &walk(0, Some(addr(port))));
        let (conn, _, _) = next_dial(&mut h, Duration::ZERO).expect("the walk's end dials");
        answered_at(&mut h, conn, key, addr(port));
        // Up to the target of three, then over it: of two dialled ones, the older
        // goes; the accepted link stays.
        // Each step's own outputs: one given up earlier is not closed again.
        let given_up: Vec<bool> = dialled.iter().map(|&c| h.closed(c)).collect();
        let expected = match dialled.len() {
            0 | 1 => vec![false; dialled.len()],
            2 => vec![true, false],
            _ => vec![false, true, false],
        };
        assert_eq!(given_up, expected, "after the link to {port}");
        assert!(!h.closed(a) && !h.closed(conn));
        dialled.push(conn);
    }
}

// Dialling.

#[test]
fn dial_asks_the_driver_and_reports_failure_to_the_asking_client() {
    let mut h = Harness::new();
    let client = h.client();
    h.say(client, "/connect example.org:7654");
    let dial = h.take_outputs().into_iter().find_map(|o| match o {
        Output::Dial { conn, target } => Some((conn, target)),
        _ => None,
    });
    let (conn, target) = dial.expect("a dial");
    assert_eq!(target, "example.org:7654");
    assert_eq!(h.sent_lines(client), ["* connecting to example.org:7654"]);

    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    h.node.handle_error(h.now, conn, &refused);
    h.drain();
    assert!(h.closed(conn));
    let lines = h.sent_lines(client);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("! cannot connect to example.org:7654: "),
        "{lines:?}"
    );
}

#[test]
fn dial_that_never_connects_times_out() {
    let mut cfg = config(ME);
    cfg.connect = vec!["unreachable.invalid:1".into()];
    let mut h = Harness::with(cfg);
    let Some(Output::Dial { conn, .. }) = h.take_outputs().pop() else {
        panic!("a dial at start");
    };
    h.advance(Duration::from_secs(9));
    assert!(!h.closed(conn));
    h.advance(Duration::from_secs(2));
    assert!(h.closed(conn));
}

/// Steps the clock by 100 ms until the node asks to dial; returns the dial and how long
/// it took, or `None` after `patience`.
fn next_dial(h: &mut Harness, patience: Duration) -> Option<(ConnId, String, Duration)> {
    let start = h.now;
    while h.now - start <= patience {
        let dial = h.take_outputs().into_iter().find_map(|o| match o {
            Output::Dial { conn, target } => Some((conn, target)),
            _ => None,
        });
        if let Some((conn, target)) = dial {
            return Some((conn, target, h.now - start));
        }
        h.advance(Duration::from_millis(100));
    }
    None
}

fn dialling(target: &str) -> (Harness, ConnId) {
    let mut cfg = config(ME);
    cfg.connect = vec![target.into()];
    let mut h = Harness::with(cfg);
    let (conn, _, _) = next_dial(&mut h, Duration::ZERO).expect("a dial at start");
    (h, conn)
}

#[test]
fn address_given_by_hand_is_dialled_again_with_growing_backoff() {
    let (mut h, mut conn) = dialling("peer.example:7654");
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    // Failure n waits 2^n s, jittered down by up to half, capped at a minute.
    for (failure, cap) in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 60), (7, 60)] {
        h.node.handle_error(h.now, conn, &refused);
        h.drain();
        let (next, target, waited) =
            next_dial(&mut h, Duration::from_secs(61)).expect("dialled again");
        assert_eq!(target, "peer.example:7654");
        let cap = Duration::from_secs(cap);
        assert!(
            waited >= cap / 2 - Duration::from_millis(100) && waited <= cap,
            "failure {failure}: waited {waited:?}"
        );
        conn = next;
    }
}

/// How long after losing a link that was up for `up` the node dials its address again.
fn redial_after_link_up_for(up: Duration) -> Duration {
    let (mut h, conn) = dialling("peer.example:7654");
    h.answer(conn, Far::answering(0x77));
    h.send(conn, &hello(0, 0));
    h.advance(up);
    h.eof(conn);
    let (_, target, waited) = next_dial(&mut h, Duration::from_secs(3)).expect("redialled");
    assert_eq!(target, "peer.example:7654");
    waited
}

#[test]
fn lost_link_to_an_address_given_by_hand_is_redialled_within_a_second() {
    let waited = redial_after_link_up_for(Duration::from_secs(10));
    assert!(waited <= Duration::from_secs(1), "{waited:?}");
}

#[test]
fn link_that_drops_soon_after_coming_up_backs_off_like_a_failed_dial() {
    // A full node that hands out addresses and closes, or a flapping link.
    let waited = redial_after_link_up_for(Duration::from_secs(1));
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
}

/// A node whose client has said `/connect target`: the node, the client and the dial.
fn connect_asked(target: &str) -> (Harness, ConnId, ConnId) {
    let mut h = Harness::new();
    let client = h.client();
    h.say(client, &format!("/connect {target}"));
    let (conn, _, _) = next_dial(&mut h, Duration::ZERO).expect("dialled");
    (h, client, conn)
}

#[test]
fn connect_that_fails_at_once_is_reported_and_not_redialled() {
    let (mut h, client, conn) = connect_asked("nosuch.invalid:1");
    let unknown = std::io::Error::new(std::io::ErrorKind::NotFound, "no such host");
    h.node.handle_error(h.now, conn, &unknown);
    h.drain();
    assert_eq!(
        h.sent_lines(client),
        [
            "* connecting to nosuch.invalid:1",
            "! cannot connect to nosuch.invalid:1: no such host"
        ]
    );
    assert!(next_dial(&mut h, Duration::from_secs(120)).is_none());
    assert_eq!(h.status(client, "peers"), "0");
}

#[test]
fn connect_that_came_up_is_redialled_whenever_lost() {
    let (mut h, _, conn) = connect_asked("peer.example:7654");
    h.answer(conn, Far::answering(0x77));
    h.send(conn, &hello(0, 0));
    h.eof(conn);
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    for _ in 0..3 {
        let (next, target, _) = next_dial(&mut h, Duration::from_secs(61)).expect("redialled");
        assert_eq!(target, "peer.example:7654");
        h.node.handle_error(h.now, next, &refused);
        h.drain();
    }
}

// Links that lead back to this node's own key.

#[test]
fn link_to_self_is_closed_at_both_ends_and_not_redialled() {
    // The node dials its own address, and accepts that very connection.
    let (mut h, out) = dialling("me.example:7654");
    h.node.handle_connected(h.now, out, addr(7654));
    h.drain();
    let inc = h.accept(addr(40000));
    h.loop_back(out, inc);
    assert!(h.closed(out) && h.closed(inc));
    assert!(next_dial(&mut h, Duration::from_secs(120)).is_none());

    // The dialling end learns it too, and tells the client that asked.
    let (mut h, client_asking, out) = connect_asked("me.example:7654");
    h.node.handle_connected(h.now, out, addr(7654));
    h.drain();
    let inc = h.accept(addr(40000));
    h.loop_back(out, inc);
    assert_eq!(
        cause_told(&mut h, client_asking),
        "link to this node itself"
    );
}

#[test]
fn another_process_with_this_nodes_key_is_told_apart_from_a_link_to_itself() {
    let (mut h, client, conn) = connect_asked("twin.example:7654");
    // The same key, another run.
    h.answer(conn, Far::answering(ME));
    h.send(conn, &hello(0, 0));
    assert!(given_up(&mut h, conn));
    assert_eq!(
        cause_told(&mut h, client),
        "the peer runs with this node's own key: two processes share one key file"
    );
    assert!(next_dial(&mut h, Duration::from_secs(120)).is_none());

    // A twin that dials in is closed at its hello as well.
    let mut h = Harness::new();
    let twin = h.shaken(ME);
    h.send(twin, &hello(0, 1));
    assert!(given_up(&mut h, twin));
}

// Limits.

#[test]
fn peers_and_clients_over_their_limits_are_refused() {
    let mut cfg = config(ME);
    cfg.limits.max_peers = 2;
    cfg.limits.max_clients = 1;
    let mut h = Harness::with(cfg);
    let (a, b) = (h.peer(1), h.peer(2));
    // A few over the limit are told so once the handshake has proved who they are,
    // then the link is given up; the next ones are closed at once.
    let refused: Vec<ConnId> = (3..20).map(|key| h.shaken(key)).collect();
    let told = &refused[..8];
    assert!(told.iter().all(|&c| !h.closed(c)));
    assert!(refused[8..].iter().all(|&c| h.closed(c)));
    assert!(!h.closed(a) && !h.closed(b));
    let third = told[0];
    match h.sent_frames(third).as_slice() {
        [Message::Hello(hello), Message::Retire] => assert!(hello.refusing),
        other => panic!("{other:?}"),
    }
    assert!(h.finished(third), "shut down once the retire is written");
    // Its hello is no violation: it is read, and the link waits for the other end.
    h.send(third, &hello(0, 1));
    h.send(third, &frame(Message::encode_retire));
    assert!(!h.closed(third));
    h.eof(third);
    assert!(h.closed(third));

    let client = h.client();
    h.say(client, "/connect peer.example:1");
    assert_eq!(
        h.sent_lines(client),
        ["! cannot connect to peer.example:1: too many peers: the limit is 2"]
    );
    let second = h.client();
    assert!(!h.closed(second), "it is told why first");
    assert_eq!(h.sent_lines(second), ["! too many clients: the limit is 1"]);
    assert!(h.closed(second));
    assert!(!h.closed(client));
}

#[test]
fn a_full_node_tells_the_refused_where_its_peers_listen() {
    let mut cfg = config(ME);
    cfg.limits.max_peers = 2;
    let mut h = Harness::with(cfg);
    listening_peer(&mut h, 1, 9001);
    listening_peer(&mut h, 2, 9002);
    let refused = h.shaken(3);
    match h.sent_frames(refused).as_slice() {
        [Message::Hello(hello), Message::Addrs(addrs), Message::Retire] => {
            assert!(hello.refusing);
            let mut told: Vec<SocketAddr> = addrs.iter().collect();
            told.sort();
            assert_eq!(told, [addr(9001), addr(9002)]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refusing_hello_makes_the_dialler_give_the_link_up_and_learn_the_addresses() {
    let (mut h, client, conn) = connect_asked("full.example:7654");
    h.answer(conn, Far::answering(3));
    h.sent_frames(conn);
    let refusal = [
        refusing_hello(),
        addrs_frame(&[addr(9001), addr(9002)]),
        frame(Message::encode_retire),
    ]
    .concat();
    h.send(conn, &refusal);
    assert_eq!(h.sent_frames(conn), [Message::Retire]);
    assert!(h.finished(conn), "after its retire");
    assert!(!h.closed(conn), "read until the full node's shutdown");
    h.eof(conn);
    assert!(h.closed(conn));
    assert_eq!(
        cause_told(&mut h, client),
        "refused: the peer has all the peers it takes"
    );
    assert_eq!(h.status(client, "known-addresses"), "2");
    assert_eq!(h.status(client, "peers"), "0", "it never came up");
}

#[test]
fn chat_on_a_refused_link_closes_it() {
    // At the full node.
    let mut cfg = config(ME);
    cfg.limits.max_peers = 1;
    let mut h = Harness::with(cfg);
    h.peer(1);
    let client = h.client();
    h.sent(client);
    let refused = h.shaken(2);
    h.send(refused, &hello(0, 1));
    h.send(refused, &chat(1, 4, "let me in"));
    assert!(h.closed(refused));
    assert!(h.sent(client).is_empty(), "the line is not taken");

    // At the dialler.
    let (mut h, client, conn) = connect_asked("full.example:7654");
    h.answer(conn, Far::answering(3));
    h.send(conn, &refusing_hello());
    h.sent_lines(client);
    h.send(conn, &chat(1, 4, "in after all"));
    assert!(h.closed(conn));
    let lines = h.sent_lines(client);
    assert!(
        !lines.iter().any(|l| l.starts_with('<')),
        "the line is not taken: {lines:?}"
    );
}

#[test]
fn connect_needs_host_and_port() {
    let mut h = Harness::new();
    let client = h.client();
    h.say(client, "/connect nowhere");
    assert_eq!(
        h.sent_lines(client),
        ["! cannot connect to nowhere: expected HOST:PORT"]
    );
    assert!(!h
        .take_outputs()
        .iter()
        .any(|o| matches!(o, Output::Dial { .. })));
}

// Clients.

#[test]
fn client_leaving_mid_line_still_sends_it() {
    let mut h = Harness::new();
    let peer = h.peer(1);
    let client = h.client();
    h.recv(client, b"one\ntwo");
    h.eof(client);
    assert_eq!(texts(h.sent_chats(peer)), ["one", "two"]);
    assert!(h.closed(client));
}

#[test]
fn quit_closes_only_the_client() {
    let mut h = Harness::new();
    let peer = h.peer(1);
    let client = h.client();
    h.say(client, "/quit");
    assert!(h.closed(client));
    assert!(!h.closed(peer));
}

#[test]
fn replies_before_quit_are_written_before_the_close() {
    let mut h = Harness::new();
    let client = h.client();
    h.recv(client, b"/peers\n/quit\nignored after quit\n");
    assert!(!h.closed(client), "its reply still waits");
    assert!(!h.node.accepts_input(client));
    assert_eq!(h.sent_lines(client), ["* 0 peers"]);
    assert!(h.closed(client), "closed once the reply is written");
    let other = h.client();
    assert_eq!(
        h.status(other, "messages"),
        "0",
        "nothing after /quit was sent"
    );
}

#[test]
fn client_that_left_without_taking_its_replies_is_closed_after_the_linger_time() {
    let mut h = Harness::new();
    let client = h.client();
    h.recv(client, b"/help\n");
    h.eof(client);
    h.advance(Duration::from_millis(4900));
    assert!(!h.closed(client));
    h.advance(Duration::from_millis(200));
    assert!(h.closed(client));
}

#[test]
fn peer_up_and_down_are_announced_to_clients() {
    let mut h = Harness::new();
    let client = h.client();
    let peer = h.peer(0xab);
    let id = id_of(0xab);
    assert_eq!(
        h.sent_lines(client),
        [format!("* peer up 127.0.0.1:40171 in {id} peer")]
    );
    h.eof(peer);
    assert_eq!(
        h.sent_lines(client),
        [format!(
            "* peer down 127.0.0.1:40171 in {id} peer: closed by the peer"
        )]
    );
}

// Backpressure and bounds.

fn small_queues() -> NodeConfig {
    let mut cfg = config(ME);
    cfg.limits.queue_pause = 1000;
    cfg.limits.peer_queue_max = 4000;
    cfg.limits.client_queue_max = 500;
    cfg
}

#[test]
fn busy_peer_pauses_local_input_instead_of_dropping_it() {
    let mut h = Harness::with(small_queues());
    let peer = h.peer(1);
    let client = h.client();
    let line = "x".repeat(100);
    // A client typing fast, read line by line for as long as the node takes input
    // (each read is a batch of its own).
    let mut typed = 0;
    let mut type_on = |h: &mut Harness| {
        while typed < 30 && h.node.accepts_input(client) {
            h.say(client, &line);
            typed += 1;
        }
        typed
    };
    assert!(type_on(&mut h) < 30, "paused while the peer is busy");
    assert!(!h.closed(client) && !h.closed(peer), "nothing is cut");

    let mut delivered = Vec::new();
    while delivered.len() < 30 {
        let chats = h.sent_chats(peer);
        assert!(
            !chats.is_empty(),
            "draining the peer lets more lines through"
        );
        delivered.extend(chats.into_iter().map(|c| c.seq));
        type_on(&mut h);
    }
    assert_eq!(
        delivered,
        (0..30).collect::<Vec<_>>(),
        "every line, none twice"
    );
    assert!(h.node.accepts_input(client), "resumed once drained");
}

#[test]
fn peer_that_stops_reading_is_cut_at_the_bound() {
    let mut h = Harness::with(small_queues());
    let (source, sink) = (h.peer(1), h.peer(2));
    // Relayed lines are never paused (that could deadlock a cycle), so the queue of a
    // peer that takes nothing grows to the bound, and the peer is cut there.
    for seq in 0..100 {
        h.send(source, &chat(seq, 5, &"y".repeat(100)));
        if h.closed(sink) {
            break;
        }
    }
    assert!(h.closed(sink));
    assert!(!h.closed(source));
}

#[test]
fn slow_readers_together_are_held_to_the_node_budget_the_slowest_cut_first() {
    let mut cfg = small_queues();
    cfg.limits.total_queue_max = 6000;
    let mut h = Harness::with(cfg);
    let source = h.peer(1);
    let (slow, slower) = (h.peer(2), h.peer(3));
    let client = h.client();
    let mut events = Vec::new();
    let mut slow_took = 0;
    for seq in 0..100 {
        h.send(source, &chat(seq, 5, &"q".repeat(100)));
        events.extend(h.sent_lines(client));
        // One of the two takes a little now and then; neither passes its own bound.
        if seq % 4 == 0 && !h.closed(slow) {
            slow_took += h.write_out(slow, 150).len();
        }
        if h.closed(slower) {
            break;
        }
    }
    assert!(slow_took > 0);
    assert!(
        h.closed(slower),
        "the longest queue is cut once all pass 6000 bytes"
    );
    assert!(!h.closed(slow));
    assert!(!h.closed(source));
    events.extend(h.sent_lines(client));
    let down = events
        .iter()
        .find(|l| l.starts_with("* peer down "))
        .expect("a peer down event");
    let victim = format!("{} peer: not reading: the longest send queue", id_of(3));
    assert!(
        down.contains(&victim) && down.ends_with("passed 6000 bytes together"),
        "{down:?}"
    );
}

#[test]
fn stalled_peer_is_cut_after_the_stall_timeout() {
    let mut h = Harness::with(small_queues());
    let peer = h.peer(1);
    let client = h.client();
    h.say(client, &"z".repeat(1200));
    assert!(!h.node.accepts_input(client));
    h.advance(Duration::from_secs(29));
    assert!(!h.closed(peer));
    h.advance(Duration::from_secs(2));
    assert!(h.closed(peer), "no byte taken for 30 s");
    assert!(h.node.accepts_input(client), "its clients go on");
}

#[test]
fn congested_peer_holds_back_reading_the_other_peers() {
    let mut h = Harness::with(small_queues());
    let (source, slow) = (h.peer(1), h.peer(2));
    let client = h.client();
    for seq in 0..8 {
        h.send(source, &chat(seq, 5, &"y".repeat(100)));
        h.sent(client);
    }
    h.sent_frames(source);
    h.sent(client);
    assert!(
        !h.node.accepts_input(source),
        "its lines would pile up on the slow peer"
    );
    assert!(
        h.node.accepts_input(slow),
        "reading it adds nothing to its own queue"
    );
    assert!(!h.node.accepts_input(client));

    let queued = h.node.send_queue(slow).len();
    h.write_out(slow, queued - 900);
    assert_eq!(h.node.queued(slow), 900);
    assert!(
        h.node.accepts_input(source),
        "drained under the mark: read again"
    );
    assert!(h.node.accepts_input(client));
}

#[test]
fn stuck_peer_stops_holding_back_the_others_so_cycles_cannot_deadlock() {
    let mut h = Harness::with(small_queues());
    let (source, stuck) = (h.peer(1), h.peer(2));
    let client = h.client();
    for seq in 0..8 {
        h.send(source, &chat(seq, 5, &"y".repeat(100)));
        h.sent(client);
    }
    assert!(!h.node.accepts_input(source) && !h.node.accepts_input(client));
    h.advance(Duration::from_millis(900));
    assert!(!h.node.accepts_input(source));
    h.advance(Duration::from_millis(200));
    assert!(
        h.node.accepts_input(source),
        "a second without progress: stuck"
    );
    assert!(h.node.accepts_input(client), "it holds back nobody");

    h.write_out(stuck, 10);
    assert!(
        h.node.accepts_input(source),
        "a trickle keeps it stuck, until it is under the mark"
    );
    h.advance(Duration::from_secs(29));
    assert!(!h.closed(stuck), "the trickle was progress");
    h.advance(Duration::from_secs(2));
    assert!(h.closed(stuck), "cut 30 s after its last progress");
}

#[test]
fn peer_reading_a_trickle_holds_the_others_back_for_a_bounded_stretch() {
    let mut h = Harness::with(small_queues());
    let (source, slow) = (h.peer(1), h.peer(2));
    for seq in 0..8 {
        h.send(source, &chat(seq, 5, &"y".repeat(100)));
    }
    // A byte every 0.9 s for 9.9 s: never a second without progress.
    for step in 1..=11 {
        h.advance(Duration::from_millis(900));
        h.write_out(slow, 1);
        assert!(
            !h.node.accepts_input(source),
            "still draining after step {step}"
        );
    }
    h.advance(Duration::from_millis(200));
    assert!(
        h.node.accepts_input(source),
        "10 s over the mark: it holds nobody back any more"
    );
    assert!(!h.closed(slow), "it is still reading");
}

#[test]
fn slow_client_holds_back_the_peers_instead_of_losing_lines() {
    let mut cfg = small_queues();
    cfg.limits.client_queue_max = 4000;
    let mut h = Harness::with(cfg);
    let source = h.peer(1);
    let reader = h.client();
    for seq in 0..10 {
        h.send(source, &chat(seq, 1, &"r".repeat(100)));
    }
    assert!(!h.closed(reader));
    assert!(
        !h.node.accepts_input(source),
        "the lines wait in the peer's socket"
    );
    assert_eq!(h.sent_lines(reader).len(), 10);
    assert!(
        h.node.accepts_input(source),
        "read again once the client caught up"
    );
}

#[test]
fn client_that_stops_reading_is_cut_at_the_bound() {
    let mut h = Harness::with(small_queues());
    let source = h.peer(1);
    let lazy = h.client();
    for seq in 0..10 {
        h.send(source, &chat(seq, 1, &"w".repeat(100)));
    }
    assert!(h.closed(lazy));
}

#[test]
fn lines_from_an_origin_over_max_rate_are_dropped_and_counted() {
    let mut cfg = config(ME);
    cfg.limits.max_rate = Some(crate::config::MaxRate {
        per_sec: 2,
        burst: 3,
    });
    let mut h = Harness::with(cfg);
    let (from, onward, client) = (h.peer(1), h.peer(2), h.client());
    for seq in 0..5 {
        h.send(from, &chat(seq, 4, &format!("line {seq}")));
    }
    // Another origin has a bucket of its own, and so do this node's own clients.
    h.send(from, &OTHER.batch(0, 4, &["from elsewhere"]));
    h.say(client, "mine");
    assert_eq!(
        texts(h.sent_chats(onward)),
        ["line 0", "line 1", "line 2", "from elsewhere", "mine"]
    );
    let heard = h.sent_lines(client);
    assert_eq!(
        heard.iter().filter(|l| l.starts_with('<')).count(),
        4,
        "the client gets what is relayed, nothing dropped: {heard:?}"
    );
    assert_eq!(h.status(client, "rate-dropped"), "2");

    // Half a second later the bucket holds one more line.
    h.advance(Duration::from_millis(500));
    h.send(from, &chat(5, 4, "line 5"));
    h.send(from, &chat(6, 4, "line 6"));
    assert_eq!(texts(h.sent_chats(onward)), ["line 5"]);
    assert_eq!(h.status(client, "rate-dropped"), "3");
    assert_eq!(h.status(client, "max-rate"), "2");
    assert_eq!(h.status(client, "max-burst"), "3");
}

#[test]
fn a_batch_passes_max_rate_on_one_token_and_its_lines_pay_for_it_afterwards() {
    let mut cfg = config(ME);
    cfg.limits.max_rate = Some(crate::config::MaxRate {
        per_sec: 2,
        burst: 3,
    });
    let mut h = Harness::with(cfg);
    let (from, onward, client) = (h.peer(1), h.peer(2), h.client());
    // Five lines signed together pass or fail together: three tokens let them pass,
    // two in debt.
    h.send(from, &THEM.batch(0, 4, &["a", "b", "c", "d", "e"]));
    h.send(from, &chat(5, 4, "f"));
    assert_eq!(texts(h.sent_chats(onward)), ["a", "b", "c", "d", "e"]);
    assert_eq!(h.status(client, "rate-dropped"), "1");
    // A second pays the debt back, and a second more earns a token.
    h.advance(Duration::from_secs(1));
    h.send(from, &chat(5, 4, "f"));
    assert!(h.sent_chats(onward).is_empty());
    h.advance(Duration::from_secs(1));
    h.send(from, &chat(5, 4, "f"));
    assert_eq!(
        texts(h.sent_chats(onward)),
        ["f"],
        "a dropped line is not taken as seen"
    );
    assert_eq!(h.status(client, "rate-dropped"), "2");
}

// Two links between the same two nodes: one is retired.

/// A second link from far end `key`, from another port, with the handshake done.
fn second_link(h: &mut Harness, key: u8) -> ConnId {
    let conn = h.incoming_from(Far::dialling(key), addr(41000 + u16::from(key)));
    h.pump(conn);
    conn
}

/// Two links from far end 1: the first up (its hello names link 5), the second with
/// its handshake done and no hello yet.
fn two_links(h: &mut Harness) -> (ConnId, ConnId) {
    let first = h.shaken(1);
    h.send(first, &hello(0, 5));
    let second = second_link(h, 1);
    (first, second)
}

#[test]
fn a_link_given_up_for_a_duplicate_says_retire_before_its_shutdown() {
    let mut h = Harness::new();
    let client = h.client();
    let (first, second) = two_links(&mut h);
    h.sent_frames(first);
    h.take_outputs();
    // The far end dialled the second link with a smaller link id: it replaces the first.
    h.send(second, &hello(0, 3));
    assert!(
        !h.done_writing(first),
        "nothing is shut down before the retire is written"
    );
    assert_eq!(h.sent_frames(first), [Message::Retire]);
    assert!(h.finished(first), "shut down once it is");
    assert!(!h.closed(first), "and read until the far end's shutdown");
    h.sent_frames(second);
    h.say(client, "after");
    assert_eq!(texts(h.sent_chats(second)), ["after"]);
    assert!(
        h.sent_frames(first).is_empty(),
        "nothing new on the old one"
    );
    h.eof(first);
    assert!(h.closed(first));
    assert!(!h.closed(second));
}

#[test]
fn lines_go_on_over_a_link_the_peer_retired_until_its_replacement_comes_up() {
    let mut h = Harness::new();
    let client = h.client();
    let (first, second) = two_links(&mut h);
    h.sent_frames(first);
    assert!(matches!(h.sent_frames(second)[..], [Message::Hello(_)]));
    // The far end has both hellos and keeps the second; ours may arrive first.
    h.send(first, &frame(Message::encode_retire));
    h.eof(first);
    assert!(!h.closed(first));
    h.say(client, "on the first");
    assert_eq!(texts(h.sent_chats(first)), ["on the first"]);
    assert!(h.sent_frames(second).is_empty(), "not up here yet");

    h.send(second, &hello(0, 3));
    assert_eq!(h.sent_frames(first), [Message::Retire]);
    assert!(h.closed(first), "the far end had shut it down already");
    h.say(client, "on the second");
    assert_eq!(texts(h.sent_chats(second)), ["on the second"]);
}

#[test]
fn a_link_the_peer_retired_is_closed_if_no_replacement_comes_up() {
    let mut h = Harness::new();
    let first = h.peer(1);
    let client = h.client();
    h.sent(client);
    h.send(first, &frame(Message::encode_retire));
    h.advance(Duration::from_millis(4900));
    assert!(!h.closed(first));
    h.advance(Duration::from_millis(200));
    assert!(h.closed(first));
    assert_eq!(
        cause_told(&mut h, client),
        "the peer gave the link up and no other came up within 5s"
    );
}

#[test]
fn anything_after_retire_on_a_retired_link_closes_it() {
    let mut h = Harness::new();
    let client = h.client();
    let (first, second) = two_links(&mut h);
    h.send(first, &frame(Message::encode_retire));
    h.send(second, &hello(0, 3));
    h.sent(client);
    assert!(!h.closed(first));
    h.send(first, &chat(1, 4, "too late"));
    assert!(h.closed(first));
    let lines = h.sent_lines(client);
    assert!(
        !lines.iter().any(|l| l.starts_with('<')),
        "the line is not taken: {lines:?}"
    );
    assert!(!h.closed(second));
}

/// Two nodes wired back to back: bytes queued on one side are fed to the other.
struct Pair {
    a: Harness,
    b: Harness,
    /// (conn on a, conn on b) for each wire between them.
    wires: Vec<(ConnId, ConnId)>,
}

impl Pair {
    fn new(a_key: u8, b_key: u8) -> Self {
        Pair {
            a: Harness::with(config(a_key)),
            b: Harness::with(config(b_key)),
            wires: Vec::new(),
        }
    }

    /// `a` dials `b` (or `b` dials `a` when `from_a` is false).
    fn dial(&mut self, from_a: bool) {
        let (dialler, acceptor) = if from_a {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        };
        let client = dialler.client();
        dialler.say(client, "/connect acceptor:1");
        let Some(out) = dialler.take_outputs().into_iter().find_map(|o| match o {
            Output::Dial { conn, .. } => Some(conn),
            _ => None,
        }) else {
            panic!("dial");
        };
        dialler.node.handle_connected(dialler.now, out, addr(1));
        dialler.drain();
        let inc = acceptor.accept(addr(2));
        self.wires
            .push(if from_a { (out, inc) } else { (inc, out) });
    }

    /// Moves what one side has queued on wire `i` to the other side, once.
    fn pass(&mut self, i: usize, a_to_b: bool) {
        let (on_a, on_b) = self.wires[i];
        if a_to_b {
            let bytes = self.a.sent(on_a);
            self.b.feed(on_b, &bytes, self.a.done_writing(on_a));
        } else {
            let bytes = self.b.sent(on_b);
            self.a.feed(on_a, &bytes, self.b.done_writing(on_b));
        }
    }

    /// Moves bytes both ways until neither side has anything queued.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for &(on_a, on_b) in &self.wires {
                let to_b = self.a.sent(on_a);
                let to_a = self.b.sent(on_b);
                moved |= self.b.feed(on_b, &to_b, self.a.done_writing(on_a));
                moved |= self.a.feed(on_a, &to_a, self.b.done_writing(on_b));
            }
            if !moved {
                return;
            }
        }
    }

    /// Both clocks move on by `by`.
    fn advance(&mut self, by: Duration) {
        self.a.advance(by);
        self.b.advance(by);
    }

    /// Wire `i` breaks: each side reads the end of stream.
    fn cut(&mut self, i: usize) {
        let (on_a, on_b) = self.wires[i];
        self.a.eof(on_a);
        self.b.eof(on_b);
    }

    /// Which wires are open on each side.
    fn open(&self) -> Vec<(bool, bool)> {
        self.wires
            .iter()
            .map(|&(on_a, on_b)| (!self.a.closed(on_a), !self.b.closed(on_b)))
            .collect()
    }
}

/// The chat lines a client of `h` has been written, with what introduces late ones.
fn heard(h: &mut Harness, client: ConnId) -> Vec<String> {
    (h.sent_lines(client).into_iter())
        .filter(|l| l.starts_with('<') || l == LATE_LINES)
        .collect()
}

#[test]
fn simultaneous_dials_leave_the_same_single_link_on_both_sides() {
    for (a_key, b_key) in [(1, 2), (2, 1)] {
        for a_first in [true, false] {
            let mut pair = Pair::new(a_key, b_key);
            pair.dial(a_first);
            pair.dial(!a_first);
            pair.settle();
            let open = pair.open();
            assert_eq!(
                open.iter().filter(|&&(a, b)| a && b).count(),
                1,
                "keys {a_key}/{b_key}, a first {a_first}: {open:?}"
            );
            assert!(
                open.iter().all(|&(a, b)| a == b),
                "both sides agree: {open:?}"
            );
            // The survivor was dialled by the node with the smaller id.
            let survivor = open.iter().position(|&(a, _)| a).expect("one survives");
            let dialled_by_a = (survivor == 0) == a_first;
            assert_eq!(dialled_by_a, id_of(a_key) < id_of(b_key));
        }
    }
}

#[test]
fn dialling_the_same_node_twice_keeps_the_first_link() {
    let mut pair = Pair::new(5, 9);
    pair.dial(true);
    pair.settle();
    pair.dial(true);
    pair.settle();
    assert_eq!(pair.open(), [(true, true), (false, false)]);
}

#[test]
fn line_in_flight_on_a_link_given_up_is_still_delivered() {
    // b's id is the smaller, so the link b dials replaces the one a dialled.
    let (small, large) = by_id(5, 9);
    let mut pair = Pair::new(large, small);
    let on_a = pair.a.client();
    pair.dial(true);
    pair.settle();
    pair.dial(false);
    pair.pass(1, B_TO_A); // b's preamble and message 1
    pair.pass(1, A_TO_B); // a's preamble and message 2
                          // Message 3 and b's hello: a has both hellos on the new link and gives the old one
                          // up, while b, which has not yet heard a's hello there, still sends on the old one.
    pair.pass(1, B_TO_A);
    let on_b = pair.b.client();
    pair.b.say(on_b, "sent on the old link");
    pair.settle();

    assert_eq!(heard(&mut pair.a, on_a), ["<me> sent on the old link"]);
    assert_eq!(pair.open(), [(false, false), (true, true)]);
}

#[test]
fn link_given_up_writes_what_it_still_holds_after_the_other_end_gave_it_up_first() {
    // b's id is the smaller, so the link b dials replaces the one a dialled.
    let (small, large) = by_id(5, 9);
    let mut pair = Pair::new(large, small);
    pair.dial(true);
    pair.settle();
    let on_a = pair.a.client();
    let (old_on_a, old_on_b) = pair.wires[0];
    pair.a.say(on_a, "queued on the old link");
    pair.dial(false);
    pair.pass(1, B_TO_A);
    pair.pass(1, A_TO_B);
    // a gives the old link up with the line still queued on it; b gives it up too once
    // a's hello arrives and, with only its retire to write, shuts it down at once.
    pair.pass(1, B_TO_A);
    pair.pass(1, A_TO_B);
    assert!(!pair.b.done_writing(old_on_b));
    pair.pass(0, B_TO_A);
    assert!(pair.b.done_writing(old_on_b), "once its retire is written");
    pair.a.eof(old_on_a);
    assert!(!pair.a.closed(old_on_a), "not before the line is written");
    let on_b = pair.b.client();
    pair.settle();
    assert_eq!(heard(&mut pair.b, on_b), ["<me> queued on the old link"]);
    assert_eq!(pair.open(), [(false, false), (true, true)]);
}

#[test]
fn line_sent_on_a_duplicate_before_the_kept_link_came_up_there_is_still_delivered() {
    // a dials b twice; the first link is kept (the smaller link id), but its handshake
    // is slow: the second comes up at b first, and b sends a line on it.
    let mut pair = Pair::new(5, 9);
    let on_a = pair.a.client();
    pair.dial(true);
    pair.dial(true);
    pair.pass(0, A_TO_B);
    pair.pass(0, B_TO_A); // a's message 3 and hello on the first link wait
    pair.pass(1, A_TO_B);
    pair.pass(1, B_TO_A);
    pair.pass(1, A_TO_B); // the second link is up at b
    let on_b = pair.b.client();
    pair.b.say(on_b, "sent on the second link");
    // The first link comes up at both ends before a reads anything more on the second:
    // a gives the second up as a duplicate that never came up here, and must still
    // read what b sent on it before b learned of the first.
    pair.pass(0, A_TO_B);
    pair.pass(0, B_TO_A);
    pair.settle();
    assert_eq!(heard(&mut pair.a, on_a), ["<me> sent on the second link"]);
    assert_eq!(pair.open(), [(true, true), (false, false)]);
}

#[test]
fn lines_written_while_the_link_was_down_reach_the_other_node_once_it_is_back() {
    let mut pair = Pair::new(5, 9);
    let (on_a, on_b) = (pair.a.client(), pair.b.client());
    pair.dial(true);
    pair.settle();
    pair.a.say(on_a, "before");
    pair.settle();
    assert_eq!(heard(&mut pair.b, on_b), ["<me> before"]);

    pair.cut(0);
    pair.a.say(on_a, "while apart");
    pair.a.say(on_a, "still apart");
    pair.advance(Duration::from_secs(6));
    pair.dial(true);
    pair.settle();
    assert_eq!(
        heard(&mut pair.b, on_b),
        [LATE_LINES, "<me> while apart", "<me> still apart"],
        "written 6 s before they arrive"
    );
    pair.a.say(on_a, "back");
    pair.settle();
    assert_eq!(
        heard(&mut pair.b, on_b),
        ["<me> back"],
        "live lines need no word"
    );
    assert_eq!(
        pair.b.status(on_b, "duplicates"),
        "0",
        "nothing was sent twice"
    );
    assert_eq!(pair.a.status(on_a, "duplicates"), "0", "nor anything back");
}

/// An announcement of the node of key [`AUTHOR`], as a frame with 4 hops left.
fn announcement(serial: u64, leaving: bool) -> Vec<u8> {
    let author = Author::new(&Secret([AUTHOR; 32]), EPOCH);
    let record = author.announce(serial, 1_796_160_703_000, leaving, 30, &["them".to_owned()]);
    let mut out = Vec::new();
    Announce::encode(&mut out, 4, &record);
    out
}

#[test]
fn an_announcement_is_checked_before_it_is_listed_or_passed_on() {
    let mut h = Harness::new();
    let (honest, onward, forger) = (h.peer(1), h.peer(2), h.peer(3));
    let client = h.client();
    h.sent_members(onward);
    let genuine = announcement(0, false);
    let mut altered = genuine.clone();
    let nick_at = altered.len() - SIGNATURE_LEN - 1;
    altered[nick_at] = b'n';
    h.send(forger, &altered);
    assert!(h.closed(forger), "a forged announcement costs the link");
    assert!(h.sent_members(onward).is_empty(), "and reaches no peer");
    h.send(honest, &genuine);
    let passed = h.sent_members(onward);
    assert_eq!(passed.len(), 1, "the genuine one is passed on");
    assert_eq!(passed[0].hops, 3);
    h.send(honest, &genuine);
    assert!(h.sent_members(onward).is_empty(), "a copy is not");
    h.advance(Duration::from_secs(1));
    let lines = h.sent_lines(client);
    assert!(
        lines.contains(&format!("* join {} them", id_of(AUTHOR))),
        "{lines:?}"
    );
    h.send(honest, &announcement(1, true));
    assert_eq!(
        h.sent_members(onward).len(),
        1,
        "a leave is passed on at once"
    );
    assert_eq!(
        h.sent_lines(client),
        [format!("* leave {} them", id_of(AUTHOR))]
    );
}

/// An ihave of lines `run` of the far author's run.
fn ihave(run: (u64, u64)) -> Vec<u8> {
    let mut out = Vec::new();
    let entry = HaveEntry {
        author: id_of(AUTHOR).0,
        epoch: FAR_EPOCH,
        ranges: vec![run],
    };
    Have::encode_ihave(&mut out, &[entry]);
    out
}

#[test]
fn a_tree_prunes_a_link_that_brings_a_copy_and_grafts_one_that_announces_a_missing_line() {
    let mut cfg = config(1);
    cfg.broadcast = Broadcast::Tree;
    let mut h = Harness::with(cfg);
    let (first, second, third) = (h.peer(2), h.peer(3), h.peer(4));
    let line = chat(0, 5, "hello");
    h.send(first, &line);
    assert_eq!(
        texts(h.sent_chats(second)),
        ["hello"],
        "every link starts eager"
    );
    h.sent_frames(third);
    h.send(second, &line);
    assert!(
        matches!(h.sent_frames(second)[..], [Message::Prune]),
        "a live copy asks its sender for ids only"
    );
    h.send(second, &frame(Message::encode_prune));
    h.send(first, &chat(1, 5, "again"));
    assert!(
        h.sent_chats(second).is_empty(),
        "a pruned link gets no line in full"
    );
    h.advance(Duration::from_millis(20));
    let announced = h.sent_frames(second);
    let [Message::IHave(have)] = &announced[..] else {
        panic!("expected the line's id, got {announced:?}");
    };
    let runs: Vec<(u64, Ranges)> = have.iter().map(|e| (e.author, e.ranges)).collect();
    assert_eq!(runs, [(id_of(AUTHOR).0, vec![(1, 2)])]);
    assert_eq!(
        texts(h.sent_chats(third)),
        ["again"],
        "eager links get it in full"
    );

    // An id of a line the node lacks: it waits for the line along the tree, then
    // asks the announcer.
    h.send(third, &ihave((2, 3)));
    h.advance(Duration::from_millis(40));
    assert!(
        h.sent_frames(third).is_empty(),
        "a line on its way is waited for"
    );
    h.sent_summaries(third);
    h.advance(Duration::from_millis(60));
    assert!(matches!(h.sent_frames(third)[..], [Message::Graft]));
    assert_eq!(
        h.sent_summaries(third),
        [Summary::asking((id_of(AUTHOR), FAR_EPOCH, vec![(0, 2)]))],
        "and asks for what it lacks"
    );
    // A graft puts a pruned link back on the tree.
    h.send(second, &frame(Message::encode_graft));
    h.send(first, &chat(3, 5, "in full"));
    assert_eq!(texts(h.sent_chats(second)), ["in full"]);
}

#[test]
fn a_flooding_node_grafts_nothing_for_an_announced_line() {
    let mut cfg = config(1);
    cfg.broadcast = Broadcast::Flood;
    let mut h = Harness::with(cfg);
    let announcer = h.peer(2);
    h.send(announcer, &ihave((0, 1)));
    h.sent_summaries(announcer);
    h.advance(Duration::from_secs(1));
    assert!(h.sent_frames(announcer).is_empty(), "no graft");
    assert!(h.sent_summaries(announcer).is_empty(), "no question");
}

#[test]
fn a_prune_is_mutual_and_spares_the_links_that_bring_most_first_copies() {
    let mut h = Harness::new();
    let client = h.client();
    let [best, other, quiet, far] = [2, 3, 4, 5].map(|key| h.peer(key));
    for seq in 0..3 {
        h.send(best, &chat(seq, 5, "along the tree"));
        h.send(other, &chat(seq, 5, "along the tree"));
    }
    assert!(
        h.sent_frames(other).contains(&Message::Prune),
        "a link that brought only copies leaves the tree"
    );
    // The best link brings a copy too: it brought the node the most lines first.
    h.send(other, &chat(3, 5, "the other way"));
    h.send(best, &chat(3, 5, "the other way"));
    assert!(!h.sent_frames(best).contains(&Message::Prune));
    assert_eq!(h.status(client, "prunes"), "1");

    // A prune from the peer takes the link off the tree here too.
    h.send(quiet, &frame(Message::encode_prune));
    h.sent_frames(quiet);
    h.sent_frames(far);
    h.send(best, &chat(4, 5, "lazily"));
    assert!(h.sent_chats(quiet).is_empty(), "ids only");
    assert_eq!(texts(h.sent_chats(far)), ["lazily"]);
    h.advance(Duration::from_millis(20));
    assert!(matches!(h.sent_frames(quiet)[..], [Message::IHave(_)]));
}

#[test]
fn a_missing_line_grafts_one_announcer_at_a_time() {
    let mut h = Harness::new();
    let client = h.client();
    let (first, second) = (h.peer(2), h.peer(3));
    h.send(first, &ihave((0, 1)));
    h.send(second, &ihave((0, 1)));
    h.sent_summaries(first);
    h.sent_summaries(second);
    h.advance(Duration::from_millis(80));
    assert!(matches!(h.sent_frames(first)[..], [Message::Graft]));
    assert!(
        h.sent_frames(second).is_empty(),
        "the second announcer waits while the first is asked"
    );
    h.advance(Duration::from_millis(40));
    assert!(
        matches!(h.sent_frames(second)[..], [Message::Graft]),
        "and is asked once the first did not answer"
    );

    // A line that comes after the first graft spares the second announcer.
    h.send(first, &ihave((1, 2)));
    h.send(second, &ihave((1, 2)));
    h.advance(Duration::from_millis(80));
    assert!(matches!(h.sent_frames(first)[..], [Message::Graft]));
    h.send(first, &chat(0, 5, "asked for"));
    h.send(first, &chat(1, 5, "asked for"));
    h.sent_frames(second);
    h.advance(Duration::from_millis(40));
    assert!(!h.sent_frames(second).contains(&Message::Graft));
    assert_eq!(h.status(client, "grafts"), "3");
}

#[test]
fn a_peer_that_floods_addresses_fills_a_sixteenth_of_the_book_at_most() {
    let mut h = Harness::new();
    let client = h.client();
    let (hostile, honest) = (h.peer(2), h.peer(3));
    let known = |h: &mut Harness| -> usize { h.status(client, "known-addresses").parse().unwrap() };
    let before = known(&mut h);
    for block in 0..16u8 {
        let mut addrs = Vec::new();
        let chosen = (0..64u8).map(|i| SocketAddr::from(([10, 9, block, i], 7654)));
        Message::encode_addrs(&mut addrs, chosen);
        h.send(hostile, &addrs);
    }
    assert_eq!(known(&mut h), before + 128 / 16, "its share and no more");
    let mut addrs = Vec::new();
    Message::encode_addrs(&mut addrs, [SocketAddr::from(([10, 8, 0, 1], 7654))]);
    h.send(honest, &addrs);
    assert_eq!(
        known(&mut h),
        before + 128 / 16 + 1,
        "another peer's word still counts"
    );
}
