//! The secure channel between real nodes, and what an attacker on the path or at the
//! port can do about it: a tap reads nothing, a flipped byte costs a link and no line,
//! a network key keeps strangers out, an id comes from a key and cannot be claimed
//! without it, key files are private, silent connections hold no more handshake
//! slots than the rules give them, and lines are their author's: a batch whose
//! signature does not hold costs its sender the link and reaches no client, and a nick
//! another key holds is shown with the id of the key that signed.

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2pchat::wire::handshake::{Preamble, PREAMBLE_LEN};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

use p2pchat::config::Secret;
use p2pchat::wire::lines::KEY_LEN;

use crate::util::{
    arg, contains, first_text_at, foreground_and_daemon, fresh_key, id_of, mode_of, run, temp_dir,
    wait_until, write_key_file, Client, LineAuthor, Node, Process, Proxy, RawPeer, SecurePeer, Way,
    PATIENCE,
};

/// How long a node waits for a handshake: a silent connection holds its slot this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Well before [`HANDSHAKE_TIMEOUT`]: what "at once" means for a refusal or a link.
const AT_ONCE: Duration = Duration::from_secs(HANDSHAKE_TIMEOUT.as_secs() - 2);

/// Handshake slots of a node: in all, and for one address.
const SLOTS: usize = 64;
const SLOTS_PER_ADDRESS: usize = 8;

/// A fresh network key made by `p2pchat --new-network-key` in `dir`.
fn new_network_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let exit = run(&["--new-network-key", arg(&path)]);
    assert_eq!(exit.status.code(), Some(0), "{exit:?}");
    path
}

/// Reads lines until `marker`; asserts that none of those before it is a chat line.
fn expect_no_chat_before(client: &mut Client, marker: &str) {
    let before = client.expect_line(marker);
    assert!(
        before.iter().all(|l| !l.starts_with('<')),
        "chat lines reached a node that must not see them: {before:?}"
    );
}

#[test]
fn a_tap_between_two_nodes_sees_neither_the_lines_nor_the_nicks() {
    let b = Node::start(&["--nick", "bob-listening"]);
    let tap = Proxy::tap(b.addr());
    let a = Node::start(&[
        "--nick",
        "alice-dialling",
        "--connect",
        &tap.addr().to_string(),
    ]);
    a.wait_for_peers(&[b.id()]);
    b.wait_for_peers(&[a.id()]);
    let (mut on_a, mut on_b) = (a.client(), b.client());
    let there = "meet me at the old mill at nine";
    let back = "bring the map of the tunnels";
    on_a.send(there);
    on_b.expect_line(&format!("<alice-dialling> {there}"));
    on_b.send(back);
    on_a.expect_line(&format!("<bob-listening> {back}"));

    let seen = tap.recorded();
    assert!(
        seen.starts_with(b"P2PC") && seen.len() > there.len() + back.len(),
        "the tap relayed the link: {} bytes",
        seen.len()
    );
    for secret in [there, back, "alice-dialling", "bob-listening"] {
        assert!(
            !contains(&seen, secret.as_bytes()),
            "the tap read {secret:?} off the wire"
        );
    }
}

#[test]
fn a_byte_flipped_on_the_way_costs_the_link_not_the_line_and_the_link_comes_back() {
    // The dialler's first two messages are handshake messages 1 and 3 (the longer one
    // is 160 bytes); after them, its first message longer than this is the chat line.
    const LONG: usize = 200;
    let b = Node::start(&["--nick", "b"]);
    let flipped = Arc::new(AtomicBool::new(false));
    let proxy = Proxy::tampering(
        b.addr(),
        Box::new({
            let flipped = flipped.clone();
            move |way, index, message: &mut [u8]| {
                if way == Way::Out
                    && index >= 2
                    && message.len() > LONG
                    && !flipped.swap(true, Ordering::SeqCst)
                {
                    message[message.len() / 2] ^= 0x20;
                }
            }
        }),
    );
    let a = Node::start(&["--nick", "a", "--connect", &proxy.addr().to_string()]);
    b.wait_for_peers(&[a.id()]);
    let (mut on_a, mut on_b) = (a.client(), b.client());

    let altered = format!(
        "{} and that is all",
        "every byte of this line counts, ".repeat(8)
    );
    on_a.send(&altered);
    b.wait_for_log("the decrypt failure", |line| {
        line.contains("secure channel: transport message did not decrypt")
    });
    assert!(flipped.load(Ordering::SeqCst), "the proxy flipped a byte");
    a.wait_for_log("the redial of the address given by hand", |line| {
        line.contains(&format!("dialling {} again", proxy.addr()))
    });
    a.wait_for_peers(&[b.id()]);
    b.wait_for_peers(&[a.id()]);

    let later = "written after the relink, arrives intact";
    on_a.send(later);
    let before = on_b.expect_line(&format!("<a> {later}"));
    // Events about the link; the first line only whole, if it is resent at all.
    let whole = format!("<a> {altered}");
    assert!(
        before.iter().all(|l| l.starts_with("* ") || *l == whole),
        "an altered line reached a client: {before:?}"
    );
}

