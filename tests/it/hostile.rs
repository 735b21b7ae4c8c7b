//! Hostile or broken peers on a node's peer port: raw TCP that is not the protocol (a
//! stranger, another version, silence) and a peer with a key of its own that completes
//! the secure channel and then breaks the rules inside it. Whatever they send costs
//! them their connection, the log says who and why, and the node goes on serving its
//! real peer.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2pchat::wire::handshake::Preamble;
use p2pchat::wire::peer::Message;

use crate::util::{
    hello_frame, lines_frame, wait_for, Client, Node, RawPeer, SecurePeer, PATIENCE,
};

/// The nick the hand-made peers say hello with.
const MALLORY: &str = "mallory";

/// The preamble a node of this version sends first.
fn preamble() -> Vec<u8> {
    let mut out = Vec::new();
    Preamble { network_key: false }.encode(&mut out);
    out
}

/// Offset of the version in the preamble, after the magic.
const VERSION_AT: usize = 4;

/// The node under attack, a real peer linked to it, and a client on each.
struct Scene {
    node: Node,
    friend: Node,
    on_node: Client,
    on_friend: Client,
    rounds: u32,
}

fn scene() -> Scene {
    let node = Node::start(&["--nick", "target"]);
    let friend = Node::start(&["--nick", "friend"]);
    friend.link(&node);
    let (on_node, on_friend) = (node.client(), friend.client());
    Scene {
        node,
        friend,
        on_node,
        on_friend,
        rounds: 0,
    }
}

impl Scene {
    /// The node goes on serving: lines cross between its client and its real peer's
    /// both ways with nothing before them, and that peer is still its only one.
    fn assert_still_chatting(&mut self) {
        self.rounds += 1;
        let round = self.rounds;
        self.on_friend
            .send(&format!("from the friend, round {round}"));
        self.on_node
            .expect_next(&format!("<friend> from the friend, round {round}"));
        self.on_node
            .send(&format!("from the target, round {round}"));
        self.on_friend
            .expect_next(&format!("<target> from the target, round {round}"));
        let peers = self.node.peers();
        let ids: Vec<&str> = peers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, [self.friend.id()], "{peers:?}");
    }

    /// Waits for a log line of the node naming `peer` and `reason`.
    fn assert_logged(&self, peer: SocketAddr, reason: &str) {
        let addr = peer.to_string();
        self.node
            .wait_for_log(&format!("{addr} dropped: {reason:?}"), |line| {
                line.contains(&addr) && line.contains(reason)
            });
    }

    /// A raw peer sends `bytes`; the node must close that connection, log `reason`
    /// with the peer's address, and go on serving.
    fn attack(&mut self, bytes: &[u8], reason: &str) {
        let mut attacker = RawPeer::connect(&self.node);
        attacker.send(bytes);
        attacker.expect_closed();
        self.assert_logged(attacker.addr(), reason);
        self.assert_still_chatting();
    }

    /// A peer through the handshake, not yet greeted, sends `plain` inside the channel;
    /// the node must close it, log `reason` and go on serving.
    fn attack_inside(&mut self, plain: &[u8], reason: &str) {
        let mut attacker = SecurePeer::connect(&self.node);
        attacker.send(plain);
        attacker.expect_closed();
        self.assert_logged(attacker.addr(), reason);
        self.assert_still_chatting();
    }

    /// A secure peer that has said a valid hello, once the node's clients know of it.
    fn mallory_up(&mut self) -> SecurePeer {
        let mut mallory = SecurePeer::connect(&self.node);
        mallory.hello(MALLORY);
        let up = self.on_node.next_line();
        let want = format!("* peer up {} in {} {MALLORY}", mallory.addr(), mallory.id());
        assert_eq!(up, want, "the node names the peer by the id of its key");
        mallory
    }

    /// The `* peer down` event for `peer`, from the node's client.
    fn expect_down(&mut self, peer: SocketAddr) -> String {
        let down = self.on_node.next_line();
        let prefix = format!("* peer down {peer} in ");
        assert!(
            down.starts_with(&prefix) && down.contains(" mallory: "),
            "{down:?} should be {prefix}ID mallory: CAUSE"
        );
        down
    }
}

