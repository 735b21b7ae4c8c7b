//! The node: handshakes, flooding, local clients, limits and timers as one state machine.
//! What it does for its local clients lives in the child module `clients`.
//!
//! # Call contract
//!
//! Feed it events with `handle_*`, each with the current time. After every call, drain
//! [`Node::poll_output`] until it returns `None` and carry each [`Output`] out; then read
//! [`Node::poll_timeout`] and call [`Node::handle_timeout`] no later than that instant.
//! Write a connection's bytes from [`Node::send_queue`] and report how many went with
//! [`Node::handle_sent`]. Read from a connection only while [`Node::accepts_input`] says
//! so. Network input never makes a call fail: a peer that misbehaves is closed, with
//! the cause in the log.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, log, warn, Level};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use slab::Slab;

use crate::config::{Limits, NodeConfig};
use crate::wire::frame::Decoder;
use crate::wire::peer::{Hello, Message, MAX_BODY_LEN};
use crate::wire::text;

use super::author::{Author, Verifier};
use super::book::AddressBook;
use super::cause::Cause;
use super::conn::{
    Backlog, Client, Conn, Direction, IrcSession, Peer, Phase, Remote, Retired, Role, SendQueue,
};
use super::ids::{ConnId, NodeId};
use super::logs::{Delivery, Logs};
use super::members::Members;
use super::nicks::Nicks;
use super::rate::{RateLimiter, Verdict};
use super::secure::{Channel, ChannelError, Credentials, Proven};
use super::timers::{Timer, Timers};

mod clients;
mod discovery;
mod irc;
mod lines;
mod members;
mod mixing;
mod tree;

use discovery::ADDRESS_BOOK_CAPACITY;
use irc::IrcLines;

/// Peer connections past `--max-peers` that are told some addresses before they are
/// closed; more are closed at once.
const MAX_REFUSALS: usize = 8;

/// A link must stay up this long for a redial of its address to start again from the
/// shortest backoff: one that a full node refuses, or that flaps, backs off instead.
const STABLE_LINK: Duration = Duration::from_secs(10);

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to `target` (`host:port`, names allowed) for `conn`, then
    /// report [`Node::handle_connected`] or [`Node::handle_error`].
    Dial { conn: ConnId, target: String },
    /// `conn` has bytes in its send queue: write them as far as the socket takes them.
    Flush(ConnId),
    /// Drop `conn`'s socket; the node has forgotten the connection.
    Close(ConnId),
    /// Shut down the writing half of `conn`'s socket once its send queue is written
    /// (it is empty when this is asked): the node queues nothing more for it, but goes
    /// on reading it until the end of stream.
    Finish(ConnId),
}

/// Distinct chat lines seen (written here or received), copies dropped as duplicates,
/// batches whose signature failed, and links taken off the broadcast tree and put
/// back by this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub messages: u64,
    pub duplicates: u64,
    pub forged: u64,
    pub prunes: u64,
    pub grafts: u64,
}

/// What this node last said of itself to the mesh.
#[derive(Debug, Default)]
struct Announced {
    /// The serial of the next announcement.
    serial: u64,
    at: Option<Instant>,
    nicks: Vec<String>,
}

/// A connection the driver accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// On the peer listener, from this address.
    Peer(SocketAddr),
    /// On the control socket.
    Client,
    /// On the IRC listener, from this address.
    Irc(SocketAddr),
}

/// Side effects collected while handling an event, kept apart from the connection slab
/// so that both can be borrowed at once while fanning a message out.
#[derive(Debug, Default)]
struct Effects {
    outputs: VecDeque<Output>,
    /// Connections condemned during this call, removed before it returns.
    doomed: Vec<(ConnId, Cause)>,
    timers: Timers,
    /// Bytes in every send queue together.
    queued: usize,
    /// Connections over the pause mark and draining ([`Backlog::Congested`]): local
    /// clients are not read while any is, and a peer not while any other one is.
    draining: usize,
}

impl Effects {
    fn doom(&mut self, conn: &mut Conn, cause: Cause) {
        if !conn.closing {
            conn.closing = true;
            self.doomed.push((conn.id, cause));
        }
    }

    /// Appends `bytes` to `conn`'s queue within its bound, and asks for a flush: a line
    /// for a client, a frame for a peer (sealed into the channel when it is written).
    fn enqueue(&mut self, conn: &mut Conn, bytes: &[u8], now: Instant, limits: &Limits) {
        self.enqueue_as(conn, bytes, true, now, limits);
    }

    /// Like [`Effects::enqueue`], with `sealed` false for a peer's handshake bytes, which
    /// go out as they are.
    fn enqueue_as(
        &mut self,
        conn: &mut Conn,
        bytes: &[u8],
        sealed: bool,
        now: Instant,
        limits: &Limits,
    ) {
        let limit = match conn.role {
            Role::Peer(_) => limits.peer_queue_max,
            Role::Client(_) => limits.client_queue_max,
        };
        if conn.queue.len() + bytes.len() > limit {
            self.doom(conn, Cause::QueueFull { limit });
            return;
        }
        match conn.role {
            Role::Peer(_) if sealed => conn.queue.push_plain(bytes),
            _ => conn.queue.push(bytes),
        }
        self.queued += bytes.len();
        if !conn.flush_requested {
            conn.flush_requested = true;
            self.outputs.push_back(Output::Flush(conn.id));
        }
        if conn.backlog == Backlog::Clear && conn.queue.len() >= limits.queue_pause {
            conn.last_progress = now;
            conn.congested_since = now;
            self.set_backlog(conn, Backlog::Congested, limits);
        }
    }

    /// Once nothing is left to write on a retired link: asks the driver to shut down
    /// its writing half, or closes it if the other end has shut down its own already.
    fn finish_if_drained(&mut self, conn: &mut Conn) {
        let Role::Peer(peer) = &mut conn.role else {
            return;
        };
        let Phase::Retired(retired) = &mut peer.phase else {
            return;
        };
        if !conn.queue.is_empty() || conn.closing {
            return;
        }
        if retired.peer_finished {
            return self.doom(conn, Cause::ClosedByPeer);
        }
        if !retired.finished {
            retired.finished = true;
            self.outputs.push_back(Output::Finish(conn.id));
        }
    }