#[test]
fn nodes_with_another_network_key_or_none_never_link_to_one_with_a_key() {
    let keys = temp_dir();
    let ours = new_network_key(keys.path(), "ours");
    let theirs = new_network_key(keys.path(), "theirs");
    let a = Node::start(&["--nick", "a", "--network-key", arg(&ours)]);
    let target = a.addr().to_string();
    let other = Node::start(&[
        "--nick",
        "other",
        "--network-key",
        arg(&theirs),
        "--connect",
        &target,
    ]);
    let none = Node::start(&["--nick", "none", "--connect", &target]);
    let same = Node::start(&[
        "--nick",
        "same",
        "--network-key",
        arg(&ours),
        "--connect",
        &target,
    ]);

    // The keyed node reads the other key's message 1 and refuses it; the keyless one
    // and the keyed one each read the other's preamble, sent before either closes.
    a.wait_for_log("the node with another network key refused", |line| {
        line.contains("secure channel: handshake message 1 did not decrypt: another network key")
    });
    none.wait_for_log("the reason it was refused", |line| {
        line.contains("secure channel: network key mismatch: the peer has one, we have none")
    });
    a.wait_for_log("the keyless node refused", |line| {
        line.contains("secure channel: network key mismatch: we have one, the peer has none")
    });
    a.wait_for_peers(&[same.id()]);
    same.wait_for_peers(&[a.id()]);

    let (mut on_a, mut on_same) = (a.client(), same.client());
    let (mut on_other, mut on_none) = (other.client(), none.client());
    on_other.send("from another network");
    on_none.send("from no network");
    on_a.send("for the network only");
    on_same.expect_next("<a> for the network only");
    on_same.send("marker");
    expect_no_chat_before(&mut on_a, "<same> marker");
    for (node, client) in [(&other, &mut on_other), (&none, &mut on_none)] {
        assert_eq!(node.peers_count(), 0, "{} linked", node.id());
        client.send("/peers");
        expect_no_chat_before(client, "* 0 peers");
    }
}

#[test]
fn new_network_key_writes_a_private_file_that_network_key_accepts() {
    let dir = temp_dir();
    let path = new_network_key(dir.path(), "network.key");
    assert_eq!(mode_of(&path), 0o600);
    let text = fs::read_to_string(&path).expect("the network key file");
    let digits = text.strip_suffix('\n').unwrap_or(&text);
    assert!(
        digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_hexdigit()),
        "{text:?} is not 64 hex digits"
    );
    let again = run(&["--new-network-key", arg(&path)]);
    assert_eq!(
        fs::read_to_string(&path).expect("the network key file"),
        text,
        "an existing key is not overwritten: {again:?}"
    );

    let a = Node::start(&["--network-key", arg(&path)]);
    let b = Node::start(&["--network-key", arg(&path)]);
    a.link(&b);
}

#[test]
fn a_missing_key_file_is_made_private_in_a_private_directory() {
    let dir = temp_dir();
    let key = dir.path().join("state/p2pchat/key");
    let node = Node::start(&["--key", arg(&key)]);
    assert_eq!(mode_of(&key), 0o600);
    assert_eq!(mode_of(key.parent().expect("a directory")), 0o700);
    node.wait_for_log("the new key", |line| {
        line.contains(&format!("created a new node key in {}", key.display()))
    });
}

#[test]
fn the_node_id_stays_the_same_across_restarts_with_the_same_key_file() {
    let keys = temp_dir();
    let key = keys.path().join("key");
    let b = Node::start(&["--nick", "b"]);
    let target = b.addr().to_string();
    let args = ["--nick", "a", "--key", arg(&key), "--connect", &target];
    let mut a = Node::start(&args);
    let id = a.id().to_owned();
    b.wait_for_peers(&[&id]);
    a.signal("TERM");
    assert!(a.wait_exit().success());

    let a = Node::start(&args);
    assert_eq!(a.id(), id, "the id comes from the key file");
    // Only the new run lists b: this is the new link.
    a.wait_for_peers(&[b.id()]);
    let mut on_b = b.client();
    a.client().send("after the restart");
    on_b.expect_line("<a> after the restart");
    assert_eq!(b.wait_for_peers(&[&id])[0].id, id);
}

