//! Seeded scenarios on a [`Net`], and the judgement of a run: every line reaches the
//! client of every node running at the end whose run had started when the line was
//! written, exactly once, in its author's order, whatever cuts and crashes came between;
//! no client is shown a line written before its node's run started (that is history),
//! its own line, or a forgery.
//!
//! A scenario starts every node, lets the links settle, then sends lines in waves; each
//! wave waits for the network to go quiet, and the links every node lists in `/peers`
//! are checked against the graph between waves. Faults (a cut, crashes, a forger)
//! happen between waves; lines written during a cut reach the other side once it heals.
//!
//! The mesh scenario turns discovery on, so links are the nodes' own choice: there the
//! open links are read back after every quiet spell, checked for connectivity and
//! degree bounds, and become the graph the next wave is judged against.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::graph::{Family, Graph};
use super::net::{addr_of, nowhere, Net, NetConfig};
use super::rng::Rng;
use crate::config::{Broadcast, Keepalive};

/// The environment variable that replays one seed instead of the usual list.
pub const SEED_VAR: &str = "P2PCHAT_SIM_SEED";

/// Virtual time a wave may take to go quiet before the run is declared stuck.
const QUIET_WITHIN: Duration = Duration::from_secs(600);

/// Time for a wave's lines to reach every node, before the summary round 30 s later.
const FLOODED_WITHIN: Duration = Duration::from_secs(5);

/// How long a network with keepalive on, never quiet, runs before it is checked: past
/// the handshake and retirement timeouts, so links have settled whatever happened.
const PINGING_SPELL: Duration = Duration::from_secs(12);

/// Where and when a wave's lines are written.
#[derive(Debug, Clone, Copy)]
enum Origins {
    /// Each at a random node, at a random instant of one second.
    Random,
    /// All at one node at the same instant.
    Burst,
    /// All at one node, 100 ms apart.
    One,
}

/// What happens in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Lines from random origins spread over a second.
    Steady,
    /// Lines from one origin, one every 100 ms: a settled sender.
    Sender,
    /// Every line from one origin at the same instant.
    Burst,
    /// A wave, a cut between the lower and upper halves of the node indices, a wave
    /// (each line reaches its half at once), a heal with the cut links redialled, a
    /// wave: the lines of the cut are caught up on across it.
    Partition,
    /// A wave, a tenth of the nodes crashed, a wave, the crashed nodes restarted (with
    /// their keys) dialling all their neighbours, a wave: the restarted nodes fill
    /// their backlogs and show none of it as news.
    Crash,
    /// A settled sender (a first wave from one origin shapes the tree), then its next
    /// wave, 50 ms into which a tenth of the other nodes crash at once: every line must
    /// still reach every running node, and the run measures how soon after the crashes
    /// the last graft came, after which the tree carried every line by itself.
    Repair,
    /// A wave; then a member forges: it sends its peers lines in another node's name
    /// with the ids that node uses next, and a batch of that node's with one byte
    /// altered; its neighbours must cut it off, and the victim's next lines, with
    /// those very ids, must reach everybody else; a wave.
    Hostile,
    /// A burst next to one node whose links are slow (20 KB/s) with small queues and
    /// windows: its peers' queues fill past the pause mark, and nothing is lost.
    SlowLink,
    /// The mesh building itself, with discovery on: every node starts with one random
    /// earlier node's address (node 0 with none); a wave; a fifth of the nodes crashed;
    /// a wave; the crashed nodes restarted (with their keys) and one random running node's
    /// address each; a wave. The graph family is not used: links are whatever the
    /// nodes made, and after every quiet spell they must form one component with every
    /// degree between `min(target, live - 1)` and `max_peers`.
    Mesh,
    /// The mesh of the mesh scenario, grown, and a wave; then a member tells its peers
    /// 4,096 addresses where no node listens, and a fifth of the other nodes crash, so
    /// that the survivors dial from their books; a wave. Every peer of the liar must
    /// have learned at most its share of the book (64), and the mesh must stay one
    /// component; the run counts the dials that went to the liar's addresses.
    Eclipse,
    /// Links replaced while lines flow: a steady wave, during which the accepting end
    /// of a random half of the links `/connect`s again, and for half of those both ends
    /// dial each other at the same instant; the duplicate-link rule must give up one
    /// link of each pair and lose no line in flight on it. Hand-given addresses are
    /// redialled. Run it with a jitter larger than the latency.
    Relink,
    /// Faults in the middle of the traffic, on the network of the relink scenario: one
    /// wave spread over three seconds, during which the halves are cut apart and healed
    /// (the cut links dialled again), and a tenth of the nodes crash and restart, each
    /// dialling its neighbours, at random times. A line must reach every node that ran
    /// when it was written, unless its author crashed before it left.
    Churn,
    /// Membership at rest: every node announces itself (`--announce-interval` 30 s) and
    /// no line is written. After a warm-up of ten minutes the bytes on all links are
    /// counted for ten more, then one more node starts, linked as the graph says, and
    /// the run measures when the last node lists it.
    Members,
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "steady" => Ok(Kind::Steady),
            "sender" => Ok(Kind::Sender),
            "burst" => Ok(Kind::Burst),
            "partition" => Ok(Kind::Partition),
            "crash" => Ok(Kind::Crash),
            "repair" => Ok(Kind::Repair),
            "slow-link" => Ok(Kind::SlowLink),
            "mesh" => Ok(Kind::Mesh),
            "eclipse" => Ok(Kind::Eclipse),
            "relink" => Ok(Kind::Relink),
            "hostile" => Ok(Kind::Hostile),
            "churn" => Ok(Kind::Churn),
            "members" => Ok(Kind::Members),
            _ => Err(format!(
                "unknown scenario {s:?} \
                 (steady, sender, burst, partition, crash, repair, slow-link, mesh, eclipse, \
                 relink, hostile, churn, members)"
            )),
        }
    }
}