/// The baseline the attacks vary: a peer built by the harness, with a key of its own,
/// is what a node accepts, even when its bytes trickle in one at a time.
#[test]
fn a_hand_made_peer_speaking_the_protocol_is_accepted() {
    let mut scene = scene();
    let mut honest = SecurePeer::setup()
        .trickling()
        .connect(scene.node.addr())
        .expect("the handshake succeeds a byte at a time");
    assert_eq!(
        honest.node_id(),
        scene.node.id(),
        "the node proves its own id"
    );
    // The node's hello comes first, inside the channel.
    let hello = honest.next_frame();
    match Message::parse(&hello) {
        Ok(Message::Hello(hello)) => {
            assert_eq!(hello.nick, "target");
            assert_eq!(hello.listen_port, scene.node.addr().port());
            assert!(!hello.refusing);
        }
        other => panic!("expected the node's hello, got {other:?}"),
    }
    honest.hello(MALLORY);
    let up = scene.on_node.next_line();
    assert_eq!(
        up,
        format!("* peer up {} in {} {MALLORY}", honest.addr(), honest.id())
    );
    honest.chat(MALLORY, "hello, world");
    scene.on_node.expect_next("<mallory> hello, world");
    scene.on_friend.expect_next("<mallory> hello, world");
    let addr = honest.addr();
    honest.close();
    let down = scene.expect_down(addr);
    assert!(down.ends_with("closed by the peer"), "{down:?}");
    scene.assert_still_chatting();
}

#[test]
fn garbage_bytes_are_dropped() {
    let mut scene = scene();
    scene.attack(
        b"GET / HTTP/1.1\r\nHost: p2pchat\r\n\r\n",
        "secure channel: bad magic",
    );
}

#[test]
fn a_length_prefix_over_the_limit_is_dropped_before_any_body() {
    let mut scene = scene();
    scene.attack_inside(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3], "exceeds the limit");
    scene
        .node
        .wait_for_log("the declared length", |l| l.contains("4294967295"));
}

#[test]
fn an_empty_frame_is_dropped() {
    let mut scene = scene();
    scene.attack_inside(&[0, 0, 0, 0], "empty frame");
}

#[test]
fn an_empty_noise_message_in_the_handshake_is_dropped() {
    let mut scene = scene();
    let mut bytes = preamble();
    bytes.extend_from_slice(&[0, 0]);
    scene.attack(&bytes, "empty frame");
}

#[test]
fn a_preamble_with_the_wrong_magic_is_dropped() {
    let mut scene = scene();
    let mut bytes = preamble();
    bytes[..4].copy_from_slice(b"HTTP");
    scene.attack(&bytes, "secure channel: bad magic");
}

#[test]
fn a_preamble_of_another_protocol_version_is_dropped() {
    let mut scene = scene();
    let mut bytes = preamble();
    bytes[VERSION_AT..VERSION_AT + 2].copy_from_slice(&[0, 3]);
    scene.attack(
        &bytes,
        "secure channel: protocol version mismatch: we speak 2, the peer speaks 3",
    );
}

/// A node of the first version opened with a framed hello holding the magic; it is
/// told apart from a stranger and named as that version.
#[test]
fn a_hello_of_protocol_version_1_is_named_as_such() {
    let mut scene = scene();
    scene.attack(
        &[0, 0, 0, 31, 1, b'P', b'2', b'P', b'C', 0, 1],
        "protocol version mismatch: we speak 2, the peer speaks 1",
    );
}

#[test]
fn a_handshake_message_that_is_not_noise_is_dropped() {
    let mut scene = scene();
    let mut bytes = preamble();
    // 40 bytes where the initiator's ephemeral key (32) would be: too many for XX.
    bytes.extend_from_slice(&[0, 40]);
    bytes.extend_from_slice(&[7; 40]);
    scene.attack(&bytes, "secure channel: handshake message 1 is invalid");
}

#[test]
fn a_hello_with_an_invalid_nick_is_dropped() {
    let mut scene = scene();
    scene.attack_inside(&hello_frame("<mallory>"), "invalid nick");
}

#[test]
fn chat_before_the_hello_is_dropped_and_not_delivered() {
    let mut scene = scene();
    let mut mallory = SecurePeer::connect(&scene.node);
    mallory.chat(MALLORY, "sneaked in");
    mallory.expect_closed();
    scene.assert_logged(mallory.addr(), "lines before hello");
    // `assert_still_chatting` reads the very next line: the chat must not show.
    scene.assert_still_chatting();
}

#[test]
fn a_frame_of_an_unknown_kind_after_the_hello_takes_the_peer_down() {
    let mut scene = scene();
    let mut mallory = scene.mallory_up();
    mallory.send(&[0, 0, 0, 3, 99, 1, 2]);
    mallory.expect_closed();
    scene.expect_down(mallory.addr());
    scene.assert_logged(mallory.addr(), "unknown message kind 99");
    scene.assert_still_chatting();
}

