//! The virtual network: it plays the driver for many [`Node`]s on a virtual clock.
//!
//! Every node is driven through the public call contract only, as `driver/` drives one:
//! outputs drained after every call, dials resolved to the node listening on the target
//! address, send queues written into links as far as the link's window allows and
//! reported with `handle_sent`, input read only while `accepts_input` says so, and
//! `handle_timeout` called at `poll_timeout`. Each link is two directed byte pipes with a
//! latency, a jitter, an optional bandwidth and a window (the socket buffers): bytes
//! arrive in order, cut into random chunks, and a receiver that does not read leaves
//! the window full, so its sender's queue grows as it would behind TCP.
//!
//! Events live in a binary heap keyed by (virtual time, sequence number), and every
//! choice comes from the seeded [`Rng`], so a seed names a run exactly. Invariants are
//! checked after every step of a node; a violation panics with the time and the node,
//! and the caller adds the seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::config::{Broadcast, Limits, NodeConfig, Secret};
use crate::proto::author::Author;
use crate::proto::node::Counters;
use crate::proto::secure::public_key;
use crate::proto::{Accepted, ConnId, Node, Output};
use crate::wire::lines::{Batch, KEY_LEN, SIGNATURE_LEN};
use crate::wire::peer::{Message, MAX_ADDRS};

use super::rng::{Rng, Trace};

/// The port every simulated node listens on.
const PORT: u16 = 7654;

/// How links and nodes behave.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// One-way delay of every byte.
    pub latency: Duration,
    /// Up to this much is added to each chunk's delay (never reordering a pipe).
    pub jitter: Duration,
    /// Chunks are 1 to this many bytes, so frames arrive cut anywhere.
    pub max_chunk: usize,
    /// Bytes a pipe holds between a write and the receiver's read: the socket buffers.
    pub window: usize,
    /// Lines each node keeps for catch-up and history.
    pub backlog_lines: usize,
    pub hop_limit: u8,
    /// Whether nodes dial addresses learned from their peers; off unless a scenario
    /// is about the mesh growing, since the checks compare links with the graph.
    pub discovery: bool,
    /// Every node's `--announce-interval`: announcements never stop, so with them on a
    /// network never goes quiet.
    pub announce: Option<Duration>,
    /// How every node passes lines on (`--broadcast`).
    pub broadcast: Broadcast,
    pub limits: Limits,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(5),
            max_chunk: 200,
            window: 256 * 1024,
            // Every line of any scenario, while 100,000 nodes still fit in memory.
            backlog_lines: 20_000,
            hop_limit: crate::config::DEFAULT_HOP_LIMIT,
            discovery: false,
            announce: None,
            broadcast: Broadcast::Flood,
            limits: Limits {
                // Pings never stop, so with them a wave would never go quiet; crashes
                // are seen as ends of stream here, which is what the scenarios test.
                keepalive: None,
                // Redials of crashed nodes never stop either; the scenarios restore
                // links themselves.
                redial: None,
                ..Limits::default()
            },
        }
    }
}

/// A line a client received: which scenario line, when, and by which run of the node
/// (an index into [`Net::runs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Received {
    pub line: u32,
    pub at: Duration,
    pub run: usize,
}

/// One end of a link: a connection of one incarnation of a node.
#[derive(Debug)]
struct End {
    node: u32,
    conn: ConnId,
    open: bool,
}

/// Bytes travelling from one end of a link to the other.
#[derive(Debug, Default)]
struct Pipe {
    /// Written and not yet read by the receiver: in flight or held.
    unread: usize,
    /// When the last chunk arrives; later chunks never overtake it.
    last_arrival: Duration,
    /// Arrived while the receiver did not accept input.
    held: Vec<u8>,
    /// The sender closed; the end of stream is on its way or here.
    eof_sent: bool,
    /// The end of stream arrived; the receiver sees it after the held bytes.
    eof: bool,
    /// The receiver was told of the end of stream.
    eof_read: bool,
    /// When the receiver was told of it.
    eof_read_at: Duration,
    /// The sender has more queued than the window took: write again when it drains.
    want_write: bool,
    /// Bytes per second, or unlimited.
    bandwidth: Option<u64>,
}

/// Two pipes between two ends: `pipes[d]` carries bytes from `ends[d]` to `ends[1 - d]`.
#[derive(Debug)]
struct Link {
    ends: [End; 2],
    pipes: [Pipe; 2],
    /// Cut: nothing more crosses, in flight or not.
    dead: bool,
    /// Events in the queue that name this link: its slot is reused only once both
    /// ends are closed and none is left, so that no late event reaches a newer link.
    pending: u32,
    /// In `Net::free_links`.
    free: bool,
}

