//! Per-connection state: what kind of connection it is, where it stands, its bounded
//! send queue and its armed deadlines. No policy lives here; the node decides.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use crate::wire::control::LineBuffer;
use crate::wire::frame::Decoder;

use super::cause::Cause;
use super::ids::{ConnId, NodeId};
use super::logs::{FeedKey, Plan, Seen};
use super::secure::{Channel, Proven};

/// Which end made a peer link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The remote node dialled us.
    In,
    /// We dialled the remote node.
    Out,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::In => "in",
            Direction::Out => "out",
        })
    }
}

/// Where a peer link stands.
#[derive(Debug)]
pub enum Phase {
    /// An address given by hand whose link was lost: it is dialled again when its
    /// deadline comes. No socket exists yet.
    Waiting,
    /// Dialled; TCP has not connected yet.
    Connecting,
    /// Connected; the Noise handshake runs.
    Handshaking,
    /// The handshake proved who the peer is and our hello is queued; theirs has not
    /// arrived.
    Proven(Proven),
    /// Hello received and accepted: chat flows.
    Up(Box<Remote>),
    /// A link given up: one of two between the same nodes, or one over the peer limit
    /// that was told where to go instead; see [`Retired`]. Boxed: rare, and larger than
    /// the rest.
    Retired(Box<Retired>),
}

/// A link on its way out. Both ends of two duplicate links give up the same one, but
/// each only when it has seen both hellos, so lines may still be on their way over it;
/// a peer over the limit must still read the addresses it is given. So it is closed
/// gracefully, as TCP allows. Nothing new is queued on it; once its queue is written
/// its writing half is shut down, and it is read until the other end's shutdown (or
/// the handshake timeout), so that no line in flight is lost.
#[derive(Debug)]
pub struct Retired {
    /// Why it was given up: what the log and the clients are told when it closes.
    pub cause: Cause,
    /// The remote end, if the link was up here before it was given up.
    pub was_up: Option<Box<Remote>>,
    /// Who the handshake proved the peer to be, if it got that far.
    pub proven: Option<NodeId>,
    /// Its hello has arrived (a peer refused at once has not sent it yet).
    pub greeted: bool,
    /// The driver was asked to shut down the writing half.
    pub finished: bool,
    /// The other end shut down its writing half first: the link is closed as soon as
    /// its queue is written.
    pub peer_finished: bool,
    /// The other end sent its retire message: nothing more may arrive but its shutdown.
    pub peer_retired: bool,
}

/// What a peer told us in its hello.
#[derive(Debug)]
pub struct Remote {
    pub id: NodeId,
    pub nick: String,
    /// Where it accepts peers, as far as this node can tell: the address dialled, or
    /// the address it came from with the port from its hello. `None` if it accepts none.
    pub advertised: Option<SocketAddr>,
    /// Which of two links between the same nodes survives: the smaller key, which both
    /// ends compute alike (the dialling node's id, then the dialler's link id).
    pub link_key: (NodeId, u64),
    pub since: Instant,
    /// The peer has given this link up for another one between us that is not up here
    /// yet: lines still go out on this one (the peer reads it until our shutdown) until
    /// the other one comes up.
    pub leaving: bool,
    /// The peer shut down its writing half after its retire message.
    pub peer_finished: bool,
    /// A whole summary from the peer being read, message by message.
    pub summary: BTreeMap<FeedKey, Seen>,
    /// What the peer lacks and is being sent, author run by author run.
    pub catch_up: VecDeque<Plan>,
    /// When this node last sent the peer a whole summary.
    pub summary_sent: Option<Instant>,
    /// While the peer is told every member: the last one sent (`Some(None)` before
    /// the first).
    pub members_cursor: Option<Option<NodeId>>,
    /// Lines go to the peer as ids only: the link is off the broadcast tree (with
    /// `Broadcast::Tree`), pruned by either end, until either end grafts it back.
    pub lazy: bool,
    /// New live lines that came first over this link lately (see `node::tree`).
    pub firsts: u32,
    /// Lines taken since the peer was last told, per author run: the first and the
    /// end of their sequence numbers.
    pub unannounced: BTreeMap<FeedKey, (u64, u64)>,
    /// When the peer last passed this node a random walk (see `node::mixing`).
    pub last_walk: Option<Instant>,
}