#[test]
fn a_key_file_others_may_read_is_refused_naming_the_file_and_its_mode() {
    let dir = temp_dir();
    let key = dir.path().join("key");
    write_key_file(&key, &fresh_key(), 0o644);
    let network_key = dir.path().join("network.key");
    write_key_file(&network_key, &fresh_key(), 0o640);
    let (socket, pidfile) = (dir.path().join("p2pchat.sock"), dir.path().join("pid"));
    let common = [
        "--listen",
        "127.0.0.1:0",
        "--socket",
        arg(&socket),
        "--pidfile",
        arg(&pidfile),
    ];
    let private_key = dir.path().join("private");
    write_key_file(&private_key, &fresh_key(), 0o600);
    let cases: [(Vec<&str>, &Path, &str); 2] = [
        (vec!["--key", arg(&key)], &key, "mode 0644"),
        (
            vec![
                "--key",
                arg(&private_key),
                "--network-key",
                arg(&network_key),
            ],
            &network_key,
            "mode 0640",
        ),
    ];
    for (key_args, named, mode) in cases {
        let mut args = common.to_vec();
        args.extend(key_args);
        for args in foreground_and_daemon(&args) {
            let exit = run(&args);
            let _started = pidfile.exists().then(|| Process::from_pidfile(&pidfile));
            assert_eq!(exit.status.code(), Some(1), "{args:?}: {exit:?}");
            assert!(
                exit.stderr.starts_with("p2pchat: ")
                    && exit.stderr.contains(arg(named))
                    && exit.stderr.contains(mode),
                "{args:?}: the error names the file and its mode: {exit:?}"
            );
        }
    }
    assert!(!socket.exists(), "nothing was bound");
}

#[test]
fn a_peer_is_known_by_the_id_of_the_key_it_proves_whatever_it_says() {
    let node = Node::start(&["--nick", "target"]);
    let x = Node::start(&["--nick", "x"]);
    x.link(&node);
    let key = fresh_key();
    let mut mallory = SecurePeer::setup()
        .identity(key.clone())
        .connect(node.addr())
        .expect("a peer with a key of its own links");
    // Its hello carries x's nick, and nothing in it could carry an id.
    mallory.hello("x");
    let own = id_of(&key);
    let peers = node.wait_for_peers(&[x.id(), &own]);
    let listed = peers
        .iter()
        .find(|p| p.addr == mallory.addr())
        .expect("the peer is listed");
    assert_eq!(listed.id, own, "the first 8 bytes of its public key");
    assert_ne!(listed.id, x.id());
}

#[test]
fn a_peer_showing_another_nodes_identity_proof_is_refused() {
    let node = Node::start(&["--nick", "target"]);
    let x = Node::start(&["--nick", "x"]);
    x.link(&node);
    // Mallory dials x and reads x's proof out of message 2: x's key, signed over x's
    // Noise static key. Then it shows that proof to the node as its own.
    let (_, _, proof) = noise_dial(x.addr());
    let (mut stream, mut handshake, _) = noise_dial(node.addr());
    let mut message3 = vec![0; 65535];
    let n = handshake
        .write_message(&proof, &mut message3)
        .expect("message 3 carries the copied proof");
    let mut wire = u16::try_from(n).expect("short").to_be_bytes().to_vec();
    wire.extend_from_slice(&message3[..n]);
    stream.write_all(&wire).expect("cannot write message 3");
    let from = stream.local_addr().expect("a connected socket").to_string();

    node.wait_for_log("the forged proof refused", |line| {
        line.contains(&from)
            && line.contains(&format!(
                "secure channel: identity proof does not verify: the peer does not hold the \
                 key of node {}",
                x.id()
            ))
    });
    let peers = node.wait_for_peers(&[x.id()]);
    assert_ne!(peers[0].addr.to_string(), from);
}

