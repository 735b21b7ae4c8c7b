//! Everything a run is configured with, and the documented defaults.
//!
//! `cli` fills a [`Config`] from the command line; the core gets its part, a
//! [`NodeConfig`], with the values only the shell can supply (the bound address, the
//! keys, the seeds and the start time) filled in. Nothing here reads the environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;

/// TCP address for incoming peers when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7654";

/// Permission bits of the control socket when `--socket-mode` is not given: its owner and
/// group may attach, nobody else.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// Author runs tracked at the most when `--max-authors` is not given: what a chat of a
/// few thousand members that restart now and then needs, at a few hundred bytes each.
/// Past it the run heard of least lately is forgotten.
pub const DEFAULT_MAX_AUTHORS: usize = 16_384;
/// The largest `--max-authors`.
pub const MAX_MAX_AUTHORS: usize = 1 << 22;

/// Members (nodes of the mesh) listed at the most when `--max-members` is not given,
/// at about 300 bytes each; past it the member heard of least lately is forgotten.
pub const DEFAULT_MAX_MEMBERS: usize = 131_072;
/// The largest `--max-members`.
pub const MAX_MAX_MEMBERS: usize = 1 << 22;

/// The shortest period between a node's announcements of itself when
/// `--announce-interval` is not given; in a large mesh the period grows past it.
pub const DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(30);

/// The backlog when `--backlog-lines`, `--backlog-bytes` and `--backlog-hours` are not
/// given: a day of a busy chat, or the last 100,000 lines, within 64 MiB.
pub const DEFAULT_BACKLOG: BacklogLimits = BacklogLimits {
    lines: 100_000,
    bytes: 64 * 1024 * 1024,
    age: Duration::from_secs(24 * 3600),
};

/// Links a node dials itself when `--target-peers` is not given: with every node dialling
/// six, a random mesh is connected and a few hops across with a high probability, and
/// most nodes stay far below the maximum.
pub const DEFAULT_TARGET_PEERS: usize = 6;

/// Peer connections at the most when `--max-peers` is not given: far more than a hand-made
/// mesh needs, and each a descriptor and a queue (memory is held to
/// `Limits::total_queue_max` however many are allowed).
pub const DEFAULT_MAX_PEERS: usize = 64;

/// Accepted connections in the handshake at the most, and from one IP address.
pub const DEFAULT_MAX_HANDSHAKES: usize = 64;
pub const DEFAULT_MAX_HANDSHAKES_PER_IP: usize = 8;

/// Control clients at the most when `--max-clients` is not given.
pub const DEFAULT_MAX_CLIENTS: usize = 64;

/// Links a chat line may cross when `--hop-limit` is not given: far more than the
/// diameter of any hand-made graph. Copies are told apart by their signed ids however
/// old they are, so the limit only bounds how far a line travels.
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// What the backlog of signed lines may hold: records leave, oldest arrival first, once
/// any bound is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogLimits {
    pub lines: usize,
    pub bytes: usize,
    pub age: Duration,
}

/// 32 secret bytes: an identity key, a network key or a seed. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub [u8; 32]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The IRC channel that is the whole mesh when `--irc-channel` is not given.
pub const DEFAULT_IRC_CHANNEL: &str = "#p2pchat";

/// How a node passes new lines on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broadcast {
    /// In full over every link, but as ids to a peer that asked for them (one with
    /// trees): each node gets a copy from each of its peers.
    Flood,
    /// In full along a tree of links and as ids over the others, which stand by to
    /// repair it (epidemic broadcast trees, Plumtree).
    Tree,
}

impl fmt::Display for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Broadcast::Flood => "flood",
            Broadcast::Tree => "tree",
        })
    }
}

impl std::str::FromStr for Broadcast {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "flood" => Ok(Broadcast::Flood),
            "tree" => Ok(Broadcast::Tree),
            other => Err(format!("--broadcast must be flood or tree, not {other:?}")),
        }
    }
}