    /// A linked peer's keepalive deadline: ping it if it has been quiet, drop it if it
    /// has been silent too long, and say when to look again.
    fn keepalive_due(&mut self, conn: &mut Conn, now: Instant, limits: &Limits) {
        conn.keepalive_deadline = None;
        let (Role::Peer(peer), Some(keepalive)) = (&conn.role, limits.keepalive) else {
            unreachable!("armed for linked peers while keepalive is on");
        };
        let last_heard = peer.last_heard;
        let idle = now.saturating_duration_since(last_heard);
        if idle >= keepalive.peer_timeout {
            return self.doom(conn, Cause::Silent { idle });
        }
        let next = if idle >= keepalive.ping_interval {
            let mut ping = Vec::new();
            Message::encode_ping(&mut ping);
            self.enqueue(conn, &ping, now, limits);
            // Ping again each interval until the timeout.
            (now + keepalive.ping_interval).min(last_heard + keepalive.peer_timeout)
        } else {
            last_heard + keepalive.ping_interval
        };
        let slot = &mut conn.keepalive_deadline;
        self.timers.set(conn.id, Timer::Keepalive, slot, Some(next));
    }

    /// A congested connection's stall deadline: progress re-arms nothing by itself, so
    /// this says what the last progress makes of it.
    fn stall_due(&mut self, conn: &mut Conn, now: Instant, limits: &Limits) {
        conn.stall_deadline = None;
        let idle = now.saturating_duration_since(conn.last_progress);
        if idle >= limits.stall_timeout {
            let queued = conn.queue.len();
            return self.doom(conn, Cause::Stalled { queued, idle });
        }
        let held_too_long = matches!(conn.role, Role::Peer(_))
            && now.saturating_duration_since(conn.congested_since) >= limits.peer_hold_max;
        let backlog = if idle >= limits.stuck_after || held_too_long {
            Backlog::Stuck
        } else {
            conn.backlog
        };
        self.set_backlog(conn, backlog, limits);
    }

    /// Moves `conn` to `backlog` (or keeps it there), keeping the count in step and
    /// re-arming its stall timer: a draining connection is checked `stuck_after` after
    /// its last progress (a peer also `peer_hold_max` after it passed the mark), a
    /// stuck one is cut `stall_timeout` after its last progress.
    fn set_backlog(&mut self, conn: &mut Conn, backlog: Backlog, limits: &Limits) {
        let draining = |b: Backlog| usize::from(b == Backlog::Congested);
        self.draining = self.draining - draining(conn.backlog) + draining(backlog);
        conn.backlog = backlog;
        let at = match backlog {
            Backlog::Clear => None,
            Backlog::Congested => {
                let stuck = conn.last_progress + limits.stuck_after;
                Some(match conn.role {
                    // A peer, unlike a local client, may be hostile: however it drains,
                    // it holds the others back for a bounded stretch only.
                    Role::Peer(_) => stuck.min(conn.congested_since + limits.peer_hold_max),
                    Role::Client(_) => stuck,
                })
            }
            Backlog::Stuck => Some(conn.last_progress + limits.stall_timeout),
        };
        self.timers
            .set(conn.id, Timer::Stall, &mut conn.stall_deadline, at);
    }
}

/// One p2pchat node, without its sockets. See the module documentation for the call
/// contract.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    cfg: NodeConfig,
    /// What the node proves itself with on every link.
    creds: Credentials,
    /// Draws the Noise keys of every handshake.
    rng: ChaCha20Rng,
    started: Instant,
    conns: Slab<Conn>,
    next_serial: u64,
    /// The link to each node we are linked to: at most one per node.
    linked: BTreeMap<NodeId, ConnId>,
    /// Signs the lines this node's clients write.
    author: Author,
    verifier: Verifier,
    /// Every author's lines: duplicates, order, backlog, history.
    logs: Logs,
    nicks: Nicks,
    /// Every node heard from lately.
    members: Members,
    /// This node's latest announcement of itself.
    announced: Announced,
    announce_deadline: Option<Instant>,
    members_deadline: Option<Instant>,
    /// Ids gathered for lazy links and lines awaited after an announcement.
    tree_state: tree::TreeState,
    /// When the member table is swept next.
    sweep_at: Instant,
    /// Members that joined since the last gathered news.
    joined: Vec<NodeId>,
    /// What the logs released for the clients, reused.
    deliveries: Vec<Delivery>,
    /// The last line shown was a late one, introduced as such.
    late_shown: bool,
    /// Batches whose signature failed.
    forged: u64,
    /// Node-level deadlines: lines waiting for order, the next summary round.
    order_deadline: Option<Instant>,
    sync_deadline: Option<Instant>,
    /// `--max-rate`, when asked for.
    rate: Option<RateLimiter>,
    fx: Effects,
    /// Where other nodes accept peers.
    book: AddressBook,
    /// The node-level deadline of the next degree check, if one is due.
    degree_deadline: Option<Instant>,
    /// Random walks still to send, and when the next one goes.
    walks_left: u32,
    walk_deadline: Option<Instant>,
    /// Clients whose input waits for congestion to clear, in the order they stopped.
    paused: Vec<ConnId>,
    clients: usize,
    /// Of those, IRC clients.
    irc_clients: usize,
    /// What IRC clients are sent of the line in `line_buf`, if anything.
    irc_lines: IrcLines,
    /// A frame and a client line, each encoded once per message and copied to every
    /// queue; reused so that relaying allocates nothing per message.
    frame_buf: Vec<u8>,
    line_buf: Vec<u8>,
    /// Handshake bytes to send, and plaintext a channel decrypted: reused per read.
    wire_buf: Vec<u8>,
    plain_buf: Vec<u8>,
}