#[test]
fn two_processes_with_one_key_file_refuse_to_link_and_say_why() {
    let keys = temp_dir();
    let key = keys.path().join("key");
    let a = Node::start(&["--nick", "a", "--key", arg(&key)]);
    let target = a.addr().to_string();
    let b = Node::start(&["--nick", "b", "--key", arg(&key), "--connect", &target]);
    assert_eq!(a.id(), b.id(), "one key, one id");
    // Both ends say why: the one dialled, and the one dialling, which therefore does
    // not dial again (a process with the same key would be refused every time).
    for (end, node) in [("dialled", &a), ("dialling", &b)] {
        node.wait_for_log(
            &format!("why the link is refused, on the {end} end"),
            |line| line.contains("the peer runs with this node's own key"),
        );
    }
    assert!(
        !b.log().contains(&format!("dialling {target} again")),
        "{}",
        b.log()
    );
    assert_eq!(a.peers_count() + b.peers_count(), 0);
}

/// A connection from `from` that says nothing, once the node has given it a handshake
/// slot (it sends its preamble to every connection it gives one).
fn silent_with_a_slot(from: IpAddr, node: &Node) -> RawPeer {
    let mut silent = RawPeer::connect_from(from, node.addr());
    let mut want = Vec::new();
    Preamble { network_key: false }.encode(&mut want);
    assert_eq!(silent.read_exactly(PREAMBLE_LEN), want);
    silent
}

/// A connection from `from` that the node closes at once, with no slot to give it.
fn refused_at_once(from: IpAddr, node: &Node) {
    let mut over = RawPeer::connect_from(from, node.addr());
    over.expect_closed_within(AT_ONCE);
}

fn loopback(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, host))
}

/// A real node links to `node` from 127.0.0.1 at once: before any silent connection
/// has been dropped for its silence.
fn a_real_node_links_at_once(node: &Node, silent: &mut [RawPeer]) {
    let since = Instant::now();
    let friend = Node::start(&["--nick", "friend"]);
    friend.link(node);
    let took = since.elapsed();
    assert!(took < AT_ONCE, "the link took {took:?}");
    assert!(
        silent.iter_mut().all(RawPeer::is_open),
        "the silent connections are still held: the link did not wait for their slots"
    );
}

#[test]
fn silent_connections_from_one_address_hold_its_eight_slots_and_no_more() {
    let node = Node::start(&["--nick", "target", "-v"]);
    let crowd = loopback(2);
    let mut silent: Vec<RawPeer> = (0..SLOTS_PER_ADDRESS)
        .map(|_| silent_with_a_slot(crowd, &node))
        .collect();
    // 64 more from the same address are closed at once.
    for _ in 0..SLOTS {
        refused_at_once(crowd, &node);
    }
    node.wait_for_log("the per-address limit", |line| {
        line.contains("too many connections in the handshake from 127.0.0.2: the limit is 8")
    });
    a_real_node_links_at_once(&node, &mut silent);
}

#[test]
fn silent_connections_filling_every_slot_refuse_the_next_at_once_until_one_is_freed() {
    let node = Node::start(&["--nick", "target", "-v"]);
    let mut silent: Vec<RawPeer> = (0..SLOTS / SLOTS_PER_ADDRESS)
        .flat_map(|host| {
            let from = loopback(2 + host as u8);
            (0..SLOTS_PER_ADDRESS).map(move |_| from)
        })
        .map(|from| silent_with_a_slot(from, &node))
        .collect();
    // From an address that holds no slot, but over the total.
    refused_at_once(loopback(100), &node);
    node.wait_for_log("the total limit", |line| {
        line.contains("too many connections in the handshake: the limit is 64")
    });

    let freed = silent.pop().expect("64 of them");
    let freed_addr = freed.addr().to_string();
    freed.close();
    node.wait_for_log("the slot given back", |line| {
        line.contains(&freed_addr) && line.contains("closed by the peer")
    });
    a_real_node_links_at_once(&node, &mut silent);
}

/// Noise as a node without a network key runs it, and the prologue it binds in
/// (docs/PROTOCOL.md); the attacker speaks it with snow directly, to send what the
/// crate's channel never would.
const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
const PROLOGUE: &[u8] = b"p2pchat v2";