#[test]
fn a_truncated_handshake_then_close_is_dropped() {
    let mut scene = scene();
    let mut bytes = preamble();
    bytes.extend_from_slice(&[0, 32, 1, 2, 3]);
    let mut mallory = RawPeer::connect(&scene.node);
    mallory.send(&bytes);
    let addr = mallory.addr();
    mallory.close();
    scene.assert_logged(addr, "closed by the peer");
    scene.assert_still_chatting();
}

#[test]
fn a_truncated_hello_then_close_is_dropped() {
    let mut scene = scene();
    let hello = hello_frame(MALLORY);
    let mut mallory = SecurePeer::connect(&scene.node);
    mallory.send(&hello[..hello.len() - 3]);
    let addr = mallory.addr();
    mallory.close();
    scene.assert_logged(addr, "closed by the peer");
    scene.assert_still_chatting();
}

#[test]
fn a_truncated_chat_frame_then_close_delivers_nothing() {
    let mut scene = scene();
    let mut mallory = scene.mallory_up();
    let chat = lines_frame(&mallory.sign(&[(MALLORY, "never finished")]));
    mallory.send(&chat[..chat.len() - 5]);
    let addr = mallory.addr();
    mallory.close();
    // The very next line is the peer down event: no part of the chat line came first.
    scene.expect_down(addr);
    scene.assert_logged(addr, "closed by the peer");
    scene.assert_still_chatting();
}

#[test]
fn a_slow_loris_is_dropped_after_the_handshake_timeout() {
    const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
    let mut scene = scene();
    let mut loris = RawPeer::connect(&scene.node);
    let since = Instant::now();
    // While it hangs on, everyone else is served.
    scene.assert_still_chatting();
    loris.expect_closed_within(HANDSHAKE_TIMEOUT + PATIENCE);
    let waited = since.elapsed();
    assert!(
        waited >= HANDSHAKE_TIMEOUT - Duration::from_millis(100),
        "dropped after {waited:?}, before the handshake timeout"
    );
    scene.assert_logged(loris.addr(), "no handshake and hello within 5s");
    scene.assert_still_chatting();
}

#[test]
fn an_origin_over_max_rate_is_throttled_and_named_in_the_log() {
    let node = Node::start(&["--nick", "target", "--max-rate", "5", "--max-burst", "5"]);
    let mut on_node = node.client();
    let mut flooder = SecurePeer::connect(&node);
    flooder.hello(MALLORY);
    on_node.read_until("mallory's peer up event", |l| l.starts_with("* peer up "));
    // A batch of one line each, as a node whose clients write one line at a time sends.
    let flood: Vec<u8> = (0..100)
        .flat_map(|n| lines_frame(&flooder.sign(&[(MALLORY, &format!("flood {n}"))])))
        .collect();
    flooder.send(&flood);

    node.wait_for_log("the origin over the rate", |line| {
        line.contains(&format!("node {} sends over --max-rate", flooder.id()))
    });
    // Every line is either taken or counted as dropped; the burst at least gets
    // through, and most of a flood written at once does not.
    let dropped = wait_for("all 100 lines to be judged", || {
        let status = node.status();
        match (
            status["messages"].parse::<u64>(),
            status["rate-dropped"].parse::<u64>(),
        ) {
            (Ok(taken), Ok(dropped)) if taken + dropped == 100 => Ok(dropped),
            _ => Err(format!("{status:?}")),
        }
    });
    assert!((50..=95).contains(&dropped), "{dropped} of 100 dropped");

    // The client gets exactly the lines that were taken, in the author's order; the
    // dropped ones are gaps it is told of once the lines after them stop waiting.
    let want = 100 - dropped as usize;
    let delivered = Cell::new(0);
    let lines = on_node.read_until(&format!("{want} delivered lines"), |line| {
        delivered.set(delivered.get() + usize::from(line.starts_with("<mallory> flood ")));
        delivered.get() == want
    });
    let numbers: Vec<u32> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("<mallory> flood ")?.parse().ok())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "in the author's order: {lines:#?}"
    );
    let gap = format!("lines of mallory ({}) are missing", flooder.id());
    assert!(
        lines.iter().all(
            |l| l.starts_with("<mallory> flood ") || (l.starts_with("* ") && l.ends_with(&gap))
        ),
        "only the lines and word of the gaps: {lines:#?}"
    );
    on_node.send("/status");
    let next = on_node.next_line();
    assert!(
        next.starts_with("* id "),
        "{next:?} came after the delivered lines"
    );
}
