//! Epidemic broadcast trees (Plumtree: Leitão, Pereira and Rodrigues, SRDS 2007) over
//! the node's links, with `Broadcast::Tree`. A new batch goes in full to the peers on
//! the tree (eager links) and as an id to the others (lazy links), ids gathered for a
//! short while. A live copy of lines seen takes its link off the tree at both ends (a
//! prune); an announced line still missing a while later puts the link that announced
//! it back on the tree at both ends (a graft) and asks that peer for what is missing.
//! One graft at a time per author run: the other announcers are kept for a retry, so
//! a line missed by a whole branch brings one link back, not one per lazy neighbour.
//! Every link starts on the tree, so a new mesh floods once and settles.
//!
//! Not for catch-up: the summaries compared at link-up and after new lines are as they
//! are with flooding, and are what brings a line lost in a repair to every node in the
//! end. With `Broadcast::Flood` every link is eager and nothing here runs.

use std::collections::{BTreeSet, HashMap};
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

/// How long a graft is given to bring the lines before another announcer of the same
/// author run is grafted: about a round trip.
const GRAFT_RETRY: Duration = Duration::from_millis(40);

/// A link that brings a copy stays on the tree while it is among this many that
/// brought the node the most first copies lately: with many authors at once, prunes
/// on both sides of a loop would cut the tree, and every line after would need grafts.
const KEEP_BEST: usize = 3;

/// First copies after which every link's count is halved, so that "lately" follows
/// who is writing now.
const FIRSTS_HALVED_EVERY: u32 = 64;

/// Announced lines waiting to be checked at the most: past it an announcement of more
/// is ignored (the next summary round still catches the node up).
const MAX_WAITING: usize = 8192;

/// A peer's announcement of lines this node lacked when it came.
#[derive(Debug)]
struct Announced {
    peer: ConnId,
    first: u64,
    end: u64,
    heard: Instant,
}

/// The broadcast tree's state beside the links' own flags.
#[derive(Debug, Default)]
pub(super) struct TreeState {
    /// When the gathered ids go out, if any are gathered.
    announce_at: Option<Instant>,
    /// Announcements of lines still missing, per author run, oldest first.
    awaited: HashMap<FeedKey, Vec<Announced>>,
    /// Announcements in `awaited`.
    waiting: usize,
    /// When to look at an author run's announcements next.
    checks: BTreeSet<(Instant, FeedKey)>,
    /// The armed instant of `Timer::Tree`.
    deadline: Option<Instant>,
    /// First copies since the links' counts were last halved.
    firsts: u32,
    /// Links this node took off the tree, and put back, so far.
    pub(super) prunes: u64,
    pub(super) grafts: u64,
}

impl TreeState {
    /// Forgets the announcements of lines now held.
    fn drop_held(&mut self, key: FeedKey, held: impl Fn(u64, u64) -> bool) {
        if let Some(announced) = self.awaited.get_mut(&key) {
            let before = announced.len();
            announced.retain(|a| !held(a.first, a.end));
            self.waiting -= before - announced.len();
            if announced.is_empty() {
                self.awaited.remove(&key);
            }
        }
    }
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

    /// A live copy of lines seen already came from `id`: with trees, the link leaves
    /// the tree here and the peer is told to take it off too, unless it is one of the
    /// node's best links lately. A link that is off the tree already and still brings
    /// copies is told again: its peer has not heard yet, or grafted it since.
    pub(super) fn copy_from(&mut self, now: Instant, id: ConnId, late: bool) {
        if !self.tree() || late {
            return;
        }
        let Some(this) = self.conns[id.slot].peer().and_then(|p| p.remote()) else {
            return;
        };
        if !this.lazy && this.firsts > 0 {
            let better = (self.conns.iter())
                .filter(|(_, c)| c.is_linked())
                .filter_map(|(_, c)| c.peer().and_then(|p| p.remote()))
                .filter(|r| !r.lazy && r.firsts > this.firsts)
                .count();
            if better < KEEP_BEST {
                return;
            }
        }
        self.prune(now, id);
    }

    /// Takes the link to `id` off the tree at both ends.
    fn prune(&mut self, now: Instant, id: ConnId) {
        let conn = &mut self.conns[id.slot];
        let Some(remote) = conn.peer_mut().and_then(|p| p.remote_mut()) else {
            return;
        };
        self.tree_state.prunes += u64::from(!remote.lazy);
        remote.lazy = true;
        self.frame_buf.clear();
        Message::encode_prune(&mut self.frame_buf);
        (self.fx).enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
    }

