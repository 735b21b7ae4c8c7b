//! Epidemic broadcast trees (Plumtree: Leitão, Pereira and Rodrigues, SRDS 2007) over
//! the node's links, with `Broadcast::Tree`. A new batch goes in full to the peers on
//! the tree (eager links) and as an id to the others (lazy links), ids gathered for a
//! short while. A live copy that comes a second time asks the peer it came from for
//! ids only (a prune); an announced line still missing a while later asks the peer that
//! announced it for lines in full again (a graft), and for what is missing. A prune
//! takes one direction of a link off the tree, not both as in the paper: with many
//! authors writing at once, symmetric prunes cut a node off the tree for lines that
//! come the other way, and it hears of them late. Every link starts on the tree, so
//! a new mesh floods once and settles.
//!
//! Not for catch-up: the summaries compared at link-up and after new lines are as they
//! are with flooding, and are what brings a line lost in a repair to every node in the
//! end. With `Broadcast::Flood` every link is eager and nothing here runs.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Broadcast;
use crate::wire::lines::{Have, HaveEntry};
use crate::wire::peer::Message;

use crate::proto::ids::{ConnId, NodeId};
use crate::proto::logs::FeedKey;
use crate::proto::timers::Timer;

use super::Node;

/// How long ids for a lazy link are gathered before they go, so that a busy node sends
/// a few announcements a second per link rather than one per batch.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(20);

/// How long an announced line may stay missing before the link that announced it is
/// grafted: longer than a copy takes along the tree, so that a tree that works is
/// left alone.
const GRAFT_AFTER: Duration = Duration::from_millis(80);

/// Announced lines waiting to be checked at the most: past it an announcement of more
/// is ignored (the next summary round still catches the node up).
const MAX_WAITING: usize = 8192;

/// An announced run of lines to check for once its time is up.
#[derive(Debug)]
pub(super) struct Awaited {
    at: Instant,
    peer: ConnId,
    key: FeedKey,
    first: u64,
    end: u64,
}

/// The broadcast tree's state beside the links' own flags.
#[derive(Debug, Default)]
pub(super) struct TreeState {
    /// When the gathered ids go out, if any are gathered.
    announce_at: Option<Instant>,
    /// Announced lines this node lacked, oldest first (they share one wait).
    awaited: VecDeque<Awaited>,
    /// The armed instant of `Timer::Tree`.
    deadline: Option<Instant>,
}

impl Node {
    fn tree(&self) -> bool {
        self.cfg.broadcast == Broadcast::Tree
    }

    /// Sends the batch in `frame_buf` (lines `first..end` of `key`) to every linked
    /// peer but `except`: in full on eager links, and as an id, soon, on lazy ones.
    pub(super) fn spread(
        &mut self,
        now: Instant,
        except: Option<ConnId>,
        key: FeedKey,
        first: u64,
        end: u64,
    ) {
        let mut gathered = false;
        for (_, conn) in &mut self.conns {
            if !conn.is_linked() || Some(conn.id) == except {
                continue;
            }
            let lazy = conn
                .peer_mut()
                .and_then(|p| p.remote_mut())
                .filter(|r| r.lazy);
            match lazy {
                Some(remote) => {
                    let run = remote.unannounced.entry(key).or_insert((first, end));
                    *run = (run.0.min(first), run.1.max(end));
                    gathered = true;
                }
                None => self
                    .fx
                    .enqueue(conn, &self.frame_buf, now, &self.cfg.limits),
            }
        }
        if gathered && self.tree_state.announce_at.is_none() {
            self.tree_state.announce_at = Some(now + ANNOUNCE_EVERY);
            self.arm_tree_timer();
        }
    }

    /// A live copy of lines seen already came from `id`: with trees, the peer is asked
    /// to send ids only on this link. Only that direction leaves the tree: the lines
    /// this node passes on still go to the peer in full, until it prunes them too.
    pub(super) fn copy_from(&mut self, now: Instant, id: ConnId, late: bool) {
        if !self.tree() || late {
            return;
        }
        let Some(remote) = self.conns[id.slot].peer_mut().and_then(|p| p.remote_mut()) else {
            return;
        };
        if remote.pruned {
            return;
        }
        remote.pruned = true;
        self.frame_buf.clear();
        Message::encode_prune(&mut self.frame_buf);
        let conn = &mut self.conns[id.slot];
        (self.fx).enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
    }