/// A run, fully named: the same spec gives the same run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub kind: Kind,
    pub family: Family,
    pub nodes: usize,
    /// Lines written in each counted wave: twice as many are written in the repair
    /// scenario, and with trees in the steady and sender ones, where a wave that
    /// settles the tree comes first.
    pub lines: u32,
    pub seed: u64,
    pub net: NetConfig,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub lines: u32,
    /// (line, client) pairs that had to be delivered, and were: the check demands equal.
    pub deliveries: u64,
    /// Copies nodes read and dropped as duplicates, per delivery: the relative message
    /// redundancy of flooding on this graph.
    pub suppressed_per_delivery: f64,
    /// From a line being written to its last delivery, the worst over lines.
    pub last_delivery: Duration,
    /// From a line being written to its delivery: the median and the 99th percentile
    /// over deliveries.
    pub delivery_p50: Duration,
    pub delivery_p99: Duration,
    pub max_peer_queue: usize,
    pub events: u64,
    pub virtual_time: Duration,
    pub trace_hash: u64,
    pub wall: Duration,
    /// The mesh scenario's links after each phase: the first links, the crashes, the
    /// restarts. Empty for the other scenarios.
    pub mesh: Vec<MeshFigures>,
    /// The partition scenario's catch-up: what the heal cost.
    pub heal: Option<HealFigures>,
    /// The repair scenario's last graft, counted from the crashes.
    pub repaired_within: Option<Duration>,
    /// What the eclipse scenario's liar achieved.
    pub eclipse: Option<EclipseFigures>,
    /// Bytes on a link, both ways, in the summary round after the last wave, when
    /// nothing was missing: what a comparison costs by itself.
    pub sync_bytes_per_link: f64,
    /// Bytes on all links while the waves' lines spread (bodies, ids, prunes and
    /// grafts, framing and encryption; not the summary rounds after), per delivery;
    /// `None` where pings share the links.
    pub bytes_per_delivery: Option<f64>,
    /// The members scenario's cost and reach.
    pub members: Option<MemberFigures>,
}

/// What membership cost at rest, and how soon a new member was listed everywhere.
#[derive(Debug, Clone)]
pub struct MemberFigures {
    /// Bytes written onto links per node per second, at rest (announcements alone).
    pub bytes_per_node_per_sec: f64,
    /// From the new node's start to the last node listing it.
    pub listed_within: Duration,
}

impl fmt::Display for MemberFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "members: {:.0} bytes per node per second at rest, a new member listed by \
             every node within {:?}",
            self.bytes_per_node_per_sec, self.listed_within
        )
    }
}

/// What catching up across a healed cut cost.
#[derive(Debug, Clone)]
pub struct HealFigures {
    /// Lines written during the cut, and (line, node) pairs that lacked one at the heal.
    pub lines: u64,
    pub missing: u64,
    /// From the heal to the last of those lines shown.
    pub converge: Duration,
    /// Bytes on every link from the heal until then, per missing (line, node) pair.
    pub bytes_per_missing: f64,
}

impl fmt::Display for HealFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "heal: {} lines of the cut, {} missing (line, node) pairs, converged {:?} after \
             the heal, {:.1} bytes per missing pair",
            self.lines, self.missing, self.converge, self.bytes_per_missing
        )
    }
}

/// A liar's addresses in its peers' books, and in their dials after crashes.
#[derive(Debug, Clone)]
pub struct EclipseFigures {
    pub peers: usize,
    pub told: usize,
    /// The most addresses any peer of the liar learned from what it was told.
    pub most_learned: u64,
    /// Dials of every node after the crashes, and those to the liar's addresses.
    pub dials: u64,
    pub dials_to_lies: u64,
}

impl fmt::Display for EclipseFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "eclipse: {} peers told {} addresses, the most one learned {}; after the \
             crashes {} dials, {} of them to those addresses",
            self.peers, self.told, self.most_learned, self.dials, self.dials_to_lies
        )
    }
}

/// The shape of the links a mesh made, among the running nodes, once quiet.
#[derive(Debug, Clone)]
pub struct MeshFigures {
    pub phase: &'static str,
    pub live: usize,
    pub links: usize,
    pub min_degree: usize,
    pub mean_degree: f64,
    pub max_degree: usize,
    /// The fewest links a node dialled itself (`out` in `/peers`).
    pub min_dialled: usize,
    /// The largest eccentricity over the BFS sources: the diameter when every node is
    /// a source, a lower bound when they are a sample.
    pub diameter: u32,
    /// The mean distance from the BFS sources to the other nodes: unlike the diameter,
    /// it tells a mesh a little longer from one much longer.
    pub mean_distance: f64,
    /// The same measures on a random graph of as many nodes and the same mean degree.
    pub random_diameter: u32,
    pub random_mean_distance: f64,
    pub bfs_sources: usize,
}

impl fmt::Display for MeshFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: live {} links {} degree min/mean/max {}/{:.2}/{} min-dialled {} \
             diameter {} mean distance {:.2} (BFS from {}; a random graph of that mean \
             degree: {}, {:.2})",
            self.phase,
            self.live,
            self.links,
            self.min_degree,
            self.mean_degree,
            self.max_degree,
            self.min_dialled,
            self.diameter,
            self.mean_distance,
            self.bfs_sources,
            self.random_diameter,
            self.random_mean_distance
        )
    }
}

/// Distances found by BFS: the longest, and their mean.
#[derive(Debug, Default)]
struct Distances {
    longest: u32,
    sum: u64,
    count: u64,
}

impl Distances {
    fn add(&mut self, d: u32) {
        self.longest = self.longest.max(d);
        self.sum += u64::from(d);
        self.count += 1;
    }

    fn mean(&self) -> f64 {
        self.sum as f64 / self.count.max(1) as f64
    }
}

