//! Raw TCP on a node's peer port: whatever a hostile or broken peer sends costs it its
//! connection, the log says who and why, and the node goes on serving its real peer.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::util::{chat_frame, hello_frame, wait_for, Client, Node, RawPeer, PATIENCE};

/// Node id the hand-made peers claim.
const MALLORY: u64 = 0x6d61_6c6c_6f72_7921;

/// Offsets into a hello frame: the 4-byte length, the kind byte, then these.
const MAGIC_AT: usize = 5;
const VERSION_AT: usize = 9;

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

    /// A raw peer that has said a valid hello, once the node's clients know of it.
    fn mallory_up(&mut self) -> RawPeer {
        let mut mallory = RawPeer::connect(&self.node);
        mallory.send(&hello_frame(MALLORY, "mallory"));
        let up = self.on_node.next_line();
        let prefix = format!("* peer up {} in ", mallory.addr());
        assert!(
            up.starts_with(&prefix) && up.ends_with(" mallory"),
            "{up:?} should be {prefix}ID mallory"
        );
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

/// The baseline the attacks vary: frames built by the harness are what a node accepts,
/// even when they trickle in a byte at a time.
#[test]
fn a_hand_made_peer_speaking_the_protocol_is_accepted() {
    let mut scene = scene();
    let mut honest = RawPeer::connect(&scene.node);
    for byte in hello_frame(MALLORY, "mallory") {
        honest.send(&[byte]);
    }
    let up = scene.on_node.next_line();
    assert!(
        up.starts_with(&format!("* peer up {} in ", honest.addr())),
        "{up:?}"
    );
    honest.send(&chat_frame(MALLORY, 1, "mallory", "hello, world"));
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
    // An HTTP request read as a frame header declares a body of 1,195,725,856 bytes.
    scene.attack(
        b"GET / HTTP/1.1\r\nHost: p2pchat\r\n\r\n",
        "exceeds the limit",
    );
}

#[test]
fn a_length_prefix_over_the_limit_is_dropped_before_any_body() {
    let mut scene = scene();
    scene.attack(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3], "exceeds the limit");
    scene
        .node
        .wait_for_log("the declared length", |l| l.contains("4294967295"));
}

#[test]
fn an_empty_frame_is_dropped() {
    let mut scene = scene();
    scene.attack(&[0, 0, 0, 0], "empty frame");
}

#[test]
fn a_hello_with_the_wrong_magic_is_dropped() {
    let mut scene = scene();
    let mut hello = hello_frame(MALLORY, "mallory");
    hello[MAGIC_AT..MAGIC_AT + 4].copy_from_slice(b"HTTP");
    scene.attack(&hello, "bad magic");
}

#[test]
fn a_hello_of_another_protocol_version_is_dropped() {
    let mut scene = scene();
    let mut hello = hello_frame(MALLORY, "mallory");
    hello[VERSION_AT..VERSION_AT + 2].copy_from_slice(&[0, 2]);
    scene.attack(&hello, "protocol version mismatch");
}

#[test]
fn a_hello_with_an_invalid_nick_is_dropped() {
    let mut scene = scene();
    scene.attack(&hello_frame(MALLORY, "<mallory>"), "invalid nick");
}

#[test]
fn chat_before_the_hello_is_dropped_and_not_delivered() {
    let mut scene = scene();
    // `assert_still_chatting` reads the very next line: the chat must not show.
    scene.attack(
        &chat_frame(MALLORY, 1, "mallory", "sneaked in"),
        "chat before hello",
    );
}

#[test]
fn a_frame_of_an_unknown_kind_after_the_hello_takes_the_peer_down() {
    let mut scene = scene();
    let mut mallory = scene.mallory_up();
    mallory.send(&[0, 0, 0, 3, 9, 1, 2]);
    mallory.expect_closed();
    scene.expect_down(mallory.addr());
    scene.assert_logged(mallory.addr(), "unknown message kind 9");
    scene.assert_still_chatting();
}

#[test]
fn a_truncated_hello_then_close_is_dropped() {
    let mut scene = scene();
    let hello = hello_frame(MALLORY, "mallory");
    let mut mallory = RawPeer::connect(&scene.node);
    mallory.send(&hello[..hello.len() - 3]);
    let addr = mallory.addr();
    mallory.close();
    scene.assert_logged(addr, "closed by the peer");
    scene.assert_still_chatting();
}

#[test]
fn a_truncated_chat_frame_then_close_delivers_nothing() {
    let mut scene = scene();
    let mallory = scene.mallory_up();
    let chat = chat_frame(MALLORY, 1, "mallory", "never finished");
    let mut mallory = mallory;
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
    scene.assert_logged(loris.addr(), "no hello within");
    scene.assert_still_chatting();
}

#[test]
fn an_origin_over_max_rate_is_throttled_and_named_in_the_log() {
    let node = Node::start(&["--nick", "target", "--max-rate", "5", "--max-burst", "5"]);
    let mut on_node = node.client();
    let mut flooder = RawPeer::connect(&node);
    flooder.send(&hello_frame(MALLORY, "mallory"));
    on_node.read_until("mallory's peer up event", |l| l.starts_with("* peer up "));
    let flood: Vec<u8> = (0..100)
        .flat_map(|seq| chat_frame(MALLORY, seq, "mallory", &format!("flood {seq}")))
        .collect();
    flooder.send(&flood);

    node.wait_for_log("the origin over the rate", |line| {
        line.contains(&format!("node {MALLORY:016x} sends over --max-rate"))
    });
    // Every line is either delivered or counted as dropped; the burst at least gets
    // through, and most of a flood written at once does not.
    let dropped = wait_for("all 100 lines to be seen", || {
        let status = node.status();
        match (
            status["messages"].as_str(),
            status["rate-dropped"].parse::<u64>(),
        ) {
            ("100", Ok(dropped)) => Ok(dropped),
            _ => Err(format!("{status:?}")),
        }
    });
    assert!((50..=95).contains(&dropped), "{dropped} of 100 dropped");

    // The client gets exactly the lines that were not dropped.
    let want = 100 - dropped as usize;
    let delivered = Cell::new(0);
    on_node.read_until(&format!("{want} delivered lines"), |line| {
        delivered.set(delivered.get() + usize::from(line.starts_with("<mallory> flood ")));
        delivered.get() == want
    });
    on_node.send("/status");
    let next = on_node.next_line();
    assert!(
        next.starts_with("* id "),
        "{next:?} came after the delivered lines"
    );
}