    /// New live lines of `key` came first from `from`: the link counts one more first
    /// copy, and announcements of what is now held are done with.
    pub(super) fn tree_took(&mut self, from: ConnId, key: FeedKey) {
        if !self.tree() {
            return;
        }
        if let Some(remote) = self.conns[from.slot]
            .peer_mut()
            .and_then(|p| p.remote_mut())
        {
            remote.firsts += 1;
        }
        self.tree_state.firsts += 1;
        if self.tree_state.firsts >= FIRSTS_HALVED_EVERY {
            self.tree_state.firsts = 0;
            for (_, conn) in &mut self.conns {
                if let Some(remote) = conn.peer_mut().and_then(|p| p.remote_mut()) {
                    remote.firsts /= 2;
                }
            }
        }
        let logs = &self.logs;
        (self.tree_state).drop_held(key, |first, end| logs.holds(key, first, end));
    }

    /// The peer took this link off its tree, or put it back on: so does this end.
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
        let state = &mut self.tree_state;
        for entry in have.iter() {
            let key = FeedKey {
                author: NodeId(entry.author),
                epoch: entry.epoch,
            };
            for &(first, end) in &entry.ranges {
                if self.logs.holds(key, first, end) || state.waiting >= MAX_WAITING {
                    continue;
                }
                let announced = state.awaited.entry(key).or_default();
                if announced.is_empty() {
                    state.checks.insert((now + GRAFT_AFTER, key));
                }
                announced.push(Announced {
                    peer: id,
                    first,
                    end,
                    heard: now,
                });
                state.waiting += 1;
            }
        }
        self.arm_tree_timer();
    }

    /// The tree's timer: gathered ids go out, and lines announced long enough ago and
    /// still missing graft the link of their first announcer, one per author run at a
    /// time.
    pub(super) fn tree_due(&mut self, now: Instant) {
        self.tree_state.deadline = None;
        if self.tree_state.announce_at.is_some_and(|at| at <= now) {
            self.tree_state.announce_at = None;
            self.send_announcements(now);
        }
        while let Some(&(at, key)) = self.tree_state.checks.first() {
            if at > now {
                break;
            }
            self.tree_state.checks.pop_first();
            let logs = &self.logs;
            (self.tree_state).drop_held(key, |f, e| logs.holds(key, f, e));
            let Some(announced) = self.tree_state.awaited.get_mut(&key) else {
                continue;
            };
            // A check left from announcements since held, for ones that came later.
            let due = announced[0].heard + GRAFT_AFTER;
            if due > now {
                self.tree_state.checks.insert((due, key));
                continue;
            }
            let first = announced.remove(0);
            self.tree_state.waiting -= 1;
            match announced.first() {
                Some(next) => {
                    let at = (now + GRAFT_RETRY).max(next.heard + GRAFT_AFTER);
                    self.tree_state.checks.insert((at, key));
                }
                None => {
                    self.tree_state.awaited.remove(&key);
                }
            }
            let question = self.logs.summary_of(key).unwrap_or(HaveEntry {
                author: key.author.0,
                epoch: key.epoch,
                ranges: Vec::new(),
            });
            self.send_graft(now, first.peer, question);
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

    /// Puts the link to `peer` back on the tree, at both ends, and asks it `question`
    /// about what this node lacks.
    fn send_graft(&mut self, now: Instant, peer: ConnId, question: HaveEntry) {
        let Some(conn) = (self.conns.get_mut(peer.slot)).filter(|c| c.id == peer && c.is_linked())
        else {
            return;
        };
        if let Some(remote) = conn.peer_mut().and_then(|p| p.remote_mut()) {
            remote.lazy = false;
        }
        self.frame_buf.clear();
        Message::encode_graft(&mut self.frame_buf);
        Have::encode(&mut self.frame_buf, &[question], false);
        self.tree_state.grafts += 1;
        (self.fx).enqueue(conn, &self.frame_buf, now, &self.cfg.limits);
    }

    fn arm_tree_timer(&mut self) {
        let next_graft = self.tree_state.checks.first().map(|&(at, _)| at);
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