impl Node {
    /// A node with no connections yet; it asks to dial every `cfg.connect` address.
    pub fn new(cfg: NodeConfig, now: Instant) -> Self {
        let mut rng = ChaCha20Rng::from_seed(cfg.random.0);
        let creds = Credentials::new(&cfg.identity, cfg.network_key.clone(), &mut rng);
        let logs = Logs::new(now, creds.key(), cfg.epoch, cfg.max_authors, cfg.backlog);
        let mut node = Node {
            id: creds.id(),
            author: Author::new(&cfg.identity, cfg.epoch),
            verifier: Verifier::default(),
            logs,
            nicks: Nicks::default(),
            members: Members::new(creds.id(), cfg.max_members),
            announced: Announced::default(),
            announce_deadline: None,
            members_deadline: None,
            tree_state: tree::TreeState::default(),
            sweep_at: now,
            joined: Vec::new(),
            deliveries: Vec::new(),
            late_shown: false,
            forged: 0,
            order_deadline: None,
            sync_deadline: None,
            creds,
            rng,
            rate: cfg.limits.max_rate.map(RateLimiter::new),
            book: AddressBook::new(ADDRESS_BOOK_CAPACITY),
            degree_deadline: None,
            walks_left: if cfg.discovery { mixing::WALKS } else { 0 },
            walk_deadline: None,
            cfg,
            started: now,
            conns: Slab::new(),
            next_serial: 1,
            linked: BTreeMap::new(),
            fx: Effects::default(),
            paused: Vec::new(),
            clients: 0,
            irc_clients: 0,
            irc_lines: IrcLines::default(),
            frame_buf: Vec::new(),
            line_buf: Vec::new(),
            wire_buf: Vec::new(),
            plain_buf: Vec::new(),
        };
        for target in node.cfg.connect.clone() {
            node.dial(now, target, None);
        }
        node.schedule_degree_check(now);
        if node.cfg.announce_interval.is_some() {
            node.announce(now, false);
            node.arm_members_timer(now);
        }
        node
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Every author's lines as this node holds them (read only).
    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    /// Every member this node lists (read only).
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// The chat counters of `/status`.
    pub fn counters(&self) -> Counters {
        let logs = self.logs.counters();
        Counters {
            messages: logs.lines,
            duplicates: logs.duplicates,
            forged: self.forged,
            prunes: self.tree_state.prunes,
            grafts: self.tree_state.grafts,
        }
    }

    /// The driver accepted a connection; returns the id the node knows it by.
    pub fn handle_accepted(&mut self, now: Instant, accepted: Accepted) -> ConnId {
        let id = match accepted {
            Accepted::Peer(addr) => {
                let id = self.insert(
                    now,
                    Role::Peer(Box::new(Peer {
                        direction: Direction::In,
                        addr: Some(addr),
                        target: None,
                        requested_by: None,
                        phase: Phase::Handshaking,
                        channel: None,
                        decoder: Decoder::new(MAX_BODY_LEN),
                        last_heard: now,
                        failures: 0,
                        hand: false,
                    })),
                );
                debug!("peer {addr} connected ({id})");
                // Half-open connections have slots of their own, in all and per address,
                // so that one host holding many cannot keep a peer from elsewhere out.
                let limits = &self.cfg.limits;
                let (all, same_ip) = self.handshakes_from(addr);
                if all > limits.max_handshakes {
                    let limit = limits.max_handshakes;
                    self.doom(id, Cause::HandshakeSlots { from: None, limit });
                } else if same_ip > limits.max_handshakes_per_ip {
                    let (from, limit) = (Some(addr.ip()), limits.max_handshakes_per_ip);
                    self.doom(id, Cause::HandshakeSlots { from, limit });
                } else {
                    self.start_handshake(now, id);
                }
                id
            }
            Accepted::Client | Accepted::Irc(_) => {
                self.clients += 1;
                let irc = matches!(accepted, Accepted::Irc(_)).then(Box::<IrcSession>::default);
                self.irc_clients += usize::from(irc.is_some());
                let id = self.insert(
                    now,
                    Role::Client(Box::new(Client {
                        nick: self.cfg.nick.clone(),
                        irc,
                        lines: Default::default(),
                        paused: false,
                        eof: false,
                        leaving: false,
                    })),
                );
                debug!("client {id} attached");
                let limit = self.cfg.limits.max_clients;
                if self.clients > limit {
                    let cause = Cause::TooMany {
                        what: "clients",
                        limit,
                    };
                    self.reply_error(now, id, format_args!("{cause}"));
                    self.leave(now, id);
                }
                id
            }
        };
        self.reap(now);
        id
    }

    /// A dialled connection is established with `addr`.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId, addr: SocketAddr) {
        let Some(peer) = self.get_mut(conn).and_then(Conn::peer_mut) else {
            return;
        };
        if !matches!(peer.phase, Phase::Connecting) {
            return;
        }
        peer.addr = Some(addr);
        peer.phase = Phase::Handshaking;
        debug!("connected to {addr} ({conn})");
        self.start_handshake(now, conn);
        self.reap(now);
    }

    /// Bytes arrived on `conn`.
    pub fn handle_recv(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.get_mut(conn).filter(|c| !c.closing) else {
            return;
        };
        match &mut c.role {
            Role::Client(client) => {
                client.lines.push(bytes);
                self.read_client_lines(now, conn);
            }
            Role::Peer(peer) => {
                peer.last_heard = now;
                let Some(channel) = peer.channel.take() else {
                    return;
                };
                self.peer_bytes(now, conn, channel, bytes);
            }
        }
        self.reap(now);
    }

    /// Runs a peer's bytes through its channel, then the plaintext's frames through the
    /// node. Both are out of the slab meanwhile, so that handling a frame may touch every
    /// other connection.
    fn peer_bytes(&mut self, now: Instant, conn: ConnId, mut channel: Box<Channel>, bytes: &[u8]) {
        let mut plain = mem::take(&mut self.plain_buf);
        plain.clear();
        self.wire_buf.clear();
        let opened = channel.recv(&self.creds, bytes, &mut self.wire_buf, &mut plain);
        let peer = self.conns[conn.slot].peer_mut().expect("matched a peer");
        let mut decoder = mem::replace(&mut peer.decoder, Decoder::new(0));
        peer.channel = Some(channel);
        match opened {
            // The peer is told our preamble before the close, so that its log says
            // what differs too; the channel reads nothing more meanwhile.
            Err(err @ (ChannelError::Preamble(_) | ChannelError::NetworkKey { .. })) => {
                self.retire(now, conn, Cause::Channel(err), false)
            }
            Err(err) => self.doom(conn, Cause::Channel(err)),
            Ok(opened) => {
                if !self.wire_buf.is_empty() {
                    let c = &mut self.conns[conn.slot];
                    (self.fx).enqueue_as(c, &self.wire_buf, false, now, &self.cfg.limits);
                }
                if let Some(proven) = opened {
                    self.proven(now, conn, proven);
                }
                let mut input = &plain[..];
                while self.get(conn).is_some_and(|c| !c.closing) {
                    match decoder.next(&mut input) {
                        Ok(Some(body)) => self.peer_message(now, conn, body),
                        Ok(None) => break,
                        Err(err) => self.doom(conn, Cause::Frame(err)),
                    }
                }
            }
        }
        if let Some(peer) = self.get_mut(conn).and_then(Conn::peer_mut) {
            peer.decoder = decoder;
        }
        self.plain_buf = plain;
    }