/// The distances, by BFS from `sources` evenly spaced nodes (to the nodes each
/// reaches), of a random graph of `nodes` whose degrees add up to `degrees`, each the
/// mean rounded down or up: what a mesh of that size and degree could have.
fn random_distances(nodes: usize, degrees: usize, sources: usize, seed: u64) -> Distances {
    let mut rng = Rng::new(seed ^ 0x5eed_d1a3);
    let (each, more) = (degrees / nodes.max(1), degrees % nodes.max(1));
    let wanted: Vec<usize> = (0..nodes).map(|v| each + usize::from(v < more)).collect();
    let graph = Graph::with_degrees(&wanted, &mut rng);
    let step = (nodes / sources.max(1)).max(1);
    let mut found = Distances::default();
    for s in (0..nodes as u32).step_by(step) {
        graph
            .distances(s, |_, _| true)
            .into_iter()
            .flatten()
            .for_each(|d| found.add(d));
    }
    found
}

/// Up to this many running nodes, the diameter is BFS from every node; above it, from
/// about a hundred evenly spaced ones.
const FULL_BFS_UP_TO: usize = 1000;

/// A run that went wrong, with the seed that replays it.
#[derive(Debug, Clone)]
pub struct SimError {
    pub seed: u64,
    pub what: String,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation seed {} failed: {} (replay with {SEED_VAR}={})",
            self.seed, self.what, self.seed
        )
    }
}

impl std::error::Error for SimError {}

/// The seeds to run: the one in `P2PCHAT_SIM_SEED` if set, else `defaults`.
pub fn seeds(defaults: &[u64]) -> Result<Vec<u64>, String> {
    match std::env::var(SEED_VAR) {
        Ok(s) => s
            .parse()
            .map(|seed| vec![seed])
            .map_err(|e| format!("{SEED_VAR}={s:?}: {e}")),
        Err(_) => Ok(defaults.to_vec()),
    }
}

/// A line written in a run: who wrote it, in which of its runs, and when.
struct Line {
    origin: u32,
    origin_run: usize,
    at: Duration,
}

struct Run {
    net: Net,
    graph: Graph,
    seed: u64,
    lines: Vec<Line>,
    halves: Option<Vec<bool>>,
    /// A member that forged lines: cut off by its neighbours, left out of the checks.
    outcast: Option<u32>,
    /// What the partition's heal cost.
    heal: Option<HealFigures>,
    repaired_within: Option<Duration>,
    eclipse: Option<EclipseFigures>,
    members: Option<MemberFigures>,
    /// Bytes of the last summary round, per link.
    sync_bytes_per_link: f64,
    /// Bytes written while the waves' lines spread, and the counter at the end of the
    /// last one's spreading.
    wave_bytes: u64,
    flooded_bytes: u64,
    /// Where the figures start: the first line counted, and the copies dropped until
    /// then. A tree's first wave prunes it into shape and is not counted.
    counted_from: usize,
    duplicates_before: u64,
    /// The origin of every line from one sender.
    sender: Option<u32>,
    /// Links come from discovery: `graph` is rebuilt from the open links after every
    /// quiet spell instead of being compared with them.
    mesh: bool,
    /// Keepalive is on: the network never goes quiet.
    pings: bool,
    /// The degree bounds a mesh must keep: the target and `max_peers`.
    target: usize,
    max_peers: usize,
    figures: Vec<MeshFigures>,
    /// Links each node dialled, as `/peers` said at the last quiet spell.
    dialled: Vec<usize>,
}

