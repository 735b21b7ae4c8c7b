//! How a mesh grown by peer exchange gets the short paths of a random graph: each node,
//! for a while after it starts, sends random walks through the mesh that carry its
//! address, and the node where a walk ends dials it, giving up the oldest of its own
//! dialled links if that puts it over the target. Peer exchange alone links each node into its
//! bootstrap's neighbourhood, and such a mesh is several times longer than a random one.
//!
//! Walks are best-effort: one that comes too soon after another on the same link is
//! dropped, and so is one that ends where its address is dialled or linked already.
//! This is not where the degree is kept (see `discovery`), only where links are swapped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;

use crate::proto::cause::Cause;
use crate::proto::conn::{Direction, Phase};
use crate::proto::ids::ConnId;
use crate::proto::timers::Timer;
use crate::wire::peer::Walk;

use super::Node;

/// Walks a node sends after it starts: enough that the links of a mesh that starts all
/// at once are swapped for random ones even at 100,000 nodes, and no more, so that a
/// settled mesh keeps its links. Each round of swaps reaches further than the last,
/// and a bigger mesh needs more rounds: with 10, a mesh of 30,000 nodes had a diameter
/// of 9 where a random graph's is 7.
pub(super) const WALKS: u32 = 20;

/// Steps of a walk: about the diameter of a random graph of 100,000 nodes. Longer walks
/// end more often at the best-linked nodes (a walk visits a node as often as it has
/// links), which grew hubs and longer paths in the simulator.
const WALK_HOPS: u8 = 6;

/// The mean time between a node's walks; each gap is drawn from half to one and a
/// half times it.
const WALK_EVERY: Duration = Duration::from_secs(2);

/// The shortest gap between two walks a link carries. A walk costs its receiver one
/// message or one dial, so this bounds what a peer can make the mesh do.
const WALK_GAP: Duration = Duration::from_millis(250);

impl Node {
    /// Arms the next walk, if the node has walks left, takes peers (else nobody could
    /// dial it), and has none armed.
    pub(super) fn schedule_walk(&mut self, now: Instant) {
        if self.walks_left == 0 || self.walk_deadline.is_some() || self.cfg.listen_addr.is_none() {
            return;
        }
        let gap = WALK_EVERY.mul_f64(0.5 + self.random_unit());
        let slot = &mut self.walk_deadline;
        self.fx
            .timers
            .set(ConnId::NODE, Timer::Walk, slot, Some(now + gap));
    }

    /// Sends a walk to a linked peer picked at random; with none linked, the next
    /// link to come up arms the walk again. A node with half as many links again as
    /// its target lets its turn pass: each walk that ends in a dial is a link more for
    /// it, and a node that came late to a settled mesh, which nobody gives up links
    /// to, would gather one per walk.
    pub(super) fn walk_due(&mut self, now: Instant) {
        let Some(first) = self.random_link(None) else {
            return;
        };
        self.walks_left -= 1;
        if self.linked.len() * 2 < self.cfg.target_peers * 3 {
            self.send_walk(now, first, WALK_HOPS, None);
        }
        self.schedule_walk(now);
    }

    /// Peer `id` passed a walk on: pass it to another peer, or end it here.
    pub(super) fn peer_walk(&mut self, now: Instant, id: ConnId, walk: Walk) {
        let advertised = self.advertised(id);
        let Some(remote) = self.conns[id.slot].peer_mut().and_then(|p| p.remote_mut()) else {
            return;
        };
        if remote.last_walk.is_some_and(|at| now < at + WALK_GAP) {
            return debug!("dropped a walk from {id}: under {WALK_GAP:?} after the last");
        }
        remote.last_walk = Some(now);
        let Some(addr) = walk.addr.or(advertised) else {
            return debug!("dropped a walk from {id}, which takes no peers");
        };
        let hops = walk.hops.min(WALK_HOPS);
        if let Some(next) = self.random_link(Some(id)).filter(|_| hops > 0) {
            return self.send_walk(now, next, hops - 1, Some(addr));
        }
        self.walk_ends(now, addr);
    }

    /// A walk that carried `addr` ended here: dial it, unless it is this node's own,
    /// linked or dialled already, or the node has all the peers it takes. A node with
    /// its target of links dials only if it has a link to give up for the new one, so
    /// that walks swap links and do not add them.
    fn walk_ends(&mut self, now: Instant, addr: SocketAddr) {
        let own = Some(addr) == self.cfg.listen_addr || self.book.is_own(addr);
        let full = self.linked.len() >= self.cfg.limits.max_peers;
        let swaps =
            self.linked.len() < self.cfg.target_peers || self.oldest_dialled(None).is_some();
        if !self.cfg.discovery || own || full || !swaps || self.busy_addrs().contains(&addr) {
            return;
        }
        debug!("a walk ended here: dialling {addr}");
        let id = self.insert_dialled(now, addr.to_string(), false, Phase::Connecting);
        self.start_dial(now, id);
    }

    /// A link this node dialled from what it learned came up: if the node is over its
    /// target now, it gives up the oldest other such link, most likely one into its
    /// first neighbourhood. Links given by hand stay, and so do those others dialled,
    /// whose ends may have been given them by hand and would dial again.
    pub(super) fn trim(&mut self, new: ConnId) {
        let target = self.cfg.target_peers;
        if !self.cfg.discovery || self.linked.len() <= target {
            return;
        }
        if let Some(id) = self.oldest_dialled(Some(new)) {
            self.doom(id, Cause::Rewired { target });
        }
    }

    /// The link, other than `except`, that this node dialled longest ago from what it
    /// learned.
    fn oldest_dialled(&self, except: Option<ConnId>) -> Option<ConnId> {
        (self.linked.values().copied())
            .filter(|&id| Some(id) != except)
            .filter_map(|id| {
                let peer = self.conns[id.slot].peer().expect("linked are peers");
                let dialled = peer.direction == Direction::Out && !peer.hand;
                Some((peer.remote()?.since, id)).filter(|_| dialled)
            })
            .min()
            .map(|(_, id)| id)
    }

    /// A linked peer picked at random, other than `except`.
    fn random_link(&mut self, except: Option<ConnId>) -> Option<ConnId> {
        let others: Vec<ConnId> = (self.linked.values().copied())
            .filter(|&id| Some(id) != except)
            .collect();
        if others.is_empty() {
            return None;
        }
        let pick = self.random_below(others.len());
        Some(others[pick])
    }

    fn send_walk(&mut self, now: Instant, to: ConnId, hops: u8, addr: Option<SocketAddr>) {
        self.frame_buf.clear();
        Walk { hops, addr }.encode(&mut self.frame_buf);
        let conn = &mut self.conns[to.slot];
        self.fx
            .enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
    }
}