    /// The driver wrote the first `n` bytes of `conn`'s send queue.
    pub fn handle_sent(&mut self, now: Instant, conn: ConnId, n: usize) {
        let limits = &self.cfg.limits;
        let Some(c) = self.conns.get_mut(conn.slot).filter(|c| c.id == conn) else {
            return;
        };
        c.queue.consume(n);
        self.fx.queued -= n;
        match &c.role {
            Role::Client(client) if client.leaving && c.queue.is_empty() => {
                self.fx.doom(c, Cause::ClientLeft);
            }
            Role::Peer(_) => self.fx.finish_if_drained(c),
            Role::Client(_) => {}
        }
        if n > 0 && c.backlog != Backlog::Clear {
            c.last_progress = now;
            // Stuck stays stuck until the queue is under the mark again: a trickle of
            // progress keeps it from being cut, not from holding nobody back.
            let backlog = if c.queue.len() < limits.queue_pause {
                Backlog::Clear
            } else {
                c.backlog
            };
            self.fx.set_backlog(c, backlog, limits);
        }
        if self.catching_up(conn) {
            self.top_up(now, conn);
        }
        self.reap(now);
    }

    /// The remote end closed `conn` (a read returned 0 bytes).
    pub fn handle_eof(&mut self, now: Instant, conn: ConnId) {
        match self.get_mut(conn).map(|c| &mut c.role) {
            Some(Role::Client(client)) => {
                client.eof = true;
                client.lines.finish();
                self.read_client_lines(now, conn);
            }
            // The other end gave the link up first; what is still queued on it went
            // out on no other link, so it is written before the close.
            Some(Role::Peer(peer)) => match &mut peer.phase {
                Phase::Retired(retired) => {
                    retired.peer_finished = true;
                    let conn = self.conns.get_mut(conn.slot).expect("matched above");
                    self.fx.finish_if_drained(conn);
                }
                // The peer gave this link up for one that is not up here yet; it reads
                // this one until our shutdown, so lines go on over it meanwhile.
                Phase::Up(remote) if remote.leaving => remote.peer_finished = true,
                _ => self.doom(conn, Cause::ClosedByPeer),
            },
            None => {}
        }
        self.reap(now);
    }

    /// `conn`'s socket failed: a dial that did not connect, or a broken connection.
    pub fn handle_error(&mut self, now: Instant, conn: ConnId, err: &io::Error) {
        let connecting = self
            .get(conn)
            .and_then(Conn::peer)
            .is_some_and(|p| matches!(p.phase, Phase::Connecting));
        // A write that finds the other end gone is the same news as a read of 0 bytes,
        // whichever the loop happened to try first.
        let closed_by_peer = matches!(
            err.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        );
        let cause = if connecting {
            Cause::DialFailed(text::describe_io_error(err))
        } else if closed_by_peer {
            Cause::ClosedByPeer
        } else {
            Cause::Io(text::describe_io_error(err))
        };
        self.doom(conn, cause);
        self.reap(now);
    }

