//! The node's behaviour, specified through its public API alone: a small harness feeds
//! events in and reads outputs, queues and lines out, on a clock the test moves.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::NodeConfig;
use crate::wire::frame::{self, Decoder};
use crate::wire::peer::{Chat, Hello, Message, MAX_BODY_LEN};

use super::{Accepted, ConnId, Node, Output};

const ME: u64 = 0x1000;

/// One node under test and the clock it is fed.
struct Harness {
    node: Node,
    now: Instant,
    outputs: Vec<Output>,
}

/// A chat frame as it left the node, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SentChat {
    origin: u64,
    seq: u64,
    hops: u8,
    nick: String,
    text: String,
}

fn config(id: u64) -> NodeConfig {
    let mut cfg = NodeConfig::new(id, 7, "me".into());
    cfg.listen_addr = Some(addr(7654));
    cfg.hop_limit = 8;
    // Discovery has tests of its own; elsewhere its dials would only be noise.
    cfg.discovery = false;
    cfg
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn hello(node_id: u64, link_id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    Hello {
        node_id,
        // Accepting no peers, so that no peer exchange mixes with the frames under test.
        listen_port: 0,
        link_id,
        nick: "peer",
    }
    .encode(&mut out);
    out
}

fn chat(origin: u64, seq: u64, hops: u8, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    Chat {
        origin,
        seq,
        hops,
        nick: "them",
        text,
    }
    .encode(&mut out);
    out
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

    /// Whether `conn` writes no more: closed, or its writing half shut down.
    fn done_writing(&self, conn: ConnId) -> bool {
        self.closed(conn) || self.outputs.contains(&Output::Finish(conn))
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

    /// An inbound peer that has said hello as node `id`; our hello is taken off its queue.
    fn peer(&mut self, id: u64) -> ConnId {
        let conn = self
            .node
            .handle_accepted(self.now, Accepted::Peer(addr(40000 + id as u16)));
        self.drain();
        self.recv(conn, &hello(id, 0));
        let greeting = self.sent_frames(conn);
        assert!(
            matches!(greeting.as_slice(), [Message::Hello(_)]),
            "{greeting:?}"
        );
        conn
    }

    fn recv(&mut self, conn: ConnId, bytes: &[u8]) {
        self.node.handle_recv(self.now, conn, bytes);
        self.drain();
    }

    fn say(&mut self, client: ConnId, line: &str) {
        self.recv(client, format!("{line}\n").as_bytes());
    }

    /// Everything queued for `conn`, reported as written.
    fn sent(&mut self, conn: ConnId) -> Vec<u8> {
        let bytes = self.node.send_queue(conn).to_vec();
        self.node.handle_sent(self.now, conn, bytes.len());
        self.drain();
        bytes
    }

    fn sent_lines(&mut self, client: ConnId) -> Vec<String> {
        String::from_utf8(self.sent(client))
            .expect("client lines are UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn sent_frames(&mut self, peer: ConnId) -> Vec<Message<'static>> {
        let bytes = self.sent(peer);
        let mut decoder = Decoder::new(MAX_BODY_LEN);
        let mut input = &bytes[..];
        let mut frames = Vec::new();
        while let Some(body) = decoder.next(&mut input).expect("the node frames correctly") {
            let body: &'static [u8] = Box::leak(body.to_vec().into_boxed_slice());
            frames.push(Message::parse(body).expect("the node sends valid messages"));
        }
        frames
    }

    fn sent_chats(&mut self, peer: ConnId) -> Vec<SentChat> {
        self.sent_frames(peer)
            .into_iter()
            .map(|message| match message {
                Message::Chat(c) => SentChat {
                    origin: c.origin,
                    seq: c.seq,
                    hops: c.hops,
                    nick: c.nick.into(),
                    text: c.text.into(),
                },
                other => panic!("expected chat, got {other:?}"),
            })
            .collect()
    }

    fn status(&mut self, client: ConnId, key: &str) -> String {
        self.say(client, "/status");
        let prefix = format!("* {key} ");
        self.sent_lines(client)
            .iter()
            .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {key} in /status"))
    }
}

#[test]
fn both_ends_open_with_a_hello_naming_the_node() {
    let mut h = Harness::new();
    let conn = h.node.handle_accepted(h.now, Accepted::Peer(addr(1)));
    h.drain();
    assert_eq!(h.take_outputs(), [Output::Flush(conn)]);
    match h.sent_frames(conn).as_slice() {
        [Message::Hello(hello)] => {
            assert_eq!(hello.node_id, ME);
            assert_eq!(hello.listen_port, 7654);
            assert_eq!(hello.link_id, 0, "the accepting end names no link");
            assert_eq!(hello.nick, "me");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_line_goes_to_every_peer_and_every_other_client() {
    let mut h = Harness::new();
    let (p1, p2) = (h.peer(1), h.peer(2));
    let (writer, reader) = (h.client(), h.client());
    h.sent(writer);
    h.sent(reader);

    h.say(writer, "hello");
    let expected = SentChat {
        origin: ME,
        seq: 0,
        hops: 8,
        nick: "me".into(),
        text: "hello".into(),
    };
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

    h.recv(a, &chat(77, 5, 3, "hi"));
    assert_eq!(h.sent_lines(client), ["<them> hi"]);
    assert!(h.sent(a).is_empty(), "not sent back to where it came from");
    for peer in [b, c] {
        let forwarded = h.sent_chats(peer);
        assert_eq!(forwarded.len(), 1);
        assert_eq!((forwarded[0].origin, forwarded[0].seq), (77, 5));
        assert_eq!(forwarded[0].hops, 2, "one hop used");
    }

    h.recv(b, &chat(77, 5, 2, "hi"));
    assert!(h.sent(client).is_empty(), "a copy is not delivered again");
    assert!(
        h.sent(a).is_empty() && h.sent(c).is_empty(),
        "nor forwarded"
    );
    assert_eq!(h.status(client, "duplicates"), "1");
    assert_eq!(h.status(client, "messages"), "1");
}

#[test]
fn copy_of_own_line_coming_back_is_suppressed() {
    let mut h = Harness::new();
    let (a, b) = (h.peer(1), h.peer(2));
    let client = h.client();
    h.say(client, "loop");
    h.sent(a);
    h.sent(b);
    h.recv(b, &chat(ME, 0, 7, "loop"));
    assert!(h.sent(a).is_empty());
    assert!(h.sent(client).is_empty());
}

#[test]
fn peer_cannot_give_a_line_more_hops_than_this_node_would() {
    let mut h = Harness::new();
    let (a, b) = (h.peer(1), h.peer(2));
    h.recv(a, &chat(77, 1, 255, "far"));
    let forwarded = h.sent_chats(b);
    assert_eq!(forwarded[0].hops, 7, "our limit is 8, one hop used");
}

#[test]
fn last_hop_is_delivered_but_not_forwarded() {
    let mut h = Harness::new();
    let (a, b) = (h.peer(1), h.peer(2));
    let client = h.client();
    h.sent(client);
    h.recv(a, &chat(77, 1, 1, "end of the road"));
    assert_eq!(h.sent_lines(client), ["<them> end of the road"]);
    assert!(h.sent(b).is_empty());
}

#[test]
fn control_characters_from_peers_never_reach_clients() {
    let mut h = Harness::new();
    let a = h.peer(1);
    let client = h.client();
    h.sent(client);
    h.recv(a, &chat(77, 1, 1, "\u{1b}]0;pwned\u{7}"));
    assert_eq!(h.sent_lines(client), ["<them> \u{FFFD}]0;pwned\u{FFFD}"]);
}

#[test]
fn garbage_closes_that_peer_only() {
    let mut h = Harness::new();
    let (bad, good) = (h.peer(1), h.peer(2));
    let client = h.client();
    h.recv(bad, b"\xff\xff\xff\xffGET / HTTP/1.1\r\n");
    assert!(h.closed(bad));
    assert!(!h.closed(good));
    assert!(!h.node.accepts_input(bad));
    h.say(client, "still here");
    assert_eq!(h.sent_chats(good).len(), 1);
}

#[test]
fn every_malformed_message_closes_the_link() {
    let empty_frame = vec![0, 0, 0, 0];
    let mut unknown_kind = Vec::new();
    frame::encode(&mut unknown_kind, |o| o.extend_from_slice(&[42, 1, 2, 3]));
    let mut bad_magic = hello(5, 0);
    bad_magic[5..9].copy_from_slice(b"NOPE");
    let mut other_version = hello(5, 0);
    other_version[9..11].copy_from_slice(&[0, 2]);
    let cases: [(&str, Vec<u8>, bool); 6] = [
        ("empty frame", empty_frame, false),
        ("unknown kind", unknown_kind, true),
        ("bad magic", bad_magic, false),
        ("other version", other_version, false),
        ("chat before hello", chat(1, 1, 1, "x"), false),
        ("second hello", hello(5, 0), true),
    ];
    for (name, bytes, after_hello) in cases {
        let mut h = Harness::new();
        let conn = if after_hello {
            h.peer(5)
        } else {
            let conn = h.node.handle_accepted(h.now, Accepted::Peer(addr(1)));
            h.drain();
            conn
        };
        h.recv(conn, &bytes);
        assert!(h.closed(conn), "{name} must close the link");
    }
}

#[test]
fn frame_split_anywhere_is_reassembled() {
    let mut h = Harness::new();
    let a = h.peer(1);
    let client = h.client();
    h.sent(client);
    let bytes = [chat(77, 1, 2, "first"), chat(77, 2, 2, "second")].concat();
    for byte in bytes.chunks(1) {
        h.recv(a, byte);
    }
    assert_eq!(h.sent_lines(client), ["<them> first", "<them> second"]);
}

#[test]
fn silent_peer_is_dropped_at_the_handshake_deadline() {
    let mut h = Harness::new();
    let conn = h.node.handle_accepted(h.now, Accepted::Peer(addr(1)));
    h.drain();
    h.advance(Duration::from_millis(4900));
    assert!(!h.closed(conn));
    h.advance(Duration::from_millis(200));
    assert!(h.closed(conn));
    assert_eq!(
        h.node.poll_timeout(),
        None,
        "no timer outlives its connection"
    );
}

fn frame(encode: fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&mut out);
    out
}

#[test]
fn quiet_link_is_pinged_and_a_silent_peer_dropped() {
    let mut h = Harness::new();
    let peer = h.peer(1);
    h.advance(Duration::from_secs(14));
    assert!(h.sent(peer).is_empty(), "not quiet for long enough yet");
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
    h.recv(peer, &frame(Message::encode_pong));
    h.sent(peer);
    h.advance(Duration::from_secs(40));
    assert!(!h.closed(peer), "heard from 40 s ago");
    h.advance(Duration::from_secs(6));
    assert!(h.closed(peer));
}

#[test]
fn ping_is_answered_with_a_pong() {
    let mut h = Harness::new();
    let peer = h.peer(1);
    h.recv(peer, &frame(Message::encode_ping));
    assert_eq!(h.sent_frames(peer), [Message::Pong]);
}

#[test]
fn ping_before_hello_closes_the_link() {
    let mut h = Harness::new();
    let conn = h.node.handle_accepted(h.now, Accepted::Peer(addr(1)));
    h.drain();
    h.recv(conn, &frame(Message::encode_ping));
    assert!(h.closed(conn));
}

fn discovering() -> Harness {
    let mut cfg = config(ME);
    cfg.discovery = true;
    cfg.target_peers = 2;
    Harness::with(cfg)
}

/// An inbound peer that says it accepts peers on `port`.
fn listening_peer(h: &mut Harness, id: u64, port: u16) -> ConnId {
    let conn = h
        .node
        .handle_accepted(h.now, Accepted::Peer(addr(40000 + id as u16)));
    h.drain();
    let mut hello = Vec::new();
    Hello {
        node_id: id,
        listen_port: port,
        link_id: 0,
        nick: "peer",
    }
    .encode(&mut hello);
    h.recv(conn, &hello);
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
    assert_eq!(sent_addrs(&mut h, c), [addr(9001), addr(9002)]);
    assert!(sent_addrs(&mut h, a).is_empty(), "c accepts no peers");
}

#[test]
fn learned_addresses_are_dialled_up_to_the_target_and_never_its_own() {
    let mut h = discovering();
    let a = listening_peer(&mut h, 1, 0);
    h.take_outputs();
    h.recv(a, &addrs_frame(&[addr(7654), addr(1), addr(2), addr(3)]));
    h.advance(Duration::from_millis(300));
    let dialled: Vec<String> = h
        .take_outputs()
        .into_iter()
        .filter_map(|o| match o {
            Output::Dial { target, .. } => Some(target),
            _ => None,
        })
        .collect();
    assert_eq!(dialled.len(), 2, "the target: {dialled:?}");
    assert!(
        !dialled.contains(&addr(7654).to_string()),
        "its own address"
    );
}

#[test]
fn a_learned_address_that_keeps_failing_is_forgotten() {
    let mut h = discovering();
    let a = listening_peer(&mut h, 1, 0);
    let client = h.client();
    h.recv(a, &addrs_frame(&[addr(5)]));
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

#[test]
fn link_to_self_is_closed() {
    let mut h = Harness::new();
    let conn = h.node.handle_accepted(h.now, Accepted::Peer(addr(1)));
    h.drain();
    h.recv(conn, &hello(ME, 0));
    assert!(h.closed(conn));
}

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
    h.node.handle_connected(h.now, conn, addr(7654));
    h.recv(conn, &hello(0x77, 0));
    h.advance(up);
    h.node.handle_eof(h.now, conn);
    h.drain();
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
    h.node.handle_connected(h.now, conn, addr(7654));
    h.recv(conn, &hello(0x77, 0));
    h.node.handle_eof(h.now, conn);
    h.drain();
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    for _ in 0..3 {
        let (next, target, _) = next_dial(&mut h, Duration::from_secs(61)).expect("redialled");
        assert_eq!(target, "peer.example:7654");
        h.node.handle_error(h.now, next, &refused);
        h.drain();
    }
}

#[test]
fn link_that_led_back_to_this_node_is_not_redialled() {
    let (mut h, conn) = dialling("me.example:7654");
    h.node.handle_connected(h.now, conn, addr(7654));
    h.recv(conn, &hello(ME, 0));
    assert!(h.closed(conn));
    assert!(next_dial(&mut h, Duration::from_secs(120)).is_none());
}

#[test]
fn peers_and_clients_over_their_limits_are_refused() {
    let mut cfg = config(ME);
    cfg.limits.max_peers = 2;
    cfg.limits.max_clients = 1;
    let mut h = Harness::with(cfg);
    let (a, b) = (h.peer(1), h.peer(2));
    // A few over the limit hear this node's hello, then its end of stream; the next
    // ones are closed at once.
    let refused: Vec<ConnId> = (3..20)
        .map(|port| h.node.handle_accepted(h.now, Accepted::Peer(addr(port))))
        .collect();
    h.drain();
    let told = &refused[..8];
    assert!(told.iter().all(|&c| !h.closed(c)));
    assert!(refused[8..].iter().all(|&c| h.closed(c)));
    assert!(!h.closed(a) && !h.closed(b));
    let third = told[0];
    assert!(matches!(h.sent_frames(third)[..], [Message::Hello(_)]));
    assert!(h.take_outputs().contains(&Output::Finish(third)));
    // Its hello is no violation: it is read, and the link waits for the other end.
    h.recv(third, &hello(3, 1));
    assert!(!h.closed(third));
    h.node.handle_eof(h.now, third);
    h.drain();
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

#[test]
fn client_leaving_mid_line_still_sends_it() {
    let mut h = Harness::new();
    let peer = h.peer(1);
    let client = h.client();
    h.recv(client, b"one\ntwo");
    h.node.handle_eof(h.now, client);
    h.drain();
    let texts: Vec<String> = h.sent_chats(peer).into_iter().map(|c| c.text).collect();
    assert_eq!(texts, ["one", "two"]);
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
    h.node.handle_eof(h.now, client);
    h.drain();
    h.advance(Duration::from_millis(4900));
    assert!(!h.closed(client));
    h.advance(Duration::from_millis(200));
    assert!(h.closed(client));
}

#[test]
fn peer_up_and_down_are_announced_to_clients() {
    let mut h = Harness::new();
    let client = h.client();
    let peer = h.peer(0xabc);
    assert_eq!(
        h.sent_lines(client),
        ["* peer up 127.0.0.1:42748 in 0000000000000abc peer"]
    );
    h.node.handle_eof(h.now, peer);
    h.drain();
    assert_eq!(
        h.sent_lines(client),
        ["* peer down 127.0.0.1:42748 in 0000000000000abc peer: closed by the peer"]
    );
}

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
    let burst = format!("{line}\n").repeat(30);
    h.recv(client, burst.as_bytes());
    assert!(
        !h.node.accepts_input(client),
        "paused while the peer is busy"
    );
    assert!(!h.closed(client) && !h.closed(peer), "nothing is cut");

    let mut delivered = 0;
    while delivered < 30 {
        let chats = h.sent_chats(peer);
        assert!(
            !chats.is_empty(),
            "draining the peer lets more lines through"
        );
        delivered += chats.len();
    }
    assert_eq!(delivered, 30, "every line, none twice");
    assert!(h.node.accepts_input(client), "resumed once drained");
}

#[test]
fn peer_that_stops_reading_is_cut_at_the_bound() {
    let mut h = Harness::with(small_queues());
    let (source, sink) = (h.peer(1), h.peer(2));
    // Relayed lines are never paused (that could deadlock a cycle), so the queue of a
    // peer that takes nothing grows to the bound, and the peer is cut there.
    for seq in 0..100 {
        h.recv(source, &chat(77, seq, 5, &"y".repeat(100)));
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
        h.recv(source, &chat(77, seq, 5, &"q".repeat(100)));
        events.extend(h.sent_lines(client));
        // One of the two takes a little now and then; neither passes its own bound.
        if seq % 4 == 0 && !h.closed(slow) {
            let n = 150.min(h.node.send_queue(slow).len());
            h.node.handle_sent(h.now, slow, n);
            h.drain();
            slow_took += n;
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
    assert!(
        down.contains("0000000000000003 peer: not reading: the longest send queue")
            && down.ends_with("passed 6000 bytes together"),
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
        h.recv(source, &chat(77, seq, 5, &"y".repeat(100)));
        h.sent(client);
    }
    h.sent(source);
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
    h.node.handle_sent(h.now, slow, queued - 900);
    h.drain();
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
        h.recv(source, &chat(77, seq, 5, &"y".repeat(100)));
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

    h.node.handle_sent(h.now, stuck, 10);
    h.drain();
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
        h.recv(source, &chat(77, seq, 5, &"y".repeat(100)));
    }
    // A byte every 0.9 s for 9.9 s: never a second without progress.
    for step in 1..=11 {
        h.advance(Duration::from_millis(900));
        h.node.handle_sent(h.now, slow, 1);
        h.drain();
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
        h.recv(source, &chat(77, seq, 1, &"r".repeat(100)));
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
        h.recv(source, &chat(77, seq, 1, &"w".repeat(100)));
    }
    assert!(h.closed(lazy));
}

/// Feeds `bytes` written by the far end to `conn` of `to`, then the end of stream once
/// the far end writes no more (only once: a closed connection hears nothing more).
/// Returns whether anything moved.
fn deliver(to: &mut Harness, conn: ConnId, bytes: &[u8], far_end_done: bool) -> bool {
    if to.closed(conn) {
        return false;
    }
    if !bytes.is_empty() {
        to.recv(conn, bytes);
    }
    if far_end_done && !to.closed(conn) {
        to.node.handle_eof(to.now, conn);
        to.drain();
        return true;
    }
    !bytes.is_empty()
}

/// Two nodes wired back to back: bytes queued on one side are fed to the other.
struct Pair {
    a: Harness,
    b: Harness,
    /// (conn on a, conn on b) for each wire between them.
    wires: Vec<(ConnId, ConnId)>,
}

impl Pair {
    fn new(a_id: u64, b_id: u64) -> Self {
        Pair {
            a: Harness::with(config(a_id)),
            b: Harness::with(config(b_id)),
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
        let inc = acceptor
            .node
            .handle_accepted(acceptor.now, Accepted::Peer(addr(2)));
        acceptor.drain();
        self.wires
            .push(if from_a { (out, inc) } else { (inc, out) });
    }

    /// Moves bytes both ways until neither side has anything queued.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for &(on_a, on_b) in &self.wires {
                let to_b = self.a.sent(on_a);
                let to_a = self.b.sent(on_b);
                moved |= deliver(&mut self.b, on_b, &to_b, self.a.done_writing(on_a));
                moved |= deliver(&mut self.a, on_a, &to_a, self.b.done_writing(on_b));
            }
            if !moved {
                return;
            }
        }
    }

    /// Which wires are open on each side.
    fn open(&self) -> Vec<(bool, bool)> {
        self.wires
            .iter()
            .map(|&(on_a, on_b)| (!self.a.closed(on_a), !self.b.closed(on_b)))
            .collect()
    }
}

#[test]
fn simultaneous_dials_leave_the_same_single_link_on_both_sides() {
    for (a_id, b_id) in [(1, 2), (2, 1)] {
        for a_first in [true, false] {
            let mut pair = Pair::new(a_id, b_id);
            pair.dial(a_first);
            pair.dial(!a_first);
            pair.settle();
            let open = pair.open();
            assert_eq!(
                open.iter().filter(|&&(a, b)| a && b).count(),
                1,
                "ids {a_id}/{b_id}, a first {a_first}: {open:?}"
            );
            assert!(
                open.iter().all(|&(a, b)| a == b),
                "both sides agree: {open:?}"
            );
            // The survivor was dialled by the node with the smaller id.
            let survivor = open.iter().position(|&(a, _)| a).expect("one survives");
            let dialled_by_a = (survivor == 0) == a_first;
            assert_eq!(dialled_by_a, a_id < b_id);
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
    let mut pair = Pair::new(9, 5);
    let on_a = pair.a.client();
    pair.dial(true);
    pair.settle();
    pair.dial(false);
    let (new_on_a, new_on_b) = pair.wires[1];
    // a hears b's hello on the new link and gives the old one up, while b, which has
    // not yet heard a's hello there, still sends on the old one.
    let hello_from_b = pair.b.sent(new_on_b);
    pair.a.recv(new_on_a, &hello_from_b);
    let on_b = pair.b.client();
    pair.b.say(on_b, "sent on the old link");
    pair.settle();

    let heard: Vec<String> = pair
        .a
        .sent_lines(on_a)
        .into_iter()
        .filter(|l| l.starts_with('<'))
        .collect();
    assert_eq!(heard, ["<me> sent on the old link"]);
    assert_eq!(pair.open(), [(false, false), (true, true)]);
}

fn rate_limited(per_sec: u32, burst: u32) -> Harness {
    let mut cfg = config(ME);
    cfg.limits.max_rate = Some(crate::config::MaxRate { per_sec, burst });
    Harness::with(cfg)
}

#[test]
fn lines_from_an_origin_over_max_rate_are_dropped_and_counted() {
    let mut h = rate_limited(2, 3);
    let (from, onward, client) = (h.peer(1), h.peer(2), h.client());
    for seq in 0..5 {
        h.recv(from, &chat(77, seq, 4, &format!("line {seq}")));
    }
    // Another origin has a bucket of its own, and so do this node's own clients.
    h.recv(from, &chat(78, 0, 4, "from elsewhere"));
    h.say(client, "mine");
    let texts = |chats: Vec<SentChat>| chats.into_iter().map(|c| c.text).collect::<Vec<_>>();
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
    h.recv(from, &chat(77, 5, 4, "line 5"));
    h.recv(from, &chat(77, 6, 4, "line 6"));
    assert_eq!(texts(h.sent_chats(onward)), ["line 5"]);
    assert_eq!(h.status(client, "rate-dropped"), "3");
    assert_eq!(h.status(client, "max-rate"), "2");
    assert_eq!(h.status(client, "max-burst"), "3");
}

#[test]
fn link_given_up_writes_what_it_still_holds_after_the_other_end_gave_it_up_first() {
    // b's id is the smaller, so the link b dials replaces the one a dialled.
    let mut pair = Pair::new(9, 5);
    pair.dial(true);
    pair.settle();
    let on_a = pair.a.client();
    let (old_on_a, old_on_b) = pair.wires[0];
    pair.a.say(on_a, "queued on the old link");
    pair.dial(false);
    let (new_on_a, new_on_b) = pair.wires[1];
    // a gives the old link up with the line still queued on it; b gives it up too and,
    // with nothing queued, shuts it down at once.
    let hello_from_b = pair.b.sent(new_on_b);
    pair.a.recv(new_on_a, &hello_from_b);
    let hello_from_a = pair.a.sent(new_on_a);
    pair.b.recv(new_on_b, &hello_from_a);
    assert!(pair.b.done_writing(old_on_b));
    pair.a.node.handle_eof(pair.a.now, old_on_a);
    pair.a.drain();
    assert!(!pair.a.closed(old_on_a), "not before the line is written");
    let on_b = pair.b.client();
    pair.settle();
    let heard: Vec<String> = (pair.b.sent_lines(on_b).into_iter())
        .filter(|l| l.starts_with('<'))
        .collect();
    assert_eq!(heard, ["<me> queued on the old link"]);
    assert_eq!(pair.open(), [(false, false), (true, true)]);
}
