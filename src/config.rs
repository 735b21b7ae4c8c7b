//! Everything a run is configured with, and the documented defaults.
//!
//! `cli` fills a [`Config`] from the command line; the core gets its part, a
//! [`NodeConfig`], with the values only the shell can supply (the bound address, the
//! random node id and hash seed) filled in. Nothing here reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;

/// TCP address for incoming peers when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7654";

/// Permission bits of the control socket when `--socket-mode` is not given: its owner and
/// group may attach, nobody else.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// Message ids remembered for duplicate suppression when `--dedup-capacity` is not given.
/// At 8 bytes in the ring and 16 in the index per id this is 6 MiB when full; memory is
/// paged in as ids arrive, so an idle node pays nothing for it.
pub const DEFAULT_DEDUP_CAPACITY: usize = 262_144;

/// Links a node dials itself when `--target-peers` is not given: with every node dialling
/// six, a random mesh is connected and a few hops across with a high probability, and
/// most nodes stay far below the maximum.
pub const DEFAULT_TARGET_PEERS: usize = 6;

/// Peer connections at the most when `--max-peers` is not given: far more than a hand-made
/// mesh needs, and each a descriptor and a queue (memory is held to
/// `Limits::total_queue_max` however many are allowed).
pub const DEFAULT_MAX_PEERS: usize = 64;

/// Control clients at the most when `--max-clients` is not given.
pub const DEFAULT_MAX_CLIENTS: usize = 64;

/// The largest `--dedup-capacity`: 64 Mi ids, 1.5 GiB when full. Beyond it the index's
/// size would overflow or fail to allocate.
pub const MAX_DEDUP_CAPACITY: usize = 1 << 26;

/// Links a chat line may cross when `--hop-limit` is not given: far more than the
/// diameter of any hand-made graph, few enough that a copy which outlives the dedup ring
/// dies quickly.
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// The whole run: what the shell needs and what the core needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to accept peers; `None` with `--no-listen`.
    pub listen: Option<String>,
    pub socket: PathBuf,
    /// Permission bits of the control socket: who may attach.
    pub socket_mode: u32,
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub log_level: LevelFilter,
    pub node: NodeConfig,
}

/// What the sans-IO core is configured with: policy, limits and seeds.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id, random per run (supplied by the shell).
    pub node_id: u64,
    /// Key for the duplicate index's hash, so that peers cannot aim for collisions.
    pub hash_seed: u64,
    /// Nick for lines sent by local clients that did not choose one.
    pub nick: String,
    /// The address peers are accepted on, once bound; `None` when not listening.
    pub listen_addr: Option<SocketAddr>,
    /// Peers to dial at start, `host:port` as given.
    pub connect: Vec<String>,
    /// Message ids remembered for duplicate suppression.
    pub dedup_capacity: usize,
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
    /// A peer must send its hello within this of the link being made.
    pub handshake_timeout: Duration,
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
    /// Peer connections at the most, dialled, accepted or waiting to be redialled:
    /// every one costs a descriptor and may cost a full queue.
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
    /// A configuration with every default, for the given identity.
    pub fn new(node_id: u64, hash_seed: u64, nick: String) -> Self {
        NodeConfig {
            node_id,
            hash_seed,
            nick,
            listen_addr: None,
            connect: Vec::new(),
            dedup_capacity: DEFAULT_DEDUP_CAPACITY,
            hop_limit: DEFAULT_HOP_LIMIT,
            discovery: true,
            target_peers: DEFAULT_TARGET_PEERS,
            limits: Limits::default(),
        }
    }
}