/// What IRC clients find (`--irc`, `--irc-channel`, `--irc-password-file`).
#[derive(Debug, Clone)]
pub struct IrcConfig {
    pub channel: String,
    /// What `PASS` must give before a client registers, if anything.
    pub password: Option<String>,
    /// The address IRC clients reach this node on, once bound (`/status` shows it).
    pub addr: Option<SocketAddr>,
}

/// The whole run: what the shell needs and what the core needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to accept peers; `None` with `--no-listen`.
    pub listen: Option<String>,
    /// Where to serve IRC clients (`--irc`); `None` when off.
    pub irc_listen: Option<String>,
    pub socket: PathBuf,
    /// Permission bits of the control socket: who may attach.
    pub socket_mode: u32,
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub log_level: LevelFilter,
    /// `--key`: the identity key file, created when missing.
    pub key_file: PathBuf,
    /// `--network-key`: the shared secret's file, if any.
    pub network_key_file: Option<PathBuf>,
    /// `--irc-password-file`: what IRC clients must give with `PASS`.
    pub irc_password_file: Option<PathBuf>,
    pub node: NodeConfig,
}

/// What the sans-IO core is configured with: policy, limits and seeds.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The Ed25519 secret key the node's id derives from (the shell reads it).
    pub identity: Secret,
    /// `--network-key`: mixed into every handshake, so that only holders can link.
    pub network_key: Option<Secret>,
    /// Seed of the generator the ephemeral and static Noise keys are drawn from: OS
    /// randomness in the daemon, a seed in the simulator.
    pub random: Secret,
    /// Seeds the jitter of redials and the choice of addresses to dial.
    pub hash_seed: u64,
    /// This run's start, nanoseconds since the Unix epoch: part of every message id, so
    /// that a restarted node's lines are never taken for its last run's.
    pub epoch: u64,
    /// Nick for lines sent by local clients that did not choose one.
    pub nick: String,
    /// The address peers are accepted on, once bound; `None` when not listening.
    pub listen_addr: Option<SocketAddr>,
    /// Peers to dial at start, `host:port` as given.
    pub connect: Vec<String>,
    /// Author runs whose lines are tracked at the most (`--max-authors`).
    pub max_authors: usize,
    /// What the backlog of signed lines may hold.
    pub backlog: BacklogLimits,
    /// The IRC front end's settings, when `--irc` is on.
    pub irc: Option<IrcConfig>,
    /// Members listed at the most (`--max-members`).
    pub max_members: usize,
    /// The shortest period between this node's announcements (`--announce-interval`);
    /// `None` announces nothing and judges no member, for tests of other things whose
    /// nodes must fall quiet.
    pub announce_interval: Option<Duration>,
    /// How lines spread: over every link, or along a broadcast tree (`--broadcast`).
    pub broadcast: Broadcast,
    /// Links a locally written chat line may cross.
    pub hop_limit: u8,
    /// Dial addresses learned from peers (off with `--no-discovery`).
    pub discovery: bool,
    /// Links this node dials itself, from learned addresses, while it has fewer.
    pub target_peers: usize,
    pub limits: Limits,
}

