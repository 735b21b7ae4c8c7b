//! How a node finds more peers than it was given: peer exchange (telling linked nodes
//! where the others accept peers) and keeping its number of dialled links at the
//! target by dialling learned addresses, picked at random.
//!
//! What is dialled depends only on what was learned and on the node's seed, so the
//! simulator replays it exactly.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;

use crate::proto::cause::Cause;
use crate::proto::conn::{Conn, Direction, Peer, Phase, Role};
use crate::proto::ids::{ConnId, NodeId};
use crate::proto::timers::Timer;
use crate::wire::peer::{Addrs, Message};

use super::Node;

/// Addresses a node remembers at the most: twice the most peers it takes, and few
/// enough that a mesh of 100,000 nodes, where every book is full, holds them in memory
/// (an entry costs 56 bytes). Walks, not the book, spread a node's links over the mesh.
pub(super) const ADDRESS_BOOK_CAPACITY: usize = 128;

/// Addresses from the book, beyond those of its peers, that a node tells a new peer.
const ADDRS_SAMPLE: usize = 8;

/// How soon after a change (a link lost, addresses learned) the node checks whether it
/// should dial: soon, but late enough to batch a burst of changes into one check.
const DEGREE_CHECK_DELAY: Duration = Duration::from_millis(200);

impl Node {
    /// A link came up: tell the new peer where the node's other peers accept peers,
    /// and tell them where the new one does.
    pub(super) fn exchange_addrs(&mut self, now: Instant, id: ConnId) {
        let Some((new, from)) = self.advertised(id).zip(self.remote_id(id)) else {
            // Still worth telling it about the others.
            return self.send_known_to(now, id);
        };
        self.book.learn(new, from);
        self.book.succeeded(new);
        self.send_known_to(now, id);
        self.frame_buf.clear();
        Message::encode_addrs(&mut self.frame_buf, [new]);
        for (_, conn) in &mut self.conns {
            if conn.is_linked() && conn.id != id {
                self.fx
                    .enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
            }
        }
    }

    /// Sends `id` the addresses of every other linked peer that accepts peers, and a
    /// few others from the address book, picked at random: a node that heard only of
    /// its peers' peers would link into a long chain of neighbourhoods.
    pub(super) fn send_known_to(&mut self, now: Instant, id: ConnId) {
        let mut others: Vec<SocketAddr> = self
            .linked
            .values()
            .filter(|&&other| other != id)
            .filter_map(|&other| self.advertised(other))
            .collect();
        let own = self.advertised(id);
        let mut rest: Vec<SocketAddr> = (self.book.addrs())
            .filter(|addr| Some(*addr) != own && !others.contains(addr))
            .collect();
        for _ in 0..ADDRS_SAMPLE {
            if rest.is_empty() {
                break;
            }
            let pick = self.random_below(rest.len());
            others.push(rest.swap_remove(pick));
        }
        if others.is_empty() {
            return;
        }
        self.frame_buf.clear();
        Message::encode_addrs(&mut self.frame_buf, others);
        let conn = &mut self.conns[id.slot];
        self.fx
            .enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
    }

    fn remote_id(&self, id: ConnId) -> Option<NodeId> {
        self.conns[id.slot].peer().and_then(Peer::proven_id)
    }

    pub(super) fn advertised(&self, id: ConnId) -> Option<SocketAddr> {
        self.conns[id.slot]
            .peer()
            .and_then(Peer::remote)
            .and_then(|remote| remote.advertised)
    }

    /// Peer `id` told us where nodes accept peers.
    pub(super) fn learn_addrs(&mut self, now: Instant, id: ConnId, addrs: Addrs<'_>) {
        let (own, Some(from)) = (self.cfg.listen_addr, self.remote_id(id)) else {
            return;
        };
        let mut learned = 0;
        for addr in addrs.iter().filter(|&addr| Some(addr) != own) {
            learned += usize::from(self.book.learn(addr, from));
        }
        if learned > 0 {
            debug!("learned {learned} addresses, {} known", self.book.len());
            self.schedule_degree_check(now);
        }
    }

    /// What a lost peer connection says about its address: one that led back here (or
    /// to another process with this node's key) is this node's own; a learned one that never came up (a duplicate of a link the
    /// node has under another address included) failed once more.
    pub(super) fn learn_from_loss(&mut self, peer: &Peer, cause: &Cause) {
        if peer.direction != Direction::Out || peer.came_up().is_some() {
            return;
        }
        let Some(addr) = dialled_addr(peer) else {
            return;
        };
        match cause {
            Cause::SelfLink | Cause::SameKey => self.book.is_self(addr),
            _ if !peer.hand => self.book.failed(addr),
            _ => {}
        }
    }

    /// Asks for a degree check soon, unless discovery is off or one is due already.
    pub(super) fn schedule_degree_check(&mut self, now: Instant) {
        if !self.cfg.discovery || self.degree_deadline.is_some() {
            return;
        }
        let at = Some(now + DEGREE_CHECK_DELAY);
        let slot = &mut self.degree_deadline;
        self.fx.timers.set(ConnId::NODE, Timer::Degree, slot, at);
    }

    /// Dials learned addresses, picked at random, while the node has fewer links than
    /// the target, those it accepted and its dials on their way included: a node that
    /// others dialled dials less, so the mean degree stays between the target and one
    /// and a half times it rather than twice it. Addresses the node is linked to or
    /// dialling are skipped; the outcome of each dial schedules the next check.
    pub(super) fn check_degree(&mut self, now: Instant) {
        // This node's dials on their way count; connections accepted and still in their
        // handshake, which a stranger can hold, do not.
        let on_their_way = (self.conns.iter())
            .filter(|(_, c)| is_dialled_link(c) && c.peer().is_some_and(|p| p.remote().is_none()))
            .count();
        let wanted = (self.cfg.target_peers).min(self.cfg.limits.max_peers);
        let wanted = wanted.saturating_sub(self.linked.len() + on_their_way);
        if wanted == 0 {
            return;
        }
        let busy = self.busy_addrs();
        let mut candidates: Vec<SocketAddr> =
            self.book.addrs().filter(|a| !busy.contains(a)).collect();
        for _ in 0..wanted {
            if candidates.is_empty() {
                return;
            }
            let pick = self.random_below(candidates.len());
            let addr = candidates.swap_remove(pick);
            let id = self.insert_dialled(now, addr.to_string(), false, Phase::Connecting);
            self.start_dial(now, id);
        }
    }

    /// Addresses of every peer connection, as connected, advertised or dialled: not to
    /// be dialled again.
    pub(super) fn busy_addrs(&self) -> Vec<SocketAddr> {
        (self.conns.iter())
            .filter_map(|(_, c)| c.peer())
            .flat_map(|p| {
                [
                    p.addr,
                    p.remote().and_then(|r| r.advertised),
                    dialled_addr(p),
                ]
            })
            .flatten()
            .collect()
    }
}

/// A link this node dialled that is up or on its way up (not one waiting to be
/// redialled, nor one given up).
fn is_dialled_link(conn: &Conn) -> bool {
    matches!(&conn.role, Role::Peer(p) if p.direction == Direction::Out
        && !matches!(p.phase, Phase::Waiting | Phase::Retired(_)))
        && !conn.closing
}

/// The address a dialled peer was dialled at, when it is an IP address.
fn dialled_addr(peer: &Peer) -> Option<SocketAddr> {
    peer.addr
        .or_else(|| peer.target.as_deref().and_then(|t| t.parse().ok()))
}