/// A link to another node.
#[derive(Debug)]
pub struct Peer {
    pub direction: Direction,
    /// The remote socket address, once connected.
    pub addr: Option<SocketAddr>,
    /// `host:port` as given to `--connect` or `/connect`, for dialled links.
    pub target: Option<String>,
    /// The client whose `/connect` made this link, to be told if it fails (and then it
    /// is not dialled again).
    pub requested_by: Option<ConnId>,
    pub phase: Phase,
    /// The secure channel, from the moment the connection is made.
    pub channel: Option<Box<Channel>>,
    /// Cuts the channel's plaintext into frames.
    pub decoder: Decoder,
    /// When bytes last arrived from the peer: a link quiet for long is pinged, and a
    /// peer silent for longer is dropped (a frozen or cut-off host).
    pub last_heard: Instant,
    /// Dials of this address in a row that did not reach a handshake; sets the backoff.
    pub failures: u32,
    /// Dialled because an operator asked (`--connect`, `/connect`): dialled again
    /// whenever lost. Learned addresses are not.
    pub hand: bool,
}

/// How a connection's send queue stands against the pause mark; this is the whole of
/// the node's backpressure, the same for peers and clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlog {
    /// Under the pause mark.
    Clear,
    /// Over the pause mark and draining: the node stops reading its local clients and
    /// its peers (all but this one) until it drains, so that a burst waits upstream,
    /// all the way back to the client that wrote it, instead of piling up here.
    Congested,
    /// Over the pause mark and not draining for a while (or, for a peer, over it for
    /// too long): it holds nobody back any more, until it is under the mark again.
    /// Nodes in a cycle that each wait for the next would otherwise wait for ever, and a
    /// peer could throttle the node by reading a trickle; one that stays stuck is cut.
    Stuck,
}

impl Peer {
    /// Who the handshake proved the peer to be, while the link is proven, up or given
    /// up after that.
    pub fn proven_id(&self) -> Option<NodeId> {
        match &self.phase {
            Phase::Proven(proven) => Some(proven.id),
            Phase::Up(remote) => Some(remote.id),
            Phase::Retired(retired) => retired.proven,
            _ => None,
        }
    }

    /// The remote end, if the handshake is done and the link not given up.
    pub fn remote(&self) -> Option<&Remote> {
        match &self.phase {
            Phase::Up(remote) => Some(remote),
            _ => None,
        }
    }

    pub fn remote_mut(&mut self) -> Option<&mut Remote> {
        match &mut self.phase {
            Phase::Up(remote) => Some(remote),
            _ => None,
        }
    }

    /// The remote end, if the link was up at some point (and may be retired now).
    pub fn came_up(&self) -> Option<&Remote> {
        match &self.phase {
            Phase::Up(remote) => Some(remote),
            Phase::Retired(retired) => retired.was_up.as_deref(),
            _ => None,
        }
    }

    /// Whether its hello has arrived: other messages are allowed, a second hello not.
    pub fn greeted(&self) -> bool {
        match &self.phase {
            Phase::Up(_) => true,
            Phase::Retired(retired) => retired.greeted,
            _ => false,
        }
    }

    /// The address to name in logs and replies: the socket address once known, else
    /// the dial target.
    pub fn addr_label(&self) -> String {
        match (&self.addr, &self.target) {
            (Some(addr), _) => addr.to_string(),
            (None, Some(target)) => target.clone(),
            (None, None) => "?".to_owned(),
        }
    }
}