    /// The peer took this link off its tree, or put it back on.
    pub(super) fn peer_tree_link(&mut self, id: ConnId, lazy: bool) {
        if let Some(remote) = self.conns[id.slot].peer_mut().and_then(|p| p.remote_mut()) {
            remote.lazy = lazy;
        }
    }

    /// Ids of lines the peer took: each run this node lacks is awaited for a while.
    /// A flooding node grafts nothing: it never prunes, so no honest peer sends it ids.
    pub(super) fn peer_ihave(&mut self, now: Instant, id: ConnId, have: Have<'_>) {
        if !self.tree() {
            return;
        }
        for entry in have.iter() {
            let key = FeedKey {
                author: NodeId(entry.author),
                epoch: entry.epoch,
            };
            for &(first, end) in &entry.ranges {
                if self.logs.holds(key, first, end) || self.tree_state.awaited.len() >= MAX_WAITING
                {
                    continue;
                }
                let at = now + GRAFT_AFTER;
                (self.tree_state.awaited).push_back(Awaited {
                    at,
                    peer: id,
                    key,
                    first,
                    end,
                });
            }
        }
        self.arm_tree_timer();
    }

    /// The tree's timer: gathered ids go out, and awaited lines still missing graft
    /// the links that announced them.
    pub(super) fn tree_due(&mut self, now: Instant) {
        self.tree_state.deadline = None;
        if self.tree_state.announce_at.is_some_and(|at| at <= now) {
            self.tree_state.announce_at = None;
            self.send_announcements(now);
        }
        while let Some(awaited) = self.tree_state.awaited.front() {
            if awaited.at > now {
                break;
            }
            let awaited = self
                .tree_state
                .awaited
                .pop_front()
                .expect("looked at above");
            if !self.logs.holds(awaited.key, awaited.first, awaited.end) {
                self.graft(now, &awaited);
            }
        }
        self.arm_tree_timer();
    }

    fn send_announcements(&mut self, now: Instant) {
        for (_, conn) in &mut self.conns {
            let Some(remote) = conn.peer_mut().and_then(|p| p.remote_mut()) else {
                continue;
            };
            if remote.unannounced.is_empty() {
                continue;
            }
            let entries: Vec<HaveEntry> = (std::mem::take(&mut remote.unannounced).into_iter())
                .map(|(key, run)| HaveEntry {
                    author: key.author.0,
                    epoch: key.epoch,
                    ranges: vec![run],
                })
                .collect();
            if conn.is_linked() {
                self.frame_buf.clear();
                Have::encode_ihave(&mut self.frame_buf, &entries);
                (self.fx).enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
            }
        }
    }

    /// Puts the link to the peer that announced `awaited` back on the tree and asks it
    /// for what this node lacks of that author run.
    fn graft(&mut self, now: Instant, awaited: &Awaited) {
        let key = awaited.key;
        let question = self.logs.summary_of(key).unwrap_or(HaveEntry {
            author: key.author.0,
            epoch: key.epoch,
            ranges: Vec::new(),
        });
        let Some(conn) = (self.conns.get_mut(awaited.peer.slot))
            .filter(|c| c.id == awaited.peer && c.is_linked())
        else {
            return;
        };
        if let Some(remote) = conn.peer_mut().and_then(|p| p.remote_mut()) {
            remote.pruned = false;
        }
        self.frame_buf.clear();
        Message::encode_graft(&mut self.frame_buf);
        Have::encode(&mut self.frame_buf, &[question], false);
        (self.fx).enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
    }

    fn arm_tree_timer(&mut self) {
        let next_graft = self.tree_state.awaited.front().map(|a| a.at);
        let at = match (self.tree_state.announce_at, next_graft) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if at != self.tree_state.deadline {
            let slot = &mut self.tree_state.deadline;
            self.fx.timers.set(ConnId::NODE, Timer::Tree, slot, at);
        }
    }
}