/// A node slot: the running incarnation, if any, and what the sim knows of it.
#[derive(Debug)]
struct Slot {
    node: Option<Node>,
    /// Bumped on every crash, so events for a dead incarnation are dropped.
    epoch: u32,
    /// The node's identity key, drawn at its first start and kept across restarts, as
    /// a key file keeps it.
    identity: Option<Secret>,
    /// When each run started, and the current run's epoch.
    runs: Vec<Duration>,
    run_epoch: u64,
    /// The node's connections to links: (conn, link, side).
    conns: Vec<(ConnId, u32, u8)>,
    /// Dials not yet resolved.
    dialing: Vec<ConnId>,
    client: Option<ConnId>,
    /// Client input not yet taken because the node did not accept it.
    client_out: Vec<u8>,
    /// A partial line the client received.
    client_in: Vec<u8>,
    /// `* ` lines the client received while `asking`: the replies to a command.
    info: Vec<String>,
    asking: bool,
    received: Vec<Received>,
    /// The earliest `Timeout` event in the heap for this incarnation.
    timer_at: Option<Duration>,
    /// Links from this node run at this many bytes per second.
    bandwidth: Option<u64>,
}

#[derive(Debug)]
enum Event {
    Deliver {
        link: u32,
        dir: u8,
        bytes: Vec<u8>,
    },
    Eof {
        link: u32,
        dir: u8,
    },
    Writable {
        link: u32,
        dir: u8,
    },
    Connect {
        node: u32,
        epoch: u32,
        conn: ConnId,
        target: u32,
    },
    Timeout {
        node: u32,
        epoch: u32,
    },
    Say {
        node: u32,
        line: u32,
    },
    /// The node's client asks it to `/connect` to another node.
    Redial {
        node: u32,
        target: u32,
    },
    /// Faults in the middle of the traffic, as [`Net::crash`], [`Net::start`],
    /// [`Net::cut`] and [`Net::heal`] do at once.
    Crash {
        node: u32,
    },
    Start {
        node: u32,
        connect: Vec<u32>,
    },
    Cut {
        halves: Vec<bool>,
    },
    Heal,
}

impl Event {
    /// The link the event concerns, if it is one of bytes, an end of stream or room to
    /// write.
    fn link(&self) -> Option<u32> {
        match *self {
            Event::Deliver { link, .. }
            | Event::Eof { link, .. }
            | Event::Writable { link, .. } => Some(link),
            _ => None,
        }
    }

    /// A stable code and the node or link it concerns, for the trace.
    fn trace_words(&self) -> [u64; 3] {
        match self {
            Event::Deliver { link, dir, bytes } => [
                1,
                u64::from(*link) << 1 | u64::from(*dir),
                bytes.len() as u64,
            ],
            Event::Eof { link, dir } => [2, u64::from(*link) << 1 | u64::from(*dir), 0],
            Event::Writable { link, dir } => [3, u64::from(*link) << 1 | u64::from(*dir), 0],
            Event::Connect { node, target, .. } => [4, u64::from(*node), u64::from(*target)],
            Event::Timeout { node, .. } => [5, u64::from(*node), 0],
            Event::Say { node, line } => [6, u64::from(*node), u64::from(*line)],
            Event::Redial { node, target } => [7, u64::from(*node), u64::from(*target)],
            Event::Crash { node } => [8, u64::from(*node), 0],
            Event::Start { node, connect } => [9, u64::from(*node), connect.len() as u64],
            Event::Cut { halves } => [10, halves.iter().filter(|&&h| h).count() as u64, 0],
            Event::Heal => [11, 0, 0],
        }
    }
}