/// A local user or script on the control socket, or an IRC client.
#[derive(Debug)]
pub struct Client {
    pub nick: String,
    /// Where an IRC client stands; `None` on the control socket.
    pub irc: Option<Box<IrcSession>>,
    /// Bytes read but not yet acted on: a partial line, or lines held while paused.
    pub lines: LineBuffer,
    /// Not read from while a peer's queue is over the pause mark.
    pub paused: bool,
    /// The client closed its end: act on what is buffered, then leave.
    pub eof: bool,
    /// Done (by `/quit` or end of input): nothing more is read from it or sent to it,
    /// and it is closed once the replies queued for it are written.
    pub leaving: bool,
}

/// An IRC client's registration and channel.
#[derive(Debug, Default)]
pub struct IrcSession {
    /// The welcome was sent: other commands are taken.
    pub registered: bool,
    /// `CAP LS` or `CAP REQ` came before registration: the welcome waits for `CAP END`.
    pub negotiating: bool,
    pub has_nick: bool,
    pub has_user: bool,
    /// `PASS` gave the listener's password.
    pub password_ok: bool,
    /// It asked for `server-time`: lines carry their time as a tag.
    pub server_time: bool,
    /// In the channel: it is sent the mesh's lines.
    pub joined: bool,
}

#[derive(Debug)]
pub enum Role {
    /// Both roles are boxed: a node keeps a slot for as many connections as it ever had
    /// at once, and an empty slot is as big as a full one.
    Peer(Box<Peer>),
    Client(Box<Client>),
}

#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub role: Role,
    pub queue: SendQueue,
    pub backlog: Backlog,
    /// When the driver last reported bytes written, or the queue passed the pause mark.
    pub last_progress: Instant,
    /// When the queue last passed the pause mark.
    pub congested_since: Instant,
    /// A `Flush` for this connection is waiting in the node's outputs.
    pub flush_requested: bool,
    /// Condemned during this call; it is skipped until the node removes it.
    pub closing: bool,
    /// Armed deadline slots, one per [`super::timers::Timer`].
    pub deadline: Option<Instant>,
    pub stall_deadline: Option<Instant>,
    pub keepalive_deadline: Option<Instant>,
}

impl Conn {
    pub fn peer(&self) -> Option<&Peer> {
        match &self.role {
            Role::Peer(peer) => Some(peer),
            Role::Client(_) => None,
        }
    }

    pub fn peer_mut(&mut self) -> Option<&mut Peer> {
        match &mut self.role {
            Role::Peer(peer) => Some(peer),
            Role::Client(_) => None,
        }
    }

    pub fn client_mut(&mut self) -> Option<&mut Client> {
        match &mut self.role {
            Role::Client(client) => Some(client),
            Role::Peer(_) => None,
        }
    }

    /// A peer whose handshake is done, so chat may be sent to it.
    pub fn is_linked(&self) -> bool {
        !self.closing && self.peer().is_some_and(|p| p.remote().is_some())
    }

    /// A client that is attached and has not left.
    pub fn is_client(&self) -> bool {
        !self.closing && matches!(&self.role, Role::Client(client) if !client.leaving)
    }
}

/// Bytes waiting for the socket, in order. Appends go to the back, the driver writes
/// from the front; memory is given back when the queue runs empty after a burst.
///
/// A peer's frames wait as plaintext until the driver asks for the bytes, and are then
/// sealed together: one transport message for all that a turn queued, not one per frame.
#[derive(Debug, Default)]
pub struct SendQueue {
    /// Bytes for the wire.
    buf: Vec<u8>,
    /// Bytes before this offset have been written.
    head: usize,
    /// Plaintext to seal after `buf`.
    plain: Vec<u8>,
}

/// A drained queue keeps this much capacity for the next burst; more is freed so that
/// idle connections hold no big buffers.
const KEEP_CAPACITY: usize = 64 * 1024;