/// Runs `spec` and judges it.
pub fn run(spec: &Spec) -> Result<Report, SimError> {
    let wall = Instant::now();
    let mut net_cfg = spec.net.clone();
    if spec.kind == Kind::SlowLink {
        net_cfg.limits.queue_pause = 4 * 1024;
        net_cfg.window = 4 * 1024;
    }
    if matches!(spec.kind, Kind::Relink | Kind::Churn) {
        // Bytes and ends of stream overtake each other across links, and a lost
        // hand-given link is dialled again, as the daemon does.
        net_cfg.latency = Duration::from_millis(1);
        net_cfg.jitter = Duration::from_millis(10);
        net_cfg.limits.redial = crate::config::Limits::default().redial;
        // Pings on every link all through the wave, mixed with everything else.
        net_cfg.limits.keepalive = Some(Keepalive {
            ping_interval: Duration::from_millis(200),
            peer_timeout: Duration::from_secs(1),
        });
    }
    if spec.kind == Kind::Members {
        net_cfg.announce = Some(crate::config::DEFAULT_ANNOUNCE_INTERVAL);
    }
    // Pings and announcements never stop: such a network is never quiet.
    let pings = net_cfg.limits.keepalive.is_some() || net_cfg.announce.is_some();
    let mesh = matches!(spec.kind, Kind::Mesh | Kind::Eclipse);
    net_cfg.discovery |= mesh;
    let max_peers = net_cfg.limits.max_peers;
    let mut net = Net::new(net_cfg, spec.nodes, spec.seed);
    let graph = if mesh {
        // Each node's one bootstrap address: a random earlier node.
        let mut adj = vec![Vec::new(); spec.nodes];
        for v in 1..spec.nodes {
            let u = net.rng().below(v as u64) as u32;
            adj[v].push(u);
            adj[u as usize].push(v as u32);
        }
        Graph::from_adj(adj)
    } else {
        Graph::build(spec.family, spec.nodes, net.rng())
    };
    let mut run = Run {
        net,
        graph,
        seed: spec.seed,
        lines: Vec::new(),
        halves: None,
        outcast: None,
        heal: None,
        repaired_within: None,
        eclipse: None,
        members: None,
        sync_bytes_per_link: 0.0,
        wave_bytes: 0,
        flooded_bytes: 0,
        counted_from: 0,
        duplicates_before: 0,
        sender: None,
        mesh,
        pings,
        target: crate::config::DEFAULT_TARGET_PEERS,
        max_peers,
        figures: Vec::new(),
        dialled: Vec::new(),
    };
    if spec.kind == Kind::SlowLink {
        let slow = run.net.rng().below(spec.nodes as u64) as u32;
        run.net.set_bandwidth(slow, 20_000);
    }
    // The members scenario keeps its last node for the newcomer.
    let first = spec.nodes - usize::from(spec.kind == Kind::Members);
    for v in 0..first as u32 {
        let later: Vec<u32> = run
            .graph
            .neighbours(v)
            .iter()
            .copied()
            .filter(|&w| w > v)
            .collect();
        run.net.start(v, &later);
    }
    run.settle("the first links")?;
    if mesh {
        run.mesh_figures("first links")?;
    }
    let third = spec.lines / 3;
    match spec.kind {
        Kind::Steady | Kind::Sender => {
            let origins = if spec.kind == Kind::Steady {
                Origins::Random
            } else {
                Origins::One
            };
            if spec.net.broadcast == Broadcast::Tree {
                run.wave(spec.lines, origins)?;
                run.count_from_here();
            }
            run.wave(spec.lines, origins)?
        }
        Kind::Relink => {
            let edges: Vec<(u32, u32)> = run.graph.edges().collect();
            let start = run.net.now();
            for (a, b) in edges {
                let rng = run.net.rng();
                if rng.below(2) == 0 {
                    continue;
                }
                let at = start + Duration::from_micros(rng.below(1_000_000));
                let crossed = rng.below(2) == 0;
                run.net.connect_at(at, b, a);
                if crossed {
                    run.net.connect_at(at, a, b);
                }
            }
            run.wave(spec.lines, Origins::Random)?;
        }
        Kind::Burst | Kind::SlowLink => run.wave(spec.lines, Origins::Burst)?,
        Kind::Partition => {
            run.wave(third, Origins::Random)?;
            let halves: Vec<bool> = (0..spec.nodes).map(|v| v < spec.nodes / 2).collect();
            run.net.cut(halves.clone());
            run.halves = Some(halves);
            run.settle("the cut")?;
            let cut_lines = run.lines.len()..run.lines.len() + third as usize;
            run.wave(third, Origins::Random)?;
            run.net.heal();
            let halves = run.halves.take().expect("cut above");
            let crossing: Vec<(u32, u32)> = run
                .graph
                .edges()
                .filter(|&(a, b)| halves[a as usize] != halves[b as usize])
                .collect();
            // The smaller index dialled at the start; it dials again.
            let (heal_at, bytes_then) = (run.net.now(), run.net.stats().bytes);
            for (a, b) in crossing {
                run.net.say(a, &format!("/connect {}", addr_of(b)));
            }
            run.heal = Some(run.catch_up(heal_at, bytes_then, cut_lines)?);
            run.settle("the heal")?;
            run.wave(spec.lines - 2 * third, Origins::Random)?;
        }
        Kind::Crash => {
            run.wave(third, Origins::Random)?;
            let mut order: Vec<u32> = (0..spec.nodes as u32).collect();
            run.net.rng().shuffle(&mut order);
            let crashed = &order[..spec.nodes.div_ceil(10)];
            for &v in crashed {
                run.net.crash(v);
            }
            run.settle("the crashes")?;
            run.wave(third, Origins::Random)?;
            let mut crashed = crashed.to_vec();
            crashed.sort_unstable();
            for v in crashed {
                let all: Vec<u32> = run.graph.neighbours(v).to_vec();
                run.net.start(v, &all);
            }
            run.settle("the restarts")?;
            run.wave(spec.lines - 2 * third, Origins::Random)?;
        }
        Kind::Repair => {
            run.wave(spec.lines, Origins::One)?;
            run.count_from_here();
            let sender = run.sender.expect("chosen by the wave");
            let mut others: Vec<u32> = (0..spec.nodes as u32).filter(|&v| v != sender).collect();
            run.net.rng().shuffle(&mut others);
            let crash_at = run.net.now() + Duration::from_millis(50);
            for &v in &others[..spec.nodes.div_ceil(10)] {
                run.net.crash_at(crash_at, v);
            }
            run.repaired_within = Some(run.repair_wave(spec.lines, crash_at)?);
        }
        Kind::Churn => run.churn(spec.lines)?,
        Kind::Members => run.members = Some(run.membership()?),
        Kind::Hostile => {
            run.wave(third, Origins::Random)?;
            let forger = run.net.rng().below(spec.nodes as u64) as u32;
            let victim = (forger + 1) % spec.nodes as u32;
            run.forge(forger, victim)?;
            run.wave(spec.lines - third, Origins::Random)?;
        }
        Kind::Eclipse => {
            run.wave(third, Origins::Random)?;
            run.eclipse = Some(run.eclipse()?);
            run.wave(spec.lines - third, Origins::Random)?;
        }
        Kind::Mesh => {
            run.wave(third, Origins::Random)?;
            let mut order: Vec<u32> = (0..spec.nodes as u32).collect();
            run.net.rng().shuffle(&mut order);
            let mut crashed = order[..spec.nodes / 5].to_vec();
            for &v in &crashed {
                run.net.crash(v);
            }
            run.settle("the crashes")?;
            run.mesh_figures("after the crashes")?;
            run.wave(third, Origins::Random)?;
            let live: Vec<u32> = (0..spec.nodes as u32)
                .filter(|&v| run.net.is_up(v))
                .collect();
            crashed.sort_unstable();
            for v in crashed {
                let boot = live[run.net.rng().below(live.len() as u64) as usize];
                run.net.start(v, &[boot]);
            }
            run.settle("the restarts")?;
            run.mesh_figures("after the restarts")?;
            run.wave(spec.lines - 2 * third, Origins::Random)?;
        }
    }
    let mut report = run.judge()?;
    report.wall = wall.elapsed();
    report.mesh = run.figures;
    report.heal = run.heal.take();
    report.repaired_within = run.repaired_within;
    report.eclipse = run.eclipse.take();
    report.sync_bytes_per_link = run.sync_bytes_per_link;
    report.members = run.members.take();
    Ok(report)
}

impl Run {
    fn fail(&self, what: String) -> SimError {
        SimError {
            seed: self.seed,
            what,
        }
    }