/// Bounds on what any one connection may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A dialled peer must complete TCP's handshake within this.
    pub connect_timeout: Duration,
    /// A peer must finish the handshake and send its hello within this of the link
    /// being made.
    pub handshake_timeout: Duration,
    /// Accepted connections still in the handshake at the most, in all and from one IP
    /// address: a host that opens many and says nothing cannot keep others out.
    pub max_handshakes: usize,
    pub max_handshakes_per_ip: usize,
    /// While a connection (peer or client) has this many bytes queued, the node stops
    /// reading its clients and its other peers (see `proto::conn::Backlog`).
    pub queue_pause: usize,
    /// A peer with this many bytes queued is cut: it is not reading.
    pub peer_queue_max: usize,
    /// A connection over `queue_pause` that takes no byte for this long stops holding
    /// back the reading of clients and peers.
    pub stuck_after: Duration,
    /// A peer over `queue_pause` for this long stops holding them back too, however it
    /// drains: a peer that reads a trickle must not throttle the node for ever.
    pub peer_hold_max: Duration,
    /// A connection over `queue_pause` that takes no byte for this long is cut.
    pub stall_timeout: Duration,
    /// A control client with this many bytes queued is cut: it is not reading.
    pub client_queue_max: usize,
    /// Bytes queued for all connections together at the most: past it the connection
    /// with the longest queue is cut, so that many slow readers cannot add up to more
    /// memory than one node should hold, however many connections are allowed.
    pub total_queue_max: usize,
    /// Linked peers at the most: every one costs a descriptor and may cost a full queue.
    pub max_peers: usize,
    /// Control clients at the most.
    pub max_clients: usize,
    /// A client that has left (`/quit`, end of input) is given this long to take the
    /// replies still queued for it.
    pub linger: Duration,
    /// Dialling addresses given by hand again when their link is lost; `None` turns it
    /// off (the simulator does: its scenarios restore links themselves, and a network
    /// that retries dead addresses for ever would never go quiet).
    pub redial: Option<Redial>,
    /// Pinging quiet links and dropping silent peers; `None` turns it off (the
    /// simulator does, so that a quiet network can be told from a busy one).
    pub keepalive: Option<Keepalive>,
    /// `--max-rate`: chat lines relayed from each other node at the most; off (`None`)
    /// unless asked for, so that broadcast throughput is never throttled by surprise.
    pub max_rate: Option<MaxRate>,
}

/// A token bucket's shape: `per_sec` lines a second on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxRate {
    pub per_sec: u32,
    pub burst: u32,
}

/// The backoff of redials: `min` at first, twice as long after each failure in a row,
/// up to `max`, each delay jittered down by up to half so that nodes that lost each
/// other do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redial {
    pub min: Duration,
    pub max: Duration,
}

/// `--ping-interval` and `--peer-timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// A link nothing has arrived on for this long is pinged.
    pub ping_interval: Duration,
    /// A peer nothing has arrived from for this long is dropped. Longer than
    /// `ping_interval`, so that a live peer has had a ping to answer.
    pub peer_timeout: Duration,
}

/// Quiet time before a ping when `--ping-interval` is not given: a frozen host is found
/// within a minute while an idle link costs one small frame each way per interval.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(15);

/// Silence before a peer is dropped when `--peer-timeout` is not given: three intervals,
/// so that one lost or delayed ping does not cut a live link.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(45);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            max_handshakes_per_ip: DEFAULT_MAX_HANDSHAKES_PER_IP,
            queue_pause: 256 * 1024,
            peer_queue_max: 16 * 1024 * 1024,
            stuck_after: Duration::from_secs(1),
            peer_hold_max: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            client_queue_max: 4 * 1024 * 1024,
            total_queue_max: 256 * 1024 * 1024,
            linger: Duration::from_secs(5),
            max_peers: DEFAULT_MAX_PEERS,
            max_clients: DEFAULT_MAX_CLIENTS,
            redial: Some(Redial {
                min: Duration::from_secs(1),
                max: Duration::from_secs(60),
            }),
            keepalive: Some(Keepalive {
                ping_interval: DEFAULT_PING_INTERVAL,
                peer_timeout: DEFAULT_PEER_TIMEOUT,
            }),
            max_rate: None,
        }
    }
}

impl NodeConfig {
    /// A configuration with every default, for the given identity. Its seeds and epoch
    /// derive from `seed`; the daemon replaces them with OS randomness and the clock.
    pub fn new(identity: Secret, seed: u64, nick: String) -> Self {
        let mut random = [0; 32];
        random[..8].copy_from_slice(&seed.to_be_bytes());
        NodeConfig {
            identity,
            network_key: None,
            random: Secret(random),
            hash_seed: seed,
            epoch: seed,
            nick,
            listen_addr: None,
            connect: Vec::new(),
            max_authors: DEFAULT_MAX_AUTHORS,
            backlog: DEFAULT_BACKLOG,
            irc: None,
            max_members: DEFAULT_MAX_MEMBERS,
            announce_interval: Some(DEFAULT_ANNOUNCE_INTERVAL),
            broadcast: Broadcast::Tree,
            hop_limit: DEFAULT_HOP_LIMIT,
            discovery: true,
            target_peers: DEFAULT_TARGET_PEERS,
            limits: Limits::default(),
        }
    }
}