    /// Fires every deadline that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let limits = &self.cfg.limits;
        let mut redial = Vec::new();
        let (mut degree_due, mut order_due, mut sync_due) = (false, false, false);
        let (mut announce_due, mut members_due, mut tree_due) = (false, false, false);
        let mut walk_due = false;
        while let Some((id, timer)) = self.fx.timers.pop_due(now) {
            if id == ConnId::NODE {
                match timer {
                    Timer::Degree => (self.degree_deadline, degree_due) = (None, true),
                    Timer::Order => (self.order_deadline, order_due) = (None, true),
                    Timer::Sync => (self.sync_deadline, sync_due) = (None, true),
                    Timer::Announce => (self.announce_deadline, announce_due) = (None, true),
                    Timer::Members => (self.members_deadline, members_due) = (None, true),
                    Timer::Tree => tree_due = true,
                    Timer::Walk => (self.walk_deadline, walk_due) = (None, true),
                    _ => unreachable!("connection timers are armed under a connection"),
                }
                continue;
            }
            let conn = self
                .conns
                .get_mut(id.slot)
                .filter(|c| c.id == id)
                .expect("timers are cancelled when their connection is removed");
            match timer {
                Timer::Deadline => {
                    conn.deadline = None;
                    if matches!(&conn.role, Role::Peer(p) if matches!(p.phase, Phase::Waiting)) {
                        redial.push(id);
                        continue;
                    }
                    let cause = match &conn.role {
                        Role::Peer(peer) => match peer.phase {
                            Phase::Connecting => Cause::ConnectTimeout(limits.connect_timeout),
                            Phase::Retired(_) => Cause::Unfinished(limits.handshake_timeout),
                            Phase::Up(_) => Cause::NoReplacement(limits.handshake_timeout),
                            _ => Cause::HandshakeTimeout(limits.handshake_timeout),
                        },
                        // The linger time of a client that left is up.
                        Role::Client(_) => Cause::ClientLeft,
                    };
                    self.fx.doom(conn, cause);
                }
                Timer::Keepalive => self.fx.keepalive_due(conn, now, limits),
                Timer::Stall => self.fx.stall_due(conn, now, limits),
                // The node-level ones.
                _ => unreachable!("armed under ConnId::NODE only"),
            }
        }
        for id in redial {
            self.start_dial(now, id);
        }
        if degree_due {
            self.check_degree(now);
        }
        if order_due {
            self.order_due(now);
        }
        if sync_due {
            self.sync_due(now);
        }
        if announce_due {
            self.announce(now, false);
        }
        if members_due {
            self.members_due(now);
        }
        if tree_due {
            self.tree_due(now);
        }
        if walk_due {
            self.walk_due(now);
        }
        self.reap(now);
    }

    /// The next thing for the driver to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        let output = self.fx.outputs.pop_front()?;
        if let Output::Flush(id) = output {
            if let Some(conn) = self.get_mut(id) {
                conn.flush_requested = false;
            }
        }
        Some(output)
    }

    /// When [`Node::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.fx.timers.next()
    }

    /// Bytes waiting to be written to `conn`; empty for an unknown connection. A peer's
    /// frames queued since the last call are sealed here, all in as few transport
    /// messages as they fit.
    pub fn send_queue(&mut self, conn: ConnId) -> &[u8] {
        let Some(c) = self.conns.get_mut(conn.slot).filter(|c| c.id == conn) else {
            return &[];
        };
        if let Role::Peer(peer) = &mut c.role {
            if let Some(channel) = peer.channel.as_mut().filter(|ch| ch.is_open()) {
                self.fx.queued += c.queue.seal(|plain, wire| channel.seal(plain, wire));
            }
        }
        c.queue.bytes()
    }

    /// Queues `frame` (a whole frame, any bytes) for every linked peer as though the node
    /// had chosen to send it: the voice of a hostile member, for the simulator and for
    /// tests that need a real node to misbehave. Nothing else calls it.
    pub fn inject_frame(&mut self, now: Instant, frame: &[u8]) {
        self.frame_buf.clear();
        self.frame_buf.extend_from_slice(frame);
        self.send_frame_to_peers(now, None);
        self.reap(now);
    }

    /// Bytes queued for `conn`, sealed or not: what its limits count.
    pub fn queued(&self, conn: ConnId) -> usize {
        self.get(conn).map_or(0, |c| c.queue.len())
    }

    /// Whether the driver should read from `conn` now. A client is not read while its
    /// lines cannot be sent on (some queue is over the pause mark), a peer not while
    /// another connection's queue is over it and draining.
    pub fn accepts_input(&self, conn: ConnId) -> bool {
        self.get(conn).is_some_and(|c| {
            !c.closing
                && match &c.role {
                    Role::Client(client) => {
                        self.fx.draining == 0 && !client.paused && !client.eof && !client.leaving
                    }
                    // Reading a peer adds to every queue but its own.
                    Role::Peer(peer) => {
                        let own = usize::from(c.backlog == Backlog::Congested);
                        !matches!(peer.phase, Phase::Waiting | Phase::Connecting)
                            && self.fx.draining == own
                    }
                }
        })
    }

    /// Accepted connections in the handshake (this one included): in all, and from the
    /// IP address of `from`.
    fn handshakes_from(&self, from: SocketAddr) -> (usize, usize) {
        let mut counts = (0, 0);
        for (_, conn) in &self.conns {
            let Some(peer) = conn.peer().filter(|p| p.direction == Direction::In) else {
                continue;
            };
            // A link given up, before it came up or after, holds its slot until it
            // closes: replacing links one after another must not pile them up.
            let unlinked = matches!(
                peer.phase,
                Phase::Handshaking | Phase::Proven(_) | Phase::Retired(_)
            );
            if unlinked && !conn.closing {
                counts.0 += 1;
                counts.1 += usize::from(peer.addr.map(|a| a.ip()) == Some(from.ip()));
            }
        }
        counts
    }

    /// Links refused for being over `--max-peers` that are still being told addresses.
    fn refusals(&self) -> usize {
        (self.conns.iter())
            .filter(|(_, c)| {
                matches!(c.peer().map(|p| &p.phase), Some(Phase::Retired(r))
                    if matches!(r.cause, Cause::TooMany { .. }))
            })
            .count()
    }

    fn get(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(id.slot).filter(|c| c.id == id)
    }

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(id.slot).filter(|c| c.id == id)
    }

    fn insert(&mut self, now: Instant, role: Role) -> ConnId {
        let entry = self.conns.vacant_entry();
        let id = ConnId {
            serial: self.next_serial,
            slot: entry.key(),
        };
        self.next_serial += 1;
        entry.insert(Conn {
            id,
            role,
            queue: SendQueue::default(),
            backlog: Backlog::Clear,
            last_progress: now,
            congested_since: now,
            flush_requested: false,
            closing: false,
            deadline: None,
            stall_deadline: None,
            keepalive_deadline: None,
        });
        id
    }

    fn doom(&mut self, id: ConnId, cause: Cause) {
        if let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == id) {
            self.fx.doom(conn, cause);
        }
    }

    fn set_timer(&mut self, id: ConnId, timer: Timer, at: Option<Instant>) {
        let conn = &mut self.conns[id.slot];
        let slot = match timer {
            Timer::Deadline => &mut conn.deadline,
            Timer::Stall => &mut conn.stall_deadline,
            Timer::Keepalive => &mut conn.keepalive_deadline,
            _ => unreachable!("a node-level timer, set by its own method"),
        };
        self.fx.timers.set(id, timer, slot, at);
    }

    /// Asks the driver to dial `target` for a new outgoing link.
    fn dial(&mut self, now: Instant, target: String, requested_by: Option<ConnId>) {
        let id = self.insert_dialled(now, target, true, Phase::Connecting);
        let peer = self.conns[id.slot]
            .peer_mut()
            .expect("just inserted a peer");
        peer.requested_by = requested_by;
        self.start_dial(now, id);
    }

    /// Dials an address given by hand again, after a backoff that doubles with each
    /// failure in a row.
    fn redial_later(&mut self, now: Instant, target: String, failures: u32) {
        let Some(redial) = self.cfg.limits.redial else {
            return;
        };
        let backoff = redial
            .min
            .saturating_mul(1 << failures.min(16))
            .min(redial.max);
        let delay = backoff / 2 + backoff.mul_f64(self.random_unit() / 2.0);
        let id = self.insert_dialled(now, target.clone(), true, Phase::Waiting);
        let peer = self.conns[id.slot]
            .peer_mut()
            .expect("just inserted a peer");
        peer.failures = failures;
        info!(
            "dialling {target} again in {:.1}s ({id})",
            delay.as_secs_f32()
        );
        self.set_timer(id, Timer::Deadline, Some(now + delay));
    }

    /// A number in [0, 1) from the node's own seeded sequence: deterministic, yet
    /// different on every node.
    fn random_unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index below `len` (which is above 0), picked at random as by [`Node::random_unit`].
    fn random_below(&mut self, len: usize) -> usize {
        ((self.random_unit() * len as f64) as usize).min(len - 1)
    }

    fn insert_dialled(&mut self, now: Instant, target: String, hand: bool, phase: Phase) -> ConnId {
        self.insert(
            now,
            Role::Peer(Box::new(Peer {
                direction: Direction::Out,
                addr: None,
                target: Some(target),
                requested_by: None,
                phase,
                channel: None,
                decoder: Decoder::new(MAX_BODY_LEN),
                last_heard: now,
                failures: 0,
                hand,
            })),
        )
    }

    /// Asks the driver to dial the target of `id`, within the connect timeout.
    fn start_dial(&mut self, now: Instant, id: ConnId) {
        let peer = self.conns[id.slot].peer_mut().expect("only peers dial");
        peer.phase = Phase::Connecting;
        let target = peer.target.clone().expect("dialled peers have a target");
        info!("dialling {target} ({id})");
        let deadline = now + self.cfg.limits.connect_timeout;
        self.set_timer(id, Timer::Deadline, Some(deadline));
        self.fx.outputs.push_back(Output::Dial { conn: id, target });
    }

    /// Starts the secure channel and gives the peer until the deadline to finish the
    /// handshake and send its hello.
    fn start_handshake(&mut self, now: Instant, id: ConnId) {
        let deadline = now + self.cfg.limits.handshake_timeout;
        self.set_timer(id, Timer::Deadline, Some(deadline));
        let conn = &mut self.conns[id.slot];
        let peer = conn.peer_mut().expect("only peers shake hands");
        let initiator = peer.direction == Direction::Out;
        self.wire_buf.clear();
        let channel = Channel::new(&self.creds, initiator, &mut self.rng, &mut self.wire_buf);
        peer.channel = Some(Box::new(channel));
        (self.fx).enqueue_as(conn, &self.wire_buf, false, now, &self.cfg.limits);
    }

    /// The handshake proved who the peer is: our hello goes out, inside the channel.
    /// A node with all the peers it takes says so in its hello, tells the newcomer
    /// where others accept peers and gives the link up: a newcomer that chose a full
    /// node to bootstrap from would otherwise be left with nowhere to go. Only a few at
    /// a time, so that a crowd of dials costs no more than the limit allows.
    fn proven(&mut self, now: Instant, id: ConnId, proven: Proven) {
        let limit = self.cfg.limits.max_peers;
        let full = self.linked.len() >= limit && !self.linked.contains_key(&proven.id);
        let peer = self.conns[id.slot]
            .peer_mut()
            .expect("only peers shake hands");
        peer.phase = Phase::Proven(proven);
        let full = full && peer.direction == Direction::In;
        if !full {
            return self.send_hello(now, id, false);
        }
        let cause = Cause::TooMany {
            what: "peers",
            limit,
        };
        if self.refusals() >= MAX_REFUSALS {
            return self.doom(id, cause);
        }
        self.send_hello(now, id, true);
        self.send_known_to(now, id);
        self.retire(now, id, cause, false);
    }

    fn send_hello(&mut self, now: Instant, id: ConnId, refusing: bool) {
        let conn = &mut self.conns[id.slot];
        let outgoing = conn.peer().is_some_and(|p| p.direction == Direction::Out);
        self.frame_buf.clear();
        Hello {
            epoch: self.cfg.epoch,
            listen_port: self.cfg.listen_addr.map_or(0, |addr| addr.port()),
            link_id: if outgoing { id.serial } else { 0 },
            refusing,
            nick: &self.cfg.nick,
        }
        .encode(&mut self.frame_buf);
        self.fx
            .enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
    }

    fn peer_message(&mut self, now: Instant, id: ConnId, body: &[u8]) {
        let message = match Message::parse(body) {
            Ok(message) => message,
            Err(err) => return self.doom(id, Cause::Peer(err)),
        };
        if let Message::Hello(hello) = message {
            return self.peer_hello(now, id, hello);
        }
        let conn = &self.conns[id.slot];
        let peer = conn.peer().expect("only peers decode frames");
        let kind = message.kind();
        if !peer.greeted() {
            return self.doom(id, Cause::BeforeHello { kind });
        }
        let retired_by_peer = match &peer.phase {
            Phase::Retired(retired) => retired.peer_retired,
            Phase::Up(remote) => remote.leaving,
            _ => false,
        };
        if retired_by_peer {
            return self.doom(id, Cause::AfterRetire { kind });
        }
        // A link given up for a duplicate before it came up here may have been up at
        // the other end, which sent lines on it meanwhile; only a refused link (or one
        // to this node's own key) carries no chat.
        let duplicate = matches!(&peer.phase,
            Phase::Retired(r) if matches!(r.cause, Cause::Duplicate { .. }));
        match message {
            Message::Lines(_) | Message::Have(_) | Message::IHave(_) | Message::Member(_)
                if peer.came_up().is_none() && !duplicate =>
            {
                self.doom(id, Cause::NeverUp { kind })
            }
            Message::Lines(batch) => self.peer_lines(now, id, batch),
            Message::Have(have) => self.peer_have(now, id, have),
            Message::Member(announce) => self.peer_member(now, id, announce),
            // Nothing more is written on a retired link.
            Message::Ping if !conn.is_linked() => {}
            Message::Ping => {
                self.frame_buf.clear();
                Message::encode_pong(&mut self.frame_buf);
                let conn = &mut self.conns[id.slot];
                self.fx
                    .enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
            }
            // Its arrival was the point: the link is heard from.
            Message::Pong => {}
            Message::Addrs(addrs) => self.learn_addrs(now, id, addrs),
            Message::Retire => self.peer_retired(now, id),
            Message::IHave(have) => self.peer_ihave(now, id, have),
            Message::Prune => self.peer_tree_link(id, true),
            Message::Graft => self.peer_tree_link(id, false),
            Message::Walk(walk) => self.peer_walk(now, id, walk),
            Message::Hello(_) => unreachable!("handled above"),
        }
    }

    /// The peer gives this link up for another one between us. If that one is up here
    /// too, this end gives it up as well; if not, lines go on over this one until it is
    /// (or until the handshake timeout), since the peer reads it until our shutdown.
    fn peer_retired(&mut self, now: Instant, id: ConnId) {
        let peer = self.conns[id.slot]
            .peer_mut()
            .expect("only peers decode frames");
        match &mut peer.phase {
            Phase::Retired(retired) => retired.peer_retired = true,
            Phase::Up(remote) => {
                remote.leaving = true;
                let deadline = now + self.cfg.limits.handshake_timeout;
                self.set_timer(id, Timer::Deadline, Some(deadline));
            }
            _ => unreachable!("greeted links only"),
        }
    }

    fn peer_hello(&mut self, now: Instant, id: ConnId, hello: Hello<'_>) {
        let peer = self.conns[id.slot]
            .peer_mut()
            .expect("only peers decode frames");
        let remote_id = match &mut peer.phase {
            Phase::Proven(proven) => proven.id,
            // A refused peer's hello: nothing more to do with it than to read on.
            Phase::Retired(retired) if !retired.greeted => {
                retired.greeted = true;
                return;
            }
            _ => return self.doom(id, Cause::UnexpectedHello),
        };
        if remote_id == self.id {
            let cause = if hello.epoch == self.cfg.epoch {
                Cause::SelfLink
            } else {
                Cause::SameKey
            };
            // Gracefully: the other end must read our hello to know why, too.
            return self.retire(now, id, cause, true);
        }
        if hello.refusing {
            return self.retire(now, id, Cause::Refused, true);
        }
        let peer = self.conns[id.slot]
            .peer()
            .expect("only peers decode frames");
        // Both ends name a link by who dialled it, so both keep the same one of two.
        let link_key = match peer.direction {
            Direction::Out => (self.id, id.serial),
            Direction::In => (remote_id, hello.link_id),
        };
        // Handshakes that finished together may each have found room; the hellos, which
        // a peer that never sends one cannot fake, settle who gets it.
        let limit = self.cfg.limits.max_peers;
        if self.linked.len() >= limit && !self.linked.contains_key(&remote_id) {
            let cause = Cause::TooMany {
                what: "peers",
                limit,
            };
            return self.retire(now, id, cause, true);
        }
        if let Some(&other) = self.linked.get(&remote_id) {
            let other_key = self.conns[other.slot]
                .peer()
                .and_then(Peer::remote)
                .expect("linked connections are up")
                .link_key;
            if other_key < link_key {
                return self.retire(now, id, Cause::Duplicate { kept: other }, true);
            }
            self.retire(now, other, Cause::Replaced { by: id }, true);
        }
        self.linked.insert(remote_id, id);
        self.set_timer(id, Timer::Deadline, None);
        if let Some(keepalive) = self.cfg.limits.keepalive {
            self.set_timer(id, Timer::Keepalive, Some(now + keepalive.ping_interval));
        }
        let peer = self.conns[id.slot]
            .peer_mut()
            .expect("only peers decode frames");
        let advertised = match (peer.direction, peer.addr, hello.listen_port) {
            (_, None, _) | (Direction::In, _, 0) => None,
            (Direction::Out, Some(dialled), _) => Some(dialled),
            (Direction::In, Some(from), port) => Some(SocketAddr::new(from.ip(), port)),
        };
        peer.phase = Phase::Up(Box::new(Remote {
            id: remote_id,
            nick: hello.nick.to_owned(),
            advertised,
            link_key,
            since: now,
            leaving: false,
            peer_finished: false,
            summary: BTreeMap::new(),
            catch_up: VecDeque::new(),
            summary_sent: None,
            members_cursor: Some(None),
            lazy: false,
            firsts: 0,
            unannounced: BTreeMap::new(),
            last_walk: None,
        }));
        let (addr, direction, hand) = (peer.addr_label(), peer.direction, peer.hand);
        info!(
            "peer {addr} up: node {remote_id} nick {} ({direction}, {id})",
            hello.nick
        );
        self.notify_clients(
            now,
            format_args!("peer up {addr} {direction} {remote_id} {}", hello.nick),
        );
        self.exchange_addrs(now, id);
        self.send_summary(now, Some(id));
        self.top_up(now, id);
        if direction == Direction::Out && !hand {
            self.trim(id);
        }
        self.schedule_walk(now);
    }

    /// Gives up a link (see [`Retired`]), whose hello has arrived or not, and tells the
    /// peer so; the loss is reported when it closes.
    fn retire(&mut self, now: Instant, id: ConnId, cause: Cause, greeted: bool) {
        let conn = &mut self.conns[id.slot];
        let peer = conn.peer().expect("only peer links are retired");
        if peer.channel.as_ref().is_some_and(|c| c.is_open()) {
            self.frame_buf.clear();
            Message::encode_retire(&mut self.frame_buf);
            (self.fx).enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
        }
        let peer = conn.peer_mut().expect("only peer links are retired");
        let proven = peer.proven_id();
        let was_up = match mem::replace(&mut peer.phase, Phase::Handshaking) {
            Phase::Up(remote) => Some(remote),
            _ => None,
        };
        debug!("retiring {id}: {cause}");
        let (peer_retired, peer_finished) = was_up
            .as_ref()
            .map_or((false, false), |r| (r.leaving, r.peer_finished));
        peer.phase = Phase::Retired(Box::new(Retired {
            cause,
            was_up,
            proven,
            greeted,
            finished: false,
            peer_finished,
            peer_retired,
        }));
        let never_up = matches!(&peer.phase, Phase::Retired(r) if r.was_up.is_none());
        let earlier = conn.deadline.filter(|_| never_up);
        self.fx.finish_if_drained(conn);
        self.set_timer(id, Timer::Keepalive, None);
        // A link that never came up keeps the deadline of its handshake, so that one
        // given up late cannot hold its slot for longer.
        let deadline = now + self.cfg.limits.handshake_timeout;
        let deadline = earlier.map_or(deadline, |at| at.min(deadline));
        self.set_timer(id, Timer::Deadline, Some(deadline));
    }

    /// Whether `lines` new lines from `origin` are within `--max-rate`; the log names
    /// an origin over it, at most every few seconds.
    fn within_rate(&mut self, now: Instant, origin: NodeId, lines: u64) -> bool {
        let Some(rate) = &mut self.rate else {
            return true;
        };
        match rate.admit(origin, lines, now) {
            Verdict::Pass => true,
            Verdict::Drop => false,
            Verdict::DropAndReport { dropped } => {
                let max = rate.max();
                warn!(
                    "node {origin} sends over --max-rate ({} lines/s, bursts of {}): \
                     {dropped} of its lines dropped since the last report",
                    max.per_sec, max.burst
                );
                false
            }
        }
    }

    /// Copies `frame_buf` into the queue of every linked peer but `except`.
    fn send_frame_to_peers(&mut self, now: Instant, except: Option<ConnId>) {
        for (_, conn) in &mut self.conns {
            if conn.is_linked() && Some(conn.id) != except {
                self.fx
                    .enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
            }
        }
    }

    /// Copies `line_buf` into the queue of every control client but `except`, and
    /// `irc_lines` into that of every IRC client in the channel but `except`.
    fn send_line_to_clients(&mut self, now: Instant, except: Option<ConnId>) {
        for (_, conn) in &mut self.conns {
            if !conn.is_client() || Some(conn.id) == except {
                continue;
            }
            let Role::Client(client) = &conn.role else {
                continue;
            };
            let bytes = match &client.irc {
                None => &self.line_buf[..],
                Some(session) if session.joined => self.irc_lines.for_client(session.server_time),
                Some(_) => continue,
            };
            if !bytes.is_empty() {
                self.fx.enqueue(conn, bytes, now, &self.cfg.limits);
            }
        }
    }

    /// Copies `line_buf` into the queue of one client.
    fn send_line_to(&mut self, now: Instant, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id.slot).filter(|c| c.id == id) {
            if conn.is_client() {
                self.fx.enqueue(conn, &self.line_buf, now, &self.cfg.limits);
            }
        }
    }

    /// Removes every condemned connection, tells whoever should know, and lets paused
    /// clients go on once no peer is congested any more.
    fn reap(&mut self, now: Instant) {
        loop {
            self.shed_over_budget();
            while !self.fx.doomed.is_empty() {
                for (id, cause) in mem::take(&mut self.fx.doomed) {
                    self.remove(now, id, cause);
                }
            }
            if self.fx.draining > 0 || self.paused.is_empty() {
                return;
            }
            self.resume_clients(now);
        }
    }

    /// While the send queues together hold more than the node's budget, condemns the
    /// connection with the longest queue: the slowest reader, whoever it is.
    fn shed_over_budget(&mut self) {
        let limit = self.cfg.limits.total_queue_max;
        if self.fx.queued <= limit {
            return;
        }
        // Queues of connections condemned already are about to go.
        let going: usize = (self.fx.doomed.iter())
            .map(|(id, _)| self.conns[id.slot].queue.len())
            .sum();
        let mut excess = (self.fx.queued - going).saturating_sub(limit);
        while excess > 0 {
            let Some((_, longest)) = self
                .conns
                .iter_mut()
                .filter(|(_, c)| !c.closing)
                .max_by_key(|(_, c)| c.queue.len())
            else {
                return;
            };
            let queued = longest.queue.len();
            self.fx.doom(longest, Cause::OverBudget { queued, limit });
            excess = excess.saturating_sub(queued);
        }
    }

    fn remove(&mut self, now: Instant, id: ConnId, cause: Cause) {
        let mut conn = self.conns.remove(id.slot);
        debug_assert_eq!(conn.id, id, "a doomed connection stays in its slot");
        self.fx.queued -= conn.queue.len();
        self.fx
            .timers
            .set(id, Timer::Deadline, &mut conn.deadline, None);
        self.fx
            .timers
            .set(id, Timer::Keepalive, &mut conn.keepalive_deadline, None);
        // Also cancels the stall timer.
        self.fx
            .set_backlog(&mut conn, Backlog::Clear, &self.cfg.limits);
        self.fx.outputs.push_back(Output::Close(id));
        let misbehaved = cause.is_misbehaviour();
        let peer = match conn.role {
            Role::Client(client) => {
                self.clients -= 1;
                self.irc_clients -= usize::from(client.irc.is_some());
                self.paused.retain(|&c| c != id);
                self.nicks_changed(now);
                let level = if misbehaved {
                    Level::Warn
                } else {
                    Level::Debug
                };
                log!(level, "client {id} detached: {cause}");
                return;
            }
            Role::Peer(peer) => peer,
        };
        // A retired link closes for the reason it was given up.
        let cause = match peer.phase {
            Phase::Retired(ref retired) => {
                let level = if cause.is_misbehaviour() {
                    Level::Warn
                } else {
                    Level::Debug
                };
                log!(level, "retired {id} closed: {cause}");
                &retired.cause
            }
            _ => &cause,
        };
        self.report_peer_loss(now, id, &peer, cause);
        self.learn_from_loss(&peer, cause);
        self.schedule_degree_check(now);
        // An address given by hand is dialled again for as long as the node runs,
        // unless the link was one too many (the nodes are linked otherwise) or led back
        // to this node. A `/connect` whose first dial failed is not: its client was
        // told, and a typo must not hold a peer slot for ever.
        let one_too_many = matches!(
            cause,
            Cause::SelfLink | Cause::SameKey | Cause::Duplicate { .. } | Cause::Replaced { .. }
        );
        let refused_at_once = peer.requested_by.is_some() && peer.came_up().is_none();
        let stable = peer
            .came_up()
            .is_some_and(|remote| now.saturating_duration_since(remote.since) >= STABLE_LINK);
        if let (Some(target), true, false) =
            (peer.target, peer.hand, one_too_many || refused_at_once)
        {
            let failures = if stable { 0 } else { peer.failures + 1 };
            self.redial_later(now, target, failures);
        }
    }

    /// Logs the loss of a peer connection and tells whoever should know: every client
    /// if the link was up, else the client whose `/connect` it was.
    fn report_peer_loss(&mut self, now: Instant, id: ConnId, peer: &Peer, cause: &Cause) {
        let level = if cause.is_misbehaviour() {
            Level::Warn
        } else if cause.is_quiet() {
            Level::Debug
        } else {
            Level::Info
        };
        let addr = peer.addr_label();
        let Some(remote) = peer.came_up() else {
            log!(
                level,
                "peer {addr} dropped before the handshake ({id}): {cause}"
            );
            if let Some(client) = peer.requested_by {
                self.reply_error(
                    now,
                    client,
                    format_args!("cannot connect to {addr}: {cause}"),
                );
            }
            return;
        };
        if self.linked.get(&remote.id) == Some(&id) {
            self.linked.remove(&remote.id);
        }
        let direction = peer.direction;
        log!(
            level,
            "peer {addr} down: node {} ({direction}, {id}, up {}s): {cause}",
            remote.id,
            now.duration_since(remote.since).as_secs()
        );
        self.notify_clients(
            now,
            format_args!(
                "peer down {addr} {direction} {} {}: {cause}",
                remote.id, remote.nick
            ),
        );
    }
}