/// An event and when it happens; ordered by (time, sequence) only, so equal times run in
/// the order they were scheduled.
#[derive(Debug)]
struct Scheduled {
    at: Duration,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Counters of a run, beyond what the clients received.
#[derive(Debug, Clone, Default)]
pub struct NetStats {
    pub events: u64,
    /// Bytes written onto links, all of them: what the protocol costs on the wire.
    pub bytes: u64,
    /// The largest send queue of any peer connection seen after any step.
    pub max_peer_queue: usize,
    /// Dials the nodes asked for, and those of addresses no simulated node listens on.
    pub dials: u64,
    pub dials_nowhere: u64,
    /// Copies dropped as duplicates, and links put back on the tree, by nodes that
    /// have crashed since.
    pub crashed_duplicates: u64,
    pub crashed_grafts: u64,
}

/// The network and every node on it.
#[derive(Debug)]
pub struct Net {
    cfg: NetConfig,
    /// Virtual time zero, as the `Instant` the nodes see.
    start: Instant,
    now: Duration,
    rng: Rng,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    slots: Vec<Slot>,
    links: Vec<Link>,
    /// Slots of `links` free for reuse: a grown mesh of 100,000 nodes makes millions of
    /// connections over a run, walks and refusals included, but holds few at a time.
    free_links: Vec<u32>,
    /// Which half each node is in while the network is cut in two.
    halves: Option<Vec<bool>>,
    trace: Trace,
    /// Hop counts of the chat frames handed to a node in the current read, by line.
    stats: NetStats,
}

/// The address node `index` listens on: 127.x.y.z, the index in the low 24 bits. Plain
/// data, never dialled for real; loopback, so that it could not name another host.
pub fn addr_of(index: u32) -> SocketAddr {
    let [_, x, y, z] = index.to_be_bytes();
    SocketAddr::from((Ipv4Addr::new(127, x, y, z), PORT))
}

/// Address `i` of those no simulated node listens on.
pub fn nowhere(i: u32) -> SocketAddr {
    let [_, x, y, z] = i.to_be_bytes();
    SocketAddr::from((Ipv4Addr::new(10, x, y, z), PORT))
}

/// The node listening on `target`, if it is one of ours.
fn index_of(target: &str) -> Option<u32> {
    match target.parse::<SocketAddr>().ok()? {
        SocketAddr::V4(a) if a.port() == PORT && a.ip().octets()[0] == 127 => {
            let [_, x, y, z] = a.ip().octets();
            Some(u32::from_be_bytes([0, x, y, z]))
        }
        _ => None,
    }
}

/// The line text a scenario line is sent as, and back.
/// The scenario line number that forged batches carry: no scenario writes it, so a
/// client that shows it has shown a forgery.
pub const FORGED_LINE: u32 = u32::MAX;

pub fn line_text(line: u32) -> String {
    format!("L{line}")
}

fn parse_line_text(text: &str) -> Option<u32> {
    text.strip_prefix('L')?.parse().ok()
}

impl Net {
    /// `n` nodes, none running yet.
    pub fn new(cfg: NetConfig, n: usize, seed: u64) -> Self {
        assert!(n < 1 << 24, "addresses hold 24 bits of node index");
        Net {
            cfg,
            start: Instant::now(),
            now: Duration::ZERO,
            rng: Rng::new(seed),
            seq: 0,
            queue: BinaryHeap::new(),
            slots: (0..n)
                .map(|_| Slot {
                    node: None,
                    epoch: 0,
                    identity: None,
                    runs: Vec::new(),
                    run_epoch: 0,
                    conns: Vec::new(),
                    dialing: Vec::new(),
                    client: None,
                    client_out: Vec::new(),
                    client_in: Vec::new(),
                    info: Vec::new(),
                    asking: false,
                    received: Vec::new(),
                    timer_at: None,
                    bandwidth: None,
                })
                .collect(),
            links: Vec::new(),
            free_links: Vec::new(),
            halves: None,
            trace: Trace::default(),
            stats: NetStats::default(),
        }
    }