    /// Runs until quiet, then checks that every node lists exactly the peers the graph
    /// gives it among the running nodes on its side of any cut.
    fn settle(&mut self, after: &str) -> Result<(), SimError> {
        // With keepalive on a network is never quiet: it runs for a spell instead.
        let spell = if self.pings {
            PINGING_SPELL
        } else {
            QUIET_WITHIN
        };
        if self.pings {
            self.net.run_until(self.net.now() + spell);
        } else {
            // The lines of a wave have spread by then; what comes after is the summary
            // round, which nothing else shares the links with.
            let flooded = self.net.run_until(self.net.now() + FLOODED_WITHIN);
            let bytes = self.net.stats().bytes;
            self.flooded_bytes = bytes;
            if !self.net.run_until(self.net.now() + spell) {
                return Err(self.fail(format!("not quiet within {QUIET_WITHIN:?} after {after}")));
            }
            if !flooded {
                let links = self
                    .graph
                    .edges()
                    .filter(|&(a, b)| self.linked(a, b))
                    .count();
                let round = self.net.stats().bytes - bytes;
                self.sync_bytes_per_link = round as f64 / links.max(1) as f64;
            }
        }
        if self.mesh {
            return self.settle_mesh(after);
        }
        for v in 0..self.graph.len() as u32 {
            if !self.net.is_up(v) {
                continue;
            }
            let mut want: Vec<u64> = self
                .graph
                .neighbours(v)
                .iter()
                .filter(|&&w| self.linked(v, w))
                .filter_map(|&w| self.net.node_id(w))
                .collect();
            want.sort_unstable();
            let listed = self.net.peers(v);
            let open = self.net.open_links(v);
            if listed != want || open != want {
                return Err(self.fail(format!(
                    "after {after}, node {v} lists peers {listed:?} over links {open:?}; \
                     the graph says {want:?}"
                )));
            }
        }
        Ok(())
    }

    /// The mesh after a quiet spell: every running node's `/peers` is its open links,
    /// every link is listed at both ends, the links among running nodes form one
    /// component, and every degree lies between `min(target, live - 1)` and
    /// `max_peers`. The open links become the graph the next wave is judged against.
    fn settle_mesh(&mut self, after: &str) -> Result<(), SimError> {
        let n = self.graph.len();
        let mut index = HashMap::new();
        for v in 0..n as u32 {
            if let Some(id) = self.net.node_id(v) {
                index.insert(id, v);
            }
        }
        let mut adj = vec![Vec::new(); n];
        let mut dialled = vec![0; n];
        for v in 0..n as u32 {
            if !self.net.is_up(v) {
                continue;
            }
            let mut listed: Vec<u64> = Vec::new();
            for line in self.net.ask(v, "/peers") {
                let Some(rest) = line.strip_prefix("peer ") else {
                    continue;
                };
                let fields: Vec<&str> = rest.split(' ').collect();
                if fields.get(1) == Some(&"out") {
                    dialled[v as usize] += 1;
                }
                if let Some(id) = fields.get(2).and_then(|f| u64::from_str_radix(f, 16).ok()) {
                    listed.push(id);
                }
            }
            listed.sort_unstable();
            let open = self.net.open_links(v);
            if listed != open {
                return Err(self.fail(format!(
                    "after {after}, node {v} lists peers {listed:?} over links {open:?}"
                )));
            }
            for id in open {
                let w = *index.get(&id).ok_or_else(|| {
                    self.fail(format!(
                        "after {after}, node {v} links to unknown id {id:x}"
                    ))
                })?;
                adj[v as usize].push(w);
            }
        }
        for v in 0..n as u32 {
            if let Some(&w) = adj[v as usize]
                .iter()
                .find(|&&w| !adj[w as usize].contains(&v))
            {
                return Err(self.fail(format!(
                    "after {after}, node {v} has a link to node {w}, which has none back"
                )));
            }
        }
        self.graph = Graph::from_adj(adj);
        let live = (0..n as u32).filter(|&v| self.net.is_up(v)).count();
        let labels = self
            .graph
            .components(|v| self.net.is_up(v), |a, b| self.linked(a, b));
        let first = labels.iter().flatten().next().copied();
        if let Some(v) = labels.iter().position(|l| l.is_some() && *l != first) {
            let mut sizes: BTreeMap<u32, usize> = BTreeMap::new();
            for label in labels.iter().flatten() {
                *sizes.entry(*label).or_default() += 1;
            }
            let smallest = sizes.values().min().expect("two components at least");
            return Err(self.fail(format!(
                "after {after}, the links of the {live} running nodes form {} components, \
                 the smallest of {smallest} nodes (node {v} is not in node {first:?}'s)",
                sizes.len()
            )));
        }
        let low = self.target.min(live.saturating_sub(1));
        for v in 0..n as u32 {
            if !self.net.is_up(v) {
                continue;
            }
            let degree = self.graph.neighbours(v).len();
            if degree < low || degree > self.max_peers {
                let status = self.net.ask(v, "/status");
                return Err(self.fail(format!(
                    "after {after}, node {v} has {degree} links ({} dialled), outside \
                     {low}..={}; its /status: {status:?}",
                    dialled[v as usize], self.max_peers
                )));
            }
        }
        self.dialled = dialled;
        Ok(())
    }

    /// Records the shape of the mesh as the last quiet spell left it: degrees, and the
    /// diameter by BFS from every running node (from a sample past [`FULL_BFS_UP_TO`]).
    fn mesh_figures(&mut self, phase: &'static str) -> Result<(), SimError> {
        let up: Vec<u32> = (0..self.graph.len() as u32)
            .filter(|&v| self.net.is_up(v))
            .collect();
        let degrees: Vec<usize> = up.iter().map(|&v| self.graph.neighbours(v).len()).collect();
        let sources: Vec<u32> = if up.len() <= FULL_BFS_UP_TO {
            up.clone()
        } else {
            up.iter().copied().step_by(up.len() / 100).collect()
        };
        let mut found = Distances::default();
        for &s in &sources {
            let dist = self.graph.distances(s, |a, b| self.linked(a, b));
            for &v in &up {
                let d = dist[v as usize].ok_or_else(|| {
                    self.fail(format!("{phase}: node {v} is not reachable from node {s}"))
                })?;
                found.add(d);
            }
        }
        let sum: usize = degrees.iter().sum();
        let random = random_distances(up.len(), sum, sources.len(), self.seed);
        self.figures.push(MeshFigures {
            phase,
            live: up.len(),
            links: sum / 2,
            min_degree: degrees.iter().copied().min().unwrap_or(0),
            mean_degree: sum as f64 / up.len().max(1) as f64,
            max_degree: degrees.iter().copied().max().unwrap_or(0),
            min_dialled: up
                .iter()
                .map(|&v| self.dialled[v as usize])
                .min()
                .unwrap_or(0),
            diameter: found.longest,
            mean_distance: found.mean(),
            random_diameter: random.longest,
            random_mean_distance: random.mean(),
            bfs_sources: sources.len(),
        });
        Ok(())
    }