/// Dials `addr` as a hand-made initiator with a fresh static key: sends the preamble
/// and message 1, reads the node's preamble and message 2. Returns the connection, the
/// handshake (message 3 is the caller's to write) and message 2's payload: the node's
/// identity proof.
fn noise_dial(addr: SocketAddr) -> (TcpStream, snow::HandshakeState, Vec<u8>) {
    let params = || PATTERN.parse().expect("a pattern snow supports");
    let resolver = || Box::new(Urandom) as Box<dyn CryptoResolver + Send>;
    let keypair = snow::Builder::with_resolver(params(), resolver())
        .generate_keypair()
        .expect("a static key");
    let mut handshake = snow::Builder::with_resolver(params(), resolver())
        .local_private_key(&keypair.private)
        .and_then(|b| b.prologue(PROLOGUE))
        .and_then(|b| b.build_initiator())
        .expect("an initiator");
    let mut stream = TcpStream::connect(addr).expect("cannot connect to the node");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("cannot set a read timeout");
    let mut wire = Vec::new();
    Preamble { network_key: false }.encode(&mut wire);
    let mut message = vec![0; 65535];
    let n = handshake
        .write_message(&[], &mut message)
        .expect("message 1");
    wire.extend_from_slice(&u16::try_from(n).expect("short").to_be_bytes());
    wire.extend_from_slice(&message[..n]);
    stream.write_all(&wire).expect("cannot write to the node");

    let mut preamble = [0; PREAMBLE_LEN];
    stream
        .read_exact(&mut preamble)
        .expect("the node's preamble");
    let mut len = [0; 2];
    stream.read_exact(&mut len).expect("message 2's length");
    let mut message2 = vec![0; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message2).expect("message 2");
    let n = handshake
        .read_message(&message2, &mut message)
        .expect("message 2 is valid Noise");
    (stream, handshake, message[..n].to_vec())
}

/// snow's own primitives, with randomness from the kernel: the build of snow the crate
/// uses leaves the default resolver without a random source.
struct Urandom;