impl SendQueue {
    /// The bytes to write next.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    /// How many bytes wait, sealed or not.
    pub fn len(&self) -> usize {
        self.buf.len() - self.head + self.plain.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends bytes for the wire as they are.
    pub fn push(&mut self, bytes: &[u8]) {
        self.reclaim();
        self.buf.extend_from_slice(bytes);
    }

    /// Appends plaintext, to be sealed by [`SendQueue::seal`] before it is written.
    pub fn push_plain(&mut self, bytes: &[u8]) {
        self.plain.extend_from_slice(bytes);
    }

    /// Seals the waiting plaintext onto the wire bytes with `seal`; returns by how much
    /// the queue grew (the framing and tags).
    pub fn seal(&mut self, seal: impl FnOnce(&[u8], &mut Vec<u8>)) -> usize {
        if self.plain.is_empty() {
            return 0;
        }
        let before = self.len();
        self.reclaim();
        seal(&self.plain, &mut self.buf);
        // Its capacity is kept for the next turn's frames while the queue is busy, and
        // given back with the rest once the queue drains.
        self.plain.clear();
        self.len() - before
    }

    /// Drops the written prefix before growing, so the buffer never holds more than
    /// twice what waits.
    fn reclaim(&mut self) {
        if self.head > 0 && self.head >= self.buf.len() / 2 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }

    /// Drops `n` written bytes from the front.
    pub fn consume(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.head,
            "the driver wrote more bytes than were queued"
        );
        self.head += n;
        if self.head == self.buf.len() {
            self.head = 0;
            release(&mut self.buf);
            if self.plain.is_empty() {
                release(&mut self.plain);
            }
        }
    }
}

/// Empties a drained buffer, freeing it if a burst made it big.
fn release(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_CAPACITY {
        *buf = Vec::new();
    } else {
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_fifo_across_partial_writes() {
        let mut queue = SendQueue::default();
        queue.push(b"hello ");
        queue.push(b"world");
        queue.consume(3);
        assert_eq!(queue.bytes(), b"lo world");
        queue.push(b"!");
        assert_eq!(queue.bytes(), b"lo world!");
        queue.consume(9);
        assert!(queue.is_empty());
    }

    #[test]
    fn drained_queue_frees_a_big_buffer() {
        let mut queue = SendQueue::default();
        queue.push(&vec![0; KEEP_CAPACITY * 4]);
        queue.consume(KEEP_CAPACITY * 4);
        assert_eq!(queue.buf.capacity(), 0);
        queue.push(b"small");
        queue.consume(5);
        assert!(queue.buf.capacity() > 0, "a small buffer is kept for reuse");
    }

    #[test]
    fn written_prefix_is_reclaimed_before_growing() {
        let mut queue = SendQueue::default();
        queue.push(&[1; 100]);
        queue.consume(60);
        queue.push(&[2; 10]);
        assert_eq!(queue.head, 0);
        assert_eq!(queue.len(), 50);
        assert_eq!(&queue.bytes()[40..], &[2; 10]);
    }

    #[test]
    fn plaintext_is_sealed_after_the_wire_bytes_and_counted_until_then() {
        let mut queue = SendQueue::default();
        queue.push(b"raw ");
        queue.push_plain(b"secret");
        assert_eq!(queue.len(), 10);
        assert_eq!(queue.bytes(), b"raw ");
        let grew = queue.seal(|plain, out| {
            out.push(b'[');
            out.extend(plain.iter().map(u8::to_ascii_uppercase));
            out.push(b']');
        });
        assert_eq!(grew, 2);
        assert_eq!(queue.bytes(), b"raw [SECRET]");
        assert_eq!(queue.seal(|_, _| unreachable!("nothing to seal")), 0);
    }

    #[test]
    #[should_panic(expected = "more bytes than were queued")]
    fn consuming_more_than_queued_is_a_bug() {
        let mut queue = SendQueue::default();
        queue.push(b"ab");
        queue.consume(3);
    }
}