    /// Whether `a` and `b` should be linked now: both up, on the same side, neither
    /// cut off for forging.
    fn linked(&self, a: u32, b: u32) -> bool {
        self.net.is_up(a)
            && self.net.is_up(b)
            && self.outcast.is_none_or(|o| a != o && b != o)
            && self
                .halves
                .as_ref()
                .is_none_or(|h| h[a as usize] == h[b as usize])
    }

    /// `forger` forges in `victim`'s name, with the ids the victim uses next; once the
    /// network is quiet again, every neighbour has cut the forger off for it, and the
    /// victim's next line (with those ids) is the first of the next wave.
    fn forge(&mut self, forger: u32, victim: u32) -> Result<(), SimError> {
        let run = self.net.runs(victim).len() - 1;
        let next_seq = (self.lines.iter())
            .filter(|l| l.origin == victim && l.origin_run == run)
            .count() as u64;
        self.net.forge(forger, victim, next_seq);
        self.outcast = Some(forger);
        self.settle("the forgery")?;
        for &w in self.graph.neighbours(forger) {
            let forged = self.net.counters(w).map_or(0, |c| c.forged);
            if self.net.is_up(w) && forged == 0 {
                return Err(self.fail(format!(
                    "node {w} took the forgeries of its neighbour {forger} without a word"
                )));
            }
        }
        let at = self.net.now();
        let line = self.lines.len() as u32;
        self.lines.push(Line {
            origin: victim,
            origin_run: run,
            at,
        });
        self.net.say_at(at, victim, line);
        Ok(())
    }

    /// Runs the network after the heal at `heal_at` until every node has shown every
    /// line of the cut (`cut`) written on the other side, and says what that took: the
    /// time, and the bytes on every link since `bytes_then` (the catch-up, the flood of
    /// what it brought, the summaries) per (line, node) pair that was missing.
    fn catch_up(
        &mut self,
        heal_at: Duration,
        bytes_then: u64,
        cut: std::ops::Range<usize>,
    ) -> Result<HealFigures, SimError> {
        let n = self.graph.len() as u32;
        let half = |v: u32| v < n / 2;
        let other_side = |origin: u32| if half(origin) { n - n / 2 } else { n / 2 };
        let missing: u64 = (self.lines[cut.clone()].iter())
            .map(|l| u64::from(other_side(l.origin)))
            .sum();
        // Counted as they arrive: each check reads only what was received since the last.
        let mut read = vec![0usize; n as usize];
        let mut shown = 0u64;
        loop {
            for v in 0..n {
                let received = self.net.received(v);
                for r in &received[read[v as usize]..] {
                    let i = r.line as usize;
                    if cut.contains(&i) && half(v) != half(self.lines[i].origin) {
                        shown += 1;
                    }
                }
                read[v as usize] = received.len();
            }
            if shown >= missing {
                break;
            }
            let step = self.net.now() + Duration::from_millis(100);
            if self.net.run_until(step) && shown < missing {
                // Quiet: what is not shown yet never will be, unless it arrived last.
                let late: usize = (0..n)
                    .map(|v| self.net.received(v).len() - read[v as usize])
                    .sum();
                if late == 0 {
                    return Err(self.fail(format!(
                        "quiet after the heal with {shown} of {missing} caught-up lines shown"
                    )));
                }
            }
        }
        let bytes = self.net.stats().bytes - bytes_then;
        Ok(HealFigures {
            lines: cut.len() as u64,
            missing,
            converge: self.net.now() - heal_at,
            bytes_per_missing: bytes as f64 / missing.max(1) as f64,
        })
    }

    /// The churn scenario's wave: see [`Kind::Churn`].
    fn churn(&mut self, count: u32) -> Result<(), SimError> {
        let n = self.graph.len() as u32;
        let start = self.net.now();
        let millis =
            |net: &mut Net, lo: u64, hi: u64| Duration::from_millis(lo + net.rng().below(hi - lo));
        let cut_at = start + millis(&mut self.net, 300, 800);
        let heal_at = cut_at + millis(&mut self.net, 300, 900);
        let halves: Vec<bool> = (0..n).map(|v| v < n / 2).collect();
        for (a, b) in self.graph.edges() {
            if halves[a as usize] != halves[b as usize] {
                // The smaller index dialled at the start; it dials again.
                self.net.connect_at(heal_at, a, b);
            }
        }
        self.net.cut_between(cut_at, heal_at, halves);
        let mut order: Vec<u32> = (0..n).collect();
        self.net.rng().shuffle(&mut order);
        let mut down = vec![None; n as usize];
        for &v in &order[..(n as usize).div_ceil(10)] {
            let crash = start + millis(&mut self.net, 200, 2000);
            let restart = crash + millis(&mut self.net, 200, 600);
            down[v as usize] = Some((crash, restart));
            self.net.crash_at(crash, v);
            self.net
                .start_at(restart, v, self.graph.neighbours(v).to_vec());
        }
        for _ in 0..count {
            let at = start + Duration::from_micros(self.net.rng().below(3_000_000));
            let origin = loop {
                let v = self.net.rng().below(u64::from(n)) as u32;
                if down[v as usize].is_none_or(|(crash, restart)| at < crash || at >= restart) {
                    break v;
                }
            };
            let restarted = down[origin as usize].is_some_and(|(_, restart)| at >= restart);
            let origin_run = self.net.runs(origin).len() - 1 + usize::from(restarted);
            let line = self.lines.len() as u32;
            self.lines.push(Line {
                origin,
                origin_run,
                at,
            });
            self.net.say_at(at, origin, line);
        }
        self.settle("the churn")
    }