impl CryptoResolver for Urandom {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(Seeded(ChaCha20Rng::from_seed(fresh_key().0))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

struct Seeded(ChaCha20Rng);

impl Random for Seeded {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

/// A node and a friend linked to it, a client on each, once a line of the friend's has
/// reached the node: both hold the nick `friend` for the friend's key from then on.
fn friends() -> (Node, Node, Client, Client) {
    let node = Node::start(&["--nick", "target"]);
    let friend = Node::start(&["--nick", "friend"]);
    friend.link(&node);
    let (mut on_node, mut on_friend, mut writer) =
        (node.client(), friend.client(), friend.client());
    writer.send("the real friend");
    on_node.expect_next("<friend> the real friend");
    on_friend.expect_next("<friend> the real friend");
    (node, friend, on_node, on_friend)
}

/// A hand-made peer with the identity `key`, linked to `node` and greeted, once
/// `client` (of the node) has seen it come up with nothing but events before.
fn linked_peer(node: &Node, key: &Secret, client: &mut Client) -> SecurePeer {
    let mut peer = SecurePeer::setup()
        .identity(key.clone())
        .connect(node.addr())
        .expect("a peer with a key of its own links");
    peer.hello("mallory");
    let up = format!("* peer up {} in {} mallory", peer.addr(), peer.id());
    let before = client.expect_line(&up);
    assert!(
        before.iter().all(|l| l.starts_with("* ")),
        "only events before the peer came up: {before:?}"
    );
    peer
}

/// The chat lines a client reads before `marker`, which must be the only other lines.
fn chat_before(client: &mut Client, marker: &str) -> Vec<String> {
    let before = client.expect_line(marker);
    let chat: Vec<String> = before
        .iter()
        .filter(|l| !l.starts_with("* "))
        .cloned()
        .collect();
    assert!(
        chat.iter().all(|l| l.starts_with('<')),
        "only chat lines and events: {before:?}"
    );
    chat
}

#[test]
fn a_batch_with_altered_text_reaches_no_client_and_costs_the_link_and_the_genuine_one_arrives_once()
{
    let (node, friend, mut on_node, mut on_friend) = friends();
    let key = fresh_key();
    let mut mallory = linked_peer(&node, &key, &mut on_node);
    // A real signed batch, one digit of its text changed on the way.
    let genuine = mallory.sign(&[("mallory", "pay bob 5")]);
    let mut altered = genuine.clone();
    let digit = first_text_at("mallory") + "pay bob ".len();
    assert_eq!(altered[digit], b'5');
    altered[digit] = b'9';
    mallory.send_record(&altered);
    mallory.expect_closed();
    let addr = mallory.addr().to_string();
    let violation = format!(
        "protocol violation: lines claiming author {} with a signature that does not hold",
        mallory.id()
    );
    node.wait_for_log("the forged batch", |l| {
        l.contains(&addr) && l.contains(&violation)
    });
    assert_eq!(node.counter("forged"), 1);

    // From a fresh link with the same key, the genuine batch, twice: the first is
    // taken, the second is a copy.
    let mut again = linked_peer(&node, &key, &mut on_node);
    again.send_record(&genuine);
    again.send_record(&genuine);
    wait_until("the second copy is judged a duplicate", || {
        node.counter("duplicates") == 1
    });
    node.client().send("marker");
    for (name, client) in [("the node", &mut on_node), ("the friend", &mut on_friend)] {
        let chat = chat_before(client, "<target> marker");
        assert_eq!(chat, ["<mallory> pay bob 5"], "chat lines on {name}");
    }
    assert_eq!(node.counter("forged"), 1);
    let status = friend.status();
    assert_eq!(
        (status["forged"].as_str(), status["messages"].as_str()),
        ("0", "3"),
        "the friend never saw the forgery: {status:?}"
    );
}

#[test]
fn a_batch_naming_another_nodes_key_is_forged_and_that_node_goes_on_with_its_lines() {
    let (node, friend, mut on_node, mut on_friend) = friends();
    let key = fresh_key();
    let mut mallory = linked_peer(&node, &key, &mut on_node);
    // The node's summary names the friend's run and its next line: a forger fills in
    // just that, signs with its own key and names the friend's.
    let friend_id = u64::from_str_radix(friend.id(), 16).expect("an id is 16 hex digits");
    let (_, entries) = mallory.next_have();
    let run = entries
        .iter()
        .find(|e| e.author == friend_id)
        .unwrap_or_else(|| panic!("the summary names the friend's run: {entries:?}"));
    let mut forger = LineAuthor::at(&key, run.epoch, run.next());
    let mut forged = forger.record(&[("friend", "give mallory the keys")]);
    forged[..KEY_LEN].copy_from_slice(&friend.key());
    mallory.send_record(&forged);
    mallory.expect_closed();
    let addr = mallory.addr().to_string();
    let violation = format!(
        "protocol violation: lines claiming author {} with a signature that does not hold",
        friend.id()
    );
    node.wait_for_log("the batch naming the friend", |l| {
        l.contains(&addr) && l.contains(&violation)
    });
    assert_eq!(node.counter("forged"), 1);

    // The friend's own line of that number is news, not a copy of the forgery.
    friend.client().send("the real next line");
    let chat = chat_before(&mut on_node, "<friend> the real next line");
    assert!(chat.is_empty(), "no forged line on the node: {chat:?}");
    let status = node.status();
    assert_eq!(
        (status["messages"].as_str(), status["duplicates"].as_str()),
        ("2", "0"),
        "{status:?}"
    );
    on_friend.send("marker");
    let chat = chat_before(&mut on_node, "<friend> marker");
    assert!(chat.is_empty(), "{chat:?}");
}

/// The shortest prefix of the id `id`, at least four hex digits, that `holder`'s lacks:
/// how a line of `id` under `holder`'s nick is told apart.
fn distinct_prefix(id: &str, holder: &str) -> String {
    let same = id
        .bytes()
        .zip(holder.bytes())
        .take_while(|(x, y)| x == y)
        .count();
    id[..(same + 1).clamp(4, id.len())].to_owned()
}

#[test]
fn lines_another_key_signs_under_a_held_nick_show_that_keys_id_after_it() {
    let (node, friend, mut on_node, mut on_friend) = friends();
    let mut mallory = linked_peer(&node, &fresh_key(), &mut on_node);
    mallory.chat("friend", "it is me, your friend: trust this one");
    let shown = format!("friend#{}", distinct_prefix(&mallory.id(), friend.id()));
    let claimed = format!("<{shown}> it is me, your friend: trust this one");
    for (name, client) in [("the node", &mut on_node), ("the friend", &mut on_friend)] {
        let chat = chat_before(client, &claimed);
        assert!(chat.is_empty(), "on {name}: {chat:?}");
    }
    // The holder keeps its nick bare, and the peer's own nick is its own.
    friend.client().send("still the real friend");
    on_node.expect_next("<friend> still the real friend");
    mallory.chat("mallory", "and under my own name");
    on_node.expect_next("<mallory> and under my own name");
    on_friend.expect_line("<mallory> and under my own name");
    let history: Vec<String> = node.history(None).into_iter().map(|h| h.line).collect();
    assert_eq!(
        history,
        [
            "<friend> the real friend".to_owned(),
            claimed,
            "<friend> still the real friend".to_owned(),
            "<mallory> and under my own name".to_owned(),
        ],
        "/history names them as the live lines did"
    );
}