    pub fn now(&self) -> Duration {
        self.now
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    pub fn trace_hash(&self) -> u64 {
        self.trace.hash()
    }

    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// Whether the running node `index` lists the member of id `member` in `/who`.
    pub fn lists_member(&self, index: u32, member: u64) -> bool {
        let node = self.slots[index as usize].node.as_ref();
        node.is_some_and(|n| n.members().get(crate::proto::ids::NodeId(member)).is_some())
    }

    /// Copies every node, running or crashed, dropped as duplicates.
    pub fn duplicates(&self) -> u64 {
        self.stats.crashed_duplicates + self.running_sum(|c| c.duplicates)
    }

    /// Links every node, running or crashed, put back on its broadcast tree.
    pub fn grafts(&self) -> u64 {
        self.stats.crashed_grafts + self.running_sum(|c| c.grafts)
    }

    fn running_sum(&self, counter: impl Fn(&Counters) -> u64) -> u64 {
        let running = self.slots.iter().filter_map(|s| s.node.as_ref());
        running.map(|n| counter(&n.counters())).sum()
    }

    pub fn is_up(&self, node: u32) -> bool {
        self.slots[node as usize].node.is_some()
    }

    pub fn received(&self, node: u32) -> &[Received] {
        &self.slots[node as usize].received
    }

    /// Links from `node` (in either direction) carry this many bytes per second.
    pub fn set_bandwidth(&mut self, node: u32, bytes_per_sec: u64) {
        self.slots[node as usize].bandwidth = Some(bytes_per_sec);
    }

    /// Starts node `index` (with the key of its earlier runs, if any) and one attached
    /// client; it dials `connect`.
    pub fn start(&mut self, index: u32, connect: &[u32]) {
        let slot = &self.slots[index as usize];
        assert!(slot.node.is_none(), "node {index} is already running");
        let identity = match &slot.identity {
            Some(identity) => identity.clone(),
            None => Secret(self.rng.bytes32()),
        };
        self.slots[index as usize].identity = Some(identity.clone());
        let mut cfg = NodeConfig::new(identity, self.rng.next_u64(), format!("n{index}"));
        cfg.random = Secret(self.rng.bytes32());
        // The virtual clock stands in for the wall clock; + 1 keeps it from 0 at the start.
        cfg.epoch = self.now.as_nanos() as u64 + 1;
        let slot = &mut self.slots[index as usize];
        slot.runs.push(self.now);
        slot.run_epoch = cfg.epoch;
        cfg.listen_addr = Some(addr_of(index));
        cfg.connect = connect.iter().map(|&v| addr_of(v).to_string()).collect();
        cfg.backlog.lines = self.cfg.backlog_lines;
        cfg.hop_limit = self.cfg.hop_limit;
        cfg.discovery = self.cfg.discovery;
        cfg.announce_interval = self.cfg.announce;
        cfg.broadcast = self.cfg.broadcast;
        cfg.limits = self.cfg.limits.clone();
        let now = self.instant();
        let mut node = Node::new(cfg, now);
        let client = node.handle_accepted(now, Accepted::Client);
        let slot = &mut self.slots[index as usize];
        slot.node = Some(node);
        slot.client = Some(client);
        self.step(index);
    }

    /// Kills node `index` as a crash would: its peers see their connections end, and
    /// whatever it had queued or was about to read is lost.
    pub fn crash(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        let node = slot.node.take().expect("only a running node crashes");
        let counters = node.counters();
        self.stats.crashed_duplicates += counters.duplicates;
        self.stats.crashed_grafts += counters.grafts;
        slot.epoch += 1;
        slot.dialing.clear();
        slot.client = None;
        slot.client_out.clear();
        slot.client_in.clear();
        slot.timer_at = None;
        for (_, link, side) in mem::take(&mut slot.conns) {
            self.close_end(link, side);
        }
    }

    /// Cuts the network in two: every link between the halves breaks at once (both ends
    /// see a reset), and dials across the cut are refused until [`Net::heal`].
    pub fn cut(&mut self, halves: Vec<bool>) {
        assert_eq!(halves.len(), self.slots.len());
        for link in 0..self.links.len() as u32 {
            let l = &self.links[link as usize];
            let (a, b) = (l.ends[0].node, l.ends[1].node);
            if l.dead || halves[a as usize] == halves[b as usize] {
                continue;
            }
            self.links[link as usize].dead = true;
            for side in 0..2 {
                let end = &mut self.links[link as usize].ends[side];
                if !end.open {
                    continue;
                }
                end.open = false;
                let (node, conn) = (end.node, end.conn);
                self.slots[node as usize].conns.retain(|&(c, ..)| c != conn);
                let now = self.instant();
                let err = io::Error::from(io::ErrorKind::ConnectionReset);
                self.node_mut(node).handle_error(now, conn, &err);
                self.step(node);
            }
            self.free_if_done(link);
        }
        self.halves = Some(halves);
    }

    /// Lets dials cross the cut again. Nothing reconnects by itself: the caller has
    /// clients `/connect`, as people would.
    pub fn heal(&mut self) {
        self.halves = None;
    }

    /// Has node `index`'s client write `line` now.
    pub fn say(&mut self, index: u32, line: &str) {
        let slot = &mut self.slots[index as usize];
        slot.client_out.extend_from_slice(line.as_bytes());
        slot.client_out.push(b'\n');
        self.step(index);
    }

    /// Has node `index`'s client write scenario line `line` at `at`.
    pub fn say_at(&mut self, at: Duration, index: u32, line: u32) {
        self.schedule(at, Event::Say { node: index, line });
    }

    /// Crashes node `index` at `at`.
    pub fn crash_at(&mut self, at: Duration, index: u32) {
        self.schedule(at, Event::Crash { node: index });
    }

    /// Starts node `index` again at `at`, dialling `connect`.
    pub fn start_at(&mut self, at: Duration, index: u32, connect: Vec<u32>) {
        self.schedule(
            at,
            Event::Start {
                node: index,
                connect,
            },
        );
    }

    /// Cuts the network in two at `at`, and lets dials cross again at `heal`.
    pub fn cut_between(&mut self, at: Duration, heal: Duration, halves: Vec<bool>) {
        self.schedule(at, Event::Cut { halves });
        self.schedule(heal, Event::Heal);
    }

    /// Has node `index`'s client `/connect` to node `target` at `at`.
    pub fn connect_at(&mut self, at: Duration, index: u32, target: u32) {
        self.schedule(
            at,
            Event::Redial {
                node: index,
                target,
            },
        );
    }

    /// Has node `index`'s client send `command` and returns the `* ` lines it got back.
    /// Replies come in the same step: a client's queue is local.
    pub fn ask(&mut self, index: u32, command: &str) -> Vec<String> {
        self.slots[index as usize].asking = true;
        self.say(index, command);
        let slot = &mut self.slots[index as usize];
        slot.asking = false;
        mem::take(&mut slot.info)
    }

    /// When each run of node `index` started, oldest first.
    pub fn runs(&self, index: u32) -> &[Duration] {
        &self.slots[index as usize].runs
    }

    /// The chat counters of node `index`, if it runs.
    pub fn counters(&self, index: u32) -> Option<Counters> {
        self.slots[index as usize].node.as_ref().map(Node::counters)
    }

    /// Has node `forger` send its peers batches in the name of node `victim` that no
    /// honest node would pass on: lines in the victim's current run from `seq` on
    /// (the ids the victim uses next) signed by the forger's key, and a batch the
    /// victim could have signed with one byte of its text altered.
    /// Has the running node `index` tell its peers `addrs`, as many addrs messages as
    /// they take: what a member that lies about where nodes accept peers sends.
    pub fn inject_addrs(&mut self, index: u32, addrs: &[SocketAddr]) {
        let mut frames = Vec::new();
        for chunk in addrs.chunks(MAX_ADDRS) {
            Message::encode_addrs(&mut frames, chunk.iter().copied());
        }
        let now = self.instant();
        self.node_mut(index).inject_frame(now, &frames);
        self.step(index);
    }

    pub fn forge(&mut self, forger: u32, victim: u32, seq: u64) {
        let victim_slot = &self.slots[victim as usize];
        let secret = victim_slot.identity.clone().expect("the victim has run");
        let epoch = victim_slot.run_epoch;
        let forger_secret = (self.slots[forger as usize].identity.clone()).expect("it runs");
        let time_ms = self.now.as_millis() as u64;
        let text = line_text(FORGED_LINE);
        let mut frames = Vec::new();
        // Signed by the forger, naming the victim's key: the signature cannot hold.
        let mut theirs = Author::at(&forger_secret, epoch, seq);
        theirs.write(time_ms, &format!("n{victim}"), &text);
        let mut record = theirs.seal().expect("a line was written");
        record[..KEY_LEN].copy_from_slice(&public_key(&secret));
        Batch::encode(&mut frames, 8, false, &record);
        // The victim's own signature over other text.
        let mut genuine = Author::at(&secret, epoch, seq);
        genuine.write(time_ms, &format!("n{victim}"), &text);
        let mut altered = genuine.seal().expect("a line was written");
        let last_text_byte = altered.len() - SIGNATURE_LEN - 1;
        altered[last_text_byte] ^= 1;
        Batch::encode(&mut frames, 8, false, &altered);
        let now = self.instant();
        self.node_mut(forger).inject_frame(now, &frames);
        self.step(forger);
    }

    /// Node ids of the peers node `index` lists in `/peers`, sorted.
    pub fn peers(&mut self, index: u32) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .ask(index, "/peers")
            .iter()
            .filter_map(|l| l.strip_prefix("peer "))
            .filter_map(|l| u64::from_str_radix(l.split(" ").nth(2)?, 16).ok())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The node id of the running node `index`.
    pub fn node_id(&self, index: u32) -> Option<u64> {
        self.slots[index as usize].node.as_ref().map(|n| n.id().0)
    }

    /// Node ids at the far end of every open link of `index`, sorted: what `/peers`
    /// must say once the network is quiet.
    pub fn open_links(&self, index: u32) -> Vec<u64> {
        let mut ids: Vec<u64> = self.slots[index as usize]
            .conns
            .iter()
            .filter_map(|&(_, link, side)| {
                let other = &self.links[link as usize].ends[1 - side as usize];
                other.open.then(|| self.node_id(other.node)).flatten()
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Runs events until none is left or the clock passes `until`; returns whether the
    /// network went quiet.
    pub fn run_until(&mut self, until: Duration) -> bool {
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > until {
                self.now = until;
                return false;
            }
            let Reverse(Scheduled { at, event, .. }) = self.queue.pop().expect("peeked");
            self.now = at;
            self.stats.events += 1;
            let [a, b, c] = event.trace_words();
            self.trace.record(&[at.as_nanos() as u64, a, b, c]);
            let link = event.link();
            if let Some(link) = link {
                self.links[link as usize].pending -= 1;
            }
            self.handle(event);
            if let Some(link) = link {
                self.free_if_done(link);
            }
        }
        true
    }

    /// Puts `link`'s slot up for reuse once both ends are closed and no event names it.
    fn free_if_done(&mut self, link: u32) {
        let l = &mut self.links[link as usize];
        if l.ends.iter().all(|e| !e.open) && l.pending == 0 && !l.free {
            l.free = true;
            self.free_links.push(link);
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { link, dir, bytes } => {
                let l = &mut self.links[link as usize];
                let receiver = &l.ends[1 - dir as usize];
                if l.dead || !receiver.open {
                    return;
                }
                l.pipes[dir as usize].held.extend_from_slice(&bytes);
                let node = receiver.node;
                self.step(node);
            }
            Event::Eof { link, dir } => {
                let l = &mut self.links[link as usize];
                if l.dead || !l.ends[1 - dir as usize].open {
                    return;
                }
                l.pipes[dir as usize].eof = true;
                let node = l.ends[1 - dir as usize].node;
                self.step(node);
            }
            Event::Writable { link, dir } => {
                let end = &self.links[link as usize].ends[dir as usize];
                if !self.links[link as usize].dead && end.open {
                    let node = end.node;
                    self.write(link, dir);
                    self.step(node);
                }
            }
            Event::Connect {
                node,
                epoch,
                conn,
                target,
            } => self.connect(node, epoch, conn, target),
            Event::Timeout { node, epoch } => {
                let slot = &mut self.slots[node as usize];
                if slot.epoch != epoch || slot.node.is_none() {
                    return;
                }
                if slot.timer_at == Some(self.now) {
                    slot.timer_at = None;
                }
                let now = self.instant();
                let n = self.node_mut(node);
                if n.poll_timeout().is_some_and(|t| t <= now) {
                    n.handle_timeout(now);
                }
                self.step(node);
            }
            Event::Say { node, line } => {
                if self.is_up(node) {
                    self.say(node, &line_text(line));
                }
            }
            Event::Redial { node, target } => {
                if self.is_up(node) {
                    self.say(node, &format!("/connect {}", addr_of(target)));
                }
            }
            Event::Crash { node } => self.crash(node),
            Event::Start { node, connect } => self.start(node, &connect),
            Event::Cut { halves } => self.cut(halves),
            Event::Heal => self.heal(),
        }
    }

    /// A dial's SYN reached its target (or did not).
    fn connect(&mut self, dialler: u32, epoch: u32, conn: ConnId, target: u32) {
        let slot = &mut self.slots[dialler as usize];
        if slot.epoch != epoch || !slot.dialing.contains(&conn) {
            return; // the dialler crashed or gave up meanwhile
        }
        slot.dialing.retain(|&c| c != conn);
        let now = self.instant();
        let cut = self
            .halves
            .as_ref()
            .is_some_and(|h| h[dialler as usize] != h[target as usize]);
        if cut || !self.is_up(target) {
            let err = io::Error::from(io::ErrorKind::ConnectionRefused);
            self.node_mut(dialler).handle_error(now, conn, &err);
            self.step(dialler);
            return;
        }
        let link = self.free_links.pop().unwrap_or(self.links.len() as u32);
        // The ephemeral port names the link, so every accepted address is distinct.
        let from = SocketAddr::new(addr_of(dialler).ip(), 10_000 + (link % 50_000) as u16);
        let accepted = self
            .node_mut(target)
            .handle_accepted(now, Accepted::Peer(from));
        let bandwidth = |s: &Slot| s.bandwidth;
        let slow =
            bandwidth(&self.slots[dialler as usize]).or(bandwidth(&self.slots[target as usize]));
        let pipe = || Pipe {
            bandwidth: slow,
            ..Pipe::default()
        };
        let new = Link {
            ends: [
                End {
                    node: dialler,
                    conn,
                    open: true,
                },
                End {
                    node: target,
                    conn: accepted,
                    open: true,
                },
            ],
            pipes: [pipe(), pipe()],
            dead: false,
            pending: 0,
            free: false,
        };
        match self.links.get_mut(link as usize) {
            Some(old) => *old = new,
            None => self.links.push(new),
        }
        self.slots[dialler as usize].conns.push((conn, link, 0));
        self.slots[target as usize].conns.push((accepted, link, 1));
        self.node_mut(dialler)
            .handle_connected(now, conn, addr_of(target));
        self.step(target);
        self.step(dialler);
    }

    /// After any call into node `index`: carry out its outputs, read whatever it now
    /// accepts, repeat until nothing moves; then arm its timer and check invariants.
    fn step(&mut self, index: u32) {
        if !self.is_up(index) {
            return;
        }
        loop {
            self.drain(index);
            if !self.read_one(index) {
                break;
            }
        }
        self.arm_timer(index);
        self.check(index);
    }

    /// Carries out every output of node `index`.
    fn drain(&mut self, index: u32) {
        while let Some(output) = self.node_mut(index).poll_output() {
            match output {
                Output::Dial { conn, target } => {
                    let now = self.instant();
                    self.stats.dials += 1;
                    match index_of(&target) {
                        Some(t) if (t as usize) < self.slots.len() => {
                            let slot = &mut self.slots[index as usize];
                            slot.dialing.push(conn);
                            let epoch = slot.epoch;
                            let at = self.now + self.cfg.latency;
                            self.schedule(
                                at,
                                Event::Connect {
                                    node: index,
                                    epoch,
                                    conn,
                                    target: t,
                                },
                            );
                        }
                        _ => {
                            self.stats.dials_nowhere += 1;
                            let err = io::Error::new(
                                io::ErrorKind::NotFound,
                                format!("no simulated node at {target}"),
                            );
                            self.node_mut(index).handle_error(now, conn, &err);
                        }
                    }
                }
                Output::Flush(conn) if self.slots[index as usize].client == Some(conn) => {
                    self.client_takes(index, conn);
                }
                Output::Flush(conn) => {
                    if let Some(&(_, link, side)) = self.find(index, conn) {
                        self.write(link, side);
                    }
                }
                Output::Finish(conn) => {
                    if let Some(&(_, link, side)) = self.find(index, conn) {
                        self.send_eof(link, side);
                    }
                }
                Output::Close(conn) => {
                    let slot = &mut self.slots[index as usize];
                    slot.dialing.retain(|&c| c != conn);
                    if slot.client == Some(conn) {
                        slot.client = None;
                    } else if let Some(pos) = slot.conns.iter().position(|&(c, ..)| c == conn) {
                        let (_, link, side) = slot.conns.swap_remove(pos);
                        self.close_end(link, side);
                    }
                }
            }
        }
    }

    fn find(&self, index: u32, conn: ConnId) -> Option<&(ConnId, u32, u8)> {
        self.slots[index as usize]
            .conns
            .iter()
            .find(|&&(c, ..)| c == conn)
    }

    /// The end `side` of `link` is gone: the other end reads an end of stream after
    /// whatever is still in flight to it.
    fn close_end(&mut self, link: u32, side: u8) {
        self.links[link as usize].ends[side as usize].open = false;
        self.send_eof(link, side);
        self.free_if_done(link);
    }

    /// The end `side` of `link` writes no more (closed, or its writing half shut down):
    /// the other end reads an end of stream after whatever is still in flight to it.
    fn send_eof(&mut self, link: u32, side: u8) {
        let l = &mut self.links[link as usize];
        if l.dead || !l.ends[1 - side as usize].open || l.pipes[side as usize].eof_sent {
            return;
        }
        l.pipes[side as usize].eof_sent = true;
        // Jittered like data, so that an end of stream can overtake bytes on another link.
        let jitter = Duration::from_nanos(self.rng.below(self.cfg.jitter.as_nanos() as u64 + 1));
        let at = l.pipes[side as usize]
            .last_arrival
            .max(self.now + self.cfg.latency + jitter);
        self.schedule(at, Event::Eof { link, dir: side });
    }

    /// Writes from the send queue of end `dir` of `link` into its pipe, as far as the
    /// window allows, and reports what went.
    fn write(&mut self, link: u32, dir: u8) {
        let end = &self.links[link as usize].ends[dir as usize];
        let (index, conn) = (end.node, end.conn);
        let pipe = &self.links[link as usize].pipes[dir as usize];
        let room = self.cfg.window.saturating_sub(pipe.unread);
        let queue = self.slots[index as usize]
            .node
            .as_mut()
            .expect("only running nodes write")
            .send_queue(conn);
        let n = queue.len().min(room);
        let want_write = n < queue.len();
        let bytes = queue[..n].to_vec();
        let (latency, jitter, max_chunk) = (self.cfg.latency, self.cfg.jitter, self.cfg.max_chunk);
        let pipe = &mut self.links[link as usize].pipes[dir as usize];
        pipe.want_write = want_write;
        if n == 0 {
            return;
        }
        self.stats.bytes += n as u64;
        assert!(
            !pipe.eof_sent,
            "node {index} at {:?}: writes on link {link} after shutting it down",
            self.now
        );
        pipe.unread += n;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = (self.rng.between(1, max_chunk as u64) as usize).min(rest.len());
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            let jitter = Duration::from_nanos(self.rng.below(jitter.as_nanos() as u64 + 1));
            let pipe = &mut self.links[link as usize].pipes[dir as usize];
            let mut at = (self.now + latency + jitter).max(pipe.last_arrival);
            if let Some(bw) = pipe.bandwidth {
                at += Duration::from_nanos(len as u64 * 1_000_000_000 / bw);
            }
            pipe.last_arrival = at;
            self.schedule(
                at,
                Event::Deliver {
                    link,
                    dir,
                    bytes: chunk.to_vec(),
                },
            );
        }
        let now = self.instant();
        self.node_mut(index).handle_sent(now, conn, n);
    }

    /// Hands node `index` one batch of input it accepts now: held bytes of a link, an
    /// end of stream, or its client's pending line. Returns whether anything moved.
    fn read_one(&mut self, index: u32) -> bool {
        let now = self.instant();
        let slot = &self.slots[index as usize];
        let node = slot.node.as_ref().expect("stepped nodes run");
        if let Some(client) = slot.client.filter(|_| !slot.client_out.is_empty()) {
            if node.accepts_input(client) {
                let bytes = mem::take(&mut self.slots[index as usize].client_out);
                self.node_mut(index).handle_recv(now, client, &bytes);
                return true;
            }
        }
        let slot = &self.slots[index as usize];
        let ready = slot.conns.iter().find(|&&(conn, link, side)| {
            let pipe = &self.links[link as usize].pipes[1 - side as usize];
            (!pipe.held.is_empty() && node.accepts_input(conn))
                || (pipe.eof && pipe.held.is_empty())
        });
        let Some(&(conn, link, side)) = ready else {
            return false;
        };
        let dir = 1 - side as usize;
        let pipe = &mut self.links[link as usize].pipes[dir];
        if pipe.held.is_empty() {
            // The end of stream, after every byte before it.
            pipe.eof = false;
            pipe.eof_read = true;
            pipe.eof_read_at = self.now;
            self.node_mut(index).handle_eof(now, conn);
            return true;
        }
        let mut bytes = mem::take(&mut pipe.held);
        pipe.unread -= bytes.len();
        self.node_mut(index).handle_recv(now, conn, &bytes);
        self.drain(index);
        bytes.clear();
        let l = &mut self.links[link as usize];
        l.pipes[dir].held = bytes;
        if mem::take(&mut l.pipes[dir].want_write) && l.ends[dir].open {
            // The window drained: the sender hears of it a latency later.
            let at = self.now + self.cfg.latency;
            self.schedule(
                at,
                Event::Writable {
                    link,
                    dir: dir as u8,
                },
            );
        }
        true
    }

    /// The client of node `index` takes everything queued for it and splits it in lines.
    fn client_takes(&mut self, index: u32, conn: ConnId) {
        let now = self.instant();
        let node = self.node_mut(index);
        let bytes = node.send_queue(conn).to_vec();
        node.handle_sent(now, conn, bytes.len());
        let slot = &mut self.slots[index as usize];
        slot.client_in.extend_from_slice(&bytes);
        let mut start = 0;
        while let Some(len) = slot.client_in[start..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&slot.client_in[start..start + len]).into_owned();
            start += len + 1;
            if let Some(info) = line.strip_prefix("* ") {
                if slot.asking {
                    slot.info.push(info.to_owned());
                }
            } else if let Some(id) = line.split_once("> ").and_then(|(_, t)| parse_line_text(t)) {
                let run = slot.runs.len() - 1;
                slot.received.push(Received {
                    line: id,
                    at: self.now,
                    run,
                });
                self.trace.record(&[7, u64::from(index), u64::from(id)]);
            }
        }
        slot.client_in.drain(..start);
    }

    /// Makes sure a `Timeout` event is due no later than the node's deadline.
    fn arm_timer(&mut self, index: u32) {
        let Some(at) = self.node_mut(index).poll_timeout() else {
            return;
        };
        let at = at.saturating_duration_since(self.start);
        let slot = &mut self.slots[index as usize];
        if slot.timer_at.is_none_or(|t| at < t) {
            slot.timer_at = Some(at);
            let epoch = slot.epoch;
            self.schedule(at, Event::Timeout { node: index, epoch });
        }
    }

    /// What must hold after every step of node `index`.
    fn check(&mut self, index: u32) {
        let now = self.instant();
        let limits = &self.cfg.limits;
        let slot = &self.slots[index as usize];
        let node = slot.node.as_ref().expect("checked nodes run");
        if let Some(at) = node.poll_timeout() {
            assert!(
                at >= now,
                "node {index} at {:?}: a timer {:?} in the past",
                self.now,
                now - at
            );
        }
        let logs = node.logs();
        let (max_authors, backlog) = logs.limits();
        assert!(
            logs.authors() <= max_authors
                && logs.backlog_lines() <= backlog.lines
                && logs.backlog_bytes() <= backlog.bytes,
            "node {index}: {} authors, a backlog of {} lines in {} bytes: over their bounds",
            logs.authors(),
            logs.backlog_lines(),
            logs.backlog_bytes()
        );
        if let Some(client) = slot.client {
            let q = node.queued(client);
            assert!(
                q <= limits.client_queue_max,
                "node {index}: client queue {q} over its bound"
            );
        }
        for &(conn, link, side) in &slot.conns {
            let q = node.queued(conn);
            assert!(
                q <= limits.peer_queue_max,
                "node {index} at {:?}: peer queue {q} over its bound",
                self.now
            );
            self.stats.max_peer_queue = self.stats.max_peer_queue.max(q);
            let l = &self.links[link as usize];
            assert!(
                !l.dead,
                "node {index} at {:?}: still uses a cut link",
                self.now
            );
            // A link the other end has dropped is kept only until the end of stream
            // reaches the node; after that the node must let go of it, at once unless
            // the other end had given the link up for another one: an end of stream
            // after a retire message looks like a shutdown for writing (the other end
            // reads on until the replacement is up), and the link is kept until the
            // replacement is up or the handshake timeout. One the other end only shut
            // down for writing may still be written.
            let other = &l.ends[1 - side as usize];
            let pipe = &l.pipes[1 - side as usize];
            let waits_for_replacement = self.now - pipe.eof_read_at <= limits.handshake_timeout;
            assert!(
                other.open || (pipe.eof_sent && (!pipe.eof_read || waits_for_replacement)),
                "node {index} at {:?}: link {link} is closed at the far end, and the node \
                 keeps it after reading the end of stream",
                self.now
            );
        }
    }

    fn node_mut(&mut self, index: u32) -> &mut Node {
        self.slots[index as usize]
            .node
            .as_mut()
            .expect("the node is running")
    }

    fn instant(&self) -> Instant {
        self.start + self.now
    }

    fn schedule(&mut self, at: Duration, event: Event) {
        if let Some(link) = event.link() {
            self.links[link as usize].pending += 1;
        }
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }
}