    /// Writes `count` lines from running nodes (one origin for a burst, else each at
    /// random, spread over a second), then waits for quiet.
    fn wave(&mut self, count: u32, origins: Origins) -> Result<(), SimError> {
        let before = self.net.stats().bytes;
        let last = self.write(count, origins);
        // A wave longer than the flooding time is run to its last line first.
        self.net.run_until(last);
        self.end_wave(before)
    }

    /// A settled sender's wave with crashes at `crash_at`: the time from the crashes
    /// to the last graft, watched in steps of 10 ms until a second after the last line.
    fn repair_wave(&mut self, count: u32, crash_at: Duration) -> Result<Duration, SimError> {
        const STEP: Duration = Duration::from_millis(10);
        let before = self.net.stats().bytes;
        let last = self.write(count, Origins::One);
        let (mut grafts, mut last_graft) = (self.net.grafts(), crash_at);
        let mut t = crash_at;
        while t < last + Duration::from_secs(1) {
            t += STEP;
            self.net.run_until(t);
            if self.net.grafts() != grafts {
                (grafts, last_graft) = (self.net.grafts(), t);
            }
        }
        self.end_wave(before)?;
        Ok(last_graft - crash_at)
    }

    /// Schedules a wave's lines; returns when the last is written.
    fn write(&mut self, count: u32, origins: Origins) -> Duration {
        let up: Vec<u32> = (0..self.graph.len() as u32)
            .filter(|&v| self.net.is_up(v) && Some(v) != self.outcast)
            .collect();
        let start = self.net.now();
        let drawn = up[self.net.rng().below(up.len() as u64) as usize];
        // A settled sender is the same node from wave to wave.
        let fixed = match origins {
            Origins::One => *self.sender.get_or_insert(drawn),
            Origins::Burst | Origins::Random => drawn,
        };
        for i in 0..count {
            let (origin, at) = match origins {
                Origins::Burst => (fixed, start),
                // One line every 100 ms: each crosses the mesh before the next.
                Origins::One => (fixed, start + Duration::from_millis(100) * i),
                Origins::Random => {
                    let origin = up[self.net.rng().below(up.len() as u64) as usize];
                    let offset = Duration::from_micros(self.net.rng().below(1_000_000));
                    (origin, start + offset)
                }
            };
            let line = self.lines.len() as u32;
            let origin_run = self.net.runs(origin).len() - 1;
            self.lines.push(Line {
                origin,
                origin_run,
                at,
            });
            self.net.say_at(at, origin, line);
        }
        self.lines.last().map_or(start, |l| l.at)
    }

    fn end_wave(&mut self, before: u64) -> Result<(), SimError> {
        self.settle("a wave of lines")?;
        self.wave_bytes += self.flooded_bytes.saturating_sub(before);
        Ok(())
    }

    /// Whether node `v`'s run that started at `start` must show `line`: it was written
    /// in the run's time, by another node. `None` for a line written within a
    /// millisecond of the start, which may go either way: the author's clock has
    /// milliseconds.
    fn due(line: &Line, v: u32, start: Duration) -> Option<bool> {
        let (at, start) = (line.at.as_millis(), start.as_millis());
        if line.origin == v || at + 1 < start {
            Some(false)
        } else if at > start + 1 {
            Some(true)
        } else {
            None
        }
    }

    /// Checks every delivery and gathers the figures.
    /// The members scenario after the first links: the warm-up, the count, the newcomer.
    fn membership(&mut self) -> Result<MemberFigures, SimError> {
        const WARM_UP: Duration = Duration::from_secs(600);
        const COUNTED: Duration = Duration::from_secs(600);
        self.net.run_until(self.net.now() + WARM_UP);
        let bytes = self.net.stats().bytes;
        self.net.run_until(self.net.now() + COUNTED);
        let running = self.graph.len() - 1;
        let rate = (self.net.stats().bytes - bytes) as f64 / COUNTED.as_secs_f64() / running as f64;
        let newcomer = running as u32;
        let started = self.net.now();
        let links: Vec<u32> = self.graph.neighbours(newcomer).to_vec();
        self.net.start(newcomer, &links);
        let id = self.net.node_id(newcomer).expect("just started");
        let step = Duration::from_millis(10);
        loop {
            self.net.run_until(self.net.now() + step);
            if (0..running as u32).all(|v| self.net.lists_member(v, id)) {
                break;
            }
            if self.net.now() - started > QUIET_WITHIN {
                return Err(self.fail(format!(
                    "node {newcomer} not listed everywhere within {QUIET_WITHIN:?}"
                )));
            }
        }
        Ok(MemberFigures {
            bytes_per_node_per_sec: rate,
            listed_within: self.net.now() - started,
        })
    }

    /// A random member tells its peers addresses where nobody listens; then a fifth of
    /// the others crash and the survivors dial from their books.
    fn eclipse(&mut self) -> Result<EclipseFigures, SimError> {
        const TOLD: u32 = 4096;
        let n = self.graph.len() as u32;
        let liar = self.net.rng().below(u64::from(n)) as u32;
        let peers = self.graph.neighbours(liar).to_vec();
        let known = |run: &mut Run, v: u32| -> u64 {
            let status = run.net.ask(v, "/status");
            (status.iter())
                .find_map(|l| l.strip_prefix("known-addresses ")?.parse().ok())
                .expect("/status tells known-addresses")
        };
        let before: Vec<u64> = peers.iter().map(|&v| known(self, v)).collect();
        let lies: Vec<SocketAddr> = (0..TOLD).map(nowhere).collect();
        self.net.inject_addrs(liar, &lies);
        self.settle("the lies")?;
        let mut most_learned = 0;
        for (&v, before) in peers.iter().zip(before) {
            most_learned = most_learned.max(known(self, v).saturating_sub(before));
        }
        let (dials, nowhere_before) = (self.net.stats().dials, self.net.stats().dials_nowhere);
        let mut others: Vec<u32> = (0..n).filter(|&v| v != liar).collect();
        self.net.rng().shuffle(&mut others);
        for &v in &others[..n as usize / 5] {
            self.net.crash(v);
        }
        self.settle("the crashes")?;
        self.mesh_figures("after the crashes")?;
        Ok(EclipseFigures {
            peers: peers.len(),
            told: TOLD as usize,
            most_learned,
            dials: self.net.stats().dials - dials,
            dials_to_lies: self.net.stats().dials_nowhere - nowhere_before,
        })
    }

    /// Leaves what came so far out of the figures (not out of the checks).
    fn count_from_here(&mut self) {
        self.counted_from = self.lines.len();
        self.duplicates_before = self.net.duplicates();
        self.wave_bytes = 0;
    }

    fn judge(&self) -> Result<Report, SimError> {
        let mut count = vec![0u64; self.lines.len()];
        let (mut last_delivery, mut deliveries) = (Duration::ZERO, 0u64);
        let mut delays = Vec::new();
        for v in 0..self.graph.len() as u32 {
            if Some(v) == self.outcast {
                continue;
            }
            let runs = self.net.runs(v);
            let mut shown = HashSet::new();
            // Per (run of v, author, author's run): the last line shown, as written.
            let mut last: HashMap<(usize, u32, usize), (Duration, u32)> = HashMap::new();
            for r in self.net.received(v) {
                let line = self.lines.get(r.line as usize).ok_or_else(|| {
                    self.fail(format!("node {v} received unknown line {}", r.line))
                })?;
                if Self::due(line, v, runs[r.run]) == Some(false) {
                    return Err(self.fail(format!(
                        "run {} of node {v} (from {:?}) was shown line {} of node {}, \
                         written at {:?}",
                        r.run, runs[r.run], r.line, line.origin, line.at
                    )));
                }
                if !shown.insert((r.run, r.line)) {
                    return Err(self.fail(format!("node {v} received line {} twice", r.line)));
                }
                let written = (line.at, r.line);
                let author = (r.run, line.origin, line.origin_run);
                if let Some(before) = last.insert(author, written).filter(|&b| b > written) {
                    return Err(self.fail(format!(
                        "node {v} was shown line {} of node {} after line {}, written later",
                        r.line, line.origin, before.1
                    )));
                }
                if r.run == runs.len() - 1 && self.net.is_up(v) {
                    count[r.line as usize] += 1;
                }
                if r.line as usize >= self.counted_from {
                    deliveries += 1;
                    last_delivery = last_delivery.max(r.at - line.at);
                    delays.push(r.at - line.at);
                }
            }
        }
        for (i, line) in self.lines.iter().enumerate() {
            let (mut due, mut maybe) = (0u64, 0u64);
            for v in 0..self.graph.len() as u32 {
                if !self.net.is_up(v) || Some(v) == self.outcast {
                    continue;
                }
                match Self::due(line, v, *self.net.runs(v).last().expect("up")) {
                    Some(true) => due += 1,
                    None => maybe += 1,
                    Some(false) => {}
                }
            }
            // A line whose author crashed before it reached anybody is lost with it.
            let author_gone = !self.net.is_up(line.origin)
                || self.net.runs(line.origin).len() - 1 != line.origin_run;
            let lost_with_author = author_gone && count[i] == 0;
            if !(due..=due + maybe).contains(&count[i]) && !lost_with_author {
                return Err(self.fail(format!(
                    "line {i} from node {} reached {} of the {due} clients it is due to",
                    line.origin, count[i]
                )));
            }
        }
        let stats = self.net.stats();
        let suppressed = self.net.duplicates() - self.duplicates_before;
        delays.sort_unstable();
        let percentile = |p: usize| delays.get(delays.len() * p / 100).copied();
        Ok(Report {
            seed: self.seed,
            lines: (self.lines.len() - self.counted_from) as u32,
            deliveries,
            suppressed_per_delivery: suppressed as f64 / deliveries.max(1) as f64,
            last_delivery,
            delivery_p50: percentile(50).unwrap_or_default(),
            delivery_p99: percentile(99).unwrap_or_default(),
            max_peer_queue: stats.max_peer_queue,
            events: stats.events,
            virtual_time: self.net.now(),
            trace_hash: self.net.trace_hash(),
            wall: Duration::ZERO,
            mesh: Vec::new(),
            heal: None,
            repaired_within: None,
            eclipse: None,
            members: None,
            sync_bytes_per_link: self.sync_bytes_per_link,
            bytes_per_delivery: (!self.pings)
                .then(|| self.wave_bytes as f64 / deliveries.max(1) as f64),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} lines {} deliveries {} suppressed/delivery {:.2} \
             last-delivery {:?} delivery-p50 {:?} delivery-p99 {:?} max-peer-queue {} events {} \
             virtual {:?} trace {:016x} wall {:?}",
            self.seed,
            self.lines,
            self.deliveries,
            self.suppressed_per_delivery,
            self.last_delivery,
            self.delivery_p50,
            self.delivery_p99,
            self.max_peer_queue,
            self.events,
            self.virtual_time,
            self.trace_hash,
            self.wall
        )?;
        write!(
            f,
            " summary-round {:.0} bytes per link",
            self.sync_bytes_per_link
        )?;
        if let Some(bytes) = self.bytes_per_delivery {
            write!(f, " bytes/delivery {bytes:.0}")?;
        }
        for figures in &self.mesh {
            write!(f, "\n  {figures}")?;
        }
        if let Some(members) = &self.members {
            write!(f, "\n  {members}")?;
        }
        if let Some(heal) = &self.heal {
            write!(f, "\n  {heal}")?;
        }
        if let Some(eclipse) = &self.eclipse {
            write!(f, "\n  {eclipse}")?;
        }
        if let Some(within) = self.repaired_within {
            write!(f, "\n  repair: the last graft {within:?} after the crashes")?;
        }
        Ok(())
    }
}
